"""Optimizers with parameter groups chosen by regular expressions over parameter paths.

The trainable pytree is ``{"model": params, "loss": loss_params}``; a parameter's path is its keys
joined by ``/`` (e.g. ``model/projection/kernel``, ``loss/cluster/weights``). ``config.optim.groups``
is a tuple of ``(regex, setting)`` rules; the first rule whose regex matches (``re.search``) gives a
parameter its group. The setting is a learning-rate multiplier of the base optimizer, ``None`` to
freeze the group, or a dict of ``config.optim`` keys that the group uses instead of the base ones
(its own optimizer, rate, schedule, weight decay, and ``lr_multiplier``), e.g. HAPPIER's cluster
weights::

  config.optim.groups = (("^loss/cluster/", dict(name="adam", learning_rate=10.0, schedule="cosine")),)

Parameters no rule matches use the base optimizer.
"""

from __future__ import annotations

import copy
import re

import jax
import ml_collections
import optax

__all__ = ["default_config", "make_optimizer", "param_paths", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "steps")


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "adam"
  c.learning_rate = 1e-3
  c.weight_decay = 0.0
  c.momentum = 0.9  # sgd only
  c.schedule = "constant"
  c.warmup_steps = 0
  c.decay_steps = ()  # 'steps' schedule: the steps at which the rate is multiplied by decay_factor
  c.decay_factor = 0.1
  c.grad_clip_norm = 0.0  # 0 disables clipping
  c.groups = (("^loss/", 1.0),)
  return c


def _path_str(path) -> str:
  parts = []
  for k in path:
    parts.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
  return "/".join(parts)


def param_paths(tree):
  """The ``/``-joined path of every leaf, as a pytree of strings shaped like ``tree``."""
  return jax.tree_util.tree_map_with_path(lambda p, _: _path_str(p), tree)


def _schedule(cfg, total_steps: int, multiplier: float):
  lr = cfg.learning_rate * multiplier
  if cfg.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif cfg.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total_steps - cfg.warmup_steps, 1))
  elif cfg.schedule == "steps":
    main = optax.piecewise_constant_schedule(
        lr, {int(s) - cfg.warmup_steps: cfg.decay_factor for s in cfg.decay_steps})
  else:
    raise ValueError(f"config.optim.schedule={cfg.schedule!r} is unknown; valid: {SCHEDULES}")
  if cfg.warmup_steps > 0:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, cfg.warmup_steps), main], [cfg.warmup_steps])
  return main


def _base(cfg, schedule):
  if cfg.name == "adam":
    return optax.adam(schedule)
  if cfg.name == "adamw":
    return optax.adamw(schedule, weight_decay=cfg.weight_decay)
  if cfg.name == "sgd":
    tx = optax.sgd(schedule, momentum=cfg.momentum or None)
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay), tx) if cfg.weight_decay else tx
  raise ValueError(f"config.optim.name={cfg.name!r} is unknown; valid: {OPTIMIZERS}")


_GROUP_KEYS = ("name", "learning_rate", "weight_decay", "momentum", "schedule", "warmup_steps", "decay_steps",
               "decay_factor")


def _group_config(cfg, setting, index: int):
  """``(optimizer config, lr multiplier)`` of a group rule's setting, or None for a frozen group."""
  if setting is None:
    return None
  if isinstance(setting, (int, float)) and not isinstance(setting, bool):
    return cfg, float(setting)
  if not hasattr(setting, "items"):
    raise ValueError(f"config.optim.groups[{index}]: the setting {setting!r} must be an lr multiplier, None "
                     f"(frozen) or a dict of optimizer keys {_GROUP_KEYS + ('lr_multiplier',)}")
  overrides = dict(setting)
  multiplier = float(overrides.pop("lr_multiplier", 1.0))
  unknown = sorted(set(overrides) - set(_GROUP_KEYS))
  if unknown:
    raise ValueError(f"config.optim.groups[{index}]: unknown keys {unknown}; valid: "
                     f"{list(_GROUP_KEYS) + ['lr_multiplier']}")
  group_cfg = copy.deepcopy(cfg)
  for key, value in overrides.items():
    try:
      group_cfg[key] = value
    except TypeError as e:
      raise ValueError(f"config.optim.groups[{index}]: bad value for {key!r}: {e}") from e
  return group_cfg, multiplier


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int):
  """Builds the optimizer and its learning-rate schedules.

  Args:
    cfg: ``config.optim`` (see :func:`default_config`).
    total_steps: length of the run, for decaying schedules.

  Returns:
    ``(tx, schedules)``: an optax transformation over the trainable pytree, and ``{group: schedule}``
    for logging (``'base'`` plus one entry per non-frozen rule, named by its regex).
  """
  rules = []
  for i, rule in enumerate(cfg.groups):
    if len(rule) != 2:
      raise ValueError(f"config.optim.groups[{i}]={rule!r} must be a (regex, setting) pair")
    regex, setting = rule
    try:
      rules.append((re.compile(regex), _group_config(cfg, setting, i)))
    except re.error as e:
      raise ValueError(f"config.optim.groups[{i}]: bad regex {regex!r}: {e}") from e

  schedules = {"base": _schedule(cfg, total_steps, 1.0)}
  transforms = {"base": _base(cfg, schedules["base"])}
  for i, (regex, group) in enumerate(rules):
    if group is None:
      transforms[f"group{i}"] = optax.set_to_zero()
    else:
      group_cfg, multiplier = group
      try:
        schedules[regex.pattern] = _schedule(group_cfg, total_steps, multiplier)
        transforms[f"group{i}"] = _base(group_cfg, schedules[regex.pattern])
      except ValueError as e:
        raise ValueError(f"config.optim.groups[{i}] ({regex.pattern!r}): {e}") from e

  def label(path: str) -> str:
    for i, (regex, _) in enumerate(rules):
      if regex.search(path):
        return f"group{i}"
    return "base"

  tx = optax.multi_transform(transforms, lambda params: jax.tree.map(label, param_paths(params)))
  if cfg.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
  return tx, schedules
