"""Reading data sets prepared by the official TFDS builders (``stanford_online_products``,
``caltech_birds2011``, ``cars196``) through ``tfds.data_source``.

Preparing with the official builders downloads the data and needs TensorFlow, so each test prepares a
miniature copy with the official builder class itself (its name, version and features; only the
examples are generated here) in the ArrayRecord format, then reads it the way users do.
"""

import io

import numpy as np
import pytest
from PIL import Image

from suprank_jax.input_pipeline import datasets, pipeline
from suprank_jax.input_pipeline.readers import cars, cub, tfds_format

tfds = pytest.importorskip("tensorflow_datasets")


def _png(value, shape=(6, 5, 3)):
  buf = io.BytesIO()
  Image.fromarray(np.full(shape, value, np.uint8).squeeze()).save(buf, format="PNG")
  return buf.getvalue()


def _prepare(name, data_dir, examples_by_split):
  """Prepares the official builder ``name`` under ``data_dir`` from ``{split: [(key, example)]}``."""
  official = tfds.builder_cls(name)

  class Miniature(official, skip_registration=True):  # pylint: disable=missing-class-docstring
    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(examples) for split, examples in examples_by_split.items()}

    def _generate_examples(self, examples):  # pylint: disable=arguments-differ
      yield from examples

  Miniature.name = name
  builder = Miniature(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def _sop_examples(rows):
  """rows: (class_id, super_class_id) pairs -> TFDS examples whose image value encodes the row."""
  return [
    (str(i), {"image": _png(i), "class_id": c, "super_class_id": s, "super_class_id/num": s})
    for i, (c, s) in enumerate(rows)
  ]


def test_official_sop_reads_labels_and_images(tmp_path):
  data_dir = str(tmp_path / "tfds")
  train = [(0, 0), (0, 0), (5, 1), (5, 1), (7, 1)]
  test = [(11, 2), (11, 2), (12, 0)]
  _prepare("stanford_online_products", data_dir, {"train": _sop_examples(train), "test": _sop_examples(test)})
  cache = str(tmp_path / "cache")
  source = tfds_format.tfds_source("sop", data_dir, "test", cache_dir=cache)
  assert source.level_names == ("product", "category")
  assert len(source) == 3
  # Contiguous per level, whatever order TFDS stored the records in.
  # (11, 2), (11, 2), (12, 0) -> products 11, 12 -> 0, 1; categories 0, 2 -> 0, 1.
  assert sorted(map(tuple, source.labels.tolist())) == [(0, 1), (0, 1), (1, 0)]
  for i in range(len(source)):
    image = source.load_image(i)
    assert image.shape == (6, 5, 3)
    row = int(image[0, 0, 0])  # which example this is
    expected = {0: (0, 1), 1: (0, 1), 2: (1, 0)}[row]
    assert tuple(source.labels[i]) == expected
  # Through the config, as the trainer opens it.
  config = pipeline.default_config()
  config.update(dict(dataset="sop", data_dir=data_dir, source_format="tfds"))
  assert len(datasets.get_source(config, "train")) == 5


@pytest.mark.parametrize("name,dataset,half", [("caltech_birds2011", "cub", 100), ("cars196", "cars", 98)])
def test_official_cub_and_cars_are_resplit_by_class(tmp_path, name, dataset, half):
  # Official splits mix the classes; the retrieval protocol trains on the first half of the classes.
  official = {"train": [0, 3, half - 1, half, half + 2, 150], "test": [0, 3, half, 150, 150, half - 1]}

  def examples(split):
    out = []
    for i, label in enumerate(official[split]):
      value = len(out) + (0 if split == "train" else 100)
      ex = {"image": _png(value), "label": label, "bbox": tfds.features.BBox(0.1, 0.1, 0.9, 0.9)}
      if name == "caltech_birds2011":
        ex.update(
          {"image/filename": f"{split}{i}.jpg", "label_name": f"c{label}", "segmentation_mask": _png(0, (6, 5, 1))}
        )
      else:
        ex["id"] = f"{split}{i}"
      out.append((f"{split}{i}", ex))
    return out

  data_dir = str(tmp_path / "tfds")
  _prepare(name, data_dir, {"train": examples("train"), "test": examples("test")})
  cache = str(tmp_path / "cache")
  for split in ("train", "test"):
    source = tfds_format.tfds_source(dataset, data_dir, split, cache_dir=cache)
    everything = sorted(official["train"] + official["test"])
    expected_classes = [c for c in everything if (c < half) == (split == "train")]
    # Ordered by class; the finest level remapped to contiguous ids.
    _, expected_fine = np.unique(expected_classes, return_inverse=True)
    np.testing.assert_array_equal(source.labels[:, 0], expected_fine)
    # Same coarser levels as the raw-folder reader of the same classes (its tables, remapped).
    ids = np.asarray(expected_classes) + 1
    coarse = cub.FAMILY_ORDER[ids - 1] if dataset == "cub" else cars.BODY_TYPE[ids - 1][:, None]
    assert source.labels.shape[1] == 1 + coarse.shape[1]
    for level in range(coarse.shape[1]):
      np.testing.assert_array_equal(source.labels[:, 1 + level], np.unique(coarse[:, level], return_inverse=True)[1])
    # Images from both official splits, each once.
    values = sorted(int(source.load_image(i)[0, 0, 0]) for i in range(len(source)))
    assert len(set(values)) == len(values) == len(expected_classes)
