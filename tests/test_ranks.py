"""Step functions, the rank primitives and the safe reduction (suprank_jax.losses.ranks)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.losses import ranks
from tests.conftest import assert_close_to_reference


def _value_and_grad(fn, x, weights):
  """``fn(x)`` and ``d sum(weights * fn(x)) / dx`` in one compiled call (eager ops compile one by one)."""
  return jax.jit(lambda v: (fn(v), jax.grad(lambda u: jnp.sum(weights * fn(u)))(v)))(x)


def step_rank(x, lower, **surrogate):
  """The reference's ``step_rank``: the SupRank surrogate where ``lower``, Heaviside elsewhere."""
  return jnp.where(lower, ranks.suprank_surrogate(x, **surrogate), ranks.heaviside(x))


def step_hrank(x, higher, **surrogate):
  """The reference's ``step_hrank``: HAPPIER's rank+ step where ``higher``, Heaviside elsewhere."""
  return jnp.where(higher, ranks.hrank_surrogate(x, **surrogate), ranks.heaviside(x))


def dense_ranks(scores, levels=None, *, where=None, step_fn=ranks.heaviside, lower_step_fn=None):
  """``[B, M, M]`` ranks written out: ``1 + sum_{j != i, where_j} r(s_j - s_i)`` (the reference's batch path)."""
  x = scores[:, None, :] - scores[:, :, None]
  steps = step_fn(x)
  if lower_step_fn is not None:
    steps = jnp.where(levels[:, None, :] < levels[:, :, None], lower_step_fn(x), steps)
  mask = ~jnp.eye(scores.shape[1], dtype=bool)[None]
  if where is not None:
    mask = mask & where[:, None, :]
  return 1.0 + jnp.sum(jnp.where(mask, steps, 0.0), axis=-1)


# ---------------------------------------------------------------------------------------------- golden


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tau_sigmoid_and_heaviside_match_reference(golden, x64, dtype):
  _, arrays = golden("surrogate_tau_sigmoid_heaviside")
  x = jnp.asarray(arrays["x"], dtype)
  rtol = 1e-5 if dtype == "float32" else 1e-12
  for tau, key in ((0.01, "tau0p01"), (1.0, "tau1p0")):
    value, grad = _value_and_grad(functools.partial(ranks.tau_sigmoid, tau=tau), x, 1.0)
    assert_close_to_reference(value, arrays[f"tau_sigmoid_{key}"], rtol=rtol, name=key)
    assert_close_to_reference(grad, arrays[f"grad_tau_sigmoid_{key}"], rtol=rtol, name=f"grad {key}")
  np.testing.assert_array_equal(ranks.heaviside(x), arrays["heaviside"])
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(ranks.heaviside(v)))(x), 0.0)


def test_tau_sigmoid_gradient_is_exactly_zero_beyond_fifty_tau(x64):
  x = jnp.array([-0.51, -0.49, 0.49, 0.51], jnp.float64)
  grad = jax.grad(lambda v: jnp.sum(ranks.tau_sigmoid(v, tau=0.01)))(x)
  assert grad[0] == 0.0 and grad[3] == 0.0
  assert grad[1] > 0.0 and grad[2] > 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_rank_and_step_hrank_batched_match_reference(golden, x64, dtype):
  case, arrays = golden("surrogate_step_rank_batched")
  hp = case["hyperparameters"]
  x = jnp.asarray(arrays["x"], dtype)
  target = jnp.asarray(arrays["target"])
  weights = jnp.asarray(arrays["grad_weights"], dtype)
  lower = target[:, :, None] > target[:, None, :]  # x[q, i, j] = s_qj - s_qi
  rtol = 1e-5 if dtype == "float32" else 1e-12
  for name, variant in hp["step_rank_variants"].items():
    value, grad = _value_and_grad(functools.partial(step_rank, lower=lower, **variant), x, weights)
    assert_close_to_reference(value, arrays[f"step_rank_{name}"], rtol=rtol, name=name)
    assert_close_to_reference(grad, arrays[f"grad_step_rank_{name}"], rtol=rtol, name=f"grad {name}")
  higher = target[:, :, None] < target[:, None, :]
  for name, variant in hp["step_hrank_variants"].items():
    value, grad = _value_and_grad(functools.partial(step_hrank, higher=higher, **variant), x, weights)
    assert_close_to_reference(value, arrays[f"step_hrank_{name}"], rtol=rtol, name=name)
    assert_close_to_reference(grad, arrays[f"grad_step_hrank_{name}"], rtol=rtol, name=f"grad {name}")


