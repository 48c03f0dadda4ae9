"""Training and evaluation loop: ``train_and_evaluate(config, workdir)``.

Size: the loop with its evaluations, checkpoints, logging and clean stops (signals, non-finite losses,
write failures) in one place; the state and step (``train_state.py``), the checks (``preflight.py``)
and the command line (``main.py``) already live apart.

The run: every check first (``preflight.prepare``), then the state (``train_state.create_state``) or
its newest verified checkpoint, the evaluations before, during and after training, and the jitted
step (``train_state.train_step``) over a data-parallel mesh: the batch is sharded on ``'data'``, the
state is replicated, and the losses see the whole global batch. Signals end the run at a step
boundary after a save; no non-finite state is ever saved. The command line is ``suprank_jax/main.py``
(``python -m suprank_jax.train`` runs it).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import yaml

from suprank_jax import checkpoint, cli, losses, parallel, reporting, workdir_lock
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import metrics as eval_metrics
from suprank_jax.evaluation import pictures
from suprank_jax.input_pipeline import pipeline
from suprank_jax.preflight import Prepared, checkpoint_every_minutes, prepare
from suprank_jax.train_state import TrainState, create_state, load_pretrained, term_gradient_norms, train_step

__all__ = ["TrainState", "train_step", "train_and_evaluate", "create_state", "prepare", "Prepared", "summary_table",
           "RunInterrupted"]


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
  """Trains ``config``'s model, evaluating before (``config.eval_at_start``), during and after training.

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


def _train_and_evaluate(config, workdir, *, log, allow_config_change):
  run = prepare(config, workdir, log=log, allow_config_change=allow_config_change)
  if config.num_epochs or config.eval_every_epochs or config.checkpoint_every_epochs or run.epochs.varies:
    log(f"{run.epochs.describe(run.total_steps)}: {run.total_steps} steps in all")
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

    def unfinished_evaluation(step) -> bool:
      """Whether the evaluation due at ``step`` has no record: the run was stopped while it ran, after
      the checkpoint of ``step`` was saved. Every process gets process 0's answer (it is collective)."""
      due = 0 < step < total_steps and run.evaluation_due(step)
      missing = due and not all(writer.has(step, name) for name in run.evaluators)
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        missing = bool(multihost_utils.broadcast_one_to_all(np.int32(missing)))
      return missing

    def report(step, name, metrics, seconds):
      writer.write_scalars(step, metrics, split=name)
      log(f"[eval {name} @ step {step}] " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                                       if isinstance(v, float)) + f" ({seconds:.1f}s)")

    loss_kwargs = dict(model=model, memory_config=config.xbm if run.memory_size else None,
                       steps_per_epoch=run.epochs, loss_context=_loss_context(train_source))
    loss_fn = losses.make_loss_fn(config.losses, losses.LOSSES)
    step_fn = jax.jit(functools.partial(train_step, loss_fn=loss_fn, tx=tx, schedules=run.schedules, **loss_kwargs),
                      in_shardings=(replicated, parallel.data_sharding(mesh)), out_shardings=(replicated, replicated),
                      donate_argnums=(0,))
    total_steps = run.total_steps

    def load_batch(step):
      return parallel.global_batch(pipeline.load_train_batch(
          config.input, train_source, step, seed=config.seed, process_index=jax.process_index(),
          process_count=jax.process_count(), uint8_images=True), mesh, normalization=config.input.normalization)

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
        return term_gradient_norms(start, load_batch(step), losses_config=config.losses, registry=losses.LOSSES,
                                   **loss_kwargs)
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

    timer = _SaveTimer(checkpoint_every_minutes(config))
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
      # config.eval_at_start=False: no evaluation before training (summary["initial"] is None).
      summary = {"initial": evaluate(0) if start_step == 0 and config.eval_at_start else initial,
                 "start_step": start_step}
      initial_record = _jsonable(summary["initial"])
      if start_step > 0 and unfinished_evaluation(start_step):
        log(f"the evaluation at step {start_step} has no record (the run stopped during it): running it again")
        evaluate(start_step)
      # uint8 images: a quarter of the host work and host-to-device bytes; normalised on the devices.
      batches = pipeline.make_train_iterator(
          config.input, train_source, seed=config.seed, start_step=start_step, total_steps=total_steps,
          process_index=jax.process_index(), process_count=jax.process_count(), uint8_images=True)
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
        batch = parallel.global_batch(next(batches), mesh, normalization=config.input.normalization)
        state, metrics = step_fn(state, batch)
        pending.append(metrics)
        done = step + 1
        log_now = done % config.log_every_steps == 0 or done == total_steps
        save_now = done == total_steps or run.checkpoint_due(done)
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
        if run.evaluation_due(done) and done != total_steps:
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
  columns = columns or evaluator_lib.headline_columns(rows)
  return reporting.format_table(rows, columns)


if __name__ == "__main__":
  from suprank_jax import main  # pylint: disable=g-import-not-at-top  (the command line, flags included)

  main.run()
