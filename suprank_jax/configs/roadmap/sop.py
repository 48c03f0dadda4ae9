"""ROADMAP (SupAP + calibration) on SOP with ResNet-50.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: R@1 83.1 (ResNet-50), from the papers-with-code leaderboard of ROADMAP
  (paperswithcode2.com/paper/244287); mAP@R not available in the sources this repository could read
  (see the paper)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README (SOP): experience.seed=333 experience.max_iter=100
  optimizer=sop model=resnet transform=sop_big dataset=sop dataset.sampler.kwargs.batch_size=128
  dataset.sampler.kwargs.batches_per_super_pair=10 loss=roadmap

Its files: model=resnet has no LayerNorm; optimizer=sop is Adam 1e-5, weight decay 1e-4 on the backbone
and the fc layer, MultiStepLR at epoch 25 with gamma 0.1 (read from margin_ap/config/optimizer/sop.yaml,
the package's earlier name: the stored copy lacks roadmap/config/optimizer/sop.yaml); transform=sop_big
is Resize(288), 256 crops; loss=roadmap weighs SupAP and calibration 1 and 1; the HierarchicalSampler
(2 super-classes per batch); evaluation every 5 epochs.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/sop.py --workdir runs/roadmap_sop \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, roadmap


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return roadmap.readme_run(dataset="roadmap_repo_sop_big", model="roadmap_repo_resnet", optimizer="roadmap_repo_sop",
                            loss="roadmap_repo_roadmap", num_epochs=100, batches_per_super_tuple=10)
