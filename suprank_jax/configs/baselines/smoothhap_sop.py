"""Baseline: Smooth-HAP on SOP with ResNet-50.

Paper: a baseline of the comparison tables of SupRank, Ramzi et al., 'Optimization of Rank Losses
for Image Retrieval', TPAMI (arXiv 2309.08250) and HAPPIER
Published: not available in the sources this repository could read (see the paper)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=sop model=resnet_ln optimizer=sop loss=smoothhap

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/baselines/smoothhap_sop.py --workdir runs/baselines_smoothhap_sop \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="smoothhap",
                              num_epochs=100, hierarchy_levels=(0, 1))
  return config
