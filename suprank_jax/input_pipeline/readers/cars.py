"""Cars196 (``cars_annos.mat``) with the reference's model -> body type hierarchy."""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["cars", "BODY_TYPE", "CARS_LAYOUT"]

# Model 1..196 -> body type 1..9 (the reference's suprank/datasets/cars196.py ``trees``).
BODY_TYPE = np.array([
    7, 6, 6, 6, 6, 3, 4, 2, 3, 2, 3, 2, 3, 3, 3, 6, 6, 9, 4, 6, 2, 3, 6, 6, 3, 6, 2, 3, 6, 9, 2, 7, 7, 3, 6, 2,
    7, 2, 2, 6, 6, 3, 3, 6, 2, 3, 6, 7, 6, 7, 6, 7, 1, 1, 2, 3, 3, 7, 2, 5, 6, 7, 6, 8, 1, 3, 6, 7, 1, 1, 8, 3,
    6, 1, 1, 7, 2, 5, 6, 2, 2, 9, 9, 9, 5, 1, 1, 8, 7, 1, 1, 9, 3, 7, 7, 6, 6, 4, 3, 2, 3, 2, 2, 3, 6, 1, 2, 5,
    7, 7, 1, 3, 1, 1, 6, 9, 6, 7, 8, 7, 7, 1, 2, 1, 1, 5, 5, 3, 6, 4, 7, 7, 7, 6, 6, 6, 6, 6, 4, 6, 3, 7, 7, 3,
    7, 7, 7, 7, 7, 3, 3, 3, 3, 7, 7, 6, 2, 2, 7, 3, 2, 6, 3, 6, 6, 8, 6, 4, 8, 4, 3, 3, 6, 5, 2, 6, 6, 4, 2, 3,
    6, 6, 4, 6, 6, 7, 6, 6, 7, 4, 4, 4, 4, 6, 7, 2], np.int32)

CARS_LAYOUT = """
  cars_annos.mat   MATLAB struct 'annotations' with fields relative_im_path, class (1..196)
  car_ims/*.jpg    the images, at the relative_im_path of each annotation
"""


def cars(data_dir: str, split: str = "train") -> sources.Source:
  """Cars196: levels ``(model, type)``; ``train`` = classes 1-98, ``test`` = 99-196."""
  from scipy.io import loadmat  # pylint: disable=g-import-not-at-top

  common.check_split("cars", split, ("train", "test", "all"))
  root = common.data_folder("cars", data_dir, CARS_LAYOUT)
  mat_path = common.require("cars", os.path.join(root, "cars_annos.mat"), CARS_LAYOUT)
  annotations = loadmat(mat_path)["annotations"][0]
  paths, model = [], []
  for n, a in enumerate(annotations):
    c = int(np.asarray(a["class"]).ravel()[0])
    if not 1 <= c <= 196:
      raise ValueError(f"{mat_path}: annotation {n} has class {c}, out of range 1..196")
    if split == "all" or (c <= 98) == (split == "train"):
      paths.append(os.path.join(root, str(np.asarray(a["relative_im_path"]).ravel()[0])))
      model.append(c)
  model = np.array(model, np.int32)
  raw = np.stack([model, BODY_TYPE[model - 1]], axis=1) if len(model) else np.zeros((0, 2), np.int32)
  return sources.make_source(f"cars/{split}", raw, ("model", "type"), paths=paths, index_files=(mat_path,))
