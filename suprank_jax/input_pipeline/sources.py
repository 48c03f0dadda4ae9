"""Data sources: on-disk formats to images (or image paths) plus an ``[N, levels]`` label array.

A :class:`Source` is one split of one data set. Every loader in :data:`DATASETS` has the signature
``loader(data_dir, split, **kwargs) -> Source`` and :func:`get_source` picks one from ``config.input``.

Labels are remapped to contiguous ids ``0..K_l-1`` per level *within the split*, column 0 is the
finest level (e.g. SOP: ``[class_id, super_class_id]``).

The embedded ``digits`` data set (the default, no download):
  scikit-learn's bundled ``load_digits()``: 1,797 grey 8x8 images with values 0..16, returned as
  uint8 ``[N, 8, 8, 1]`` scaled to 0..255 (``round(v * 255 / 16)``). Two levels:

  * level 0 ``digit``: the digit, 10 classes;
  * level 1 ``shape``: a shape family, 3 classes: 0 = loops ``{0, 6, 8, 9}``, 1 = strokes
    ``{1, 4, 7}``, 2 = curves ``{2, 3, 5}``.

  Split (stratified per class; a class-disjoint split is impossible with 10 classes): the images of
  each digit, taken in ``load_digits()`` order, alternate between the splits: the 1st, 3rd, 5th, ...
  image of each digit go to ``train`` and the 2nd, 4th, ... to ``test``. This gives 901 train and
  896 test images, every digit in both. There is no randomness in the split.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import logging
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "Source", "ImageLoadError", "DATASETS", "get_source", "register_dataset", "make_source",
    "remap_labels", "digits", "DIGIT_SHAPE_GROUPS", "sop", "cub", "cars", "inshop", "inaturalist",
    "dyml_vehicle", "dyml_animal", "dyml_product", "gldv2", "gldv2_hierarchical", "roxford5k", "rparis6k",
    "single_image_classes", "report_single_image_classes", "missing_files", "check_files_exist", "tfds_source",
    "TFDS_OFFICIAL", "decode_image_file", "decode_image_bytes",
]


class ImageLoadError(ValueError):
  """An image file is missing, unreadable or corrupt (the message names the file)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
  """One split of a data set.

  Exactly one of ``images``, ``paths`` or ``records`` holds the pixels.

  Attributes:
    name: ``"<dataset>/<split>"``, used in messages.
    labels: int32 ``[N, L]``, ids ``>= 0`` per level, column 0 the finest; contiguous within a
      split, or over a query/gallery pair (so that the two splits' ids agree).
    level_names: ``L`` names, finest first.
    images: in-memory uint8 ``[N, H, W, C]``.
    paths: ``N`` image file paths (decoded with PIL, as RGB).
    records: a random-access sequence of ``N`` encoded images (bytes), e.g. an ArrayRecord/TFDS
      data source wrapped by :func:`make_source`; ``describe(i)`` names record ``i`` in messages.
    boxes: optional float ``[N, 4]`` crop boxes ``(x0, y0, x1, y1)`` in pixels, applied when
      loading (Revisited Oxford/Paris queries).
    extras: per-split metadata for evaluators (e.g. Revisited ``easy``/``hard``/``junk`` lists).
    channels: 3 (decode files/records as RGB) or 1 (as grey, ``[H, W, 1]``).
    index_files: the files (or folder) the split was read from, for messages.
  """

  name: str
  labels: np.ndarray
  level_names: tuple[str, ...]
  images: np.ndarray | None = None
  paths: tuple[str, ...] | None = None
  records: Sequence[bytes] | None = None
  describe: Callable[[int], str] | None = None
  boxes: np.ndarray | None = None
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  channels: int = 3
  index_files: tuple[str, ...] = ()

  def __post_init__(self):
    labels = np.asarray(self.labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"{self.name}: labels must be an integer [N, L] array, got {labels.dtype}{list(labels.shape)}")
    if labels.shape[1] != len(self.level_names):
      raise ValueError(f"{self.name}: labels have {labels.shape[1]} levels but level_names={self.level_names}")
    if labels.size and labels.min() < 0:
      raise ValueError(f"{self.name}: negative label {labels.min()} (labels must be contiguous ids >= 0)")
    given = [k for k in ("images", "paths", "records") if getattr(self, k) is not None]
    if len(given) != 1:
      raise ValueError(f"{self.name}: give exactly one of images, paths, records (got {given or 'none'})")
    n = len(getattr(self, given[0]))
    if n != len(labels):
      raise ValueError(f"{self.name}: {n} {given[0]} but {len(labels)} label rows")
    if self.images is not None and (self.images.ndim != 4 or self.images.dtype != np.uint8):
      raise ValueError(f"{self.name}: images must be uint8 [N, H, W, C], got {self.images.dtype}"
                       f"{list(self.images.shape)}")
    object.__setattr__(self, "labels", labels.astype(np.int32))
    if self.paths is not None:
      object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def num_levels(self) -> int:
    return self.labels.shape[1]

  @property
  def num_classes(self) -> tuple[int, ...]:
    """Number of classes per level."""
    return tuple(int(self.labels[:, i].max()) + 1 if len(self) else 0 for i in range(self.num_levels))

  def location(self, i: int) -> str:
    """Where item ``i`` comes from (file path or record), for messages."""
    if self.paths is not None:
      return self.paths[i]
    if self.describe is not None:
      return self.describe(i)
    return f"{self.name}[{i}]"

  def load_image(self, i: int) -> np.ndarray:
    """Item ``i`` as uint8 ``[H, W, C]`` (RGB for files).

    Raises:
      ImageLoadError: the file is missing or cannot be decoded (the message names it).
    """
    if self.images is not None:
      image = self.images[i]
    elif self.paths is not None:
      image = decode_image_file(self.paths[i], channels=self.channels)
    else:
      try:
        data = self.records[i]
      except Exception as e:  # noqa: BLE001 - any reader failure is reported with the record.
        raise ImageLoadError(f"cannot read {self.location(i)}: {type(e).__name__}: {e}") from e
      image = decode_image_bytes(data, what=self.location(i), channels=self.channels)
    if self.boxes is not None:
      x0, y0, x1, y1 = (int(round(v)) for v in self.boxes[i])
      image = image[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)]
    return image


