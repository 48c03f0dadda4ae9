"""Tests of the data-set readers on tiny on-disk replicas of each raw format (small JPEGs)."""

import csv
import json
import os
import pickle

import ml_collections
import numpy as np
import pytest
from PIL import Image

from suprank_jax.input_pipeline import datasets, pipeline, sources
from suprank_jax.input_pipeline.readers import cars, cub, dyml, gldv2, inaturalist, inshop, revisited, sop
from tests import miniatures

# ----------------------------------------------------------------------------------------------
# Replica writers (also used by test_to_array_record.py)


def write_jpeg(path, seed, size=(16, 12)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, quality=95)


def make_sop(root):
  """4 train products in 2 categories (3 images each), 2 test products."""
  os.makedirs(root, exist_ok=True)

  def write(split, rows):
    with open(os.path.join(root, f"Ebay_{split}.txt"), "w") as f:
      f.write("image_id class_id super_class_id path\n")
      for n, (cls, sup, rel) in enumerate(rows, start=1):
        f.write(f"{n} {cls} {sup} {rel}\n")
        write_jpeg(os.path.join(root, rel), n + 100 * cls)

  names = {1: "bicycle_final", 2: "chair_final", 3: "lamp_final"}
  write("train", [(c, s, f"{names[s]}/{c}_{k}.JPG") for c, s in ((1, 1), (2, 1), (5, 2), (7, 2)) for k in range(3)])
  write("test", [(c, 3, f"{names[3]}/{c}_{k}.JPG") for c in (11, 12) for k in range(2)])
  return root


def make_cub(root):
  """Species 1, 4 (train) and 101, 200 (test), 2 images each."""
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "images.txt"), "w") as fi, open(os.path.join(root, "image_class_labels.txt"), "w") as fl:
    n = 0
    for species in (1, 4, 101, 200):
      for k in range(2):
        n += 1
        rel = f"{species:03d}.Bird_{species}/Bird_{species}_{k}.jpg"
        fi.write(f"{n} {rel}\n")
        fl.write(f"{n} {species}\n")
        write_jpeg(os.path.join(root, "images", rel), n)
  return root


def make_cars(root):
  os.makedirs(root, exist_ok=True)
  from scipy.io import savemat

  classes = [1, 1, 98, 99, 196, 196]
  records = np.zeros((1, len(classes)), dtype=[("relative_im_path", "O"), ("class", "O")])
  for n, c in enumerate(classes):
    rel = f"car_ims/{n + 1:06d}.jpg"
    records[0, n] = (rel, np.array([[c]], np.uint8))
    write_jpeg(os.path.join(root, rel), n)
  savemat(os.path.join(root, "cars_annos.mat"), {"annotations": records})
  return root


INSHOP_ROWS = [
  ("img/WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "train"),
  ("img/WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "train"),
  ("img/MEN/Denim/id_00000007/07_1_front.jpg", "id_00000007", "train"),
  ("img/MEN/Denim/id_00000007/07_2_side.jpg", "id_00000007", "train"),
  ("img/WOMEN/Skirts/id_00000010/10_1_front.jpg", "id_00000010", "query"),
  ("img/MEN/Shorts/id_00000012/12_1_front.jpg", "id_00000012", "query"),
  ("img/MEN/Shorts/id_00000012/12_2_side.jpg", "id_00000012", "gallery"),
  ("img/WOMEN/Skirts/id_00000010/10_2_side.jpg", "id_00000010", "gallery"),
  ("img/WOMEN/Skirts/id_00000010/10_3_back.jpg", "id_00000010", "gallery"),
]


def make_inshop(root):
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "list_eval_partition.txt"), "w") as f:
    f.write(f"{len(INSHOP_ROWS)}\nimage_name item_id evaluation_status\n")
    for n, (rel, item, status) in enumerate(INSHOP_ROWS):
      f.write(f"{rel}          {item}   {status}\n")
      write_jpeg(os.path.join(root, rel), n)
  return root


