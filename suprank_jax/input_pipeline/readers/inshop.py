"""In-Shop Clothes Retrieval (DeepFashion): ``list_eval_partition.txt`` and the images."""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["inshop", "INSHOP_LAYOUT"]

INSHOP_LAYOUT = """
  list_eval_partition.txt   line 1: count, line 2: header, then '<image path> <item_id> <train|query|gallery>'
  img/<GENDER>/<category>/<item_id>/<file>.jpg
"""


def inshop(data_dir: str, split: str = "train", *, hierarchy_mode: str = "all") -> sources.Source:
  """In-Shop clothes: levels ``(item, category, gender)`` (``hierarchy_mode`` ``'all'``),
  ``(item, category)`` (``'1'``) or ``(item, gender)`` (``'2'``); splits ``train``/``query``/``gallery``
  (query and gallery ids agree)."""
  common.check_split("inshop", split, ("train", "query", "gallery"))
  modes = {"all": (0, 1, 2), "1": (0, 1), "2": (0, 2)}
  if hierarchy_mode not in modes:
    raise ValueError(f"inshop: hierarchy_mode={hierarchy_mode!r}; valid: {list(modes)}")
  root = common.data_folder("inshop", data_dir, INSHOP_LAYOUT)
  index = common.require("inshop", os.path.join(root, "list_eval_partition.txt"), INSHOP_LAYOUT)
  rows = common.read_rows(index, skip=2)

  def load(part):
    paths, raw = [], []
    for row in rows:
      if len(row) >= 3 and row[2] == part:
        parts = row[0].split("/")
        paths.append(os.path.join(root, row[0]))
        raw.append((row[1], parts[2] if len(parts) > 3 else "", parts[1] if len(parts) > 3 else ""))
    return paths, np.array(raw, dtype=object).reshape(-1, 3)

  paths, labels = common.joint_labels(split, ("query", "gallery"), load) if split != "train" else load("train")
  if split == "train":
    labels = sources.remap_labels(labels)
  names = ("item", "category", "gender")
  keep = modes[hierarchy_mode]
  return sources.make_source(
    f"inshop/{split}", labels[:, keep], tuple(names[k] for k in keep), paths=paths, remap=False, index_files=(index,)
  )
