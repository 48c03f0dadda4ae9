"""The training objective: a weighted sum of losses built from ``config.losses``.

``config.losses`` maps an entry name to a ConfigDict with a ``weight``, an optional ``name`` (the
registry name; the entry name when absent, so two entries can use the same loss with different
settings) and the loss's hyper-parameters. :func:`default_config` gives an entry with every
hyper-parameter of the loss at its default, so that each can be set from the command line::

    config.losses.sup_ap = default_config("sup_ap", weight=0.9, tau=0.01, rho=100.0)
    config.losses.calibration = default_config("calibration", weight=0.1, pos_margin=0.9)

An entry whose ``weight`` is 0 is off: it is not computed and has no parameters. The experiment
configs list every registered loss (off unless the experiment uses it), so that
``--config.losses.triplet.weight=0.5`` adds a loss and ``--config.losses.calibration.weight=0``
removes one. An off entry whose hyper-parameters differ from the loss's defaults is an error (a
setting that would be silently unused).

A loss's group of settings, a keyword argument whose default is a frozen dataclass (the SupRank losses'
``surrogate=ranks.SUPRANK``), is flat in the config: its fields are keys (``tau``, ``rho``, ...), and
:func:`loss_kwargs` gathers them back into one object when the loss is called.

Losses with learnable parameters (proxies, class weights) get them from :func:`init_loss_params`;
they live in the train state under ``loss_params[entry]`` and the optimizer treats them as their own
parameter group (``loss/<entry>/...``).

With a cross-batch memory, every loss that takes a reference set (``LossDef.uses_reference``) is
combined with its memory counterpart as the reference trainer does (``xbm.with_memory``):
``(f_t * batch_loss + f * memory_loss) / (f_t + f)`` once the memory is active; proxy losses and
FastAP keep their batch loss.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict

from suprank_jax.losses import xbm
from suprank_jax.losses.inputs import LossInputs

__all__ = [
  "LossDef",
  "DATA_ARGUMENTS",
  "default_config",
  "hyper_parameter_defaults",
  "loss_kwargs",
  "entries",
  "init_loss_params",
  "make_loss_fn",
  "weighted_loss",
]

# Arguments of a registered loss that are not hyper-parameters of the config: data given by the trainer,
# and ``reduce_fn`` (the weighted sum needs each loss's scalar; ``reduce_fn=None`` gives per-query values).
DATA_ARGUMENTS = ("inputs", "params", "rng", "normal_noise", "proxy_labels", "reduce_fn")
_PLACEHOLDER_TYPES = {"int": int, "bool": bool, "float": float, "str": str}


@dataclasses.dataclass(frozen=True)
class LossDef:
  """A registered loss.

  Attributes:
    fn: ``fn(inputs: LossInputs, params, **hyper_parameters) -> scalar`` (``[B]`` per-query values with
      ``reduce_fn=None``; the weighted sum never passes it).
    init_params: ``init(rng, *, embed_dim, num_classes, **hyper_parameters) -> pytree`` for losses with
      learnable parameters, else None.
    uses_reference: whether the loss ranks queries against a reference set (and so gets a memory term
      with a cross-batch memory).
  """

  fn: Callable[..., jax.Array]
  init_params: Callable[..., Any] | None = None
  uses_reference: bool = True


def _keyword_filter(fn) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
  """``kwargs -> the subset of kwargs that fn takes by keyword`` (all of them if it takes **kwargs),
  ``fn``'s signature read once."""
  params = inspect.signature(fn).parameters
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return dict
  return lambda kwargs: {k: v for k, v in kwargs.items() if k in params}


def _accepted(fn, kwargs):
  """The subset of ``kwargs`` that ``fn`` takes by keyword (all of them if it takes **kwargs)."""
  return _keyword_filter(fn)(kwargs)


