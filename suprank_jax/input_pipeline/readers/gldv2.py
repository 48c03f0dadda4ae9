"""Google Landmarks v2: GLDv2-clean training, index (gallery) and test (queries), optionally with the
hierarchical labels of the original's cluster tables.
"""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["gldv2", "gldv2_hierarchical", "GLDV2_LAYOUT"]

GLDV2_LAYOUT = """
  train_clean.csv                 header 'landmark_id,images' (images: space-separated image ids)
  index_image_to_landmark.csv     header 'id,landmark_id' (the gallery)
  retrieval_solution_v2.1.csv     header 'id,images[,Usage]' (queries; images = relevant index ids or 'None')
  train_label_to_subcategory_with_clusters.csv, index_label_to_subcategory_with_clusters.csv
                                  (hierarchical only) columns landmark_id, cluster, overall_cluster
  images/train/a/b/c/abc....jpg, index/a/b/c/..., test/a/b/c/...   (image id -> a/b/c/<id>.jpg)
"""


def _read_csv_dicts(path: str) -> list[dict[str, str]]:
  import csv  # pylint: disable=g-import-not-at-top

  with open(path, encoding="utf-8", newline="") as f:
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def _gld_path(root: str, folder: str, image_id: str) -> str:
  return os.path.join(root, folder, image_id[0], image_id[1], image_id[2], f"{image_id}.jpg")


def _gld(dataset: str, data_dir: str, split: str, *, hierarchical: bool, min_images_per_class: int) -> sources.Source:
  common.check_split(dataset, split, ("train", "query", "gallery"))
  root = common.data_folder(dataset, data_dir, GLDV2_LAYOUT)

  def need(name):
    return common.require(dataset, os.path.join(root, name), GLDV2_LAYOUT)

  def hierarchy(name):
    table = {}
    for row in _read_csv_dicts(need(name)):
      if row.get("cluster") and row.get("overall_cluster"):
        table[common.as_int(row["landmark_id"], name)] = (row["cluster"], row["overall_cluster"])
    return table

  def load(part):
    if part == "train":
      items = [
        (image_id, row["landmark_id"])
        for row in _read_csv_dicts(need("train_clean.csv"))
        for image_id in row["images"].split()
      ]
      folder = os.path.join("images", "train")
    else:
      landmark_of = {row["id"]: row["landmark_id"] for row in _read_csv_dicts(need("index_image_to_landmark.csv"))}
      if part == "gallery":
        items, folder = list(landmark_of.items()), "index"
      else:
        items, folder = [], "test"
        for row in _read_csv_dicts(need("retrieval_solution_v2.1.csv")):
          if row["images"] and row["images"] != "None":
            first = row["images"].split()[0]
            if first not in landmark_of:
              raise ValueError(
                f"{dataset}: query {row['id']} refers to index image {first}, which is not in "
                "index_image_to_landmark.csv"
              )
            items.append((row["id"], landmark_of[first]))
    items = [(i, common.as_int(lm, f"{dataset} landmark_id")) for i, lm in items]
    if hierarchical:
      table = hierarchy(
        "train_label_to_subcategory_with_clusters.csv"
        if part == "train"
        else "index_label_to_subcategory_with_clusters.csv"
      )
      # Landmarks without a cluster are left out (the reference's remove_nan).
      items = [(i, lm) for i, lm in items if lm in table]
      raw = [(lm, *table[lm]) for _, lm in items]
    else:
      raw = [(lm,) for _, lm in items]
    paths = [_gld_path(root, folder, i) for i, _ in items]
    return paths, np.array(raw, dtype=object).reshape(-1, 3 if hierarchical else 1)

  if split == "train":
    paths, raw = load("train")
    if min_images_per_class > 1:
      _, inverse, counts = np.unique(raw[:, 0], return_inverse=True, return_counts=True)
      keep = counts[inverse.reshape(-1)] >= min_images_per_class
      paths, raw = [p for p, k in zip(paths, keep) if k], raw[keep]
    labels = sources.remap_labels(raw)
  else:
    paths, labels = common.joint_labels(split, ("query", "gallery"), load)
  names = ("landmark", "cluster", "overall_cluster") if hierarchical else ("landmark",)
  index = {
    "train": "train_clean.csv",
    "query": "retrieval_solution_v2.1.csv",
    "gallery": "index_image_to_landmark.csv",
  }[split]
  return sources.make_source(
    f"{dataset}/{split}", labels, names, paths=paths, remap=False, index_files=(os.path.join(root, index),)
  )


def gldv2(data_dir: str, split: str = "train", *, min_images_per_class: int = 0) -> sources.Source:
  """Google Landmarks v2 (clean train; index = gallery, test = queries): level ``landmark``."""
  return _gld("gldv2", data_dir, split, hierarchical=False, min_images_per_class=min_images_per_class)


def gldv2_hierarchical(data_dir: str, split: str = "train", *, min_images_per_class: int = 0) -> sources.Source:
  """Hierarchical GLDv2: levels ``(landmark, cluster, overall_cluster)``; landmarks without a cluster
  in the hierarchy csv are dropped."""
  return _gld("gldv2_hierarchical", data_dir, split, hierarchical=True, min_images_per_class=min_images_per_class)
