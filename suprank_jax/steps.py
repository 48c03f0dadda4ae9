"""Lengths that a config may give in steps or in epochs.

The reference trainer counts in epochs (``max_iter``, scheduler milestones, ``warmup_step``); ours runs a
step loop. A config offers both spellings of such a length as a pair of keys (``decay_steps`` /
``decay_epochs``, ``total_steps`` / ``num_epochs``) and sets at most one of them; :func:`to_steps`
turns the pair into steps once the number of steps per epoch is known::

  to_steps(0, 5, 120, "config.optim.warmup_steps", "config.optim.warmup_epochs")     # -> 600
  to_steps((), (30, 70), 120, "config.optim.decay_steps", "config.optim.decay_epochs")  # -> (3600, 8400)
  to_steps(1000, None, None, "config.total_steps", "config.num_epochs")                 # -> 1000

Epochs need not all have the same length: the original's M-per-class sampler (``m_per_class_original``)
ends an epoch when its classes run out, after a number of batches that depends on the epoch's class
order. :class:`EpochPlan` is the one description of the epochs that every length, period and
schedule uses: the step where each epoch starts (``start(e)``, the steps of epochs ``0 .. e-1``),
``EpochPlan(n)`` for the fixed-length samplers (``start(e) = e * n``). With varying lengths:

* a length in epochs is a whole number of epochs (``to_steps``; a fraction raises, naming the key), counted
  from an epoch start (``after``: the end of the freeze for the optimizer's warm-up and milestones);
* "every k epochs" is the ends of epochs ``k, 2k, ...`` (:func:`to_period`, :func:`is_due`);
* a per-epoch schedule counts the epoch index of the step (:meth:`EpochPlan.epoch_index_fn`, under jit).

With a fixed length every rule above gives what ``k * n`` steps gives, fractions included.
"""

from __future__ import annotations

import bisect
import math
import numbers
import threading
from collections.abc import Callable

import numpy as np

__all__ = ["EpochPlan", "to_steps", "to_period", "is_due"]


def _check_steps_per_epoch(steps_per_epoch, context: str = ""):
  if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Integral) or steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch={steps_per_epoch!r}{context} must be an int >= 1")


