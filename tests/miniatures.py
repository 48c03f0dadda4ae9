"""Tiny copies of every raw data set, in the on-disk layout that its ORIGINAL reader expects.

Each ``make_<name>(root, *, seed=0) -> data_dir`` writes, under ``root``, the index files of the
original release (same names, headers, columns and separators) and 16x16 JPEGs of random pixels
(seeded by ``seed``; the labels and file names do not depend on it) at the paths the index files
name. The layouts follow the readers of the reference (SupRank, ``suprank/datasets/*.py``): each
generator's docstring cites the file and lines it follows. :data:`MINIATURES` maps each data set name
of ``datasets.DATASETS`` to its generator.

:func:`ground_truth` gives, for every split, what the generator wrote: the items in the order the
original reader lists them, each with its path (relative to ``data_dir``) and its raw labels,
finest level first (the values the reader turns into ids). It is built from the generator's own
tables, never from our readers, so tests can check the readers against it.

Sizes: every train split has at least 8 classes of at least 4 images (an M-per-class batch of
8 x 4); SOP's train split has 3 super-classes of 4 classes (the hierarchical sampler, 2 super-classes
per batch); DyML's trees have 10 fine, 4 middle and 2 coarse classes (levels told apart by their
counts). Each generator runs in well under a second.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

__all__ = [
  "Item",
  "MINIATURES",
  "LANDMARK_MINIATURES",
  "ground_truth",
  "random_jpeg",
  "write_dyml_csv",
  "make_sop",
  "make_cub",
  "make_cars",
  "make_inshop",
  "make_inaturalist",
  "make_dyml_vehicle",
  "make_dyml_animal",
  "make_dyml_product",
  "make_gldv2",
  "make_gldv2_hierarchical",
  "make_revisited",
  "make_sfm120k",
  "for_config",
]

IMAGE_SIZE = 16


@dataclasses.dataclass(frozen=True)
class Item:
  """One image: ``path`` relative to data_dir, raw ``labels`` finest first, and ``same_as``: the
  path of the image whose bytes it copies (DyML galleries hold a copy of every query)."""

  path: str
  labels: tuple
  same_as: str | None = None


def random_jpeg(rng: np.random.Generator, size: int = IMAGE_SIZE, width: int | None = None) -> bytes:
  """A ``size x size`` (or ``size x width``, height first) RGB JPEG of random pixels."""
  buffer = io.BytesIO()
  shape = (size, size if width is None else width, 3)
  Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _write_images(root: str, items: Sequence[Item], seed: int, tag: int):
  """Writes every item's JPEG (random pixels from ``(seed, tag)``), or copies the file it is the same as."""
  rng = np.random.default_rng([seed, tag])
  made = set()
  for item in items:
    path = os.path.join(root, item.path)
    folder = os.path.dirname(path)
    if folder not in made:
      os.makedirs(folder, exist_ok=True)
      made.add(folder)
    if item.same_as is not None:
      shutil.copyfile(os.path.join(root, item.same_as), path)
    else:
      with open(path, "wb") as f:
        f.write(random_jpeg(rng))


def _write_lines(path: str, lines: Sequence[str]):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))


def _write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence]):
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _hex_id(kind: str, n: int, length: int) -> str:
  return hashlib.md5(f"{kind}{n}".encode()).hexdigest()[:length]


# ----------------------------------------------------------------------------------------------
# Stanford Online Products

# super_class_id 1..12 of the release, and its folder '<name>_final'.
SOP_SUPER_CLASSES = (
  "bicycle",
  "cabinet",
  "chair",
  "coffee_maker",
  "fan",
  "kettle",
  "lamp",
  "mug",
  "sofa",
  "stapler",
  "table",
  "toaster",
)


def _sop_truth() -> dict[str, list[Item]]:
  out, class_id = {}, 0
  for split, supers, classes_per_super, images in (("train", (1, 3, 7), 4, 4), ("test", (1, 3, 7, 8), 2, 2)):
    out[split] = []
    for sup in supers:
      for _ in range(classes_per_super):
        class_id += 1
        product = 111085122800 + 37 * class_id  # an eBay listing number
        out[split] += [
          Item(f"{SOP_SUPER_CLASSES[sup - 1]}_final/{product}_{k}.JPG", (class_id, sup)) for k in range(images)
        ]
  out["all"] = out["train"] + out["test"]
  return out


def make_sop(root: str, *, seed: int = 0) -> str:
  """Stanford Online Products: ``Ebay_{train,test}.txt`` and ``<super>_final/<product>_<k>.JPG``.

  Follows ``suprank/datasets/sop.py`` lines 42-46: ``pd.read_csv('Ebay_<split>.txt', sep=' ')`` and
  its columns ``path``, ``class_id`` and ``super_class_id`` (header ``image_id class_id
  super_class_id path``). Train: 3 super-classes x 4 products x 4 images; test: 4 super-classes x 2
  products x 2 images (products disjoint from train, as in the release).
  """
  truth = _sop_truth()
  os.makedirs(root, exist_ok=True)
  image_id = 0
  for split in ("train", "test"):
    lines = ["image_id class_id super_class_id path"]
    for item in truth[split]:
      image_id += 1
      lines.append(f"{image_id} {item.labels[0]} {item.labels[1]} {item.path}")
    _write_lines(os.path.join(root, f"Ebay_{split}.txt"), lines)
  _write_images(root, truth["all"], seed, 1)
  return root


