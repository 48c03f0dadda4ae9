"""Stanford Online Products (Song et al., CVPR 2016): ``Ebay_{train,test}.txt`` and the images."""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["sop", "SOP_LAYOUT"]

SOP_LAYOUT = """
  Ebay_train.txt, Ebay_test.txt   header 'image_id class_id super_class_id path', one image per line
  <path>                          e.g. bicycle_final/111085122871_0.JPG
"""


def sop(data_dir: str, split: str = "train") -> sources.Source:
  """Stanford Online Products: levels ``(product, category)``; splits ``train``/``test``/``all``."""
  common.check_split("sop", split, ("train", "test", "all"))
  root = common.data_folder("sop", data_dir, SOP_LAYOUT)
  paths, raw, indexes = [], [], []
  for part in ("train", "test") if split == "all" else (split,):
    index = common.require("sop", os.path.join(root, f"Ebay_{part}.txt"), SOP_LAYOUT)
    indexes.append(index)
    for n, row in enumerate(common.read_rows(index, skip=1), start=2):
      if len(row) < 4:
        raise ValueError(f"{index}:{n}: expected 'image_id class_id super_class_id path', got {row}")
      raw.append((common.as_int(row[1], f"{index}:{n}"), common.as_int(row[2], f"{index}:{n}")))
      paths.append(os.path.join(root, row[3]))
  return sources.make_source(
    f"sop/{split}", np.array(raw).reshape(-1, 2), ("product", "category"), paths=paths, index_files=tuple(indexes)
  )
