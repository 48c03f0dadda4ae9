"""A run's folder (``--workdir``): where each of its files is, and its ``config.yaml`` read and written.

Layout::

  WORKDIR/
    config.yaml                     the run's resolved config (write_config); a resume with another
                                    config keeps the previous one as config.until_step_<N>[.<n>].yaml
    checkpoints/<step>/             the state and the input iterator (training.checkpoint)
    metrics.jsonl                   every logged scalar (reporting.MetricWriter)
    tensorboard/                    the same for TensorBoard (and tensorboard/pictures/)
    pictures/<name>_step<N>.png     the retrieval pictures (evaluation.pictures)
    summary.json                    the end of a run (the trainer)
    evaluations/step_<N>.json       python -m suprank_jax.evaluate
    .lock, .lock.process<i>         the run holding the folder (training.workdir_lock)

An exported index folder holds a ``config.yaml`` too (the run's), read the same way.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import yaml

__all__ = ["RunDir"]


def _tuples(value):
  """YAML writes tuples as lists; the configs use tuples (ml_collections cannot override lists)."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


class _InRun:
  """A file or folder of the run: ``run.<name>`` is its path."""

  def __init__(self, name: str):
    self.name = name

  def __get__(self, run, owner=None):
    return self if run is None else os.path.join(run.path, self.name)


@dataclasses.dataclass(frozen=True)
class RunDir:
  """The folder ``path`` of a run, and the paths of its files (see the module docstring)."""

  path: str

  config = _InRun("config.yaml")
  checkpoints = _InRun("checkpoints")
  metrics = _InRun("metrics.jsonl")
  tensorboard = _InRun("tensorboard")
  pictures = _InRun("pictures")
  summary = _InRun("summary.json")
  evaluations = _InRun("evaluations")

  def read_config_dict(self, *, hint: str = "") -> dict | None:
    """The ``config.yaml`` as written (a dict of lists), or None when there is none.

    Raises:
      ValueError: the file is not a config (naming it); not readable YAML (with ``hint``, what to do).
    """
    path = os.path.expanduser(self.config)
    if not os.path.isfile(path):
      return None
    with open(path, encoding="utf-8") as f:
      try:
        data = yaml.safe_load(f)
      except yaml.YAMLError as e:
        if not hint:
          raise
        raise ValueError(f"{path} is not readable YAML ({e}); {hint}") from e
    if not isinstance(data, dict):
      raise ValueError(f"{path} is not a config written by suprank_jax.train")
    return data

  def read_config(self) -> ml_collections.ConfigDict:
    """The resolved config the run wrote to ``config.yaml`` (its lists as tuples).

    Raises:
      FileNotFoundError: the folder holds no config.yaml (not a run of this trainer).
      ValueError: the file is not a config.
    """
    data = self.read_config_dict()
    if data is None:
      raise FileNotFoundError(
        f"{os.path.expanduser(self.config)} does not exist: --workdir must be the folder of a run of suprank_jax.train"
      )
    return ml_collections.ConfigDict(_tuples(data))

  def write_config(self, config, *, start_step: int = 0):
    """Writes ``config`` (a ``ConfigDict`` or a dict) to ``config.yaml``; a resume (``start_step > 0``)
    with another config first keeps the run's previous one as ``config.until_step_<start_step>.yaml``."""
    text = yaml.safe_dump(config.to_dict() if hasattr(config, "to_dict") else dict(config), sort_keys=False)
    if start_step and os.path.exists(self.config):
      with open(self.config, encoding="utf-8") as f:
        previous = f.read()
      if previous != text:
        keep, n = os.path.join(self.path, f"config.until_step_{start_step}.yaml"), 1
        while os.path.exists(keep):
          n += 1
          keep = os.path.join(self.path, f"config.until_step_{start_step}.{n}.yaml")
        os.replace(self.config, keep)
    with open(self.config, "w", encoding="utf-8") as f:
      f.write(text)