# ----------------------------------------------------------------------------------------------
# CUB-200-2011

CUB_BIG_CLASSES = tuple(range(1, 11)) + tuple(range(101, 111))  # 4 images each; the others 2


def _cub_truth() -> dict[str, list[Item]]:
  items = []
  for species in range(1, 201):
    for k in range(4 if species in CUB_BIG_CLASSES else 2):
      items.append(Item(f"images/{species:03d}.Bird_{species}/Bird_{species}_{k + 1:04d}.jpg", (species,)))
  return {
    "train": [i for i in items if i.labels[0] <= 100],
    "test": [i for i in items if i.labels[0] > 100],
    "all": items,
  }


def make_cub(root: str, *, seed: int = 0) -> str:
  """CUB-200-2011: ``images/<NNN.Name>/<file>.jpg`` for ALL 200 classes, plus ``images.txt``,
  ``image_class_labels.txt``, ``classes.txt`` and ``train_test_split.txt``.

  Follows ``suprank/datasets/cub200.py`` lines 56-76: ``torchvision.datasets.ImageFolder('images')``
  (classes = the sorted folder names), train = the first half of the sorted class indices, and the
  levels ``trees[index + 1]`` (lines 73, 81-280), which is right only if the folder index + 1 is the
  species id: so the miniature has every one of the 200 folders (an empty folder would make
  ImageFolder fail). Lines 31-54 (``classification=True``) read the four index files, written as in
  the release (``'<id> <value>'`` per line, ids in the order of the sorted paths). Labels in
  :func:`ground_truth`: the species only (family and order come from the reference's table).
  """
  truth = _cub_truth()
  items = truth["all"]
  os.makedirs(root, exist_ok=True)
  rel = [item.path[len("images/") :] for item in items]
  _write_lines(os.path.join(root, "images.txt"), [f"{n} {p}" for n, p in enumerate(rel, start=1)])
  _write_lines(
    os.path.join(root, "image_class_labels.txt"), [f"{n} {item.labels[0]}" for n, item in enumerate(items, start=1)]
  )
  _write_lines(os.path.join(root, "classes.txt"), [f"{c} {c:03d}.Bird_{c}" for c in range(1, 201)])
  _write_lines(os.path.join(root, "train_test_split.txt"), [f"{n} {n % 2}" for n in range(1, len(items) + 1)])
  _write_images(root, items, seed, 2)
  return root


# ----------------------------------------------------------------------------------------------
# Cars196

CARS_CLASSES = tuple(range(1, 11)) + tuple(range(99, 109))  # 4 images each


def _cars_truth() -> dict[str, list[Item]]:
  items = [Item(f"car_ims/{4 * n + k + 1:06d}.jpg", (c,)) for n, c in enumerate(CARS_CLASSES) for k in range(4)]
  return {
    "train": [i for i in items if i.labels[0] <= 98],
    "test": [i for i in items if i.labels[0] > 98],
    "all": items,
  }


def make_cars(root: str, *, seed: int = 0) -> str:
  """Cars196: ``cars_annos.mat`` (struct array ``annotations`` with the release's fields
  ``relative_im_path, bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, test``, and ``class_names``) and
  ``car_ims/NNNNNN.jpg``.

  Follows ``suprank/datasets/cars196.py`` lines 29-46: ``loadmat``, ``annotations['class'][0]``
  (``i[0, 0]``), ``annotations['relative_im_path'][0]`` (``i[0]``), train = the first half of the
  sorted classes present: 10 classes <= 98 and 10 > 98, so that this equals the release's split by
  class id (1-98 / 99-196), which our reader uses. Levels ``trees[class]`` (lines 53-249).
  """
  from scipy.io import savemat  # pylint: disable=g-import-not-at-top

  items = _cars_truth()["all"]
  os.makedirs(root, exist_ok=True)
  fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
  annotations = np.zeros((1, len(items)), dtype=[(f, "O") for f in fields])
  for n, item in enumerate(items):
    box = [np.array([[v]], np.uint16) for v in (1, 2, IMAGE_SIZE - 1, IMAGE_SIZE - 2)]
    annotations[0, n] = (item.path, *box, np.array([[item.labels[0]]], np.uint8), np.array([[n % 2]], np.uint8))
  class_names = np.array([f"Car Model {c}" for c in range(1, 197)], dtype=object).reshape(1, -1)
  path = os.path.join(root, "cars_annos.mat")
  savemat(path, {"annotations": annotations, "class_names": class_names})
  with open(path, "r+b") as f:  # the 116-byte text header holds the creation time: make it fixed
    f.write(b"MATLAB 5.0 MAT-file, written by tests/miniatures.py".ljust(116))
  _write_images(root, items, seed, 3)
  return root


# ----------------------------------------------------------------------------------------------
# In-Shop Clothes Retrieval

