"""Training and evaluation loop: ``train_and_evaluate(config, workdir)``.

The train step is a module-level function over one state pytree (:class:`TrainState`), bound with
``functools.partial`` and jit-compiled over a data-parallel mesh: the batch is sharded on ``'data'``,
the state is replicated, and the losses see the whole global batch.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import json
import os
import signal
import threading
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import yaml
from absl import app, flags, logging
from ml_collections import config_flags

from suprank_jax import checkpoint, cli, losses, models, optim, parallel, reporting, resume_rules, steps, \
    workdir_lock
from suprank_jax.configs import common
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import metrics as eval_metrics
from suprank_jax.evaluation import pictures
from suprank_jax.input_pipeline import pipeline, sources
from suprank_jax.losses import combine, xbm
from suprank_jax.losses.inputs import batch_inputs
from suprank_jax.models import build_model
from suprank_jax.models import convert as model_convert

__all__ = ["TrainState", "train_step", "train_and_evaluate", "create_state", "prepare", "Prepared"]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly: a single pytree, saved as one checkpoint."""

  step: jax.Array
  params: Any
  batch_stats: Any
  loss_params: Any
  opt_state: Any
  memory: Any  # xbm.XBMState, or {} without a cross-batch memory
  rng: jax.Array

  def trainable(self):
    return {"model": self.params, "loss": self.loss_params}

  def variables(self):
    """Model variables for ``model.apply``."""
    return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


def create_state(rng, *, model, tx, sample_images, losses_config, registry, num_classes_per_level,
                 memory_size: int = 0) -> TrainState:
  """A fresh state: model and loss parameters initialised from ``rng``, an empty memory of
  ``memory_size`` slots (none when 0)."""
  model_rng, loss_rng, state_rng = jax.random.split(rng, 3)
  variables = model.init(model_rng, sample_images, train=False)
  params = variables["params"]
  embed_dim = jax.eval_shape(lambda v: model.apply(v, sample_images, train=False), variables).shape[-1]
  loss_params = combine.init_loss_params(loss_rng, losses_config, registry, embed_dim=embed_dim,
                                         num_classes_per_level=num_classes_per_level)
  trainable = {"model": params, "loss": loss_params}
  memory = xbm.xbm_init(memory_size, embed_dim, len(num_classes_per_level)) if memory_size else {}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}), loss_params=loss_params,
                    opt_state=tx.init(trainable), memory=memory, rng=state_rng)


def load_pretrained(state: TrainState, model_config, tx) -> TrainState:
  """``state`` with the backbone of ``model_config.pretrained_path`` and a fresh optimizer state."""
  variables = model_convert.load_pretrained(jax.device_get(state.variables()), model_config)
  state = state.replace(params=variables["params"], batch_stats=variables.get("batch_stats", state.batch_stats))
  return state.replace(opt_state=tx.init(state.trainable()))


def _global_norm(tree):
  leaves = jax.tree.leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)) if leaves else jnp.zeros(())


def _loss_and_terms(trainable, state: TrainState, batch, rng, *, model, losses_config, registry, memory_config,
                    steps_per_epoch, loss_context):
  """The weighted loss of ``trainable`` on ``batch``: ``(total, (terms, batch_stats, memory))``."""
  has_batch_stats = bool(state.batch_stats)
  variables = {"params": trainable["model"], **({"batch_stats": state.batch_stats} if has_batch_stats else {})}
  out = model.apply(variables, batch["images"], train=True, rngs={"dropout": rng},
                    mutable=["batch_stats"] if has_batch_stats else False)
  embeddings, new_vars = out if has_batch_stats else (out, {})
  memory, memory_kwargs = state.memory, {}
  if memory_config is not None:
    memory_inputs, memory = xbm.xbm_step(state.memory, embeddings, batch["labels"])
    memory_kwargs = dict(
        memory=memory_inputs, memory_factor=memory_config.factor,
        memory_factor_true_loss=memory_config.factor_true_loss,
        memory_active=xbm.xbm_active(state.step, steps_per_epoch=steps_per_epoch,
                                     activate=memory_config.activate_epoch))
  total, terms = combine.weighted_loss(
      trainable["loss"], batch_inputs(embeddings, batch["labels"]), losses_config, registry,
      rng=jax.random.fold_in(rng, 1), context=loss_context, **memory_kwargs)
  return total, (terms, new_vars.get("batch_stats", state.batch_stats), memory)


