"""Landmark retrieval: the Revisited Oxford/Paris protocol (``evaluation.landmarks``), its evaluation of
images at the protocol's resolution (``evaluation.image_embedding``, ``revisited_evaluator.RevisitedEvaluator``),
the H-GLDv2 benchmark, and GLDv2 / H-GLDv2 / SfM-120k training, on the miniatures of their data sets.

The standard protocol's implementation is revisitop's ``compute_map`` (``revisitop/python/evaluate.py``,
which the original's ``landmark_evaluation.py`` adapts), copied below with its ``kappas`` and run on a
full ``argsort`` of the gallery followed by the distractors.
"""

import os
import pickle

import jax
import numpy as np
import pytest

from suprank_jax import evaluate as evaluate_lib
from suprank_jax.configs import common, experiment
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import image_embedding as IE
from suprank_jax.evaluation import landmarks as LM
from suprank_jax.evaluation import scoring
from suprank_jax.evaluation.embedding_store import EmbeddingStore
from suprank_jax.evaluation.retrieval_evaluator import evaluation_input_config
from suprank_jax.evaluation.revisited_evaluator import RevisitedEvaluator
from suprank_jax.input_pipeline import datasets
from suprank_jax.input_pipeline.readers import revisited
from suprank_jax.models import default_config, heads
from suprank_jax.runtime import parallel
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import train
from tests import miniatures
from tests.test_models import _tiny_resnet

pytestmark = pytest.mark.usefixtures("fast_compile")


# ----------------------------------------------------------------------------------------------
# The standard protocol's implementation (revisitop, python/evaluate.py), as published.


def _compute_ap(ranks, nres):
  nimgranks = len(ranks)
  ap = 0
  recall_step = 1.0 / nres
  for j in np.arange(nimgranks):
    rank = ranks[j]
    precision_0 = 1.0 if rank == 0 else float(j) / rank
    precision_1 = float(j + 1) / (rank + 1)
    ap += (precision_0 + precision_1) * recall_step / 2.0
  return ap


def _compute_map(ranks, gnd, kappas=()):
  map_ = 0.0
  nq = len(gnd)
  aps = np.zeros(nq)
  pr = np.zeros(len(kappas))
  prs = np.zeros((nq, len(kappas)))
  nempty = 0
  for i in np.arange(nq):
    qgnd = np.array(gnd[i]["ok"])
    if qgnd.shape[0] == 0:
      aps[i] = float("nan")
      prs[i, :] = float("nan")
      nempty += 1
      continue
    try:
      qgndj = np.array(gnd[i]["junk"])
    except KeyError:
      qgndj = np.empty(0)
    pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
    junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
    k = 0
    ij = 0
    if len(junk):
      ip = 0
      while ip < len(pos):
        while ij < len(junk) and pos[ip] > junk[ij]:
          k += 1
          ij += 1
        pos[ip] = pos[ip] - k
        ip += 1
    ap = _compute_ap(pos, len(qgnd))
    map_ = map_ + ap
    aps[i] = ap
    pos += 1
    for j in np.arange(len(kappas)):
      kq = min(max(pos), kappas[j])
      prs[i, j] = (pos <= kq).sum() / kq
    pr = pr + prs[i, :]
  return map_ / (nq - nempty), aps, pr / (nq - nempty), prs


def _standard_metrics(query, gallery, gnd, distractors=None, kappas=(1, 5, 10)):
  """revisitop's example: scores = X.T Q, ranks = argsort(-scores, axis=0), the three setups."""
  database = gallery if distractors is None else np.concatenate([gallery, distractors])
  scores = np.dot(np.asarray(database, np.float64), np.asarray(query, np.float64).T)
  ranks = np.argsort(-scores, axis=0)
  out = {}
  for setup, ok, junk in (
    ("easy", ("easy",), ("junk", "hard")),
    ("medium", ("easy", "hard"), ("junk",)),
    ("hard", ("hard",), ("junk", "easy")),
  ):
    gnd_t = [{"ok": np.concatenate([g[k] for k in ok]), "junk": np.concatenate([g[k] for k in junk])} for g in gnd]
    m, _, pr, _ = _compute_map(ranks, gnd_t, kappas)
    out[f"mAP_{setup}"] = m
    out.update({f"mP@{k}_{setup}": p for k, p in zip(kappas, pr)})
  return out


