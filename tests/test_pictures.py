"""Retrieval pictures: grid geometry, frame colours by relevance, image fitting, the evaluation picture and
its PNG / TensorBoard writer."""

import glob
import io
import os
import struct

import jax
import numpy as np
import pytest
from PIL import Image

from suprank_jax.configs import digits
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import pictures as P
from suprank_jax.input_pipeline import pipeline, sources
from suprank_jax.models import build_model
from suprank_jax.runtime import parallel

pytestmark = pytest.mark.usefixtures("fast_compile")

BLUE, GREEN, ORANGE, RED, GREY = (P.FRAME_COLORS[k] for k in ("query", "class", "super-class", "other", "unknown"))
WHITE = (255, 255, 255)


def _frame_color(picture, layout, row, column):
  """The colour of cell (row, column)'s frame, read at its top-left corner and at its bottom-right one."""
  y, x = layout.cell_origin(row, column)
  top_left = tuple(picture[y + 1, x + 1])
  bottom_right = tuple(picture[y + layout.cell_size - 2, x + layout.cell_size - 2])
  assert top_left == bottom_right, f"cell ({row}, {column}) has a frame of two colours"
  return top_left


def _random_images(rng, count, shape=(8, 8, 1)):
  return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def test_grid_size_and_frame_colours_at_hand_computed_cells():
  rng = np.random.default_rng(0)
  relevance = np.array([[2, 1, 0], [0, -1, 2]])
  picture = P.retrieval_grid(_random_images(rng, 2), [_random_images(rng, 3), _random_images(rng, 3)], relevance)
  # Defaults: cells of 96 pixels with a 4-pixel frame, gaps of 6 (12 between a query and its results).
  assert picture.shape == (6 + 2 * (96 + 6), 6 + 4 * (96 + 6) + 6, 3) == (210, 420, 3)
  assert picture.dtype == np.uint8
  expected = {
    (6, 6): BLUE,
    (6, 114): GREEN,
    (6, 216): ORANGE,
    (6, 318): RED,
    (108, 6): BLUE,
    (108, 114): RED,
    (108, 216): GREY,
    (108, 318): GREEN,
  }
  for (y, x), color in expected.items():
    assert tuple(picture[y, x]) == color and tuple(picture[y + 3, x + 95]) == color, (y, x)
    assert tuple(picture[y - 1, x - 1]) == WHITE  # the background just outside the frame
  layout = P.GridLayout(2, 3)
  assert [layout.cell_origin(0, c) for c in range(4)] == [(6, 6), (6, 114), (6, 216), (6, 318)]


def test_captions_and_legend_add_strips_and_keep_the_frames():
  rng = np.random.default_rng(1)
  relevance = np.array([[0, 2]])
  picture = P.retrieval_grid(
    _random_images(rng, 1),
    [_random_images(rng, 2)],
    relevance,
    cell_size=64,
    captions=[["query", "a", "b"]],
    legend=("query", "same digit", "same shape", "other"),
  )
  layout = P.grid_layout(1, 2, cell_size=64, captions=True, legend=True)
  # Font size 8 at 64 pixels: captions 8 + 4, legend 8 + 2 gaps.
  assert picture.shape == layout.shape == (6 + 64 + 12 + 6 + 20, 6 + 3 * 70 + 6, 3)
  assert [_frame_color(picture, layout, 0, c) for c in range(3)] == [BLUE, RED, GREEN]
  caption = picture[6 + 64 : 6 + 64 + 12, 6 : 6 + 64]
  assert (caption != 255).any()  # some text was drawn under the query


def test_small_image_is_enlarged_by_an_integer_factor_with_sharp_pixels():
  image = np.arange(64, dtype=np.uint8).reshape(8, 8, 1) * 4
  fitted = P.fit_image(image, 88)
  assert fitted.shape == (88, 88, 3)
  expected = np.kron(image[..., 0], np.ones((11, 11), np.uint8))
  for channel in range(3):  # grey stays grey
    np.testing.assert_array_equal(fitted[..., channel], expected)