def test_step_rank_general_form_matches_reference(golden, x64):
  case, arrays = golden("surrogate_step_rank_general")
  hp = case["hyperparameters"]
  x = jnp.asarray(arrays["x"])
  target = np.asarray(arrays["target"])
  weights = jnp.asarray(arrays["grad_weights"])
  # Rows are the items with target > 0, in index order.
  row_target = target[target > 0][:, None]
  lower = target[None, :] < row_target
  for name, variant in hp["step_rank_variants"].items():
    value, grad = _value_and_grad(functools.partial(step_rank, lower=lower, **variant), x, weights)
    assert_close_to_reference(value, arrays[f"step_rank_{name}"], rtol=1e-12, name=name)
    assert_close_to_reference(grad, arrays[f"grad_step_rank_{name}"], rtol=1e-12, name=f"grad {name}")
  fn = functools.partial(step_hrank, higher=target[None, :] > row_target, **hp["step_hrank"])
  value, grad = _value_and_grad(fn, x, weights)
  assert_close_to_reference(value, arrays["step_hrank_gamma0p5"], rtol=1e-12)
  assert_close_to_reference(grad, arrays["grad_step_hrank_gamma0p5"], rtol=1e-12)


# -------------------------------------------------------------------------------------------- properties


def _brute_force_ranks(scores, where=None):
  b, m = scores.shape
  where = np.ones((b, m), bool) if where is None else where
  out = np.ones((b, m))
  for q in range(b):
    for i in range(m):
      for j in range(m):
        if j != i and where[q, j] and scores[q, j] >= scores[q, i]:
          out[q, i] += 1
  return out


def test_heaviside_ranks_equal_brute_force_with_ties_and_mask():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 5, (4, 9)).astype(np.float32) / 4  # many exact ties
  where = rng.random((4, 9)) > 0.2
  expected = _brute_force_ranks(scores, where)
  np.testing.assert_array_equal(ranks.approx_ranks(jnp.asarray(scores), where=jnp.asarray(where)), expected)
  index = jnp.asarray(np.stack([rng.permutation(9)[:5] for _ in range(4)]).astype(np.int32))
  got = ranks.item_ranks(jnp.asarray(scores), index, where=jnp.asarray(where))
  np.testing.assert_array_equal(got, np.take_along_axis(expected, np.asarray(index), -1))


def test_ties_count_as_ranked_before():
  # H(0) = 1: of two tied items, each counts the other as ahead.
  np.testing.assert_array_equal(ranks.approx_ranks(jnp.array([[0.5, 0.5, 0.1]])), [[2.0, 2.0, 3.0]])


def test_item_ranks_in_chunks_equal_dense_ranks_and_gradients():
  rng = np.random.default_rng(1)
  scores = jnp.asarray(rng.normal(size=(3, 50)) * 0.1, jnp.float32)
  levels = jnp.asarray(rng.integers(0, 3, (3, 50)), jnp.int32)
  where = jnp.asarray(rng.random((3, 50)) > 0.1)
  index = jnp.asarray(np.stack([rng.permutation(50)[:7] for _ in range(3)]).astype(np.int32))
  steps = dict(step_fn=ranks.heaviside, lower_step_fn=functools.partial(ranks.suprank_surrogate))

  def dense(s):
    return jnp.take_along_axis(dense_ranks(s, levels, where=where, **steps), index, -1)

  w = jnp.asarray(rng.normal(size=(3, 7)), jnp.float32)
  expected, expected_grad = _value_and_grad(dense, scores, w)
  for block in (10**9, 3 * 7 * 8, 3 * 2 * 256):  # one block; scanned chunks of 8; split items
    fn = functools.partial(ranks.item_ranks, item_index=index, levels=levels, where=where, pair_block=block, **steps)
    value, grad = _value_and_grad(fn, scores, w)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)


def test_gather_items_puts_relevant_items_first_in_index_order():
  rel = jnp.array([[0.0, 2.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 3.0]])
  index, valid = ranks.gather_items(rel, 3)
  np.testing.assert_array_equal(index[0], [1, 3, 4])
  np.testing.assert_array_equal(valid, [[True, True, True], [True, False, False]])
  assert index[1, 0] == 4 and len(set(np.asarray(index[1]).tolist())) == 3


