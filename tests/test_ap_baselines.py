"""FastAP, soft-binning AP and black-box AP against the reference vectors and brute force.

The invariants every loss shares are in tests/test_loss_invariants.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.losses import ap_baselines as ab
from suprank_jax.losses.inputs import batch_inputs, binary_pairs, memory_inputs
from tests.conftest import assert_close_to_reference

GOLDEN = [
  ("fastap_batch", ab.fastap_embedding_loss, dict(num_bins=10, include_self=False)),  # PML drops the self pair
  ("softbinap_batch", ab.softbin_ap_embedding_loss, dict(num_bins=20, min_score=-1.0, max_score=1.0)),
  ("softbinap_memory", ab.softbin_ap_embedding_loss, dict(num_bins=20, min_score=-1.0, max_score=1.0)),
  ("blackboxap_batch", ab.blackbox_ap_embedding_loss, dict(lambda_val=4.0, margin=0.02)),
  ("blackboxap_memory", ab.blackbox_ap_embedding_loss, dict(lambda_val=4.0, margin=0.02)),
]


def _golden_loss_and_grad(arrays, fn, kwargs, dtype, self_score=None):
  emb = jnp.asarray(arrays["embeddings"], dtype)
  labels = jnp.asarray(arrays["labels"])
  if "normal_noise" in arrays:
    kwargs = dict(kwargs, normal_noise=jnp.asarray(arrays["normal_noise"], dtype))
  if "ref_embeddings" in arrays:
    ref, ref_labels = jnp.asarray(arrays["ref_embeddings"], dtype), jnp.asarray(arrays["ref_labels"])
    make = lambda e: memory_inputs(e, labels, ref, ref_labels)
  else:
    make = lambda e: batch_inputs(e, labels)
  if self_score is not None:
    # Sets every self score to exactly `self_score` (keeping its gradient).
    def fn(inputs, **kw):
      scores = inputs.scores()
      scores = scores - inputs.self_mask() * jax.lax.stop_gradient(scores - self_score)
      return ab.softbin_ap_loss(scores, inputs.labels[:, :1] == inputs.ref_labels[:, 0], **kw)

  return jax.jit(jax.value_and_grad(lambda e: fn(make(e), **kwargs)))(emb)


def _check_grad(name, arrays, fn, kwargs, dtype, grad, check):
  if name != "softbinap_batch":
    check(grad, arrays["grad_embeddings"])
    return
  # Batch mode puts every self score at ~1.0, on the kink between bins 0 and 1, where the gradient
  # depends on the last bit of the self score. Where the reference's self score is exactly 1.0 its
  # gradient is torch's at the kink (ties split, clamp inclusive; reproduced); on a few rows its
  # matmul rounded the self score off 1.0 (a last-bit difference no re-implementation controls, and
  # float32 self scores are never exactly 1.0), giving a one-sided gradient. So each row must match
  # the gradient with the self scores set to exactly 1.0 or the one with them just below.
  del grad
  _, at_kink = _golden_loss_and_grad(arrays, fn, kwargs, dtype, self_score=1.0)
  _, one_sided = _golden_loss_and_grad(arrays, fn, kwargs, dtype, self_score=1.0 - 1e-6)
  want = arrays["grad_embeddings"]
  atol = (1e-12 if dtype == jnp.float64 else 1e-6) * np.abs(want).max()
  rtol = 1e-9 if dtype == jnp.float64 else 1e-4
  ok = lambda g: (np.abs(np.asarray(g, np.float64) - want) <= rtol * np.abs(want) + atol).all(axis=1)
  assert (ok(at_kink) | ok(one_sided)).all(), np.flatnonzero(~(ok(at_kink) | ok(one_sided)))


@pytest.mark.parametrize("name,fn,kwargs", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_reference_in_float32(golden, name, fn, kwargs):
  _, arrays = golden(name)
  loss, grad = _golden_loss_and_grad(arrays, fn, kwargs, jnp.float32)
  assert loss.dtype == jnp.float32
  assert_close_to_reference(loss, arrays["loss"], name=f"{name} loss")
  _check_grad(
    name, arrays, fn, kwargs, jnp.float32, grad, lambda g, w: assert_close_to_reference(g, w, name=f"{name} grad")
  )


@pytest.mark.parametrize("name,fn,kwargs", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_reference_in_float64(golden, x64, name, fn, kwargs):
  _, arrays = golden(name)
  loss, grad = _golden_loss_and_grad(arrays, fn, kwargs, jnp.float64)
  np.testing.assert_allclose(loss, arrays["loss"], rtol=1e-9)
  _check_grad(
    name,
    arrays,
    fn,
    kwargs,
    jnp.float64,
    grad,
    lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12 * np.abs(w).max()),
  )


def _numpy_fastap(s, pos, valid, num_bins=10):
  d = 2 - 2 * s
  centres = np.linspace(0, 4, num_bins + 1)
  losses = []
  for i in range(s.shape[0]):
    pulse = np.maximum(0, 1 - np.abs(d[i][None, :] - centres[:, None]) / (4 / num_bins))
    hp = (pulse * (pos[i] & valid[i])).sum(1)
    h = (pulse * valid[i]).sum(1)
    if not (pos[i] & valid[i]).any():
      continue
    prod, tot = hp * np.cumsum(hp), np.cumsum(h)
    ok = (prod > 0) & (tot > 0)
    losses.append(1 - np.sum(prod[ok] / tot[ok]) / (pos[i] & valid[i]).sum())
  losses = [v for v in losses if v > 0]
  return np.mean(losses) if losses else 0.0


def test_fastap_matches_brute_force_with_a_mask(x64):
  rng = np.random.default_rng(0)
  s = rng.uniform(-1, 1, (5, 9))
  pos, valid = rng.uniform(size=(5, 9)) < 0.4, rng.uniform(size=(5, 9)) < 0.8
  got = ab.fastap_loss(jnp.asarray(s), jnp.asarray(pos), where=jnp.asarray(valid))
  np.testing.assert_allclose(got, _numpy_fastap(s, pos, valid), rtol=1e-10)


def _numpy_softbin(s, pos, valid, nq=20, lo=-1.0, hi=1.0):
  a = (nq - 1) / (hi - lo)
  centres = hi - np.arange(nq) / a
  aps = []
  for i in range(s.shape[0]):
    w = np.maximum(0, 1 - a * np.abs(s[i][None, :] - centres[:, None]))
    w[0] = np.where(s[i] >= hi, 1, w[0])
    w[-1] = np.where(s[i] <= lo, 1, w[-1])
    n_all, n_pos = (w * valid[i]).sum(1), (w * (pos[i] & valid[i])).sum(1)
    if n_pos.sum() == 0:
      continue
    aps.append(np.sum(np.cumsum(n_pos) / (1e-16 + np.cumsum(n_all)) * n_pos / n_pos.sum()))
  return 1 - np.mean(aps)


def test_softbin_ap_matches_brute_force_and_skips_queries_without_positives(x64):
  rng = np.random.default_rng(1)
  s = rng.uniform(-1.2, 1.2, (5, 11))
  pos, valid = rng.uniform(size=(5, 11)) < 0.4, rng.uniform(size=(5, 11)) < 0.8
  pos[2] = False  # reference: NaN; here: left out of the mean
  got = ab.softbin_ap_loss(jnp.asarray(s), jnp.asarray(pos), where=jnp.asarray(valid), num_bins=7)
  np.testing.assert_allclose(got, _numpy_softbin(s, pos, valid, nq=7), rtol=1e-10)


def _numpy_exact_ap(s, pos):
  aps = []
  for i in range(s.shape[0]):
    order = np.argsort(-s[i])
    hits = pos[i][order]
    ranks = np.arange(1, len(order) + 1)
    aps.append(np.sum(np.cumsum(hits)[hits] / ranks[hits]) / (hits.sum() + 1e-5))
  return 1 - np.mean(aps)


def test_blackbox_ap_without_perturbation_is_one_minus_exact_map(x64):
  rng = np.random.default_rng(2)
  s, pos = rng.normal(size=(6, 13)), rng.uniform(size=(6, 13)) < 0.3
  got = ab.blackbox_ap_loss(jnp.asarray(s), jnp.asarray(pos), jnp.zeros((6, 13)), margin=0.0)
  np.testing.assert_allclose(got, _numpy_exact_ap(s, pos), rtol=1e-7)  # float32 ranks, as the reference


def test_blackbox_rank_gradient_is_the_interpolated_rank_difference():
  rng = np.random.default_rng(3)
  s = rng.normal(size=(3, 8)).astype(np.float32)
  g = rng.normal(size=(3, 8)).astype(np.float32)
  ranks, vjp = jax.vjp(lambda x: ab.blackbox_ranks(x, jnp.ones((3, 8), bool), 4.0), jnp.asarray(s))
  rank = lambda x: (np.argsort(np.argsort(-x, axis=1), axis=1) + 1) / 8.0
  np.testing.assert_allclose(ranks, rank(s), rtol=1e-7)
  np.testing.assert_allclose(vjp(jnp.asarray(g))[0], -(rank(s) - rank(s + 4.0 * g)) / 4.0, rtol=1e-6, atol=1e-7)


def test_blackbox_adapter_needs_exactly_one_source_of_noise():
  inputs = batch_inputs(jnp.eye(4), jnp.array([[0, 0], [0, 0], [1, 0], [1, 0]]))
  with pytest.raises(ValueError, match="exactly one"):
    ab.blackbox_ap_embedding_loss(inputs)
  with pytest.raises(ValueError, match="exactly one"):
    ab.blackbox_ap_embedding_loss(inputs, rng=jax.random.key(0), normal_noise=jnp.zeros((4, 4)))
  a = ab.blackbox_ap_embedding_loss(inputs, rng=jax.random.key(0))
  b = ab.blackbox_ap_embedding_loss(inputs, normal_noise=jax.random.normal(jax.random.key(0), (4, 4)))
  np.testing.assert_allclose(a, b)


def _random_memory(seed, batch=6, mem=10, dim=5):
  rng = np.random.default_rng(seed)
  unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
  emb, mem_emb = unit(rng.normal(size=(batch, dim))), unit(rng.normal(size=(mem, dim)))
  labels = np.stack([rng.integers(0, 3, batch), np.zeros(batch, int)], 1)
  mem_labels = np.stack([rng.integers(0, 3, mem), np.zeros(mem, int)], 1)
  return emb, labels, mem_emb, mem_labels


def test_fastap_includes_the_self_pair_by_default_and_drops_it_like_the_reference_on_request():
  emb, labels, _, _ = _random_memory(5, batch=8)
  inputs = batch_inputs(jnp.asarray(emb), jnp.asarray(labels))
  positives, where = binary_pairs(inputs)
  scores = inputs.scores(normalize=True)
  np.testing.assert_allclose(
    ab.fastap_embedding_loss(inputs), ab.fastap_loss(scores, positives, where=where), rtol=1e-6
  )
  without_self = where & ~jnp.eye(8, dtype=bool)
  np.testing.assert_allclose(
    ab.fastap_embedding_loss(inputs, include_self=False),
    ab.fastap_loss(scores, positives & without_self, where=without_self),
    rtol=1e-6,
  )


def test_shape_and_level_mismatches_raise():
  z = jnp.zeros((3, 4))
  with pytest.raises(ValueError, match="positives must have the shape"):
    ab.fastap_loss(z, jnp.zeros((3, 5), bool))
  with pytest.raises(ValueError, match="where must have the shape"):
    ab.softbin_ap_loss(z, jnp.zeros((3, 4), bool), where=jnp.zeros((4, 3), bool))
  with pytest.raises(ValueError, match="noise must have the shape"):
    ab.blackbox_ap_loss(z, jnp.zeros((3, 4), bool), jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match="num_bins"):
    ab.softbin_ap_loss(z, jnp.zeros((3, 4), bool), num_bins=1)
  emb, labels, mem_emb, mem_labels = _random_memory(4)
  with pytest.raises(ValueError, match="out of range"):
    ab.softbin_ap_embedding_loss(batch_inputs(jnp.asarray(emb), jnp.asarray(labels)), hierarchy_level=3)
  with pytest.raises(ValueError, match="levels"):
    ab.fastap_embedding_loss(
      memory_inputs(jnp.asarray(emb), jnp.asarray(labels), jnp.asarray(mem_emb), jnp.asarray(mem_labels[:, :1]))
    )