def decode_image_bytes(data: bytes, *, what: str = "image", channels: int = 3) -> np.ndarray:
  """Decodes encoded image bytes to uint8 ``[H, W, channels]`` (RGB or grey)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(io.BytesIO(data)) as img:
      if channels == 1:
        return np.asarray(img.convert("L"))[..., None]
      return np.asarray(img.convert("RGB"))
  except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt data.
    raise ImageLoadError(f"cannot decode {what}: {type(e).__name__}: {e}") from e


def decode_image_file(path: str, *, channels: int = 3) -> np.ndarray:
  """Reads and decodes an image file to uint8 ``[H, W, channels]``."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ImageLoadError(f"cannot read image {path}: {e.strerror or e}") from e
  return decode_image_bytes(data, what=f"image {path}", channels=channels)


def remap_labels(raw: np.ndarray) -> np.ndarray:
  """Maps each column of ``raw`` ``[N, L]`` to contiguous ids ``0..K-1`` (order of the raw ids kept)."""
  raw = np.asarray(raw)
  if raw.ndim != 2:
    raise ValueError(f"raw labels must be [N, L], got shape {raw.shape}")
  out = np.zeros(raw.shape, np.int32)
  for level in range(raw.shape[1]):
    _, out[:, level] = np.unique(raw[:, level], return_inverse=True)
  return out


def make_source(name: str, raw_labels, level_names: Sequence[str], *, images=None, paths=None, records=None,
                describe=None, remap: bool = True, **kwargs) -> Source:
  """Builds a :class:`Source` from raw labels (any integer or string ids), remapped per level to
  ``0..K-1`` unless ``remap=False`` (labels already remapped, e.g. jointly over a query/gallery pair)."""
  raw_labels = np.asarray(raw_labels)
  if raw_labels.ndim == 1:
    raw_labels = raw_labels[:, None]
  return Source(name=name, labels=remap_labels(raw_labels) if remap else raw_labels.astype(np.int32), **kwargs, level_names=tuple(level_names), images=images,
                paths=None if paths is None else tuple(paths), records=records, describe=describe)


# ----------------------------------------------------------------------------------------------
# digits (embedded)

# Level-1 group of each digit: 0 = loops {0, 6, 8, 9}, 1 = strokes {1, 4, 7}, 2 = curves {2, 3, 5}.
DIGIT_SHAPE_GROUPS = np.array([0, 1, 2, 2, 1, 2, 0, 1, 0, 0], np.int32)
_DIGIT_SPLITS = ("train", "test", "all")


@functools.lru_cache(maxsize=1)
def _load_digits_arrays():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  bunch = load_digits()
  images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, bunch.target.astype(np.int32)


def digits(data_dir: str = "", split: str = "train") -> Source:
  """The embedded 8x8 digits (see the module docstring for levels and split).

  Args:
    data_dir: ignored (the data ships with scikit-learn).
    split: ``'train'``, ``'test'`` or ``'all'``.
  """
  del data_dir
  if split not in _DIGIT_SPLITS:
    raise ValueError(f"digits: unknown split {split!r}; valid: {list(_DIGIT_SPLITS)}")
  images, digit = _load_digits_arrays()
  if split == "all":
    keep = np.arange(len(digit))
  else:
    # Rank of each image among the images of its digit, in load_digits() order.
    rank = np.zeros(len(digit), np.int64)
    for d in range(10):
      members = np.flatnonzero(digit == d)
      rank[members] = np.arange(len(members))
    keep = np.flatnonzero(rank % 2 == (0 if split == "train" else 1))
  labels = np.stack([digit[keep], DIGIT_SHAPE_GROUPS[digit[keep]]], axis=1)
  images = images[keep]
  images.setflags(write=False)
  return Source(name=f"digits/{split}", labels=labels, level_names=("digit", "shape"), images=images)


# ----------------------------------------------------------------------------------------------
# Helpers for the raw-folder formats


def _missing(dataset: str, path: str, layout: str) -> FileNotFoundError:
  return FileNotFoundError(f"{dataset}: {path} does not exist. Expected layout under data_dir:\n{layout.strip()}")


def _require(dataset: str, path: str, layout: str, *, is_dir: bool = False) -> str:
  if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
    raise _missing(dataset, path, layout)
  return path


def _check_split(dataset: str, split: str, valid: Sequence[str]):
  if split not in valid:
    raise ValueError(f"{dataset}: unknown split {split!r}; valid: {list(valid)}")


def _data_dir(dataset: str, data_dir: str, layout: str) -> str:
  if not data_dir:
    raise ValueError(f"{dataset}: config.input.data_dir is empty. Expected layout under data_dir:\n{layout.strip()}")
  return _require(dataset, os.path.abspath(os.path.expanduser(data_dir)), layout, is_dir=True)


def _read_rows(path: str, *, sep: str | None = None, skip: int = 0) -> list[list[str]]:
  """Non-empty lines of a text file split on ``sep`` (whitespace when None), stripped."""
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()[skip:]
  return [[x.strip() for x in line.split(sep)] for line in lines if line.strip()]


def _as_int(value: str, where: str) -> int:
  try:
    return int(float(value))
  except ValueError as e:
    raise ValueError(f"{where}: expected an integer label, got {value!r}") from e


