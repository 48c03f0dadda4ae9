"""Proxy losses (cluster / normalised softmax, ArcFace, ProxyNCA++, CSL) against the reference vectors.

The invariants every loss shares are in tests/test_loss_invariants.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.losses import proxy
from suprank_jax.losses.inputs import batch_inputs
from tests.conftest import assert_close_to_reference

# (golden case, adapter, the case's name of the proxies (the reference's attribute), hyper-parameters).
# Every loss keeps them as params["proxies"].
GOLDEN = [
  ("cluster_batch", proxy.cluster_embedding_loss, "weight", dict(temperature=0.05)),
  ("arcface_batch", proxy.arcface_embedding_loss, "weight", dict(scale=30.0, margin=0.5, easy_margin=False)),
  ("proxynca_pp_batch", proxy.proxy_nca_pp_embedding_loss, "proxies", dict(scale=3.0)),
  ("csl_batch", proxy.csl_embedding_loss, "weight", dict(margins=(0.25, 0.45), scale=32.0, reduce_type="sum")),
]


def _golden_loss_and_grads(arrays, fn, key, kwargs, dtype):
  emb = jnp.asarray(arrays["embeddings"], dtype)
  labels = jnp.asarray(arrays["labels"])
  if "registered_labels" in arrays:
    kwargs = dict(kwargs, proxy_labels=jnp.asarray(arrays["registered_labels"]))
  f = lambda e, p: fn(batch_inputs(e, labels), {"proxies": p}, **kwargs)
  return jax.jit(jax.value_and_grad(f, (0, 1)))(emb, jnp.asarray(arrays[key], dtype))


@pytest.mark.parametrize("name,fn,key,kwargs", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_reference_in_float32(golden, name, fn, key, kwargs):
  _, arrays = golden(name)
  loss, (grad, grad_params) = _golden_loss_and_grads(arrays, fn, key, kwargs, jnp.float32)
  assert loss.dtype == jnp.float32
  assert_close_to_reference(loss, arrays["loss"], name=f"{name} loss")
  assert_close_to_reference(grad, arrays["grad_embeddings"], name=f"{name} grad")
  assert_close_to_reference(grad_params, arrays[f"grad_{key}"], name=f"{name} grad {key}")


@pytest.mark.parametrize("name,fn,key,kwargs", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_reference_in_float64(golden, x64, name, fn, key, kwargs):
  _, arrays = golden(name)
  loss, (grad, grad_params) = _golden_loss_and_grads(arrays, fn, key, kwargs, jnp.float64)
  np.testing.assert_allclose(loss, arrays["loss"], rtol=1e-9)
  for got, want in ((grad, arrays["grad_embeddings"]), (grad_params, arrays[f"grad_{key}"])):
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_arcface_case_exercises_the_far_branch(golden):
  _, arrays = golden("arcface_batch")
  x = arrays["embeddings"] / np.linalg.norm(arrays["embeddings"], axis=1, keepdims=True)
  w = arrays["weight"] / np.linalg.norm(arrays["weight"], axis=1, keepdims=True)
  cos_target = np.sum(x * w[arrays["labels"][:, 0]], axis=1)
  assert (cos_target <= math.cos(math.pi - 0.5)).any() and (cos_target > math.cos(math.pi - 0.5)).any()


def _softmax_ce(logits, labels):
  logits = logits - logits.max(1, keepdims=True)
  return np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(len(labels)), labels])


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cluster_loss_with_several_centres_matches_numpy(x64):
  rng = np.random.default_rng(0)
  x, w, y = rng.normal(size=(6, 4)), rng.normal(size=(3 * 2, 4)), rng.integers(0, 3, 6)
  logits = (x @ _unit(w).T).reshape(6, 3, 2)
  soft = np.exp(logits / 0.1) / np.exp(logits / 0.1).sum(-1, keepdims=True)
  expected = _softmax_ce((logits * soft).sum(-1) / 0.05, y)
  got = proxy.cluster_loss(jnp.asarray(x), jnp.asarray(y), jnp.asarray(w), num_centers=2)
  np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("easy_margin,ls_eps", [(True, 0.0), (False, 0.1)])
def test_arcface_options_match_numpy(x64, easy_margin, ls_eps):
  rng = np.random.default_rng(1)
  x, w, y = rng.normal(size=(8, 5)), rng.normal(size=(4, 5)), rng.integers(0, 4, 8)
  m = 0.5
  cos = _unit(x) @ _unit(w).T
  phi = np.cos(np.arccos(np.clip(cos, -1, 1)) + m)
  if easy_margin:
    phi = np.where(cos > 0, phi, cos)
  else:
    phi = np.where(cos > np.cos(np.pi - m), phi, cos - np.sin(np.pi - m) * m)
  one_hot = np.eye(4)[y] * (1 - ls_eps) + ls_eps / 4
  expected = _softmax_ce(30.0 * (one_hot * phi + (1 - one_hot) * cos), y)
  got = proxy.arcface_loss(jnp.asarray(x), jnp.asarray(y), jnp.asarray(w), easy_margin=easy_margin, ls_eps=ls_eps)
  np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_proxy_nca_pp_matches_squared_distance_softmax(x64):
  rng = np.random.default_rng(2)
  x, p, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)), rng.integers(0, 5, 7)
  d = ((3 * _unit(x))[:, None, :] - (3 * _unit(p))[None, :, :]) ** 2
  expected = _softmax_ce(-d.sum(-1), y)
  np.testing.assert_allclose(
    proxy.proxy_nca_pp_loss(jnp.asarray(x), jnp.asarray(y), jnp.asarray(p)), expected, rtol=1e-9
  )


def _numpy_csl_levels(x, labels, w, proxy_labels, margins, scale):
  sim = scale * (x @ _unit(w).T)
  out = []
  for level, margin in enumerate(margins):
    terms = []
    for i in range(len(x)):
      pos = proxy_labels[:, 0] == labels[i, 0]
      neg = proxy_labels[:, level] != labels[i, level]
      lse = lambda v: np.log(np.exp(v).sum()) if v.size else -np.inf
      z = lse(sim[i, neg]) + lse(-sim[i, pos]) + margin * scale
      terms.append(np.logaddexp(0.0, z))
    out.append(np.mean(terms))
  return np.array(out)


@pytest.mark.parametrize("reduce_type", ["sum", "mean", "none"])
def test_csl_reductions_match_numpy(x64, reduce_type):
  rng = np.random.default_rng(3)
  proxy_labels = np.stack([np.arange(6), np.array([0, 1, 0, 2, 1, 2]), np.array([0, 0, 0, 1, 0, 1])], 1)
  labels = proxy_labels[rng.integers(0, 6, 9)]
  x, w = 0.2 * rng.normal(size=(9, 4)), rng.normal(size=(6, 4))
  per_level = _numpy_csl_levels(x, labels, w, proxy_labels, (0.25, 0.35, 0.45), 4.0)
  expected = {"sum": per_level.sum(), "mean": per_level.mean(), "none": per_level}[reduce_type]
  got = proxy.csl_loss(
    jnp.asarray(x), jnp.asarray(labels), jnp.asarray(w), proxy_labels, scale=4.0, reduce_type=reduce_type
  )
  np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_csl_level_without_negative_proxies_is_finite():
  # Every proxy shares the coarse label: the level-1 negative set is empty (reference: softplus(-inf) = 0).
  proxy_labels = np.array([[0, 0], [1, 0], [2, 0]])
  x = jnp.asarray(np.random.default_rng(4).normal(size=(4, 3)), jnp.float32)
  labels = jnp.asarray(proxy_labels[[0, 1, 2, 0]])
  w = jnp.asarray(np.random.default_rng(5).normal(size=(3, 3)), jnp.float32)
  f = lambda x, w: proxy.csl_loss(x, labels, w, proxy_labels, margins=(0.25, 0.45), reduce_type="none")
  per_level = f(x, w)
  assert per_level[1] == 0.0 and per_level[0] > 0
  grads = jax.grad(lambda x, w: jnp.sum(f(x, w)), (0, 1))(x, w)
  assert all(np.isfinite(g).all() for g in grads)


INITS = {"cluster": proxy.cluster_init_params, "arcface": proxy.arcface_init_params, "csl": proxy.csl_init_params}


@pytest.mark.parametrize("name", sorted(INITS))
def test_weights_are_initialised_like_torch_linear(name):
  params = INITS[name](jax.random.key(0), embed_dim=64, num_classes=(50, 7))  # a per-level tuple uses level 0
  assert set(params) == {"proxies"}
  w = np.asarray(params["proxies"])
  assert w.shape == (50, 64) and w.dtype == np.float32
  assert np.abs(w).max() <= 1 / 8 and np.abs(w).max() > 0.12  # U(-1/sqrt(64), 1/sqrt(64))
  assert abs(w.std() - (1 / 8) / math.sqrt(3)) < 0.005


def test_cluster_centres_and_proxy_nca_init_shapes():
  assert proxy.cluster_init_params(jax.random.key(0), embed_dim=8, num_classes=5, num_centers=3)["proxies"].shape == (
    15,
    8,
  )
  p = np.asarray(proxy.proxy_nca_pp_init_params(jax.random.key(0), embed_dim=64, num_classes=500)["proxies"])
  assert p.shape == (500, 64) and abs(p.std() - 1 / 8) < 0.005


def _small_batch(seed=0):
  rng = np.random.default_rng(seed)
  fine = rng.integers(0, 4, 10)
  return rng.normal(size=(10, 6)).astype(np.float32), np.stack([fine, fine // 2], 1)


def test_csl_per_query_values_average_to_the_loss():
  emb, labels = _small_batch(3)
  proxy_labels = np.stack([np.arange(4), np.arange(4) // 2], 1)
  w = jnp.asarray(np.random.default_rng(4).normal(size=(4, 6)), jnp.float32)
  kw = dict(margins=(0.1, 0.2), reduce_type="none")
  per_query = proxy.csl_loss(jnp.asarray(emb), jnp.asarray(labels), w, proxy_labels, reduce_fn=None, **kw)
  assert per_query.shape == (10, 2)
  np.testing.assert_allclose(
    per_query.mean(0), proxy.csl_loss(jnp.asarray(emb), jnp.asarray(labels), w, proxy_labels, **kw), rtol=1e-6
  )


def test_shape_and_level_mismatches_raise():
  emb, labels = _small_batch(2)
  e, l = jnp.asarray(emb), jnp.asarray(labels)
  with pytest.raises(ValueError, match="proxies must be"):
    proxy.cluster_loss(e, l[:, 0], jnp.zeros((4, 5)))
  with pytest.raises(ValueError, match="labels .N. with the same N"):
    proxy.arcface_loss(e, l[:5, 0], jnp.zeros((4, 6)))
  with pytest.raises(ValueError, match="multiple of num_centers"):
    proxy.cluster_loss(e, l[:, 0], jnp.zeros((5, 6)), num_centers=2)
  with pytest.raises(ValueError, match="out of range"):
    proxy.proxy_nca_pp_embedding_loss(batch_inputs(e, l), {"proxies": jnp.zeros((4, 6))}, hierarchy_level=2)
  with pytest.raises(ValueError, match="margins"):
    proxy.csl_loss(e, l, jnp.ones((4, 6)), np.zeros((4, 2), int))  # default margins are for 3 levels
  with pytest.raises(ValueError, match="proxy_labels must be"):
    proxy.csl_loss(e, l, jnp.ones((4, 6)), np.zeros((4, 3), int), margins=(0.1, 0.2))
  with pytest.raises(ValueError, match="needs proxy_labels"):
    proxy.csl_embedding_loss(batch_inputs(e, l), {"proxies": jnp.ones((4, 6))}, margins=(0.1, 0.2))
  with pytest.raises(ValueError, match="must be .multi."):
    proxy.csl_embedding_loss(batch_inputs(e, l), {"proxies": jnp.ones((4, 6))}, hierarchy_level=0)
  with pytest.raises(ValueError, match="must be an int label column"):
    proxy.cluster_embedding_loss(batch_inputs(e, l), {"proxies": jnp.ones((4, 6))}, hierarchy_level="multi")
  for spelling in ("MULTI", "Multi"):  # the reference's configs write MULTI
    proxy.csl_embedding_loss(
      batch_inputs(e, l),
      {"proxies": jnp.ones((4, 6))},
      hierarchy_level=spelling,
      margins=(0.1, 0.2),
      proxy_labels=np.stack([np.arange(4), np.arange(4) // 2], 1),
    )
