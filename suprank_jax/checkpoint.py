"""Checkpoints with orbax: the train state and a JSON record, saved together in one step.

The data position needs no separate state: training batches are a pure function of the step
(``input_pipeline.pipeline.make_train_iterator(..., start_step=step)``), so restoring the state
restores the input stream exactly. A damaged latest checkpoint (orbax does not detect one, see
ECOSYSTEM.md §4) is skipped with a warning and the previous one is used.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointManager", "has_checkpoints", "abstract_like"]


class CheckpointManager:
  """Saves and restores ``(state, meta)`` under ``directory``.

  Args:
    directory: where the step folders live (created if missing).
    max_to_keep: how many of the latest checkpoints to keep.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def all_steps(self):
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, meta: dict[str, Any]) -> bool:
    """Starts an asynchronous save of ``state`` and ``meta`` at ``step`` (False if it already exists)."""
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def restore_latest(self, abstract_state, *, log=print):
    """Restores the newest readable checkpoint.

    Args:
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (with shardings) shaped like the state,
        e.g. ``jax.eval_shape(make_state)``.
      log: where to report skipped damaged checkpoints.

    Returns:
      ``(step, state, meta)``, or ``None`` when there is no readable checkpoint.
    """
    for step in reversed(self.all_steps()):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
      except Exception as e:  # noqa: BLE001 - any failure means this step is unreadable.
        log(f"warning: checkpoint step {step} in {self.directory} is unreadable ({type(e).__name__}: {e}); "
            "trying an older one")
        continue
      return step, restored.state, dict(restored.meta)
    return None

  def restore_variables(self, step: int | None = None):
    """The model variables ``{'params', 'batch_stats'}`` of checkpoint ``step`` (the newest readable when
    None), read without the rest of the train state: evaluating a run needs neither its optimizer
    nor its training data set.

    Returns:
      ``(step, variables)``.

    Raises:
      FileNotFoundError: no (such) checkpoint, listing the steps found.
    """
    candidates = [step] if step is not None else list(reversed(self.all_steps()))
    if step is not None and step not in self.all_steps():
      raise FileNotFoundError(f"{self.directory} has no checkpoint of step {step}; found {self.all_steps()}")
    errors = []
    for s in candidates:
      try:
        restored = self._manager.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
      except Exception as e:  # noqa: BLE001 - any failure means this step is unreadable.
        errors.append(f"step {s}: {type(e).__name__}: {e}")
        continue
      state = restored.state
      get = state.get if isinstance(state, dict) else lambda k, d=None: getattr(state, k, d)
      variables = {"params": get("params")}
      if get("batch_stats"):
        variables["batch_stats"] = get("batch_stats")
      return s, variables
    raise FileNotFoundError(f"no readable checkpoint in {self.directory}" + (f": {'; '.join(errors)}" if errors else ""))

  def wait_until_finished(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def has_checkpoints(directory: str) -> bool:
  """Whether ``directory`` holds finished step folders (orbax names them by their step number)."""
  if not os.path.isdir(directory):
    return False
  return any(name.isdigit() and os.path.isdir(os.path.join(directory, name)) for name in os.listdir(directory))


def abstract_like(state):
  """``ShapeDtypeStruct``s (with shardings) of a concrete state, for :meth:`CheckpointManager.restore_latest`."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
