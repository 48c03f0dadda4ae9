"""Export a trained run as an index and search it: the index format, nearest neighbours against a numpy
brute-force search, the command lines, and their errors."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from suprank_jax.configs import digits
from suprank_jax.evaluation import pictures
from suprank_jax.evaluation.embedding_store import weights_fingerprint
from suprank_jax.index import export, search
from suprank_jax.index import store as index_lib
from suprank_jax.input_pipeline import datasets, sources, transforms
from suprank_jax.models import build_model
from suprank_jax.training import train
from tests import commands

pytestmark = pytest.mark.usefixtures("fast_compile")


def _unit(rng, shape):
  x = rng.normal(size=shape).astype(np.float32)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _write(out_dir, embeddings, searcher="auto", labels=None):
  num = len(embeddings)
  labels = np.stack([np.arange(num) % 5, np.arange(num) % 5 % 2], 1) if labels is None else labels
  return index_lib.write_index(
    str(out_dir),
    embeddings,
    locations=[f"item{i}.png" for i in range(num)],
    labels=labels,
    level_names=("fine", "coarse"),
    variables={"params": {"w": np.ones(3, np.float32)}},
    model={
      "name": "convnet",
      "checkpoint_step": 1,
      "workdir": "/nowhere",
      "input_shape": [8, 8, 1],
      "image_channels": 1,
    },
    gallery={"images": "/nowhere"},
    config={"seed": 0},
    searcher=searcher,
  )


def _brute_force(queries, gallery, k):
  scores = queries.astype(np.float64) @ gallery.T.astype(np.float64)
  order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return order, np.take_along_axis(scores, order, 1)


# ------------------------------------------------------------------------------------------------
# The index folder, on random embeddings.


def test_exact_index_finds_the_numpy_brute_force_neighbours(tmp_path):
  rng = np.random.default_rng(0)
  gallery, queries = _unit(rng, (500, 16)), _unit(rng, (20, 16))
  manifest = _write(tmp_path / "index", gallery)
  assert (manifest["searcher"], manifest["num_items"], manifest["embed_dim"]) == ("exact", 500, 16)
  index = index_lib.load_index(str(tmp_path / "index"))
  indices, scores = index.search(queries, k=7)
  expected, expected_scores = _brute_force(queries, gallery, 7)
  np.testing.assert_array_equal(indices, expected)
  np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
  np.testing.assert_array_equal(index.embeddings, gallery)
  assert index.locations[3] == "item3.png" and index.labels[7].tolist() == [2, 0]
  assert index.level_names == ("fine", "coarse") and index.config().seed == 0
  np.testing.assert_array_equal(index.variables()["params"]["w"], np.ones(3))
  # One query as a vector; k above the gallery size is the whole gallery.
  one, _ = index.search(queries[0], k=3)
  np.testing.assert_array_equal(one, expected[:1, :3])
  assert index.search(queries[:2], k=10_000)[0].shape == (2, 500)


def test_scann_index_recalls_the_exact_neighbours_and_survives_a_move(tmp_path):
  rng = np.random.default_rng(1)
  centers = _unit(rng, (60, 16))
  gallery = _unit(rng, (3000, 16)) * 0.3 + centers[rng.integers(0, 60, 3000)]
  gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
  queries = gallery[:50] + 0.05 * _unit(rng, (50, 16))
  assert _write(tmp_path / "index", gallery, searcher="scann")["searcher"] == "scann"
  os.rename(tmp_path / "index", tmp_path / "moved")  # ScaNN's files are written with relative paths
  indices, scores = index_lib.load_index(str(tmp_path / "moved")).search(queries, k=10)
  expected, _ = _brute_force(queries, gallery, 10)
  recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(indices, expected)])
  assert recall >= 0.9
  # Whatever it returns is scored exactly (re-ordering with the true dot products).
  np.testing.assert_allclose(scores, np.take_along_axis(queries @ gallery.T, indices, 1), atol=1e-5)


def test_auto_searcher_is_exact_below_the_threshold(monkeypatch, tmp_path):
  rng = np.random.default_rng(2)
  assert _write(tmp_path / "small", _unit(rng, (40, 4)))["searcher"] == "exact"
  monkeypatch.setattr(index_lib, "EXACT_MAX_ITEMS", 30)
  assert _write(tmp_path / "large", _unit(rng, (40, 4)))["searcher"] == "scann"


def test_the_weights_fingerprint_of_a_manifest_is_sha256_over_path_dtype_shape_and_bytes():
  # The index manifests written so far hold this value: it must not change.
  variables = {"params": {"b": np.arange(2, dtype=np.int32), "a": np.ones((2, 3), np.float32)}}
  expected = hashlib.sha256()
  for key, leaf in (("['params']['a']", variables["params"]["a"]), ("['params']['b']", variables["params"]["b"])):
    expected.update(f"{key}|{leaf.dtype.str}|{leaf.shape}".encode())
    expected.update(leaf.tobytes())
  assert weights_fingerprint(variables) == expected.hexdigest()
  assert weights_fingerprint(variables, "settings") != expected.hexdigest()


def test_queries_of_another_embedding_size_are_refused_naming_the_index(tmp_path):
  _write(tmp_path / "index", _unit(np.random.default_rng(3), (30, 16)))
  index = index_lib.load_index(str(tmp_path / "index"))
  with pytest.raises(ValueError, match=r"index .*index holds 16-d embeddings .*shape \(2, 12\)"):
    index.search(np.zeros((2, 12), np.float32))
  with pytest.raises(ValueError, match="16-d embeddings by the model of '/nowhere' at step 1.*gives 8-d"):
    index_lib.check_model(index, name="convnet", embed_dim=8, weights_sha256="0" * 64)
  with pytest.raises(ValueError, match="built by another model"):
    index_lib.check_model(index, name="convnet", embed_dim=16, weights_sha256="0" * 64)
  same = weights_fingerprint({"params": {"w": np.ones(3, np.float32)}})
  index_lib.check_model(index, name="convnet", embed_dim=16, weights_sha256=same)


def test_index_errors_name_the_folder_at_fault(tmp_path):
  with pytest.raises(FileNotFoundError, match=f"{tmp_path}/none/manifest.json does not exist"):
    index_lib.load_index(str(tmp_path / "none"))
  _write(tmp_path / "index", _unit(np.random.default_rng(4), (10, 4)))
  path = tmp_path / "index" / "manifest.json"
  manifest = json.loads(path.read_text())
  path.write_text(json.dumps({**manifest, "version": 99}))
  with pytest.raises(ValueError, match="manifest.json: version 99"):
    index_lib.load_index(str(tmp_path / "index"))
  os.remove(tmp_path / "index" / "embeddings.npy")
  path.write_text(json.dumps(manifest))
  with pytest.raises(FileNotFoundError, match="embeddings.npy is missing"):
    index_lib.load_index(str(tmp_path / "index"))
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="other exists and is not an index folder"):
    _write(tmp_path / "other", _unit(np.random.default_rng(4), (10, 4)))
  assert (tmp_path / "other" / "notes.txt").exists()


def test_an_empty_gallery_is_refused(tmp_path):
  with pytest.raises(ValueError, match="the gallery is empty"):
    _write(tmp_path / "index", np.zeros((0, 4), np.float32), labels=np.zeros((0, 2), np.int64))
  (tmp_path / "photos" / "sub").mkdir(parents=True)
  (tmp_path / "photos" / "sub" / "notes.txt").write_text("no image here")
  with pytest.raises(ValueError, match=f"the gallery is empty: {tmp_path}/photos holds no image file"):
    export.folder_source(str(tmp_path / "photos"))
  assert not os.path.exists(tmp_path / "index")


# ------------------------------------------------------------------------------------------------
# A trained digits run, exported and searched.


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  config = digits.get_config()
  config.total_steps = 4
  config.checkpoint_every_steps = 3  # checkpoints at steps 3 and 4: two different models
  config.tensorboard = False
  config.model.width, config.model.hidden_dim, config.model.embed_dim = 8, 32, 16
  config.input.global_batch_size, config.input.samples_per_class = 40, 4
  config.losses.sup_ap.max_positives = 4
  train.train_and_evaluate(config, workdir, log=lambda *_: None)
  return workdir


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
  """Test digits 3, 100 and 500 as PNG files, and a file that is not an image."""
  folder = tmp_path_factory.mktemp("queries")
  test = datasets.DATASETS["digits"]("", "test")
  paths = []
  for i in (3, 100, 500):
    paths.append(str(folder / f"test_{i}.png"))
    Image.fromarray(test.load_image(i)[..., 0]).save(paths[-1])
  (folder / "broken.png").write_text("not an image")
  return paths, str(folder / "broken.png")


@pytest.fixture(scope="module")
def test_index(run_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("index") / "test")
  export.export_index(run_dir, out, split="test", log=lambda *_: None)
  return index_lib.load_index(out)


def test_exported_split_records_its_model_and_items(test_index, run_dir):
  m = test_index.manifest
  assert (m["num_items"], m["embed_dim"], m["searcher"], m["level_names"]) == (896, 16, "exact", ["digit", "shape"])
  assert m["model"]["name"] == "convnet" and m["model"]["checkpoint_step"] == 4
  assert m["model"]["workdir"] == os.path.abspath(run_dir) and m["gallery"] == {"dataset": "digits", "split": "test"}
  assert (m["model"]["input_shape"], m["model"]["image_channels"]) == ([8, 8, 1], 1)
  assert m["config"]["model"]["embed_dim"] == 16
  test = datasets.DATASETS["digits"]("", "test")
  np.testing.assert_array_equal(test_index.labels, test.labels)
  assert test_index.locations[12] == "digits/test[12]"
  assert m["model"]["weights_sha256"] == weights_fingerprint(export.load_run(run_dir).variables)


def test_searching_image_files_matches_numpy_brute_force(test_index, digit_files):
  paths, _ = digit_files
  results = search.search_files(test_index, paths, k=6)
  # Each file is a gallery image: it finds itself first, with a cosine similarity of 1.
  np.testing.assert_array_equal(results.indices[:, 0], [3, 100, 500])
  np.testing.assert_allclose(results.scores[:, 0], 1.0, atol=1e-5)
  config = test_index.config()
  queries = search.embed_images(
    build_model(config.model), test_index.variables(), search.preprocess_images(results.images, config.input, [8, 8, 1])
  )
  _, expected_scores = _brute_force(queries, np.asarray(test_index.embeddings), 6)
  # Scores in order, and each returned item really has the score given (ties may swap equal items).
  np.testing.assert_allclose(results.scores, expected_scores, atol=1e-5)
  np.testing.assert_allclose(
    results.scores, np.take_along_axis(queries @ test_index.embeddings.T, results.indices, 1), atol=1e-5
  )
  text = search.format_results(test_index, results)
  assert text.splitlines()[0] == paths[0]
  assert text.splitlines()[1].split() == ["1", f"{results.scores[0, 0]:.4f}", "digits/test[3]", "digit=3", "shape=2"]


def test_a_larger_query_image_is_resized_to_the_model_input(test_index, digit_files, tmp_path):
  paths, _ = digit_files
  big = str(tmp_path / "big.png")
  Image.open(paths[1]).resize((64, 64), Image.NEAREST).save(big)
  small = str(tmp_path / "small.png")
  Image.fromarray(transforms.resize(np.asarray(Image.open(big))[..., None], 8, 8)[..., 0]).save(small)
  results, expected = (search.search_files(test_index, [p], k=5) for p in (big, small))
  np.testing.assert_array_equal(results.indices, expected.indices)
  np.testing.assert_allclose(results.scores, expected.scores, atol=1e-6)


def test_search_with_another_checkpoint_is_refused(test_index, digit_files, run_dir):
  paths, _ = digit_files
  with pytest.raises(ValueError, match="built by another model: the model of .* at step 4 .*not the model .* step 3"):
    search.search_files(test_index, paths[:1], workdir=run_dir, step=3)
  same = search.search_files(test_index, paths[:1], workdir=run_dir, step=4, k=3)
  np.testing.assert_array_equal(same.indices, search.search_files(test_index, paths[:1], k=3).indices)


def test_unreadable_query_image_names_the_file(test_index, digit_files, capsys):
  _, broken = digit_files
  with pytest.raises(sources.ImageLoadError, match=f"cannot decode image {broken}"):
    search.search_files(test_index, [broken])
  with pytest.raises(SystemExit) as exit_info:
    search.main(["--index", test_index.directory, broken])
  assert f"error: cannot decode image {broken}" in str(exit_info.value)


def test_export_folder_labels_images_by_subfolder_and_draws_relevance(run_dir, digit_files, tmp_path):
  paths, _ = digit_files
  for name, path in zip(("a/x.png", "a/y.png", "b/z.png"), paths):
    os.makedirs(tmp_path / "photos" / os.path.dirname(name), exist_ok=True)
    shutil.copy(path, tmp_path / "photos" / name)
  export.main(["--workdir", run_dir, "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "index")])
  index = index_lib.load_index(str(tmp_path / "index"))
  assert index.manifest["model"]["image_channels"] == 1 and index.level_names == ("folder",)
  assert [os.path.relpath(p, tmp_path / "photos") for p in index.locations] == ["a/x.png", "a/y.png", "b/z.png"]
  np.testing.assert_array_equal(index.labels[:, 0], [0, 0, 1])
  query = str(tmp_path / "photos" / "a" / "x.png")
  results = search.search_files(index, [query], k=3)
  assert results.indices[0, 0] == 0
  picture = search.results_picture(index, results, cell_size=64)
  layout = pictures.grid_layout(1, 3, cell_size=64, captions=True)
  assert picture.shape == layout.shape
  # The query is a gallery file: its results are framed by relevance (same folder: 'class').
  same_folder = index.labels[results.indices[0], 0] == 0
  for column, same in enumerate(same_folder, start=1):
    y, x = layout.cell_origin(0, column)
    assert tuple(picture[y + 1, x + 1]) == pictures.FRAME_COLORS["class" if same else "other"]
  with pytest.raises(SystemExit) as exit_info:  # an empty folder
    os.makedirs(tmp_path / "empty")
    export.main(["--workdir", run_dir, "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "index2")])
  assert "the gallery is empty" in str(exit_info.value)


def test_search_command_prints_neighbours_and_draws_them(test_index, digit_files, tmp_path):
  paths, _ = digit_files
  picture_path = str(tmp_path / "found.png")
  out = commands.run_command(
    "search",
    "--index",
    test_index.directory,
    *paths[:2],
    "--k",
    "4",
    "--picture",
    picture_path,
    env=commands.command_env(fake_devices=False),
  )
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert lines[0] == paths[0] and lines[1].split()[2] == "digits/test[3]" and lines[5] == paths[1]
  assert lines[-1] == f"wrote {picture_path}"
  picture = np.asarray(Image.open(picture_path))
  layout = pictures.grid_layout(2, 4, captions=True)
  assert picture.shape == layout.shape
  # The queries are files outside the gallery: blue query frames, grey (unknown relevance) result frames.
  for row in range(2):
    assert tuple(picture[layout.cell_origin(row, 0)]) == pictures.FRAME_COLORS["query"]
    assert all(tuple(picture[layout.cell_origin(row, c)]) == pictures.FRAME_COLORS["unknown"] for c in range(1, 5))
