"""Readers of the landmark data sets that ``sources.py`` does not hold, registered into ``sources.DATASETS``.

* ``revisitop1m``: the Revisited Oxford/Paris 1M distractor set (Radenovic et al., CVPR 2018), in the
  layout of its download script (``revisitop/download.py``): ``revisitop1m.txt`` lists the images,
  one path relative to ``jpg/`` a line (extension included). One split, ``distractors``; every item
  has label 0 (a distractor is relevant to no query).
* ``sfm120k``: retrieval-SfM-120k (Radenovic et al., cirtorch), as the original's
  ``suprank/datasets/sfm120k.py`` reads it: ``retrieval-SfM-120k-imagenames-clusterids.mat`` with
  ``cids`` (image names) and ``cluster`` (the 3D model of each image, the class), and the images at
  ``ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>`` (no extension). One split, ``train``;
  ``min_images_per_class`` is the original's ``num_samples_th`` (classes with fewer images dropped).

Revisited Oxford and Paris themselves are ``sources.roxford5k`` / ``sources.rparis6k`` (one data set
folder each). A landmark evaluation reads them from one folder holding ``roxford5k/``, ``rparis6k/``
and optionally ``revisitop1m/``, the layout of the revisitop and cirtorch downloads
(:func:`revisited_sets`).
"""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources

__all__ = ["revisitop1m", "sfm120k", "revisited_sets", "REVISITED_DATASETS", "DISTRACTOR_SET",
           "REVISITOP1M_LAYOUT", "SFM120K_LAYOUT", "REVISITED_ROOT_LAYOUT"]

REVISITED_DATASETS = ("roxford5k", "rparis6k")
DISTRACTOR_SET = "revisitop1m"

REVISITOP1M_LAYOUT = """
  revisitop1m.txt   one image a line, its path relative to jpg/ (e.g. a/b/abc.jpg)
  jpg/...           the images
"""

SFM120K_LAYOUT = """
  retrieval-SfM-120k-imagenames-clusterids.mat   'cids' (image names) and 'cluster' (class of each image)
  ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>  the images (no extension)
"""

REVISITED_ROOT_LAYOUT = """
  roxford5k/gnd_roxford5k.pkl, roxford5k/jpg/<name>.jpg
  rparis6k/gnd_rparis6k.pkl, rparis6k/jpg/<name>.jpg
  revisitop1m/revisitop1m.txt, revisitop1m/jpg/...   (optional: the 1M distractors)
"""


def _folder(dataset: str, data_dir: str, layout: str) -> str:
  if not data_dir:
    raise ValueError(f"{dataset}: the data folder is empty. Expected layout under it:\n{layout.strip()}")
  root = os.path.abspath(os.path.expanduser(data_dir))
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{dataset}: {root} does not exist. Expected layout under data_dir:\n{layout.strip()}")
  return root


def _index_file(dataset: str, root: str, name: str, layout: str) -> str:
  path = os.path.join(root, name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{dataset}: {path} does not exist. Expected layout under data_dir:\n{layout.strip()}")
  return path


def _one_split(dataset: str, split: str, valid: str):
  if split != valid:
    raise ValueError(f"{dataset}: unknown split {split!r}; valid: [{valid!r}]")


def revisitop1m(data_dir: str, split: str = "distractors") -> sources.Source:
  """The 1M distractors of Revisited Oxford/Paris: every image of ``revisitop1m.txt``, label 0."""
  _one_split(DISTRACTOR_SET, split, "distractors")
  root = _folder(DISTRACTOR_SET, data_dir, REVISITOP1M_LAYOUT)
  index = _index_file(DISTRACTOR_SET, root, "revisitop1m.txt", REVISITOP1M_LAYOUT)
  with open(index, encoding="utf-8") as f:
    names = [line.strip() for line in f if line.strip()]
  return sources.make_source(f"{DISTRACTOR_SET}/{split}", np.zeros((len(names), 1), np.int32), ("distractor",),
                             paths=[os.path.join(root, "jpg", name) for name in names], remap=False,
                             index_files=(index,))


def _sfm_path(root: str, cid: str) -> str:
  return os.path.join(root, "ims", cid[-2:], cid[-4:-2], cid[-6:-4], cid)


def sfm120k(data_dir: str, split: str = "train", *, min_images_per_class: int = 0) -> sources.Source:
  """retrieval-SfM-120k: the training images and their 3D-model (cluster) labels."""
  from scipy.io import loadmat  # pylint: disable=g-import-not-at-top

  _one_split("sfm120k", split, "train")
  root = _folder("sfm120k", data_dir, SFM120K_LAYOUT)
  index = _index_file("sfm120k", root, "retrieval-SfM-120k-imagenames-clusterids.mat", SFM120K_LAYOUT)
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
  return sources.make_source(f"sfm120k/{split}", clusters[keep][:, None], ("cluster",),
                             paths=[_sfm_path(root, c) for c, k in zip(cids, keep) if k], index_files=(index,))


def revisited_sets(data_dir: str, datasets=REVISITED_DATASETS, *, distractors: str = "auto"):
  """The Revisited benchmark of a folder in the revisitop / cirtorch layout.

  Args:
    data_dir: the folder holding ``roxford5k/``, ``rparis6k/`` (and ``revisitop1m/``).
    datasets: the benchmarks to read (``roxford5k``, ``rparis6k``).
    distractors: 'auto' (the 1M distractors when ``revisitop1m/revisitop1m.txt`` is there), 'yes'
      (required) or 'no'.

  Returns:
    ``({dataset: (query_source, gallery_source)}, distractor_source or None)``.

  Raises:
    FileNotFoundError / ValueError: a missing folder or file (naming it and the layout).
  """
  root = _folder("revisited", data_dir, REVISITED_ROOT_LAYOUT)
  sets = {}
  for name in datasets:
    if name not in REVISITED_DATASETS:
      raise ValueError(f"unknown Revisited data set {name!r}; valid: {REVISITED_DATASETS}")
    folder = os.path.join(root, name)
    sets[name] = (sources.DATASETS[name](folder, "query"), sources.DATASETS[name](folder, "gallery"))
  distractor_dir = os.path.join(root, DISTRACTOR_SET)
  present = os.path.isfile(os.path.join(distractor_dir, "revisitop1m.txt"))
  if distractors == "yes" or (distractors == "auto" and present):
    return sets, revisitop1m(distractor_dir, "distractors")
  return sets, None


for _name, _loader in (("revisitop1m", revisitop1m), ("sfm120k", sfm120k)):
  if _name not in sources.DATASETS:
    sources.register_dataset(_name, _loader)