def _random_gnd(rng, num_queries, num_gallery):
  gnd = []
  for q in range(num_queries):
    items = rng.permutation(num_gallery)[: rng.integers(3, 12)]
    cut = np.sort(rng.choice(np.arange(1, len(items)), 2, replace=False))
    easy, hard, junk = np.split(items, cut)
    gnd.append({"easy": easy, "hard": hard if q != 1 else hard[:0], "junk": junk})
  return gnd


def _unit(rng, n, d):
  x = rng.normal(size=(n, d))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Protocol.


def test_medium_and_hard_map_match_golden(golden):
  case, g = golden("landmark_map_medium_hard")
  gnd = [{k: g[f"q{i}_{k}"] for k in ("easy", "hard", "junk")} for i in range(case["hyperparameters"]["n_queries"])]
  res = LM.evaluate_revisited(g["query_features"], g["gallery_features"], gnd)
  assert res["mAP_medium"] == pytest.approx(float(g["mapM"]), rel=1e-9)
  assert res["mAP_hard"] == pytest.approx(float(g["mapH"]), rel=1e-9)
  assert res["num_queries_hard"] == 5  # query 1 has no hard image


def _write_miniature(path):
  # Query 0 ranks gallery items [2, 0, 5, 1, 4, 3]; query 1 ranks them in index order.
  data = {
    "imlist": [f"city_{i}" for i in range(6)],
    "qimlist": ["city_q0", "city_q1"],
    "gnd": [
      {"bbx": [0, 0, 10, 10], "easy": [0], "hard": [4], "junk": [5]},
      {"bbx": [0, 0, 10, 10], "easy": [0, 1], "hard": [], "junk": []},
    ],
  }
  with open(path, "wb") as f:
    pickle.dump(data, f)


def test_miniature_ground_truth_file_gives_hand_computed_map_and_mp(tmp_path):
  path = tmp_path / "gnd_rminiature.pkl"
  _write_miniature(path)
  gnd = LM.load_revisited_ground_truth(path)["gnd"]
  scores = np.array([[5, 3, 6, 1, 2, 4], [6, 5, 4, 3, 2, 1]], np.float64)
  res = LM.revisited_metrics(scores, gnd, kappas=(1, 5))
  # Hand computation (0-based positions after junk removal, trapezoid AP):
  # q0 medium: positives at [1, 3] -> (0 + 1/2)/2 + (1/3 + 2/4)/2 = 2/3, / 2 = 1/3; q1: 1.
  # q0 hard: junk {5, 0} -> positive at 2 -> (0 + 1/3)/2 = 1/6; q1 has no hard: excluded.
  # q0 easy: junk {5, 4} -> positive at 1 -> 1/4; q1: 1.
  expected = {
    "mAP_medium": (1 / 3 + 1) / 2,
    "mAP_hard": 1 / 6,
    "mAP_easy": (0.25 + 1) / 2,
    "mP@1_medium": 0.5,
    "mP@5_medium": (2 / 4 + 1) / 2,
    "mP@5_hard": 1 / 3,
    "mP@5_easy": (1 / 2 + 1) / 2,
    "num_queries_hard": 1,
    "num_queries_medium": 2,
  }
  for key, value in expected.items():
    assert res[key] == pytest.approx(value, rel=1e-12), key


def test_ground_truth_file_without_gnd_key_is_rejected(tmp_path):
  path = tmp_path / "gnd_bad.pkl"
  with open(path, "wb") as f:
    pickle.dump({"imlist": [], "qimlist": []}, f)
  with pytest.raises(ValueError, match="missing key 'gnd'"):
    LM.load_revisited_ground_truth(path)


