"""Optimizers with parameter groups chosen by regular expressions over parameter paths.

The trainable pytree is ``{"model": params, "loss": loss_params}``; a parameter's path is its keys
joined by ``/`` (e.g. ``model/backbone/conv_init/kernel``, ``model/head/projection/kernel``,
``loss/cluster/weights``).

Optimizers (``config.optim.name``), with PyTorch's semantics:

* ``'adam'``: ``torch.optim.Adam``; ``weight_decay`` is an L2 term, ``wd * param`` added to the gradient
  before the moments.
* ``'adamw'``: ``torch.optim.AdamW``; decoupled decay, ``param -= lr * wd * param``.
* ``'sgd'``: ``torch.optim.SGD``; ``wd * param`` added to the gradient, then ``momentum`` (0 disables it)
  and ``nesterov``.

Options that the chosen optimizer or schedule would not use are errors, not silently ignored: e.g.
``momentum`` (when changed from its default) or ``nesterov`` with Adam, ``min_learning_rate`` without the
cosine schedule, ``decay_*`` without the 'steps' schedule.

Schedules (``config.optim.schedule``) are functions of the step, evaluated on a counter that starts at the
end of the frozen warm-up (below):

* ``'constant'``: ``learning_rate``.
* ``'cosine'``: torch's ``CosineAnnealingLR``: from ``learning_rate`` down to ``min_learning_rate``
  (``eta_min``, an absolute rate) over the whole run (``total_steps``; less the linear ramp, if any), so
  ``T_max`` is the run length as in the reference configs (``T_max: ${max_iter}``).
* ``'steps'``: torch's ``MultiStepLR``: the rate is multiplied by ``decay_factor`` at each milestone of
  ``decay_steps`` (or ``decay_epochs``), counted like the scheduler's own steps.
* ``warmup_steps`` / ``warmup_epochs``: a linear ramp from 0 to the rate before the schedule.
* ``schedule_per_epoch=True`` steps the schedule once per epoch, like the reference trainer, which calls
  ``scheduler.step()`` after each epoch: the counter is ``step // steps_per_epoch`` and the horizon
  ``total_steps / steps_per_epoch`` epochs, so the rate is constant within an epoch. (Formally the rate at
  ``step`` is the per-step schedule's at the start of its epoch.) When the epochs vary in length
  (``make_optimizer(..., steps_per_epoch=plan)``, a ``steps.EpochPlan``), the counter is the epoch index
  of the step and every length is in epochs: the freeze, the warm-up ramp, the milestones and the run
  must then end at epoch ends (else an error names the key), as the reference steps its schedulers
  once per epoch whatever the epoch's length.

Frozen warm-up (the reference's ``warmup_step`` / ``warmup_keys``): for the first ``freeze_steps`` (or
``freeze_epochs``) steps the parameters whose path matches ``freeze_regex`` (default the backbone) get
zero updates and their optimizer state (Adam moments and step counter, SGD momentum) stays unchanged, as
when the reference skips ``opt.step()``: their optimizer starts afresh at the first unfrozen step. The
other parameters train normally. As the reference does not step any scheduler during its warm-up, every
group's schedule counter starts at the end of the freeze (the cosine horizon stays the whole run, so
like ``T_max = max_iter`` it does not reach ``min_learning_rate`` by the end). ``freeze_regex=''``
freezes nothing and only delays the schedules (the reference's warm-up when no optimizer is in
``warmup_keys``).

Parameter groups: ``config.optim.groups`` is a tuple of ``(regex, setting)`` rules; the first rule whose
regex matches (``re.search``) gives a parameter its group. The setting is a learning-rate multiplier of
the base optimizer, ``None`` to freeze the group for the whole run, or a dict of ``config.optim`` keys
that the group uses instead of the base ones (its own optimizer, rate, schedule, ..., and
``lr_multiplier``; the freeze keys, ``grad_clip_norm`` and ``groups`` are global). A group inherits the
other keys from the base; setting one key of a steps/epochs pair in a group drops the base's value of
its twin. ``min_learning_rate`` is absolute: ``lr_multiplier`` does not scale it. Parameters no rule
matches use the base optimizer.

Length keys come in pairs, in steps or in epochs (``warmup_*``, ``decay_*``, ``freeze_*``): set one of
each pair. Epoch values, and ``schedule_per_epoch``, need ``make_optimizer(..., steps_per_epoch=...)``; with epochs
of varying length, lengths in epochs are whole epochs counted from the end of the freeze (``steps.to_steps``).

The original code's optimizer configs (``suprank/config/optimizer/*.yaml``, epochs ``max_iter``) read::

  # sop.yaml: Adam 5e-5 for the backbone, 2x for the head, wd 1e-4, cosine stepped per epoch, eta_min 0
  config.optim.name = "adam"
  config.optim.learning_rate = 5e-5
  config.optim.weight_decay = 1e-4
  config.optim.schedule = "cosine"
  config.optim.schedule_per_epoch = True
  config.optim.groups = (("^model/head/", 2.0),
                         # HAPPIER_SOP.yaml's cluster weights: Adam 10.0, no decay, cosine to 0.1
                         ("^loss/cluster/", dict(learning_rate=10.0, weight_decay=0.0, min_learning_rate=0.1)))
  # total_steps = max_iter * steps_per_epoch; warmup_step: 5 in the reference -> freeze_epochs = 5

  # dyml.yaml: one SGD for the whole net
  config.optim.name = "sgd"; config.optim.learning_rate = 0.1; config.optim.weight_decay = 1e-4
  config.optim.momentum = 0.9; config.optim.nesterov = True
  config.optim.schedule = "cosine"; config.optim.min_learning_rate = 1e-6; config.optim.schedule_per_epoch = True

  # sop_deit_sch.yaml: AdamW with MultiStepLR(milestones=[25, 50], gamma=0.3)
  config.optim.name = "adamw"; config.optim.learning_rate = 1e-5; config.optim.weight_decay = 5e-4
  config.optim.schedule = "steps"; config.optim.decay_epochs = (25, 50); config.optim.decay_factor = 0.3
  config.optim.schedule_per_epoch = True

Loss configs whose loss optimizer is ``${optimizer.opt.head}`` (e.g. ``HAPPIER.yaml``) give the loss
parameters the head's setting: ``("^loss/", 2.0)``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from suprank_jax import steps as steps_lib

__all__ = ["default_config", "make_optimizer", "param_paths", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "steps")


def default_config() -> ml_collections.ConfigDict:
  """Every ``config.optim`` key with its default (see the module docstring)."""
  c = ml_collections.ConfigDict()
  c.name = "adam"  # 'adam' (L2 weight decay), 'adamw' (decoupled weight decay) or 'sgd'
  c.learning_rate = 1e-3  # the base rate (a group's lr_multiplier scales it)
  c.weight_decay = 0.0  # adam/sgd: wd * param added to the gradient; adamw: param -= lr * wd * param
  c.momentum = 0.9  # sgd only (0 disables it); must stay at this default for adam/adamw
  c.nesterov = False  # sgd only: Nesterov momentum (needs momentum > 0)
  c.schedule = "constant"  # 'constant', 'cosine' (to min_learning_rate) or 'steps' (decay at milestones)
  c.min_learning_rate = 0.0  # 'cosine' only: the final rate (torch's eta_min; absolute, not multiplied)
  c.schedule_per_epoch = False  # step the schedule once per epoch, like the reference trainer
  c.warmup_steps = 0  # linear ramp of the rate from 0, in steps ...
  c.warmup_epochs = 0  # ... or in epochs (set at most one)
  c.decay_steps = ()  # 'steps' only: milestones in steps, where the rate is multiplied by decay_factor ...
  c.decay_epochs = ()  # ... or in epochs (set at most one); counted from the end of the freeze
  c.decay_factor = 0.1  # 'steps' only: torch's MultiStepLR gamma
  c.freeze_steps = 0  # frozen warm-up: parameters matching freeze_regex do not move for this many steps ...
  c.freeze_epochs = 0  # ... or epochs (the reference's warmup_step); all schedules start after it
  c.freeze_regex = "^model/backbone/"  # what the warm-up freezes (the reference's warmup_keys: [backbone])
  c.grad_clip_norm = 0.0  # clip the global gradient norm; 0 disables clipping
  c.groups = (("^loss/", 1.0),)  # (regex, lr multiplier | None (frozen) | dict of the keys above) rules
  return c


_PAIRS = (("warmup_steps", "warmup_epochs"), ("decay_steps", "decay_epochs"), ("freeze_steps", "freeze_epochs"))
_GLOBAL_KEYS = ("freeze_steps", "freeze_epochs", "freeze_regex", "grad_clip_norm", "groups")
_DEFAULTS = default_config().to_dict()
_GROUP_KEYS = tuple(k for k in _DEFAULTS if k not in _GLOBAL_KEYS)


def _path_str(path) -> str:
  parts = []
  for k in path:
    parts.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
  return "/".join(parts)


def param_paths(tree):
  """The ``/``-joined path of every leaf, as a pytree of strings shaped like ``tree``."""
  return jax.tree_util.tree_map_with_path(lambda p, _: _path_str(p), tree)


@dataclasses.dataclass(frozen=True)
class _Group:
  """The resolved, validated settings of one parameter group (lengths in steps)."""

  name: str
  learning_rate: float  # multiplier included
  weight_decay: float
  momentum: float
  nesterov: bool
  schedule: str
  min_learning_rate: float
  per_epoch: bool
  warmup_steps: int
  decay_steps: tuple
  decay_factor: float
  # Per-epoch schedules over epochs of varying length: (freeze, warm-up ramp, milestones, run) in epochs.
  epoch_counts: tuple | None = None


def _number(value, key: str, *, minimum: float = 0.0) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"{key}={value!r} must be a finite number")
  if value < minimum:
    raise ValueError(f"{key}={value!r} must be >= {minimum:g}")
  return float(value)


def _boolean(value, key: str) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{key}={value!r} must be True or False")
  return bool(value)


def _choice(value, key: str, valid) -> str:
  if value not in valid:
    raise ValueError(f"{key}={value!r} is unknown; valid: {valid}")
  return value


def _milestones(values, where, epochs, *, total_steps: int, freeze: int, warmup: int) -> tuple[int, ...]:
  """The 'steps' schedule's milestones in steps, counted from the end of the freeze, checked."""
  milestones = steps_lib.to_steps(
    values["decay_steps"], values["decay_epochs"], epochs, where("decay_steps"), where("decay_epochs"), after=freeze
  )
  key = where("decay_epochs") if values["decay_epochs"] else where("decay_steps")
  horizon = total_steps - freeze
  if not milestones:
    raise ValueError(
      f"{where('schedule')}='steps' needs milestones: set {where('decay_steps')} or {where('decay_epochs')}"
    )
  if any(b <= a for a, b in zip(milestones, milestones[1:])):
    raise ValueError(f"{key}: the milestones {milestones} (in steps) must be strictly increasing")
  if milestones[0] <= warmup or milestones[-1] > horizon:
    raise ValueError(
      f"{key}: the milestones {milestones} (in steps, counted from the end of the freeze) "
      f"must lie after the warm-up ramp ({warmup} steps) and within the {horizon} steps "
      f"the schedule runs (total_steps={total_steps}, {freeze} frozen)"
    )
  return milestones