def _hyper_parameters(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
  """``{config key: (default, annotation)}`` of the keyword hyper-parameters of a loss function (data
  arguments excluded). A settings group, a keyword whose default is a dataclass instance (the
  ``surrogate=ranks.SUPRANK`` of the SupRank losses), gives its fields, so the config stays flat."""
  keys = {}
  for p in inspect.signature(fn).parameters.values():
    if p.name in DATA_ARGUMENTS or p.default is inspect.Parameter.empty:
      continue
    if dataclasses.is_dataclass(p.default):
      group = {f.name: (getattr(p.default, f.name), f.type) for f in dataclasses.fields(p.default)}
    else:
      group = {p.name: (p.default, p.annotation)}
    clash = sorted(set(group) & set(keys))
    if clash:
      raise TypeError(f"{getattr(fn, '__name__', fn)}: config key(s) {clash} given by two parameters")
    keys.update(group)
  return keys


def hyper_parameter_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
  """``{config key: default}`` of the keyword hyper-parameters of a loss function (data arguments
  excluded; a settings group gives its fields, e.g. ``tau``, ``rho`` of ``surrogate``)."""
  return {key: default for key, (default, _) in _hyper_parameters(fn).items()}


def loss_kwargs(fn: Callable[..., Any], hyper_parameters: Mapping[str, Any]) -> dict[str, Any]:
  """The keyword arguments of ``fn`` for flat config ``hyper_parameters``: the fields of a settings group
  become one instance, e.g. ``{'tau': 0.02}`` -> ``{'surrogate': SupRankSurrogate(tau=0.02)}``."""
  kwargs = dict(hyper_parameters)
  for p in inspect.signature(fn).parameters.values():
    if dataclasses.is_dataclass(p.default):
      fields = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(p.default) if f.name in kwargs}
      if fields:
        kwargs[p.name] = dataclasses.replace(p.default, **fields)
  return kwargs


def _field(name: str, default: Any, annotation: Any):
  """A config field that the command line can override: ``hierarchy_level`` takes an int or 'multi';
  a ``None`` default becomes a typed placeholder (e.g. ``max_positives``: None or an int)."""
  if name == "hierarchy_level":
    return config_dict.FieldReference(default, field_type=object)
  if default is None:
    kind = str(annotation).split("|")[0].strip() if annotation is not inspect.Parameter.empty else ""
    return config_dict.placeholder(_PLACEHOLDER_TYPES.get(kind, object))
  return default


def default_config(name: str, registry: Mapping[str, LossDef] | None = None, **overrides) -> ml_collections.ConfigDict:
  """The ``config.losses`` entry of loss ``name``: ``weight`` (0 = off), ``name`` and every
  hyper-parameter with its default, then ``overrides`` (a misspelt key raises).

  Raises:
    ValueError: unknown loss name or hyper-parameter (both listing the valid ones).
  """
  if registry is None:
    from suprank_jax.losses import LOSSES as registry  # pylint: disable=g-import-not-at-top
  if name not in registry:
    raise ValueError(f"unknown loss {name!r}; valid names: {sorted(registry)}")
  c = ml_collections.ConfigDict()
  c.weight = 0.0
  c.name = name
  for key, (default, annotation) in _hyper_parameters(registry[name].fn).items():
    c[key] = _field(key, default, annotation)
  unknown = sorted(set(overrides) - set(c.keys()))
  if unknown:
    raise ValueError(f"loss {name!r} takes no hyper-parameter {unknown}; valid: {sorted(set(c.keys()) - {'name'})}")
  for key, value in overrides.items():
    c[key] = float(value) if key == "weight" else value
  c.lock()
  return c


def _differs(value, default) -> bool:
  if isinstance(default, tuple) or isinstance(value, (list, tuple)):
    return tuple(value) != tuple(default)
  return value != default


def entries(losses_config: Mapping[str, Any], registry: Mapping[str, LossDef]):
  """Validated ``(entry, loss_def, weight, hyper_parameters)`` tuples of the entries of
  ``config.losses`` that are on (weight != 0).

  Raises:
    ValueError: naming the entry for an unknown loss, a missing or negative weight, a
      hyper-parameter the loss does not take, an off entry that sets hyper-parameters, or no loss on.
  """
  result = []
  for entry, cfg in losses_config.items():
    cfg = dict(cfg)
    name = cfg.pop("name", entry)
    if name not in registry:
      raise ValueError(f"config.losses.{entry}: unknown loss {name!r}; valid names: {sorted(registry)}")
    if "weight" not in cfg:
      raise ValueError(f"config.losses.{entry}: missing 'weight'")
    weight = float(cfg.pop("weight"))
    if not weight >= 0:
      raise ValueError(f"config.losses.{entry}.weight={weight} must be >= 0 (0 turns the loss off)")
    loss_def = registry[name]
    defaults = hyper_parameter_defaults(loss_def.fn)
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
      raise ValueError(f"config.losses.{entry}: {name!r} takes no hyper-parameter {unknown}; valid: {sorted(defaults)}")
    if weight == 0:
      changed = sorted(k for k, v in cfg.items() if _differs(v, defaults[k]))
      if changed:
        raise ValueError(
          f"config.losses.{entry} is off (weight 0) but sets {changed}: give it a weight, e.g. "
          f"--config.losses.{entry}.weight=1.0, or leave those keys at their defaults"
        )
      continue
    result.append((entry, loss_def, weight, cfg))
  if not result:
    raise ValueError("config.losses has no loss on: give at least one a weight, e.g. --config.losses.sup_ap.weight=1.0")
  return result


