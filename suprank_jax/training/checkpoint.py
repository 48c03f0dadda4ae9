"""Checkpoints with orbax: the train state, a JSON record and an integrity record, saved together in one step.

The data position needs no separate state: training batches are a pure function of the step
(``input_pipeline.pipeline.make_train_iterator(..., start_step=step)``), so restoring the state
restores the input stream exactly.

Orbax trusts what it reads back (ECOSYSTEM.md §4): damaged bytes inside an array restore as NaN or
3e38 without a warning. So every step also holds an integrity record, ``<step>/integrity/integrity.json``:
the path, shape, dtype and CRC-32 of every array of the state. It is computed from the host copy of the
state in orbax's commit thread (off the training thread) and finalised with the step, so a finished step
always has its record. A restore checks, for each step from the newest:

1. the record against the state the config builds (another structure is another run: stop, naming the
   arrays that differ);
2. orbax's read;
3. every restored array: finite, and equal to its record (CRC-32).

A step that fails 2 or 3 is damaged: the next older one is tried, and once one restores, the damaged
ones are moved to ``<checkpoints>/damaged/`` (kept for inspection; orbax ignores that folder), so that the
run can save those steps again. When no step restores, nothing is moved and the restore stops with the
list of what was found. A state with a non-finite value is never saved (:class:`NonFiniteStateError`).
A failed write is reported at the next save, or at :meth:`CheckpointManager.close`
(:class:`CheckpointWriteError`): orbax leaves its writer threads waiting after such a failure, so a
command line must end its process without joining them (``cli.user_errors`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
  "CheckpointManager",
  "has_checkpoints",
  "abstract_like",
  "check_writable",
  "tree_paths",
  "integrity_record",
  "CheckpointError",
  "NoUsableCheckpointError",
  "IncompatibleCheckpointError",
  "CheckpointWriteError",
  "NonFiniteStateError",
  "INTEGRITY_FILE",
  "DAMAGED_FOLDER",
]

INTEGRITY_FORMAT = "suprank_jax.integrity/1"
INTEGRITY_FILE = "integrity.json"
DAMAGED_FOLDER = "damaged"


class CheckpointError(ValueError):
  """A checkpoint folder cannot give this run its state (the message says what was found)."""


class NoUsableCheckpointError(CheckpointError):
  """Step folders exist, but none of them restores."""


class IncompatibleCheckpointError(CheckpointError):
  """A checkpoint holds a state of another structure (another model, losses or memory)."""


def _first_line(error: Exception, limit: int = 300) -> str:
  """``Type: message`` of ``error``, its first line only (TensorStore appends a many-line spec dump)."""
  text = f"{type(error).__name__}: {str(error).strip()}".splitlines()[0]
  return text if len(text) <= limit else text[:limit] + " ..."


class CheckpointWriteError(OSError):
  """Writing a checkpoint failed (read-only or full disk, ...).

  orbax's writer threads then wait forever: a command line ends its process without joining them
  (``cli.user_errors`` reads ``abandons_threads``).
  """

  abandons_threads = True


class NonFiniteStateError(FloatingPointError):
  """The state to save holds NaN or inf values; nothing was saved.

  Attributes:
    step: the step that was to be saved.
    leaves: ``[(path, count of non-finite values)]``.
  """

  def __init__(self, step: int, leaves, directory: str):
    self.step, self.leaves = step, list(leaves)
    shown = ", ".join(f"{p} ({n} values)" for p, n in self.leaves[:5])
    more = f" and {len(self.leaves) - 5} more arrays" if len(self.leaves) > 5 else ""
    super().__init__(
      f"the state of step {step} holds non-finite values in {shown}{more}; it was not saved to {directory}"
    )


class _Damaged(Exception):
  """Internal: a step failed its read or its verification (the message says why)."""


# ----------------------------------------------------------------------------------------------
# The integrity record


def _key_name(key) -> str:
  for attr in ("name", "key", "idx"):  # GetAttrKey, DictKey / FlattenedIndexKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def tree_paths(tree) -> list[tuple[str, Any]]:
  """``[(path, leaf)]`` of a pytree, paths written ``params/Conv_0/kernel`` (the record's keys)."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [("/".join(_key_name(k) for k in path), leaf) for path, leaf in leaves]


def _host(x) -> np.ndarray:
  """The value of one state array on this host (a view, not a copy, for CPU arrays)."""
  if isinstance(x, jax.Array):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    if not x.is_fully_addressable:
      if not x.is_fully_replicated:
        raise ValueError(
          "the integrity record needs replicated state arrays (the train state is replicated); "
          f"got one sharded as {x.sharding}"
        )
      x = x.addressable_data(0)
  return np.asarray(x)


def _crc32(value: np.ndarray) -> str:
  data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
  return f"{zlib.crc32(data):08x}"


def integrity_record(step: int, named_values) -> dict:
  """The record of ``[(path, host array)]``: shape, dtype and CRC-32 of the bytes of each array."""
  return {
    "format": INTEGRITY_FORMAT,
    "step": int(step),
    "algorithm": "crc32",
    "arrays": {
      p: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype), "crc32": _crc32(v)} for p, v in named_values
    },
  }