def _resolve(
  values: dict,
  explicit: set,
  where,
  *,
  multiplier: float,
  total_steps: int,
  freeze: int,
  epochs: steps_lib.EpochPlan | None,
) -> _Group:
  """Validates one group's keys and resolves its lengths into steps.

  Args:
    values: every group key (``_GROUP_KEYS``) with the group's value.
    explicit: the keys this level sets itself (changed from the default for the base, present in the
      dict for a group); only these can be "set but unused".
    where: ``key -> name`` of the key in error messages.
    multiplier: the group's lr multiplier.
    total_steps: the run length.
    freeze: the frozen warm-up, in steps.
    epochs: the run's epochs, or None.
  """

  def unused(key, because):
    return ValueError(f"{where(key)}={values[key]!r} would be ignored: {because}")

  name = _choice(values["name"], where("name"), OPTIMIZERS)
  schedule = _choice(values["schedule"], where("schedule"), SCHEDULES)
  learning_rate = _number(values["learning_rate"], where("learning_rate")) * multiplier
  weight_decay = _number(values["weight_decay"], where("weight_decay"))
  momentum = _number(values["momentum"], where("momentum"))
  nesterov = _boolean(values["nesterov"], where("nesterov"))
  per_epoch = _boolean(values["schedule_per_epoch"], where("schedule_per_epoch"))
  min_learning_rate = _number(values["min_learning_rate"], where("min_learning_rate"))
  decay_factor = _number(values["decay_factor"], where("decay_factor"))

  if name != "sgd":
    for key in ("momentum", "nesterov"):
      if key in explicit:
        raise unused(key, f"{where('name')}={name!r} has no momentum (it is for 'sgd'; do not set it)")
  elif nesterov and momentum == 0:
    raise ValueError(
      f"{where('nesterov')}=True needs momentum > 0 ({where('momentum')}={momentum!r}), as in torch.optim.SGD"
    )
  if schedule != "cosine" and "min_learning_rate" in explicit:
    raise unused("min_learning_rate", f"it is the floor of the 'cosine' schedule, and {where('schedule')}={schedule!r}")
  if schedule != "steps":
    for key in ("decay_steps", "decay_epochs", "decay_factor"):
      if key in explicit:
        raise unused(key, f"it is for the 'steps' schedule, and {where('schedule')}={schedule!r}")
  if per_epoch and epochs is None:
    raise ValueError(
      f"{where('schedule_per_epoch')}=True needs the number of steps per epoch: "
      "make_optimizer(..., steps_per_epoch=...)"
    )

  warmup = steps_lib.to_steps(
    values["warmup_steps"], values["warmup_epochs"], epochs, where("warmup_steps"), where("warmup_epochs"), after=freeze
  )
  horizon = total_steps - freeze
  if warmup > horizon:
    raise ValueError(
      f"the warm-up ramp of {warmup} steps ({where('warmup_steps')} / {where('warmup_epochs')}) "
      f"is longer than the {horizon} steps the schedule runs (total_steps={total_steps}, "
      f"{freeze} frozen)"
    )
  milestones = (
    _milestones(values, where, epochs, total_steps=total_steps, freeze=freeze, warmup=warmup)
    if schedule == "steps"
    else ()
  )
  counts = None
  if per_epoch and epochs.varies:
    counts = _epoch_counts(epochs, where, total_steps=total_steps, freeze=freeze, warmup=warmup, milestones=milestones)
  return _Group(
    name,
    learning_rate,
    weight_decay,
    momentum,
    nesterov,
    schedule,
    min_learning_rate,
    per_epoch,
    warmup,
    milestones,
    decay_factor,
    counts,
  )


