"""Pieces shared by every experiment config: the defaults of each group and the preset parser.

Every key has its default here (or in the owning module's ``default_config()``), so that
``--config.a.b=value`` overrides work under ``lock_config=True`` and a misspelt key fails.
"""

from __future__ import annotations

import ml_collections

from suprank_jax import optim
from suprank_jax.evaluation import retrieval
from suprank_jax.input_pipeline import pipeline

__all__ = ["base_config", "parse_arg", "eval_config"]


def eval_config(split: str = "test", gallery_split: str = "") -> ml_collections.ConfigDict:
  """One evaluation: embed ``split`` (and ``gallery_split``, if any) and compute retrieval metrics.

  An empty ``gallery_split`` means leave-one-out retrieval inside ``split``.
  """
  c = ml_collections.ConfigDict()
  c.split = split
  c.gallery_split = gallery_split
  c.batch_size = 256
  c.metrics = retrieval.default_config()
  return c


def base_config() -> ml_collections.ConfigDict:
  """Defaults of every key the trainer reads."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.total_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = 0  # 0: evaluate only before training and at the end
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 2
  config.resume = ""  # a checkpoint folder to start from when the workdir has none
  config.tensorboard = True

  config.input = pipeline.default_config()
  config.model = ml_collections.ConfigDict()
  config.losses = ml_collections.ConfigDict()
  # Cross-batch memory (XBM): size 0 disables it. Reference configs: activate at epoch 5, both factors 1.
  config.xbm = ml_collections.ConfigDict()
  config.xbm.size = 0
  config.xbm.activate_epoch = 5
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