def _joint(split: str, pair: Sequence[str], loader: Callable[[str], tuple[list[str], np.ndarray]]):
  """Loads a query/gallery pair and remaps labels over both, so that their ids agree."""
  parts = {s: loader(s) for s in pair}
  raw = np.concatenate([parts[s][1] for s in pair])
  labels = remap_labels(raw)
  start = 0
  for s in pair:
    n = len(parts[s][0])
    if s == split:
      return parts[s][0], labels[start:start + n]
    start += n
  raise AssertionError(split)


# ----------------------------------------------------------------------------------------------
# Stanford Online Products

SOP_LAYOUT = """
  Ebay_train.txt, Ebay_test.txt   header 'image_id class_id super_class_id path', one image per line
  <path>                          e.g. bicycle_final/111085122871_0.JPG
"""


def sop(data_dir: str, split: str = "train") -> Source:
  """Stanford Online Products: levels ``(product, category)``; splits ``train``/``test``/``all``."""
  _check_split("sop", split, ("train", "test", "all"))
  root = _data_dir("sop", data_dir, SOP_LAYOUT)
  paths, raw, indexes = [], [], []
  for part in (("train", "test") if split == "all" else (split,)):
    index = _require("sop", os.path.join(root, f"Ebay_{part}.txt"), SOP_LAYOUT)
    indexes.append(index)
    for n, row in enumerate(_read_rows(index, skip=1), start=2):
      if len(row) < 4:
        raise ValueError(f"{index}:{n}: expected 'image_id class_id super_class_id path', got {row}")
      raw.append((_as_int(row[1], f"{index}:{n}"), _as_int(row[2], f"{index}:{n}")))
      paths.append(os.path.join(root, row[3]))
  return make_source(f"sop/{split}", np.array(raw).reshape(-1, 2), ("product", "category"), paths=paths,
                     index_files=tuple(indexes))


# ----------------------------------------------------------------------------------------------
# CUB-200-2011


def _expand_runs(runs):
  out = []
  for last, *values in runs:
    out.extend([tuple(values)] * (last - len(out)))
  return np.array(out, np.int32)


# Species 1..200 -> (family 1..38, order 1..13): the hierarchy of the reference (suprank/datasets/
# cub200.py ``trees``), as runs (last species of the run, family, order).
_CUB_FAMILY_ORDER = _expand_runs([
    (3, 35, 12), (4, 9, 6), (8, 4, 4), (13, 18, 8), (17, 13, 8), (18, 26, 8), (19, 21, 8), (20, 19, 8),
    (21, 24, 8), (22, 3, 3), (25, 37, 13), (27, 18, 8), (28, 14, 8), (30, 15, 8), (33, 9, 6), (35, 16, 8),
    (36, 33, 10), (43, 30, 8), (44, 38, 13), (45, 36, 12), (46, 1, 1), (48, 16, 8), (49, 18, 8),
    (53, 34, 11), (54, 13, 8), (56, 16, 8), (57, 13, 8), (58, 4, 4), (66, 5, 4), (70, 2, 2), (72, 6, 4),
    (75, 15, 8), (76, 24, 8), (78, 30, 8), (83, 7, 5), (84, 8, 5), (85, 11, 8), (86, 10, 7), (87, 1, 1),
    (88, 18, 8), (90, 1, 1), (91, 21, 8), (92, 3, 3), (93, 15, 8), (94, 27, 8), (98, 18, 8), (99, 23, 8),
    (101, 32, 9), (103, 30, 8), (104, 22, 8), (105, 3, 3), (106, 4, 4), (108, 15, 8), (109, 23, 8),
    (110, 9, 6), (112, 20, 8), (117, 24, 8), (118, 25, 8), (133, 24, 8), (134, 28, 8), (138, 17, 8),
    (140, 13, 8), (147, 5, 4), (148, 24, 8), (150, 21, 8), (157, 31, 8), (184, 23, 8), (186, 12, 8),
    (192, 33, 10), (199, 29, 8), (200, 23, 8),
])

CUB_LAYOUT = """
  images.txt               '<image_id> <relative path>' (e.g. 001.Black_footed_Albatross/..._0046_18.jpg)
  image_class_labels.txt   '<image_id> <class 1..200>'
  images/<relative path>
"""


def cub(data_dir: str, split: str = "train") -> Source:
  """CUB-200-2011: levels ``(species, family, order)``; ``train`` = classes 1-100, ``test`` = 101-200."""
  _check_split("cub", split, ("train", "test", "all"))
  root = _data_dir("cub", data_dir, CUB_LAYOUT)
  images_txt = _require("cub", os.path.join(root, "images.txt"), CUB_LAYOUT)
  labels_txt = _require("cub", os.path.join(root, "image_class_labels.txt"), CUB_LAYOUT)
  rel = {row[0]: row[1] for row in _read_rows(images_txt)}
  paths, species = [], []
  for n, (image_id, cls) in enumerate(_read_rows(labels_txt), start=1):
    c = _as_int(cls, f"{labels_txt}:{n}")
    if not 1 <= c <= 200:
      raise ValueError(f"{labels_txt}:{n}: class {c} is out of range 1..200")
    if image_id not in rel:
      raise ValueError(f"{labels_txt}:{n}: image id {image_id} is not in {images_txt}")
    if split == "all" or (c <= 100) == (split == "train"):
      paths.append(os.path.join(root, "images", rel[image_id]))
      species.append(c)
  species = np.array(species, np.int32)
  raw = np.concatenate([species[:, None], _CUB_FAMILY_ORDER[species - 1]], axis=1) if len(species) else \
      np.zeros((0, 3), np.int32)
  return make_source(f"cub/{split}", raw, ("species", "family", "order"), paths=paths,
                     index_files=(images_txt, labels_txt))


# ----------------------------------------------------------------------------------------------
# Cars196

