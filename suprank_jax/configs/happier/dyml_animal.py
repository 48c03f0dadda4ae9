"""HAPPIER on DyML-Animal (command 5 of the original README).

Paper: HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image
Retrieval', ECCV 2022, Table 3 (DyML)
Published: HAPPIER average mAP 43.8, from the papers-with-code leaderboard of HAPPIER
  (paperswithcode2.com/paper/306400); R@1 and ASI not available in the sources this repository could
  read (see the paper)
Data: DyML-Animal in its original layout under data_dir: train/label.csv, train/imgs/,
  bmk_{fine,middle,coarse}/{query,gallery}.csv and folders.
Weights: none (trained from scratch, as the original).
Original: python suprank/run.py seed=0 accuracy_calculator.compute_for_hierarchy_levels=[0]
  accuracy_calculator.overall_accuracy=True accuracy_calculator.exclude=[NDCG,H-AP]
  accuracy_calculator.recall_rate=[10,20] accuracy_calculator.with_binary_asi=True optimizer=dyml
  model=dyml_resnet34 dataset=dyml_animal loss=HAPPIER_5

The loss file gives the cluster weights ${optimizer.opt.head}, which optimizer=dyml (a single 'net'
optimizer) does not define; they get the network's optimizer here (SGD 0.1, Nesterov). Each
benchmark gallery already holds its queries (the original's gallery_distractor): each query's own
copy, found by identical path or content, is removed from its ranking.

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/happier/dyml_animal.py --workdir runs/happier_dyml_animal \
    --config.input.data_dir=/data/dyml_animal
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="dyml_animal", model="dyml_resnet34", optimizer="dyml", loss="happier_5",
                              num_epochs=100)
  experiment.dyml_evaluation(config, hierarchy_levels=(0,))
  return config
