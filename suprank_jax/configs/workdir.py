"""The config of an existing run, read back from its ``config.yaml``.

As a config file it lets a run's config take ``--config.*`` overrides, e.g. to evaluate a trained
run on another copy of its data set::

  python -m suprank_jax.evaluate --workdir runs/sop \\
    --config suprank_jax/configs/workdir.py:runs/sop --config.input.data_dir=/mnt/other/Stanford_Online_Products
"""

from __future__ import annotations

import os

import ml_collections
import yaml

__all__ = ["load", "get_config"]


def _tuples(value):
  """YAML writes tuples as lists; the configs use tuples (ml_collections cannot override lists)."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def load(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to ``<workdir>/config.yaml``.

  Raises:
    FileNotFoundError: the workdir holds no config.yaml (not a run of this trainer).
  """
  path = os.path.join(os.path.expanduser(workdir), "config.yaml")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} does not exist: --workdir must be the folder of a run of suprank_jax.train")
  with open(path, encoding="utf-8") as f:
    data = yaml.safe_load(f)
  if not isinstance(data, dict):
    raise ValueError(f"{path} is not a config written by suprank_jax.train")
  return ml_collections.ConfigDict(_tuples(data))


def get_config(arg: str | None = None):
  if not arg:
    raise ValueError("give the run's folder: --config suprank_jax/configs/workdir.py:<workdir>")
  return load(arg)
