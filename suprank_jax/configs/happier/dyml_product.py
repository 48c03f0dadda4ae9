"""HAPPIER on DyML-Product (command 6 of the original README).

Paper: HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image
Retrieval', ECCV 2022, Table 3 (DyML)
Published: HAPPIER average mAP 38.0, from the papers-with-code leaderboard of HAPPIER
  (paperswithcode2.com/paper/306400); R@1 and ASI not available in the sources this repository could
  read (see the paper)
Data: DyML-Product in its original layout under data_dir: train/label.csv, train/imgs/, mini-
  bmk_all_in_one/label.csv and imgs/.
Weights: torchvision ResNet-34 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: python suprank/run.py seed=0 max_iter=20 warmup_step=5
  accuracy_calculator.compute_for_hierarchy_levels=[0,1,2] accuracy_calculator.overall_accuracy=True
  accuracy_calculator.exclude=[NDCG,H-AP] accuracy_calculator.recall_rate=[10,20]
  accuracy_calculator.with_binary_asi=True optimizer=dyml_product model=dyml_resnet34_product
  dataset=dyml_product loss=HAPPIER_product

HAPPIER_product.yaml gives the cluster weights ${optimizer.opt.net}, which dyml_product.yaml (a
backbone and a head optimizer) does not define; they get the base (backbone) optimizer here: SGD
0.01, Nesterov, cosine to 1e-5. The overall accuracy is the mean over the three levels of the one
test set (overall_* metrics).

Command:
  python3 -m suprank_jax.train --config suprank_jax/configs/happier/dyml_product.py --workdir runs/happier_dyml_product \
    --config.input.data_dir=/data/dyml_product \
    --config.model.pretrained_path=/weights/resnet34.safetensors
"""

from suprank_jax.configs import common, experiment


def get_config(arg=None):
  common.parse_arg(arg)  # this experiment takes no argument: any raises
  config = experiment.compose(dataset="dyml_product", model="dyml_resnet34_product", optimizer="dyml_product", loss="happier_product",
                              num_epochs=20, freeze_epochs=5, hierarchy_levels=(0, 1, 2))
  experiment.dyml_evaluation(config, hierarchy_levels=(0, 1, 2))
  return config