class EpochPlan:
  """The first step of every epoch of the training sampler (see the module docstring).

  ``EpochPlan(n)``: every epoch has ``n`` steps. ``EpochPlan(length_fn=f, what=...)``: epoch ``e`` has
  ``f(e)`` steps; each length is computed once, in epoch order, and kept, so the plan is a pure
  function of ``f`` (deterministic in the sampler's seed and epoch), whatever the order of the questions.

  Args:
    steps_per_epoch: the fixed length, or None with ``length_fn``.
    length_fn: ``epoch -> its number of steps (>= 1)``.
    what: what makes the lengths vary, for error messages (e.g. the config key that chose the sampler).
  """

  def __init__(
    self,
    steps_per_epoch: int | None = None,
    *,
    length_fn: Callable[[int], int] | None = None,
    what: str = "the epochs vary in length",
  ):
    if (steps_per_epoch is None) == (length_fn is None):
      raise ValueError("EpochPlan: give steps_per_epoch (a fixed length) or length_fn, not both")
    if steps_per_epoch is not None:
      _check_steps_per_epoch(steps_per_epoch)
      steps_per_epoch = int(steps_per_epoch)
    self.steps_per_epoch = steps_per_epoch
    self.what = what
    self._length_fn = length_fn
    self._starts = [0]
    self._lock = threading.Lock()  # grain's reader threads share a sampler

  def __getstate__(self):
    state = dict(self.__dict__)
    del state["_lock"]
    return state

  def __setstate__(self, state):
    self.__dict__.update(state, _lock=threading.Lock())

  @property
  def varies(self) -> bool:
    return self.steps_per_epoch is None

  def start(self, epoch: int) -> int:
    """The step where ``epoch`` (0-based) starts: the number of steps in the epochs before it."""
    epoch = int(epoch)
    if epoch < 0:
      raise ValueError(f"epoch must be >= 0, got {epoch}")
    if not self.varies:
      return epoch * self.steps_per_epoch
    with self._lock:
      while len(self._starts) <= epoch:
        e = len(self._starts) - 1
        n = int(self._length_fn(e))
        if n < 1:
          raise ValueError(f"epoch {e} has {n} steps ({self.what}); every epoch needs at least one")
        self._starts.append(self._starts[-1] + n)
      return self._starts[epoch]

  def length(self, epoch: int) -> int:
    return self.start(epoch + 1) - self.start(epoch)

  def epoch_of(self, step: int) -> tuple[int, int]:
    """``(epoch, position in it)`` of a 0-based step (host ints)."""
    step = int(step)
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    if not self.varies:
      return divmod(step, self.steps_per_epoch)
    while self.start(len(self._starts) - 1) <= step:
      self.start(len(self._starts))
    epoch = bisect.bisect_right(self._starts, step) - 1
    return epoch, step - self._starts[epoch]

  def epoch_ending_at(self, done: int) -> int | None:
    """``e`` when the first ``done`` steps are exactly epochs ``0 .. e-1`` (``done == start(e)``), else None."""
    done = int(done)
    if not self.varies:
      return done // self.steps_per_epoch if done % self.steps_per_epoch == 0 else None
    while self.start(len(self._starts) - 1) < done:
      self.start(len(self._starts))
    epoch = bisect.bisect_left(self._starts, done)
    return epoch if self._starts[epoch] == done else None

  def epoch_at(self, step: int, what: str) -> int:
    """The number of epochs in the first ``step`` steps, which must end an epoch.

    Raises:
      ValueError: ``step`` is inside an epoch (``what`` names the key at fault).
    """
    epoch = self.epoch_ending_at(step)
    if epoch is None:
      epoch, _ = self.epoch_of(step)
      first = self.start(epoch)
      last = first + self.length(epoch) - 1
      raise ValueError(
        f"{what}: step {step} is inside epoch {epoch} (steps {first} to {last}; {self.what}); give it in whole epochs"
      )
    return epoch

  def epoch_index_fn(self, num_epochs: int) -> Callable:
    """A jit-compatible ``step -> its 0-based epoch``: ``step // n``, or with varying lengths a search
    in the constant starts of epochs ``1 .. num_epochs`` (later steps give ``num_epochs``)."""
    if not self.varies:
      return lambda step: step // self.steps_per_epoch
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top  (the host-side uses need no jax)

    bounds = np.array([self.start(e) for e in range(1, num_epochs + 1)], np.int32)
    return lambda step: jnp.searchsorted(bounds, jnp.asarray(step, jnp.int32), side="right").astype(jnp.int32)

  def describe(self, total_steps: int) -> str:
    """One line for the log: the epochs' lengths in a run of ``total_steps`` steps."""
    if not self.varies:
      return f"{self.steps_per_epoch} steps per epoch"
    last, offset = self.epoch_ending_at(total_steps), 0
    if last is None:
      last, offset = self.epoch_of(total_steps)
    lengths = [self.length(e) for e in range(last)] or [self.length(0)]
    tail = f" and {offset} steps of epoch {last}" if offset else ""
    return f"{last} epochs of {min(lengths)} to {max(lengths)} steps{tail} ({self.what})"


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


def _whole_epochs(value, plan: EpochPlan, key: str, twin: str) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"{key}={value!r} must be a number of epochs")
  if value < 0:
    raise ValueError(f"{key}={value!r} must be >= 0")
  if plan.varies and value != int(value):
    raise ValueError(
      f"{key}={value!r} is not a whole number of epochs, and {plan.what}: give whole epochs, or "
      f"the length in steps ({twin})"
    )
  return value


def _epochs(value, plan: EpochPlan, key: str, after: int, twin: str) -> int:
  value = _whole_epochs(value, plan, key, twin)
  if not plan.varies:
    # Nearest step, halves up (a fractional epoch rarely falls on a step boundary).
    return int(math.floor(value * plan.steps_per_epoch + 0.5))
  first = plan.epoch_at(after, f"{key}={value!r} counts epochs from step {after}") if after else 0
  return plan.start(first + int(value)) - after


def _plan(epochs, epochs_key: str) -> EpochPlan | None:
  """``epochs`` (an int >= 1, an :class:`EpochPlan` or None) as a plan."""
  if epochs is None or isinstance(epochs, EpochPlan):
    return epochs
  _check_steps_per_epoch(epochs, f" (for {epochs_key})")
  return EpochPlan(epochs)


