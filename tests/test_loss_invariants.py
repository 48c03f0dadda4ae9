"""Invariants of every registered loss (rax ``losses_test.py`` style), parametrised over ``losses.LOSSES``.

Each family's own tests check its values (golden vectors, oracles); the properties here hold for every
loss, whatever its family, through the one signature ``loss(inputs, params, **hyper_parameters)``:
masked memory slots equal sliced ones, an all-masked reference set gives a finite value and gradient,
jit equals eager, vmap equals a loop, the gradient is the derivative, bf16 inputs are computed in
float32, a step never recompiles, the per-query values are each query's loss alone, and the shared
options (``hierarchy_level``, ``include_self``, ``reduce_fn``) mean the same everywhere.
"""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jax_test_util

from suprank_jax import losses
from suprank_jax.losses.inputs import batch_inputs, memory_inputs

pytestmark = pytest.mark.usefixtures("fast_compile")

NAMES = sorted(losses.LOSSES)
BATCH, MEMORY, DIM, CLASSES = 6, 10, 5, 4
# The label row of every finest class (fine c has super-class c // 2), for CSL.
PROXY_LABELS = np.stack([np.arange(CLASSES), np.arange(CLASSES) // 2], 1)
# Hyper-parameters without a default that fits two-level labels.
HYPER_PARAMETERS = {"csl": dict(margins=(0.25, 0.45), proxy_labels=PROXY_LABELS)}


def _loss(name, **hyper_parameters):
  """``f(inputs, params, noise)``: loss ``name`` with ``hyper_parameters`` and the data its signature asks for
  (``noise``: black-box AP's ``[B, M]`` draw; the other losses ignore it)."""
  fn = losses.LOSSES[name].fn
  kwargs = {**HYPER_PARAMETERS.get(name, {}), **hyper_parameters}
  noisy = "normal_noise" in inspect.signature(fn).parameters
  return lambda inputs, params, noise: fn(inputs, params, **kwargs, **({"normal_noise": noise} if noisy else {}))


def _params(name, dtype=jnp.float32):
  init = losses.LOSSES[name].init_params
  if init is None:
    return None
  return jax.tree.map(lambda p: p.astype(dtype), init(jax.random.key(1), embed_dim=DIM, num_classes=CLASSES))


def _data(seed, n, dtype=np.float32, scale=0.5):
  rng = np.random.default_rng(seed)
  fine = rng.integers(0, CLASSES, n)
  return jnp.asarray(scale * rng.normal(size=(n, DIM)), dtype), jnp.asarray(np.stack([fine, fine // 2], 1), jnp.int32)


def _memory(seed):
  """Queries ``[B, D]``, their labels, a memory ``[M, D]`` and its labels."""
  return (*_data(seed, BATCH), *_data(seed + 1, MEMORY))


def _noise(rows, cols, seed=9):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(rows, cols)), jnp.float32)


@pytest.mark.parametrize("name", NAMES)
def test_masked_memory_slots_equal_sliced_memory(name):
  f, params = _loss(name), _params(name)
  emb, labels, memory, memory_labels = _memory(0)
  valid = np.array([1, 1, 0, 1, 0, 1, 1, 0, 1, 1], bool)
  garbage = jnp.where(valid[:, None], memory, 7.0)
  noise = _noise(BATCH, MEMORY)

  @jax.jit
  def both(e):
    masked = lambda v: f(memory_inputs(v, labels, garbage, memory_labels, jnp.asarray(valid)), params, noise)
    sliced = lambda v: f(memory_inputs(v, labels, memory[valid], memory_labels[valid]), params, noise[:, valid])
    return jax.value_and_grad(masked)(e), jax.value_and_grad(sliced)(e)

  (v1, g1), (v2, g2) = both(emb)
  np.testing.assert_allclose(v1, v2, rtol=1e-6)
  np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_all_masked_gives_finite_value_and_gradient(name):
  f, params = _loss(name), _params(name)
  emb, labels, _, memory_labels = _memory(2)
  empty = memory_inputs(emb, labels, jnp.zeros((MEMORY, DIM)), memory_labels, jnp.zeros(MEMORY, bool))
  value, grads = jax.jit(
    jax.value_and_grad(lambda e, p: f(empty.replace(embeddings=e), p, _noise(BATCH, MEMORY)), argnums=(0, 1))
  )(emb, params)
  assert np.isfinite(value)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager(name):
  # Eagerly the rank losses gather exactly the relevant items; under jit (traced labels) every item.
  f, params = _loss(name), _params(name)
  emb, labels = _data(4, BATCH)
  inputs = batch_inputs(emb, labels)
  np.testing.assert_allclose(
    jax.jit(f)(inputs, params, _noise(BATCH, BATCH)), f(inputs, params, _noise(BATCH, BATCH)), rtol=1e-6
  )


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_batches_equals_a_loop(name):
  f, params = _loss(name), _params(name)
  (emb_a, labels_a), (emb_b, labels_b) = _data(5, BATCH), _data(6, BATCH)
  noise = _noise(BATCH, BATCH)
  one = jax.jit(lambda e, l: f(batch_inputs(e, l), params, noise))
  stacked = jax.jit(jax.vmap(one))(jnp.stack([emb_a, emb_b]), jnp.stack([labels_a, labels_b]))
  np.testing.assert_allclose(stacked, [one(emb_a, labels_a), one(emb_b, labels_b)], rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name, x64):
  if name == "blackbox_ap":
    pytest.skip("black-box AP's gradient is by design not the derivative of its piecewise-constant ranks")
  f = _loss(name)
  emb, labels = _data(7, BATCH, np.float64)
  noise = _noise(BATCH, BATCH).astype(jnp.float64)
  args = (emb, _params(name, jnp.float64))
  fn = jax.jit(lambda e, p: f(batch_inputs(e, labels), p, noise))
  jax_test_util.check_grads(fn, args, order=1, modes=("rev",), eps=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_inputs_are_computed_in_float32(name):
  f, params = jax.jit(_loss(name)), _params(name)
  emb, labels, memory, memory_labels = _memory(8)
  low = lambda x: x.astype(jnp.bfloat16)
  value = f(
    memory_inputs(low(emb), labels, low(memory), memory_labels), jax.tree.map(low, params), _noise(BATCH, MEMORY)
  )
  assert value.dtype == jnp.float32
  up = lambda x: low(x).astype(jnp.float32)
  expected = f(
    memory_inputs(up(emb), labels, up(memory), memory_labels), jax.tree.map(up, params), _noise(BATCH, MEMORY)
  )
  np.testing.assert_allclose(value, expected, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_a_training_step_never_recompiles(name):
  chex.clear_trace_counter()  # chex counts the traces of every function named `step` together
  f, params = _loss(name), _params(name)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(e, l, p):
    return jax.value_and_grad(lambda e, p: f(batch_inputs(e, l), p, _noise(BATCH, BATCH)), argnums=(0, 1))(e, p)

  for seed in (10, 11, 12):  # new values of the same shapes: one trace
    emb, labels = _data(seed, BATCH)
    jax.block_until_ready(step(emb, labels, params))


@pytest.mark.parametrize("name", NAMES)
def test_per_query_values_are_each_querys_loss_alone(name):
  params = _params(name)
  emb, labels, memory, memory_labels = _memory(13)
  noise = _noise(BATCH, MEMORY)
  per_query = jax.jit(_loss(name, reduce_fn=None))(memory_inputs(emb, labels, memory, memory_labels), params, noise)
  assert per_query.shape == (BATCH,)
  alone = jax.jit(
    jax.vmap(lambda e, l, n: _loss(name)(memory_inputs(e[None], l[None], memory, memory_labels), params, n[None]))
  )(emb, labels, noise)
  # float32 cross-entropies of ~40 cancel to ~1e-5 on a well classified query: an absolute term.
  np.testing.assert_allclose(per_query, alone, rtol=1e-5, atol=1e-6 * np.abs(alone).max())


@pytest.mark.parametrize("name", NAMES)
def test_hierarchy_level_is_an_int_or_multi_in_any_case_checked_alike(name):
  default = inspect.signature(losses.LOSSES[name].fn).parameters["hierarchy_level"].default
  params = _params(name)
  inputs = batch_inputs(*_data(15, BATCH))
  call = lambda **level: jax.jit(_loss(name, **level))(inputs, params, _noise(BATCH, BATCH))
  for wrong in ("coarse", 2, True):  # labels have two columns, 0 and 1
    with pytest.raises(ValueError, match="hierarchy_level"):
      call(hierarchy_level=wrong)
  try:
    multi = call(hierarchy_level="multi")
  except ValueError as e:  # a loss on one label column
    assert "hierarchy_level must be an int label column" in str(e)
  else:
    np.testing.assert_allclose(call(hierarchy_level="MULTI"), multi, rtol=1e-6)
  if default != "multi":
    np.testing.assert_allclose(call(hierarchy_level=np.int64(default)), call(), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_shared_options_have_one_spelling_and_default(name):
  loss_def = losses.LOSSES[name]
  parameters = inspect.signature(loss_def.fn).parameters
  assert "hierarchy_level" in parameters and parameters["reduce_fn"].kind == inspect.Parameter.KEYWORD_ONLY
  # Every loss with a reference set counts each query among its own reference items by default.
  if loss_def.uses_reference or "include_self" in parameters:
    assert parameters["include_self"].default is True
  if loss_def.init_params is not None:
    assert set(loss_def.init_params(jax.random.key(0), embed_dim=DIM, num_classes=CLASSES)) == {"proxies"}
  assert "reduce_fn" not in losses.combine.default_config(name)