def init_loss_params(rng, losses_config, registry, *, embed_dim: int, num_classes_per_level):
  """Initial learnable loss parameters, ``{entry: pytree}`` for the losses that have some."""
  params = {}
  for i, (entry, loss_def, _, hp) in enumerate(entries(losses_config, registry)):
    if loss_def.init_params is None:
      continue
    level = hp.get("hierarchy_level", 0)
    num_classes = tuple(num_classes_per_level) if isinstance(level, str) else int(num_classes_per_level[level])
    kwargs = _accepted(
      loss_def.init_params,
      {**hp, "embed_dim": embed_dim, "num_classes": num_classes, "num_classes_per_level": tuple(num_classes_per_level)},
    )
    params[entry] = loss_def.init_params(jax.random.fold_in(rng, i), **kwargs)
  return params


def make_loss_fn(losses_config, registry: Mapping[str, LossDef] | None = None):
  """The weighted sum of the losses of ``config.losses``, validated and bound once (the train step
  gets it, as it gets the model: no config is read while tracing).

  Args:
    losses_config: ``config.losses``.
    registry: name -> :class:`LossDef` (default: ``losses.LOSSES``).

  Returns:
    ``loss_fn(loss_params, inputs, *, memory=None, memory_active=False, memory_factor=1.0,
    memory_factor_true_loss=1.0, rng=None, context=None) -> (total, logs)``:

    * ``loss_params``: ``{entry: pytree}`` learnable loss parameters.
    * ``inputs``: batch-mode inputs.
    * ``memory``: memory-mode inputs (cross-batch memory), or None.
    * ``memory_active``: bool (may be traced): whether the memory term is used yet.
    * ``memory_factor``, ``memory_factor_true_loss``: weights ``f`` of the memory loss and ``f_t`` of
      the batch loss.
    * ``rng``: a PRNG key for random losses (black-box AP); each entry gets its own fold.
    * ``context``: data-set constants a loss may take by keyword (e.g. ``proxy_labels`` for CSL); given
      to the losses whose signature has them and whose config does not set them.
    * ``logs[entry]`` is each loss's unweighted value (float32 scalars).

  Raises:
    ValueError: a bad ``config.losses`` (:func:`entries`).
  """
  if registry is None:
    from suprank_jax.losses import LOSSES as registry  # pylint: disable=g-import-not-at-top
  terms = [
    (entry, loss_def, weight, loss_kwargs(loss_def.fn, hp), _keyword_filter(loss_def.fn))
    for entry, loss_def, weight, hp in entries(losses_config, registry)
  ]

  def loss_fn(
    loss_params,
    inputs: LossInputs,
    *,
    memory: LossInputs | None = None,
    memory_active=False,
    memory_factor: float = 1.0,
    memory_factor_true_loss: float = 1.0,
    rng=None,
    context: Mapping[str, Any] | None = None,
  ):
    total = jnp.zeros((), jnp.float32)
    logs = {}
    for i, (entry, loss_def, weight, hp, accepted) in enumerate(terms):
      extra = dict(context or {})
      if rng is not None:
        extra["rng"] = jax.random.fold_in(rng, i)
      kwargs = {**accepted({k: v for k, v in extra.items() if k not in hp}), **hp}
      params = loss_params.get(entry)
      if memory is not None and loss_def.uses_reference:
        value = xbm.with_memory(
          loss_def.fn,
          inputs,
          memory,
          params,
          active=memory_active,
          factor=memory_factor,
          factor_true_loss=memory_factor_true_loss,
          **kwargs,
        )
      else:
        value = loss_def.fn(inputs, params, **kwargs)
      logs[entry] = value.astype(jnp.float32)
      total = total + weight * logs[entry]
    return total, logs

  return loss_fn


def weighted_loss(loss_params, inputs: LossInputs, losses_config, registry, **kwargs):
  """The weighted sum of the configured losses on ``inputs``, in one call: ``make_loss_fn(losses_config,
  registry)(loss_params, inputs, **kwargs)`` (arguments and result: :func:`make_loss_fn`)."""
  return make_loss_fn(losses_config, registry)(loss_params, inputs, **kwargs)
