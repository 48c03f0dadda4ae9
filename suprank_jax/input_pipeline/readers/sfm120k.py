"""retrieval-SfM-120k (Radenovic et al., cirtorch), as the original's ``suprank/datasets/sfm120k.py`` reads it.

``retrieval-SfM-120k-imagenames-clusterids.mat`` holds ``cids`` (image names) and ``cluster`` (the 3D
model of each image, the class); the images are at ``ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>``
(no extension). One split, ``train``; ``min_images_per_class`` is the original's ``num_samples_th``
(classes with fewer images dropped).
"""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["sfm120k", "SFM120K_LAYOUT"]

SFM120K_LAYOUT = """
  retrieval-SfM-120k-imagenames-clusterids.mat   'cids' (image names) and 'cluster' (class of each image)
  ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>  the images (no extension)
"""


def _sfm_path(root: str, cid: str) -> str:
  return os.path.join(root, "ims", cid[-2:], cid[-4:-2], cid[-6:-4], cid)


def sfm120k(data_dir: str, split: str = "train", *, min_images_per_class: int = 0) -> sources.Source:
  """retrieval-SfM-120k: the training images and their 3D-model (cluster) labels."""
  from scipy.io import loadmat  # pylint: disable=g-import-not-at-top

  common.check_split("sfm120k", split, ("train",))
  root = common.data_folder("sfm120k", data_dir, SFM120K_LAYOUT)
  index = common.require("sfm120k", os.path.join(root, "retrieval-SfM-120k-imagenames-clusterids.mat"), SFM120K_LAYOUT)
  db = loadmat(index)
  for key in ("cids", "cluster"):
    if key not in db:
      raise ValueError(f"sfm120k: {index} has no {key!r} (found {sorted(k for k in db if not k.startswith('__'))})")
  cids = [str(np.asarray(x).reshape(-1)[0]) for x in db["cids"].reshape(-1)]
  clusters = np.asarray(db["cluster"], np.int64).reshape(-1)
  if len(cids) != len(clusters):
    raise ValueError(f"sfm120k: {index} has {len(cids)} cids but {len(clusters)} clusters")
  keep = np.ones(len(cids), bool)
  if min_images_per_class > 1:
    _, inverse, counts = np.unique(clusters, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= min_images_per_class
  return sources.make_source(
    f"sfm120k/{split}",
    clusters[keep][:, None],
    ("cluster",),
    paths=[_sfm_path(root, c) for c, k in zip(cids, keep) if k],
    index_files=(index,),
  )