def train_step(state: TrainState, batch, *, model, losses_config, registry, tx, schedules, memory_config=None,
               steps_per_epoch: int = 1, loss_context=None):
  """One optimisation step on a global batch.

  Args:
    state: the train state.
    batch: ``{"images": [B, H, W, C], "labels": [B, L] int32, ...}`` (global arrays).
    model: the Linen module.
    losses_config: ``config.losses``.
    registry: the loss registry (``losses.LOSSES``).
    tx: the optax transformation over ``state.trainable()``.
    schedules: ``{group: schedule}`` learning rates, for logging.
    memory_config: ``config.xbm`` when the state holds a cross-batch memory: the detached batch is
      enqueued first, then each reference-set loss mixes its batch and memory values once the
      epoch (counted from 1) reaches ``activate_epoch`` (the reference trainer's rule).
    steps_per_epoch: to turn the step into an epoch for the memory's activation.
    loss_context: data-set constants for the losses (e.g. CSL's ``proxy_labels``).

  Returns:
    ``(new_state, metrics)``: scalars for the loss, each loss term, the L2 norms of the gradients,
    parameters and updates, and the learning rate of each group.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  loss_of = functools.partial(_loss_and_terms, state=state, batch=batch, rng=rng, model=model,
                              losses_config=losses_config, registry=registry, memory_config=memory_config,
                              steps_per_epoch=steps_per_epoch, loss_context=loss_context)
  trainable = state.trainable()
  (loss, (terms, batch_stats, memory)), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
  updates, opt_state = tx.update(grads, state.opt_state, trainable)
  trainable = optax.apply_updates(trainable, updates)
  metrics = {"loss": loss, **{f"loss/{k}": v for k, v in terms.items()},
             "l2_grads": _global_norm(grads), "l2_params": _global_norm(trainable["model"]),
             "l2_updates": _global_norm(updates),
             **{f"lr/{k}": s(state.step) for k, s in schedules.items()}}
  new_state = state.replace(step=state.step + 1, params=trainable["model"], loss_params=trainable["loss"],
                            batch_stats=batch_stats, opt_state=opt_state, memory=memory)
  return new_state, metrics


def term_gradient_norms(state: TrainState, batch, *, losses_config, registry, **loss_kwargs) -> dict[str, float]:
  """The L2 norm of the gradient of each loss term alone, for the message of a non-finite gradient:
  which term's gradient is NaN or inf. Each term is differentiated on its own (a NaN in one term's
  backward pass would reach the others' through their shared forward pass). ``loss_kwargs``: those of
  :func:`train_step` but ``tx`` and ``schedules``."""
  rng = jax.random.fold_in(state.rng, state.step)
  norms = {}
  for entry, *_ in combine.entries(losses_config, registry):
    alone = ml_collections.ConfigDict({entry: losses_config[entry]})
    loss_of = functools.partial(_loss_and_terms, state=state, batch=batch, rng=rng, losses_config=alone,
                                registry=registry, **loss_kwargs)
    grads = jax.jit(jax.grad(lambda t, f=loss_of: f(t)[0]))(state.trainable())
    norms[entry] = float(_global_norm(grads))
  return norms


def _write_config(config, workdir, start_step: int):
  """Writes ``config.yaml``; a resume with another config first keeps the run's previous one as
  ``config.until_step_<start_step>.yaml``."""
  path = os.path.join(workdir, "config.yaml")
  text = yaml.safe_dump(config.to_dict(), sort_keys=False)
  if start_step and os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      previous = f.read()
    if previous != text:
      keep, n = os.path.join(workdir, f"config.until_step_{start_step}.yaml"), 1
      while os.path.exists(keep):
        n += 1
        keep = os.path.join(workdir, f"config.until_step_{start_step}.{n}.yaml")
      os.replace(path, keep)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def _num_classes_per_level(source) -> tuple[int, ...]:
  labels = np.asarray(source.labels)
  return tuple(int(labels[:, i].max()) + 1 for i in range(labels.shape[1]))


def _loss_context(source) -> dict:
  """Data-set constants some losses take: ``proxy_labels`` ``[C, L]``, the labels of each finest class."""
  labels = np.asarray(source.labels)
  first = np.unique(labels[:, 0], return_index=True)[1]
  return {"proxy_labels": jnp.asarray(labels[first], jnp.int32)}


def _check_max_positives(entry, fn, hp, config, log):
  """Warns when a rank loss runs dense under jit; rejects a bound the sampler is known to exceed."""
  parameters = inspect.signature(fn).parameters
  if "max_positives" not in parameters:
    return
  bound, m = hp.get("max_positives"), config.input.samples_per_class
  if bound is None:
    log(f"warning: config.losses.{entry} has no max_positives: under jit it ranks every item of the "
        "batch (dense, [B, B, B] work). Set it to the most relevant items a query can have (e.g. "
        f"config.input.samples_per_class={m} for a binary loss in batch mode).")
    return
  level = hp.get("hierarchy_level", parameters["hierarchy_level"].default if "hierarchy_level" in parameters else 0)
  if level == 0 and config.input.sampler == "m_per_class" and int(bound) < m:
    raise ValueError(f"config.losses.{entry}.max_positives={bound} is below config.input.samples_per_class={m}: "
                     f"every query of a batch has {m} positives; raise max_positives to at least {m}")


def _check_run_config(config):
  """The top-level keys: each impossible value names its key (before any data is read)."""
  for key in ("total_steps", "num_epochs", "eval_every_steps", "eval_every_epochs", "checkpoint_every_steps",
              "checkpoint_every_epochs", "seed"):
    if not isinstance(config[key], int) or config[key] < 0:
      raise ValueError(f"config.{key}={config[key]!r} must be an integer >= 0")
  for key in ("log_every_steps", "keep_checkpoints"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"config.{key}={config[key]!r} must be an integer >= 1")
  minutes = _checkpoint_every_minutes(config)
  if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes >= 0:
    raise ValueError(f"config.checkpoint_every_minutes={minutes!r} must be a number of minutes >= 0 (0: none)")
  if not (config.checkpoint_every_steps or config.checkpoint_every_epochs or minutes):
    raise ValueError("config.checkpoint_every_steps=0 and config.checkpoint_every_epochs=0 (and no "
                     "config.checkpoint_every_minutes): the run would save only at its end, and an interruption "
                     "would lose every step; set one of them")
  x = config.xbm
  if x.size < -1:
    raise ValueError(f"config.xbm.size={x.size} must be >= 0 (0: no memory) or -1 (the size of the training split)")
  if x.size and x.activate_epoch < 1:
    raise ValueError(f"config.xbm.activate_epoch={x.activate_epoch} must be >= 1 (epochs count from 1)")
  if x.size and (x.factor < 0 or x.factor_true_loss < 0 or x.factor + x.factor_true_loss <= 0):
    raise ValueError(f"config.xbm.factor={x.factor} and factor_true_loss={x.factor_true_loss} must be >= 0, "
                     "not both 0")
  if not x.size:
    defaults = common.base_config().xbm
    changed = [k for k in ("activate_epoch", "factor", "factor_true_loss") if x[k] != defaults[k]]
    if changed:
      raise ValueError(f"config.xbm.{changed[0]} is set but config.xbm.size=0 (no memory): set config.xbm.size "
                       "(or -1 for the whole training split), or leave it at its default")
  if not config.evals:
    raise ValueError("config.evals is empty: give at least one evaluation (configs/common.eval_config)")
  complete = set(common.eval_config().keys())
  for name, ev in config.evals.items():
    keys = set(ev.keys()) if hasattr(ev, "keys") else set()
    if keys != complete:
      raise ValueError(f"config.evals.{name} has keys {sorted(keys)}, expected {sorted(complete)}: build it with "
                       "configs.common.eval_config(split, gallery_split, **settings)")
    if isinstance(ev.batch_size, bool) or not isinstance(ev.batch_size, int) or ev.batch_size < 1:
      raise ValueError(f"config.evals.{name}.batch_size={ev.batch_size!r} must be an integer >= 1")
  unknown = [n for n in config.overall_accuracy_over if n not in config.evals]
  if unknown:
    raise ValueError(f"config.overall_accuracy_over names {unknown}, which are not in config.evals "
                     f"({sorted(config.evals)})")


def _checkpoint_every_minutes(config) -> float:
  """``config.checkpoint_every_minutes``: 0 (none) for a config built before the key existed."""
  return config.checkpoint_every_minutes if "checkpoint_every_minutes" in config else 0.0


@dataclasses.dataclass
class Prepared:
  """Everything a run needs that is checked before the first expensive step (see :func:`prepare`)."""

  train_source: Any
  steps_per_epoch: int
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


def prepare(config: ml_collections.ConfigDict, workdir: str, *, log=reporting.log,
            allow_config_change: bool = False) -> Prepared:
  """Every check that needs no network, before any model is initialised or evaluated.

  In order: the values of the top-level keys, ``config.input``, the losses, the batch against the
  devices, on a resume the config against the run's (:mod:`suprank_jax.resume_rules`), the training
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

  checkpoint_dir = os.path.join(workdir, "checkpoints")
  resuming = checkpoint.has_checkpoints(checkpoint_dir)
  if resuming:
    _check_resume_config(config, workdir, checkpoint_dir, allow=allow_config_change, log=log)

  train_source = sources.get_source(config.input, config.input.train_split)
  _check_data_files(config, train_source, workdir, log)
  spe = pipeline.steps_per_epoch(config.input, train_source)
  total_steps = steps.to_steps(config.total_steps, config.num_epochs, spe, "config.total_steps", "config.num_epochs")
  if total_steps < 1:
    raise ValueError("the run has no step: set config.total_steps or config.num_epochs")
  eval_every = steps.to_steps(config.eval_every_steps, config.eval_every_epochs, spe, "config.eval_every_steps",
                              "config.eval_every_epochs")
  checkpoint_every = steps.to_steps(config.checkpoint_every_steps, config.checkpoint_every_epochs, spe,
                                    "config.checkpoint_every_steps", "config.checkpoint_every_epochs")
  if config.checkpoint_every_epochs and not checkpoint_every:
    raise ValueError(f"config.checkpoint_every_epochs={config.checkpoint_every_epochs!r} is less than one step "
                     f"({spe} steps per epoch)")
  memory_size = len(train_source) if config.xbm.size == -1 else int(config.xbm.size)
  # The first batch of this process: its images decode and the augmentation gives them one shape.
  pipeline.load_train_batch(config.input, train_source, 0, seed=config.seed, process_index=jax.process_index(),
                            process_count=jax.process_count())

  model = build_model(config.model)
  resuming = resuming or bool(config.resume)
  if not resuming:
    _check_pretrained(config.model, log)
  optim_config = config.optim.copy_and_resolve_references()
  frozen = models.frozen_parameter_regex(config.model)
  if frozen:
    with optim_config.unlocked():
      optim_config.groups = ((frozen, None),) + tuple(optim_config.groups)
  tx, schedules = optim.make_optimizer(optim_config, total_steps, steps_per_epoch=spe)
  checkpoint.check_writable(checkpoint_dir)

  evaluators = {name: evaluator_lib.Evaluator(name, eval_cfg, config.input, model=model, mesh=mesh, log=log)
                for name, eval_cfg in config.evals.items()}
  sample = pipeline.sample_images(config.input, train_source)
  return Prepared(train_source=train_source, steps_per_epoch=spe, total_steps=total_steps, eval_every_steps=eval_every,
                  checkpoint_every_steps=checkpoint_every, memory_size=memory_size, model=model, tx=tx,
                  schedules=schedules, mesh=mesh, evaluators=evaluators, sample_images=sample, resuming=resuming)


