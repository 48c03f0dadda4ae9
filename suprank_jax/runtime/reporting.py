"""Run reporting: metrics as JSON lines, TensorBoard event files, and a progress line with ETA.

Only process 0 writes (``jax.process_index() == 0``); other processes get a writer that does nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping

import jax
import numpy as np

from suprank_jax.runtime.run_dir import RunDir

__all__ = ["MetricWriter", "Progress", "ProgressLog", "format_table"]


def _to_float(value):
  value = np.asarray(value)
  return float(value) if value.size == 1 else None


def _tensorboard_tag(name: str) -> str:
  r"""TensorBoard allows ``[A-Za-z0-9_.\-/]`` in tags: ``R@1`` becomes ``R_at_1``."""
  return "".join(c if c.isalnum() or c in "_.-/" else ("_at_" if c == "@" else "_") for c in name)


class MetricWriter:
  """Writes scalars to ``workdir/metrics.jsonl`` and TensorBoard (``workdir/tensorboard``).

  Each JSON line is ``{"step": int, "split": str, "<name>": float, ...}``, one line per ``(step, split)``:
  a run resumed at ``start_step`` first drops the lines of later steps (the steps after its checkpoint,
  which it runs again; TensorBoard hides them with ``purge_step``), and a record written again for a
  ``(step, split)`` (e.g. the final evaluation of a finished run that is run again) replaces the older one.
  """

  def __init__(
    self, workdir: str, *, enabled: bool | None = None, tensorboard: bool = True, start_step: int | None = None
  ):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._jsonl = None
    self._tb = None
    self._keys = set()
    if not self.enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._path = RunDir(workdir).metrics
    if os.path.exists(self._path):
      lines = self._read()
      kept = [(k, line) for k, line in lines if start_step is None or k is None or k[0] <= start_step]
      if len(kept) != len(lines):
        self._rewrite(line for _, line in kept)
      self._keys = {k for k, _ in kept if k is not None}
    self._jsonl = open(self._path, "a", encoding="utf-8")
    if tensorboard:
      from tensorboardX import SummaryWriter  # imported lazily: it is slow to import

      purge = None if start_step is None else int(start_step) + 1
      self._tb = SummaryWriter(RunDir(workdir).tensorboard, purge_step=purge)

  def _read(self):
    """``[((step, split) or None, line)]`` of the file; a line that does not parse (a run killed while
    writing it) has no key and is dropped on the next rewrite."""
    out = []
    with open(self._path, encoding="utf-8") as f:
      for line in f:
        try:
          record = json.loads(line)
          out.append(((int(record["step"]), str(record["split"])), line if line.endswith("\n") else line + "\n"))
        except (ValueError, KeyError, TypeError):
          continue
    return out

  def _rewrite(self, lines):
    tmp = self._path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(lines)
    os.replace(tmp, self._path)

  def has(self, step: int, split: str) -> bool:
    """Whether the file holds a record of ``split`` at ``step`` (always False when not enabled)."""
    return (int(step), split) in self._keys

  def write_scalars(self, step: int, scalars: Mapping[str, object], *, split: str = "train"):
    if not self.enabled:
      return
    values = {k: v for k, v in ((k, _to_float(v)) for k, v in scalars.items()) if v is not None}
    key = (int(step), split)
    if key in self._keys:
      self._jsonl.close()
      self._rewrite(line for k, line in self._read() if k != key)
      self._jsonl = open(self._path, "a", encoding="utf-8")
    self._keys.add(key)
    self._jsonl.write(json.dumps({"step": int(step), "split": split, **values}) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(_tensorboard_tag(f"{split}/{k}"), v, int(step))

  def write_text(self, tag: str, text: str, step: int = 0):
    if self.enabled and self._tb is not None:
      self._tb.add_text(tag, text, step)

  def close(self):
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


class Progress:
  """Steps per second and ETA from the steps done since the first call to :meth:`update`."""

  def __init__(self, total_steps: int, start_step: int = 0):
    self.total_steps = total_steps
    self._t0 = None
    self._s0 = start_step

  def update(self, step: int) -> dict:
    now = time.perf_counter()
    if self._t0 is None:
      self._t0, self._s0 = now, step
      return {}
    elapsed = now - self._t0
    steps_per_sec = (step - self._s0) / elapsed if elapsed > 0 else math.nan
    eta = (self.total_steps - step) / steps_per_sec if steps_per_sec > 0 else math.nan
    return {"steps_per_sec": steps_per_sec, "eta_sec": eta}


# Seconds between two lines of a ProgressLog.
PROGRESS_SECONDS = 30.0


class ProgressLog:
  """Progress lines of a long piece of work: ``'<what>: <done> of <total> <unit> (<rate> <unit>/s, ETA
  h:mm:ss)'``, at most every :data:`PROGRESS_SECONDS` (read at each update), and at the end when a
  line was printed before or the work took that long (quick work stays silent).

  Args:
    log: the printer (None: nothing is logged).
    what: the name of the work.
    total: units to do.
    unit: their name.
    done: units already done before this run (resumed work: not counted in the rate).
  """

  def __init__(self, log, what: str, total: int, unit: str = "images", *, done: int = 0):
    self.log, self.what, self.total, self.unit = log, what, total, unit
    self._first = done
    self._start = self._last = time.perf_counter()
    self._printed = False

  def update(self, done: int):
    """Reports ``done`` units out of the total, when a line is due."""
    now = time.perf_counter()
    finished = done >= self.total and (self._printed or now - self._start >= PROGRESS_SECONDS)
    if self.log is None or not (now - self._last >= PROGRESS_SECONDS or finished):
      return
    rate = (done - self._first) / max(now - self._start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else math.inf
    self.log(
      f"{self.what}: {done:,} of {self.total:,} {self.unit} ({rate:,.1f} {self.unit}/s, ETA {format_duration(eta)})"
    )
    self._last, self._printed = now, True


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def log(message: str):
  """Prints on process 0 only, flushed at once (progress must show while a run is going)."""
  if jax.process_index() == 0:
    print(message, file=sys.stdout, flush=True)


def format_table(rows: Mapping[str, Mapping[str, float]], columns) -> str:
  """A small fixed-width table: one row per entry of ``rows``, one column per metric key."""
  name_width = max([len("model")] + [len(r) for r in rows])
  widths = [max(len(c), 8) for c in columns]
  lines = ["  ".join([f"{'model':<{name_width}}"] + [f"{c:>{w}}" for c, w in zip(columns, widths)])]
  for name, metrics in rows.items():
    cells = [f"{metrics[c]:>{w}.4f}" if c in metrics else f"{'-':>{w}}" for c, w in zip(columns, widths)]
    lines.append("  ".join([f"{name:<{name_width}}"] + cells))
  return "\n".join(lines)