# (gender, category, item number, split): train items have 4 images; test items 2 query + 2 gallery.
# Category names repeat across genders in the release (WOMEN/Denim and MEN/Denim), as here.
_INSHOP_ITEMS = (
  ("WOMEN", "Dresses", 1, "train"),
  ("WOMEN", "Dresses", 2, "train"),
  ("WOMEN", "Skirts", 3, "test"),
  ("WOMEN", "Denim", 4, "train"),
  ("WOMEN", "Denim", 5, "train"),
  ("WOMEN", "Denim", 6, "test"),
  ("MEN", "Denim", 7, "train"),
  ("MEN", "Denim", 8, "train"),
  ("MEN", "Denim", 9, "test"),
  ("MEN", "Shorts", 10, "train"),
  ("MEN", "Shorts", 11, "train"),
  ("MEN", "Tees_Tanks", 12, "test"),
)
_INSHOP_VIEWS = ("01_1_front", "01_2_side", "01_3_back", "01_4_full")


def _inshop_rows() -> list[tuple[str, str, str]]:
  """``(path, item_id, status)`` in file order."""
  rows = []
  for gender, category, number, split in _INSHOP_ITEMS:
    item = f"id_{number:08d}"
    for k, view in enumerate(_INSHOP_VIEWS):
      status = split if split == "train" else ("query" if k < 2 else "gallery")
      rows.append((f"img/{gender}/{category}/{item}/{view}.jpg", item, status))
  return rows


def _inshop_truth() -> dict[str, list[Item]]:
  out = {"train": [], "query": [], "gallery": []}
  for path, item, status in _inshop_rows():
    _, gender, category, _, _ = path.split("/")
    out[status].append(Item(path, (item, category, gender)))
  return out


def make_inshop(root: str, *, seed: int = 0) -> str:
  """In-Shop: ``list_eval_partition.txt`` and ``img/<GENDER>/<category>/<item>/<view>.jpg``.

  Follows ``suprank/datasets/inshop.py`` lines 31-45: ``f.read().split("\\n")[2:-1]`` (line 1 the
  count, line 2 the header ``image_name item_id evaluation_status``, a final newline), fields split
  on spaces with the empty ones dropped (the release pads its columns), item ``int(id.split('_')[-1])``,
  gender ``path.split('/')[1]``, category ``path.split('/')[2]``. 8 train items (3 categories, 2
  genders) and 4 test items, each with 2 query and 2 gallery images (so query and gallery hold the
  same items, which the reference's per-split remapping, lines 49-67, needs).
  """
  rows = _inshop_rows()
  lines = [str(len(rows)), "image_name item_id evaluation_status"]
  lines += [f"{path:<56}{item:<16}{status}" for path, item, status in rows]
  _write_lines(os.path.join(root, "list_eval_partition.txt"), lines)
  _write_images(root, [Item(path, ()) for path, _, _ in rows], seed, 4)
  return root


# ----------------------------------------------------------------------------------------------
# iNaturalist 2018

# id: (name, genus, family, order, class, phylum, kingdom, supercategory, split). Species 13 is in
# the taxonomy but in no split, as most of train2018.json's categories are.
_INAT_SPECIES = {
  0: ("Rosa canina", "Rosa", "Rosaceae", "Rosales", "Magnoliopsida", "Tracheophyta", "Plantae", "Plantae", "train"),
  1: ("Rosa rugosa", "Rosa", "Rosaceae", "Rosales", "Magnoliopsida", "Tracheophyta", "Plantae", "Plantae", "train"),
  2: ("Prunus avium", "Prunus", "Rosaceae", "Rosales", "Magnoliopsida", "Tracheophyta", "Plantae", "Plantae", "train"),
  3: (
    "Trifolium repens",
    "Trifolium",
    "Fabaceae",
    "Fabales",
    "Magnoliopsida",
    "Tracheophyta",
    "Plantae",
    "Plantae",
    "train",
  ),
  4: ("Quercus robur", "Quercus", "Fagaceae", "Fagales", "Magnoliopsida", "Tracheophyta", "Plantae", "Plantae", "test"),
  5: ("Parus major", "Parus", "Paridae", "Passeriformes", "Aves", "Chordata", "Animalia", "Aves", "train"),
  6: ("Turdus merula", "Turdus", "Turdidae", "Passeriformes", "Aves", "Chordata", "Animalia", "Aves", "train"),
  7: ("Turdus philomelos", "Turdus", "Turdidae", "Passeriformes", "Aves", "Chordata", "Animalia", "Aves", "train"),
  8: ("Anas platyrhynchos", "Anas", "Anatidae", "Anseriformes", "Aves", "Chordata", "Animalia", "Aves", "test"),
  9: ("Apis mellifera", "Apis", "Apidae", "Hymenoptera", "Insecta", "Arthropoda", "Animalia", "Insecta", "train"),
  10: ("Bombus terrestris", "Bombus", "Apidae", "Hymenoptera", "Insecta", "Arthropoda", "Animalia", "Insecta", "train"),
  11: (
    "Vanessa atalanta",
    "Vanessa",
    "Nymphalidae",
    "Lepidoptera",
    "Insecta",
    "Arthropoda",
    "Animalia",
    "Insecta",
    "test",
  ),
  12: ("Pieris rapae", "Pieris", "Pieridae", "Lepidoptera", "Insecta", "Arthropoda", "Animalia", "Insecta", "test"),
  13: (
    "Coccinella septempunctata",
    "Coccinella",
    "Coccinellidae",
    "Coleoptera",
    "Insecta",
    "Arthropoda",
    "Animalia",
    "Insecta",
    "",
  ),
}
INAT_TAXONOMY = ("genus", "family", "order", "class", "phylum", "kingdom")


