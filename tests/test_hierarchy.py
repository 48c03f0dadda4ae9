"""Pair levels and relevances against the golden vectors and a brute-force loop."""

import numpy as np
import pytest

from suprank_jax import hierarchy
from tests.conftest import golden_case_names


def test_pair_levels_matches_reference_label_matrix(golden):
  _, arrays = golden("create_label_matrix")
  labels, other = arrays["labels"], arrays["other_labels"]
  np.testing.assert_array_equal(hierarchy.pair_levels(labels, other), arrays["label_matrix_level_MULTI"])
  for level in range(3):
    np.testing.assert_array_equal(
      hierarchy.pair_levels(labels, other, level=level), arrays[f"label_matrix_level_{level}"]
    )


@pytest.mark.parametrize("name", golden_case_names("relevance"))
def test_relevance_matches_reference(golden, name):
  case, arrays = golden(name)
  hp = case["hyperparameters"]
  levels = hierarchy.pair_levels(arrays["labels"], arrays["other_labels"])
  np.testing.assert_array_equal(levels, arrays["level_matrix"])
  num_levels = hp["n_levels"]
  counts = hierarchy.level_counts(levels, num_levels)
  table = np.asarray(hierarchy.relevance_table(counts, kind=hp["type"], alpha=hp["alpha"]))
  expected_table = arrays["relevance_table"]
  finite = np.isfinite(expected_table)  # 'map' leaves +inf at levels absent from a row.
  np.testing.assert_allclose(table[finite], expected_table[finite], rtol=1e-6)
  rel = hierarchy.relevance_matrix(levels, num_levels, kind=hp["type"], alpha=hp["alpha"])
  np.testing.assert_allclose(rel, arrays["relevance_matrix"], rtol=1e-6)


def test_pop_relevance_brute_force():
  rng = np.random.default_rng(0)
  labels = np.stack([rng.integers(0, 6, 20), rng.integers(0, 2, 20)], 1)
  labels[:, 1] = labels[:, 0] % 2  # consistent tree
  levels = np.asarray(hierarchy.pair_levels(labels))
  rel = np.asarray(hierarchy.relevance_matrix(levels, 2, kind="pop", alpha=0.5))
  for i in range(20):
    for j in range(20):
      v = levels[i, j]
      expected = 0.0 if v == 0 else (v / 1) ** 0.5 / np.sum(levels[i] == v)
      assert rel[i, j] == pytest.approx(expected, rel=1e-6)


def test_where_excludes_items_from_counts_and_relevance():
  labels = np.array([[0, 0], [0, 0], [1, 0], [2, 1]])
  levels = hierarchy.pair_levels(labels)
  where = np.ones((4, 4), bool)
  where[0, 1] = False
  rel = np.asarray(hierarchy.relevance_matrix(levels, 2, where=where))
  assert rel[0, 1] == 0.0
  assert rel[0, 0] == pytest.approx(2.0)  # the only remaining level-2 item of row 0


def test_mismatched_levels_raise():
  with pytest.raises(ValueError, match="different number of levels"):
    hierarchy.pair_levels(np.zeros((3, 2), int), np.zeros((3, 3), int))
  with pytest.raises(ValueError, match="integers"):
    hierarchy.pair_levels(np.zeros((3, 2)), np.zeros((3, 2)))