def test_metrics_equal_the_standard_implementation_with_and_without_streamed_distractors(tmp_path):
  rng = np.random.default_rng(3)
  query, gallery, distractors = _unit(rng, 9, 16), _unit(rng, 60, 16), _unit(rng, 500, 16)
  gnd = _random_gnd(rng, 9, 60)
  np.save(tmp_path / "d.npy", distractors)
  on_disk = np.load(tmp_path / "d.npy", mmap_mode="r")
  for extra in (None, on_disk):
    ours = LM.evaluate_revisited(query, gallery, gnd, distractors=extra)
    reference = _standard_metrics(query, gallery, gnd, None if extra is None else distractors)
    for key, value in reference.items():
      assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
  # Distractors only lower the ranks of the gallery: every mAP falls or stays.
  assert ours["mAP_medium"] < LM.evaluate_revisited(query, gallery, gnd)["mAP_medium"]


def test_distractor_counts_stream_in_blocks_and_rank_ties_after_the_gallery(monkeypatch):
  rng = np.random.default_rng(4)
  query, distractors = _unit(rng, 3, 8), _unit(rng, 50, 8)
  gallery_scores = query @ _unit(rng, 7, 8).T
  gallery_scores[0, 0] = float(query[0] @ distractors[5])  # a tie with a distractor
  monkeypatch.setattr(scoring, "GALLERY_BLOCK_BYTES", 7 * 8 * 4)  # blocks of 7 rows
  counts = LM.count_distractors_before(query, gallery_scores, distractors)
  expected = ((query @ distractors.T)[:, None, :] > gallery_scores[:, :, None]).sum(-1)
  np.testing.assert_array_equal(counts, expected)


def test_several_benchmarks_search_the_distractors_once_and_equal_each_alone(monkeypatch):
  rng = np.random.default_rng(6)
  sets = {
    name: (_unit(rng, nq, 16), _unit(rng, ng, 16), _random_gnd(rng, nq, ng))
    for name, nq, ng in (("a", 5, 30), ("b", 4, 45))
  }
  distractors = _unit(rng, 200, 16)
  for mode, kwargs in (("exact", {}), ("scann", dict(scann_num_neighbors=200))):
    reads = []
    original_blocks = LM._blocks
    monkeypatch.setattr(LM, "_blocks", lambda *a, **k: (reads.append(1), original_blocks(*a, **k))[1])
    together = LM.evaluate_revisited_sets(sets, distractors=distractors, search_mode=mode, **kwargs)
    monkeypatch.setattr(LM, "_blocks", original_blocks)
    assert len(reads) == 1 and sorted(together) == ["a", "a+1m", "b", "b+1m"]
    for name, (q, g, gnd) in sets.items():
      assert together[name] == LM.evaluate_revisited(q, g, gnd)
      alone = LM.evaluate_revisited(q, g, gnd, distractors=distractors, search_mode=mode, **kwargs)
      for key, value in alone.items():
        assert together[f"{name}+1m"][key] == pytest.approx(value, rel=1e-6), (mode, name, key)