def test_large_image_keeps_its_aspect_ratio_centred_on_the_background():
  image = np.zeros((100, 200, 3), np.uint8)
  image[..., 0] = 200
  fitted = P.fit_image(image, 88)
  rows, cols = np.nonzero((fitted != 255).any(-1))
  assert (rows.min(), rows.max() + 1) == (22, 66) and (cols.min(), cols.max() + 1) == (0, 88)
  assert tuple(fitted[44, 44]) == (200, 0, 0)
  # A small non-square image keeps its shape too: 4 x 8 enlarged 11 times.
  small = P.fit_image(np.full((4, 8), 7, np.uint8), 88)
  rows, cols = np.nonzero((small != 255).any(-1))
  assert (rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min()) == (44, 88)


def test_relevance_kinds_of_pair_levels():
  np.testing.assert_array_equal(P.relevance_kinds([[2, 1, 0]], 2), [[2, 1, 0]])
  np.testing.assert_array_equal(P.relevance_kinds([3, 2, 1, 0], 3), [2, 1, 1, 0])
  np.testing.assert_array_equal(P.relevance_kinds([1, 0], 1), [2, 0])
  with pytest.raises(ValueError, match="0..2"):
    P.relevance_kinds([3], 2)


def test_grid_rejects_rows_of_unequal_length_and_misshaped_relevance():
  rng = np.random.default_rng(2)
  with pytest.raises(ValueError, match="same number of results"):
    P.retrieval_grid(_random_images(rng, 2), [_random_images(rng, 2), _random_images(rng, 3)])
  with pytest.raises(ValueError, match=r"relevance must be \[1, 2\]"):
    P.retrieval_grid(_random_images(rng, 1), [_random_images(rng, 2)], np.zeros((2, 2)))


def test_choose_queries_takes_distinct_classes_first_and_is_fixed():
  labels = np.stack([np.arange(40) % 4, np.arange(40) % 4 % 2], 1)
  chosen = P.choose_queries(labels, 6, seed=3)
  assert len(set(chosen.tolist())) == 6
  assert sorted(labels[chosen[:4], 0].tolist()) == [0, 1, 2, 3]
  np.testing.assert_array_equal(chosen, P.choose_queries(labels, 6, seed=3))
  assert len(P.choose_queries(labels, 100)) == 40


class _FakeEvaluator:
  """An evaluator whose 'model' is a fixed random projection of the pixels (leave-one-out)."""

  def __init__(self, source, dim=6, seed=0):
    self.query_source, self.gallery_source, self.self_index = source, None, None
    self.projection = np.random.default_rng(seed).normal(size=(source.images[0].size, dim))

  def embed(self, variables, source):
    del variables
    x = source.images.reshape(len(source), -1).astype(np.float64) @ self.projection
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), source.labels


def _fake_source(num=40):
  rng = np.random.default_rng(5)
  fine = np.arange(num) % 8
  labels = np.stack([fine, fine % 3], 1)
  return sources.Source(
    name="fake/test",
    labels=labels,
    level_names=("digit", "shape"),
    images=rng.integers(0, 256, (num, 5, 7, 3), dtype=np.uint8),
  )


