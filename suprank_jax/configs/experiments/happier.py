"""The HAPPIER experiments: the runs of the SupRank repository's README (commands 1 to 5) and of the HAPPIER
repository's README (DyML-Product), in the SupRank README's order."""

import functools

from suprank_jax.configs import experiment
from suprank_jax.configs.experiments.record import Experiment, Source, leaderboard

__all__ = ["EXPERIMENTS", "INTRO", "TITLE"]

TITLE = "HAPPIER (the six commands of the original README, in its order)"
INTRO = ""

_HIERARCHICAL = "H-AP/ASI/NDCG"
_DYML_GALLERIES = (
  "The loss file gives the cluster weights `${optimizer.opt.head}`, which `optimizer=dyml` (a single `net` "
  "optimizer) does not define; they get the network's optimizer here (SGD 0.1, Nesterov). Each benchmark "
  "gallery already holds its queries (the original's `gallery_distractor`): each query's own copy, found by "
  "identical path or content, is removed from its ranking."
)
_DYML_EVALUATION = (
  "accuracy_calculator.overall_accuracy=True accuracy_calculator.exclude=[NDCG,H-AP] "
  "accuracy_calculator.recall_rate=[10,20] accuracy_calculator.with_binary_asi=True"
)

EXPERIMENTS = (
  Experiment(
    "happier/inat_base",
    "HAPPIER on iNat-base (command 1 of the original README)",
    dict(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="happier_inat"),
    Source(
      "suprank",
      "python suprank/run.py seed=0 accuracy_calculator.compute_for_hierarchy_levels=[0,1] warmup_step=5 "
      "optimizer=inat model=resnet_ln dataset=inat_base loss=HAPPIER_inat",
      readme="command 1",
    ),
    paper="happier",
    table="Table 2 (iNat-base)",
    published=leaderboard(
      "happier",
      "HAPPIER (ResNet-50) R@1 70.7 on iNaturalist (the leaderboard does not say whether iNat-base or iNat-full)",
      unread=_HIERARCHICAL,
    ),
    freeze_epochs=5,
    hierarchy_levels=(0, 1),
  ),
  Experiment(
    "happier/inat_full",
    "HAPPIER on iNat-full (command 2 of the original README)",
    dict(dataset="inat_full", model="resnet_ln", optimizer="inat", loss="happier_inat"),
    Source(
      "suprank",
      "python suprank/run.py seed=0 accuracy_calculator.compute_for_hierarchy_levels=[0,1,2,3,4,5,6] warmup_step=5 "
      "optimizer=inat model=resnet_ln dataset=inat_full loss=HAPPIER_inat",
      readme="command 2",
    ),
    paper="happier",
    table="Table 2 (iNat-full)",
    published=leaderboard(
      "happier", "HAPPIER (ResNet-50) R@1 70.7 on iNaturalist (split not stated)", unread=_HIERARCHICAL
    ),
    freeze_epochs=5,
    hierarchy_levels=(0, 1, 2, 3, 4, 5, 6),
  ),
  Experiment(
    "happier/sop",
    "HAPPIER on Stanford Online Products (command 3 of the original README)",
    dict(dataset="sop", model="resnet_ln", optimizer="sop", loss="happier_sop"),
    Source(
      "suprank",
      "python suprank/run.py seed=0 max_iter=100 warmup_step=5 accuracy_calculator.compute_for_hierarchy_levels=[0,1] "
      "optimizer=sop model=resnet_ln dataset=sop loss=HAPPIER_SOP",
      readme="command 3",
    ),
    paper="happier",
    table="Table 2 (SOP)",
    published=leaderboard("happier", "HAPPIER R@1 81.0 (HAPPIER_F 81.8)", unread=_HIERARCHICAL),
    freeze_epochs=5,
    hierarchy_levels=(0, 1),
  ),
  Experiment(
    "happier/dyml_vehicle",
    "HAPPIER on DyML-Vehicle (command 4 of the original README)",
    dict(dataset="dyml_vehicle", model="dyml_resnet34", optimizer="dyml", loss="happier"),
    Source(
      "suprank",
      f"python suprank/run.py seed=0 accuracy_calculator.compute_for_hierarchy_levels=[0] {_DYML_EVALUATION} "
      "optimizer=dyml model=dyml_resnet34 dataset=dyml_vehicle loss=HAPPIER",
      readme="command 4",
    ),
    paper="happier",
    table="Table 3 (DyML)",
    published=leaderboard("happier", "HAPPIER average mAP 37.0", unread="R@1 and ASI"),
    weights=(),
    finish=(functools.partial(experiment.dyml_evaluation, hierarchy_levels=(0,)),),
    notes=_DYML_GALLERIES,
  ),
  Experiment(
    "happier/dyml_animal",
    "HAPPIER on DyML-Animal (command 5 of the original README)",
    dict(dataset="dyml_animal", model="dyml_resnet34", optimizer="dyml", loss="happier_5"),
    Source(
      "suprank",
      f"python suprank/run.py seed=0 accuracy_calculator.compute_for_hierarchy_levels=[0] {_DYML_EVALUATION} "
      "optimizer=dyml model=dyml_resnet34 dataset=dyml_animal loss=HAPPIER_5",
      readme="command 5",
    ),
    paper="happier",
    table="Table 3 (DyML)",
    published=leaderboard("happier", "HAPPIER average mAP 43.8", unread="R@1 and ASI"),
    weights=(),
    finish=(functools.partial(experiment.dyml_evaluation, hierarchy_levels=(0,)),),
    notes=_DYML_GALLERIES,
  ),
  Experiment(
    "happier/dyml_product",
    "HAPPIER on DyML-Product (command 6 of the HAPPIER repository's README)",
    dict(dataset="dyml_product", model="dyml_resnet34_product", optimizer="dyml_product", loss="happier_product"),
    Source(
      "happier",
      "python happier/run.py experience.seed=0 experience.max_iter=20 experience.warmup_step=5 "
      "experience.accuracy_calculator.compute_for_hierarchy_levels=[0,1,2] "
      "experience.accuracy_calculator.overall_accuracy=True experience.accuracy_calculator.exclude=[NDCG,H-AP] "
      "experience.accuracy_calculator.recall_rate=[10,20] experience.accuracy_calculator.with_binary_asi=True "
      "optimizer=dyml_product model=dyml_resnet34_product transform=dyml dataset=dyml_product loss=HAPPIER_product",
      readme="DyML-Product",
    ),
    paper="happier",
    table="Table 3 (DyML)",
    published=leaderboard("happier", "HAPPIER average mAP 38.0", unread="R@1 and ASI"),
    weights=("resnet34.safetensors",),
    epochs=20,
    freeze_epochs=5,
    hierarchy_levels=(0, 1, 2),
    finish=(functools.partial(experiment.dyml_evaluation, hierarchy_levels=(0, 1, 2)),),
    notes=(
      "Its files (`happier/config/`) hold the values of SupRank's same-named ones, but for the class weights: "
      "`loss/HAPPIER_product.yaml` gives them `${optimizer.opt.1}`, the fc optimizer of "
      "`optimizer/dyml_product.yaml`: SGD 0.02 (2x the backbone's 0.01), Nesterov, weight decay 1e-4, cosine to "
      "1e-5. (SupRank's `HAPPIER_product.yaml` asks for `${optimizer.opt.net}`, which its `dyml_product.yaml` "
      "lacks: Hydra stops.) Its `transform=dyml` is not in the stored copy of the repository; the transforms are "
      "SupRank's `dyml_product.yaml` ones (equal to the HAPPIER repository's `transform/inat.yaml`). The overall "
      "accuracy is the mean over the three levels of the one test set (`overall_*` metrics)."
    ),
  ),
)