def _check_resume_config(config, workdir, checkpoint_dir, *, allow, log):
  """The config against the run's (its ``config.yaml``, else the newest checkpoint's record of it)."""
  where = os.path.join(workdir, "config.yaml")
  run_config = resume_rules.load_run_config(workdir)
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
    input_config = evaluator_lib.evaluation_input_config(config.input, ev)
    for split in filter(None, (ev.split, ev.gallery_split)):
      source = sources.get_source(input_config, split)
      if (source.name, source.index_files) not in {(s.name, s.index_files) for s in splits}:
        splits.append(source)
  sources.check_files_exist(splits, skip=bool(config.input.skip_corrupt_images), log=log,
                            report_path=os.path.join(workdir, "missing_files.txt") if jax.process_index() == 0
                            else None)


def _check_pretrained(model_config, log):
  """On a fresh start: the weights a ``pretrained`` model needs exist; a from-scratch ResNet with frozen
  batch norm is warned about (its statistics would stay at their initial values for the whole run)."""
  path = model_config.pretrained_path
  if model_config.pretrained and not path:
    raise ValueError(f"config.model.pretrained=True: this experiment starts from ImageNet weights (the original's "
                     f"'pretrained: True'), which are never downloaded here; give config.model.pretrained_path (a "
                     f"torchvision/timm {model_config.name} state dict: .safetensors, .npz or .pth), or set "
                     "config.model.pretrained=False to train from scratch")
  if path and not os.path.isfile(os.path.expanduser(path)):
    raise FileNotFoundError(f"config.model.pretrained_path={path!r}: no such file")
  if not path and models.frozen_parameter_regex(model_config):
    log("warning: config.model.freeze_batch_norm=True without pretrained weights: the batch-norm statistics and "
        "affine parameters stay at their initial values (mean 0, variance 1) for the whole run. The original "
        "freezes batch norm only on ImageNet-initialised backbones; set config.model.freeze_batch_norm=False to "
        "train from scratch, or give config.model.pretrained_path.")