@pytest.mark.parametrize("max_gallery_items", [20_000, 25])
def test_evaluation_picture_frames_the_brute_force_neighbours_by_relevance(max_gallery_items):
  source = _fake_source()
  fake = _FakeEvaluator(source)
  picture = P.evaluation_picture(fake, None, num_queries=5, k=4, max_gallery_items=max_gallery_items, cell_size=48)
  layout = P.grid_layout(5, 4, cell_size=48, captions=True, legend=True)
  assert picture.shape == layout.shape
  queries = P.choose_queries(source.labels, 5, seed=0)
  if max_gallery_items >= len(source):
    # Brute force in float64: the query itself is excluded.
    embeddings, labels = fake.embed(None, source)
    scores = embeddings[queries].astype(np.float64) @ embeddings.T.astype(np.float64)
    scores[np.arange(5), queries] = -np.inf
    neighbors = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    levels = (labels[queries][:, None, :] == labels[neighbors]).sum(-1)
    expected = [[(RED, ORANGE, GREEN)[v] for v in row] for row in levels]
  for row in range(5):
    assert _frame_color(picture, layout, row, 0) == BLUE
    found = [_frame_color(picture, layout, row, c) for c in range(1, 5)]
    if max_gallery_items >= len(source):
      assert found == expected[row], row
    else:
      assert set(found) <= {GREEN, ORANGE, RED}
  # The query's image sits inside its frame, enlarged 5 times: 5 x 7 pixels -> 25 x 35, centred in the
  # 40 x 40 box at (7, 2); its pixel (1, 2) covers rows 12..16 and columns 12..16.
  y, x = layout.cell_origin(0, 0)
  inner = picture[y + 4 : y + 44, x + 4 : x + 44]
  np.testing.assert_array_equal(inner[14, 14], source.images[queries[0]][1, 2])
  np.testing.assert_array_equal(inner[6, 14], WHITE)


def _tb_images(folder):
  """``{tag: uint8 image}`` of every image summary in the TensorBoard event files of ``folder``."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  found = {}
  for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
    with open(path, "rb") as f:
      while header := f.read(12):  # TFRecord: uint64 length, uint32 crc, data, uint32 crc
        data = f.read(struct.unpack("<Q", header[:8])[0])
        f.read(4)
        for value in event_pb2.Event.FromString(data).summary.value:
          if value.HasField("image"):
            found[value.tag] = np.asarray(Image.open(io.BytesIO(value.image.encoded_image_string)).convert("RGB"))
  return found


def test_write_picture_saves_the_png_and_a_tensorboard_image(tmp_path):
  rng = np.random.default_rng(3)
  picture = P.retrieval_grid(_random_images(rng, 1), [_random_images(rng, 2)], np.array([[2, 0]]))
  path = P.write_picture(str(tmp_path), 40, "test", picture)
  assert path == os.path.join(str(tmp_path), "pictures", "test_step000040.png")
  np.testing.assert_array_equal(np.asarray(Image.open(path)), picture)
  images = _tb_images(os.path.join(str(tmp_path), "tensorboard", "pictures"))
  np.testing.assert_array_equal(images["test/retrievals"], picture)


def test_trainer_call_draws_a_real_evaluation_of_digits(tmp_path):
  config = digits.get_config()
  config.model.width, config.model.hidden_dim, config.model.embed_dim = 4, 16, 8
  mesh = parallel.make_mesh()
  model = build_model(config.model)
  ev = evaluator_lib.make_evaluator("test", config.evals.test, config.input, model=model, mesh=mesh)
  sample = pipeline.sample_images(config.input, ev.query_source)
  variables = jax.device_put(model.init(jax.random.PRNGKey(0), sample), parallel.replicated(mesh))
  path = P.write_evaluation_picture(str(tmp_path), 7, "test", ev, variables, tensorboard=False, num_queries=3, k=5)
  picture = np.asarray(Image.open(path))
  layout = P.grid_layout(3, 5, captions=True, legend=True)
  assert picture.shape == layout.shape
  for row in range(3):
    assert _frame_color(picture, layout, row, 0) == BLUE
    assert {_frame_color(picture, layout, row, c) for c in range(1, 6)} <= {GREEN, ORANGE, RED}
  # The 8x8 digit is enlarged 11 times: each of its pixels is an 11 x 11 square of one grey level.
  y, x = layout.cell_origin(0, 0)
  query = ev.query_source.load_image(int(P.choose_queries(ev.query_source.labels, 3)[0]))[..., 0]
  np.testing.assert_array_equal(picture[y + 4 : y + 92, x + 4 : x + 92, 1], np.kron(query, np.ones((11, 11), np.uint8)))