def make_inaturalist(root):
  os.makedirs(root, exist_ok=True)
  categories = [
    dict(id=10, name="a", genus="G1", family="F1", order="O1", **{"class": "C1"}, phylum="P1", kingdom="Plantae"),
    dict(id=11, name="b", genus="G2", family="F1", order="O1", **{"class": "C1"}, phylum="P1", kingdom="Plantae"),
    dict(id=20, name="c", genus="G3", family="F2", order="O2", **{"class": "C2"}, phylum="P2", kingdom="Animalia"),
    dict(id=30, name="d", genus="G4", family="F3", order="O2", **{"class": "C2"}, phylum="P2", kingdom="Animalia"),
  ]
  with open(os.path.join(root, "train2018.json"), "w") as f:
    json.dump({"categories": categories, "images": [], "annotations": []}, f)
  os.makedirs(os.path.join(root, "Inat_dataset_splits"))
  listing = {"train": [("Plantae", 10), ("Plantae", 11), ("Animalia", 20)], "test": [("Animalia", 30)]}
  n = 0
  for split, species in listing.items():
    with open(os.path.join(root, "Inat_dataset_splits", f"Inaturalist_{split}_set1.txt"), "w") as f:
      for sup, sp in species:
        for k in range(2):
          rel = f"train_val2018/{sup}/{sp}/{sp}_{k}.jpg"
          f.write(rel + "\n")
          write_jpeg(os.path.join(root, rel), n)
          n += 1
  return root


