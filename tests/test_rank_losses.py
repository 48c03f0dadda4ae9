"""Rank losses (AP, H-AP, recall, NDCG): golden vectors of the reference and oracles.

The invariants every loss shares (masking, jit, gradients, dtypes, per-query values) are in
tests/test_loss_invariants.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.losses import ap, combine, hap, ndcg, ranks, recall
from suprank_jax.losses.inputs import batch_inputs, graded_pairs, memory_inputs
from tests.conftest import assert_close_to_reference, golden_case_names

pytestmark = pytest.mark.usefixtures("fast_compile")

EMBEDDING_LOSSES = {
  "supap": ap.sup_ap_embedding_loss,
  "smoothap": ap.smooth_ap_embedding_loss,
  "suphap": hap.sup_hap_embedding_loss,
  "smoothhap": hap.smooth_hap_embedding_loss,
  "suprecall": recall.sup_recall_embedding_loss,
  "smoothrecall": recall.smooth_recall_embedding_loss,
  "supndcg": ndcg.sup_ndcg_embedding_loss,
  "smoothndcg": ndcg.smooth_ndcg_embedding_loss,
}
_HP_KEYS = ("tau", "rho", "delta", "start", "offset", "at_k", "temp", "beta", "leak", "gamma", "with_hrank")
CASES = golden_case_names("ranking_loss")


def _setup(case, arrays):
  """(family, adapter kwargs, inputs builder) of a golden case."""
  family = case["name"].split("_")[0]
  hp = case["hyperparameters"]
  kwargs = {k: hp[k] for k in _HP_KEYS if k in hp}
  level = hp["hierarchy_level"]
  kwargs["hierarchy_level"] = "multi" if level == "MULTI" else level
  labels = jnp.asarray(arrays["labels"])
  if "ref_embeddings" in arrays:
    ref = jnp.asarray(arrays["ref_embeddings"])
    ref_labels = jnp.asarray(arrays["ref_labels"])
    make = lambda e: memory_inputs(e, labels, ref.astype(e.dtype), ref_labels)
  else:
    make = lambda e: batch_inputs(e, labels)
  # The exact static bound, so that jit traces the gathered path (plus the exact fallback).
  levels, _, _ = graded_pairs(make(jnp.asarray(arrays["embeddings"])), hierarchy_level=kwargs["hierarchy_level"])
  levels = np.asarray(levels)
  kwargs["max_positives"] = int((levels > 0).sum(-1).max())
  return family, kwargs, make


def dense_rank_plus(scores, levels, relevances, *, where, step_fn, higher_step_fn):
  """``[B, M]`` rank+ written out: ``rel_i + sum_{j != i} h(s_j - s_i) min(rel_i, rel_j)`` (the reference's path)."""
  rel = jnp.where(where, relevances.astype(scores.dtype), 0.0)
  x = scores[:, None, :] - scores[:, :, None]
  steps = step_fn(x)
  if higher_step_fn is not None:
    steps = jnp.where(levels[:, None, :] > levels[:, :, None], higher_step_fn(x), steps)
  weight = jnp.minimum(rel[:, :, None], rel[:, None, :])
  off_diagonal = ~jnp.eye(scores.shape[1], dtype=bool)[None]
  return rel + jnp.sum(jnp.where(off_diagonal, steps * weight, 0.0), axis=-1)


def _steps(family, kwargs):
  """Rank and rank+ step functions of a family: ((step, lower_step), (plus_step, higher_step))."""
  if family.startswith("smooth"):
    sig = functools.partial(ranks.tau_sigmoid, tau=kwargs["tau"])
    return (sig, None), (sig, None)
  lower = functools.partial(
    ranks.suprank_surrogate, **{k: kwargs[k] for k in ("tau", "rho", "delta", "start", "offset")}
  )
  higher = None
  if kwargs.get("with_hrank"):
    higher = functools.partial(ranks.hrank_surrogate, **{k: kwargs[k] for k in ("beta", "leak", "gamma")})
  return (ranks.heaviside, lower), (ranks.heaviside, higher)


def _call(fn, *args, **hp):
  """``fn(*args)`` with flat config hyper-parameters (``tau``, ``rho``, ...), bound as the trainer binds them."""
  return fn(*args, **combine.loss_kwargs(fn, hp))


_PURE = {
  "supap": lambda s, l, r, w, hp: _call(ap.sup_ap_loss, s, l, where=w, reduce_fn=None, **hp),
  "smoothap": lambda s, l, r, w, hp: _call(ap.smooth_ap_loss, s, l, where=w, reduce_fn=None, **hp),
  "suphap": lambda s, l, r, w, hp: _call(hap.sup_hap_loss, s, l, r, where=w, reduce_fn=None, **hp),
  "smoothhap": lambda s, l, r, w, hp: _call(hap.smooth_hap_loss, s, l, r, where=w, reduce_fn=None, **hp),
  "suprecall": lambda s, l, r, w, hp: _call(recall.sup_recall_loss, s, l, where=w, reduce_fn=None, **hp),
  "smoothrecall": lambda s, l, r, w, hp: _call(recall.smooth_recall_loss, s, l, where=w, reduce_fn=None, **hp),
  "supndcg": lambda s, l, r, w, hp: _call(ndcg.sup_ndcg_loss, s, l, where=w, reduce_fn=None, **hp),
  "smoothndcg": lambda s, l, r, w, hp: _call(ndcg.smooth_ndcg_loss, s, l, where=w, reduce_fn=None, **hp),
}


def _check_case(golden, name, dtype, rtol):
  case, arrays = golden(name)
  family, kwargs, make = _setup(case, arrays)
  fn = EMBEDDING_LOSSES[family]
  (step, lower), (plus_step, higher) = _steps(family, kwargs)
  pure_hp = {k: v for k, v in kwargs.items() if k != "hierarchy_level"}

  @jax.jit
  def everything(e):
    # One compiled call per case: eager ops compile one by one and dominate the test time.
    loss, grad = jax.value_and_grad(lambda v: _call(fn, make(v), **kwargs))(e)
    inputs = make(e)
    scores = inputs.scores()
    levels, rel, where = graded_pairs(inputs, hierarchy_level=kwargs["hierarchy_level"])
    out = dict(
      loss=loss,
      grad_embeddings=grad,
      levels=levels,
      relevances=rel,
      per_query_score=1.0 - _PURE[family](scores, levels, rel, where, pure_hp),
    )
    out["rank"] = ranks.approx_ranks(scores, levels, where=where, step_fn=step, lower_step_fn=lower)
    if "rank_plus" in arrays:
      out["rank_plus"] = dense_rank_plus(scores, levels, rel, where=where, step_fn=plus_step, higher_step_fn=higher)
    return out

  out = jax.device_get(everything(jnp.asarray(arrays["embeddings"], dtype)))
  assert out["loss"].dtype == dtype
  # The reference computes the NDCG ideal-rank terms in float32 (golden README): ~1e-7 there.
  score_rtol = max(rtol, 1e-6) if "ndcg" in family else rtol
  for key in ("loss", "per_query_score"):
    assert_close_to_reference(out[key], arrays[key], rtol=score_rtol, name=key)
  assert_close_to_reference(out["grad_embeddings"], arrays["grad_embeddings"], rtol=score_rtol, name="grad")
  for key in ("rank", "rank_plus"):
    if key in arrays:
      assert_close_to_reference(out[key], arrays[key], rtol=rtol, name=key)
  positives = out["levels"] > 0
  if "rank_of_positives" in arrays:
    got = out["rank"][positives].reshape(positives.shape[0], -1)  # index order, equal counts
    assert_close_to_reference(got, arrays["rank_of_positives"], rtol=rtol, name="rank_of_positives")
  if "dcg_terms" in arrays:
    dcg = (2.0 ** out["levels"].astype(np.float64) - 1) / np.log2(1 + out["rank"].astype(np.float64))
    assert_close_to_reference(dcg, arrays["dcg_terms"], rtol=rtol, name="dcg_terms")
  elif "relevances" in arrays:  # NDCG's relevances feed an unused normaliser of the reference
    assert_close_to_reference(out["relevances"], arrays["relevances"], rtol=1e-6, name="relevances")


@pytest.mark.parametrize("name", CASES)
def test_matches_reference_in_float32(golden, name):
  _check_case(golden, name, jnp.float32, rtol=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_matches_reference_in_float64(golden, x64, name):
  _check_case(golden, name, jnp.float64, rtol=1e-9)


# ------------------------------------------------------------------------------------------------ oracles


def _dense_hap_oracle(
  scores, levels, rel, where, *, tau=0.01, rho=100.0, delta=0.05, start=0.5, offset=1.44, smooth=False, reduce=True
):
  """The reference's batch^3 formulation, written out plainly in jnp."""
  x = scores[:, None, :] - scores[:, :, None]  # [b, i, j] = s_j - s_i
  m = scores.shape[1]
  off_diagonal = ~jnp.eye(m, dtype=bool)[None]
  sig = 1.0 / (1.0 + jnp.exp(-jnp.clip(x / tau, -50, 50)))
  heavy = jax.lax.stop_gradient((x >= 0).astype(x.dtype))
  if smooth:
    rank_step, plus_step = sig, sig
  else:
    surrogate = jnp.where(x <= 0, sig, jnp.where(x <= delta, start + sig, rho * (x - delta) + offset))
    rank_step = jnp.where(levels[:, None, :] < levels[:, :, None], surrogate, heavy)
    plus_step = heavy
  rel = jnp.where(where, rel, 0.0)
  rank = 1.0 + jnp.sum(jnp.where(off_diagonal & where[:, None, :], rank_step, 0.0), -1)
  weight = jnp.minimum(rel[:, :, None], rel[:, None, :])
  rank_plus = rel + jnp.sum(jnp.where(off_diagonal, plus_step * weight, 0.0), -1)
  norm = jnp.sum(rel, -1)
  score = jnp.sum(jnp.where(rel > 0, rank_plus / rank, 0.0), -1) / norm
  return jnp.mean(1.0 - score) if reduce else 1.0 - score


def _exact_ap(scores, positives):
  """AP of each row by sorting (continuous scores, no ties)."""
  out = []
  for s, p in zip(np.asarray(scores, np.float64), np.asarray(positives, bool)):
    order = np.argsort(-s)
    hits = p[order]
    precision = np.cumsum(hits) / np.arange(1, len(s) + 1)
    out.append(np.sum(precision * hits) / hits.sum())
  return np.array(out)


def _random_batch(seed, b=24, m=40, num_classes=6, scale=0.15):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(b, m)) * scale
  labels_q = rng.integers(0, num_classes, b)
  labels_m = rng.integers(0, num_classes, m)
  fine = labels_q[:, None] == labels_m[None, :]
  coarse = (labels_q[:, None] % 2) == (labels_m[None, :] % 2)
  levels = fine.astype(np.int32) + coarse.astype(np.int32)
  return jnp.asarray(scores, jnp.float32), jnp.asarray(levels), rng


def _pop_relevance(levels, where):
  from suprank_jax import hierarchy

  return hierarchy.relevance_matrix(levels, 2, where=where)


def test_sup_ap_with_heaviside_steps_equals_exact_ap():
  scores, levels, _ = _random_batch(0)
  positives = levels == 2
  loss = ap.ap_family_loss(
    scores,
    positives.astype(jnp.int32),
    positives.astype(jnp.float32),
    step_fn=ranks.heaviside,
    lower_step_fn=ranks.heaviside,
    reduce_fn=None,
  )
  has_pos = np.asarray(positives).any(-1)
  np.testing.assert_allclose(1.0 - np.asarray(loss)[has_pos], _exact_ap(scores, positives)[has_pos], rtol=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sup_ap_upper_bounds_the_true_ap_loss(seed):
  scores, levels, _ = _random_batch(seed)
  positives = levels == 2
  has_pos = np.asarray(positives).any(-1)
  loss = np.asarray(ap.sup_ap_loss(scores, positives, reduce_fn=None))[has_pos]
  true_loss = 1.0 - _exact_ap(scores, positives)[has_pos]
  assert np.all(loss >= true_loss - 1e-6)
  assert np.any(loss > true_loss + 1e-3)


@pytest.mark.parametrize("smooth", [False, True])
def test_sup_hap_equals_dense_batch_cubed_oracle_under_jit(smooth):
  scores, levels, _ = _random_batch(4, b=16, m=48)
  where = jnp.asarray(np.random.default_rng(5).random((16, 48)) > 0.15)
  rel = _pop_relevance(levels, where)
  fn = hap.smooth_hap_loss if smooth else hap.sup_hap_loss
  oracle = functools.partial(_dense_hap_oracle, levels=levels, rel=rel, where=where, smooth=smooth)
  expected, expected_grad = jax.value_and_grad(oracle)(scores)
  count = int(jnp.max(jnp.sum(rel > 0, -1)))
  for max_positives in (None, count):  # traced relevances: all M items, or the gathered block
    got, grad = jax.jit(jax.value_and_grad(lambda s, l, r, w: fn(s, l, r, where=w, max_positives=max_positives)))(
      scores, levels, rel, where
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_too_small_max_positives_gives_nan_under_jit_and_raises_eagerly(capsys):
  scores, levels, _ = _random_batch(4, b=4, m=12)
  rel = _pop_relevance(levels, None)
  value = jax.jit(lambda s, l, r: hap.sup_hap_loss(s, l, r, max_positives=2))(scores, levels, rel)
  jax.effects_barrier()
  assert np.isnan(value)
  assert "max_positives=2" in capsys.readouterr().out
  with pytest.raises(ValueError, match="max_positives=2"):
    hap.sup_hap_loss(scores, levels, rel, max_positives=2)


def test_sup_ap_equals_dense_oracle_with_memory_sized_chunks():
  scores, levels, _ = _random_batch(6, b=8, m=300)
  positives = levels == 2
  expected = _dense_hap_oracle(
    scores, positives.astype(jnp.int32), positives.astype(jnp.float32), jnp.ones(scores.shape, bool)
  )
  lower = functools.partial(ranks.suprank_surrogate)
  chunked = ap.ap_family_loss(
    scores,
    positives.astype(jnp.int32),
    positives.astype(jnp.float32),
    step_fn=ranks.heaviside,
    lower_step_fn=lower,
    pair_block=8 * 16 * 64,
  )
  np.testing.assert_allclose(chunked, expected, rtol=1e-5)


def test_ties_give_the_dense_oracle_value():
  rng = np.random.default_rng(10)
  scores = jnp.asarray(rng.integers(0, 4, (5, 12)) / 10.0, jnp.float32)  # exact ties, also with self
  levels = jnp.asarray(rng.integers(0, 3, (5, 12)), jnp.int32)
  rel = _pop_relevance(levels, None)
  expected = jax.jit(_dense_hap_oracle)(scores, levels, rel, jnp.ones((5, 12), bool))
  np.testing.assert_allclose(jax.jit(hap.sup_hap_loss)(scores, levels, rel), expected, rtol=1e-6)


def test_recall_handles_unequal_positive_counts():
  scores, levels, _ = _random_batch(11, b=10, m=30)
  positives = np.asarray(levels == 2)
  assert len(set(positives.sum(-1).tolist())) > 1
  got = np.asarray(recall.sup_recall_loss(scores, positives, reduce_fn=None, at_k=(1, 4)))  # eager: gathered
  rank = np.asarray(
    jax.jit(functools.partial(ranks.approx_ranks, step_fn=ranks.heaviside, lower_step_fn=ranks.suprank_surrogate))(
      scores, jnp.asarray(positives, jnp.int32)
    ),
    np.float64,
  )
  for q in range(10):
    n = positives[q].sum()
    if n == 0:
      assert got[q] == 0.0
      continue
    r = rank[q][positives[q]]
    value = np.mean([np.sum(1 / (1 + np.exp(-(k - r)))) / min(n, k) for k in (1, 4)])
    assert got[q] == pytest.approx(1 - value, rel=1e-5)


# ------------------------------------------------------------------------------------------ embedding level


def _embedding_batch(seed, labels):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(len(labels), 8))
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  return jnp.asarray(emb, jnp.float32), jnp.asarray(labels, jnp.int32)


LABELS = [[0, 0], [0, 0], [1, 0], [1, 0], [2, 1], [2, 1], [3, 1], [4, 1], [5, 0]]  # 3, 4 and 5 are single


@pytest.mark.parametrize("name", ["sup_ap", "sup_hap"])
def test_single_sample_classes_and_include_self(name):
  fn = {"sup_ap": ap.sup_ap_embedding_loss, "sup_hap": hap.sup_hap_embedding_loss}[name]
  emb, labels = _embedding_batch(12, LABELS)
  inputs = batch_inputs(emb, labels)
  with_self = jax.jit(fn)(inputs)
  without_self, grad = jax.jit(jax.value_and_grad(lambda e: fn(batch_inputs(e, labels), include_self=False)))(emb)
  assert np.isfinite(float(with_self)) and np.isfinite(float(without_self))
  assert np.all(np.isfinite(grad))
  # include_self=False equals the dense oracle with the diagonal removed and positive-less queries left out.
  scores = inputs.scores()
  levels, _, _ = graded_pairs(inputs, hierarchy_level=0 if name == "sup_ap" else "multi")
  where = ~jnp.eye(len(LABELS), dtype=bool)
  rel = levels.astype(jnp.float32) if name == "sup_ap" else _pop_relevance(levels, where)
  per_query = np.asarray(jax.jit(functools.partial(_dense_hap_oracle, reduce=False))(scores, levels, rel, where))
  valid = np.asarray(jnp.sum(jnp.where(where, rel, 0), -1) > 0)
  assert name == "sup_hap" or valid.sum() == 6  # the single-sample classes have no positive
  assert float(without_self) == pytest.approx(per_query[valid].mean(), rel=1e-5)


def test_memory_with_the_batch_as_memory_equals_batch_mode():
  emb, labels = _embedding_batch(13, LABELS)
  for fn in (
    ap.sup_ap_embedding_loss,
    hap.sup_hap_embedding_loss,
    recall.smooth_recall_embedding_loss,
    ndcg.sup_ndcg_embedding_loss,
  ):
    batch = jax.jit(fn)(batch_inputs(emb, labels))
    memory = jax.jit(fn)(memory_inputs(emb, labels, emb, labels))
    np.testing.assert_allclose(memory, batch, rtol=1e-6)


def test_memory_queries_without_positives_are_left_out():
  emb, labels = _embedding_batch(14, LABELS)
  memory, memory_labels = emb[:6], labels[:6]  # no item of classes 3, 4, 5
  loss, grad = jax.jit(
    jax.value_and_grad(lambda e: ap.sup_ap_embedding_loss(memory_inputs(e, labels, memory, memory_labels)))
  )(emb)
  kept = jax.jit(ap.sup_ap_embedding_loss)(memory_inputs(emb[:6], labels[:6], memory, memory_labels))
  assert float(loss) == pytest.approx(float(kept), rel=1e-6)
  assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[6:] == 0.0)


def test_shape_and_level_mismatch_raise_at_trace_time():
  scores = jnp.zeros((4, 5))
  with pytest.raises(ValueError, match=r"\(4, 5\), got \(4, 6\)"):
    jax.jit(lambda s: ap.sup_ap_loss(s, jnp.zeros((4, 6), bool)))(scores)
  with pytest.raises(ValueError, match="levels must be integers"):
    hap.sup_hap_loss(scores, jnp.zeros((4, 5)), jnp.zeros((4, 5)))
  with pytest.raises(ValueError, match="relevances must have the shape"):
    hap.sup_hap_loss(scores, jnp.zeros((4, 5), jnp.int32), jnp.zeros((5, 5)))
  with pytest.raises(ValueError, match="hierarchy_level"):
    ap.sup_ap_embedding_loss(batch_inputs(jnp.zeros((3, 2)), jnp.zeros((3, 2), jnp.int32)), hierarchy_level="x")
  with pytest.raises(ValueError, match="hierarchy_level must be an int label column"):
    recall.sup_recall_embedding_loss(
      batch_inputs(jnp.zeros((3, 2)), jnp.zeros((3, 2), jnp.int32)), hierarchy_level="multi"
    )
  with pytest.raises(ValueError, match="label levels"):
    memory_inputs(jnp.zeros((3, 2)), jnp.zeros((3, 2), jnp.int32), jnp.zeros((4, 2)), jnp.zeros((4, 3), jnp.int32))
