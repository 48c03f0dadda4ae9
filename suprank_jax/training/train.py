"""The run: ``train_and_evaluate(config, workdir)``.

In order: every check (``preflight.prepare``); the start (:func:`start_run`: this workdir's newest
verified checkpoint, else ``config.resume``, else a fresh state with the pretrained backbone); the
evaluation before training; the loop (:func:`train_loop`) of the jitted step (``train_state.train_step``)
over a data-parallel mesh (the batch sharded on ``'data'``, the state replicated, so the losses see the
whole global batch); the final evaluation. When to log, save and evaluate, the non-finite check and the
signal stop are the policies of ``policies.py``. No non-finite state is ever saved. The command line is
``training/main.py`` (``python -m suprank_jax.train``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from suprank_jax import losses
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import pictures
from suprank_jax.input_pipeline import pipeline
from suprank_jax.runtime import parallel, reporting
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import checkpoint, policies, workdir_lock
from suprank_jax.training.policies import RunInterrupted
from suprank_jax.training.preflight import Prepared, checkpoint_every_minutes, prepare
from suprank_jax.training.train_state import TrainState, create_state, load_pretrained, term_gradient_norms, train_step

__all__ = [
  "TrainState",
  "train_step",
  "train_and_evaluate",
  "create_state",
  "prepare",
  "Prepared",
  "summary_table",
  "RunInterrupted",
  "Start",
  "start_run",
  "Evaluations",
  "Saver",
  "train_loop",
]


def _num_classes_per_level(source) -> tuple[int, ...]:
  labels = np.asarray(source.labels)
  return tuple(int(labels[:, i].max()) + 1 for i in range(labels.shape[1]))


def _loss_context(source) -> dict:
  """Data-set constants some losses take: ``proxy_labels`` ``[C, L]``, the labels of each finest class."""
  labels = np.asarray(source.labels)
  first = np.unique(labels[:, 0], return_index=True)[1]
  return {"proxy_labels": jnp.asarray(labels[first], jnp.int32)}


def _jsonable(tree):
  return json.loads(json.dumps(tree, default=float)) if tree is not None else None


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, *, log=reporting.log, allow_config_change: bool = False
):
  """Trains ``config``'s model, evaluating before (``config.eval_at_start``), during and after training.

  Every check that needs no network runs first (:func:`prepare`). The run holds the workdir for its
  whole length (:mod:`suprank_jax.training.workdir_lock`), resumes from the newest checkpoint that verifies
  (:mod:`suprank_jax.training.checkpoint`), never saves a non-finite state, and on SIGTERM/SIGINT saves at the
  next step boundary and stops (:class:`RunInterrupted`).

  Args:
    config: an experiment config (``get_config()`` of a ``configs/*.py`` file).
    workdir: output folder: checkpoints, ``config.yaml``, ``metrics.jsonl``, TensorBoard files and
      ``summary.json``. A run finds its own checkpoints here and resumes from the latest.
    log: progress printer.
    allow_config_change: resume from the workdir's checkpoints even when the config differs from the
      run's in keys a resume may not change (``resume_rules.RESUME_MAY_CHANGE``).

  Returns:
    ``(state, summary)`` where ``summary = {"initial": metrics or None, "final": metrics, ...}`` (``initial``
    is None without an evaluation before training: ``config.eval_at_start=False``).

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


@dataclasses.dataclass
class Start:
  """Where a run starts (:func:`start_run`).

  Attributes:
    state: the first state.
    step: its step.
    restored_from: the checkpoints it was restored from (this workdir's or ``config.resume``'s), or
      None for a fresh start.
    initial: the evaluation before training that the workdir's checkpoint recorded, or None.
    last_saved: the step this workdir's checkpoints hold, or None.
  """

  state: TrainState
  step: int
  restored_from: checkpoint.CheckpointManager | None
  initial: dict | None = None
  last_saved: int | None = None


def start_run(config, ckpt, fresh: TrainState, abstract, *, pretrained, log) -> Start:
  """The run's first state, in the one resume order: this workdir's newest verified checkpoint, then
  ``config.resume`` (a run's checkpoint folder), then ``fresh`` (given to ``pretrained``, which loads the
  backbone of ``config.model.pretrained_path`` when set). ``abstract``: ``checkpoint.abstract_like(fresh)``,
  the shapes and shardings a restored state takes.

  Raises:
    ValueError: ``config.resume`` holds no checkpoint.
  """
  restored = ckpt.restore_latest(abstract, log=log)
  if restored is not None:
    step, state, meta = restored
    log(f"resumed from step {step}")
    return Start(state, step, ckpt, initial=meta.get("initial"), last_saved=step)
  if config.resume:
    source = checkpoint.CheckpointManager(config.resume, create=False)
    restored = source.restore_latest(abstract, log=log, move_damaged=False)
    if restored is None:
      raise ValueError(f"config.resume={config.resume!r} holds no checkpoint")
    step, state, _ = restored
    log(f"resumed from step {step} of config.resume={config.resume}")
    return Start(state, step, source)
  if config.model.pretrained_path:
    fresh = pretrained(fresh)
    log(f"loaded pretrained weights from {config.model.pretrained_path}")
  return Start(fresh, int(fresh.step), None)


class Evaluations:
  """The run's evaluations at a step: each set's metrics (with DyML's overall accuracies), logged,
  written and pictured."""

  def __init__(self, config, run: Prepared, workdir: str, writer, log):
    self.config, self.run, self.workdir, self.writer, self.log = config, run, workdir, writer, log

  def __call__(self, step: int, state: TrainState) -> dict:
    variables = state.variables()

    def report(name, metrics, seconds):
      self._report(step, name, metrics, seconds)
      if name in self.run.evaluators:
        pictures.write_evaluation_picture(
          self.workdir, step, name, self.run.evaluators[name], variables, tensorboard=self.config.tensorboard
        )

    return evaluator_lib.run_all(
      self.run.evaluators, variables, overall_over=self.config.overall_accuracy_over, report=report
    )

  def missing(self, step: int) -> bool:
    """Whether the evaluation due at ``step`` has no record: the run was stopped while it ran, after the
    checkpoint of ``step`` was saved. Process 0's answer for all (a collective call)."""
    due = policies.evaluation_due(step, self.run.total_steps, self.run)
    return policies.broadcast_flag(due and not all(self.writer.has(step, name) for name in self.run.evaluators))

  def _report(self, step, name, metrics, seconds):
    self.writer.write_scalars(step, metrics, split=name)
    self.log(
      f"[eval {name} @ step {step}] "
      + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
      + f" ({seconds:.1f}s)"
    )


class Saver:
  """Saves verified checkpoints and remembers the last good one (for the messages of a failed run)."""

  def __init__(self, ckpt, config, start: Start):
    self.ckpt, self.config, self.last_saved = ckpt, config, start.last_saved
    self.timer = policies.SaveTimer(checkpoint_every_minutes(config))
    self.initial = None  # the evaluation before training, recorded with every save

  def save(self, done: int, state: TrainState):
    try:
      self.ckpt.save(done, state, {"step": done, "config": self.config.to_json_best_effort(), "initial": self.initial})
    except checkpoint.NonFiniteStateError as e:
      raise FloatingPointError(
        f"{e}. "
        + (
          f"The checkpoints hold step {self.last_saved}, the last good state (re-running resumes from it)"
          if self.last_saved is not None
          else "No checkpoint was saved"
        )
      ) from e
    self.last_saved = done
    self.timer.saved()


def train_loop(
  state,
  start: Start,
  *,
  run: Prepared,
  config,
  step_fn,
  batches,
  saver: Saver,
  evaluate,
  writer,
  stops: policies.StopRequests,
  describe_nonfinite,
  log,
):
  """Steps from ``start.step`` to ``run.total_steps``: logs, saves and evaluates when the policies say,
  checks every step's metrics before a log or save, and at a stop request saves and raises
  :class:`policies.RunInterrupted`. Returns the last state."""
  total_steps = run.total_steps
  window, progress = policies.MetricWindow(start.step), reporting.Progress(total_steps, start.step)
  for step in itertools.count(start.step):
    if stops.requested(step):
      if step > start.step and saver.last_saved != step:
        window.check(describe_nonfinite)
        saver.save(step, state)
      saver.ckpt.wait_until_finished()
      raise policies.RunInterrupted(stops.signum, step, saver.last_saved, saver.ckpt.directory)
    if step == total_steps:
      return state
    state, metrics = step_fn(
      state, parallel.global_batch(next(batches), run.mesh, normalization=config.input.normalization)
    )
    window.add(metrics)
    done = step + 1
    log_now = policies.log_due(done, total_steps, config.log_every_steps)
    save_now = policies.save_due(done, total_steps, run, log_now=log_now, timer=saver.timer)
    if log_now or save_now:
      host = window.check(describe_nonfinite)
    if log_now:
      mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
      mean.update(progress.update(done))
      writer.write_scalars(done, mean)
      log(
        f"step {done}/{total_steps}  loss {mean['loss']:.4g}  "
        + (
          f"{mean['steps_per_sec']:.1f} steps/s  ETA {reporting.format_duration(mean['eta_sec'])}"
          if "steps_per_sec" in mean
          else "(compiling)"
        )
      )
      window.restart(done)
    if save_now:
      saver.save(done, state)
    if policies.evaluation_due(done, total_steps, run):
      evaluate(done, state)
  return state


@dataclasses.dataclass
class _Programs:
  """The run's compiled functions: a fresh state, the pretrained backbone put into a state, the step."""

  fresh_state: Callable[[], TrainState]
  pretrained: Callable[[TrainState], TrainState]
  step_fn: Callable
  loss_kwargs: dict


def _programs(config, run: Prepared) -> _Programs:
  replicated = parallel.replicated(run.mesh)
  make_state = jax.jit(
    functools.partial(
      create_state,
      model=run.model,
      tx=run.tx,
      sample_images=run.sample_images,
      losses_config=config.losses,
      registry=losses.LOSSES,
      num_classes_per_level=_num_classes_per_level(run.train_source),
      memory_size=run.memory_size,
    ),
    out_shardings=replicated,
  )
  loss_kwargs = dict(
    model=run.model,
    memory_config=config.xbm if run.memory_size else None,
    steps_per_epoch=run.epochs,
    loss_context=_loss_context(run.train_source),
  )
  step = functools.partial(
    train_step,
    loss_fn=losses.make_loss_fn(config.losses, losses.LOSSES),
    tx=run.tx,
    schedules=run.schedules,
    **loss_kwargs,
  )
  return _Programs(
    # The step donates the state it is given: each call makes a new first state.
    fresh_state=lambda: make_state(jax.random.PRNGKey(config.seed)),
    pretrained=lambda state: jax.device_put(load_pretrained(state, config.model, run.tx), replicated),
    step_fn=jax.jit(
      step,
      in_shardings=(replicated, parallel.data_sharding(run.mesh)),
      out_shardings=(replicated, replicated),
      donate_argnums=(0,),
    ),
    loss_kwargs=loss_kwargs,
  )


def _train_and_evaluate(config, workdir, *, log, allow_config_change):
  run = prepare(config, workdir, log=log, allow_config_change=allow_config_change)
  if config.num_epochs or config.eval_every_epochs or config.checkpoint_every_epochs or run.epochs.varies:
    log(f"{run.epochs.describe(run.total_steps)}: {run.total_steps} steps in all")
  programs = _programs(config, run)
  ckpt = checkpoint.CheckpointManager(RunDir(workdir).checkpoints, max_to_keep=config.keep_checkpoints)
  writer = None
  try:
    fresh = programs.fresh_state()
    abstract = checkpoint.abstract_like(fresh)
    start = start_run(config, ckpt, fresh, abstract, pretrained=programs.pretrained, log=log)
    if jax.process_index() == 0:
      RunDir(workdir).write_config(config, start_step=start.step)
    writer = reporting.MetricWriter(workdir, tensorboard=config.tensorboard, start_step=start.step)
    saver = Saver(ckpt, config, start)

    def describe_nonfinite(step, metrics):
      first = step == start.step
      norms = _first_step_gradient_norms(config, run, start, abstract, programs) if first else None
      return policies.nonfinite_message(
        step,
        metrics,
        run_start=start.step,
        restored=start.restored_from is not None,
        last_saved=saver.last_saved,
        directory=ckpt.directory,
        gradient_norms=norms,
      )

    state, summary = _evaluate_and_train(
      config,
      run,
      start,
      programs,
      saver,
      Evaluations(config, run, workdir, writer, log),
      writer,
      describe_nonfinite,
      log,
    )
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
  if jax.process_index() == 0:
    with open(RunDir(workdir).summary, "w") as f:
      json.dump(summary, f, indent=1, default=float)
  return state, summary


def _evaluate_and_train(config, run, start, programs, saver, evaluate, writer, describe_nonfinite, log):
  """The evaluation before training (or the one a stopped run left unrecorded), the loop under the stop
  requests, the final evaluation: ``(state, summary)``."""
  with policies.StopRequests() as stops:
    # config.eval_at_start=False: no evaluation before training (summary["initial"] is None).
    initial = evaluate(0, start.state) if start.step == 0 and config.eval_at_start else start.initial
    summary = {"initial": initial, "start_step": start.step}
    saver.initial = _jsonable(initial)
    if start.step > 0 and evaluate.missing(start.step):
      log(f"the evaluation at step {start.step} has no record (the run stopped during it): running it again")
      evaluate(start.step, start.state)
    # uint8 images: a quarter of the host work and host-to-device bytes; normalised on the devices.
    batches = pipeline.make_train_iterator(
      config.input,
      run.train_source,
      seed=config.seed,
      start_step=start.step,
      total_steps=run.total_steps,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      uint8_images=True,
      epochs=run.epochs,
    )
    try:
      t_start = time.perf_counter()
      state = train_loop(
        start.state,
        start,
        run=run,
        config=config,
        step_fn=programs.step_fn,
        batches=batches,
        saver=saver,
        evaluate=evaluate,
        writer=writer,
        stops=stops,
        describe_nonfinite=describe_nonfinite,
        log=log,
      )
      summary["train_seconds"] = time.perf_counter() - t_start
    finally:
      if hasattr(batches, "close"):
        batches.close()
    summary["final"] = evaluate(int(state.step), state)
  return state, summary


def _first_step_gradient_norms(config, run, start: Start, abstract, programs: _Programs):
  """Each loss term's gradient norm at the run's first step, its state rebuilt (the message of a
  non-finite first step), or None when it cannot be had."""
  try:
    if start.restored_from is not None:
      state = start.restored_from.restore_latest(abstract, log=lambda *_: None, move_damaged=False)[1]
    else:
      state = programs.fresh_state()
      state = programs.pretrained(state) if config.model.pretrained_path else state
    batch = parallel.global_batch(
      pipeline.load_train_batch(
        config.input,
        run.train_source,
        start.step,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        uint8_images=True,
      ),
      run.mesh,
      normalization=config.input.normalization,
    )
    return term_gradient_norms(
      state, batch, losses_config=config.losses, registry=losses.LOSSES, **programs.loss_kwargs
    )
  except Exception:
    return None


def summary_table(summary, columns=None) -> str:
  """The untrained/trained table printed at the end of a run."""
  rows = {}
  for when, label in (("initial", "untrained"), ("final", "trained")):
    for name, metrics in (summary.get(when) or {}).items():
      rows[f"{label} ({name})"] = metrics
  columns = columns or evaluator_lib.headline_columns(rows)
  return reporting.format_table(rows, columns)
