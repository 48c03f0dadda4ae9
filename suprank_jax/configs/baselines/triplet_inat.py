"""Baseline: the triplet loss on iNaturalist-2018 (iNat-base: species, super-category) with ResNet-50.

Paper: a baseline of the comparison tables of SupRank, Ramzi et al., 'Optimization of Rank Losses
for Image Retrieval', TPAMI (arXiv 2309.08250) and HAPPIER
Published: not available in the sources this repository could read (see the paper)
Data: iNaturalist-2018 (iNat-base: species, super-category) in its original layout under data_dir:
  Inat_dataset_splits/Inaturalist_{train,test}_set1.txt (the original's splits), train_val2018/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=inat_base model=resnet_ln optimizer=inat
  loss=triplet warmup_step=5

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/baselines/triplet_inat.py --workdir runs/baselines_triplet_inat \
    --config.input.data_dir=/data/Inaturalist \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="triplet",
                              num_epochs=100, freeze_epochs=5, hierarchy_levels=(0, 1))
  return config