@jax.jit
def _finite_flags(leaves):
  """Per leaf, whether every value is finite: its min and max are (XLA's min and max propagate NaN);
  two reductions, about 6x faster than counting the non-finite values."""
  flags = [
    jnp.isfinite(jnp.min(x)) & jnp.isfinite(jnp.max(x))
    if jnp.issubdtype(x.dtype, jnp.inexact) and x.size
    else jnp.ones((), bool)
    for x in leaves
  ]
  return jnp.stack(flags) if flags else jnp.zeros((0,), bool)


def _finite_on_host(value: np.ndarray) -> bool:
  if not jnp.issubdtype(value.dtype, jnp.inexact) or not value.size:  # jnp: knows bfloat16
    return True
  return bool(np.isfinite(value.min()) and np.isfinite(value.max()))  # numpy's min and max propagate NaN


def _on_cpu(x) -> bool:
  return not isinstance(x, jax.Array) or all(d.platform == "cpu" for d in x.devices())


def _nonfinite(named_leaves) -> list[tuple[str, int]]:
  """``[(path, number of NaN/inf values)]`` of the leaves that hold some. CPU arrays are checked on
  their host view (no compilation); accelerator arrays where they are, by one jitted program."""
  flags = {}
  on_device = [(p, x) for p, x in named_leaves if not _on_cpu(x)]
  if on_device:
    flags.update(zip((p for p, _ in on_device), _host(_finite_flags([x for _, x in on_device]))))
  flags.update((p, _finite_on_host(_host(x))) for p, x in named_leaves if _on_cpu(x))
  return [(p, int(np.sum(~np.isfinite(_host(x))))) for p, x in named_leaves if not flags[p]]


class _IntegrityHandler(ocp.AsyncCheckpointHandler):
  """Writes the integrity record as an item of the step. The record is computed in orbax's commit
  thread, and orbax finalises the step only once every item's commit is done."""

  async def _write(self, compute: Callable[[], dict], directory):
    if ocp.multihost.is_primary_host(0):
      record = await asyncio.to_thread(compute)
      (directory / INTEGRITY_FILE).write_text(json.dumps(record))

  async def async_save(self, directory, args: _IntegritySave):
    return [
      ocp.future.CommitFutureAwaitingContractedSignals(
        self._write(args.compute, directory), name="suprank_integrity_save"
      )
    ]

  def save(self, directory, args: _IntegritySave):
    for f in asyncio.run(self.async_save(directory, args)) or ():
      f.result()

  def restore(self, directory, args=None):
    del args
    return json.loads((directory / INTEGRITY_FILE).read_text())


@ocp.args.register_with_handler(_IntegrityHandler, for_save=True)
@dataclasses.dataclass
class _IntegritySave(ocp.args.CheckpointArgs):
  compute: Callable[[], dict]


@ocp.args.register_with_handler(_IntegrityHandler, for_restore=True)
@dataclasses.dataclass
class _IntegrityRestore(ocp.args.CheckpointArgs):
  pass


# ----------------------------------------------------------------------------------------------
# The manager


