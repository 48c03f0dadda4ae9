"""Tests of the training iterator and evaluation batches on the embedded digits set."""

import collections

import numpy as np
import pytest
from sklearn.datasets import load_digits

from suprank_jax.input_pipeline import datasets, pipeline, sources
from suprank_jax.input_pipeline.readers import digits


@pytest.fixture(scope="module")
def train_source():
  return digits.digits("", "train")


def _config(**overrides):
  c = pipeline.default_config()
  c.update(overrides)
  return c


def _take(config, source, *, start_step, total_steps, seed=0, process_index=0, process_count=1):
  it = pipeline.make_train_iterator(
    config,
    source,
    seed=seed,
    start_step=start_step,
    total_steps=total_steps,
    process_index=process_index,
    process_count=process_count,
  )
  batches = [{k: np.array(v) for k, v in b.items()} for b in it]
  if hasattr(it, "close"):
    it.close()
  return batches


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_digits_splits_are_stratified_disjoint_and_match_sklearn():
  bunch = load_digits()
  train, test = digits.digits("", "train"), digits.digits("", "test")
  assert len(train) + len(test) == 1797
  assert train.images.shape[1:] == (8, 8, 1) and train.images.dtype == np.uint8
  # Every second image of each digit, in load_digits order, goes to train.
  for d in range(10):
    members = np.flatnonzero(bunch.target == d)
    expected_train = bunch.images[members[0::2]]
    got = train.images[train.labels[:, 0] == d, ..., 0]
    np.testing.assert_array_equal(got, np.round(expected_train * 255 / 16).astype(np.uint8))
    assert len(test.images[test.labels[:, 0] == d]) == len(members) // 2
  shape_of_digit = {0: 0, 6: 0, 8: 0, 9: 0, 1: 1, 4: 1, 7: 1, 2: 2, 3: 2, 5: 2}
  for src in (train, test):
    assert src.level_names == ("digit", "shape")
    assert all(shape_of_digit[d] == s for d, s in src.labels.tolist())
    assert src.num_classes == (10, 3)


def test_get_source_lists_valid_names_for_an_unknown_dataset():
  with pytest.raises(ValueError, match="digits"):
    datasets.get_source(_config(dataset="mnist_typo"), "train")


def test_train_batches_have_m_images_per_class_and_source_pixels(train_source):
  config = _config(global_batch_size=40, samples_per_class=4)
  batches = _take(config, train_source, start_step=0, total_steps=3)
  assert len(batches) == 3
  for b in batches:
    assert b["images"].shape == (40, 8, 8, 1) and b["images"].dtype == np.float32
    assert b["labels"].shape == (40, 2) and b["labels"].dtype == np.int32
    assert b["index"].dtype == np.int32
    np.testing.assert_array_equal(b["labels"], train_source.labels[b["index"]])
    np.testing.assert_allclose(b["images"], train_source.images[b["index"]] / 255.0, rtol=1e-6)
    assert set(collections.Counter(b["labels"][:, 0].tolist()).values()) == {4}


def test_resumed_iterator_yields_the_tail_of_an_uninterrupted_run(train_source):
  config = _config(max_shift_px=1)
  full = _take(config, train_source, start_step=0, total_steps=17, seed=3)
  # 17 steps cross two epoch boundaries (7 steps per epoch).
  assert pipeline.steps_per_epoch(config, train_source) == 7
  for k in (1, 7, 12):
    _assert_batches_equal(_take(config, train_source, start_step=k, total_steps=17, seed=3), full[k:])


def test_different_seeds_give_different_streams(train_source):
  a = _take(_config(), train_source, start_step=0, total_steps=2, seed=0)
  b = _take(_config(), train_source, start_step=0, total_steps=2, seed=1)
  assert not np.array_equal(a[0]["index"], b[0]["index"])


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_shards_concatenate_to_the_global_batch(train_source, process_count):
  config = _config(max_shift_px=1)
  full = _take(config, train_source, start_step=2, total_steps=5)
  shards = [
    _take(config, train_source, start_step=2, total_steps=5, process_index=p, process_count=process_count)
    for p in range(process_count)
  ]
  merged = [{k: np.concatenate([s[i][k] for s in shards]) for k in full[0]} for i in range(len(full))]
  _assert_batches_equal(merged, full)
  assert shards[0][0]["images"].shape[0] == 120 // process_count