def test_scann_search_is_exact_when_it_keeps_every_distractor_and_truncates_the_ranking_otherwise():
  rng = np.random.default_rng(5)
  query, gallery, distractors = _unit(rng, 6, 16), _unit(rng, 40, 16), _unit(rng, 300, 16)
  gnd = _random_gnd(rng, 6, 40)
  exact = LM.evaluate_revisited(query, gallery, gnd, distractors=distractors)
  kept_all = LM.evaluate_revisited(
    query, gallery, gnd, distractors=distractors, search_mode="scann", scann_num_neighbors=300
  )
  for key, value in exact.items():
    assert kept_all[key] == pytest.approx(value, rel=1e-6), key
  # The ranking down to the 20th distractor: what is below it is left out of the standard ranking.
  scores = query @ gallery.T
  counts = LM.scann_distractors_before(query, scores, distractors, num_neighbors=20, brute_force=True)
  all_scores = np.concatenate([scores, query @ distractors.T], axis=1)
  order = np.argsort(-all_scores, axis=1, kind="stable")
  for q in range(len(query)):
    cut = np.flatnonzero(order[q] >= scores.shape[1])[19]  # position of the 20th distractor
    kept = order[q, : cut + 1]
    kept = kept[kept < scores.shape[1]]
    assert set(np.flatnonzero(counts[q] < LM.NOT_RETRIEVED)) == set(kept.tolist())


def test_the_package_has_one_multiscale_embedding_the_originals():
  assert LM.multiscale_embed is heads.multiscale_embed
  assert heads.MULTISCALE_SCALES == (1.0, 2**-0.5, 0.5)


# ----------------------------------------------------------------------------------------------
# Images at the protocol's resolution.


def _original_revisited_item(path, box, imsize):
  """The original's ``RevisitedDataset.__getitem__`` (suprank/datasets/revisited_dataset.py lines 64-76)."""
  from PIL import Image

  img = Image.open(path)
  imfullsize = max(img.size)
  if box is not None:
    img = img.crop(box)
  if imsize is not None:
    size = imsize * max(img.size) / imfullsize if box is not None else imsize
    img.thumbnail((size, size), Image.LANCZOS)
  return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def revisited_dir(tmp_path_factory):
  return miniatures.make_revisited(str(tmp_path_factory.mktemp("revisited")), num_distractors=12)


@pytest.mark.parametrize("max_side", [1024, 11, 7])
def test_images_are_cropped_and_shrunk_as_the_originals_reader_does(revisited_dir, max_side):
  sets, _ = revisited.revisited_sets(revisited_dir, distractors="no")
  for source in sets["roxford5k"]:
    for i in range(len(source)):
      box = None if source.boxes is None else tuple(source.boxes[i])
      ours = IE.load_landmark_image(source, i, max_side=max_side)
      np.testing.assert_array_equal(ours, _original_revisited_item(source.paths[i], box, max_side))
      assert max(ours.shape[:2]) <= max(max_side, 1)


@pytest.mark.parametrize("size", [224, 9])
def test_square_size_is_the_originals_configs_crop_then_resize_to_a_square(revisited_dir, size):
  # The original's configs build RevisitedDataset without imsize (no thumbnail) and transform with
  # torchvision's Resize([s, s]), which on a PIL image is img.resize((s, s), BILINEAR).
  from PIL import Image

  sets, _ = revisited.revisited_sets(revisited_dir, distractors="no")
  for source in sets["roxford5k"]:
    for i in range(len(source)):
      box = None if source.boxes is None else tuple(source.boxes[i])
      img = Image.open(source.paths[i])
      img = img.crop(box) if box is not None else img
      expected = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
      np.testing.assert_array_equal(IE.load_landmark_image(source, i, max_side=1024, square_size=size), expected)


def test_revisited_sets_read_both_benchmarks_and_the_distractors_when_present(revisited_dir, tmp_path):
  sets, distractors = revisited.revisited_sets(revisited_dir)
  assert sorted(sets) == ["roxford5k", "rparis6k"] and len(distractors) == 12
  assert revisited.revisited_sets(revisited_dir, distractors="no")[1] is None
  bare = miniatures.make_revisited(str(tmp_path / "bare"))
  assert revisited.revisited_sets(bare)[1] is None
  with pytest.raises(FileNotFoundError, match="revisitop1m does not exist"):
    revisited.revisited_sets(bare, distractors="yes")
  truth = miniatures.ground_truth("roxford5k")
  query, gallery = sets["roxford5k"]
  assert [os.path.relpath(p, os.path.join(revisited_dir, "roxford5k")) for p in gallery.paths] == [
    i.path for i in truth["gallery"]
  ]
  np.testing.assert_array_equal(query.labels[:, 0], [0, 1, 2, 3, 4])  # joint ids with the gallery


