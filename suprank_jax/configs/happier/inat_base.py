"""HAPPIER on iNat-base (command 1 of the original README).

Paper: HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image
Retrieval', ECCV 2022, Table 2 (iNat-base)
Published: HAPPIER (ResNet-50) R@1 70.7 on iNaturalist, from the papers-with-code leaderboard of
  HAPPIER (paperswithcode2.com/paper/306400), which does not say whether it is iNat-base or
  iNat-full; H-AP/ASI/NDCG not available in the sources this repository could read (see the paper)
Data: iNaturalist-2018 (iNat-base: species, super-category) in its original layout under data_dir:
  Inat_dataset_splits/Inaturalist_{train,test}_set1.txt (the original's splits), train_val2018/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: python suprank/run.py seed=0 accuracy_calculator.compute_for_hierarchy_levels=[0,1]
  warmup_step=5 optimizer=inat model=resnet_ln dataset=inat_base loss=HAPPIER_inat

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/happier/inat_base.py --workdir runs/happier_inat_base \
    --config.input.data_dir=/data/Inaturalist \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="happier_inat",
                              num_epochs=100, freeze_epochs=5, hierarchy_levels=(0, 1))
  return config
