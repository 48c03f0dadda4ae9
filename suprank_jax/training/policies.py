"""The run's policies, each apart from the loop and testable without a run: when to log, save and
evaluate, the non-finite check of the steps since the last log, the signal stop and the save timer.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import jax
import numpy as np

from suprank_jax.runtime import cli

__all__ = [
  "RunInterrupted",
  "StopRequests",
  "SaveTimer",
  "MetricWindow",
  "first_nonfinite",
  "nonfinite_message",
  "log_due",
  "save_due",
  "evaluation_due",
  "broadcast_flag",
]


def log_due(done: int, total_steps: int, log_every_steps: int) -> bool:
  """Whether the metrics are logged after ``done`` steps: every ``log_every_steps`` and at the end."""
  return done % log_every_steps == 0 or done == total_steps


def save_due(done: int, total_steps: int, run, *, log_now: bool, timer: SaveTimer) -> bool:
  """Whether a checkpoint is saved after ``done`` steps: at the end, at the periodic steps of ``run``
  (``preflight.Prepared.checkpoint_due``), and at a log step once ``timer`` is due."""
  return done == total_steps or run.checkpoint_due(done) or (log_now and timer.due())


def evaluation_due(done: int, total_steps: int, run) -> bool:
  """Whether a periodic evaluation runs after ``done`` steps (the final one is the run's own)."""
  return 0 < done < total_steps and run.evaluation_due(done)


def broadcast_flag(flag: bool) -> bool:
  """Process 0's ``flag`` on every process (a collective call: every process must make it)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))
  return bool(flag)


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


class StopRequests:
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
    os.write(2, f"\nerror: a second signal ({signal.Signals(signum).name}): exiting at once, without saving\n".encode())
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


class SaveTimer:
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
    return broadcast_flag(time.monotonic() - self.last >= self.seconds)


class MetricWindow:
  """The metrics of the steps since the last log, kept on the devices until a log or a save needs them:
  then they are fetched once and checked (no non-finite state is ever logged as fine or saved)."""

  def __init__(self, start: int):
    self.start, self.pending = start, []

  def add(self, metrics):
    self.pending.append(metrics)

  def check(self, describe) -> list[dict]:
    """The host metrics of the window; a ``FloatingPointError(describe(step, metrics))`` at the first
    step whose loss or gradient is not finite."""
    host = jax.device_get(self.pending)
    bad = first_nonfinite(host)
    if bad is not None:
      raise FloatingPointError(describe(self.start + bad, host[bad]))
    return host

  def restart(self, start: int):
    self.start, self.pending = start, []


def first_nonfinite(host_metrics) -> int | None:
  """The first step (index) whose loss is non-finite or whose gradient is NaN (the update of that step
  made the parameters non-finite)."""
  for i, m in enumerate(host_metrics):
    if not np.isfinite(m["loss"]) or np.isnan(m["l2_grads"]):
      return i
  return None


def nonfinite_message(
  step: int, metrics, *, run_start: int, restored: bool, last_saved, directory: str, gradient_norms=None
) -> str:
  """What is known about a non-finite loss or gradient at ``step``: the terms at fault, whether the
  learning rate can be the cause, and the last good checkpoint."""
  terms = {k[len("loss/") :]: float(v) for k, v in metrics.items() if k.startswith("loss/")}
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
    cause = (
      f"It is the first step of this run, from a {'restored and verified' if restored else 'fresh'} state "
      f"with finite parameters, so the learning rate is not the cause: check the hyper-parameters of {keys} "
      "(e.g. a zero temperature) and the data"
    )
  else:
    cause = (
      f"The loss and its gradient were finite up to step {step - 1}: check the hyper-parameters of {keys}, "
      f"the data of step {step}, or lower config.optim.learning_rate"
    )
  saved = (
    f"Nothing non-finite was saved: the checkpoints in {directory} hold step {last_saved}, the last good "
    "state (re-running resumes from it)"
    if last_saved is not None
    else "No checkpoint was saved"
  )
  return f"{what}. {cause}. {saved}."