def _revisited_evaluator(data_dir, model, log=lambda _: None, store=None, **settings):
  config = common.base_config()
  config.input.normalization = "imagenet"
  ev = common.revisited_eval_config(data_dir, batch_size=8, **settings)
  ev.update(store or {})
  return evaluator_lib.make_evaluator("revisited", ev, config.input, model=model, mesh=parallel.make_mesh(), log=log)


@pytest.fixture(scope="module")
def tiny():
  model = _tiny_resnet()
  return model, model.init(jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32), train=False)


def test_revisited_numbers_on_the_miniature_equal_the_standard_implementation(revisited_dir, tiny, tmp_path):
  model, variables = tiny
  ev = _revisited_evaluator(revisited_dir, model, store=dict(cache_dir=str(tmp_path / "cache"), cache_min_items=10))
  assert isinstance(ev, RevisitedEvaluator) and ev.distractor_source is not None
  metrics = ev.run(variables)
  distractors, _ = ev.embed(variables, ev.distractor_source)
  for dataset, (query_source, gallery_source) in ev.sets.items():
    query, _ = ev.embed(variables, query_source)
    gallery, _ = ev.embed(variables, gallery_source)
    gnd = ev.ground_truth[dataset]
    for prefix, extra in ((dataset, None), (f"{dataset}+1m", distractors)):
      for key, value in _standard_metrics(query, gallery, gnd, extra).items():
        assert metrics[f"{prefix}/{key}"] == pytest.approx(value, rel=1e-6, abs=1e-12), (prefix, key)
    assert metrics[f"{dataset}/num_queries_medium"] == 5 and metrics[f"{dataset}/num_queries_hard"] == 4
  assert not os.listdir(tmp_path / "cache")  # the embeddings on disk are deleted once done


