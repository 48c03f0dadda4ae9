"""Calibration, XBM contrastive and triplet losses against the reference vectors and brute force.

The invariants every loss shares are in tests/test_loss_invariants.py."""

import functools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from suprank_jax.losses import pairwise, ranks
from suprank_jax.losses.inputs import LossInputs, batch_inputs, binary_pairs, memory_inputs
from tests.conftest import assert_close_to_reference

# (golden case, adapter, hyper-parameters from the case's config).
GOLDEN = [
  ("calibration_batch", pairwise.calibration_embedding_loss, dict(pos_margin=0.9, neg_margin=0.6)),
  (
    "calibration_batch_noref",
    pairwise.calibration_embedding_loss,
    dict(pos_margin=0.9, neg_margin=0.6, include_self=False),
  ),
  ("calibration_memory", pairwise.calibration_embedding_loss, dict(pos_margin=0.9, neg_margin=0.6)),
  ("xbm_loss_batch", pairwise.xbm_contrastive_embedding_loss, dict(margin=0.5)),
  ("xbm_loss_memory", pairwise.xbm_contrastive_embedding_loss, dict(margin=0.5)),
  ("triplet_batch", pairwise.triplet_embedding_loss, dict(margin=0.05)),
  ("triplet_memory", pairwise.triplet_embedding_loss, dict(margin=0.05)),
  ("triplet_semihard_batch", pairwise.triplet_embedding_loss, dict(margin=0.05, semihard=True, include_self=True)),
]


def _golden_loss_and_grad(arrays, fn, kwargs, dtype):
  emb = jnp.asarray(arrays["embeddings"], dtype)
  labels = jnp.asarray(arrays["labels"])
  if "ref_embeddings" in arrays:
    ref, ref_labels = jnp.asarray(arrays["ref_embeddings"], dtype), jnp.asarray(arrays["ref_labels"])
    make = lambda e: memory_inputs(e, labels, ref, ref_labels)
  else:
    make = lambda e: batch_inputs(e, labels)
  return jax.jit(jax.value_and_grad(lambda e: fn(make(e), **kwargs)))(emb)


