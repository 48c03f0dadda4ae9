"""What the raw-folder readers share: the data folder and index files checked (a missing one named with
the layout expected), split names, text rows, integer labels, and query/gallery labels remapped together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from suprank_jax.input_pipeline import sources

__all__ = ["require", "check_split", "data_folder", "read_rows", "as_int", "joint_labels"]


def require(dataset: str, path: str, layout: str, *, is_dir: bool = False) -> str:
  """``path`` when the file (folder, with ``is_dir``) is there.

  Raises:
    FileNotFoundError: naming ``path`` and the ``layout`` expected under the data folder.
  """
  if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
    raise FileNotFoundError(f"{dataset}: {path} does not exist. Expected layout under data_dir:\n{layout.strip()}")
  return path


def check_split(dataset: str, split: str, valid: Sequence[str]):
  if split not in valid:
    raise ValueError(f"{dataset}: unknown split {split!r}; valid: {list(valid)}")


def data_folder(dataset: str, data_dir: str, layout: str, *, setting: str = "config.input.data_dir") -> str:
  """The absolute data folder ``data_dir`` (``~`` expanded), which must exist.

  Raises:
    ValueError: ``data_dir`` is empty (naming ``setting``, where it comes from).
    FileNotFoundError: the folder is not there.
  """
  if not data_dir:
    raise ValueError(f"{dataset}: {setting} is empty. Expected layout under data_dir:\n{layout.strip()}")
  return require(dataset, os.path.abspath(os.path.expanduser(data_dir)), layout, is_dir=True)


def read_rows(path: str, *, sep: str | None = None, skip: int = 0) -> list[list[str]]:
  """Non-empty lines of a text file split on ``sep`` (whitespace when None), stripped."""
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()[skip:]
  return [[x.strip() for x in line.split(sep)] for line in lines if line.strip()]


def as_int(value: str, where: str) -> int:
  try:
    return int(float(value))
  except ValueError as e:
    raise ValueError(f"{where}: expected an integer label, got {value!r}") from e


def joint_labels(split: str, pair: Sequence[str], loader: Callable[[str], tuple[list[str], np.ndarray]]):
  """Loads a query/gallery pair and remaps labels over both, so that their ids agree.

  Returns:
    ``(paths, labels)`` of ``split``, one of ``pair``.
  """
  parts = {s: loader(s) for s in pair}
  raw = np.concatenate([parts[s][1] for s in pair])
  labels = sources.remap_labels(raw)
  start = 0
  for s in pair:
    n = len(parts[s][0])
    if s == split:
      return parts[s][0], labels[start : start + n]
    start += n
  raise AssertionError(split)
