"""HAPPIER on DyML-Product (command 6 of the HAPPIER repository's README).

Paper: HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image
Retrieval', ECCV 2022, Table 3 (DyML)
Published: HAPPIER average mAP 38.0, from the papers-with-code leaderboard of HAPPIER
  (paperswithcode2.com/paper/306400); R@1 and ASI not available in the sources this repository could
  read (see the paper)
Data: DyML-Product in its original layout under data_dir: train/label.csv, train/imgs/, mini-
  bmk_all_in_one/label.csv and imgs/.
Weights: torchvision ResNet-34 ImageNet weights (``config.model.pretrained_path``; nothing is
downloaded).
Original: the HAPPIER repository's README (DyML-Product): python happier/run.py experience.seed=0
  experience.max_iter=20 experience.warmup_step=5
  experience.accuracy_calculator.compute_for_hierarchy_levels=[0,1,2]
  experience.accuracy_calculator.overall_accuracy=True experience.accuracy_calculator.exclude=[NDCG,H-AP]
  experience.accuracy_calculator.recall_rate=[10,20] experience.accuracy_calculator.with_binary_asi=True
  optimizer=dyml_product model=dyml_resnet34_product transform=dyml dataset=dyml_product
  loss=HAPPIER_product

Its files (happier/config/) hold the values of SupRank's same-named ones, but for the class weights:
loss/HAPPIER_product.yaml gives them ${optimizer.opt.1}, the fc optimizer of optimizer/dyml_product.yaml:
SGD 0.02 (2x the backbone's 0.01), Nesterov, weight decay 1e-4, cosine to 1e-5. (SupRank's
HAPPIER_product.yaml asks for ${optimizer.opt.net}, which its dyml_product.yaml lacks: Hydra stops.)
Its transform=dyml is not in the stored copy of the repository; the transforms are SupRank's
dyml_product.yaml ones (equal to the HAPPIER repository's transform/inat.yaml). The overall accuracy is the mean over the
three levels of the one test set (overall_* metrics).

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
