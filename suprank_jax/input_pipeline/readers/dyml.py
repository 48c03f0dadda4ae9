"""DyML-Vehicle, DyML-Animal and DyML-Product (Sun et al., CVPR 2021): ``label.csv`` tables read by
column name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = [
  "dyml_vehicle",
  "dyml_animal",
  "dyml_product",
  "TEST_SPLITS",
  "DYML_TRAIN_COLUMNS",
  "DYML_BENCHMARK_COLUMNS",
  "DYML_LAYOUT",
]

DYML_LAYOUT = """
  train/label.csv      ', '-separated, columns named fname, coarse_id, middle_id, fine_id (read by name); in the
                       release the header runs into the first record: 'fname, coarse_id, middle_id, fine_id0.jpg,
                       <coarse>, <middle>, <fine>', then one '<file>, <coarse>, <middle>, <fine>' per line
  train/imgs/<file>
  bmk_{fine,middle,coarse}/{query,gallery}.csv   columns fname, labels (release: 'fname, labels0.jpg, <label>',
                       then '<file>, <label>')   (Vehicle, Animal)
  bmk_<level>/{query,gallery}/<file>
  mini-bmk_all_in_one/label.csv, mini-bmk_all_in_one/imgs/<file>   (Product: same columns as train)
"""
TEST_SPLITS = tuple(f"test_{kind}_{level}" for level in ("fine", "middle", "coarse") for kind in ("query", "gallery"))
DYML_TRAIN_COLUMNS = ("fine_id", "middle_id", "coarse_id")  # finest first
DYML_BENCHMARK_COLUMNS = ("labels",)


def _dyml_header(path: str, line: str, names: Sequence[str]) -> tuple[list[str], list[str] | None]:
  """The column names of a DyML csv's first line, and the first record when it is glued to them.

  Two shapes are accepted: a header on its own line (the names ``names`` in any order), or the
  release's header whose last name runs into the first record without a line break (``'fname,
  coarse_id, middle_id, fine_id0.jpg, 3, 17, 804'``: names, then the record ``0.jpg, 3, 17, 804``).

  Returns:
    ``(header, record)``: the names in file order, and the glued record's fields in that order
    (``None`` for a header on its own line).

  Raises:
    ValueError: the line has neither shape (the message names the file).
  """
  fields = [x.strip() for x in line.split(",")]
  h = len(names)
  if len(fields) == h and sorted(fields) == sorted(names):
    return fields, None
  if len(fields) == 2 * h - 1:
    named = fields[: h - 1]
    missing = [name for name in names if name not in named]
    glued = fields[h - 1]
    if (
      len(missing) == 1
      and sorted(named + missing) == sorted(names)
      and glued.startswith(missing[0])
      and glued[len(missing[0]) :].strip()
    ):
      return named + missing, [glued[len(missing[0]) :].strip()] + fields[h:]
  raise ValueError(
    f"{path}: line 1 {line.strip()!r} is not a header with the columns {', '.join(names)} (any order), "
    f"neither on its own line nor running into the first record as in the DyML release (e.g. "
    f"'fname, coarse_id, middle_id, fine_id0.jpg, 3, 17, 804')"
  )


def _dyml_table(dataset: str, path: str, folder: str, label_columns: Sequence[str]):
  """Image paths and int64 labels ``[N, len(label_columns)]`` of a DyML csv, columns selected by name.

  The original reader (SupRank/HAPPIER ``suprank/datasets/dyml.py``) selects them with pandas,
  ``table[[" fine_id0.jpg", " middle_id", " coarse_id"]]`` (``" labels0.jpg"`` for a benchmark): the
  release's header runs into the first record, which pandas turns into column names, so the
  original drops that record. We recover it, as the DyML authors' reader does
  (``train_data[0].split('_id')[-1]``), and log it.
  """
  common.require(dataset, path, DYML_LAYOUT)
  with open(path, encoding="utf-8") as f:
    lines = [(n, line) for n, line in enumerate(f.read().splitlines(), start=1) if line.strip()]
  names = ("fname", *label_columns)
  if not lines:
    raise ValueError(f"{path}: empty file; expected a header with the columns {', '.join(names)}")
  header, first = _dyml_header(path, lines[0][1], names)
  if first is not None:
    logging.getLogger(__name__).info(
      "%s: the header runs into the first record (%s); recovered it (the SupRank/HAPPIER pandas reader drops it)",
      path,
      ", ".join(first),
    )
  records = ([(1, first)] if first is not None else []) + [
    (n, [x.strip() for x in line.split(",")]) for n, line in lines[1:]
  ]
  column = {name: header.index(name) for name in names}
  paths, raw = [], []
  for n, row in records:
    if len(row) != len(header):
      raise ValueError(f"{path}:{n}: expected {len(header)} fields ({', '.join(header)}), got {row}")
    paths.append(os.path.join(folder, row[column["fname"]]))
    raw.append([common.as_int(row[column[c]], f"{path}:{n} column {c}") for c in label_columns])
  return paths, np.array(raw, np.int64).reshape(-1, len(label_columns))


def _dyml(dataset: str, data_dir: str, split: str, *, product: bool) -> sources.Source:
  valid = ("train", "test") if product else ("train",) + TEST_SPLITS
  common.check_split(dataset, split, valid)
  root = common.data_folder(dataset, data_dir, DYML_LAYOUT)
  levels = ("fine", "middle", "coarse")
  if split == "train" or product:
    folder = "train" if split == "train" else "mini-bmk_all_in_one"
    table = os.path.join(root, folder, "label.csv")
    paths, raw = _dyml_table(dataset, table, os.path.join(root, folder, "imgs"), DYML_TRAIN_COLUMNS)
    return sources.make_source(f"{dataset}/{split}", raw, levels, paths=paths, index_files=(table,))
  _, _, level = split.split("_")

  def load(s):
    kind = s.split("_")[1]
    return _dyml_table(
      dataset,
      os.path.join(root, f"bmk_{level}", f"{kind}.csv"),
      os.path.join(root, f"bmk_{level}", kind),
      DYML_BENCHMARK_COLUMNS,
    )

  pair = (f"test_query_{level}", f"test_gallery_{level}")
  paths, labels = common.joint_labels(split, pair, load)
  table = os.path.join(root, f"bmk_{level}", f"{split.split('_')[1]}.csv")
  return sources.make_source(f"{dataset}/{split}", labels, (level,), paths=paths, remap=False, index_files=(table,))


def dyml_vehicle(data_dir: str, split: str = "train") -> sources.Source:
  """DyML-Vehicle: train levels ``(fine, middle, coarse)`` from the columns ``fine_id, middle_id,
  coarse_id`` (the file stores them coarse first); test splits ``test_{query,gallery}_<level>`` have the
  one level of their benchmark, with ids shared by the query and gallery of a level. Each benchmark
  gallery holds a copy of every query (``query_copies.find_query_copies`` finds them)."""
  return _dyml("dyml_vehicle", data_dir, split, product=False)


def dyml_animal(data_dir: str, split: str = "train") -> sources.Source:
  """DyML-Animal (same layout as DyML-Vehicle)."""
  return _dyml("dyml_animal", data_dir, split, product=False)


def dyml_product(data_dir: str, split: str = "train") -> sources.Source:
  """DyML-Product: splits ``train`` and ``test`` (``mini-bmk_all_in_one``), levels ``(fine, middle, coarse)``
  from the columns ``fine_id, middle_id, coarse_id``."""
  return _dyml("dyml_product", data_dir, split, product=True)
