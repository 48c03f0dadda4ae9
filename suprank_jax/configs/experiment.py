"""An experiment composed from named groups, as the original composes ``dataset=``, ``model=``,
``optimizer=``, ``loss=`` and ``memory=`` config files (``suprank/config/default.yaml``).

Command (any combination of the groups of ``configs/groups/``; names are the original's file names,
case-insensitive)::

  python -m suprank_jax.train --workdir runs/happier_sop \\
    --config 'suprank_jax/configs/experiment.py:dataset=sop,model=resnet_ln,optimizer=sop,loss=happier_sop,epochs=100,freeze_epochs=5' \\
    --config.input.data_dir=/data/Stanford_Online_Products --config.model.pretrained_path=/weights/resnet50.safetensors

The config argument keys: ``dataset``, ``model``, ``optimizer``, ``loss``, ``memory`` (group names),
``epochs`` (the original's ``max_iter``), ``freeze_epochs`` (its ``warmup_step``: the backbone is
frozen and the schedules wait for that many epochs) and ``seed``. Everything else is a
``--config.*`` override, e.g. the original's ``accuracy_calculator.compute_for_hierarchy_levels=[0,1]``
is ``--config.evals.test.metrics.hierarchy_levels='(0,1)'``. The experiment files of
``configs/happier``, ``configs/roadmap``, ``configs/suprank`` and ``configs/baselines`` are
compositions with the settings of the original's commands.

What the original's ``default.yaml`` fixes for every run: evaluation every 20 epochs and at the end
(``test_eval_freq``), none before training (``eval_at_start=False``), a checkpoint every epoch (its
rolling checkpoint; ``save_model`` keeps every 20th, here ``keep_checkpoints`` the latest), the test
metrics of ``accuracy_calculator.yaml`` (binary AP, P@1, mAP@R and R@k on
``compute_for_hierarchy_levels``; H-AP, ASI and NDCG over all levels), no gradient clipping. Every
evaluation logs both protocols (``metrics.protocol='both'``): our definitions, and the original
evaluation code's numbers as ``original/<key>``, which is what the published tables report.
"""

from __future__ import annotations

from collections.abc import Sequence

from suprank_jax.configs import common
from suprank_jax.configs.groups import GROUPS
from suprank_jax.configs.groups import optimizer as optimizer_groups

__all__ = ["compose", "dyml_evaluation", "get_config", "DEFAULT_GROUPS"]

# The original's default.yaml.
DEFAULT_GROUPS = dict(dataset="sop", model="resnet_ln_gem", optimizer="sop", loss="happier", memory="no_memory")


def _group(kind: str, name: str):
  table = GROUPS[kind]
  key = name.lower()
  if key not in table:
    raise ValueError(f"unknown {kind} group {name!r}; valid: {sorted(table)}")
  return table[key]


def _bound_positives(config):
  """Static ``max_positives`` bounds of the rank losses from the sampler (README: speed under jit).

  M-per-class batches give a level-0 query exactly ``samples_per_class`` positives (no class appears
  twice in a batch); the hierarchical sampler gives any query at most the items of its
  super-class, ``batch / super_classes_per_batch``. The bounds are linked to those keys, so a batch
  changed on the command line changes them too. Other cases (a multi-level loss with M-per-class
  batches, a cross-batch memory) stay dense.
  """
  i = config.input
  if config.xbm.size:
    return
  for entry in config.losses.values():
    if entry.weight == 0 or "max_positives" not in entry:
      continue
    if i.sampler == "hierarchical":
      entry.max_positives = i.get_ref("global_batch_size") // i.get_ref("super_classes_per_batch")
    elif entry.hierarchy_level == 0 and i.class_level == 0:
      entry.max_positives = i.get_ref("samples_per_class")


def compose(
  *,
  dataset: str,
  model: str,
  optimizer: str,
  loss: str,
  memory: str = "no_memory",
  num_epochs: int = 100,
  freeze_epochs: int = 0,
  hierarchy_levels: Sequence[int] = (0,),
  seed: int = 0,
):
  """The config of one experiment: the groups applied in the original's order, then the run settings.

  Args:
    dataset, model, optimizer, loss, memory: group names (see ``configs/groups``).
    num_epochs: the original's ``max_iter``.
    freeze_epochs: the original's ``warmup_step`` (0: none).
    hierarchy_levels: the original's ``accuracy_calculator.compute_for_hierarchy_levels``, for every
      evaluation.
    seed: the run seed.

  Raises:
    ValueError: an unknown group.
  """
  config = common.base_config()
  config.seed = seed
  for kind, name in (
    ("dataset", dataset),
    ("model", model),
    ("optimizer", optimizer),
    ("loss", loss),
    ("memory", memory),
  ):
    _group(kind, name)(config)
  config.total_steps = 0
  config.num_epochs = int(num_epochs)
  config.eval_every_epochs = 20
  config.eval_at_start = False
  config.checkpoint_every_steps = 0
  config.checkpoint_every_epochs = 1
  if freeze_epochs:
    config.optim.freeze_epochs = int(freeze_epochs)
    if not any(rule[0] == optimizer_groups.HEAD_REGEX for rule in config.optim.groups):
      # The original's warm-up skips the optimizers named in warmup_keys ([backbone]); a single 'net'
      # optimizer is not one of them, so nothing is frozen, but the schedules still wait.
      config.optim.freeze_regex = ""
  for ev in config.evals.values():
    ev.metrics.hierarchy_levels = tuple(hierarchy_levels)
    # Published tables come from the original evaluation code: log its numbers too, as original/<key>.
    ev.metrics.protocol = "both"
  _bound_positives(config)
  return config


def dyml_evaluation(config, *, hierarchy_levels: Sequence[int]):
  """The DyML evaluation of the original's commands: ``overall_accuracy=True``, ``exclude=[NDCG,H-AP]``,
  ``recall_rate=[10,20]``, ``with_binary_asi=True`` on ``hierarchy_levels``; the overall accuracy is the
  mean over the three benchmarks (Vehicle, Animal) or over the levels of the one test set (Product)."""
  for ev in config.evals.values():
    ev.metrics.hierarchy_levels = tuple(hierarchy_levels)
    ev.metrics.multi_level_metrics = ("ASI",)
    ev.metrics.recall_at = (10, 20)
    ev.metrics.binary_asi = True
  if len(config.evals) > 1:
    config.overall_accuracy_over = tuple(config.evals.keys())


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, epochs=100, freeze_epochs=0, seed=0, **DEFAULT_GROUPS)
  groups = {kind: args[kind] for kind in DEFAULT_GROUPS}
  return compose(**groups, num_epochs=args.epochs, freeze_epochs=args.freeze_epochs, seed=args.seed)