class RunInterrupted(cli.Exit):
  """A signal stopped the run at a step boundary, after its state was saved (exit status 128 + signal).

  Attributes:
    signum: the signal.
    step: the steps done; the checkpoints hold this step.
  """

  def __init__(self, signum: int, step: int, last_saved, directory: str):
    self.signum, self.step = signum, step
    if last_saved == step:
      what = f"the checkpoints in {directory} hold step {step}; run the same command to resume"
    elif last_saved is None:
      what = "nothing was trained yet, nothing to save"
    else:
      what = f"nothing new to save, the checkpoints in {directory} hold step {last_saved}"
    super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}: {what}", 128 + signum)


class _StopRequests:
  """SIGTERM (pre-emption on a TPU pod or a SLURM cluster) and SIGINT: the run finishes its step, saves
  and ends (:class:`RunInterrupted`); a second signal ends the process at once, without saving.

  One process: Python handlers set a flag, read at each step boundary. Several processes: every process
  must save at the same step, so SIGTERM is left to JAX's preemption service, which makes them agree on
  one (``multihost_utils.reached_preemption_sync_point``, the mechanism orbax and t5x use); SIGINT keeps
  Python's default there.
  """

  def __init__(self):
    self.signum = None
    self._count = 0
    self._previous = {}
    self._multi = jax.process_count() > 1
    self._service = True

  def __enter__(self):
    if not self._multi and threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def _handle(self, signum, frame):
    del frame
    self._count += 1
    if self._count == 1:
      self.signum = signum
      return
    # Only async-signal-safe calls here: the main thread may be in the middle of a print.
    os.write(2, f"\nerror: a second signal ({signal.Signals(signum).name}): exiting at once, without "
                "saving\n".encode())
    os._exit(128 + signum)  # pylint: disable=protected-access

  def requested(self, step: int) -> bool:
    """Whether to stop before ``step`` (every process of a run must call this at every step)."""
    if self._multi and self._service:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      try:
        if multihost_utils.reached_preemption_sync_point(step):
          self.signum = signal.SIGTERM
      except RuntimeError:  # jax_enable_preemption_service is off: SIGTERM ends the processes at once
        self._service = False
    return self.signum is not None


