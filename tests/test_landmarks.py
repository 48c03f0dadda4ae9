"""Revisited Oxford/Paris protocol (suprank_jax.evaluation.landmarks)."""

import pickle

import numpy as np
import pytest

from suprank_jax.evaluation import landmarks as LM


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
      "gnd": [{"bbx": [0, 0, 10, 10], "easy": [0], "hard": [4], "junk": [5]},
              {"bbx": [0, 0, 10, 10], "easy": [0, 1], "hard": [], "junk": []}],
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
  expected = {"mAP_medium": (1 / 3 + 1) / 2, "mAP_hard": 1 / 6, "mAP_easy": (0.25 + 1) / 2,
              "mP@1_medium": 0.5, "mP@5_medium": (2 / 4 + 1) / 2, "mP@5_hard": 1 / 3, "mP@5_easy": (1 / 2 + 1) / 2,
              "num_queries_hard": 1, "num_queries_medium": 2}
  for key, value in expected.items():
    assert res[key] == pytest.approx(value, rel=1e-12), key


def test_ground_truth_file_without_gnd_key_is_rejected(tmp_path):
  path = tmp_path / "gnd_bad.pkl"
  with open(path, "wb") as f:
    pickle.dump({"imlist": [], "qimlist": []}, f)
  with pytest.raises(ValueError, match="missing key 'gnd'"):
    LM.load_revisited_ground_truth(path)


def test_multiscale_embedding_is_the_normalised_generalised_mean_over_scales():
  # Constant images: any resize keeps the pixel values, so the expected value is exact.
  images = np.broadcast_to(np.array([0.3, 0.7], np.float32)[:, None, None, None], (2, 8, 8, 3))

  def embed_fn(x):  # depends on the resolution, so every scale contributes differently
    return np.stack([x.shape[1] * np.ones(x.shape[0]), x.mean(axis=(1, 2, 3))], axis=1)

  out = np.asarray(LM.multiscale_embed(embed_fn, images, scales=(1.0, 0.5), power=3.0))
  e1 = np.stack([8 * np.ones(2), [0.3, 0.7]], 1)
  e2 = np.stack([4 * np.ones(2), [0.3, 0.7]], 1)
  expected = ((e1 ** 3 + e2 ** 3) / 2) ** (1 / 3)
  expected /= np.linalg.norm(expected, axis=1, keepdims=True)
  np.testing.assert_allclose(out, expected, rtol=1e-5)