def _epoch_counts(plan, where, *, total_steps: int, freeze: int, warmup: int, milestones: tuple) -> tuple:
  """``(freeze, warm-up ramp, milestones, run)`` in epochs, for a per-epoch schedule over epochs of varying
  length (the ramp and milestones counted from the end of the freeze). Each must end at an epoch end."""
  why = f"{where('schedule_per_epoch')}=True counts whole epochs, but"
  first = plan.epoch_at(freeze, f"{why} the freeze (config.optim.freeze_steps / freeze_epochs) ends")
  ramp = (
    plan.epoch_at(freeze + warmup, f"{why} the warm-up ramp ({where('warmup_steps')} / {where('warmup_epochs')}) ends")
    - first
  )
  marks = tuple(
    plan.epoch_at(
      freeze + m,
      f"{why} the milestone {m} ({where('decay_steps')} / {where('decay_epochs')}, steps after the freeze) is",
    )
    - first
    for m in milestones
  )
  run = plan.epoch_at(
    total_steps, f"{why} the run (total_steps={total_steps}: config.num_epochs / config.total_steps) ends"
  )
  return first, ramp, marks, run


def _group_values(base: dict, setting, index: int):
  """``(values, explicit keys, lr multiplier)`` of a rule's setting, or None for a frozen group."""
  prefix = f"config.optim.groups[{index}]"
  if setting is None:
    return None
  if isinstance(setting, numbers.Real) and not isinstance(setting, bool):
    return base, set(), _number(setting, f"{prefix} (lr multiplier)")
  if not hasattr(setting, "items"):
    raise ValueError(
      f"{prefix}: the setting {setting!r} must be an lr multiplier, None (frozen) or a dict "
      f"of optimizer keys {list(_GROUP_KEYS) + ['lr_multiplier']}"
    )
  overrides = dict(setting.items())
  multiplier = _number(overrides.pop("lr_multiplier", 1.0), f"{prefix}.lr_multiplier")
  global_keys = sorted(set(overrides) & set(_GLOBAL_KEYS))
  if global_keys:
    raise ValueError(f"{prefix}: {global_keys} are global; set them in config.optim, not in a group")
  unknown = sorted(set(overrides) - set(_GROUP_KEYS))
  if unknown:
    raise ValueError(f"{prefix}: unknown keys {unknown}; valid: {list(_GROUP_KEYS) + ['lr_multiplier']}")
  values = dict(base)
  for steps_key, epochs_key in _PAIRS:
    # A group that gives one of a pair replaces the base's length, whichever spelling the base used.
    for key, twin in ((steps_key, epochs_key), (epochs_key, steps_key)):
      if key in overrides and twin not in overrides and twin in values:
        values[twin] = _DEFAULTS[twin]
  values.update(overrides)
  return values, set(overrides), multiplier