# Model 1..196 -> body type 1..9 (the reference's suprank/datasets/cars196.py ``trees``).
_CARS_TYPE = np.array([
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


def cars(data_dir: str, split: str = "train") -> Source:
  """Cars196: levels ``(model, type)``; ``train`` = classes 1-98, ``test`` = 99-196."""
  from scipy.io import loadmat  # pylint: disable=g-import-not-at-top

  _check_split("cars", split, ("train", "test", "all"))
  root = _data_dir("cars", data_dir, CARS_LAYOUT)
  mat_path = _require("cars", os.path.join(root, "cars_annos.mat"), CARS_LAYOUT)
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
  raw = np.stack([model, _CARS_TYPE[model - 1]], axis=1) if len(model) else np.zeros((0, 2), np.int32)
  return make_source(f"cars/{split}", raw, ("model", "type"), paths=paths, index_files=(mat_path,))


# ----------------------------------------------------------------------------------------------
# In-Shop

INSHOP_LAYOUT = """
  list_eval_partition.txt   line 1: count, line 2: header, then '<image path> <item_id> <train|query|gallery>'
  img/<GENDER>/<category>/<item_id>/<file>.jpg
"""


def inshop(data_dir: str, split: str = "train", *, hierarchy_mode: str = "all") -> Source:
  """In-Shop clothes: levels ``(item, category, gender)`` (``hierarchy_mode`` ``'all'``),
  ``(item, category)`` (``'1'``) or ``(item, gender)`` (``'2'``); splits ``train``/``query``/``gallery``
  (query and gallery ids agree)."""
  _check_split("inshop", split, ("train", "query", "gallery"))
  modes = {"all": (0, 1, 2), "1": (0, 1), "2": (0, 2)}
  if hierarchy_mode not in modes:
    raise ValueError(f"inshop: hierarchy_mode={hierarchy_mode!r}; valid: {list(modes)}")
  root = _data_dir("inshop", data_dir, INSHOP_LAYOUT)
  index = _require("inshop", os.path.join(root, "list_eval_partition.txt"), INSHOP_LAYOUT)
  rows = _read_rows(index, skip=2)

  def load(part):
    paths, raw = [], []
    for row in rows:
      if len(row) >= 3 and row[2] == part:
        parts = row[0].split("/")
        paths.append(os.path.join(root, row[0]))
        raw.append((row[1], parts[2] if len(parts) > 3 else "", parts[1] if len(parts) > 3 else ""))
    return paths, np.array(raw, dtype=object).reshape(-1, 3)

  paths, labels = _joint(split, ("query", "gallery"), load) if split != "train" else load("train")
  if split == "train":
    labels = remap_labels(labels)
  names = ("item", "category", "gender")
  keep = modes[hierarchy_mode]
  return make_source(f"inshop/{split}", labels[:, keep], tuple(names[k] for k in keep), paths=paths, remap=False,
                     index_files=(index,))


# ----------------------------------------------------------------------------------------------
# iNaturalist 2018

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


def inaturalist(data_dir: str, split: str = "train", *, mode: str = "base") -> Source:
  """iNaturalist-2018 retrieval splits: ``mode='base'``: levels ``(species, super-category)``;
  ``mode='full'``: the 7 taxonomy levels ``species .. kingdom``. Splits ``train``/``test`` (disjoint
  species) and ``all`` (train then test, as the reference's ``mode='all'``)."""
  _check_split("inaturalist", split, ("train", "test", "all"))
  if mode not in ("base", "full"):
    raise ValueError(f"inaturalist: mode={mode!r}; valid: ['base', 'full']")
  root = _data_dir("inaturalist", data_dir, INAT_LAYOUT)
  rel_paths, parts, species, listings = [], [], [], []
  for part in (("train", "test") if split == "all" else (split,)):
    listing = _require("inaturalist", os.path.join(root, "Inat_dataset_splits", f"Inaturalist_{part}_set1.txt"),
                       INAT_LAYOUT)
    listings.append(listing)
    for n, row in enumerate(_read_rows(listing, sep="\t"), start=1):
      parts.append(row[0].split("/"))
      if len(parts[-1]) < 3:
        raise ValueError(f"{listing}:{n}: expected '<folder>/<super-category>/<species id>/<file>', got {row[0]}")
      rel_paths.append(row[0])
      species.append(_as_int(parts[-1][-2], f"{listing}:{n}"))
  if mode == "base":
    raw = np.array([(s, p[-3]) for s, p in zip(species, parts)], dtype=object).reshape(-1, 2)
    names = ("species", "super_category")
  else:
    categories = _inat_categories(_require("inaturalist", os.path.join(root, "train2018.json"), INAT_LAYOUT))
    missing = sorted(set(species) - set(categories))
    if missing:
      raise ValueError(f"inaturalist: species ids {missing[:10]} of the {split} split are not in train2018.json "
                       "categories")
    raw = np.array([[s] + [str(categories[s][k]) for k in INAT_LEVELS[1:]] for s in species],
                   dtype=object).reshape(-1, 7)
    names = INAT_LEVELS
  return make_source(f"inaturalist/{split}", raw, names, paths=[os.path.join(root, p) for p in rel_paths],
                     index_files=tuple(listings))


# ----------------------------------------------------------------------------------------------
# DyML

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
_DYML_TEST_SPLITS = tuple(f"test_{kind}_{level}" for level in ("fine", "middle", "coarse")
                          for kind in ("query", "gallery"))
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
    named = fields[:h - 1]
    missing = [name for name in names if name not in named]
    glued = fields[h - 1]
    if (len(missing) == 1 and sorted(named + missing) == sorted(names) and glued.startswith(missing[0])
        and glued[len(missing[0]):].strip()):
      return named + missing, [glued[len(missing[0]):].strip()] + fields[h:]
  raise ValueError(
      f"{path}: line 1 {line.strip()!r} is not a header with the columns {', '.join(names)} (any order), "
      f"neither on its own line nor running into the first record as in the DyML release (e.g. "
      f"'fname, coarse_id, middle_id, fine_id0.jpg, 3, 17, 804')")


def _dyml_table(dataset: str, path: str, folder: str, label_columns: Sequence[str]):
  """Image paths and int64 labels ``[N, len(label_columns)]`` of a DyML csv, columns selected by name.

  The original reader (SupRank/HAPPIER ``suprank/datasets/dyml.py``) selects them with pandas,
  ``table[[" fine_id0.jpg", " middle_id", " coarse_id"]]`` (``" labels0.jpg"`` for a benchmark): the
  release's header runs into the first record, which pandas turns into column names, so the
  original drops that record. We recover it, as the DyML authors' reader does
  (``train_data[0].split('_id')[-1]``), and log it.
  """
  _require(dataset, path, DYML_LAYOUT)
  with open(path, encoding="utf-8") as f:
    lines = [(n, line) for n, line in enumerate(f.read().splitlines(), start=1) if line.strip()]
  names = ("fname", *label_columns)
  if not lines:
    raise ValueError(f"{path}: empty file; expected a header with the columns {', '.join(names)}")
  header, first = _dyml_header(path, lines[0][1], names)
  if first is not None:
    logging.getLogger(__name__).info(
        "%s: the header runs into the first record (%s); recovered it (the SupRank/HAPPIER pandas reader "
        "drops it)", path, ", ".join(first))
  records = ([(1, first)] if first is not None else []) + [
      (n, [x.strip() for x in line.split(",")]) for n, line in lines[1:]]
  column = {name: header.index(name) for name in names}
  paths, raw = [], []
  for n, row in records:
    if len(row) != len(header):
      raise ValueError(f"{path}:{n}: expected {len(header)} fields ({', '.join(header)}), got {row}")
    paths.append(os.path.join(folder, row[column["fname"]]))
    raw.append([_as_int(row[column[c]], f"{path}:{n} column {c}") for c in label_columns])
  return paths, np.array(raw, np.int64).reshape(-1, len(label_columns))


def _dyml(dataset: str, data_dir: str, split: str, *, product: bool) -> Source:
  valid = ("train", "test") if product else ("train",) + _DYML_TEST_SPLITS
  _check_split(dataset, split, valid)
  root = _data_dir(dataset, data_dir, DYML_LAYOUT)
  levels = ("fine", "middle", "coarse")
  if split == "train" or product:
    folder = "train" if split == "train" else "mini-bmk_all_in_one"
    table = os.path.join(root, folder, "label.csv")
    paths, raw = _dyml_table(dataset, table, os.path.join(root, folder, "imgs"), DYML_TRAIN_COLUMNS)
    return make_source(f"{dataset}/{split}", raw, levels, paths=paths, index_files=(table,))
  _, _, level = split.split("_")

  def load(s):
    kind = s.split("_")[1]
    return _dyml_table(dataset, os.path.join(root, f"bmk_{level}", f"{kind}.csv"),
                       os.path.join(root, f"bmk_{level}", kind), DYML_BENCHMARK_COLUMNS)

  pair = (f"test_query_{level}", f"test_gallery_{level}")
  paths, labels = _joint(split, pair, load)
  table = os.path.join(root, f"bmk_{level}", f"{split.split('_')[1]}.csv")
  return make_source(f"{dataset}/{split}", labels, (level,), paths=paths, remap=False, index_files=(table,))


def dyml_vehicle(data_dir: str, split: str = "train") -> Source:
  """DyML-Vehicle: train levels ``(fine, middle, coarse)`` from the columns ``fine_id, middle_id,
  coarse_id`` (the file stores them coarse first); test splits ``test_{query,gallery}_<level>`` have the
  one level of their benchmark, with ids shared by the query and gallery of a level. Each benchmark
  gallery holds a copy of every query (``query_copies.find_query_copies`` finds them)."""
  return _dyml("dyml_vehicle", data_dir, split, product=False)


def dyml_animal(data_dir: str, split: str = "train") -> Source:
  """DyML-Animal (same layout as DyML-Vehicle)."""
  return _dyml("dyml_animal", data_dir, split, product=False)


def dyml_product(data_dir: str, split: str = "train") -> Source:
  """DyML-Product: splits ``train`` and ``test`` (``mini-bmk_all_in_one``), levels ``(fine, middle, coarse)``
  from the columns ``fine_id, middle_id, coarse_id``."""
  return _dyml("dyml_product", data_dir, split, product=True)


# ----------------------------------------------------------------------------------------------
# Google Landmarks v2

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


def _gld(dataset: str, data_dir: str, split: str, *, hierarchical: bool, min_images_per_class: int) -> Source:
  _check_split(dataset, split, ("train", "query", "gallery"))
  root = _data_dir(dataset, data_dir, GLDV2_LAYOUT)

  def need(name):
    return _require(dataset, os.path.join(root, name), GLDV2_LAYOUT)

  def hierarchy(name):
    table = {}
    for row in _read_csv_dicts(need(name)):
      if row.get("cluster") and row.get("overall_cluster"):
        table[_as_int(row["landmark_id"], name)] = (row["cluster"], row["overall_cluster"])
    return table

  def load(part):
    if part == "train":
      items = [(image_id, row["landmark_id"]) for row in _read_csv_dicts(need("train_clean.csv"))
               for image_id in row["images"].split()]
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
              raise ValueError(f"{dataset}: query {row['id']} refers to index image {first}, which is not in "
                               "index_image_to_landmark.csv")
            items.append((row["id"], landmark_of[first]))
    items = [(i, _as_int(lm, f"{dataset} landmark_id")) for i, lm in items]
    if hierarchical:
      table = hierarchy("train_label_to_subcategory_with_clusters.csv" if part == "train"
                        else "index_label_to_subcategory_with_clusters.csv")
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
    labels = remap_labels(raw)
  else:
    paths, labels = _joint(split, ("query", "gallery"), load)
  names = ("landmark", "cluster", "overall_cluster") if hierarchical else ("landmark",)
  index = {"train": "train_clean.csv", "query": "retrieval_solution_v2.1.csv",
           "gallery": "index_image_to_landmark.csv"}[split]
  return make_source(f"{dataset}/{split}", labels, names, paths=paths, remap=False,
                     index_files=(os.path.join(root, index),))


def gldv2(data_dir: str, split: str = "train", *, min_images_per_class: int = 0) -> Source:
  """Google Landmarks v2 (clean train; index = gallery, test = queries): level ``landmark``."""
  return _gld("gldv2", data_dir, split, hierarchical=False, min_images_per_class=min_images_per_class)


def gldv2_hierarchical(data_dir: str, split: str = "train", *, min_images_per_class: int = 0) -> Source:
  """Hierarchical GLDv2: levels ``(landmark, cluster, overall_cluster)``; landmarks without a cluster
  in the hierarchy csv are dropped."""
  return _gld("gldv2_hierarchical", data_dir, split, hierarchical=True, min_images_per_class=min_images_per_class)


# ----------------------------------------------------------------------------------------------
# Revisited Oxford / Paris

REVISITED_LAYOUT = """
  gnd_<name>.pkl   pickle with 'imlist' (gallery names), 'qimlist' (query names) and 'gnd' (per query: 'bbx',
                   'easy', 'hard', 'junk'); <name> is roxford5k or rparis6k
  jpg/<image name>.jpg
"""


def _revisited(dataset: str, data_dir: str, split: str) -> Source:
  import pickle  # pylint: disable=g-import-not-at-top

  _check_split(dataset, split, ("query", "gallery"))
  root = _data_dir(dataset, data_dir, REVISITED_LAYOUT)
  gnd_path = _require(dataset, os.path.join(root, f"gnd_{dataset}.pkl"), REVISITED_LAYOUT)
  with open(gnd_path, "rb") as f:
    gnd = pickle.load(f)

  def load(part):
    names = gnd["qimlist" if part == "query" else "imlist"]
    # The landmark is the image name without its trailing '_<number>' (e.g. all_souls_000013).
    raw = np.array([name.rsplit("_", 1)[0] for name in names], dtype=object).reshape(-1, 1)
    return [os.path.join(root, "jpg", f"{name}.jpg") for name in names], raw

  paths, labels = _joint(split, ("query", "gallery"), load)
  extras, boxes = {}, None
  if split == "query":
    boxes = np.array([g["bbx"] for g in gnd["gnd"]], np.float64).reshape(-1, 4)
    extras = {k: [np.asarray(g[k], np.int64) for g in gnd["gnd"]] for k in ("easy", "hard", "junk")}
  return Source(name=f"{dataset}/{split}", labels=labels, level_names=("landmark",), paths=tuple(paths),
                boxes=boxes, extras=extras, index_files=(gnd_path,))


def roxford5k(data_dir: str, split: str = "query") -> Source:
  """Revisited Oxford (``gnd_roxford5k.pkl``): queries (cropped to their box) and gallery."""
  return _revisited("roxford5k", data_dir, split)


def rparis6k(data_dir: str, split: str = "query") -> Source:
  """Revisited Paris (``gnd_rparis6k.pkl``)."""
  return _revisited("rparis6k", data_dir, split)


# ----------------------------------------------------------------------------------------------
# TFDS / ArrayRecord (config.input.source_format = 'tfds')

# Official TFDS data sets we can read: TFDS name, label features, and how to re-split by class.
TFDS_OFFICIAL = {
    "sop": "stanford_online_products",
    "cub": "caltech_birds2011",
    "cars": "cars196",
}
CONVERTED_PREFIX = "suprank_"


class _TfdsImages:
  """Random access to the encoded image of item ``i`` = record ``(part, row)`` (picklable)."""

  def __init__(self, data_sources, parts: np.ndarray, rows: np.ndarray, name: str):
    self.data_sources, self.parts, self.rows, self.name = data_sources, parts, rows, name

  def __len__(self):
    return len(self.rows)

  def __getitem__(self, i):
    return self.data_sources[self.parts[i]][int(self.rows[i])]["image"]

  def describe(self, i):
    return f"{self.name} record {int(self.rows[i])} of split part {int(self.parts[i])}"


def _tfds_dir(name: str, data_dir: str) -> str:
  folder = os.path.join(data_dir, name)
  versions = sorted(d for d in os.listdir(folder)) if os.path.isdir(folder) else []
  if not any(os.path.isfile(os.path.join(folder, v, "dataset_info.json")) for v in versions):
    raise FileNotFoundError(
        f"TFDS data set {name!r} is not prepared under {folder} (expected {folder}/<version>/dataset_info.json "
        "and *.array_record-* shards). Prepare it with `python -m suprank_jax.input_pipeline.convert --dataset "
        "<name> --data_dir <raw folder> --output_dir <data_dir>` (or with the official TFDS builder, which "
        "needs TensorFlow), and set config.input.data_dir to the folder that holds it.")
  return folder


def _tfds_labels(data_source, keys: Sequence[str], cache_path: str) -> np.ndarray:
  """int64 ``[N, k]``: the label features ``keys`` of every record, concatenated. Reading them costs
  ~0.5 ms per record, so they are cached as ``.npy`` at ``cache_path``."""
  if cache_path and os.path.isfile(cache_path):
    labels = np.load(cache_path)
    if len(labels) == len(data_source):
      return labels
  rows = []
  for start in range(0, len(data_source), 1024):
    indices = list(range(start, min(start + 1024, len(data_source))))
    try:
      records = data_source.__getitems__(indices)
    except (AttributeError, TypeError):
      records = [data_source[i] for i in indices]
    rows.extend(np.concatenate([np.asarray(r[k], np.int64).reshape(-1) for k in keys]) for r in records)
  out = np.stack(rows) if rows else np.zeros((0, len(keys)), np.int64)
  if cache_path:
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    np.save(cache_path, out)
  return out


def tfds_source(dataset: str, data_dir: str, split: str, *, tfds_name: str = "", cache_dir: str | None = None,
                **kwargs) -> Source:
  """A split read through ``tfds.data_source(..., download=False)`` (images decoded by PIL on demand).

  ``kwargs`` (``config.input.dataset_kwargs``) must be empty: the raw reader's arguments were applied
  at conversion. ``tfds_name`` defaults to the converted ``suprank_<dataset>`` (``convert.py``) when
  it exists under ``data_dir``, else to the official TFDS name for ``sop``/``cub``/``cars``. Official
  CUB and Cars are re-split by class for the retrieval protocol (``train`` = first half of the classes, over the official train+test),
  and get the same extra levels as the raw readers. Labels are read once and cached under
  ``cache_dir`` (default ``~/.cache/suprank_jax/tfds_labels``).
  """
  if kwargs:
    raise ValueError(f"config.input.dataset_kwargs {sorted(kwargs)} are not read with source_format='tfds' (only "
                     "cache_dir is): a converted data set keeps the reader arguments given at conversion "
                     "(convert.py --dataset_kwargs); clear config.input.dataset_kwargs")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  candidates = [tfds_name] if tfds_name else [CONVERTED_PREFIX + dataset] + (
      [TFDS_OFFICIAL[dataset]] if dataset in TFDS_OFFICIAL else [])
  if not data_dir:
    raise ValueError(f"config.input.data_dir is empty: set it to the TFDS data_dir that holds {candidates}")
  for name in candidates[:-1]:
    if os.path.isdir(os.path.join(data_dir, name)):
      break
  else:
    name = candidates[-1]
  folder = _tfds_dir(name, data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  available = list(builder.info.splits.keys())
  cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "suprank_jax", "tfds_labels")
  version = str(builder.info.version)

  def open_split(s):
    if s not in available:
      raise ValueError(f"{name}: unknown split {s!r}; valid: {available}")
    ds = tfds.data_source(name, split=s, data_dir=data_dir, download=False,
                          decoders={"image": tfds.decode.SkipDecoding()})
    digest = hashlib.md5(os.path.abspath(folder).encode()).hexdigest()[:10]
    key = f"{name}-{version}-{s}-{digest}.npy"
    return ds, key

  if name == "stanford_online_products":
    ds, key = open_split(split)
    raw = _tfds_labels(ds, ("class_id", "super_class_id"), os.path.join(cache_dir, key))
    images = _TfdsImages([ds], np.zeros(len(raw), np.int64), np.arange(len(raw)), name)
    return make_source(f"{dataset}/{split}", raw, ("product", "category"), records=images, describe=images.describe,
                       index_files=(folder,))
  if name in ("caltech_birds2011", "cars196"):
    if split not in ("train", "test"):
      raise ValueError(f"{name}: unknown split {split!r}; valid: ['train', 'test'] (re-split by class)")
    parts, rows, labels, sources_ = [], [], [], []
    for p, s in enumerate(("train", "test")):
      ds, key = open_split(s)
      lab = _tfds_labels(ds, ("label",), os.path.join(cache_dir, key))[:, 0]
      sources_.append(ds)
      parts.append(np.full(len(lab), p))
      rows.append(np.arange(len(lab)))
      labels.append(lab)
    parts, rows, labels = np.concatenate(parts), np.concatenate(rows), np.concatenate(labels)
    half = 100 if name == "caltech_birds2011" else 98
    keep = np.flatnonzero((labels < half) == (split == "train"))
    # Restore a deterministic order (TFDS shuffles at prepare time): by class, then by record.
    keep = keep[np.lexsort((rows[keep], parts[keep], labels[keep]))]
    cls = labels[keep].astype(np.int32) + 1
    if name == "caltech_birds2011":
      raw, names = np.concatenate([cls[:, None], _CUB_FAMILY_ORDER[cls - 1]], axis=1), ("species", "family", "order")
    else:
      raw, names = np.stack([cls, _CARS_TYPE[cls - 1]], axis=1), ("model", "type")
    images = _TfdsImages(sources_, parts[keep], rows[keep], name)
    return make_source(f"{dataset}/{split}", raw, names, records=images, describe=images.describe,
                       index_files=(folder,))
  # A data set written by convert.py: features image, labels [L], index (row in the raw reader).
  ds, key = open_split(split)
  metadata = dict(builder.info.metadata or {})
  level_names = tuple(metadata.get("level_names", ()))
  if not level_names:
    raise ValueError(f"{folder}: metadata.json has no 'level_names' (not written by convert.py?)")
  table = _tfds_labels(ds, ("labels", "index"), os.path.join(cache_dir, key))
  raw, index = table[:, :-1], table[:, -1]
  order = np.argsort(index, kind="stable")
  images = _TfdsImages([ds], np.zeros(len(order), np.int64), order, name)
  channels = int(metadata.get("channels", 3))
  return Source(name=f"{dataset}/{split}", labels=raw[order].astype(np.int32), level_names=level_names,
                records=images, describe=images.describe, channels=channels, index_files=(folder,))


# ----------------------------------------------------------------------------------------------
# registry

DATASETS: dict[str, Callable[..., Source]] = {
    "digits": digits,
    "sop": sop,
    "cub": cub,
    "cars": cars,
    "inshop": inshop,
    "inaturalist": inaturalist,
    "dyml_vehicle": dyml_vehicle,
    "dyml_animal": dyml_animal,
    "dyml_product": dyml_product,
    "gldv2": gldv2,
    "gldv2_hierarchical": gldv2_hierarchical,
    "roxford5k": roxford5k,
    "rparis6k": rparis6k,
}


def register_dataset(name: str, loader: Callable[..., Source], *, overwrite: bool = False):
  """Adds ``loader(data_dir, split, **kwargs) -> Source`` to :data:`DATASETS` under ``name``."""
  if name in DATASETS and not overwrite:
    raise ValueError(f"dataset {name!r} is already registered (pass overwrite=True to replace it)")
  DATASETS[name] = loader


def get_source(input_config: Any, split: str) -> Source:
  """The ``split`` of ``input_config.dataset`` (read from ``input_config.data_dir``).

  Extra loader arguments come from ``input_config.dataset_kwargs`` (a dict / ConfigDict). With
  ``input_config.source_format = 'tfds'`` the split is read from a prepared TFDS data set under
  ``data_dir`` instead (:func:`tfds_source`; ``input_config.tfds_name`` overrides its name).

  Raises:
    ValueError: unknown dataset name (the message lists the valid ones) or split, or an empty split
      (naming the index file).
  """
  name = input_config.dataset
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r} (config.input.dataset); valid: {sorted(DATASETS)}")
  kwargs = dict(getattr(input_config, "dataset_kwargs", None) or {})
  data_dir = os.path.expanduser(getattr(input_config, "data_dir", "") or "")
  source_format = getattr(input_config, "source_format", "raw")
  if source_format == "tfds":
    source = tfds_source(name, data_dir, split, tfds_name=getattr(input_config, "tfds_name", ""), **kwargs)
  elif source_format == "raw":
    source = DATASETS[name](data_dir, split, **kwargs)
  else:
    raise ValueError(f"config.input.source_format={source_format!r}; valid: ['raw', 'tfds']")
  if len(source) == 0:
    where = ", ".join(source.index_files) or data_dir or name
    raise ValueError(f"{source.name}: the split {split!r} is empty: {where} lists no image")
  if split == getattr(input_config, "train_split", "train"):
    report_single_image_classes(source)
  return source


def single_image_classes(source: Source, level: int = 0) -> np.ndarray:
  """Class ids of ``level`` that have exactly one image in ``source``."""
  counts = np.bincount(source.labels[:, level], minlength=source.num_classes[level] if len(source) else 0)
  return np.flatnonzero(counts == 1)


def report_single_image_classes(source: Source, *, log=None) -> int:
  """Warns (through ``logging`` or ``log``) about finest-level classes with a single image: they give
  no positive pair in training (the M-per-class sampler repeats their image). Returns their count."""
  single = single_image_classes(source)
  if len(single):
    first = np.flatnonzero(np.isin(source.labels[:, 0], single[:3]))
    message = (f"{source.name}: {len(single)} of {source.num_classes[0]} classes have a single image, e.g. "
               + ", ".join(source.location(int(i)) for i in first))
    (log or logging.getLogger(__name__).warning)(message)
  return len(single)


def missing_files(source: Source, *, log=None, threads: int = 16, progress_seconds: float = 10.0) -> list[str]:
  """The image files of ``source`` that are not there (none for in-memory or record sources).

  Each distinct path is ``stat``-ed once, by ``threads`` threads (network file systems answer many
  requests at a time); on large sets ``log`` gets a progress line every ``progress_seconds``.
  """
  if source.paths is None:
    return []
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  paths = list(dict.fromkeys(source.paths))
  chunks = [paths[i:i + 2048] for i in range(0, len(paths), 2048)]
  missing, checked, last = [], 0, time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
    for chunk, absent in zip(chunks, pool.map(lambda c: [p for p in c if not os.path.isfile(p)], chunks)):
      missing.extend(absent)
      checked += len(chunk)
      if log is not None and time.monotonic() - last >= progress_seconds and checked < len(paths):
        log(f"{source.name}: checked {checked:,} of {len(paths):,} image files ({len(missing):,} missing so far)")
        last = time.monotonic()
  return missing


def check_files_exist(splits: Sequence[Source], *, skip: bool = False, log=print, report_path: str | None = None):
  """Checks, before any training, that every image file of ``splits`` exists, and reports all the
  missing ones at once: the first 20 in the message, all of them in ``report_path`` (when given).

  Args:
    splits: the sources to check (in-memory and record sources have no file to check).
    skip: the items of missing files will be skipped (``config.input.skip_corrupt_images``): warn instead.
    log: progress and warnings.
    report_path: where to write the full list (one path a line).

  Raises:
    FileNotFoundError: some files are missing and ``skip`` is False.
  """
  missing, counts = [], []
  for source in splits:
    absent = missing_files(source, log=log)
    if absent:
      missing.extend(absent)
      counts.append(f"{source.name}: {len(absent)} of {len(set(source.paths))}")
  if not missing:
    return
  listed = "\n  ".join(missing[:20]) + (f"\n  ... ({len(missing) - 20} more)" if len(missing) > 20 else "")
  written = ""
  if report_path:
    with open(report_path, "w", encoding="utf-8") as f:
      f.write("".join(p + "\n" for p in missing))
    written = f"; the full list is in {report_path}"
  message = f"{len(missing)} image files are missing ({'; '.join(counts)}){written}:\n  {listed}"
  if not skip:
    raise FileNotFoundError(message + "\n(restore them, fix the data set's index, or set "
                            "config.input.skip_corrupt_images=True to train without them)")
  log(f"warning: {message}\nconfig.input.skip_corrupt_images=True: their items are skipped")