def _inat_truth() -> dict[str, list[Item]]:
  out, n = {"train": [], "test": []}, 0
  for split, images in (("train", 4), ("test", 2)):
    for species, (_, *taxonomy, supercategory, in_split) in _INAT_SPECIES.items():
      if in_split == split:
        for _ in range(images):
          out[split].append(
            Item(
              f"train_val2018/{supercategory}/{species}/{_hex_id('inat', n, 32)}.jpg",
              (species, *taxonomy, supercategory),
            )
          )
          n += 1
  out["all"] = out["train"] + out["test"]
  return out


def make_inaturalist(root: str, *, seed: int = 0) -> str:
  """iNaturalist 2018: ``Inat_dataset_splits/Inaturalist_{train,test}_set1.txt``, ``train2018.json``
  and ``train_val2018/<supercategory>/<species id>/<hash>.jpg``.

  Follows ``suprank/datasets/inaturalist_2018.py`` lines 53-99: one relative path per line and a
  final newline (``split("\\n")`` then ``remove("")``), the species ``int(path.split('/')[-2])``,
  ``json.load(...)['categories']`` with ``id``, ``name`` and every level of ``HIERARCHY`` (plus the
  release's ``supercategory``), and for ``hierarchy_mode='base'`` the super-category
  ``path.split('/')[-3]``. 9 train species (4 images), 4 test species (2 images). Labels in
  :func:`ground_truth`: species, genus, family, order, class, phylum, kingdom, then the
  supercategory (the folder; our ``mode='base'`` level 1).
  """
  truth = _inat_truth()
  categories = [
    dict(id=i, name=v[0], **dict(zip(INAT_TAXONOMY, v[1:7])), supercategory=v[7]) for i, v in _INAT_SPECIES.items()
  ]
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "train2018.json"), "w", encoding="utf-8") as f:
    json.dump({"info": {"year": 2018}, "categories": categories, "images": [], "annotations": []}, f)
  for split in ("train", "test"):
    _write_lines(
      os.path.join(root, "Inat_dataset_splits", f"Inaturalist_{split}_set1.txt"), [item.path for item in truth[split]]
    )
  _write_images(root, truth["all"], seed, 5)
  return root


# ----------------------------------------------------------------------------------------------
# DyML

DYML_FILE_COLUMNS = ("fname", "coarse_id", "middle_id", "fine_id")  # the release's column order
_DYML_FINE_TO_MIDDLE = (0, 0, 0, 1, 1, 2, 2, 2, 3, 3)  # 10 fine -> 4 middle -> 2 coarse (middle // 2)


def write_dyml_csv(path: str, columns: Sequence[str], rows: Sequence[Sequence]):
  """A DyML csv as released: fields joined by ``', '``, the header's last name running into the
  first record without a line break (``'fname, coarse_id, middle_id, fine_id0.jpg, 1, 3, 7'``)."""
  lines = [", ".join(str(x) for x in row) for row in rows]
  lines[0] = ", ".join(columns) + lines[0]
  _write_lines(path, lines)


def _dyml_tree(
  folder: str, offset: int, fine_to_middle: Sequence[int], middle_to_coarse: Callable[[int], int], images: int
) -> list[Item]:
  """Items ``<folder>/<n>.jpg`` with raw labels (fine, middle, coarse), classes interleaved."""
  items = []
  for k in range(images):
    for fine, middle in enumerate(fine_to_middle):
      labels = (offset + 7 * fine + 1000, offset + 3 * middle + 100, offset + middle_to_coarse(middle))
      items.append(Item(f"{folder}/{k * len(fine_to_middle) + fine}.jpg", labels))
  return items


def _dyml_benchmark(level: str, labels: Sequence[int]) -> dict[str, list[Item]]:
  """2 queries per class; the gallery: per class an extra image, a copy of the class's 2nd query,
  another extra image, a copy of its 1st query (copies under other names and positions)."""
  queries = [
    Item(f"bmk_{level}/query/{k * len(labels) + c}.jpg", (label,)) for k in range(2) for c, label in enumerate(labels)
  ]
  gallery = []
  for c, label in enumerate(labels):
    for source in (None, queries[len(labels) + c], None, queries[c]):
      gallery.append(Item(f"bmk_{level}/gallery/{len(gallery)}.jpg", (label,), None if source is None else source.path))
  return {f"test_query_{level}": queries, f"test_gallery_{level}": gallery}