class _SaveTimer:
  """``config.checkpoint_every_minutes``: whether that much time passed since the last save. Read at
  log steps; with several processes, process 0's clock decides for all."""

  def __init__(self, minutes: float):
    self.seconds = 60.0 * float(minutes)
    self.last = time.monotonic()

  def saved(self):
    self.last = time.monotonic()

  def due(self) -> bool:
    if not self.seconds:
      return False
    due = time.monotonic() - self.last >= self.seconds
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      due = bool(multihost_utils.broadcast_one_to_all(np.asarray(due)))
    return due


def _first_nonfinite(host_metrics) -> int | None:
  """The first step (index) whose loss is non-finite or whose gradient is NaN (the update of that step
  made the parameters non-finite)."""
  for i, m in enumerate(host_metrics):
    if not np.isfinite(m["loss"]) or np.isnan(m["l2_grads"]):
      return i
  return None


def _nonfinite_message(step: int, metrics, *, run_start: int, restored: bool, last_saved, directory: str,
                       gradient_norms=None) -> str:
  """What is known about a non-finite loss or gradient at ``step``: the terms at fault, whether the
  learning rate can be the cause, and the last good checkpoint."""
  terms = {k[len("loss/"):]: float(v) for k, v in metrics.items() if k.startswith("loss/")}
  if gradient_norms:
    suspects = [k for k, v in gradient_norms.items() if not np.isfinite(v)]
  else:
    suspects = [k for k, v in terms.items() if not np.isfinite(v)]
  finite = [k for k in terms if k not in suspects]
  if not np.isfinite(metrics["loss"]):
    what = f"non-finite loss at step {step}"
    if suspects and not gradient_norms:
      what += ": " + ", ".join(f"loss/{k}={terms[k]}" for k in suspects)
  else:
    what = f"non-finite gradient at step {step} (the loss was finite, {float(metrics['loss']):.4g})"
  if gradient_norms:
    what += "; the gradient of " + ", ".join(f"loss/{k}" for k in suspects) + " is non-finite"
  if suspects and finite:
    what += f" (finite: {', '.join(f'loss/{k}' for k in finite)})"
  keys = ", ".join(f"config.losses.{k}" for k in suspects) or "the losses"
  if step == run_start:
    cause = (f"It is the first step of this run, from a {'restored and verified' if restored else 'fresh'} state "
             f"with finite parameters, so the learning rate is not the cause: check the hyper-parameters of {keys} "
             "(e.g. a zero temperature) and the data")
  else:
    cause = (f"The loss and its gradient were finite up to step {step - 1}: check the hyper-parameters of {keys}, "
             f"the data of step {step}, or lower config.optim.learning_rate")
  saved = (f"Nothing non-finite was saved: the checkpoints in {directory} hold step {last_saved}, the last good "
           "state (re-running resumes from it)" if last_saved is not None else "No checkpoint was saved")
  return f"{what}. {cause}. {saved}."


