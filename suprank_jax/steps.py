"""Lengths that a config may give in steps or in epochs.

The reference trainer counts in epochs (``max_iter``, scheduler milestones, ``warmup_step``); ours runs a
step loop. A config offers both spellings of such a length as a pair of keys (``decay_steps`` /
``decay_epochs``, ``total_steps`` / ``num_epochs``) and sets at most one of them; :func:`to_steps`
turns the pair into steps once the number of steps per epoch is known::

  to_steps(0, 5, 120, "config.optim.warmup_steps", "config.optim.warmup_epochs")     # -> 600
  to_steps((), (30, 70), 120, "config.optim.decay_steps", "config.optim.decay_epochs")  # -> (3600, 8400)
  to_steps(1000, None, None, "config.total_steps", "config.num_epochs")                 # -> 1000
"""

from __future__ import annotations

import math
import numbers

__all__ = ["to_steps"]


def _is_sequence(value) -> bool:
  return isinstance(value, (tuple, list))


def _is_set(value) -> bool:
  return len(value) > 0 if _is_sequence(value) else value not in (None, 0)


def _steps(value, key: str) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{key}={value!r} must be a whole number of steps")
  if value < 0:
    raise ValueError(f"{key}={value!r} must be >= 0")
  return int(value)


def _epochs(value, steps_per_epoch: int, key: str) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"{key}={value!r} must be a number of epochs")
  if value < 0:
    raise ValueError(f"{key}={value!r} must be >= 0")
  # Nearest step, halves up (a fractional epoch rarely falls on a step boundary).
  return int(math.floor(value * steps_per_epoch + 0.5))


def to_steps(steps_value, epochs_value, steps_per_epoch: int | None, steps_key: str, epochs_key: str):
  """Resolves a ``(steps, epochs)`` pair of config values into a number of steps.

  Args:
    steps_value: a length in steps (an int >= 0), a sequence of them (milestones), or None. ``0``,
      ``()`` and None mean "not set".
    epochs_value: the same length in epochs (int or float >= 0, or a sequence of them), or None.
    steps_per_epoch: steps in one epoch (an int >= 1), or None when unknown; then ``epochs_value``
      must be unset.
    steps_key: the full name of the steps key, for error messages (``"config.optim.decay_steps"``).
    epochs_key: the full name of the epochs key (``"config.optim.decay_epochs"``).

  Returns:
    An int for scalar values, a tuple of ints for sequences: ``steps_value`` when it is set, else
    ``epochs_value * steps_per_epoch`` (each rounded to the nearest step), else ``0`` / ``()``.

  Raises:
    ValueError: naming the key at fault when both keys are set, a value is negative or not a whole
      number of steps, one key is a sequence and the other is not, or epochs are given without
      ``steps_per_epoch``.
  """
  sequence = _is_sequence(steps_value) or _is_sequence(epochs_value)
  for key, value in ((steps_key, steps_value), (epochs_key, epochs_value)):
    if sequence and value is not None and not _is_sequence(value):
      raise ValueError(f"{key}={value!r} must be a tuple, like its twin key "
                       f"{epochs_key if key == steps_key else steps_key}")
  if _is_set(steps_value) and _is_set(epochs_value):
    raise ValueError(f"{steps_key}={steps_value!r} and {epochs_key}={epochs_value!r} are both set; "
                     "set only one of them")
  if _is_set(epochs_value):
    if steps_per_epoch is None:
      raise ValueError(f"{epochs_key}={epochs_value!r} needs the number of steps per epoch, which is not "
                       f"known here; give the length in {steps_key} instead")
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Integral) or steps_per_epoch < 1:
      raise ValueError(f"steps_per_epoch={steps_per_epoch!r} (for {epochs_key}) must be an int >= 1")
    if sequence:
      return tuple(_epochs(v, steps_per_epoch, f"{epochs_key}[{i}]") for i, v in enumerate(epochs_value))
    return _epochs(epochs_value, steps_per_epoch, epochs_key)
  if sequence:
    return tuple(_steps(v, f"{steps_key}[{i}]") for i, v in enumerate(steps_value or ()))
  return 0 if steps_value is None else _steps(steps_value, steps_key)
