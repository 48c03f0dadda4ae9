"""HAPPIER on iNat-full (command 2 of the original README).

Paper: HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image
Retrieval', ECCV 2022, Table 2 (iNat-full)
Published: HAPPIER (ResNet-50) R@1 70.7 on iNaturalist, from the papers-with-code leaderboard of
  HAPPIER (paperswithcode2.com/paper/306400) (split not stated); H-AP/ASI/NDCG not available in the
  sources this repository could read (see the paper)
Data: iNaturalist-2018 (iNat-full: the 7 taxonomy levels) in its original layout under data_dir:
  Inat_dataset_splits/Inaturalist_{train,test}_set1.txt, train2018.json, train_val2018/.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: python suprank/run.py seed=0
  accuracy_calculator.compute_for_hierarchy_levels=[0,1,2,3,4,5,6] warmup_step=5 optimizer=inat
  model=resnet_ln dataset=inat_full loss=HAPPIER_inat

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/happier/inat_full.py --workdir runs/happier_inat_full \
    --config.input.data_dir=/data/Inaturalist \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="inat_full", model="resnet_ln", optimizer="inat", loss="happier_inat",
                              num_epochs=100, freeze_epochs=5, hierarchy_levels=(0, 1, 2, 3, 4, 5, 6))
  return config
