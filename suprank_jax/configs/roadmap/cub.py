"""ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: R@1 68.5 (ResNet-50), from the papers-with-code leaderboard of ROADMAP
  (paperswithcode2.com/paper/244287); mAP@R not available in the sources this repository could read
  (see the paper)
Data: CUB-200-2011 in its original layout under data_dir: images.txt, image_class_labels.txt,
  images/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README (CUB-200-2011): experience.seed=333 experience.max_iter=200
  optimizer=cub model=resnet_max_ln transform=cub_big dataset=cub dataset.sampler.kwargs.batch_size=128
  loss=roadmap

Its files: optimizer=cub is one Adam over every parameter at a constant 1e-6, weight decay 4e-4, no
scheduler (read from margin_ap/config/optimizer/cub.yaml, the package's earlier name: the stored copy
lacks roadmap/config/optimizer/cub.yaml); model=resnet_max_ln is SupRank's resnet_ln_max, and
dataset=cub with transform=cub_big SupRank's cub_big (256 crops, MPerClassSampler); loss=roadmap
weighs SupAP and calibration 1 and 1; evaluation every 5 epochs.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/cub.py --workdir runs/roadmap_cub \
    --config.input.data_dir=/data/CUB_200_2011 \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, roadmap


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return roadmap.readme_run(dataset="cub_big", model="resnet_ln_max", optimizer="roadmap_repo_cub",
                            loss="roadmap_repo_roadmap", num_epochs=200)
