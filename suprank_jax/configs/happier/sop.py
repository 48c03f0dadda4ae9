"""HAPPIER on Stanford Online Products (command 3 of the original README).

Paper: HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image
Retrieval', ECCV 2022, Table 2 (SOP)
Published: HAPPIER R@1 81.0 (HAPPIER_F 81.8), from the papers-with-code leaderboard of HAPPIER
  (paperswithcode2.com/paper/306400); H-AP/ASI/NDCG not available in the sources this repository
  could read (see the paper)
Data: Stanford Online Products in its original layout under data_dir: Ebay_train.txt, Ebay_test.txt
  and the image folders.
Weights: torchvision ResNet-50 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: python suprank/run.py seed=0 max_iter=100 warmup_step=5
  accuracy_calculator.compute_for_hierarchy_levels=[0,1] optimizer=sop model=resnet_ln dataset=sop
  loss=HAPPIER_SOP

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/happier/sop.py --workdir runs/happier_sop \
    --config.input.data_dir=/data/Stanford_Online_Products \
    --config.model.pretrained_path=/weights/resnet50.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="happier_sop",
                              num_epochs=100, freeze_epochs=5, hierarchy_levels=(0, 1))
  return config
