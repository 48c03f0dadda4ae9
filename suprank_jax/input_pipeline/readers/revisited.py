"""Revisited Oxford and Paris (Radenovic et al., CVPR 2018) and their 1M distractors.

* ``roxford5k``, ``rparis6k``: one data set folder each (``gnd_<name>.pkl`` and ``jpg/``); splits
  ``query`` (cropped to their box, with the ``easy``/``hard``/``junk`` lists in ``extras``) and
  ``gallery``.
* ``revisitop1m``: the 1M distractor set, in the layout of its download script
  (``revisitop/download.py``): ``revisitop1m.txt`` lists the images, one path relative to ``jpg/`` a
  line (extension included). One split, ``distractors``; every item has label 0 (a distractor is
  relevant to no query).

A landmark evaluation reads them from one folder holding ``roxford5k/``, ``rparis6k/`` and optionally
``revisitop1m/``, the layout of the revisitop and cirtorch downloads (:func:`revisited_sets`).
"""

from __future__ import annotations

import os

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = [
  "roxford5k",
  "rparis6k",
  "revisitop1m",
  "revisited_sets",
  "REVISITED_DATASETS",
  "DISTRACTOR_SET",
  "REVISITED_LAYOUT",
  "REVISITOP1M_LAYOUT",
  "REVISITED_ROOT_LAYOUT",
]

REVISITED_DATASETS = ("roxford5k", "rparis6k")
DISTRACTOR_SET = "revisitop1m"

REVISITED_LAYOUT = """
  gnd_<name>.pkl   pickle with 'imlist' (gallery names), 'qimlist' (query names) and 'gnd' (per query: 'bbx',
                   'easy', 'hard', 'junk'); <name> is roxford5k or rparis6k
  jpg/<image name>.jpg
"""


def _revisited(dataset: str, data_dir: str, split: str) -> sources.Source:
  import pickle  # pylint: disable=g-import-not-at-top

  common.check_split(dataset, split, ("query", "gallery"))
  root = common.data_folder(dataset, data_dir, REVISITED_LAYOUT)
  gnd_path = common.require(dataset, os.path.join(root, f"gnd_{dataset}.pkl"), REVISITED_LAYOUT)
  with open(gnd_path, "rb") as f:
    gnd = pickle.load(f)

  def load(part):
    names = gnd["qimlist" if part == "query" else "imlist"]
    # The landmark is the image name without its trailing '_<number>' (e.g. all_souls_000013).
    raw = np.array([name.rsplit("_", 1)[0] for name in names], dtype=object).reshape(-1, 1)
    return [os.path.join(root, "jpg", f"{name}.jpg") for name in names], raw

  paths, labels = common.joint_labels(split, ("query", "gallery"), load)
  extras, boxes = {}, None
  if split == "query":
    boxes = np.array([g["bbx"] for g in gnd["gnd"]], np.float64).reshape(-1, 4)
    extras = {k: [np.asarray(g[k], np.int64) for g in gnd["gnd"]] for k in ("easy", "hard", "junk")}
  return sources.Source(
    name=f"{dataset}/{split}",
    labels=labels,
    level_names=("landmark",),
    paths=tuple(paths),
    boxes=boxes,
    extras=extras,
    index_files=(gnd_path,),
  )


def roxford5k(data_dir: str, split: str = "query") -> sources.Source:
  """Revisited Oxford (``gnd_roxford5k.pkl``): queries (cropped to their box) and gallery."""
  return _revisited("roxford5k", data_dir, split)


def rparis6k(data_dir: str, split: str = "query") -> sources.Source:
  """Revisited Paris (``gnd_rparis6k.pkl``)."""
  return _revisited("rparis6k", data_dir, split)


REVISITOP1M_LAYOUT = """
  revisitop1m.txt   one image a line, its path relative to jpg/ (e.g. a/b/abc.jpg)
  jpg/...           the images
"""


def revisitop1m(data_dir: str, split: str = "distractors") -> sources.Source:
  """The 1M distractors of Revisited Oxford/Paris: every image of ``revisitop1m.txt``, label 0."""
  common.check_split(DISTRACTOR_SET, split, ("distractors",))
  root = common.data_folder(DISTRACTOR_SET, data_dir, REVISITOP1M_LAYOUT)
  index = common.require(DISTRACTOR_SET, os.path.join(root, "revisitop1m.txt"), REVISITOP1M_LAYOUT)
  with open(index, encoding="utf-8") as f:
    names = [line.strip() for line in f if line.strip()]
  return sources.make_source(
    f"{DISTRACTOR_SET}/{split}",
    np.zeros((len(names), 1), np.int32),
    ("distractor",),
    paths=[os.path.join(root, "jpg", name) for name in names],
    remap=False,
    index_files=(index,),
  )


REVISITED_ROOT_LAYOUT = """
  roxford5k/gnd_roxford5k.pkl, roxford5k/jpg/<name>.jpg
  rparis6k/gnd_rparis6k.pkl, rparis6k/jpg/<name>.jpg
  revisitop1m/revisitop1m.txt, revisitop1m/jpg/...   (optional: the 1M distractors)
"""


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
  root = common.data_folder("revisited", data_dir, REVISITED_ROOT_LAYOUT, setting="the data folder")
  sets = {}
  for name in datasets:
    if name not in REVISITED_DATASETS:
      raise ValueError(f"unknown Revisited data set {name!r}; valid: {REVISITED_DATASETS}")
    folder = os.path.join(root, name)
    sets[name] = (_revisited(name, folder, "query"), _revisited(name, folder, "gallery"))
  distractor_dir = os.path.join(root, DISTRACTOR_SET)
  present = os.path.isfile(os.path.join(distractor_dir, "revisitop1m.txt"))
  if distractors == "yes" or (distractors == "auto" and present):
    return sets, revisitop1m(distractor_dir, "distractors")
  return sets, None
