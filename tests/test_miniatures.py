"""Our readers on the miniatures of every data set (tests/miniatures.py), against the generators'
ground truth: items and order, class counts, level order (finest first), nesting, query/gallery ids."""

import os
import time

import numpy as np
import pytest

from suprank_jax.input_pipeline import datasets, pipeline, query_copies
from tests import miniatures

NAMES = sorted(miniatures.MINIATURES)

# The reference's hierarchy tables for the classes with 4 images, copied from the reference:
# suprank/datasets/cub200.py lines 81-90 and 181-190 (trees[s] = [s, order, family]; the reader keeps
# [s, family, order]) and suprank/datasets/cars196.py lines 54-63 and 152-161 (trees[m] = [m, type]).
CUB_TREES = {
  1: (1, 12, 35),
  2: (2, 12, 35),
  3: (3, 12, 35),
  4: (4, 6, 9),
  5: (5, 4, 4),
  6: (6, 4, 4),
  7: (7, 4, 4),
  8: (8, 4, 4),
  9: (9, 8, 18),
  10: (10, 8, 18),
  101: (101, 9, 32),
  102: (102, 8, 30),
  103: (103, 8, 30),
  104: (104, 8, 22),
  105: (105, 3, 3),
  106: (106, 4, 4),
  107: (107, 8, 15),
  108: (108, 8, 15),
  109: (109, 8, 23),
  110: (110, 6, 9),
}
CARS_TREES = {
  1: 7,
  2: 6,
  3: 6,
  4: 6,
  5: 6,
  6: 3,
  7: 4,
  8: 2,
  9: 3,
  10: 2,
  99: 3,
  100: 2,
  101: 3,
  102: 2,
  103: 2,
  104: 3,
  105: 6,
  106: 1,
  107: 2,
  108: 5,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("miniatures")
  return {name: make(str(root / name)) for name, make in miniatures.MINIATURES.items()}


def _truth_columns(name, items, kwargs):
  """The truth's raw labels ``[N, L]`` (as str) for the levels our reader gives under ``kwargs``."""
  rows = np.array([[str(v) for v in item.labels] for item in items], dtype=object).reshape(len(items), -1)
  if name == "inaturalist":
    return rows[:, [0, 7]] if kwargs.get("mode", "base") == "base" else rows[:, :7]
  if name == "inshop":
    return rows[:, {"all": [0, 1, 2], "1": [0, 1], "2": [0, 2]}[kwargs.get("hierarchy_mode", "all")]]
  return rows


def _same_classes(ids, raw):
  """Do ``ids`` and ``raw`` (one level, same items) define the same classes (a bijection)?"""
  ids, raw = list(map(int, ids)), [str(v) for v in raw]
  return len(set(zip(ids, raw))) == len(set(ids)) == len(set(raw))


def _nested(column_fine, column_coarse):
  """Is every class of the finer column inside exactly one class of the coarser one?"""
  parent = {}
  return all(parent.setdefault(f, c) == c for f, c in zip(map(str, column_fine), map(str, column_coarse)))


def _check_split(name, data_dir, split, **kwargs):
  """Loads ``split`` with our reader and checks it against the truth; returns (source, truth rows)."""
  items = miniatures.ground_truth(name)[split]
  source = datasets.DATASETS[name](data_dir, split, **kwargs)
  assert [os.path.relpath(p, data_dir) for p in source.paths] == [i.path for i in items], (name, split)
  truth = _truth_columns(name, items, kwargs)
  common = min(truth.shape[1], source.num_levels)
  for level in range(common):
    assert _same_classes(source.labels[:, level], truth[:, level]), (name, split, level)
    assert source.num_classes[level] == len(set(truth[:, level]))  # contiguous ids 0..K-1
  for level in range(common - 1):
    assert _nested(source.labels[:, level], source.labels[:, level + 1]) == _nested(
      truth[:, level], truth[:, level + 1]
    )
  # Finest level first: class counts never grow from one level to the next.
  assert list(source.num_classes) == sorted(source.num_classes, reverse=True), (name, split, source.num_classes)
  return source, truth


@pytest.mark.parametrize("name", NAMES)
def test_every_split_matches_the_ground_truth(built, name):
  for split in miniatures.ground_truth(name):
    _check_split(name, built[name], split)


@pytest.mark.parametrize("kwargs", [dict(mode="base"), dict(mode="full")])
def test_inaturalist_modes(built, kwargs):
  for split in ("train", "test", "all"):
    source, truth = _check_split("inaturalist", built["inaturalist"], split, **kwargs)
    assert source.num_levels == truth.shape[1]
  full = datasets.DATASETS["inaturalist"](built["inaturalist"], "train", mode="full")
  assert full.num_classes == (9, 7, 5, 4, 3, 3, 2)  # species .. kingdom of the 9 train species
  assert all(_nested(full.labels[:, k], full.labels[:, k + 1]) for k in range(6))


@pytest.mark.parametrize("mode", ["all", "1", "2"])
def test_inshop_hierarchy_modes(built, mode):
  for split in ("train", "query", "gallery"):
    _check_split("inshop", built["inshop"], split, hierarchy_mode=mode)
  train = datasets.DATASETS["inshop"](built["inshop"], "train")
  assert train.num_classes == (8, 3, 2)
  # Denim is a category of both genders in the release: category is not nested in gender.
  assert _nested(train.labels[:, 0], train.labels[:, 1]) and not _nested(train.labels[:, 1], train.labels[:, 2])


def test_cub_and_cars_levels_follow_the_reference_tables(built):
  for split in ("train", "test"):
    cub = datasets.DATASETS["cub"](built["cub"], split)
    assert cub.num_classes[0] == 100
    big = [n for n, p in enumerate(cub.paths) if int(p.split("/")[-2][:3]) in CUB_TREES]
    species = [int(cub.paths[n].split("/")[-2][:3]) for n in big]
    family = [CUB_TREES[s][2] for s in species]
    order = [CUB_TREES[s][1] for s in species]
    assert _same_classes(cub.labels[big, 1], family) and _same_classes(cub.labels[big, 2], order)
    assert _nested(cub.labels[:, 0], cub.labels[:, 1]) and _nested(cub.labels[:, 1], cub.labels[:, 2])
    cars = datasets.DATASETS["cars"](built["cars"], split)
    models = [miniatures.ground_truth("cars")[split][n].labels[0] for n in range(len(cars))]
    assert _same_classes(cars.labels[:, 1], [CARS_TREES[m] for m in models])
  # The reference's sizes (suprank/config/dataset/cub.yaml): 100 train species, 30 families, 13 orders.
  assert datasets.DATASETS["cub"](built["cub"], "train").num_classes == (100, 30, 13)


@pytest.mark.parametrize(
  "name", ["dyml_vehicle", "dyml_animal", "dyml_product", "inshop", "gldv2", "gldv2_hierarchical"]
)
def test_query_and_gallery_ids_agree(built, name):
  truth = miniatures.ground_truth(name)
  pairs = (
    [(f"test_query_{lv}", f"test_gallery_{lv}") for lv in ("fine", "middle", "coarse")]
    if name in ("dyml_vehicle", "dyml_animal")
    else [("query", "gallery")]
    if "test" not in truth
    else []
  )
  for query_split, gallery_split in pairs:
    query = datasets.DATASETS[name](built[name], query_split)
    gallery = datasets.DATASETS[name](built[name], gallery_split)
    ids = np.concatenate([query.labels, gallery.labels])
    raw = np.concatenate([_truth_columns(name, truth[s], {}) for s in (query_split, gallery_split)])
    for level in range(ids.shape[1]):
      assert _same_classes(ids[:, level], raw[:, level]), (name, query_split, level)


@pytest.mark.parametrize("name", ["dyml_vehicle", "dyml_animal"])
def test_each_benchmark_gallery_holds_a_copy_of_every_query(built, name):
  truth = miniatures.ground_truth(name)
  for level in ("fine", "middle", "coarse"):
    query = datasets.DATASETS[name](built[name], f"test_query_{level}")
    gallery = datasets.DATASETS[name](built[name], f"test_gallery_{level}")
    copies = query_copies.find_query_copies(query, gallery)
    gallery_items = truth[f"test_gallery_{level}"]
    expected = [
      next(g for g, item in enumerate(gallery_items) if item.same_as == q.path) for q in truth[f"test_query_{level}"]
    ]
    np.testing.assert_array_equal(copies, expected)
    np.testing.assert_array_equal(gallery.labels[copies], query.labels)


def test_dyml_keeps_the_record_glued_to_the_header(built):
  """The release's first record (0.jpg) runs into the header: the original pandas reader drops it, ours
  keeps it with the levels of its columns."""
  for name in ("dyml_vehicle", "dyml_product"):
    train = datasets.DATASETS[name](built[name], "train")
    first = miniatures.ground_truth(name)["train"][0]
    assert train.paths[0].endswith(os.path.join("train", "imgs", "0.jpg")) and first.path.endswith("/0.jpg")
    assert len(train) == len(miniatures.ground_truth(name)["train"]) == 40
    assert train.num_classes == (10, 4, 2)


@pytest.mark.parametrize("name", list(NAMES))
def test_each_train_split_fills_an_m_per_class_batch_of_8_classes_x_4(built, name):
  config = pipeline.default_config()
  config.update(dict(dataset=name, data_dir=built[name], global_batch_size=32, samples_per_class=4))
  source = datasets.get_source(config, "train")
  counts = np.bincount(source.labels[:, 0])
  assert (counts >= 4).sum() >= 8
  batch = pipeline.load_train_batch(config, source, 0, seed=0)
  assert batch["images"].shape == (32, miniatures.IMAGE_SIZE, miniatures.IMAGE_SIZE, 3)
  for block in batch["index"].reshape(8, 4):
    (cls,) = set(source.labels[block, 0].tolist())
    assert len(set(block.tolist())) == min(4, counts[cls])  # distinct images (a 2-image class repeats)
  assert len(set(batch["labels"][:, 0].tolist())) == 8


def test_sop_fills_a_hierarchical_batch_of_2_super_classes(built):
  config = pipeline.default_config()
  config.update(
    dict(
      dataset="sop",
      data_dir=built["sop"],
      sampler="hierarchical",
      global_batch_size=32,
      samples_per_class=4,
      super_classes_per_batch=2,
      batches_per_super_tuple=2,
    )
  )
  source = datasets.get_source(config, "train")
  for step in range(pipeline.steps_per_epoch(config, source)):
    labels = pipeline.load_train_batch(config, source, step, seed=0)["labels"]
    supers, per_super = np.unique(labels[:, 1], return_counts=True)
    assert len(supers) == 2 and per_super.tolist() == [16, 16]
    classes, per_class = np.unique(labels[:, 0], return_counts=True)
    assert len(classes) == 8 and set(per_class.tolist()) == {4}  # 4 distinct products per super-class


def test_gldv2_min_images_per_class_drops_small_landmarks(built):
  truth = miniatures.ground_truth("gldv2")["train"]
  landmarks = [i.labels[0] for i in truth]
  kept = [lm for lm in landmarks if landmarks.count(lm) >= 4]
  assert len(datasets.DATASETS["gldv2"](built["gldv2"], "train", min_images_per_class=4)) == len(kept) == len(truth) - 2


@pytest.mark.parametrize("name", NAMES)
def test_a_miniature_builds_in_well_under_a_second_and_depends_only_on_its_seed(tmp_path, name):
  make = miniatures.MINIATURES[name]
  make(str(tmp_path / "warm-up"))  # imports (scipy for Cars)
  start = time.perf_counter()
  a = make(str(tmp_path / "a"), seed=0)
  assert time.perf_counter() - start < 1.0
  b, c = make(str(tmp_path / "b"), seed=0), make(str(tmp_path / "c"), seed=1)

  def files(root):
    out = {}
    for folder, _, names in os.walk(root):
      for n in names:
        with open(os.path.join(folder, n), "rb") as f:
          out[os.path.relpath(os.path.join(folder, n), root)] = f.read()
    return out

  fa, fb, fc = files(a), files(b), files(c)
  assert fa == fb and fa.keys() == fc.keys()
  changed = [k for k in fa if fa[k] != fc[k]]
  assert changed and all(k.endswith((".jpg", ".JPG")) for k in changed)