def _dyml_truth(product: bool) -> dict[str, list[Item]]:
  offset = 50 if product else 0
  out = {"train": _dyml_tree("train/imgs", offset, _DYML_FINE_TO_MIDDLE, lambda m: m // 2, 4)}
  if product:
    out["test"] = _dyml_tree("mini-bmk_all_in_one/imgs", 500, (0, 0, 1, 1, 2, 2), lambda m: int(m == 2), 3)
  else:
    for level, labels in (("fine", (2001, 2004, 2009)), ("middle", (301, 305, 307)), ("coarse", (7, 8, 9))):
      out.update(_dyml_benchmark(level, labels))
  return out


def _write_dyml_table(root: str, path: str, items: Sequence[Item]):
  """``label.csv`` of a folder of ``imgs`` (file order: coarse, middle, fine)."""
  write_dyml_csv(
    os.path.join(root, path),
    DYML_FILE_COLUMNS,
    [(os.path.basename(i.path), i.labels[2], i.labels[1], i.labels[0]) for i in items],
  )


def _make_dyml(root: str, seed: int, product: bool) -> str:
  truth = _dyml_truth(product)
  os.makedirs(root, exist_ok=True)
  _write_dyml_table(root, "train/label.csv", truth["train"])
  if product:
    _write_dyml_table(root, "mini-bmk_all_in_one/label.csv", truth["test"])
  else:
    for split, items in truth.items():
      if split != "train":
        _, kind, level = split.split("_")
        write_dyml_csv(
          os.path.join(root, f"bmk_{level}", f"{kind}.csv"),
          ("fname", "labels"),
          [(os.path.basename(i.path), i.labels[0]) for i in items],
        )
  _write_images(root, [i for items in truth.values() for i in items], seed, 6 + product)
  return root


def make_dyml_vehicle(root: str, *, seed: int = 0) -> str:
  """DyML-Vehicle: ``train/label.csv``, ``train/imgs/<n>.jpg``, ``bmk_{fine,middle,coarse}/{query,
  gallery}.csv`` and ``bmk_<level>/{query,gallery}/<n>.jpg``.

  Follows ``suprank/datasets/dyml.py`` lines 33-53: ``pd.read_csv`` (separator ``','``; the
  release's fields are joined by ``', '``, so the names start with a space), the columns ``fname``
  and ``[" fine_id0.jpg", " middle_id", " coarse_id"]`` (train) or ``" labels0.jpg"``
  (benchmarks), which exist only because the header ``fname, coarse_id, middle_id, fine_id`` runs
  into the first record ``0.jpg, <coarse>, <middle>, <fine>`` (the DyML authors' reader,
  ``DyML_dataset.py``, splits it off with ``split('_id')[-1]``). pandas makes that record part of
  the header, so the original reader drops it; :func:`ground_truth` lists it (our reader recovers
  it). Train: 10 fine, 4 middle, 2 coarse classes x 4 images. Each benchmark: 3 classes x 2
  queries; its gallery holds a byte copy of every query under another name (the reference's
  ``gallery_distractor``) and one more image per query, with the same classes as the queries (the
  reference remaps query and gallery ids separately, lines 49-53, which needs equal class sets).
  """
  return _make_dyml(root, seed, product=False)


def make_dyml_animal(root: str, *, seed: int = 0) -> str:
  """DyML-Animal: the layout of :func:`make_dyml_vehicle` (same reader, ``dyml.py`` lines 33-53)."""
  return _make_dyml(root, seed, product=False)


def make_dyml_product(root: str, *, seed: int = 0) -> str:
  """DyML-Product: ``train/label.csv``, ``train/imgs``, ``mini-bmk_all_in_one/label.csv`` and
  ``mini-bmk_all_in_one/imgs``, both csv files in the release's shape (see :func:`make_dyml_vehicle`).

  Follows ``suprank/datasets/dyml.py`` lines 76-90 (``DyMLProduct``: the same pandas selection for
  train and test). Test: 6 fine, 3 middle, 2 coarse classes x 3 images.
  """
  return _make_dyml(root, seed, product=True)


# ----------------------------------------------------------------------------------------------
# Google Landmarks v2

# (landmark_id, images) of train_clean.csv; landmark 95 has 2 images (min_images_per_class).
_GLD_TRAIN = ((3, 4), (7, 10), (12, 4), (20, 4), (25, 4), (31, 4), (40, 4), (52, 4), (66, 4), (71, 4), (80, 4), (95, 2))
# landmark_id -> (cluster, overall_cluster); landmarks 52, 95 (train) and 106 (index) have none.
_GLD_TRAIN_CLUSTERS = {
  3: (0, 0),
  7: (0, 0),
  12: (1, 0),
  20: (1, 0),
  25: (2, 1),
  31: (2, 1),
  40: (3, 1),
  66: (3, 1),
  71: (4, 1),
  80: (4, 1),
}
_GLD_INDEX = (101, 102, 103, 104, 105, 106)  # 3 index images each
_GLD_INDEX_CLUSTERS = {101: (10, 5), 102: (10, 5), 103: (11, 5), 104: (12, 6), 105: (12, 6)}
# retrieval_solution_v2.1.csv: (index landmarks whose images are the query's solution, Usage); () = 'None'.
_GLD_QUERIES = (
  ((101,), "Public"),
  ((), "Ignored"),
  ((103, 103), "Private"),
  ((102,), "Public"),
  ((106,), "Private"),
  ((104,), "Public"),
  ((), "Ignored"),
  ((105,), "Private"),
)


def _gld_path(folder: str, image_id: str) -> str:
  return f"{folder}/{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"


def _gld_tables():
  """train rows ``(landmark, [ids])``, index rows ``(id, landmark)``, query rows ``(id, [index ids], usage)``."""
  train = [(lm, [_hex_id("train", 100 * lm + k, 16) for k in range(n)]) for lm, n in _GLD_TRAIN]
  index = [(_hex_id("index", 10 * lm + k, 16), lm) for lm in _GLD_INDEX for k in range(3)]
  first_of = {}
  for image_id, lm in index:
    first_of.setdefault(lm, []).append(image_id)
  queries = [
    (_hex_id("test", n, 16), [first_of[lm][k] for k, lm in enumerate(lms)], usage)
    for n, (lms, usage) in enumerate(_GLD_QUERIES)
  ]
  return train, index, queries


def _gld_truth(hierarchical: bool) -> dict[str, list[Item]]:
  train, index, queries = _gld_tables()
  landmark_of = dict(index)

  def labels(lm, clusters):
    return (lm, *clusters[lm]) if hierarchical else (lm,)

  def keep(lm, clusters):
    return not hierarchical or lm in clusters

  out = {
    "train": [
      Item(_gld_path("images/train", i), labels(lm, _GLD_TRAIN_CLUSTERS))
      for lm, ids in train
      if keep(lm, _GLD_TRAIN_CLUSTERS)
      for i in ids
    ],
    "gallery": [
      Item(_gld_path("index", i), labels(lm, _GLD_INDEX_CLUSTERS)) for i, lm in index if keep(lm, _GLD_INDEX_CLUSTERS)
    ],
    "query": [],
  }
  for i, solution, _ in queries:
    if solution and keep(landmark_of[solution[0]], _GLD_INDEX_CLUSTERS):
      out["query"].append(Item(_gld_path("test", i), labels(landmark_of[solution[0]], _GLD_INDEX_CLUSTERS)))
  return out


def make_gldv2(root: str, *, seed: int = 0) -> str:
  """Google Landmarks v2 (clean): ``train_clean.csv``, ``index_image_to_landmark.csv``,
  ``retrieval_solution_v2.1.csv`` and ``images/train``, ``index``, ``test`` as ``a/b/c/<id>.jpg``.

  Follows ``suprank/datasets/gldv2.py`` lines 15-16 (``imgid2filename``), 40-55 (files and folders
  per mode) and 65-96 (``landmark_id,images`` with space-separated ids; ``id,landmark_id``;
  ``id,images,Usage`` with ``'None'`` for queries without a landmark, whose label is the landmark of
  the first solution image). 12 train landmarks (4 images; landmark 7 has 10, landmark 95 has 2), 6
  index landmarks x 3 images, 8 queries of which 2 are ``'None'``. The hierarchy files are not
  written (see :func:`make_gldv2_hierarchical`); note that the reference's ``GLDV2Dataset``
  defaults to ``load_hierarchy=True``, which its ``gldv2.yaml`` does not turn off.
  """
  train, index, queries = _gld_tables()
  os.makedirs(root, exist_ok=True)
  _write_csv(
    os.path.join(root, "train_clean.csv"), ["landmark_id", "images"], [(lm, " ".join(ids)) for lm, ids in train]
  )
  _write_csv(os.path.join(root, "index_image_to_landmark.csv"), ["id", "landmark_id"], index)
  _write_csv(
    os.path.join(root, "retrieval_solution_v2.1.csv"),
    ["id", "images", "Usage"],
    [(i, " ".join(solution) or "None", usage) for i, solution, usage in queries],
  )
  items = (
    [Item(_gld_path("images/train", i), ()) for _, ids in train for i in ids]
    + [Item(_gld_path("index", i), ()) for i, _ in index]
    + [Item(_gld_path("test", i), ()) for i, _, _ in queries]
  )
  _write_images(root, items, seed, 8)
  return root


def make_gldv2_hierarchical(root: str, *, seed: int = 0) -> str:
  """Hierarchical GLDv2 (HAPPIER): :func:`make_gldv2` plus ``train_label_to_subcategory_with_clusters.csv``
  and ``index_label_to_subcategory_with_clusters.csv``.

  Follows ``suprank/datasets/gldv2.py`` lines 43-62 and 72-103: the hierarchy files are read with
  pandas, columns ``landmark_id``, ``cluster`` and ``overall_cluster`` (a landmark without a
  cluster has empty cells, NaN), merged on ``landmark_id``; with ``remove_nan`` the images of
  landmarks without a cluster are dropped (train 52 and 95, index 106 and the query solved by it).
  The files hold only the three columns the reader selects.
  """
  make_gldv2(root, seed=seed)
  header = ["landmark_id", "cluster", "overall_cluster"]
  for name, landmarks, clusters in (
    ("train", [lm for lm, _ in _GLD_TRAIN], _GLD_TRAIN_CLUSTERS),
    ("index", _GLD_INDEX, _GLD_INDEX_CLUSTERS),
  ):
    _write_csv(
      os.path.join(root, f"{name}_label_to_subcategory_with_clusters.csv"),
      header,
      [(lm, *clusters.get(lm, ("", ""))) for lm in landmarks],
    )
  return root


# ----------------------------------------------------------------------------------------------
# Revisited Oxford / Paris and the 1M distractors

# Landmarks of each benchmark: those with a query come first (one query each); the others only have
# gallery images. Image names are '<landmark>_<number>', the reference's label (path_to_label).
_REVISITED_LANDMARKS = {
  "roxford5k": (("all_souls", "ashmolean", "balliol", "bodleian", "christ_church"), ("magdalen",)),
  "rparis6k": (
    ("paris_defense", "paris_eiffel", "paris_invalides", "paris_louvre", "paris_moulinrouge"),
    ("paris_pompidou",),
  ),
}
_REVISITED_SIZES = ((16, 16), (16, 16), (12, 16), (16, 12))  # (height, width) of a landmark's k-th image
# Per query q: (easy, hard, junk) as positions among its landmark's 4 images; query 1 has no hard image
# and query 2 no easy one (left out of the easy and hard means), query 3 has no junk.
_REVISITED_GND = (
  ((0, 1), (2,), (3,)),
  ((0, 1, 2), (), (3,)),
  ((), (0, 1), (2, 3)),
  ((0, 3), (1, 2), ()),
  ((1,), (2,), (0, 3)),
)
_REVISITED_BOXES = ((2, 1, 13, 12), (0, 0, 16, 16), (3.4, 2.6, 11.5, 14.4), (1, 4, 9, 12), (5, 0, 15, 10))


def _revisited_tables(dataset: str):
  """``(gallery names, gallery sizes, query names, gnd)`` of one benchmark (as ``gnd_<dataset>.pkl``)."""
  queried, others = _REVISITED_LANDMARKS[dataset]
  names, sizes, first = [], [], {}
  for landmark in queried + others:
    first[landmark] = len(names)
    for k, size in enumerate(_REVISITED_SIZES):
      names.append(f"{landmark}_{k + 1:06d}")
      sizes.append(size)
  queries, gnd = [], []
  for q, landmark in enumerate(queried):
    queries.append(f"{landmark}_{q + 500:06d}")
    easy, hard, junk = ([first[landmark] + k for k in part] for part in _REVISITED_GND[q])
    gnd.append({"bbx": list(_REVISITED_BOXES[q]), "easy": easy, "hard": hard, "junk": junk})
  return names, sizes, queries, gnd


def _revisited_truth(dataset: str) -> dict[str, list[Item]]:
  names, _, queries, _ = _revisited_tables(dataset)

  def item(name):
    return Item(f"jpg/{name}.jpg", ("_".join(name.split("_")[:-1]),))

  return {"query": [item(n) for n in queries], "gallery": [item(n) for n in names]}


def _distractor_names(count: int) -> list[str]:
  return [f"{_hex_id('r1m', n, 2)}/{_hex_id('r1m', n, 16)}.jpg" for n in range(count)]


def make_revisited(root: str, *, seed: int = 0, num_distractors: int = 0) -> str:
  """Revisited Oxford and Paris in the revisitop / cirtorch layout: ``roxford5k/gnd_roxford5k.pkl``,
  ``roxford5k/jpg/<name>.jpg`` and the same for ``rparis6k``; with ``num_distractors``, also
  ``revisitop1m/revisitop1m.txt`` (one path relative to ``jpg/`` a line) and its images.

  Follows ``suprank/datasets/revisited_dataset.py`` lines 42-62: the folder's name is the city,
  ``gnd_<city>.pkl`` is a pickled dict with ``imlist``, ``qimlist`` and ``gnd`` (per query ``bbx``,
  ``easy``, ``hard``, ``junk``), images ``jpg/<name>.jpg``, and the label is the name without its
  trailing ``_<number>`` (``path_to_label``). Each benchmark: 5 queried landmarks and one more, 4
  gallery images each (16 x 16, 12 x 16 and 16 x 12 pixels), one query per queried landmark with a
  box (one with fractional coordinates), and ground truths that exercise empty easy, hard and junk
  lists. The distractors follow revisitop's ``dataset.py`` (``revisitop1m.txt``, images under ``jpg``;
  ``download.py`` fetches both), 16 x 16 pixels.
  """
  import pickle  # pylint: disable=g-import-not-at-top

  for tag, dataset in enumerate(_REVISITED_LANDMARKS):
    names, sizes, queries, gnd = _revisited_tables(dataset)
    folder = os.path.join(root, dataset)
    os.makedirs(os.path.join(folder, "jpg"), exist_ok=True)
    with open(os.path.join(folder, f"gnd_{dataset}.pkl"), "wb") as f:
      pickle.dump({"imlist": names, "qimlist": queries, "gnd": gnd}, f, protocol=2)
    rng = np.random.default_rng([seed, 20 + tag])
    for name, (h, w) in list(zip(names, sizes)) + [(q, (IMAGE_SIZE, IMAGE_SIZE)) for q in queries]:
      with open(os.path.join(folder, "jpg", f"{name}.jpg"), "wb") as f:
        f.write(random_jpeg(rng, h, w))
  if num_distractors:
    folder = os.path.join(root, "revisitop1m")
    names = _distractor_names(num_distractors)
    _write_lines(os.path.join(folder, "revisitop1m.txt"), names)
    _write_images(folder, [Item(f"jpg/{n}", ()) for n in names], seed, 22)
  return root


# ----------------------------------------------------------------------------------------------
# retrieval-SfM-120k

_SFM_CLUSTERS = (
  3,
  3,
  3,
  3,
  9,
  9,
  9,
  9,
  9,
  17,
  17,
  17,
  17,
  21,
  21,
  21,
  21,
  30,
  30,
  30,
  30,
  42,
  42,
  42,
  42,
  55,
  55,
  55,
  55,
  58,
  58,
  58,
  58,
  60,
  60,
)  # cluster of each image, in file order


def _sfm_truth() -> dict[str, list[Item]]:
  cids = [_hex_id("sfm", n, 32) for n in range(len(_SFM_CLUSTERS))]
  return {"train": [Item(f"ims/{c[-2:]}/{c[-4:-2]}/{c[-6:-4]}/{c}", (k,)) for c, k in zip(cids, _SFM_CLUSTERS)]}


def make_sfm120k(root: str, *, seed: int = 0) -> str:
  """retrieval-SfM-120k: ``retrieval-SfM-120k-imagenames-clusterids.mat`` and ``ims/<a>/<b>/<c>/<cid>``.

  Follows ``suprank/datasets/sfm120k.py`` lines 21-33 and 50-55 (cirtorch's ``cid2filename``):
  ``loadmat``, ``db['cids'][0]`` (a cell array: ``x[0]`` is the name), ``db['cluster'][0]`` (the
  class), the image at ``ims/cid[-2:]/cid[-4:-2]/cid[-6:-4]/cid`` (no extension). 9 clusters, 8 of
  them with at least 4 images (cluster 60 has 2: ``num_samples_th``).
  """
  from scipy.io import savemat  # pylint: disable=g-import-not-at-top

  items = _sfm_truth()["train"]
  os.makedirs(root, exist_ok=True)
  cids = np.empty((1, len(items)), dtype=object)
  for n, item in enumerate(items):
    cids[0, n] = os.path.basename(item.path)
  path = os.path.join(root, "retrieval-SfM-120k-imagenames-clusterids.mat")
  savemat(path, {"cids": cids, "cluster": np.array([_SFM_CLUSTERS], np.int32)})
  with open(path, "r+b") as f:  # a fixed 116-byte header (it holds the creation time)
    f.write(b"MATLAB 5.0 MAT-file, written by tests/miniatures.py".ljust(116))
  _write_images(root, items, seed, 23)
  return root


# ----------------------------------------------------------------------------------------------

MINIATURES: dict[str, Callable[..., str]] = {
  "sop": make_sop,
  "cub": make_cub,
  "cars": make_cars,
  "inshop": make_inshop,
  "inaturalist": make_inaturalist,
  "dyml_vehicle": make_dyml_vehicle,
  "dyml_animal": make_dyml_animal,
  "dyml_product": make_dyml_product,
  "gldv2": make_gldv2,
  "gldv2_hierarchical": make_gldv2_hierarchical,
}

_TRUTH = {
  "sop": _sop_truth,
  "cub": _cub_truth,
  "cars": _cars_truth,
  "inshop": _inshop_truth,
  "inaturalist": _inat_truth,
  "dyml_vehicle": lambda: _dyml_truth(False),
  "dyml_animal": lambda: _dyml_truth(False),
  "dyml_product": lambda: _dyml_truth(True),
  "gldv2": lambda: _gld_truth(False),
  "gldv2_hierarchical": lambda: _gld_truth(True),
  "roxford5k": lambda: _revisited_truth("roxford5k"),
  "rparis6k": lambda: _revisited_truth("rparis6k"),
  "revisitop1m": lambda: {"distractors": [Item(f"jpg/{n}", (0,)) for n in _distractor_names(12)]},
  "sfm120k": _sfm_truth,
}

# The landmark evaluation's data (a folder of benchmarks) and SfM-120k (image files without extension):
# kept apart from MINIATURES, whose data sets all have a train split of .jpg files.
LANDMARK_MINIATURES: dict[str, Callable[..., str]] = {
  "revisited": make_revisited,
  "sfm120k": make_sfm120k,
}


def ground_truth(name: str) -> dict[str, list[Item]]:
  """``{split: items}`` of miniature ``name`` (splits named as our readers name them; ``roxford5k`` and
  ``rparis6k`` relative to their folder of :func:`make_revisited`, ``revisitop1m`` to its folder with
  12 distractors)."""
  if name not in _TRUTH:
    raise ValueError(f"no miniature {name!r}; valid: {sorted(_TRUTH)}")
  return _TRUTH[name]()


def for_config(config, root: str) -> str:
  """Builds under ``root`` the miniatures a config reads; returns its ``config.input.data_dir``.

  The training set's miniature (``MINIATURES``), as its hierarchical superset when an evaluation reads
  the hierarchical labels from the same folder (GLDv2's H-GLDv2 benchmark), or SfM-120k's; and the
  Revisited benchmarks (with 12 distractors) for every evaluation of kind 'revisited' without a
  ``data_dir``, which is set.
  """
  name = config.input.dataset
  if name == "gldv2" and any(ev.dataset == "gldv2_hierarchical" and not ev.data_dir for ev in config.evals.values()):
    name = "gldv2_hierarchical"
  make = LANDMARK_MINIATURES["sfm120k"] if name == "sfm120k" else MINIATURES[name]
  data_dir = make(os.path.join(root, name))
  for ev in config.evals.values():
    if "kind" in ev and ev.kind == "revisited" and not ev.data_dir:
      ev.data_dir = make_revisited(os.path.join(root, "revisited"), num_distractors=12)
  return data_dir