def to_steps(
  steps_value, epochs_value, epochs: int | EpochPlan | None, steps_key: str, epochs_key: str, *, after: int = 0
):
  """Resolves a ``(steps, epochs)`` pair of config values into a number of steps.

  Args:
    steps_value: a length in steps (an int >= 0), a sequence of them (milestones), or None. ``0``,
      ``()`` and None mean "not set".
    epochs_value: the same length in epochs (int or float >= 0, or a sequence of them), or None.
    epochs: the epochs: steps in one epoch (an int >= 1), an :class:`EpochPlan`, or None when unknown;
      then ``epochs_value`` must be unset.
    steps_key: the full name of the steps key, for error messages (``"config.optim.decay_steps"``).
    epochs_key: the full name of the epochs key (``"config.optim.decay_epochs"``).
    after: the step the epochs count from (the end of the freeze for the optimizer's lengths); with
      epochs of varying length it must start an epoch.

  Returns:
    An int for scalar values, a tuple of ints for sequences: ``steps_value`` when it is set, else the
    steps in ``epochs_value`` epochs from ``after`` (a fixed length: ``epochs_value * steps_per_epoch``,
    each rounded to the nearest step), else ``0`` / ``()``.

  Raises:
    ValueError: naming the key at fault when both keys are set, a value is negative or not a whole
      number of steps, one key is a sequence and the other is not, epochs are given without
      ``epochs``, or (epochs of varying length) a fraction of an epoch or ``after`` inside an epoch.
  """
  sequence = _is_sequence(steps_value) or _is_sequence(epochs_value)
  for key, value in ((steps_key, steps_value), (epochs_key, epochs_value)):
    if sequence and value is not None and not _is_sequence(value):
      raise ValueError(
        f"{key}={value!r} must be a tuple, like its twin key {epochs_key if key == steps_key else steps_key}"
      )
  if _is_set(steps_value) and _is_set(epochs_value):
    raise ValueError(
      f"{steps_key}={steps_value!r} and {epochs_key}={epochs_value!r} are both set; set only one of them"
    )
  if _is_set(epochs_value):
    if epochs is None:
      raise ValueError(
        f"{epochs_key}={epochs_value!r} needs the number of steps per epoch, which is not "
        f"known here; give the length in {steps_key} instead"
      )
    plan = _plan(epochs, epochs_key)
    if sequence:
      return tuple(_epochs(v, plan, f"{epochs_key}[{i}]", after, steps_key) for i, v in enumerate(epochs_value))
    return _epochs(epochs_value, plan, epochs_key, after, steps_key)
  if sequence:
    return tuple(_steps(v, f"{steps_key}[{i}]") for i, v in enumerate(steps_value or ()))
  return 0 if steps_value is None else _steps(steps_value, steps_key)


def to_period(
  steps_value, epochs_value, epochs: int | EpochPlan | None, steps_key: str, epochs_key: str
) -> tuple[int, int]:
  """``(every_steps, every_epochs)``: a period given by a pair of keys (``eval_every_steps`` /
  ``eval_every_epochs``), in steps (epochs converted as :func:`to_steps` does), except a number of
  epochs when the epochs vary in length: then the period is the ends of epochs ``k, 2k, ...``
  (:func:`is_due`). At most one of the two is non-zero; both 0: never.

  Raises:
    ValueError: as :func:`to_steps`; a fraction of an epoch when the epochs vary in length.
  """
  plan = _plan(epochs, epochs_key) if _is_set(epochs_value) else None
  if plan is not None and plan.varies and not _is_set(steps_value):
    return 0, int(_whole_epochs(epochs_value, plan, epochs_key, steps_key))
  return to_steps(steps_value, epochs_value, epochs, steps_key, epochs_key), 0


def is_due(done: int, every_steps: int, every_epochs: int, epochs: EpochPlan | None) -> bool:
  """Whether a periodic action (:func:`to_period`) is due once ``done`` steps are done: every
  ``every_steps`` steps, or at the end of every ``every_epochs``-th epoch of ``epochs``."""
  if every_steps:
    return done % every_steps == 0
  if every_epochs:
    epoch = epochs.epoch_ending_at(done)
    return bool(epoch) and epoch % every_epochs == 0
  return False