def make_dyml(root, product=False):
  """DyML csv files in the release's shape (miniatures.write_dyml_csv): train columns ``fname, coarse_id,
  middle_id, fine_id`` with the header running into the first record ``0.jpg, ...``."""
  os.makedirs(root, exist_ok=True)

  def table(path, folder, columns, rows):
    rows = [(f"{n}.jpg", *labels) for n, labels in enumerate(rows)]
    miniatures.write_dyml_csv(path, columns, rows)
    for n, row in enumerate(rows):
      write_jpeg(os.path.join(folder, row[0]), n + len(path))

  levels = ("fname", "coarse_id", "middle_id", "fine_id")
  # (coarse, middle, fine): fine 0, 1, 2, 5 -> middle 10, 10, 11, 12 -> coarse 100, 100, 100, 101.
  table(
    os.path.join(root, "train", "label.csv"),
    os.path.join(root, "train", "imgs"),
    levels,
    [(fine // 4 + 100, fine // 2 + 10, fine) for fine in (0, 1, 2, 5) for _ in range(2)],
  )
  if product:
    table(
      os.path.join(root, "mini-bmk_all_in_one", "label.csv"),
      os.path.join(root, "mini-bmk_all_in_one", "imgs"),
      levels,
      [(0, fine // 2, fine) for fine in (7, 9) for _ in range(2)],
    )
  else:
    for kind, labels in (("query", (3, 8)), ("gallery", (8, 3, 3, 5))):
      table(
        os.path.join(root, "bmk_fine", f"{kind}.csv"),
        os.path.join(root, "bmk_fine", kind),
        ("fname", "labels"),
        [(lb,) for lb in labels],
      )
  return root


def make_gldv2(root):
  os.makedirs(root, exist_ok=True)

  def write_csv(name, header, rows):
    with open(os.path.join(root, name), "w", newline="") as f:
      w = csv.writer(f)
      w.writerow(header)
      w.writerows(rows)

  ids = iter(f"{n:016x}" for n in range(100, 200))
  train = {7: [next(ids) for _ in range(3)], 9: [next(ids) for _ in range(2)], 12: [next(ids)]}
  write_csv("train_clean.csv", ["landmark_id", "images"], [(lm, " ".join(v)) for lm, v in train.items()])
  write_csv(
    "train_label_to_subcategory_with_clusters.csv",
    ["landmark_id", "cluster", "overall_cluster"],
    [(7, "c1", "o1"), (9, "c2", "o1"), (12, "", "")],
  )
  index = [(next(ids), lm) for lm in (50, 50, 60, 70)]
  write_csv("index_image_to_landmark.csv", ["id", "landmark_id"], index)
  write_csv(
    "index_label_to_subcategory_with_clusters.csv",
    ["landmark_id", "cluster", "overall_cluster"],
    [(50, "c5", "o5"), (60, "c6", "o5"), (70, "c7", "o7")],
  )
  queries = [(next(ids), index[2][0], "Public"), (next(ids), "None", "Public"), (next(ids), index[0][0], "Private")]
  write_csv("retrieval_solution_v2.1.csv", ["id", "images", "Usage"], queries)
  for folder, image_ids in (
    ("images/train", [i for v in train.values() for i in v]),
    ("index", [i for i, _ in index]),
    ("test", [q for q, _, _ in queries]),
  ):
    for n, i in enumerate(image_ids):
      write_jpeg(os.path.join(root, folder, i[0], i[1], i[2], f"{i}.jpg"), n)
  return root, train, index, queries


def make_revisited(root, name="roxford5k"):
  os.makedirs(root, exist_ok=True)
  gnd = {
    "qimlist": ["all_souls_000013", "radcliffe_camera_000519"],
    "imlist": ["all_souls_000001", "bodleian_000108", "radcliffe_camera_000002", "all_souls_000020"],
    "gnd": [
      {"bbx": [2, 1, 10, 9], "easy": [0], "hard": [3], "junk": []},
      {"bbx": [0, 0, 8, 8], "easy": [2], "hard": [], "junk": [1]},
    ],
  }
  with open(os.path.join(root, f"gnd_{name}.pkl"), "wb") as f:
    pickle.dump(gnd, f)
  for n, image in enumerate(gnd["qimlist"] + gnd["imlist"]):
    write_jpeg(os.path.join(root, "jpg", f"{image}.jpg"), n)
  return root


def _assert_loads(source):
  for i in range(len(source)):
    image = source.load_image(i)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


# ----------------------------------------------------------------------------------------------
# Readers


def test_sop_reads_products_and_categories(tmp_path):
  root = make_sop(str(tmp_path))
  train = sop.sop(root, "train")
  np.testing.assert_array_equal(train.labels, np.repeat([[0, 0], [1, 0], [2, 1], [3, 1]], 3, axis=0))
  assert train.level_names == ("product", "category")
  assert train.paths[0] == os.path.join(root, "bicycle_final/1_0.JPG")
  _assert_loads(train)
  test = sop.sop(root, "test")
  np.testing.assert_array_equal(test.labels, [[0, 0], [0, 0], [1, 0], [1, 0]])
  assert len(sop.sop(root, "all")) == 16


def test_cub_splits_by_class_and_adds_family_and_order(tmp_path):
  root = make_cub(str(tmp_path))
  train, test = cub.cub(root, "train"), cub.cub(root, "test")
  # Reference hierarchy: species 1 -> (family 35, order 12), 4 -> (9, 6), 101 -> (32, 9), 200 -> (23, 8).
  np.testing.assert_array_equal(train.labels, [[0, 1, 1]] * 2 + [[1, 0, 0]] * 2)
  np.testing.assert_array_equal(test.labels, [[0, 1, 1]] * 2 + [[1, 0, 0]] * 2)
  assert train.level_names == ("species", "family", "order")
  assert all("/images/00" in p for p in train.paths) and all("/images/" in p for p in test.paths)
  assert {p.split("/")[-2] for p in test.paths} == {"101.Bird_101", "200.Bird_200"}
  _assert_loads(test)


def test_cub_rejects_a_class_out_of_range(tmp_path):
  root = make_cub(str(tmp_path))
  with open(os.path.join(root, "image_class_labels.txt"), "a") as f:
    f.write("9 201\n")
  with pytest.raises(ValueError, match="class 201 is out of range"):
    cub.cub(root, "train")


def test_cars_splits_by_class_and_adds_body_type(tmp_path):
  root = make_cars(str(tmp_path))
  train, test = cars.cars(root, "train"), cars.cars(root, "test")
  # Reference: model 1 -> type 7, 98 -> 4, 99 -> 3, 196 -> 2.
  np.testing.assert_array_equal(train.labels, [[0, 1], [0, 1], [1, 0]])
  np.testing.assert_array_equal(test.labels, [[0, 1], [1, 0], [1, 0]])
  assert train.paths[2].endswith("car_ims/000003.jpg")
  _assert_loads(train)


def test_inshop_query_and_gallery_share_item_ids(tmp_path):
  root = make_inshop(str(tmp_path))
  train = inshop.inshop(root, "train")
  # Items 2 and 7; categories Denim < Dresses; genders MEN < WOMEN.
  np.testing.assert_array_equal(train.labels, [[0, 1, 1], [0, 1, 1], [1, 0, 0], [1, 0, 0]])
  query, gallery = inshop.inshop(root, "query"), inshop.inshop(root, "gallery")
  np.testing.assert_array_equal(query.labels[:, 0], [0, 1])  # id_10, id_12
  np.testing.assert_array_equal(gallery.labels[:, 0], [1, 0, 0])
  assert inshop.inshop(root, "query", hierarchy_mode="2").level_names == ("item", "gender")
  _assert_loads(gallery)


def test_inaturalist_base_and_full_modes(tmp_path):
  root = make_inaturalist(str(tmp_path))
  base = inaturalist.inaturalist(root, "train", mode="base")
  np.testing.assert_array_equal(base.labels, [[0, 1], [0, 1], [1, 1], [1, 1], [2, 0], [2, 0]])
  full = inaturalist.inaturalist(root, "train", mode="full")
  assert full.level_names == inaturalist.INAT_LEVELS
  # species 10, 11, 20: genus G1, G2, G3; family F1, F1, F2; kingdom Plantae, Plantae, Animalia.
  np.testing.assert_array_equal(full.labels[::2], [[0, 0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 1], [2, 2, 1, 1, 1, 1, 0]])
  assert len(inaturalist.inaturalist(root, "test", mode="full")) == 2
  _assert_loads(base)


def test_dyml_train_levels_and_joint_query_gallery_ids(tmp_path):
  root = make_dyml(str(tmp_path))
  train = dyml.dyml_vehicle(root, "train")
  # fine 0, 1, 2, 5 -> middle 10, 10, 11, 12 -> coarse 100, 100, 100, 101.
  np.testing.assert_array_equal(train.labels[::2], [[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1]])
  assert train.paths[0] == os.path.join(root, "train", "imgs", "0.jpg")  # the record glued to the header
  query = dyml.dyml_animal(root, "test_query_fine")
  gallery = dyml.dyml_animal(root, "test_gallery_fine")
  np.testing.assert_array_equal(query.labels[:, 0], [0, 2])  # ids over {3, 5, 8}
  np.testing.assert_array_equal(gallery.labels[:, 0], [2, 0, 0, 1])
  _assert_loads(gallery)


def _pandas_selection(path, columns):
  """``pd.read_csv(path)[columns]`` and its ``fname`` column, as the reference (suprank/datasets/dyml.py
  lines 34-39) reads the DyML csv files. pandas itself when installed, else its rules by hand: separator
  ',', names not stripped, line 1 is the header (a longer header than the rows pads them with NaN)."""
  try:
    import pandas as pd  # pylint: disable=g-import-not-at-top
  except ImportError:
    with open(path, encoding="utf-8") as f:
      lines = [line.split(",") for line in f.read().splitlines() if line]
    header, rows = lines[0], lines[1:]
    return [[int(row[header.index(c)]) for c in columns] for row in rows], [row[header.index("fname")] for row in rows]
  table = pd.read_csv(path)
  return table[list(columns)].to_numpy().tolist(), table["fname"].tolist()


def test_dyml_levels_are_the_named_columns_finest_first_like_the_original(tmp_path):
  root = make_dyml(str(tmp_path))
  for name, folder in (("dyml_vehicle", "train"), ("dyml_product", "train")):
    source = datasets.DATASETS[name](root, "train")
    columns = [" fine_id0.jpg", " middle_id", " coarse_id"]  # the reference's selection
    expected, files = _pandas_selection(os.path.join(root, folder, "label.csv"), columns)
    # The original makes the first record (0.jpg) part of the header and drops it; ours keeps it first.
    assert len(source) == len(expected) + 1 and source.paths[0].endswith("/0.jpg")
    assert [os.path.basename(p) for p in source.paths[1:]] == files
    np.testing.assert_array_equal(source.labels[1:], sources.remap_labels(np.array(expected)))
    assert source.level_names == ("fine", "middle", "coarse") and source.num_classes == (4, 3, 2)
    # Each fine class lies in exactly one middle and one coarse class.
    for level in (1, 2):
      assert all(len(set(source.labels[source.labels[:, 0] == f, level])) == 1 for f in range(4))
  # The record glued to the header: 0.jpg, coarse 100, middle 10, fine 0 -> the first id of each level.
  np.testing.assert_array_equal(dyml.dyml_vehicle(root, "train").labels[0], [0, 0, 0])
  rows, files = _pandas_selection(os.path.join(root, "bmk_fine", "gallery.csv"), [" labels0.jpg"])
  gallery = dyml.dyml_vehicle(root, "test_gallery_fine")
  assert [row[0] for row in rows] == [3, 3, 5] and files == ["1.jpg", "2.jpg", "3.jpg"]  # 0.jpg (8) dropped
  assert len(gallery) == 4 and gallery.paths[0].endswith("bmk_fine/gallery/0.jpg")


def test_dyml_reads_a_header_on_its_own_line_in_any_column_order(tmp_path):
  root = make_dyml(str(tmp_path))
  path = os.path.join(root, "train", "label.csv")
  with open(path, "w") as f:
    f.write("fname, middle_id, fine_id, coarse_id\n0.jpg, 10, 0, 100\n1.jpg, 11, 2, 100\n2.jpg, 12, 5, 101\n")
  train = dyml.dyml_vehicle(root, "train")
  np.testing.assert_array_equal(train.labels, [[0, 0, 0], [1, 1, 0], [2, 2, 1]])
  assert train.num_classes == (3, 3, 2)


@pytest.mark.parametrize(
  "first_line",
  [
    "fname, coarse, middle, fine",
    "fname, coarse_id, middle_id, fine_id, extra",
    "fname, coarse_id, middle_id, fine_id, 3, 4, 5",
    "0.jpg, 100, 10, 0",
  ],
)
def test_dyml_rejects_a_header_of_neither_shape_naming_the_file(tmp_path, first_line):
  root = make_dyml(str(tmp_path))
  path = os.path.join(root, "train", "label.csv")
  with open(path) as f:
    rest = f.read().splitlines()[1:]
  with open(path, "w") as f:
    f.write("\n".join([first_line] + rest) + "\n")
  with pytest.raises(ValueError, match=f"{path}: line 1 .* is not a header with the columns fname, fine_id"):
    dyml.dyml_vehicle(root, "train")


def test_dyml_product_test_split(tmp_path):
  root = make_dyml(str(tmp_path), product=True)
  test = dyml.dyml_product(root, "test")
  np.testing.assert_array_equal(test.labels, [[0, 0, 0]] * 2 + [[1, 1, 0]] * 2)
  _assert_loads(test)


def test_gldv2_train_query_gallery_and_hierarchy(tmp_path):
  root, train_ids, index, queries = make_gldv2(str(tmp_path))
  train = gldv2.gldv2(root, "train")
  np.testing.assert_array_equal(train.labels[:, 0], [0, 0, 0, 1, 1, 2])
  first = train_ids[7][0]
  assert train.paths[0] == os.path.join(root, "images", "train", first[0], first[1], first[2], f"{first}.jpg")
  # Landmark 12 has no cluster: the hierarchical variant drops it.
  hier = gldv2.gldv2_hierarchical(root, "train")
  np.testing.assert_array_equal(hier.labels, [[0, 0, 0]] * 3 + [[1, 1, 0]] * 2)
  assert len(gldv2.gldv2(root, "train", min_images_per_class=2)) == 5
  gallery, query = gldv2.gldv2(root, "gallery"), gldv2.gldv2(root, "query")
  np.testing.assert_array_equal(gallery.labels[:, 0], [0, 0, 1, 2])  # landmarks 50, 50, 60, 70
  np.testing.assert_array_equal(query.labels[:, 0], [1, 0])  # the query with 'None' is left out
  _assert_loads(query)
  assert gldv2.gldv2_hierarchical(root, "query").num_classes == (2, 2, 1)


def test_revisited_queries_are_cropped_and_carry_ground_truth(tmp_path):
  root = make_revisited(str(tmp_path))
  query, gallery = revisited.roxford5k(root, "query"), revisited.roxford5k(root, "gallery")
  np.testing.assert_array_equal(query.labels[:, 0], [0, 2])  # all_souls, radcliffe_camera
  np.testing.assert_array_equal(gallery.labels[:, 0], [0, 1, 2, 0])
  assert query.load_image(0).shape == (8, 8, 3)  # bbx (2, 1, 10, 9)
  assert gallery.load_image(0).shape == (12, 16, 3)
  assert [list(x) for x in query.extras["easy"]] == [[0], [2]]


# ----------------------------------------------------------------------------------------------
# Robustness


@pytest.mark.parametrize(
  "loader", ["sop", "cub", "cars", "inshop", "inaturalist", "dyml_vehicle", "gldv2", "roxford5k"]
)
def test_a_missing_index_file_names_the_path_and_the_layout(tmp_path, loader):
  split = {"roxford5k": "query"}.get(loader, "train")
  with pytest.raises(FileNotFoundError, match=f"{tmp_path}.* does not exist. Expected layout"):
    datasets.DATASETS[loader](str(tmp_path), split)


def test_a_missing_data_dir_names_it(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
    sop.sop(missing, "train")
  with pytest.raises(ValueError, match="data_dir is empty"):
    sop.sop("", "train")


def test_unknown_split_lists_the_valid_ones(tmp_path):
  with pytest.raises(ValueError, match="'query', 'gallery'"):
    inshop.inshop(str(tmp_path), "val")


def test_a_corrupt_image_is_reported_with_its_path(tmp_path):
  root = make_sop(str(tmp_path))
  bad = os.path.join(root, "bicycle_final/1_1.JPG")
  with open(bad, "wb") as f:
    f.write(b"not a jpeg")
  source = sop.sop(root, "train")
  with pytest.raises(sources.ImageLoadError, match="1_1.JPG"):
    source.load_image(1)
  os.remove(bad)
  with pytest.raises(sources.ImageLoadError, match="cannot read image .*1_1.JPG"):
    source.load_image(1)


def _sop_config(root, **kw):
  c = pipeline.default_config()
  c.update(dict(dataset="sop", data_dir=root, global_batch_size=6, samples_per_class=3, image_size=8), **kw)
  return c


def test_training_fails_on_a_bad_image_by_default_and_can_skip_it(tmp_path):
  root = make_sop(str(tmp_path))
  os.remove(os.path.join(root, "chair_final/5_0.JPG"))
  config = _sop_config(root)
  source = datasets.get_source(config, "train")
  with pytest.raises(sources.ImageLoadError, match="5_0.JPG"):
    for step in range(4):  # 4 steps = 1 epoch: every image is used
      pipeline.load_train_batch(config, source, step, seed=0)
  config.skip_corrupt_images = True
  for step in range(4):
    batch = pipeline.load_train_batch(config, source, step, seed=0)
    assert 6 not in batch["index"].tolist()  # the missing file's row was replaced by a class-mate
    np.testing.assert_array_equal(batch["labels"], source.labels[batch["index"]])
    assert sorted(np.bincount(batch["labels"][:, 0]).tolist())[-2:] == [3, 3]


def test_single_image_classes_are_reported(tmp_path):
  root = make_sop(str(tmp_path))
  test = sop.sop(root, "test")
  assert sources.report_single_image_classes(test) == 0
  messages = []
  labels = np.array([[0, 0], [0, 0], [1, 0], [2, 1]])
  src = sources.Source(name="x/train", labels=labels, level_names=("a", "b"), images=np.zeros((4, 2, 2, 1), np.uint8))
  assert sources.report_single_image_classes(src, log=messages.append) == 2
  assert "2 of 3 classes have a single image" in messages[0]


def test_source_rejects_negative_labels():
  with pytest.raises(ValueError, match="negative label"):
    sources.Source(name="x", labels=np.array([[0], [-1]]), level_names=("a",), images=np.zeros((2, 1, 1, 1), np.uint8))


def test_a_custom_dataset_registers_by_name(tmp_path):
  paths = [str(tmp_path / f"{k}.jpg") for k in range(4)]
  for k, p in enumerate(paths):
    write_jpeg(p, k)

  def my_data(data_dir, split):
    return sources.make_source(
      f"mine/{split}",
      [["cat", "animal"], ["cat", "animal"], ["car", "vehicle"], ["car", "vehicle"]],
      ("name", "kind"),
      paths=paths,
    )

  datasets.register_dataset("mine_test_only", my_data)
  try:
    config = ml_collections.ConfigDict(dict(dataset="mine_test_only", data_dir="", train_split="train"))
    source = datasets.get_source(config, "train")
    np.testing.assert_array_equal(source.labels, [[1, 0], [1, 0], [0, 1], [0, 1]])
    _assert_loads(source)
  finally:
    del datasets.DATASETS["mine_test_only"]
