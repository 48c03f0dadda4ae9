"""The config of an existing run, read back from its ``config.yaml``.

As a config file it lets a run's config take ``--config.*`` overrides, e.g. to evaluate a trained
run on another copy of its data set::

  python -m suprank_jax.evaluate --workdir runs/sop \\
    --config suprank_jax/configs/workdir.py:runs/sop --config.input.data_dir=/mnt/other/Stanford_Online_Products
"""

from __future__ import annotations

import ml_collections

from suprank_jax.runtime.run_dir import RunDir

__all__ = ["load", "get_config"]


def load(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to ``<workdir>/config.yaml`` (:meth:`RunDir.read_config`).

  Raises:
    FileNotFoundError: the workdir holds no config.yaml (not a run of this trainer).
  """
  return RunDir(workdir).read_config()


def get_config(arg: str | None = None):
  if not arg:
    raise ValueError("give the run's folder: --config suprank_jax/configs/workdir.py:<workdir>")
  return load(arg)