class CheckpointManager:
  """Saves and restores ``(state, meta)`` under ``directory``, with an integrity record per step.

  Args:
    directory: where the step folders live.
    max_to_keep: how many of the latest checkpoints to keep.
    create: create ``directory`` if missing (False to read another run's folder).
  """

  def __init__(self, directory: str, *, max_to_keep: int = 2, create: bool = True):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
      self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create)
    )
    self._in_flight = None  # the step of the last save started
    self._failure = None  # the CheckpointWriteError of a failed save: every later save refuses
    self.last_save_seconds = 0.0  # time save() blocked the caller, for the benchmark

  def all_steps(self):
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, meta: dict[str, Any]) -> bool:
    """Starts an asynchronous save of ``state``, ``meta`` and the state's integrity record at ``step``.

    Blocks only for the finiteness check and the copy of the state to the host (a view on CPU); the
    CRC-32s are computed in orbax's commit thread.

    Returns:
      False when ``step`` already exists (nothing is written), else True.

    Raises:
      NonFiniteStateError: the state holds NaN or inf (nothing is written).
      CheckpointWriteError: the previous save failed, or this one cannot start.
    """
    t0 = time.perf_counter()
    self.wait_until_finished()
    if step in self._manager.all_steps():
      return False
    named = tree_paths(state)
    bad = _nonfinite(named)
    if bad:
      raise NonFiniteStateError(step, bad, self.directory)
    hosts = [(p, _host(x)) for p, x in named] if jax.process_index() == 0 else []
    try:
      started = self._manager.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          meta=ocp.args.JsonSave(meta),
          integrity=_IntegritySave(functools.partial(integrity_record, step, hosts)),
        ),
      )
    except Exception as e:
      self._fail(step, e)
    self._in_flight = step
    self.last_save_seconds = time.perf_counter() - t0
    return bool(started)

  def _fail(self, step, error):
    # The folders on disk: orbax's own list already leaves out the steps its next cleanup would delete.
    on_disk = sorted(int(n) for n in os.listdir(self.directory) if n.isdigit()) if os.path.isdir(self.directory) else []
    self._failure = CheckpointWriteError(
      f"writing checkpoint step {step} to {self.directory} failed ({type(error).__name__}: {error}); "
      f"the steps written before are kept: {on_disk}"
    )
    raise self._failure from error

  def wait_until_finished(self):
    """Waits for the save in flight.

    Raises:
      CheckpointWriteError: it (or an earlier one) failed; the message names the step and the error.
    """
    if self._failure is not None:
      raise self._failure
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      self._fail(self._in_flight, e)

  def close(self):
    """Waits for the save in flight, then closes orbax's manager (raises CheckpointWriteError)."""
    try:
      self.wait_until_finished()
    finally:
      if self._failure is None:  # after a failure orbax's threads wait forever: don't join them
        self._manager.close()

  # -- reading --------------------------------------------------------------------------------

  def _record(self, step: int):
    """The integrity record of ``step``, or None for a step written before records existed."""
    path = os.path.join(self.directory, str(step), "integrity", INTEGRITY_FILE)
    if not os.path.exists(path):
      return None
    try:
      with open(path, encoding="utf-8") as f:
        record = json.load(f)
      if record.get("format") != INTEGRITY_FORMAT or not isinstance(record.get("arrays"), dict):
        raise ValueError(f"not a {INTEGRITY_FORMAT} record")
    except (OSError, ValueError) as e:
      raise _Damaged(f"its integrity record {path} is unreadable ({type(e).__name__}: {e})") from e
    return record

  def _check_structure(self, step: int, record, abstract_state):
    if record is None:
      return
    expected = {p: (list(x.shape), str(np.dtype(x.dtype))) for p, x in tree_paths(abstract_state)}
    saved = {p: (a["shape"], a["dtype"]) for p, a in record["arrays"].items()}
    differences = [
      f"{p}: {saved[p][1]}{saved[p][0]} in the checkpoint, {expected[p][1]}{expected[p][0]} here"
      for p in expected
      if p in saved and saved[p] != expected[p]
    ]
    differences += [f"{p}: only in this config's state" for p in expected if p not in saved]
    differences += [f"{p}: only in the checkpoint" for p in saved if p not in expected]
    if differences:
      more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
      raise IncompatibleCheckpointError(
        f"checkpoint step {step} in {self.directory} holds a state of another structure: "
        + "; ".join(differences[:5])
        + more
        + ". It was written by a run with another model, losses or memory; "
        "a resume cannot change them: use another --workdir to start afresh"
      )

  def _verify(self, step: int, state, record, *, prefixes=None):
    """Raises _Damaged when a restored array is non-finite or differs from its record."""
    named = tree_paths(state)
    problems = [f"{p} has {n} non-finite values" for p, n in _nonfinite(named)]
    if record is not None:
      arrays = record["arrays"]
      for p, x in named:
        if p not in arrays:
          problems.append(f"{p} is not in its integrity record")
        elif _crc32(_host(x)) != arrays[p]["crc32"]:
          problems.append(
            f"{p} differs from its integrity record (CRC-32 {_crc32(_host(x))}, recorded {arrays[p]['crc32']})"
          )
      wanted = [p for p in arrays if prefixes is None or p.split("/")[0] in prefixes]
      missing = sorted(set(wanted) - {p for p, _ in named})
      problems += [f"{p} is missing" for p in missing]
    if problems:
      more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
      raise _Damaged("; ".join(problems[:3]) + more)

  def _restore_verified(self, step: int, abstract_state, log):
    record = self._record(step)
    self._check_structure(step, record, abstract_state)
    try:
      restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
      )
    except Exception as e:
      raise _Damaged(f"unreadable: {_first_line(e)}") from e
    self._verify(step, restored.state, record)
    if record is None:
      log(
        f"warning: checkpoint step {step} in {self.directory} has no integrity record (written by an "
        "older version): only its finiteness was checked"
      )
    return step, restored.state, dict(restored.meta)

  def restore_latest(self, abstract_state, *, log=print, move_damaged: bool = True):
    """Restores the newest step that reads and verifies.

    Args:
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (with shardings) shaped like the state,
        e.g. ``jax.eval_shape(make_state)``.
      log: where to report damaged steps.
      move_damaged: move the damaged steps newer than the one restored to ``<directory>/damaged/``
        (False for a folder this run does not own, e.g. ``config.resume``).

    Returns:
      ``(step, state, meta)``, or ``None`` when there is no step folder.

    Raises:
      IncompatibleCheckpointError: a step holds a state of another structure.
      NoUsableCheckpointError: step folders exist but none restores (nothing is moved); the message
        lists each step with its fault and how to start afresh.
    """
    damaged = []
    for step in reversed(self.all_steps()):
      try:
        result = self._restore_verified(step, abstract_state, log)
      except _Damaged as e:
        damaged.append((step, str(e)))
        log(f"warning: checkpoint step {step} in {self.directory} is damaged ({e}); trying an older one")
        continue
      if damaged and move_damaged:
        self._move_aside([s for s, _ in damaged], log)
      return result
    if damaged:
      raise NoUsableCheckpointError(
        f"{self.directory} holds step folders {sorted(s for s, _ in damaged)} and none of them restores: "
        + "; ".join(f"step {s}: {reason}" for s, reason in damaged)
        + f". Nothing was changed. To start afresh on purpose, move the folder away (mv {self.directory} "
        f"{self.directory}.old) or use another --workdir"
      )
    return None

  def _move_aside(self, steps, log):
    target = os.path.join(self.directory, DAMAGED_FOLDER)
    if jax.process_index() == 0:
      os.makedirs(target, exist_ok=True)
      for step in steps:
        dest = os.path.join(target, str(step))
        n = 1
        while os.path.exists(dest):
          n += 1
          dest = os.path.join(target, f"{step}.{n}")
        os.rename(os.path.join(self.directory, str(step)), dest)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      multihost_utils.sync_global_devices("suprank_jax_damaged_checkpoints_moved")
    self._manager.reload()
    log(
      f"warning: moved the damaged checkpoint step(s) {sorted(steps)} to {target} (kept for inspection); "
      "the run continues from the step restored and will save those steps again"
    )

  def restore_variables(self, step: int | None = None, *, log=print):
    """The model variables ``{'params', 'batch_stats'}`` of checkpoint ``step`` (the newest one that
    reads and verifies when None), read without the rest of the train state: evaluating a run needs
    neither its optimizer nor its training data set. Nothing is moved.

    Returns:
      ``(step, variables)``.

    Raises:
      FileNotFoundError: no (such) checkpoint, listing the steps found.
      NoUsableCheckpointError: no step (or not ``step``) reads and verifies, with each fault.
    """
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    if step is not None and step not in steps:
      raise FileNotFoundError(f"{self.directory} has no checkpoint of step {step}; found {steps}")
    errors = []
    for s in [step] if step is not None else list(reversed(steps)):
      try:
        record = self._record(s)
        try:
          restored = self._manager.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        except Exception as e:
          raise _Damaged(f"unreadable: {_first_line(e)}") from e
        state = restored.state
        get = state.get if isinstance(state, dict) else lambda k, d=None: getattr(state, k, d)
        variables = {"params": get("params")}
        if get("batch_stats"):
          variables["batch_stats"] = get("batch_stats")
        self._verify(s, variables, record, prefixes=tuple(variables))
      except _Damaged as e:
        errors.append(f"step {s}: {e}")
        if step is None:
          log(f"warning: checkpoint step {s} in {self.directory} is damaged ({e}); trying an older one")
        continue
      return s, variables
    raise NoUsableCheckpointError(f"no checkpoint in {self.directory} reads and verifies: {'; '.join(errors)}")


def has_checkpoints(directory: str) -> bool:
  """Whether ``directory`` holds finished step folders (orbax names them by their step number)."""
  if not os.path.isdir(directory):
    return False
  return any(name.isdigit() and os.path.isdir(os.path.join(directory, name)) for name in os.listdir(directory))


def check_writable(directory: str):
  """Writes a probe file into ``directory`` (each process its own), creating the folder for the probe
  and removing what it created: a run stopped by a later check leaves no empty checkpoint folder.

  Raises:
    CheckpointWriteError: naming the folder and the system's reason.
  """
  try:
    existed = os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    probe = os.path.join(directory, f".write_probe.{jax.process_index()}.{os.getpid()}")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
    if not existed:
      try:
        os.rmdir(directory)
      except OSError:  # another process's probe, or its first checkpoint, is already there
        pass
  except OSError as e:
    raise CheckpointWriteError(
      f"the checkpoint folder {directory} is not writable ({e.strerror or e}): make it "
      "writable, or choose another --workdir"
    ) from e


def abstract_like(state):
  """``ShapeDtypeStruct``s (with shardings) of a concrete state, for :meth:`CheckpointManager.restore_latest`."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
