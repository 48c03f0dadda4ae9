"""Cross-batch memory: the reference queue replayed step by step, and the trainer's weighting rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.losses import pairwise, xbm
from suprank_jax.losses.inputs import batch_inputs, memory_inputs


@pytest.mark.parametrize("get_first", [False, True])
def test_queue_matches_the_reference_step_by_step(golden, get_first):
  case, arrays = golden("xbm_queue")
  hp = case["hyperparameters"]
  state = xbm.xbm_init(hp["queue_size"], hp["embedding_size"], hp["target_size"], dtype=jnp.float32)
  step_fn = jax.jit(lambda s, e, l: xbm.xbm_step(s, e, l, get_first=get_first))
  tag = f"getfirst{int(get_first)}"
  for step in range(hp["steps"]):
    feats = jnp.asarray(arrays["feats_seq"][step], jnp.float32)
    labels = jnp.asarray(arrays["labels_seq"][step])
    view, state = step_fn(state, feats, labels)
    valid = np.asarray(view.ref_where)
    np.testing.assert_allclose(
      np.asarray(view.ref_embeddings)[valid], arrays[f"{tag}_step{step}_feats"], rtol=1e-6, err_msg=f"step {step}"
    )
    np.testing.assert_array_equal(np.asarray(view.ref_labels)[valid], arrays[f"{tag}_step{step}_targets"])
    np.testing.assert_array_equal([int(state.ptr), int(state.count)], arrays[f"{tag}_step{step}_ptr_count"])
    # The valid slots are a prefix until the memory is full, so masking equals the reference's slicing.
    assert valid[: valid.sum()].all()


def test_wrap_overwrites_the_last_slots_like_the_reference():
  state = xbm.xbm_init(10, 1, 1)
  for step in range(3):
    state = xbm.xbm_update(state, jnp.full((4, 1), step + 1.0), jnp.full((4, 1), step))
  # step 0 -> [0, 4), step 1 -> [4, 8), step 2 wraps: written at [6, 10), ptr back to 0.
  np.testing.assert_array_equal(state.embeddings[:, 0], [1, 1, 1, 1, 2, 2, 3, 3, 3, 3])
  assert int(state.ptr) == 0 and int(state.count) == 12 and bool(state.where.all())


def test_count_is_clamped_and_update_does_not_retrace():
  state = xbm.xbm_init(8, 2, 2)
  update = jax.jit(xbm.xbm_update)
  for _ in range(60):
    state = update(state, jnp.ones((4, 2)), jnp.ones((4, 2), jnp.int32))
  assert int(state.count) == 8 + 100
  assert update._cache_size() == 1


def test_memory_holds_no_gradient():
  state = xbm.xbm_init(6, 3, 1)
  labels = jnp.zeros((2, 1), jnp.int32)

  def loss(e):
    view, _ = xbm.xbm_step(state, e, labels)
    return jnp.sum(view.ref_embeddings)  # only reachable through the memory copy

  np.testing.assert_array_equal(jax.grad(loss)(jnp.ones((2, 3))), 0.0)


def test_self_in_memory_marks_the_slots_just_written():
  state = xbm.xbm_init(10, 2, 1)
  for step in range(4):
    emb = jnp.asarray(np.random.default_rng(step).normal(size=(4, 2)), jnp.float32)
    view, state = xbm.xbm_step(state, emb, jnp.zeros((4, 1), jnp.int32), self_in_memory=True)
    idx = np.asarray(view.self_index)
    np.testing.assert_array_equal(np.asarray(view.ref_embeddings)[idx], emb)
    assert np.asarray(view.ref_where)[idx].all()
  plain, _ = xbm.xbm_step(state, emb, jnp.zeros((4, 1), jnp.int32))
  np.testing.assert_array_equal(plain.self_index, -1)


def test_init_and_update_validate_shapes():
  with pytest.raises(ValueError, match="size"):
    xbm.xbm_init(0, 4, 2)
  state = xbm.xbm_init(4, 3, 2)
  with pytest.raises(ValueError, match="embeddings"):
    xbm.xbm_update(state, jnp.ones((2, 5)), jnp.ones((2, 2), jnp.int32))
  with pytest.raises(ValueError, match="label levels"):
    xbm.xbm_update(state, jnp.ones((2, 3)), jnp.ones((2, 1), jnp.int32))
  with pytest.raises(ValueError, match="does not fit"):
    xbm.xbm_update(state, jnp.ones((5, 3)), jnp.ones((5, 2), jnp.int32))
  with pytest.raises(ValueError, match="integers"):
    xbm.xbm_update(state, jnp.ones((2, 3)), jnp.ones((2, 2)))


def test_activation_follows_one_based_epochs():
  # steps_per_epoch = 10, activate = 5: epochs 1..4 (steps 0..39) off, epoch 5 (step 40) on.
  assert not xbm.xbm_active(39, steps_per_epoch=10, activate=5)
  assert xbm.xbm_active(40, steps_per_epoch=10, activate=5)
  assert bool(jax.jit(lambda s: xbm.xbm_active(s, steps_per_epoch=10))(jnp.int32(45)))


def _batch_and_memory(seed=0):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(8, 4)).astype(np.float32)
  labels = np.stack([rng.integers(0, 3, 8), np.zeros(8, int)], 1)
  state = xbm.xbm_init(20, 4, 2)
  for _s in range(2):
    state = xbm.xbm_update(
      state,
      jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
      jnp.asarray(np.stack([rng.integers(0, 3, 8), np.zeros(8, int)], 1)),
    )
  mem_view, state = xbm.xbm_step(state, jnp.asarray(emb), jnp.asarray(labels))
  return jnp.asarray(emb), jnp.asarray(labels), mem_view, state


@pytest.mark.parametrize("factor,factor_true_loss", [(1.0, 1.0), (2.0, 0.5)])
def test_with_memory_weights_batch_and_memory_losses(factor, factor_true_loss):
  emb, labels, mem_view, state = _batch_and_memory()
  fn = pairwise.calibration_embedding_loss
  batch_value = float(fn(batch_inputs(emb, labels)))
  valid = np.asarray(state.where)
  memory_value = float(fn(memory_inputs(emb, labels, state.embeddings[valid], state.labels[valid])))
  expected = (factor_true_loss * batch_value + factor * memory_value) / (factor_true_loss + factor)
  for active in (True, jnp.bool_(True)):
    got = xbm.with_memory(
      fn, batch_inputs(emb, labels), mem_view, active=active, factor=factor, factor_true_loss=factor_true_loss
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)
  got = xbm.with_memory(fn, batch_inputs(emb, labels), mem_view, active=jnp.bool_(False), factor=factor)
  np.testing.assert_allclose(got, batch_value, rtol=1e-6)


def test_with_memory_under_jit_and_grad_with_a_traced_activation():
  emb, labels, mem_view, _ = _batch_and_memory(1)

  def total(e, active):
    b = batch_inputs(e, labels)
    m = mem_view.replace(embeddings=e)
    return xbm.with_memory(pairwise.xbm_contrastive_embedding_loss, b, m, active=active, margin=0.2)

  g_on = jax.jit(jax.grad(total))(emb, jnp.bool_(True))
  g_off = jax.jit(jax.grad(total))(emb, jnp.bool_(False))
  g_batch = jax.grad(lambda e: pairwise.xbm_contrastive_embedding_loss(batch_inputs(e, labels), margin=0.2))(emb)
  g_mem = jax.grad(lambda e: pairwise.xbm_contrastive_embedding_loss(mem_view.replace(embeddings=e), margin=0.2))(emb)
  np.testing.assert_allclose(g_off, g_batch, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(g_on, (g_batch + g_mem) / 2, rtol=1e-5, atol=1e-7)


def test_update_and_step_work_in_float64(x64):
  # With jax_enable_x64 a Python 0 index is int64 while the write position is int32, which
  # dynamic_update_slice rejects: a float64 run with a memory used to crash on its first step.
  state = xbm.xbm_init(10, 3, 2, dtype=jnp.float64)
  step = jax.jit(xbm.xbm_step)
  for i in range(4):
    emb = jnp.full((4, 3), i + 1.0, jnp.float64)
    view, state = step(state, emb, jnp.full((4, 2), i, jnp.int32))
  assert view.ref_embeddings.dtype == jnp.float64
  # Steps 0, 1 at [0, 8); step 2 wraps to [6, 10); step 3 at [0, 4).
  np.testing.assert_array_equal(state.embeddings[:, 0], [4, 4, 4, 4, 2, 2, 3, 3, 3, 3])
  assert int(state.ptr) == 4 and bool(state.where.all())
