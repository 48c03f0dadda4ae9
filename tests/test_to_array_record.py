"""Tests of the TF-free ArrayRecord converter and of reading TFDS data sets back as sources."""

import os

import numpy as np
import pytest

from suprank_jax.input_pipeline import datasets, pipeline, sources, to_array_record
from suprank_jax.input_pipeline.readers import cub, digits, sop, tfds_format
from tests import commands
from tests.test_sources import make_cub, make_sop


def _tfds_config(data_dir, dataset, **kw):
  c = pipeline.default_config()
  c.update(dict(dataset=dataset, data_dir=data_dir, source_format="tfds"), **kw)
  return c


def test_converted_sop_reads_back_like_the_raw_folder(tmp_path):
  raw_dir = make_sop(str(tmp_path / "raw"))
  out = str(tmp_path / "tfds")
  path = to_array_record.main(["--dataset", "sop", "--data_dir", raw_dir, "--output_dir", out])
  assert path == os.path.join(out, "suprank_sop", "1.0.0")
  assert any(f.startswith("suprank_sop-train.array_record") for f in os.listdir(path))
  cache = str(tmp_path / "cache")
  for split in ("train", "test"):
    raw = sop.sop(raw_dir, split)
    converted = tfds_format.tfds_source("sop", out, split, cache_dir=cache)
    assert converted.level_names == raw.level_names
    np.testing.assert_array_equal(converted.labels, raw.labels)  # raw order restored
    for i in range(len(raw)):
      np.testing.assert_array_equal(converted.load_image(i), raw.load_image(i))  # same JPEG bytes
  # The second read uses the label cache.
  assert len(os.listdir(cache)) == 2
  via_config = datasets.get_source(_tfds_config(out, "sop"), "test")
  np.testing.assert_array_equal(via_config.labels, sop.sop(raw_dir, "test").labels)


def test_converted_digits_keep_one_channel_and_train(tmp_path):
  out = str(tmp_path / "tfds")
  to_array_record.convert("digits", "", out, splits=["test"])
  converted = tfds_format.tfds_source("digits", out, "test", cache_dir=str(tmp_path / "cache"))
  raw = digits.digits("", "test")
  np.testing.assert_array_equal(converted.labels, raw.labels)
  for i in (0, 1, 500):
    np.testing.assert_array_equal(converted.load_image(i), raw.images[i])  # PNG is lossless
  batches = list(
    pipeline.make_train_iterator(pipeline.default_config(), converted, seed=0, start_step=0, total_steps=1)
  )
  assert batches[0]["images"].shape == (120, 8, 8, 1)


def test_converted_cub_can_be_read_under_another_name(tmp_path):
  raw_dir = make_cub(str(tmp_path / "raw"))
  out = str(tmp_path / "tfds")
  to_array_record.convert("cub", raw_dir, out, name="my_cub")
  source = datasets.get_source(_tfds_config(out, "cub", tfds_name="my_cub"), "test")
  np.testing.assert_array_equal(source.labels, cub.cub(raw_dir, "test").labels)


def test_a_missing_tfds_data_set_names_the_folder_and_how_to_prepare_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="suprank_sop.*not prepared.*convert"):
    tfds_format.tfds_source("sop", str(tmp_path), "train", tfds_name="suprank_sop")


def test_convert_reports_a_missing_image(tmp_path):
  raw_dir = make_sop(str(tmp_path / "raw"))
  os.remove(os.path.join(raw_dir, "lamp_final/12_1.JPG"))
  with pytest.raises(sources.ImageLoadError, match="12_1.JPG"):
    to_array_record.convert("sop", raw_dir, str(tmp_path / "tfds"))


def test_the_readme_command_converts_digits_in_a_subprocess(tmp_path):
  """``python3 -m suprank_jax.input_pipeline.to_array_record --dataset digits --output_dir DIR`` exactly as
  written (it used to fail: TFDS could not name a ``Builder`` class defined in ``__main__``)."""
  out = str(tmp_path / "x")
  result = commands.run_command(
    "input_pipeline.to_array_record", "--dataset", "digits", "--output_dir", out, timeout=600, check=False
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"wrote {os.path.join(out, 'suprank_digits', '1.0.0')}" in result.stdout
  for split in ("train", "test"):
    converted = tfds_format.tfds_source("digits", out, split, cache_dir=str(tmp_path / "cache"))
    raw = digits.digits("", split)
    assert converted.level_names == raw.level_names == ("digit", "shape")
    np.testing.assert_array_equal(converted.labels, raw.labels)
    for i in (0, len(raw) // 2, len(raw) - 1):
      np.testing.assert_array_equal(converted.load_image(i), raw.images[i])


def test_tfds_sources_reject_reader_arguments(tmp_path):
  with pytest.raises(ValueError, match=r"dataset_kwargs \['mode'\] are not read with source_format='tfds'"):
    tfds_format.tfds_source("inaturalist", str(tmp_path), "train", mode="full")
