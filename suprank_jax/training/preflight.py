"""Every check of a run that needs no network, before any model is initialised: ``prepare(config, workdir)``.

The order is the cost order: the values of the config, the losses, the input settings, the batch
against the devices, a resumed run's config against its own, the data sets (index files, every image
file, the first batch), the run length in steps, the model and its weights, the optimizer, the
checkpoint folder and every evaluation (its data set and metric settings). A mistake anywhere stops
the run before its first expensive step, naming the key or file at fault.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from suprank_jax import losses, models, optim, steps
from suprank_jax.configs import common
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import retrieval_evaluator
from suprank_jax.input_pipeline import datasets, pipeline, sources
from suprank_jax.losses import combine
from suprank_jax.models import build_model
from suprank_jax.runtime import parallel, reporting
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import checkpoint, resume_rules

__all__ = ["Prepared", "prepare", "make_optimizer", "checkpoint_every_minutes"]


def _check_max_positives(entry, fn, hp, config, log):
  """Warns when a rank loss runs dense under jit; rejects a bound the sampler is known to exceed."""
  parameters = inspect.signature(fn).parameters
  if "max_positives" not in parameters:
    return
  bound, m = hp.get("max_positives"), config.input.samples_per_class
  if bound is None:
    log(
      f"warning: config.losses.{entry} has no max_positives: under jit it ranks every item of the "
      "batch (dense, [B, B, B] work). Set it to the most relevant items a query can have (e.g. "
      f"config.input.samples_per_class={m} for a binary loss in batch mode)."
    )
    return
  level = hp.get("hierarchy_level", parameters["hierarchy_level"].default if "hierarchy_level" in parameters else 0)
  if level == 0 and config.input.sampler in ("m_per_class", "m_per_class_original") and int(bound) < m:
    raise ValueError(
      f"config.losses.{entry}.max_positives={bound} is below config.input.samples_per_class={m}: "
      f"every query of a batch has {m} positives; raise max_positives to at least {m}"
    )


def _check_run_config(config):
  """The top-level keys: each impossible value names its key (before any data is read)."""
  for key in (
    "total_steps",
    "num_epochs",
    "eval_every_steps",
    "eval_every_epochs",
    "checkpoint_every_steps",
    "checkpoint_every_epochs",
    "seed",
  ):
    if not isinstance(config[key], int) or config[key] < 0:
      raise ValueError(f"config.{key}={config[key]!r} must be an integer >= 0")
  for key in ("log_every_steps", "keep_checkpoints"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"config.{key}={config[key]!r} must be an integer >= 1")
  if not isinstance(config.eval_at_start, bool):
    raise ValueError(f"config.eval_at_start={config.eval_at_start!r} must be True (evaluate before training) or False")
  minutes = checkpoint_every_minutes(config)
  if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes >= 0:
    raise ValueError(f"config.checkpoint_every_minutes={minutes!r} must be a number of minutes >= 0 (0: none)")
  if not (config.checkpoint_every_steps or config.checkpoint_every_epochs or minutes):
    raise ValueError(
      "config.checkpoint_every_steps=0 and config.checkpoint_every_epochs=0 (and no "
      "config.checkpoint_every_minutes): the run would save only at its end, and an interruption "
      "would lose every step; set one of them"
    )
  x = config.xbm
  if x.size < -1:
    raise ValueError(f"config.xbm.size={x.size} must be >= 0 (0: no memory) or -1 (the size of the training split)")
  if x.size and x.activate_epoch < 1:
    raise ValueError(f"config.xbm.activate_epoch={x.activate_epoch} must be >= 1 (epochs count from 1)")
  if x.size and (x.factor < 0 or x.factor_true_loss < 0 or x.factor + x.factor_true_loss <= 0):
    raise ValueError(f"config.xbm.factor={x.factor} and factor_true_loss={x.factor_true_loss} must be >= 0, not both 0")
  if not x.size:
    defaults = common.base_config().xbm
    changed = [k for k in ("activate_epoch", "factor", "factor_true_loss") if x[k] != defaults[k]]
    if changed:
      raise ValueError(
        f"config.xbm.{changed[0]} is set but config.xbm.size=0 (no memory): set config.xbm.size "
        "(or -1 for the whole training split), or leave it at its default"
      )
  if not config.evals:
    raise ValueError("config.evals is empty: give at least one evaluation (configs/common.eval_config)")
  complete = set(common.eval_config().keys())
  for name, ev in config.evals.items():
    keys = set(ev.keys()) if hasattr(ev, "keys") else set()
    if keys != complete:
      raise ValueError(
        f"config.evals.{name} has keys {sorted(keys)}, expected {sorted(complete)}: build it with "
        "configs.common.eval_config(split, gallery_split, **settings)"
      )
    if isinstance(ev.batch_size, bool) or not isinstance(ev.batch_size, int) or ev.batch_size < 1:
      raise ValueError(f"config.evals.{name}.batch_size={ev.batch_size!r} must be an integer >= 1")
  unknown = [n for n in config.overall_accuracy_over if n not in config.evals]
  if unknown:
    raise ValueError(
      f"config.overall_accuracy_over names {unknown}, which are not in config.evals ({sorted(config.evals)})"
    )


def checkpoint_every_minutes(config) -> float:
  """``config.checkpoint_every_minutes``: 0 (none) for a config built before the key existed."""
  return config.checkpoint_every_minutes if "checkpoint_every_minutes" in config else 0.0


@dataclasses.dataclass
class Prepared:
  """Everything a run needs that is checked before the first expensive step (see :func:`prepare`)."""

  train_source: Any
  steps_per_epoch: int | None  # None: the epochs vary in length (see `epochs`)
  total_steps: int
  eval_every_steps: int
  checkpoint_every_steps: int
  memory_size: int
  model: Any
  tx: Any
  schedules: dict
  mesh: Any
  evaluators: dict
  sample_images: np.ndarray
  resuming: bool
  # Where each epoch starts; the periods "every k epochs" of epochs of varying length (else 0, the
  # period being in the *_every_steps fields): steps.to_period.
  epochs: steps.EpochPlan
  eval_every_epochs: int
  checkpoint_every_epochs: int

  def evaluation_due(self, done: int) -> bool:
    """Whether a periodic evaluation is due after ``done`` steps (the one at the end aside)."""
    return steps.is_due(done, self.eval_every_steps, self.eval_every_epochs, self.epochs)

  def checkpoint_due(self, done: int) -> bool:
    """Whether a periodic save is due after ``done`` steps (the one at the end aside)."""
    return steps.is_due(done, self.checkpoint_every_steps, self.checkpoint_every_epochs, self.epochs)


def prepare(
  config: ml_collections.ConfigDict, workdir: str, *, log=reporting.log, allow_config_change: bool = False
) -> Prepared:
  """Every check that needs no network, before any model is initialised or evaluated.

  In order: the values of the top-level keys, ``config.input``, the losses, the batch against the
  devices, on a resume the config against the run's (:mod:`suprank_jax.training.resume_rules`), the training
  data set (its index files and classes), every image file of the training and evaluation data sets
  (all missing ones reported at once), the sampler, the run length in steps, the model (its keys,
  pretrained weights on a fresh start), the optimizer, the checkpoint folder (writable), and each
  evaluation's data set (read, and for galleries holding the queries, each query's copy found).

  Args:
    config: the run's config.
    workdir: the run's folder.
    log: progress printer.
    allow_config_change: resume even when the config differs from the run's in keys a resume may not
      change.

  Raises:
    ValueError (FileNotFoundError for a missing data set file, CheckpointWriteError for an unwritable
    checkpoint folder, ConfigChangedError for a config a resume may not take): naming the key or file
    at fault.
  """
  _check_run_config(config)
  for entry, loss_def, _, hp in combine.entries(config.losses, losses.LOSSES):
    _check_max_positives(entry, loss_def.fn, hp, config, log)
  pipeline.check_input_config(config.input)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.input.global_batch_size, mesh)
  for name, ev in config.evals.items():
    parallel.check_batch_size(ev.batch_size, mesh, name=f"config.evals.{name}.batch_size")

  checkpoint_dir = RunDir(workdir).checkpoints
  resuming = checkpoint.has_checkpoints(checkpoint_dir)
  if resuming:
    _check_resume_config(config, workdir, checkpoint_dir, allow=allow_config_change, log=log)

  train_source = datasets.get_source(config.input, config.input.train_split)
  _check_data_files(config, train_source, workdir, log)
  plan = pipeline.epoch_plan(config.input, train_source, seed=config.seed)
  total_steps, eval_every, checkpoint_every = _run_lengths(config, plan)
  memory_size = len(train_source) if config.xbm.size == -1 else int(config.xbm.size)
  # The first batch of this process: its images decode and the augmentation gives them one shape.
  pipeline.load_train_batch(
    config.input,
    train_source,
    0,
    seed=config.seed,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )

  model = build_model(config.model)
  resuming = resuming or bool(config.resume)
  if not resuming:
    _check_pretrained(config.model, log)
  tx, schedules = make_optimizer(config, total_steps, plan)
  checkpoint.check_writable(checkpoint_dir)

  evaluators = {
    name: evaluator_lib.make_evaluator(name, eval_cfg, config.input, model=model, mesh=mesh, log=log)
    for name, eval_cfg in config.evals.items()
  }
  sample = pipeline.sample_images(config.input, train_source)
  return Prepared(
    train_source=train_source,
    steps_per_epoch=plan.steps_per_epoch,
    total_steps=total_steps,
    eval_every_steps=eval_every[0],
    checkpoint_every_steps=checkpoint_every[0],
    memory_size=memory_size,
    model=model,
    tx=tx,
    schedules=schedules,
    mesh=mesh,
    evaluators=evaluators,
    sample_images=sample,
    resuming=resuming,
    epochs=plan,
    eval_every_epochs=eval_every[1],
    checkpoint_every_epochs=checkpoint_every[1],
  )


def _run_lengths(config, plan: steps.EpochPlan):
  """``(total_steps, eval_every, checkpoint_every)``: the run length and the ``(steps, epochs)`` periods."""
  total_steps = steps.to_steps(config.total_steps, config.num_epochs, plan, "config.total_steps", "config.num_epochs")
  if total_steps < 1:
    raise ValueError("the run has no step: set config.total_steps or config.num_epochs")
  eval_every = steps.to_period(
    config.eval_every_steps, config.eval_every_epochs, plan, "config.eval_every_steps", "config.eval_every_epochs"
  )
  checkpoint_every = steps.to_period(
    config.checkpoint_every_steps,
    config.checkpoint_every_epochs,
    plan,
    "config.checkpoint_every_steps",
    "config.checkpoint_every_epochs",
  )
  if config.checkpoint_every_epochs and not any(checkpoint_every):
    raise ValueError(
      f"config.checkpoint_every_epochs={config.checkpoint_every_epochs!r} is less than one step "
      f"({plan.steps_per_epoch} steps per epoch)"
    )
  return total_steps, eval_every, checkpoint_every


def make_optimizer(config, total_steps: int, plan: steps.EpochPlan):
  """``(tx, schedules)`` of ``config.optim`` for the run, with the frozen parameters of ``config.model``
  (``freeze_batch_norm_affine``) in a frozen group."""
  optim_config = config.optim.copy_and_resolve_references()
  frozen = models.frozen_parameter_regex(config.model)
  if frozen:
    with optim_config.unlocked():
      optim_config.groups = ((frozen, None),) + tuple(optim_config.groups)
  return optim.make_optimizer(optim_config, total_steps, steps_per_epoch=plan)


def _check_resume_config(config, workdir, checkpoint_dir, *, allow, log):
  """The config against the run's (its ``config.yaml``, else the newest checkpoint's record of it)."""
  run_dir = RunDir(workdir)
  where = run_dir.config
  run_config = run_dir.read_config_dict(hint="move it away to resume without the config check")
  if run_config is None:
    for step in sorted((int(n) for n in os.listdir(checkpoint_dir) if n.isdigit()), reverse=True):
      where = os.path.join(checkpoint_dir, str(step), "meta", "metadata")
      try:
        with open(where, encoding="utf-8") as f:
          run_config = json.loads(json.load(f)["config"])
        break
      except (OSError, ValueError, KeyError, TypeError):
        continue
  if run_config is None:
    log(f"warning: {workdir} has checkpoints but no config.yaml: the config cannot be compared with the run's")
    return
  defaults = common.base_config().to_dict()
  defaults["model"] = models.default_config(config.model.name).to_dict()
  resume_rules.check_resume_config(run_config, config.to_dict(), where=where, allow=allow, log=log, defaults=defaults)


def _check_data_files(config, train_source, workdir, log):
  """Every image file of the training and evaluation splits exists (reported all at once)."""
  splits = [train_source]
  for ev in config.evals.values():
    input_config = retrieval_evaluator.evaluation_input_config(config.input, ev)
    for split in filter(None, (ev.split, ev.gallery_split)):
      source = datasets.get_source(input_config, split)
      if (source.name, source.index_files) not in {(s.name, s.index_files) for s in splits}:
        splits.append(source)
  sources.check_files_exist(
    splits,
    skip=bool(config.input.skip_corrupt_images),
    log=log,
    report_path=os.path.join(workdir, "missing_files.txt") if jax.process_index() == 0 else None,
  )


def _check_pretrained(model_config, log):
  """On a fresh start: the weights a ``pretrained`` model needs exist; a from-scratch ResNet with frozen
  batch norm is warned about (its statistics would stay at their initial values for the whole run)."""
  path = model_config.pretrained_path
  if model_config.pretrained and not path:
    raise ValueError(
      f"config.model.pretrained=True: this experiment starts from ImageNet weights (the original's "
      f"'pretrained: True'), which are never downloaded here; give config.model.pretrained_path (a "
      f"torchvision/timm {model_config.name} state dict: .safetensors, .npz or .pth), or set "
      "config.model.pretrained=False to train from scratch"
    )
  if path and not os.path.isfile(os.path.expanduser(path)):
    raise FileNotFoundError(f"config.model.pretrained_path={path!r}: no such file")
  if not path and model_config.get("freeze_batch_norm", False):
    log(
      "warning: config.model.freeze_batch_norm=True without pretrained weights: the batch-norm statistics "
      "stay at their initial values (mean 0, variance 1) for the whole run. The original "
      "freezes batch norm only on ImageNet-initialised backbones; set config.model.freeze_batch_norm=False to "
      "train from scratch, or give config.model.pretrained_path."
    )
