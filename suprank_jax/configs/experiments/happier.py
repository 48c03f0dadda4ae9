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

# The run settings a SupRank command may give: record field -> its argument (absent: the record's default).
_RUN_ARGUMENTS = {"epochs": "max_iter", "freeze_epochs": "warmup_step"}


def _command(n, data, args, *, table, published, **fields):
  """``happier/<dataset>``: command ``n`` of the SupRank README, ``python suprank/run.py seed=0 <args>``, on
  ``data``. Its groups are the files ``args`` names (in lower case), its run settings the ``max_iter``,
  ``warmup_step`` and ``compute_for_hierarchy_levels`` it gives; ``fields``: the record's others."""
  given = dict(arg.split("=", 1) for arg in args.split())
  levels = given["accuracy_calculator.compute_for_hierarchy_levels"].strip("[]").split(",")
  return Experiment(
    f"happier/{given['dataset']}",
    f"HAPPIER on {data} (command {n} of the original README)",
    {kind: given[kind].lower() for kind in ("dataset", "model", "optimizer", "loss")},
    Source("suprank", f"python suprank/run.py seed=0 {args}", readme=f"command {n}"),
    paper="happier",
    table=table,
    published=published,
    hierarchy_levels=tuple(int(level) for level in levels),
    **{field: int(given[arg]) for field, arg in _RUN_ARGUMENTS.items() if arg in given},
    **fields,
  )


def _dyml(n, benchmark, loss_file, mean_ap):
  """Command ``n``: HAPPIER with ``loss_file`` on DyML-<benchmark>, trained from scratch, with the DyML
  evaluation on the fine level; ``mean_ap``: the published average mAP."""
  return _command(
    n,
    f"DyML-{benchmark.title()}",
    f"accuracy_calculator.compute_for_hierarchy_levels=[0] {_DYML_EVALUATION} optimizer=dyml model=dyml_resnet34 "
    f"dataset=dyml_{benchmark} loss={loss_file}",
    table="Table 3 (DyML)",
    published=leaderboard("happier", f"HAPPIER average mAP {mean_ap}", unread="R@1 and ASI"),
    weights=(),
    finish=(functools.partial(experiment.dyml_evaluation, hierarchy_levels=(0,)),),
    notes=_DYML_GALLERIES,
  )


EXPERIMENTS = (
  _command(
    1,
    "iNat-base",
    "accuracy_calculator.compute_for_hierarchy_levels=[0,1] warmup_step=5 optimizer=inat model=resnet_ln "
    "dataset=inat_base loss=HAPPIER_inat",
    table="Table 2 (iNat-base)",
    published=leaderboard(
      "happier",
      "HAPPIER (ResNet-50) R@1 70.7 on iNaturalist (the leaderboard does not say whether iNat-base or iNat-full)",
      unread=_HIERARCHICAL,
    ),
  ),
  _command(
    2,
    "iNat-full",
    "accuracy_calculator.compute_for_hierarchy_levels=[0,1,2,3,4,5,6] warmup_step=5 optimizer=inat model=resnet_ln "
    "dataset=inat_full loss=HAPPIER_inat",
    table="Table 2 (iNat-full)",
    published=leaderboard(
      "happier", "HAPPIER (ResNet-50) R@1 70.7 on iNaturalist (split not stated)", unread=_HIERARCHICAL
    ),
  ),
  _command(
    3,
    "Stanford Online Products",
    "max_iter=100 warmup_step=5 accuracy_calculator.compute_for_hierarchy_levels=[0,1] optimizer=sop model=resnet_ln "
    "dataset=sop loss=HAPPIER_SOP",
    table="Table 2 (SOP)",
    published=leaderboard("happier", "HAPPIER R@1 81.0 (HAPPIER_F 81.8)", unread=_HIERARCHICAL),
  ),
  _dyml(4, "vehicle", "HAPPIER", "37.0"),
  _dyml(5, "animal", "HAPPIER_5", "43.8"),
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
