"""iNaturalist 2018 with the retrieval splits of Brown et al. (Smooth-AP) and its taxonomy."""

from __future__ import annotations

import functools
import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["inaturalist", "INAT_LEVELS", "INAT_LAYOUT"]

INAT_LAYOUT = """
  Inat_dataset_splits/Inaturalist_train_set1.txt, Inaturalist_test_set1.txt   one relative image path per line,
      e.g. train_val2018/Plantae/7477/3b60c9486db1d2ee875f11a669fbde4a.jpg (<super-category>/<species id>/)
  train2018.json   its 'categories' give each species id its taxonomy (genus, family, ..., kingdom)
  train_val2018/...   the images
"""
INAT_LEVELS = ("species", "genus", "family", "order", "class", "phylum", "kingdom")


@functools.lru_cache(maxsize=2)
def _inat_categories(path: str):
  import json  # pylint: disable=g-import-not-at-top

  with open(path, encoding="utf-8") as f:
    categories = json.load(f)["categories"]
  return {int(c["id"]): c for c in categories}


def inaturalist(data_dir: str, split: str = "train", *, mode: str = "base") -> sources.Source:
  """iNaturalist-2018 retrieval splits: ``mode='base'``: levels ``(species, super-category)``;
  ``mode='full'``: the 7 taxonomy levels ``species .. kingdom``. Splits ``train``/``test`` (disjoint
  species) and ``all`` (train then test, as the reference's ``mode='all'``)."""
  common.check_split("inaturalist", split, ("train", "test", "all"))
  if mode not in ("base", "full"):
    raise ValueError(f"inaturalist: mode={mode!r}; valid: ['base', 'full']")
  root = common.data_folder("inaturalist", data_dir, INAT_LAYOUT)
  rel_paths, parts, species, listings = [], [], [], []
  for part in ("train", "test") if split == "all" else (split,):
    listing = common.require(
      "inaturalist", os.path.join(root, "Inat_dataset_splits", f"Inaturalist_{part}_set1.txt"), INAT_LAYOUT
    )
    listings.append(listing)
    for n, row in enumerate(common.read_rows(listing, sep="\t"), start=1):
      parts.append(row[0].split("/"))
      if len(parts[-1]) < 3:
        raise ValueError(f"{listing}:{n}: expected '<folder>/<super-category>/<species id>/<file>', got {row[0]}")
      rel_paths.append(row[0])
      species.append(common.as_int(parts[-1][-2], f"{listing}:{n}"))
  if mode == "base":
    raw = np.array([(s, p[-3]) for s, p in zip(species, parts)], dtype=object).reshape(-1, 2)
    names = ("species", "super_category")
  else:
    categories = _inat_categories(common.require("inaturalist", os.path.join(root, "train2018.json"), INAT_LAYOUT))
    missing = sorted(set(species) - set(categories))
    if missing:
      raise ValueError(
        f"inaturalist: species ids {missing[:10]} of the {split} split are not in train2018.json categories"
      )
    raw = np.array([[s] + [str(categories[s][k]) for k in INAT_LEVELS[1:]] for s in species], dtype=object).reshape(
      -1, 7
    )
    names = INAT_LEVELS
  return sources.make_source(
    f"inaturalist/{split}", raw, names, paths=[os.path.join(root, p) for p in rel_paths], index_files=tuple(listings)
  )
