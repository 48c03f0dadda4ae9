"""The weighted sum of losses and its config validation, on a registry of simple closed-form losses, and the
loss inputs (losses/inputs.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from suprank_jax.losses import combine
from suprank_jax.losses.inputs import batch_inputs, check_hierarchy_level, l2_normalize, memory_inputs


def _mean_score_loss(inputs, params=None, *, scale=1.0):
  return scale * jnp.mean(inputs.scores())


def _bias_loss(inputs, params, *, hierarchy_level=0):
  return jnp.sum(params["bias"]) + 0.0 * jnp.sum(inputs.embeddings)


def _bias_init(rng, *, embed_dim, num_classes):
  return {"bias": jnp.ones((num_classes, embed_dim))}


REGISTRY = {"mean_score": combine.LossDef(_mean_score_loss), "bias": combine.LossDef(_bias_loss, _bias_init)}


def _config(**entries):
  return ml_collections.ConfigDict(entries)


def _inputs():
  emb = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
  return batch_inputs(emb, jnp.array([[0, 0], [1, 0], [0, 0]], jnp.int32))


def test_weighted_sum_of_terms_and_logs():
  cfg = _config(mean_score={"weight": 0.5, "scale": 2.0}, other={"name": "mean_score", "weight": 0.25})
  total, logs = combine.weighted_loss({}, _inputs(), cfg, REGISTRY)
  mean = float(np.mean(np.asarray(_inputs().scores())))
  assert float(logs["mean_score"]) == pytest.approx(2 * mean)
  assert float(logs["other"]) == pytest.approx(mean)
  assert float(total) == pytest.approx(0.5 * 2 * mean + 0.25 * mean)


def test_loss_params_are_initialised_per_entry_and_level():
  cfg = _config(bias={"weight": 1.0, "hierarchy_level": 1})
  params = combine.init_loss_params(jax.random.PRNGKey(0), cfg, REGISTRY, embed_dim=4, num_classes_per_level=(7, 3))
  assert params["bias"]["bias"].shape == (3, 4)
  total, _ = combine.weighted_loss(params, _inputs(), cfg, REGISTRY)
  assert float(total) == pytest.approx(12.0)


@pytest.mark.parametrize(
  "cfg,match",
  [
    ({"nope": {"weight": 1.0}}, "unknown loss 'nope'"),
    ({"mean_score": {"scale": 1.0}}, "missing 'weight'"),
    ({"mean_score": {"weight": 1.0, "tau": 0.1}}, r"takes no hyper-parameter \['tau'\]"),
    ({}, "config.losses has no loss on"),
    ({"mean_score": {"weight": 0.0, "scale": 2.0}}, r"mean_score is off \(weight 0\) but sets \['scale'\]"),
    ({"mean_score": {"weight": -1.0}}, "must be >= 0"),
  ],
)
def test_bad_loss_config_names_the_entry(cfg, match):
  with pytest.raises(ValueError, match=match):
    combine.entries(_config(**cfg), REGISTRY)


def test_memory_inputs_block_gradients_into_the_memory():
  memory = jnp.array([[1.0, 0.0], [0.0, 1.0]])

  def f(queries, memory):
    inputs = memory_inputs(queries, jnp.zeros((1, 1), jnp.int32), memory, jnp.zeros((2, 1), jnp.int32))
    return jnp.sum(inputs.scores())

  assert float(jnp.abs(jax.grad(f, argnums=1)(jnp.ones((1, 2)), memory)).sum()) == 0.0
  np.testing.assert_allclose(jax.grad(f)(jnp.ones((1, 2)), memory), [[1.0, 1.0]])


def test_scores_are_float32_for_bf16_embeddings():
  inputs = batch_inputs(jnp.ones((2, 3), jnp.bfloat16), jnp.zeros((2, 1), jnp.int32))
  assert inputs.scores().dtype == jnp.float32


def test_inputs_validate_shapes():
  with pytest.raises(ValueError, match="same N"):
    batch_inputs(jnp.ones((3, 2)), jnp.zeros((2, 1), jnp.int32))
  with pytest.raises(ValueError, match="label levels"):
    memory_inputs(jnp.ones((1, 2)), jnp.zeros((1, 2), jnp.int32), jnp.ones((2, 2)), jnp.zeros((2, 1), jnp.int32))


def test_hierarchy_level_is_normalised_to_an_int_or_multi():
  assert check_hierarchy_level("MULTI", 2, name="x") == "multi"
  assert check_hierarchy_level(np.int64(1), 2, name="x") == 1 and isinstance(
    check_hierarchy_level(np.int64(1), 2, name="x"), int
  )
  with pytest.raises(ValueError, match="x: hierarchy_level=2 is out of range"):
    check_hierarchy_level(2, 2, name="x")
  with pytest.raises(ValueError, match="must be an int label column"):
    check_hierarchy_level("multi", 2, name="x", accepts="int")
  with pytest.raises(ValueError, match="must be 'multi'"):
    check_hierarchy_level(0, 2, name="x", accepts="multi")
  with pytest.raises(ValueError, match="an int label column or 'multi', got True"):
    check_hierarchy_level(True, 2, name="x")


def test_l2_normalize_is_torchs_with_a_finite_gradient_at_zero():
  x = jnp.array([[3.0, 4.0], [0.0, 0.0], [1e-13, 0.0]])
  np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0], [0.1, 0.0]], rtol=1e-6)  # / max(|x|, 1e-12)
  assert np.isfinite(jax.jacobian(lambda v: l2_normalize(v).sum())(x)).all()


def test_valid_pairs_drop_empty_slots_and_optionally_the_query_itself():
  inputs = _inputs()
  np.testing.assert_array_equal(inputs.valid_pairs(), np.ones((3, 3), bool))
  np.testing.assert_array_equal(inputs.valid_pairs(include_self=False), ~np.eye(3, dtype=bool))
  memory = memory_inputs(inputs.embeddings, inputs.labels, inputs.embeddings, inputs.labels, jnp.array([1, 0, 1], bool))
  np.testing.assert_array_equal(memory.valid_pairs(include_self=False), np.tile([True, False, True], (3, 1)))
  np.testing.assert_allclose(
    inputs.scores(normalize=True), l2_normalize(inputs.embeddings) @ l2_normalize(inputs.embeddings).T, rtol=1e-6
  )
