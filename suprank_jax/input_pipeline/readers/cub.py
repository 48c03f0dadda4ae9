"""CUB-200-2011 with the reference's species -> family -> order hierarchy."""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["cub", "FAMILY_ORDER", "CUB_LAYOUT"]


def _expand_runs(runs):
  out = []
  for last, *values in runs:
    out.extend([tuple(values)] * (last - len(out)))
  return np.array(out, np.int32)


# Species 1..200 -> (family 1..38, order 1..13): the hierarchy of the reference (suprank/datasets/
# cub200.py ``trees``), as runs (last species of the run, family, order).
FAMILY_ORDER = _expand_runs(
  [
    (3, 35, 12),
    (4, 9, 6),
    (8, 4, 4),
    (13, 18, 8),
    (17, 13, 8),
    (18, 26, 8),
    (19, 21, 8),
    (20, 19, 8),
    (21, 24, 8),
    (22, 3, 3),
    (25, 37, 13),
    (27, 18, 8),
    (28, 14, 8),
    (30, 15, 8),
    (33, 9, 6),
    (35, 16, 8),
    (36, 33, 10),
    (43, 30, 8),
    (44, 38, 13),
    (45, 36, 12),
    (46, 1, 1),
    (48, 16, 8),
    (49, 18, 8),
    (53, 34, 11),
    (54, 13, 8),
    (56, 16, 8),
    (57, 13, 8),
    (58, 4, 4),
    (66, 5, 4),
    (70, 2, 2),
    (72, 6, 4),
    (75, 15, 8),
    (76, 24, 8),
    (78, 30, 8),
    (83, 7, 5),
    (84, 8, 5),
    (85, 11, 8),
    (86, 10, 7),
    (87, 1, 1),
    (88, 18, 8),
    (90, 1, 1),
    (91, 21, 8),
    (92, 3, 3),
    (93, 15, 8),
    (94, 27, 8),
    (98, 18, 8),
    (99, 23, 8),
    (101, 32, 9),
    (103, 30, 8),
    (104, 22, 8),
    (105, 3, 3),
    (106, 4, 4),
    (108, 15, 8),
    (109, 23, 8),
    (110, 9, 6),
    (112, 20, 8),
    (117, 24, 8),
    (118, 25, 8),
    (133, 24, 8),
    (134, 28, 8),
    (138, 17, 8),
    (140, 13, 8),
    (147, 5, 4),
    (148, 24, 8),
    (150, 21, 8),
    (157, 31, 8),
    (184, 23, 8),
    (186, 12, 8),
    (192, 33, 10),
    (199, 29, 8),
    (200, 23, 8),
  ]
)

CUB_LAYOUT = """
  images.txt               '<image_id> <relative path>' (e.g. 001.Black_footed_Albatross/..._0046_18.jpg)
  image_class_labels.txt   '<image_id> <class 1..200>'
  images/<relative path>
"""


def cub(data_dir: str, split: str = "train") -> sources.Source:
  """CUB-200-2011: levels ``(species, family, order)``; ``train`` = classes 1-100, ``test`` = 101-200."""
  common.check_split("cub", split, ("train", "test", "all"))
  root = common.data_folder("cub", data_dir, CUB_LAYOUT)
  images_txt = common.require("cub", os.path.join(root, "images.txt"), CUB_LAYOUT)
  labels_txt = common.require("cub", os.path.join(root, "image_class_labels.txt"), CUB_LAYOUT)
  rel = {row[0]: row[1] for row in common.read_rows(images_txt)}
  paths, species = [], []
  for n, (image_id, cls) in enumerate(common.read_rows(labels_txt), start=1):
    c = common.as_int(cls, f"{labels_txt}:{n}")
    if not 1 <= c <= 200:
      raise ValueError(f"{labels_txt}:{n}: class {c} is out of range 1..200")
    if image_id not in rel:
      raise ValueError(f"{labels_txt}:{n}: image id {image_id} is not in {images_txt}")
    if split == "all" or (c <= 100) == (split == "train"):
      paths.append(os.path.join(root, "images", rel[image_id]))
      species.append(c)
  species = np.array(species, np.int32)
  raw = (
    np.concatenate([species[:, None], FAMILY_ORDER[species - 1]], axis=1)
    if len(species)
    else np.zeros((0, 3), np.int32)
  )
  return sources.make_source(
    f"cub/{split}", raw, ("species", "family", "order"), paths=paths, index_files=(images_txt, labels_txt)
  )