def test_embeddings_keep_each_images_shape_and_a_query_is_its_crop(revisited_dir, tiny):
  model, variables = tiny
  ev = _revisited_evaluator(revisited_dir, model, distractors="no")
  query_source, gallery_source = ev.sets["rparis6k"]
  gallery, _ = ev.embed(variables, gallery_source)
  for i in (0, 2, 3):  # 16 x 16, 12 x 16 and 16 x 12 pixels, each embedded alone
    image = IE.load_landmark_image(gallery_source, i, max_side=1024)
    x = (image / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    alone = np.asarray(model.apply(variables, x[None].astype(np.float32), train=False))[0]
    np.testing.assert_allclose(gallery[i], alone, rtol=1e-4, atol=1e-5)
  query, _ = ev.embed(variables, query_source)
  crop = IE.load_landmark_image(query_source, 2, max_side=1024)
  assert crop.shape == (11, 9, 3)  # box (3.4, 2.6, 11.5, 14.4), rounded as PIL's crop


def test_an_interrupted_embedding_resumes_with_the_items_it_lacks(revisited_dir, tiny, tmp_path):
  model, variables = tiny
  source = revisited.revisited_sets(revisited_dir)[1]
  embedder = IE.ImageEmbedder(model, normalization="imagenet", batch_size=8)
  local = embedder.local_variables(variables)

  class Interrupted:  # the embedder, interrupted at its second batch
    batch_size, batch_shape, calls = embedder.batch_size, embedder.batch_shape, 0

    def __call__(self, variables, images):
      self.calls += 1
      if self.calls == 2:
        raise KeyboardInterrupt
      return embedder(variables, images)

  folder = str(tmp_path / "store")
  store = EmbeddingStore(len(source), embedder.output_dim(local), folder)
  with pytest.raises(KeyboardInterrupt):
    IE.embed_images(Interrupted(), local, source, store, max_side=1024)
  resumed = EmbeddingStore(len(source), embedder.output_dim(local), folder)
  assert resumed.resumed == 8 and len(resumed.missing()) == 4
  lines = []
  IE.embed_images(embedder, local, source, resumed, max_side=1024, log=lines.append, what="distractors")
  assert "resuming with 8 of 12" in lines[0]
  fresh = EmbeddingStore(len(source), embedder.output_dim(local))
  IE.embed_images(embedder, local, source, fresh, max_side=1024)
  np.testing.assert_allclose(np.asarray(resumed.embeddings), fresh.embeddings, rtol=1e-6)


def test_padded_batches_pool_each_image_over_its_own_region(tiny):
  model, variables = tiny
  rng = np.random.default_rng(0)
  exact = IE.ImageEmbedder(model, normalization="imagenet", batch_size=8)
  padded = IE.ImageEmbedder(model, normalization="imagenet", batch_size=8, pad_to_multiple=32)
  assert padded.batch_shape(40, 64) == (64, 64) and exact.batch_shape(40, 64) == (40, 64)
  full, small = rng.integers(0, 256, (64, 64, 3), np.uint8), rng.integers(0, 256, (40, 64, 3), np.uint8)
  # An image of the batch shape is embedded as alone.
  np.testing.assert_allclose(
    padded(padded.local_variables(variables), [full]),
    exact(exact.local_variables(variables), [full]),
    rtol=1e-5,
    atol=1e-6,
  )
  # A smaller one: its normalised pixels in a zero canvas, pooled over the feature rows it covers
  # (ceil(40 / 32) = 2 of 2 here: the same map, rows computed partly from the padding).
  x = (small / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  canvas = np.zeros((1, 64, 64, 3), np.float32)
  canvas[0, :40] = x
  expected = model.apply(variables, canvas, train=False, image_sizes=np.array([[40, 64]]))
  np.testing.assert_allclose(
    padded(padded.local_variables(variables), [small, full])[:1], expected, rtol=1e-5, atol=1e-6
  )


def test_learned_whitening_and_mixed_precision_evaluations_run(revisited_dir, tiny, tmp_path):
  model, variables = tiny
  gldv2 = miniatures.make_gldv2(str(tmp_path / "gldv2"))
  config = common.base_config()
  config.input.update(dict(dataset="gldv2", data_dir=gldv2, normalization="imagenet"))
  ev_config = common.revisited_eval_config(
    revisited_dir, batch_size=8, distractors="no", learn_whitening_images=20, dtype="bfloat16", multiscale=True
  )
  lines = []
  ev = evaluator_lib.make_evaluator(
    "revisited", ev_config, config.input, model=model, mesh=parallel.make_mesh(), log=lines.append
  )
  metrics = ev.run(variables)
  assert all(np.isfinite(v) for v in metrics.values()) and "rparis6k/mAP_hard" in metrics
  assert any("learned a PCA-whitening from 20 training images" in line for line in lines)
  embeddings, _ = ev.embed(variables, ev.query_source)  # whitened, as in the run
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
  "settings,match",
  [
    (dict(kind="search"), "kind='search'; valid"),
    (dict(split="query"), "split is set but .*kind='revisited' does not read it"),
    (dict(data_dir=""), "data_dir is empty"),
    (dict(revisited=dict(search="scann", distractors="no")), "searches the distractors"),
    (dict(revisited=dict(multiscale=True, pad_to_multiple=32)), "pad_to_multiple needs multiscale=False"),
    (dict(revisited=dict(datasets=("oxford105k",))), "datasets=.* must name some of"),
    (dict(revisited=dict(scann_num_neighbors=10)), "scann_num_neighbors is set but"),
    (dict(revisited=dict(whitening="/nowhere/w.npz")), "no such file"),
    (dict(revisited=dict(square_size=224, max_side=512)), "max_side is not read with"),
    (dict(revisited=dict(square_size=-1)), "square_size=-1 must be an integer >= 0"),
  ],
)
def test_bad_revisited_settings_stop_when_the_evaluator_is_built(revisited_dir, settings, match):
  config = common.base_config()
  ev = common.revisited_eval_config(revisited_dir)
  revisited = settings.pop("revisited", {})
  ev.update(settings)
  ev.revisited.update(revisited)
  with pytest.raises((ValueError, FileNotFoundError), match=match):
    evaluator_lib.make_evaluator("lm", ev, config.input, model=_tiny_resnet(), mesh=parallel.make_mesh())


def test_a_retrieval_evaluation_rejects_revisited_settings():
  config = common.base_config()
  config.evals.test.revisited.max_side = 512
  with pytest.raises(ValueError, match="revisited is set but config.evals.test.kind='retrieval'"):
    evaluator_lib.make_evaluator(
      "test", config.evals.test, config.input, model=_tiny_resnet(), mesh=parallel.make_mesh()
    )


# ----------------------------------------------------------------------------------------------
# Training and both evaluation kinds on the miniatures.


def _landmark_run_config(path, data_root):
  from tests.test_experiments import load_experiment, shrink  # pylint: disable=g-import-not-at-top

  config = load_experiment(path)
  data_dir = miniatures.for_config(config, data_root)
  config.model = default_config("resnet18")  # a small backbone: the run tests the data and evaluations
  config.model.update(dict(width=4, embed_dim=16, pooling="gem", whiten=True, pretrained=False))
  shrink(config, data_dir)
  config.num_epochs, config.total_steps, config.eval_every_epochs = 0, 2, 0
  config.checkpoint_every_epochs, config.checkpoint_every_steps = 0, 2
  return config


def test_gldv2_training_evaluates_revisited_and_hgldv2_and_the_evaluate_command_repeats_it(tmp_path):
  config = _landmark_run_config("landmarks/happier_hgldv2.py", str(tmp_path / "data"))
  assert config.evals.roxf_rpar.kind == "revisited" and config.evals.hgldv2.dataset == "gldv2_hierarchical"
  workdir = str(tmp_path / "run")
  _, summary = train.train_and_evaluate(config, workdir, log=lambda _: None)
  final = summary["final"]
  assert {"roxford5k/mAP_medium", "rparis6k+1m/mP@10_hard"} <= set(final["roxf_rpar"])
  assert {"mAP@100_level0", "P@100_level0", "H-AP_multi", "ASI_multi", "NDCG_multi"} <= set(final["hgldv2"])
  for metrics in final.values():
    assert all(np.isfinite(v) for v in metrics.values())
  assert os.path.isfile(os.path.join(workdir, "pictures", "roxf_rpar_step000002.png"))
  header, *rows = train.summary_table(summary).splitlines()
  assert header.split()[1:] == [
    "mAP@R_level0",
    "H-AP_multi",
    "roxford5k/mAP_medium",
    "roxford5k/mAP_hard",
    "rparis6k/mAP_medium",
    "rparis6k/mAP_hard",
  ]
  trained = next(r for r in rows if r.startswith("trained (roxf_rpar)")).split()
  assert trained[-4:] == [f"{final['roxf_rpar'][k]:.4f}" for k in header.split()[-4:]]
  step, results = evaluate_lib.evaluate(RunDir(workdir).read_config(), workdir=workdir, log=lambda _: None)
  assert step == 2
  for name in ("roxf_rpar", "hgldv2"):
    assert results[name] == pytest.approx(final[name], rel=1e-5, abs=1e-7)


def test_a_large_index_is_embedded_on_disk_resumes_after_an_interruption_and_gives_the_same_numbers(
  tmp_path, tiny, monkeypatch
):
  config = _landmark_run_config("landmarks/happier_hgldv2.py", str(tmp_path / "data"))
  model, variables = tiny
  ev_config = config.evals.hgldv2
  ev_config.batch_size = 8

  def evaluator(**store):
    ev_config.update(store)
    return evaluator_lib.make_evaluator(
      "hgldv2", ev_config, config.input, model=model, mesh=parallel.make_mesh(), log=lines.append
    )

  lines = []
  in_memory = evaluator().run(variables)
  cache = tmp_path / "cache"
  ev = evaluator(cache_dir=str(cache), cache_min_items=len(_gallery_of(config)) - 1)
  # An interruption after the queries' batch and one batch of the index: the latter stays on disk.
  embed, calls = ev._embed, []

  def failing(v, batch):
    calls.append(1)
    if len(calls) > 2:
      raise KeyboardInterrupt
    return embed(v, batch)

  ev._embed = failing
  with pytest.raises(KeyboardInterrupt):
    ev.run(variables)
  ev._embed, calls = (lambda v, batch: calls.append(1) or embed(v, batch)), []
  lines.clear()
  read_rows, reads = scoring.read_rows, []
  monkeypatch.setattr(scoring, "read_rows", lambda a, i, j: reads.append(scoring.on_disk(a)) or read_rows(a, i, j))
  on_disk = ev.run(variables)
  assert reads.count(True) >= 2  # the index is checked and searched from its store on disk
  gallery_size = len(ev.gallery_source)
  assert len(ev.query_source) <= 8 < gallery_size
  assert any(f"8 of {gallery_size} images already embedded" in line for line in lines), lines
  assert len(calls) == 1 + -(-(gallery_size - 8) // 8)  # the queries (in memory) and the missing items only
  assert on_disk == pytest.approx(in_memory, rel=1e-6, abs=1e-7)
  assert not os.listdir(cache)  # deleted once the evaluation is done


def test_an_unwritable_store_folder_stops_the_evaluator_before_any_work(tmp_path, tiny):
  config = _landmark_run_config("landmarks/happier_hgldv2.py", str(tmp_path / "data"))
  (tmp_path / "a_file").write_text("")
  config.evals.hgldv2.update(cache_dir=str(tmp_path / "a_file" / "cache"), cache_min_items=10)
  with pytest.raises(
    ValueError,
    match=r"config.evals.hgldv2.cache_dir: .*a_file/cache is not writable .*"
    r"gldv2_hierarchical/gallery \(15 images, cache_min_items=10\)",
  ):
    evaluator_lib.make_evaluator("hgldv2", config.evals.hgldv2, config.input, model=tiny[0], mesh=parallel.make_mesh())
  config.evals.hgldv2.cache_min_items = 16  # every set stays in memory: nothing is written there
  evaluator_lib.make_evaluator("hgldv2", config.evals.hgldv2, config.input, model=tiny[0], mesh=parallel.make_mesh())


def _gallery_of(config):
  return datasets.get_source(evaluation_input_config(config.input, config.evals.hgldv2), "gallery")


def test_sfm120k_reader_and_its_group(tmp_path):
  root = miniatures.make_sfm120k(str(tmp_path / "sfm"))
  source = datasets.DATASETS["sfm120k"](root, "train")
  truth = miniatures.ground_truth("sfm120k")["train"]
  assert [os.path.relpath(p, root) for p in source.paths] == [i.path for i in truth]
  assert source.num_classes == (9,) and len(datasets.DATASETS["sfm120k"](root, "train", min_images_per_class=4)) == 33
  config = experiment.compose(
    dataset="sfm120k", model="resnet_101_lm", optimizer="gldv2", loss="norm_softmax", num_epochs=1
  )
  assert config.input.dataset == "sfm120k" and list(config.evals) == ["roxf_rpar"]
  from tests.test_experiments import shrink  # pylint: disable=g-import-not-at-top

  shrink(config, miniatures.for_config(config, str(tmp_path / "data")))
  run = train.prepare(config, str(tmp_path / "run"), log=lambda _: None)
  assert isinstance(run.evaluators["roxf_rpar"], RevisitedEvaluator)
