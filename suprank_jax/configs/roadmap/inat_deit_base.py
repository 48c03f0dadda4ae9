"""ROADMAP (SupAP + calibration) on iNaturalist-2018 with DeiT-B.

Paper: ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval',
NeurIPS 2021, Table 4
Published: not available in the sources this repository could read (see the paper)
Data: iNaturalist-2018 (iNat-base: species, super-category) in its original layout under data_dir:
  Inat_dataset_splits/Inaturalist_{train,test}_set1.txt (the original's splits), train_val2018/.
Weights: timm DeiT-B (distilled) ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the SupRank repository's configs dataset=inat_base model=deit_base optimizer=inat_deit
  loss=ROADMAP_inat and default.yaml (max_iter 100, seed 0); no README gives a command for it

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/roadmap/inat_deit_base.py --workdir runs/roadmap_inat_deit_base \
    --config.input.data_dir=/data/Inaturalist \
    --config.model.pretrained_path=/weights/deit_base_distilled_patch16_224.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="inat_base", model="deit_base", optimizer="inat_deit", loss="roadmap_inat",
                              num_epochs=100)
  return config