def _jsonable(tree):
  return json.loads(json.dumps(tree, default=float)) if tree is not None else None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, log=reporting.log,
                       allow_config_change: bool = False):
  """Trains ``config``'s model, evaluating before, during and after training.

  Every check that needs no network runs first (:func:`prepare`). The run holds the workdir for its
  whole length (:mod:`suprank_jax.workdir_lock`), resumes from the newest checkpoint that verifies
  (:mod:`suprank_jax.checkpoint`), never saves a non-finite state, and on SIGTERM/SIGINT saves at the
  next step boundary and stops (:class:`RunInterrupted`).

  Args:
    config: an experiment config (``get_config()`` of a ``configs/*.py`` file).
    workdir: output folder: checkpoints, ``config.yaml``, ``metrics.jsonl``, TensorBoard files and
      ``summary.json``. A run finds its own checkpoints here and resumes from the latest.
    log: progress printer.
    allow_config_change: resume from the workdir's checkpoints even when the config differs from the
      run's in keys a resume may not change (``resume_rules.RESUME_MAY_CHANGE``).

  Returns:
    ``(state, summary)`` where ``summary = {"initial": metrics or None, "final": metrics, ...}``.

  Raises:
    RunInterrupted: a signal stopped the run (its state saved).
    FloatingPointError: a non-finite loss, gradient or state, naming the step, the loss terms at fault
      and the last good checkpoint (nothing non-finite is saved).
    workdir_lock.WorkdirBusyError: another run holds the workdir.
    checkpoint.CheckpointWriteError: a checkpoint could not be written.
    ValueError, FileNotFoundError: a config, data or checkpoint problem, naming the key or file.
  """
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock.WorkdirLock(workdir, process_index=jax.process_index(), log=log):
    return _train_and_evaluate(config, workdir, log=log, allow_config_change=allow_config_change)