def test_random_shift_moves_each_image_by_at_most_one_pixel(train_source):
  config = _config(max_shift_px=1)
  (batch,) = _take(config, train_source, start_step=0, total_steps=1)
  shifted_any = False
  for image, i in zip(batch["images"], batch["index"]):
    original = train_source.images[i, ..., 0] / 255.0
    padded = np.pad(original, 1)
    # Shifting by (dy, dx) with zero fill equals a window of the zero-padded original.
    matches = [
      (dy, dx)
      for dy in (-1, 0, 1)
      for dx in (-1, 0, 1)
      if np.allclose(image[..., 0], padded[1 - dy : 9 - dy, 1 - dx : 9 - dx], atol=1e-6)
    ]
    assert matches, f"image {i} is not a shift of its source"
    shifted_any |= (0, 0) not in matches
  assert shifted_any


def test_start_step_outside_the_run_is_rejected(train_source):
  with pytest.raises(ValueError, match="start_step"):
    pipeline.make_train_iterator(_config(), train_source, seed=0, start_step=11, total_steps=10)


@pytest.mark.parametrize("process_count", [1, 3])
def test_eval_batches_cover_every_item_once_in_order_with_a_mask(process_count):
  source = digits.digits("", "test")  # 896 items
  config = _config()
  per_process = [
    list(pipeline.make_eval_batches(config, source, batch_size=100, process_index=p, process_count=process_count))
    for p in range(process_count)
  ]
  num_batches = -(-896 // (100 * process_count))
  assert all(len(batches) == num_batches for batches in per_process)
  seen = []
  for g in range(num_batches):
    for p in range(process_count):
      b = per_process[p][g]
      assert b["images"].shape == (100, 8, 8, 1)
      mask = b["mask"].astype(bool)
      assert np.all(b["index"][~mask] == -1)
      real = b["index"][mask]
      np.testing.assert_array_equal(b["labels"][mask], source.labels[real])
      np.testing.assert_allclose(b["images"][mask], source.images[real] / 255.0, rtol=1e-6)
      assert not b["images"][~mask].any()
      seen.extend(real.tolist())
  assert seen == list(range(896))


def test_sample_images_has_the_model_input_shape(train_source):
  sample = pipeline.sample_images(_config(), train_source)
  assert sample.shape == (1, 8, 8, 1) and sample.dtype == np.float32


def test_worker_processes_give_the_same_batches(train_source):
  config = _config(max_shift_px=1)
  reference = _take(config, train_source, start_step=4, total_steps=9)
  config.num_workers = 2
  _assert_batches_equal(_take(config, train_source, start_step=4, total_steps=9), reference)


def test_random_resized_crop_box_respects_scale_and_ratio():
  from suprank_jax.input_pipeline import transforms

  rng = np.random.default_rng(0)
  for _ in range(200):
    top, left, h, w = transforms.random_resized_crop_box(rng, 300, 500, scale=(0.16, 1.0), ratio=(0.75, 1.33))
    assert top >= 0 and top + h <= 300 and left >= 0 and left + w <= 500
    if (h, w) != (300, 300 * 1.33) and h * w < 300 * 500:  # not the fallback crop
      assert 0.16 * 0.97 <= h * w / (300 * 500) <= 1.0
      assert 0.75 * 0.97 <= w / h <= 1.33 * 1.03


def test_imagenet_preprocessing_shapes_and_normalisation():
  from suprank_jax.input_pipeline import transforms

  config = _config(
    image_size=224,
    random_resized_crop=True,
    horizontal_flip=True,
    normalization="imagenet",
    eval_resize="resize_center_crop",
    eval_resize_size=256,
  )
  image = np.full((300, 500, 3), 128, np.uint8)
  train = transforms.make_train_transform(config)(image, np.random.default_rng(0))
  evaluated = transforms.make_eval_transform(config)(image)
  assert train.shape == evaluated.shape == (224, 224, 3)
  expected = (128 / 255 - transforms.IMAGENET_MEAN) / transforms.IMAGENET_STD
  np.testing.assert_allclose(evaluated[100, 100], expected, rtol=1e-5)
  # Resize 256 (shorter side) then center crop: a 300x500 image becomes 256x426, cropped to 224.
  ramp = np.tile(np.arange(500, dtype=np.uint8)[None, :, None] // 2, (300, 1, 3))
  out = transforms.center_crop(transforms.resize_shorter(ramp, 256), 224)
  assert out.shape == (224, 224, 3)
  assert abs(int(out[0, 112, 0]) - 125) <= 2  # the center column of the ramp stays in the center


# ----------------------------------------------------------------------------------------------
# SOP transforms (suprank/config/dataset/sop.yaml), against naive PIL references


def _pil(image):
  from PIL import Image

  return Image.fromarray(image)


def _ramp_image(height=300, width=500):
  rng = np.random.default_rng(7)
  return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _close_to(got, expected):
  """Equal up to one grey level on a few pixels: the resize's region restricted to the crop computes
  its filter positions from the region's corner, so their rounding may differ."""
  difference = np.abs(got - expected)
  assert difference.max() <= 1 / 255 + 1e-6 and (difference > 1e-6).mean() < 1e-2


def test_train_resize_comes_before_the_random_resized_crop():
  from PIL import Image

  from suprank_jax.input_pipeline import transforms

  image = _ramp_image()
  # crop_scale (1, 1): no box of the whole area fits the ratio range, so torchvision's fallback crop is
  # taken: the largest central box of ratio 1.33 (300x500 -> Resize(256) -> 256x426 -> box 256x340 at x=43).
  config = _config(image_size=224, random_resized_crop=True, crop_scale=(1.0, 1.0), train_resize_size=256)
  got = transforms.make_train_transform(config)(image, np.random.default_rng(0))
  resized = _pil(image).resize((int(256 * 500 / 300), 256), Image.BILINEAR)
  expected = np.asarray(resized.crop((43, 0, 43 + 340, 256)).resize((224, 224), Image.BILINEAR)) / 255.0
  _close_to(got, expected)
  # Without the resize the fallback box is taken on the original (300x399 at x=50): one resampling
  # of that box, whose filter also reads the pixels just outside it.
  config.train_resize_size = 0
  got = transforms.make_train_transform(config)(image, np.random.default_rng(0))
  expected = np.asarray(_pil(image).resize((224, 224), Image.BILINEAR, box=(50, 0, 50 + 399, 300))) / 255.0
  np.testing.assert_allclose(got, expected, atol=1e-6)
  cropped = np.asarray(_pil(image).crop((50, 0, 50 + 399, 300)).resize((224, 224), Image.BILINEAR)) / 255.0
  np.testing.assert_allclose(got[2:-2, 2:-2], cropped[2:-2, 2:-2], atol=1e-6)  # the same inside


def test_square_resize_center_crop_ignores_the_aspect_ratio():
  from PIL import Image

  from suprank_jax.input_pipeline import transforms

  image = _ramp_image()
  config = _config(image_size=224, eval_resize="square_resize_center_crop", eval_resize_size=256)
  got = transforms.make_eval_transform(config)(image)
  # torchvision Resize([256, 256]) then CenterCrop(224): offset round((256 - 224) / 2) = 16.
  expected = np.asarray(_pil(image).resize((256, 256), Image.BILINEAR).crop((16, 16, 240, 240))) / 255.0
  _close_to(got, expected)
  with pytest.raises(ValueError, match="eval_resize_size=200 must be >= image_size=224"):
    transforms.make_eval_transform(
      _config(image_size=224, eval_resize="square_resize_center_crop", eval_resize_size=200)
    )


def _photo(height=427, width=640):
  """A real photograph (scikit-learn's bundled sample), resized: smooth regions, edges, texture."""
  from PIL import Image
  from sklearn.datasets import load_sample_image

  return np.asarray(Image.fromarray(load_sample_image("china.jpg")).resize((width, height), Image.BICUBIC))


def _jpeg(image, quality=92):
  import io

  from PIL import Image

  out = io.BytesIO()
  Image.fromarray(image).save(out, format="JPEG", quality=quality)
  return out.getvalue()


@pytest.mark.parametrize("mode", ["resize_center_crop", "square_resize_center_crop"])
def test_resizing_only_the_center_crop_gives_the_resize_then_crop_pixels(mode):
  from PIL import Image

  from suprank_jax.input_pipeline import transforms

  image = _photo()
  got = transforms.make_eval_transform(
    _config(image_size=224, eval_resize=mode, eval_resize_size=256), normalize_images=False
  )(image)
  size = (256, 256) if mode == "square_resize_center_crop" else (int(256 * 640 / 427), 256)
  two_step = transforms.center_crop(np.asarray(_pil(image).resize(size, Image.BILINEAR)), 224)
  assert got.dtype == np.uint8 and got.shape == two_step.shape
  _close_to(got / 255.0, two_step / 255.0)


def test_jpeg_items_draw_the_same_boxes_and_decode_at_a_reduced_scale_when_the_crop_allows():
  from PIL import Image

  from suprank_jax.input_pipeline import transforms

  image = _photo(854, 1280)
  data = _jpeg(image)
  decoded = np.asarray(Image.open(__import__("io").BytesIO(data)).convert("RGB"))
  config = _config(image_size=224, random_resized_crop=True, horizontal_flip=True)
  transform = transforms.make_train_transform(config, normalize_images=False)
  drafted = 0
  for seed in range(12):
    from_jpeg = transform(transforms.EncodedImage(data), np.random.default_rng(seed))
    from_pixels = transform(decoded, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    top, left, h, w = transforms.random_resized_crop_box(
      rng, 854, 1280, scale=config.crop_scale, ratio=config.crop_ratio
    )
    assert from_jpeg.shape == from_pixels.shape == (224, 224, 3)
    difference = np.abs(from_jpeg.astype(float) - from_pixels)
    if min(h, w) >= 448:  # decoded at 1/2 (or less): the DCT downscale stands for part of the bilinear one
      drafted += 1
      assert difference.mean() < 2.0
    else:
      np.testing.assert_array_equal(from_jpeg, from_pixels)
  assert drafted >= 3
  evaluated = transforms.make_eval_transform(
    _config(image_size=224, eval_resize="resize_center_crop", eval_resize_size=256)
  )
  np.testing.assert_allclose(evaluated(transforms.EncodedImage(data)), evaluated(decoded), atol=4 / 255 / 0.224)


def test_encoded_items_read_the_sources_crop_box_and_name_a_corrupt_file():
  from suprank_jax.input_pipeline import sources, transforms

  image = _photo(200, 300)
  data = _jpeg(image)
  decoded = transforms.EncodedImage(data).resample(None, 200, 300)
  boxed = transforms.EncodedImage(data, box=(40.4, 10, 140, 90))
  assert (boxed.height, boxed.width) == (80, 100)
  np.testing.assert_array_equal(boxed.resample(None, 80, 100), decoded[10:90, 40:140])
  np.testing.assert_array_equal(boxed.resample((0, 0, 100, 80), 80, 100), decoded[10:90, 40:140])
  grey = transforms.EncodedImage(data, channels=1).resample(None, 200, 300)
  assert grey.shape == (200, 300, 1)
  with pytest.raises(sources.ImageLoadError, match="cannot decode image broken.jpg"):
    transforms.EncodedImage(data[:600], what="image broken.jpg").resample((0, 0, 300, 200), 64, 64)
  with pytest.raises(sources.ImageLoadError, match="cannot decode image text.jpg"):
    transforms.EncodedImage(b"not an image", what="image text.jpg")


def test_uint8_batches_normalised_on_the_devices_equal_the_float_batches(train_source, tmp_path):
  from PIL import Image

  from suprank_jax.runtime import parallel

  paths = []
  for i, _label in enumerate(np.repeat(np.arange(4), 4)):
    path = tmp_path / f"{i}.jpg"
    Image.fromarray(np.roll(_photo(120, 160), 7 * i, axis=1)).save(path, quality=90)
    paths.append(str(path))
  source = sources.make_source("photos/train", np.repeat(np.arange(4), 4), ("class",), paths=paths)
  config = _config(
    global_batch_size=8,
    samples_per_class=4,
    image_size=32,
    random_resized_crop=True,
    horizontal_flip=True,
    normalization="imagenet",
    eval_resize="resize_center_crop",
    eval_resize_size=40,
  )
  mesh = parallel.make_mesh()
  floats = _take(config, source, start_step=0, total_steps=2)
  it = pipeline.make_train_iterator(config, source, seed=0, start_step=0, total_steps=2, uint8_images=True)
  for reference, batch in zip(floats, it):
    assert batch["images"].dtype == np.uint8 and batch["images"].shape == (8, 32, 32, 3)
    on_devices = parallel.global_batch(batch, mesh, normalization=config.normalization)
    np.testing.assert_allclose(np.asarray(on_devices["images"]), reference["images"], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(on_devices["index"]), reference["index"])
  (floats,) = list(pipeline.make_eval_batches(config, source, batch_size=16))
  (uint8,) = list(pipeline.make_eval_batches(config, source, batch_size=16, uint8_images=True))
  assert uint8["images"].dtype == np.uint8
  on_devices = parallel.global_batch(uint8, mesh, normalization=config.normalization)
  np.testing.assert_allclose(np.asarray(on_devices["images"]), floats["images"], atol=1e-6)


def test_a_corrupt_file_is_replaced_by_an_item_of_its_class_with_its_own_draws(tmp_path):
  from PIL import Image

  paths = []
  for i in range(8):
    path = tmp_path / f"{i}.jpg"
    Image.fromarray(np.roll(_photo(60, 80), 5 * i, axis=0)).save(path, quality=90)
    paths.append(str(path))
  with open(paths[1], "wb") as f:
    f.write(b"broken")
  source = sources.make_source("photos/train", np.repeat(np.arange(2), 4), ("class",), paths=paths)
  config = _config(
    global_batch_size=8, samples_per_class=4, image_size=16, random_resized_crop=True, skip_corrupt_images=True
  )
  batch = pipeline.load_train_batch(config, source, 0, seed=0)
  assert 1 not in batch["index"].tolist()
  np.testing.assert_array_equal(batch["labels"][:, 0], np.array(source.labels[batch["index"], 0]))
  with pytest.raises(sources.ImageLoadError, match="1.jpg"):
    pipeline.load_train_batch(_config(global_batch_size=8, samples_per_class=4, image_size=16), source, 0, seed=0)


# ----------------------------------------------------------------------------------------------
# check_input_config: values, and keys set but not read


def test_the_default_input_config_is_valid():
  pipeline.check_input_config(pipeline.default_config())
  pipeline.check_input_config(
    _config(
      dataset="sop",
      data_dir="/data/sop",
      sampler="hierarchical",
      super_classes_per_batch=3,
      global_batch_size=12 * 3,
      image_size=224,
      random_resized_crop=True,
      crop_scale=(0.2, 1.0),
      train_resize_size=256,
      eval_resize="square_resize_center_crop",
      eval_resize_size=256,
    )
  )
  pipeline.check_input_config(
    _config(dataset="inaturalist", data_dir="/x", dataset_kwargs={"mode": "full"}, max_per_class=12)
  )


@pytest.mark.parametrize(
  "overrides, message",
  [
    # Values.
    (dict(image_size=-1), "config.input.image_size=-1 must be >= 0"),
    (dict(samples_per_class=0), "config.input.samples_per_class=0 must be >= 1"),
    (dict(global_batch_size=100), "global_batch_size=100 must be a multiple of samples_per_class = 12"),
    (dict(sampler="hierarchical", global_batch_size=36), "multiple of samples_per_class x super_classes_per_batch"),
    (dict(num_workers=-1), "config.input.num_workers=-1 must be >= 0"),
    (dict(sampler="random"), "config.input.sampler='random' is unknown; valid: .'hierarchical', 'm_per_class'"),
    (dict(eval_resize="crop"), "config.input.eval_resize='crop'; valid"),
    (dict(normalization="none"), "config.input.normalization='none'; valid"),
    (dict(source_format="zip"), "config.input.source_format='zip'"),
    (dict(dataset="nope"), "config.input.dataset='nope' is unknown"),
    (
      dict(image_size=64, random_resized_crop=True, crop_scale=(0.5, 0.2)),
      "config.input.crop_scale=.* 0 < a <= b <= 1",
    ),
    (dict(image_size=64, random_resized_crop=True, crop_scale=(0.0, 1.0)), "config.input.crop_scale"),
    (dict(image_size=64, random_resized_crop=True, crop_ratio=(1.33, 0.75)), "config.input.crop_ratio=.* 0 < a <= b"),
    (dict(random_resized_crop=True), "random_resized_crop needs config.input.image_size > 0"),
    (dict(eval_resize="resize_center_crop", image_size=224, eval_resize_size=128), "eval_resize_size=128 must be >="),
    (dict(max_per_class=4), "config.input.max_per_class=4 must be 0 .* or >= samples_per_class=12"),
    (dict(sampler="hierarchical", global_batch_size=24, super_class_level=0), "super_class_level=0 must differ"),
    # Keys set to a non-default value that the chosen options do not read.
    (
      dict(super_classes_per_batch=3),
      "config.input.super_classes_per_batch=3 is not read here .*sampler='hierarchical'",
    ),
    (dict(batches_per_super_tuple=5), "config.input.batches_per_super_tuple=5 is not read"),
    (
      dict(sampler="hierarchical", global_batch_size=24, max_per_class=12),
      "config.input.max_per_class=12 is not read here .*sampler='m_per_class'",
    ),
    (dict(eval_resize="resize", image_size=32, eval_resize_size=40), "config.input.eval_resize_size=40 is not read"),
    (dict(crop_scale=(0.5, 1.0)), "config.input.crop_scale=.* is not read here .*random_resized_crop=True"),
    (dict(crop_ratio=(1.0, 1.0)), "config.input.crop_ratio=.* is not read"),
    (dict(train_resize_size=256), "config.input.train_resize_size=256 is the resize before the random resized crop"),
    (dict(dataset="sop", data_dir="/d", tfds_name="my_sop"), "config.input.tfds_name='my_sop' is not read .*'tfds'"),
    (dict(data_dir="/data/digits"), "config.input.data_dir='/data/digits' is not read .*digits is embedded"),
    (
      dict(dataset="sop", data_dir="/d", dataset_kwargs={"mode": "full"}),
      "config.input.dataset_kwargs=.*does not fit the 'sop' reader",
    ),
    (
      dict(dataset="sop", data_dir="/d", source_format="tfds", dataset_kwargs={"mode": "full"}),
      "only cache_dir is read",
    ),
  ],
)
def test_check_input_config_names_the_key_at_fault(overrides, message):
  config = _config()
  for key, value in overrides.items():
    config[key] = value
  with pytest.raises(ValueError, match=message):
    pipeline.check_input_config(config)


def test_unknown_and_missing_keys_are_rejected():
  import ml_collections

  config = pipeline.default_config().to_dict()
  config["sampler_name"] = "m_per_class"
  with pytest.raises(ValueError, match=r"unknown keys \['sampler_name'\]"):
    pipeline.check_input_config(ml_collections.ConfigDict(config))
  del config["sampler_name"], config["max_per_class"]
  with pytest.raises(ValueError, match=r"lacks \['max_per_class'\]"):
    pipeline.check_input_config(ml_collections.ConfigDict(config))


def test_every_entry_point_checks_the_config_first(train_source):
  config = _config(super_classes_per_batch=3)
  with pytest.raises(ValueError, match="super_classes_per_batch"):
    pipeline.make_train_iterator(config, train_source, seed=0, start_step=0, total_steps=1)
  with pytest.raises(ValueError, match="super_classes_per_batch"):
    next(pipeline.make_eval_batches(config, train_source, batch_size=4))
  with pytest.raises(ValueError, match="super_classes_per_batch"):
    pipeline.sample_images(config, train_source)


def test_max_per_class_reaches_the_sampler(train_source):
  config = _config(global_batch_size=40, samples_per_class=4, max_per_class=8)
  # 10 digits, each capped to 8 images = 2 chunks of 4; 10 classes per batch -> 2 steps per epoch.
  assert pipeline.steps_per_epoch(config, train_source) == 2
  used = np.concatenate([pipeline.load_train_batch(config, train_source, s, seed=0)["index"] for s in range(2)])
  assert all(len(set(used[train_source.labels[used, 0] == d].tolist())) <= 8 for d in range(10))