def _where_group(index: int, explicit: set):
  def where(key):
    if key in explicit:
      return f"config.optim.groups[{index}].{key}"
    return f"config.optim.groups[{index}].{key} (inherited from config.optim.{key})"

  return where


def _check_run(total_steps, steps_per_epoch) -> steps_lib.EpochPlan | None:
  """The run's epochs, checked."""
  if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
    raise ValueError(f"total_steps={total_steps!r} must be an int >= 1")
  if steps_per_epoch is None or isinstance(steps_per_epoch, steps_lib.EpochPlan):
    return steps_per_epoch
  if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Integral) or steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch={steps_per_epoch!r} must be an int >= 1 or None")
  return steps_lib.EpochPlan(steps_per_epoch)


def _compile(regex, key: str):
  if not isinstance(regex, str):
    raise ValueError(f"{key}={regex!r} must be a regular expression string")
  try:
    return re.compile(regex)
  except re.error as e:
    raise ValueError(f"{key}: bad regex {regex!r}: {e}") from e


def _counter(group: _Group, total_steps: int, freeze: int, epochs: steps_lib.EpochPlan | None):
  """``(step -> the schedule's counter, warm-up ramp, milestones, run length)``, in the counter's unit."""
  if group.epoch_counts is not None:  # per epoch, over epochs of varying length: count epochs
    first, ramp, milestones, run = group.epoch_counts
    epoch_of = epochs.epoch_index_fn(run)
    return (lambda step: jnp.maximum(epoch_of(step) - first, 0)), ramp, milestones, run

  def count_steps(step):
    count = jnp.maximum(jnp.asarray(step, jnp.int32) - freeze, 0)  # the schedulers wait for the freeze
    if group.per_epoch:
      count = (count // epochs.steps_per_epoch) * epochs.steps_per_epoch
    return count

  return count_steps, group.warmup_steps, group.decay_steps, total_steps


def _schedule(group: _Group, total_steps: int, freeze: int, epochs: steps_lib.EpochPlan | None):
  """``step -> learning rate`` of a resolved group (jit-compatible)."""
  counter, ramp, milestones, run = _counter(group, total_steps, freeze, epochs)
  lr, floor = group.learning_rate, group.min_learning_rate
  decay_length = max(run - ramp, 1)
  # Rates after 0, 1, ... milestones, computed in float64 like torch's Python floats.
  step_rates = np.array([lr * group.decay_factor**k for k in range(len(milestones) + 1)], np.float32)
  milestones = np.array(milestones, np.int32)

  def schedule(step):
    count = counter(step)
    if group.schedule == "constant":
      rate = jnp.full((), lr, jnp.float32)
    elif group.schedule == "cosine":
      progress = jnp.clip(count - ramp, 0, decay_length).astype(jnp.float32) / decay_length
      rate = floor + (lr - floor) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    else:
      rate = jnp.asarray(step_rates)[jnp.sum(count >= milestones)]
    if ramp:
      rate = jnp.where(count < ramp, lr * count.astype(jnp.float32) / ramp, rate)
    return rate.astype(jnp.float32)

  return schedule


def _scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` with torch's defaults and accurate bias corrections.

  ``optax.scale_by_adam`` computes ``1 - b2 ** t`` in float32, where ``0.999`` rounds to ``0.99900001``:
  its first steps are ~7e-6 (relative) smaller than torch's, which computes the corrections in float64.
  ``1 - b ** t = -expm1(t * log(b))`` with ``log(b)`` taken in float64 is accurate to ~1e-7 in float32.
  """
  log_b1, log_b2 = math.log(b1), math.log(b2)

  def init(params):
    # Separate buffers for the two moments (a donated state must not hold one buffer twice).
    return optax.ScaleByAdamState(
      count=jnp.zeros([], jnp.int32), mu=jax.tree.map(jnp.zeros_like, params), nu=jax.tree.map(jnp.zeros_like, params)
    )

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, updates)
    count = optax.safe_increment(state.count)
    steps = count.astype(jnp.float32)
    correction1, correction2 = -jnp.expm1(steps * log_b1), -jnp.expm1(steps * log_b2)
    direction = jax.tree.map(lambda m, v: (m / correction1) / (jnp.sqrt(v) / jnp.sqrt(correction2) + eps), mu, nu)
    return direction, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


def _direction(group: _Group) -> optax.GradientTransformation:
  """The group's update before the learning rate (torch's semantics of weight decay and momentum)."""
  decay = [optax.add_decayed_weights(group.weight_decay)] if group.weight_decay else []
  if group.name == "adam":
    return optax.chain(*decay, _scale_by_adam())
  if group.name == "adamw":
    return optax.chain(_scale_by_adam(), *decay)
  momentum = [optax.trace(decay=group.momentum, nesterov=group.nesterov)] if group.momentum else []
  return optax.chain(*decay, *momentum) if decay or momentum else optax.identity()


def _group_rules(cfg, base: dict, groups: dict, display: dict, run: dict) -> list:
  """``[(compiled regex, label)]`` of ``cfg.groups``; each non-frozen rule's resolved group is added to
  ``groups`` (and its schedule's name to ``display``) under its label."""
  if not isinstance(cfg.groups, (tuple, list)):
    raise ValueError(f"config.optim.groups={cfg.groups!r} must be a tuple of (regex, setting) rules")
  rules = []
  for i, rule in enumerate(cfg.groups):
    if not isinstance(rule, (tuple, list)) or len(rule) != 2:
      raise ValueError(f"config.optim.groups[{i}]={rule!r} must be a (regex, setting) pair")
    regex = _compile(rule[0], f"config.optim.groups[{i}]")
    group = _group_values(base, rule[1], i)
    if group is not None:
      values, group_explicit, multiplier = group
      groups[f"group{i}"] = _resolve(
        values, group_explicit, _where_group(i, group_explicit), multiplier=multiplier, **run
      )
      display[f"group{i}"] = regex.pattern
    rules.append((regex, f"group{i}"))

  return rules


def make_optimizer(
  cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int | steps_lib.EpochPlan | None = None
):
  """Builds the optimizer and its learning-rate schedules.

  The whole config is validated before anything is built.

  Args:
    cfg: ``config.optim`` (see :func:`default_config` and the module docstring).
    total_steps: length of the run in steps (the horizon of decaying schedules).
    steps_per_epoch: steps in one epoch, or the run's ``steps.EpochPlan`` (epochs of varying length);
      needed by the ``*_epochs`` keys and ``schedule_per_epoch``.

  Returns:
    ``(tx, schedules)``: an optax transformation over the trainable pytree, and ``{group: schedule}``
    (``'base'`` plus one entry per non-frozen rule, named by its regex), where ``schedule(step)`` is the
    rate that ``tx`` applies at the update from ``step`` (the number of updates before it).

  Raises:
    ValueError: naming the key at fault (``config.optim.<key>`` or ``config.optim.groups[i].<key>``).
      A ``freeze_regex`` that matches no parameter raises when ``tx.init`` sees the parameters.
  """
  epochs = _check_run(total_steps, steps_per_epoch)
  for key in cfg:
    if key not in _DEFAULTS:
      raise ValueError(f"config.optim.{key} is not an optimizer key; valid: {list(_DEFAULTS)}")
  base = {key: cfg[key] for key in _GROUP_KEYS}
  explicit = {key for key in _DEFAULTS if cfg[key] != _DEFAULTS[key]}

  freeze = steps_lib.to_steps(
    cfg.freeze_steps, cfg.freeze_epochs, epochs, "config.optim.freeze_steps", "config.optim.freeze_epochs"
  )
  if freeze >= total_steps:
    raise ValueError(
      f"the frozen warm-up of {freeze} steps (config.optim.freeze_steps / freeze_epochs) covers "
      f"the whole run (total_steps={total_steps}); freeze a group for good with a None setting"
    )
  freeze_regex = cfg.freeze_regex
  freeze_re = _compile(freeze_regex, "config.optim.freeze_regex")
  if not freeze and "freeze_regex" in explicit:
    raise ValueError(
      f"config.optim.freeze_regex={freeze_regex!r} would be ignored: no frozen warm-up is set "
      "(config.optim.freeze_steps / freeze_epochs)"
    )
  clip = _number(cfg.grad_clip_norm, "config.optim.grad_clip_norm")

  run = dict(total_steps=total_steps, freeze=freeze, epochs=epochs)
  groups = {"base": _resolve(base, explicit, lambda key: f"config.optim.{key}", multiplier=1.0, **run)}
  display = {"base": "base"}  # label -> the name of its schedule
  rules = _group_rules(cfg, base, groups, display, run)

  # Built only now that everything is valid.
  schedules, transforms = {}, {}
  for label, group in groups.items():
    schedule = _schedule(group, **run)
    schedules[display[label]] = schedule
    direction = _direction(group)
    transforms[label] = optax.chain(direction, optax.scale_by_learning_rate(schedule))
    if freeze and freeze_regex:
      # Zero updates and an untouched inner state while frozen; the rate keeps counting global steps.
      masked = optax.transforms.conditionally_mask(direction, lambda count: count >= freeze)
      transforms[f"{label}/frozen"] = optax.chain(masked, optax.scale_by_learning_rate(schedule))
  for _, label in rules:
    if label not in groups:
      transforms[label] = optax.set_to_zero()

  def labels(tree):
    paths = param_paths(tree)
    frozen_any = []

    def label(path: str) -> str:
      name = next((lbl for regex, lbl in rules if regex.search(path)), "base")
      if freeze and freeze_regex and freeze_re.search(path):
        frozen_any.append(path)
        if name in groups:
          return f"{name}/frozen"
      return name

    out = jax.tree.map(label, paths)
    if freeze and freeze_regex and not frozen_any:
      raise ValueError(
        f"config.optim.freeze_regex={freeze_regex!r} matches no parameter (paths are e.g. "
        f"{jax.tree.leaves(paths)[:3]}); use '' to freeze nothing and only delay the schedules"
      )
    return out

  tx = optax.multi_transform(transforms, labels)
  if clip:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  return tx, schedules