def _train_and_evaluate(config, workdir, *, log, allow_config_change):
  run = prepare(config, workdir, log=log, allow_config_change=allow_config_change)
  if run.steps_per_epoch and (config.num_epochs or config.eval_every_epochs or config.checkpoint_every_epochs):
    log(f"{run.steps_per_epoch} steps per epoch: {run.total_steps} steps in all")
  mesh, model, tx = run.mesh, run.model, run.tx
  train_source = run.train_source
  make_state = functools.partial(
      create_state, model=model, tx=tx, sample_images=run.sample_images, losses_config=config.losses,
      registry=losses.LOSSES, num_classes_per_level=_num_classes_per_level(train_source),
      memory_size=run.memory_size)
  replicated = parallel.replicated(mesh)
  state = jax.jit(make_state, out_shardings=replicated)(jax.random.PRNGKey(config.seed))
  abstract = checkpoint.abstract_like(state)
  ckpt = checkpoint.CheckpointManager(os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints)
  writer = batches = None
  try:
    # Resume order: this workdir's newest verified checkpoint, then config.resume, then a fresh start
    # (with the pretrained backbone of config.model.pretrained_path when set).
    restored_from, initial, last_saved = None, None, None
    restored = ckpt.restore_latest(abstract, log=log)
    if restored is not None:
      restored_from, (start_step, state, meta) = ckpt, restored
      initial, last_saved = meta.get("initial"), start_step
      log(f"resumed from step {start_step}")
    elif config.resume:
      restored_from = checkpoint.CheckpointManager(config.resume, create=False)
      restored = restored_from.restore_latest(abstract, log=log, move_damaged=False)
      if restored is None:
        raise ValueError(f"config.resume={config.resume!r} holds no checkpoint")
      start_step, state, _ = restored
      log(f"resumed from step {start_step} of config.resume={config.resume}")
    elif config.model.pretrained_path:
      state = jax.device_put(load_pretrained(state, config.model, tx), replicated)
      log(f"loaded pretrained weights from {config.model.pretrained_path}")
    start_step = int(state.step)

    if jax.process_index() == 0:
      _write_config(config, workdir, start_step)
    writer = reporting.MetricWriter(workdir, tensorboard=config.tensorboard, start_step=start_step)

    def evaluate(step):
      results = {}
      for name, ev in run.evaluators.items():
        t0 = time.perf_counter()
        metrics = ev.run(state)
        if len(ev.config.metrics.hierarchy_levels) > 1:  # DyML's overall accuracy within one test set
          metrics.update({f"overall_{k}": v for k, v in eval_metrics.overall_accuracy(
            metrics, protocol=ev.config.metrics.protocol).items()})
        results[name] = metrics
        report(step, name, metrics, time.perf_counter() - t0)
        pictures.write_evaluation_picture(workdir, step, name, ev, state.variables(), tensorboard=config.tensorboard)
      if config.overall_accuracy_over:
        results["overall"] = eval_metrics.inter_set_overall_accuracy(
            {name: results[name] for name in config.overall_accuracy_over})
        report(step, "overall", results["overall"], 0.0)
      return results

    def report(step, name, metrics, seconds):
      writer.write_scalars(step, metrics, split=name)
      log(f"[eval {name} @ step {step}] " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                                       if isinstance(v, float)) + f" ({seconds:.1f}s)")

    loss_kwargs = dict(model=model, losses_config=config.losses, registry=losses.LOSSES,
                       memory_config=config.xbm if run.memory_size else None,
                       steps_per_epoch=run.steps_per_epoch, loss_context=_loss_context(train_source))
    step_fn = jax.jit(functools.partial(train_step, tx=tx, schedules=run.schedules, **loss_kwargs),
                      in_shardings=(replicated, parallel.data_sharding(mesh)), out_shardings=(replicated, replicated),
                      donate_argnums=(0,))
    total_steps = run.total_steps

    def load_batch(step):
      return parallel.global_batch(pipeline.load_train_batch(
          config.input, train_source, step, seed=config.seed, process_index=jax.process_index(),
          process_count=jax.process_count()), mesh)

    def diagnose(step):
      """Each term's gradient norm at the run's first step (its state rebuilt), when it can be had."""
      if step != start_step:
        return None
      try:
        if restored_from is not None:
          start = restored_from.restore_latest(abstract, log=lambda *_: None, move_damaged=False)[1]
        else:
          start = jax.jit(make_state, out_shardings=replicated)(jax.random.PRNGKey(config.seed))
          if config.model.pretrained_path:
            start = jax.device_put(load_pretrained(start, config.model, tx), replicated)
        return term_gradient_norms(start, load_batch(step), **loss_kwargs)
      except Exception:  # noqa: BLE001 - a diagnosis that fails must not hide the error it explains.
        return None

    pending, window_start = [], start_step

    def check_window():
      """The metrics of the steps since the last log are finite (else a FloatingPointError)."""
      host = jax.device_get(pending)
      bad = _first_nonfinite(host)
      if bad is not None:
        step, metrics = window_start + bad, host[bad]
        raise FloatingPointError(_nonfinite_message(
            step, metrics, run_start=start_step, restored=restored_from is not None, last_saved=last_saved,
            directory=ckpt.directory, gradient_norms=diagnose(step)))
      return host

    timer = _SaveTimer(_checkpoint_every_minutes(config))
    initial_record = None

    def save(done):
      nonlocal last_saved
      try:
        ckpt.save(done, state, {"step": done, "config": config.to_json_best_effort(), "initial": initial_record})
      except checkpoint.NonFiniteStateError as e:
        raise FloatingPointError(
            f"{e}. " + (f"The checkpoints hold step {last_saved}, the last good state (re-running resumes from it)"
                        if last_saved is not None else "No checkpoint was saved")) from e
      last_saved = done
      timer.saved()

    with _StopRequests() as stops:
      summary = {"initial": evaluate(0) if start_step == 0 else initial, "start_step": start_step}
      initial_record = _jsonable(summary["initial"])
      batches = pipeline.make_train_iterator(
          config.input, train_source, seed=config.seed, start_step=start_step, total_steps=total_steps,
          process_index=jax.process_index(), process_count=jax.process_count())
      progress = reporting.Progress(total_steps, start_step)
      t_start = time.perf_counter()
      for step in itertools.count(start_step):
        if stops.requested(step):
          if step > start_step and last_saved != step:
            check_window()
            save(step)
          ckpt.wait_until_finished()
          raise RunInterrupted(stops.signum, step, last_saved, ckpt.directory)
        if step == total_steps:
          break
        batch = parallel.global_batch(next(batches), mesh)
        state, metrics = step_fn(state, batch)
        pending.append(metrics)
        done = step + 1
        log_now = done % config.log_every_steps == 0 or done == total_steps
        save_now = done == total_steps or bool(run.checkpoint_every_steps and done % run.checkpoint_every_steps == 0)
        save_now = save_now or (log_now and timer.due())
        if log_now or save_now:
          host = check_window()
        if log_now:
          mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
          mean.update(progress.update(done))
          writer.write_scalars(done, mean)
          log(f"step {done}/{total_steps}  loss {mean['loss']:.4g}  "
              + (f"{mean['steps_per_sec']:.1f} steps/s  ETA {reporting.format_duration(mean['eta_sec'])}"
                 if "steps_per_sec" in mean else "(compiling)"))
          pending, window_start = [], done
        if save_now:
          save(done)
        if run.eval_every_steps and done % run.eval_every_steps == 0 and done != total_steps:
          evaluate(done)
      summary["train_seconds"] = time.perf_counter() - t_start
      summary["final"] = evaluate(int(state.step))
    ckpt.close()  # the final save must be on disk before the run says it is done
  except BaseException as error:
    if not isinstance(error, checkpoint.CheckpointWriteError):
      try:
        ckpt.close()  # the good saves in flight reach the disk
      except checkpoint.CheckpointWriteError as e:
        log(f"warning: {e}")
    raise
  finally:
    if writer is not None:
      writer.close()
    if batches is not None and hasattr(batches, "close"):
      batches.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=1, default=float)
  return state, summary


