"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: not available in the sources this repository could read (see the paper) (the leaderboard
  row for ResNet-50 is cut off in the stored page)
Data: iNaturalist-2018 (iNat-base: species, super-category) in its original layout under data_dir:
  Inat_dataset_splits/Inaturalist_{train,test}_set1.txt (the original's splits), train_val2018/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the ROADMAP repository's README (INaturalist, 3 GPUs): experience.seed=333
  experience.max_iter=90 optimizer=inaturalist model=resnet transform=inaturalist dataset=inaturalist
  dataset.sampler.kwargs.batch_size=384 loss=roadmap_inat

Its files: model=resnet has no LayerNorm; optimizer=inaturalist is Adam 1e-5, weight decay 4e-4 on the
backbone and the fc layer, MultiStepLR at epochs 30 and 70 with gamma 0.3 on both (read from
marginap/config/optimizer/inaturalist.yaml, the package's earlier name: the stored copy lacks
roadmap/config/optimizer/inaturalist.yaml); dataset=inaturalist with its transform is SupRank's
inat_base (species and path super-category, 224 crops, MPerClassSampler); loss=roadmap_inat weighs
SupAP and calibration 1 and 1; evaluation every 5 epochs.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/inat.py --workdir runs/roadmap_inat \
    --config.input.data_dir=/data/Inaturalist \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, roadmap


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  return roadmap.readme_run(dataset="inat_base", model="roadmap_repo_resnet", optimizer="roadmap_repo_inaturalist",
                            loss="roadmap_repo_roadmap_inat", num_epochs=90, batch_size=384)
