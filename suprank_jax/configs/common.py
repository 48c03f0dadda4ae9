"""Pieces shared by every experiment config: the defaults of each group and the preset parser.

Every key has its default here (or in the owning module's ``default_config()``), so that
``--config.a.b=value`` overrides work under ``lock_config=True`` and a misspelt key fails.

Run length and intervals come in pairs, one in steps and one in epochs of the sampler (the
original counts ``max_iter``, evaluation and checkpoint frequencies in epochs); at most one of a pair
is non-zero, and the trainer turns epochs into steps from the data set and batch:
``total_steps`` / ``num_epochs``, ``eval_every_steps`` / ``eval_every_epochs``,
``checkpoint_every_steps`` / ``checkpoint_every_epochs`` (and in ``config.optim``: ``warmup_*``,
``decay_*``, ``freeze_*``).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from suprank_jax import losses, models, optim
from suprank_jax.evaluation import embedding_store, landmarks, retrieval
from suprank_jax.input_pipeline import pipeline

__all__ = [
  "base_config",
  "parse_arg",
  "eval_config",
  "revisited_eval_config",
  "losses_config",
  "set_loss",
  "add_loss",
  "set_model",
  "EVAL_KEYS",
]

# Keys of an evaluation (config.evals.<name>) besides its metric settings (metrics, revisited).
EVAL_KEYS = (
  "kind",
  "split",
  "gallery_split",
  "gallery_contains_queries",
  "batch_size",
  "dataset",
  "data_dir",
  "dataset_kwargs",
  "cache_dir",
  "cache_min_items",
  "keep_embeddings",
)


def eval_config(split: str = "test", gallery_split: str = "", **overrides: Any) -> ml_collections.ConfigDict:
  """One evaluation: by default (``kind='retrieval'``) embed ``split`` (and ``gallery_split``, if any)
  and compute retrieval metrics.

  An empty ``gallery_split`` means leave-one-out retrieval inside ``split``. ``dataset``,
  ``data_dir`` and ``dataset_kwargs`` name the data set to read when it is not the training one
  (empty: those of ``config.input``); the preprocessing is ``config.input``'s evaluation transform.
  ``gallery_contains_queries``: the gallery holds a copy of every query (DyML-Vehicle/Animal
  benchmarks, the original's ``gallery_distractor``); each query's copy, found by identical path or
  identical image content, is removed from its ranking.

  Sets of at least ``cache_min_items`` images (either kind: an H-GLDv2 index, iNaturalist's test set,
  the 1M Revisited distractors) are embedded into an on-disk store under ``cache_dir`` ('':
  ``$XDG_CACHE_HOME`` or ``~/.cache``, then ``suprank_jax/embeddings``) named by the weights and the
  preprocessing: an interrupted embedding resumes there, the searches read it in blocks (memory
  bounded whatever its size), and it is deleted once the evaluation is done unless
  ``keep_embeddings``.

  ``kind='revisited'`` is Revisited Oxford/Paris instead (see :func:`revisited_eval_config`): it reads
  ``data_dir``, ``batch_size`` and the settings ``revisited`` (``landmarks.default_config``), not the
  splits nor ``metrics``.

  Args:
    split: the query split (or the only split).
    gallery_split: the gallery split ('' for leave-one-out).
    **overrides: other keys of the evaluation; ``metrics`` and ``revisited`` may be dicts of their
      settings (see ``retrieval.default_config`` and ``landmarks.default_config``).

  Raises:
    ValueError: for a key that is not an evaluation, metric or Revisited setting.
  """
  c = ml_collections.ConfigDict()
  c.kind = "retrieval"
  c.split = split
  c.gallery_split = gallery_split
  c.gallery_contains_queries = False
  c.batch_size = 256
  c.dataset = ""
  c.data_dir = ""
  c.dataset_kwargs = ml_collections.ConfigDict()
  c.update(embedding_store.STORE_DEFAULTS)  # cache_dir, cache_min_items, keep_embeddings
  c.metrics = retrieval.default_config()
  c.revisited = landmarks.default_config()
  metric_overrides = dict(overrides.pop("metrics", {}) or {})
  revisited_overrides = dict(overrides.pop("revisited", {}) or {})
  unknown = sorted(set(overrides) - set(EVAL_KEYS))
  if unknown:
    raise ValueError(f"evaluation keys {unknown} are unknown; valid: {sorted(EVAL_KEYS + ('metrics', 'revisited'))}")
  for group, given in (("metrics", metric_overrides), ("revisited", revisited_overrides)):
    unknown = sorted(set(given) - set(c[group].keys()))
    if unknown:
      raise ValueError(f"evaluation {group} keys {unknown} are unknown; valid: {sorted(c[group].keys())}")
  for key, value in overrides.items():
    c[key] = ml_collections.ConfigDict(value) if key == "dataset_kwargs" else value
  for key, value in metric_overrides.items():
    if key in ("relevance", "scann"):
      c.metrics[key].update(value)
    else:
      c.metrics[key] = value
  c.revisited.update(revisited_overrides)
  return c


def revisited_eval_config(data_dir: str = "", *, batch_size: int = 16, **settings: Any) -> ml_collections.ConfigDict:
  """A Revisited Oxford/Paris evaluation (``kind='revisited'``): ROxford5k and RParis6k (and the 1M
  distractors when present) from ``data_dir`` (the folder holding ``roxford5k/``, ``rparis6k/`` and
  ``revisitop1m/``), ``batch_size`` images of one shape per batch, and the settings of
  ``landmarks.default_config`` (``max_side``, ``multiscale``, ``search``, ...)."""
  return eval_config("", kind="revisited", data_dir=data_dir, batch_size=batch_size, revisited=settings)


def losses_config() -> ml_collections.ConfigDict:
  """Every registered loss, off (weight 0) with its default hyper-parameters."""
  c = ml_collections.ConfigDict()
  for name in losses.LOSSES:
    c[name] = losses.combine.default_config(name)
  return c


def set_loss(config: ml_collections.ConfigDict, entry: str, weight: float, **hyper_parameters: Any):
  """Turns on ``config.losses.<entry>`` with ``weight`` and sets its hyper-parameters (a misspelt
  one raises: the entry is locked)."""
  if entry not in config.losses:
    raise ValueError(f"config.losses has no entry {entry!r}; use add_loss for a second entry of a loss")
  config.losses[entry].weight = float(weight)
  for key, value in hyper_parameters.items():
    if key not in config.losses[entry]:
      raise ValueError(f"config.losses.{entry} has no key {key!r}; valid: {sorted(config.losses[entry].keys())}")
    config.losses[entry][key] = value


def add_loss(config: ml_collections.ConfigDict, entry: str, name: str, weight: float, **hyper_parameters: Any):
  """Adds an entry ``entry`` of loss ``name`` (e.g. a triplet loss per label level)."""
  if entry in config.losses:
    raise ValueError(f"config.losses already has an entry {entry!r}")
  with config.losses.unlocked():
    config.losses[entry] = losses.combine.default_config(name, weight=weight, **hyper_parameters)


def set_model(config: ml_collections.ConfigDict, name: str, **keys: Any):
  """``config.model`` = every key of model ``name`` (``models.default_config``), then ``keys``."""
  c = models.default_config(name)
  unknown = sorted(set(keys) - set(c.keys()))
  if unknown:
    raise ValueError(f"model {name!r} has no key {unknown}; valid: {sorted(c.keys())}")
  c.update(keys)
  config.model = c


def base_config() -> ml_collections.ConfigDict:
  """Defaults of every key the trainer reads."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Run length and intervals: steps, or epochs of the training sampler (at most one of each pair).
  config.total_steps = 1000
  config.num_epochs = 0
  config.log_every_steps = 50
  config.eval_every_steps = 0  # 0 (and eval_every_epochs 0): evaluate only before training and at the end
  config.eval_every_epochs = 0
  config.eval_at_start = True  # evaluate before training too (the untrained row of the summary table)
  config.checkpoint_every_steps = 500
  config.checkpoint_every_epochs = 0
  config.checkpoint_every_minutes = 0.0  # also save after this many minutes since the last save (0: off)
  config.keep_checkpoints = 2
  config.resume = ""  # a checkpoint folder to start from when the workdir has none
  config.tensorboard = True

  config.input = pipeline.default_config()
  config.model = models.default_config("convnet")
  config.losses = losses_config()
  # Cross-batch memory (XBM): size 0 disables it. Reference configs: activate at epoch 5, both factors 1.
  config.xbm = ml_collections.ConfigDict()
  config.xbm.size = 0
  config.xbm.activate_epoch = 5  # epochs counted from 1, as the reference (memory used from this epoch on)
  config.xbm.factor = 1.0  # weight of the memory loss
  config.xbm.factor_true_loss = 1.0  # weight of the batch loss
  config.optim = optim.default_config()
  config.evals = ml_collections.ConfigDict()
  config.evals.test = eval_config("test")
  # DyML's overall accuracy across test sets (e.g. one per level): the mean of each per-level binary
  # metric over these evaluations, logged as the evaluation 'overall'. Empty: not computed.
  config.overall_accuracy_over = ()
  return config


def parse_arg(arg: str | None, **defaults):
  """Parses a ``file.py:key=value,key2=value2`` preset string into a ConfigDict of typed values.

  Each value takes the type of its default (bool accepts true/false/1/0), so a typo fails early.
  A bare word ``name`` sets the bool preset ``name`` to True (e.g. ``digits.py:smoke``).

  Raises:
    ValueError: for an unknown key or a value of the wrong type.
  """
  result = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r} in {arg!r}; valid: {sorted(defaults)}")
    default = defaults[key]
    if not sep:
      if not isinstance(default, bool):
        raise ValueError(f"config argument {key!r} needs a value ({key}=...)")
      result[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {key}={value!r} is not a bool")
      result[key] = value.lower() in ("true", "1")
    else:
      try:
        result[key] = type(default)(value)
      except ValueError as e:
        raise ValueError(f"config argument {key}={value!r}: expected {type(default).__name__}") from e
  return result