@pytest.mark.parametrize("name,fn,kwargs", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_reference_in_float32(golden, name, fn, kwargs):
  _, arrays = golden(name)
  loss, grad = _golden_loss_and_grad(arrays, fn, kwargs, jnp.float32)
  assert loss.dtype == jnp.float32
  assert_close_to_reference(loss, arrays["loss"], name=f"{name} loss")
  assert_close_to_reference(grad, arrays["grad_embeddings"], name=f"{name} grad")


@pytest.mark.parametrize("name,fn,kwargs", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_reference_in_float64(golden, x64, name, fn, kwargs):
  _, arrays = golden(name)
  loss, grad = _golden_loss_and_grad(arrays, fn, kwargs, jnp.float64)
  np.testing.assert_allclose(loss, arrays["loss"], rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(
    grad, arrays["grad_embeddings"], rtol=1e-9, atol=1e-12 * max(1.0, np.abs(arrays["grad_embeddings"]).max())
  )


def test_golden_hyper_parameters_are_the_defaults(golden):
  case, _ = golden("calibration_batch")
  assert (case["hyperparameters"]["pos_margin"], case["hyperparameters"]["neg_margin"]) == (0.9, 0.6)
  assert float(
    pairwise.calibration_embedding_loss(batch_inputs(jnp.eye(3), jnp.array([[0, 0], [0, 0], [1, 0]])))
  ) == pytest.approx(0.9)  # 2 pos at 0 sim
  case, _ = golden("triplet_batch")
  assert case["hyperparameters"]["margin"] == 0.05


def test_semihard_miner_picks_the_anchor_itself_like_the_reference(golden):
  _, arrays = golden("triplet_semihard_batch")
  inputs = batch_inputs(jnp.asarray(arrays["embeddings"], jnp.float32), jnp.asarray(arrays["labels"]))
  positives, where = binary_pairs(inputs)
  pos, neg, keep = pairwise.easy_semihard_triplets(inputs.scores(normalize=True), positives, where=where)
  np.testing.assert_array_equal(np.flatnonzero(keep), arrays["mined_anchor"])
  np.testing.assert_array_equal(pos[keep], arrays["mined_positive"])
  np.testing.assert_array_equal(neg[keep], arrays["mined_negative"])


def _numpy_semihard_corrected(emb, labels, margin):
  """Brute force: easiest other positive, most similar negative less similar than it."""
  x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  s = x @ x.T
  terms = []
  for i in range(len(x)):
    pos = [j for j in range(len(x)) if j != i and labels[j] == labels[i]]
    if not pos:
      continue
    p = max(pos, key=lambda j: s[i, j])
    negs = [k for k in range(len(x)) if labels[k] != labels[i] and s[i, k] < s[i, p]]
    if not negs:
      continue
    n = max(negs, key=lambda k: s[i, k])
    terms.append(max(0.0, s[i, n] - s[i, p] + margin))
  terms = [t for t in terms if t > 0]
  return np.mean(terms) if terms else 0.0


def test_semihard_triplet_without_self_is_the_corrected_miner_matching_brute_force(golden, x64):
  _, arrays = golden("triplet_semihard_batch")
  emb, labels = arrays["embeddings"], arrays["labels"]
  for margin in (0.05, 0.3):
    expected = _numpy_semihard_corrected(emb, labels[:, 0], margin)
    assert expected > 0
    fn = jax.jit(functools.partial(pairwise.triplet_embedding_loss, margin=margin, semihard=True, include_self=False))
    value = fn(batch_inputs(jnp.asarray(emb), jnp.asarray(labels)))
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_corrected_semihard_triplet_has_a_nonzero_gradient(golden, x64):
  _, arrays = golden("triplet_semihard_batch")
  labels = jnp.asarray(arrays["labels"])
  fn = jax.jit(
    lambda e: pairwise.triplet_embedding_loss(batch_inputs(e, labels), semihard=True, margin=0.3, include_self=False)
  )
  grad = jax.grad(fn)(jnp.asarray(arrays["embeddings"]))
  assert np.abs(grad).max() > 1e-3
  jax.test_util.check_grads(fn, (jnp.asarray(arrays["embeddings"]),), order=1, modes=["rev"], eps=1e-6)


def _numpy_all_triplets(s, pos, neg, margin):
  terms = [
    max(0.0, s[i, k] - s[i, j] + margin)
    for i in range(s.shape[0])
    for j in range(s.shape[1])
    for k in range(s.shape[1])
    if pos[i, j] and neg[i, k]
  ]
  terms = [t for t in terms if t > 0]
  return np.mean(terms) if terms else 0.0


def test_all_triplets_match_brute_force_with_a_mask():
  rng = np.random.default_rng(0)
  s = rng.uniform(-1, 1, (4, 7))
  pos = rng.uniform(size=(4, 7)) < 0.4
  where = rng.uniform(size=(4, 7)) < 0.8
  value = pairwise.triplet_margin_loss(
    jnp.asarray(s, jnp.float32), jnp.asarray(pos), where=jnp.asarray(where), margin=0.2
  )
  np.testing.assert_allclose(value, _numpy_all_triplets(s, pos & where, ~pos & where, 0.2), rtol=1e-5)


def test_calibration_averages_each_group_over_its_nonzero_terms():
  s = jnp.array([[0.95, 0.5, 0.7, 0.1, 0.8]])
  pos = jnp.array([[True, True, True, False, False]])
  # positives: 0 (not counted), 0.4, 0.2 -> 0.3; negatives: 0 (not counted), 0.2 -> 0.2.
  np.testing.assert_allclose(pairwise.calibration_loss(s, pos), 0.5, rtol=1e-6)


def test_xbm_contrastive_drops_near_one_positives_and_easy_negatives():
  s = jnp.array([[1.0, 0.6, 0.4, 0.7], [0.2, 1.0, 0.9, 0.1]])
  pos = jnp.array([[True, True, False, False], [False, True, True, False]])
  # row 0: (1 - 0.6) + 0.7 = 1.1; row 1: (1 - 0.9) + 0 = 0.1; / 2
  np.testing.assert_allclose(pairwise.xbm_contrastive_loss(s, pos, margin=0.5), 0.6, rtol=1e-6)


def test_per_query_values_use_each_querys_own_pairs():
  # calibration: row 0 positives 0.4, 0.2 -> 0.3, negatives 0.2; row 1 positive 0.1, negatives none.
  s = jnp.array([[0.95, 0.5, 0.7, 0.1, 0.8], [0.8, 0.2, 0.3, 0.5, 0.4]])
  pos = jnp.array([[True, True, True, False, False], [True, False, False, False, False]])
  np.testing.assert_allclose(pairwise.calibration_loss(s, pos, reduce_fn=None), [0.5, 0.1], rtol=1e-6)
  # The default pools the pairs of all queries; jnp.mean counts the zero terms too.
  np.testing.assert_allclose(pairwise.calibration_loss(s, pos), (0.4 + 0.2 + 0.1) / 3 + 0.2, rtol=1e-6)
  np.testing.assert_allclose(
    pairwise.calibration_loss(s, pos, reduce_fn=jnp.mean), (0.6 + 0.1) / 4 + 0.2 / 6, rtol=1e-6
  )
  assert pairwise.calibration_loss(s, pos, reduce_fn=ranks.nonzero_mean) == pairwise.calibration_loss(s, pos)


def _random_memory(seed, batch=6, mem=10, dim=5, num_classes=3):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(batch, dim)).astype(np.float32)
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  labels = np.stack([rng.integers(0, num_classes, batch), np.zeros(batch, int)], 1)
  mem_emb = rng.normal(size=(mem, dim)).astype(np.float32)
  mem_emb /= np.linalg.norm(mem_emb, axis=1, keepdims=True)
  mem_labels = np.stack([rng.integers(0, num_classes, mem), np.zeros(mem, int)], 1)
  return emb, labels, mem_emb, mem_labels


def test_shape_mismatch_raises():
  with pytest.raises(ValueError, match=r"positives must have the shape of scores \(3, 4\), got \(3, 5\)"):
    pairwise.calibration_loss(jnp.zeros((3, 4)), jnp.zeros((3, 5), bool))
  with pytest.raises(ValueError, match="where must have the shape"):
    pairwise.triplet_margin_loss(jnp.zeros((3, 4)), jnp.zeros((3, 4), bool), where=jnp.zeros((4, 3), bool))
  with pytest.raises(ValueError, match="floating"):
    pairwise.xbm_contrastive_loss(jnp.zeros((3, 4), jnp.int32), jnp.zeros((3, 4), bool))
  with pytest.raises(ValueError, match="mining"):
    pairwise.triplet_margin_loss(jnp.zeros((3, 4)), jnp.zeros((3, 4), bool), mining="hard")


def test_label_level_mismatch_raises():
  emb, labels, mem_emb, mem_labels = _random_memory(5)
  inputs = LossInputs(
    jnp.asarray(emb),
    jnp.asarray(labels),
    jnp.asarray(mem_emb),
    jnp.asarray(mem_labels[:, :1]),
    jnp.ones(len(mem_emb), bool),
    jnp.full(len(emb), -1, jnp.int32),
  )
  with pytest.raises(ValueError, match="levels"):
    pairwise.calibration_embedding_loss(inputs)
  with pytest.raises(ValueError, match="out of range"):
    pairwise.triplet_embedding_loss(batch_inputs(jnp.asarray(emb), jnp.asarray(labels)), hierarchy_level=2)
  with pytest.raises(ValueError, match="hierarchy_level"):
    pairwise.xbm_contrastive_embedding_loss(
      batch_inputs(jnp.asarray(emb), jnp.asarray(labels)), hierarchy_level="MULTI"
    )