def test_safe_reduce_leaves_invalid_queries_out_without_nan():
  values = jnp.array([0.2, jnp.nan, 0.6])
  where = jnp.array([True, False, True])
  assert float(ranks.safe_reduce(values, where=where)) == pytest.approx(0.4)
  assert float(ranks.safe_reduce(values, where=jnp.zeros(3, bool))) == 0.0
  grad = jax.grad(lambda v: ranks.safe_reduce(v, where=jnp.zeros(3, bool)))(jnp.ones(3))
  np.testing.assert_array_equal(grad, 0.0)
  assert np.isnan(ranks.safe_reduce(values, where=jnp.ones(3, bool)))  # a real NaN propagates
  np.testing.assert_allclose(ranks.safe_reduce(values, where=where, reduce_fn=None), [0.2, 0.0, 0.6], rtol=1e-6)
  assert float(ranks.safe_reduce(values, where=where, reduce_fn=jnp.sum)) == pytest.approx(0.8)


def test_nonzero_mean_averages_the_strictly_positive_terms_like_pml():
  values = jnp.array([[0.0, 0.2, 0.4], [0.0, 0.0, 0.0]])
  assert float(ranks.nonzero_mean(values)) == pytest.approx(0.3)
  np.testing.assert_allclose(ranks.nonzero_mean(values, axis=-1), [0.3, 0.0], rtol=1e-6)
  mask = jnp.array([[True, False, True], [True, True, True]])
  assert float(ranks.safe_reduce(values, where=mask, reduce_fn=ranks.nonzero_mean)) == pytest.approx(0.4)
  grad = jax.grad(lambda v: ranks.safe_reduce(v, where=jnp.zeros((2, 3), bool), reduce_fn=ranks.nonzero_mean))(values)
  np.testing.assert_array_equal(grad, 0.0)


def test_rank_loss_gives_the_score_function_the_ranked_relevant_items():
  # A reciprocal-rank score: the rank of the best relevant item, exact with the Heaviside step.
  def reciprocal_rank(items):
    best = jnp.min(jnp.where(items.valid, items.rank, jnp.inf), axis=-1)
    has_relevant = jnp.any(items.valid, axis=-1)
    return jnp.where(has_relevant, 1.0 / best, 0.0), has_relevant

  scores = jnp.array([[0.9, 0.2, 0.5, 0.7], [0.1, 0.8, 0.3, 0.4], [0.3, 0.2, 0.1, 0.0]])
  levels = jnp.array([[0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
  per_query = ranks.rank_loss(scores, levels, score_fn=reciprocal_rank, reduce_fn=None)
  np.testing.assert_allclose(per_query, [1 - 1 / 2, 1 - 1 / 4, 0.0], rtol=1e-6)
  # The third query has no relevant item: left out of the mean.
  assert float(ranks.rank_loss(scores, levels, score_fn=reciprocal_rank)) == pytest.approx((0.5 + 0.75) / 2)


def test_suprank_surrogate_variants():
  x = jnp.array([-0.1, 0.0, 0.02, 0.05, 0.2])
  sig = 1 / (1 + np.exp(-np.clip(np.asarray(x) / 0.01, -50, 50)))
  got = ranks.suprank_surrogate(x, offset=None)
  offset = 1 / (1 + np.exp(-5.0)) + 0.5
  np.testing.assert_allclose(got, [sig[0], sig[1], 0.5 + sig[2], 0.5 + sig[3], 100 * 0.15 + offset], rtol=1e-6)
  np.testing.assert_allclose(
    ranks.suprank_surrogate(x, delta=None, offset=1.0), [sig[0], sig[1], 3.0, 6.0, 21.0], rtol=1e-6
  )
  np.testing.assert_allclose(ranks.suprank_surrogate(x, rho=-1), sig, rtol=1e-6)


def test_shape_mismatch_raises_value_error_naming_both_shapes():
  with pytest.raises(ValueError, match=r"levels must have the shape of scores \(2, 3\), got \(2, 4\)"):
    ranks.approx_ranks(jnp.zeros((2, 3)), jnp.zeros((2, 4), jnp.int32))
  with pytest.raises(ValueError, match="floating"):
    ranks.approx_ranks(jnp.zeros((2, 3), jnp.int32))
  with pytest.raises(ValueError, match=r"\[num_queries, num_items\]"):
    ranks.approx_ranks(jnp.zeros((3,)))