def summary_table(summary, columns=None) -> str:
  """The untrained/trained table printed at the end of a run."""
  rows = {}
  for when, label in (("initial", "untrained"), ("final", "trained")):
    for name, metrics in (summary.get(when) or {}).items():
      rows[f"{label} ({name})"] = metrics
  columns = columns or evaluator_lib.HEADLINE_METRICS
  return reporting.format_table(rows, columns)


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (e.g. suprank_jax/configs/digits.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Output folder: checkpoints, metrics, TensorBoard, config.")
flags.mark_flags_as_required(["config", "workdir"])
flags.DEFINE_bool("distributed", False, "Join a multi-process JAX cluster: jax.distributed.initialize() "
                  "(auto-detected on Cloud TPU pods, SLURM and Open MPI; elsewhere give the three flags below).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (implies --distributed).")
flags.DEFINE_integer("num_processes", None, "Number of processes of the run (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1 (with --coordinator_address).")
flags.DEFINE_bool("allow_config_change", False, "Resume from the workdir's checkpoints even where the config differs "
                  "from the run's config.yaml in keys a resume may not change (suprank_jax/resume_rules.py lists "
                  "those it may: run length, logging, checkpointing, evaluations, data location).")


def _init_distributed():
  """Starts the multi-process runtime when the flags ask for it (before any JAX computation)."""
  if not (FLAGS.distributed or FLAGS.coordinator_address):
    return
  explicit = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if any(v is not None for v in explicit) and any(v is None for v in explicit):
    raise ValueError("give --coordinator_address, --num_processes and --process_id together "
                     "(or only --distributed where the cluster is auto-detected)")
  jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
                             process_id=FLAGS.process_id)


def _check_workdir(workdir: str):
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test.{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise OSError(f"--workdir={workdir!r} is not writable ({e.strerror}); choose a folder you can write to") from e


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  with cli.user_errors():
    _init_distributed()
    _check_workdir(FLAGS.workdir)
    _, summary = train_and_evaluate(FLAGS.config, FLAGS.workdir, allow_config_change=FLAGS.allow_config_change)
  reporting.log("\n" + summary_table(summary))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
