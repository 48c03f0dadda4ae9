"""AP-surrogate baselines: FastAP, soft-binning AP and black-box AP.

Pure functions on ``[num_queries, num_items]`` scores with a boolean ``positives`` matrix and an optional
``where`` of valid pairs, plus embedding-level adapters with the uniform signature
``<name>_embedding_loss(inputs, params=None, *, hierarchy_level=0, include_self=True, ...)``. Each is a
per-query ``1 - AP`` reduced by ``reduce_fn`` (None: the ``[num_queries]`` per-query losses).

* FastAP follows pytorch-metric-learning ``FastAPLoss`` (squared L2 distances of normalised embeddings,
  histogram of triangular pulses). The reference cannot use a reference set (it ignores it and excludes
  the self pair); the adapter accepts one (an extension), and ``include_self=False`` reproduces the
  reference in batch mode.
* Soft-binning AP (Revaud et al.) quantises raw dot products into ``num_bins`` triangular bins.
* Black-box AP (Rolinek et al.) perturbs the scores with random deviations and differentiates the
  exact ranks with the black-box rule (a :func:`jax.custom_vjp`). The random draw is an explicit
  argument (``noise``), or drawn from an explicit ``rng`` key in the adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from suprank_jax.losses import inputs as inputs_lib
from suprank_jax.losses import ranks
from suprank_jax.losses.inputs import LossInputs

__all__ = [
  "fastap_loss",
  "fastap_embedding_loss",
  "softbin_ap_loss",
  "softbin_ap_embedding_loss",
  "blackbox_ranks",
  "blackbox_ap_loss",
  "blackbox_ap_embedding_loss",
]


# ----------------------------------------------------------------------------------------------------
# FastAP.


def fastap_loss(scores, positives, *, where=None, num_bins: int = 10, reduce_fn: Callable | None = ranks.nonzero_mean):
  """FastAP (PML ``FastAPLoss``) on cosine similarities.

  With squared distances ``d = 2 - 2 s`` in ``[0, 4]`` and ``num_bins + 1`` triangular pulses
  ``delta_b(d) = [1 - |d - 4b/n| / (4/n)]_+``, per query ``h+_b = sum_{j in P} delta_b(d_j)``,
  ``h_b = sum_{valid j} delta_b(d_j)``, ``H+`` and ``H`` their cumulative sums, and

  .. math:: FastAP = \\frac{1}{|P|} \\sum_b \\frac{h^+_b H^+_b}{H_b}

  (terms with ``h+_b H+_b = 0`` or ``H_b = 0`` skipped). Per-query losses ``1 - FastAP`` of the queries
  with at least one positive are averaged over their strictly positive values (0 if none).

  Args:
    scores: ``[num_queries, num_items]`` cosine similarities.
    positives: ``[num_queries, num_items]`` bool.
    where: optional ``[num_queries, num_items]`` bool, valid pairs.
    num_bins: histogram bins.
    reduce_fn: reduction over the queries with a positive (PML's ``AvgNonZeroReducer`` by default);
      None: ``[num_queries]`` per-query losses.

  Returns:
    Scalar loss (``[num_queries]`` with ``reduce_fn=None``).

  References:
    Cakir et al., "Deep Metric Learning to Rank", CVPR 2019.
  """
  scores, pos, _, valid = inputs_lib.split_pairs("fastap_loss", scores, positives, where=where)
  dist = 2.0 - 2.0 * scores
  delta = 4.0 / num_bins
  centres = jnp.linspace(0.0, 4.0, num_bins + 1, dtype=scores.dtype)
  pulse = jax.nn.relu(1.0 - jnp.abs(dist[:, None, :] - centres[None, :, None]) / delta)  # [B, bins, M]
  pos_hist = jnp.sum(jnp.where(pos[:, None, :], pulse, 0.0), axis=-1)
  all_hist = jnp.sum(jnp.where(valid[:, None, :], pulse, 0.0), axis=-1)
  product = pos_hist * jnp.cumsum(pos_hist, axis=-1)
  total = jnp.cumsum(all_hist, axis=-1)
  safe = (product > 0) & (total > 0)
  fastap = jnp.sum(jnp.where(safe, product / jnp.where(safe, total, 1.0), 0.0), axis=-1)
  num_pos = jnp.sum(pos, axis=-1, dtype=scores.dtype)
  per_query = 1.0 - fastap / jnp.maximum(num_pos, 1.0)
  return ranks.safe_reduce(per_query, where=num_pos > 0, reduce_fn=reduce_fn)


def fastap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  num_bins: int = 10,
  reduce_fn: Callable | None = ranks.nonzero_mean,
):
  """:func:`fastap_loss` on normalised embeddings (reference ``FastAPLoss``).

  ``include_self=False`` is the reference's: PML drops the self pair (the reference runs FastAP without
  a reference set), so pass it to reproduce the reference (the ``fastap`` config group does).
  """
  del params
  scores, positives, where = inputs_lib.binary_scores(
    inputs, hierarchy_level, include_self, normalize=True, name="fastap"
  )
  return fastap_loss(scores, positives, where=where, num_bins=num_bins, reduce_fn=reduce_fn)


# ----------------------------------------------------------------------------------------------------
# Soft-binning AP.


def softbin_ap_loss(
  scores,
  positives,
  *,
  where=None,
  num_bins: int = 20,
  min_score: float = -1.0,
  max_score: float = 1.0,
  reduce_fn: Callable | None = jnp.mean,
):
  """Soft-binning (quantised) AP loss, ``1 - mAP`` (reference ``SoftBinAPLoss``).

  Bin ``k`` (``0..num_bins-1``) is centred at ``max_score - k a^{-1}`` with ``a = (num_bins - 1) /
  (max_score - min_score)``, weight ``[1 - a |s - c_k|]_+``; the first bin stays 1 above ``max_score``
  and the last one below ``min_score``. Per query, with ``n_k`` the bin mass of all valid items and
  ``n+_k`` that of the positives:

  .. math:: AP = \\sum_k \\frac{\\sum_{k' \\le k} n^+_{k'}}{10^{-16} + \\sum_{k' \\le k} n_{k'}}
                 \\frac{n^+_k}{\\sum_{k'} n^+_{k'}}

  and the loss is one minus the mean AP. A query without positives gives 0/0 = NaN in the reference;
  here it is left out of the mean (0 when no query has one).

  Args:
    scores: ``[num_queries, num_items]`` raw dot products.
    positives: ``[num_queries, num_items]`` bool.
    where: optional ``[num_queries, num_items]`` bool, valid pairs.
    num_bins: ``nq`` in the reference, ``2..100``.
    min_score: lowest bin centre (``min``).
    max_score: highest bin centre (``max``).
    reduce_fn: reduction over the queries with a positive; None: ``[num_queries]`` per-query losses.

  Returns:
    Scalar loss (``[num_queries]`` with ``reduce_fn=None``).

  References:
    Revaud et al., "Learning with Average Precision: Training Image Retrieval with a Listwise Loss",
    ICCV 2019.
  """
  scores, pos, _, valid = inputs_lib.split_pairs("softbin_ap_loss", scores, positives, where=where)
  if not 2 <= num_bins <= 100 or int(num_bins) != num_bins:
    raise ValueError(f"softbin_ap_loss: num_bins must be an integer in [2, 100], got {num_bins}")
  if max_score <= min_score:
    raise ValueError(f"softbin_ap_loss: max_score ({max_score}) must exceed min_score ({min_score})")
  slope = (num_bins - 1) / (max_score - min_score)
  # The reference's two lines per bin, in its affine form a s + b (same rounding at the bin edges),
  # the outer half-lines of the end bins replaced by 1.
  k = jnp.arange(num_bins)
  falling_bias = jnp.asarray(slope * min_score + (num_bins - k), scores.dtype)
  rising_bias = jnp.asarray((2 - num_bins + k) - slope * min_score, scores.dtype)
  s = scores[:, None, :]  # [B, 1, M] against [bins]
  falling = jnp.where(k[:, None] == 0, 1.0, -slope * s + falling_bias[:, None])
  rising = jnp.where(k[:, None] == num_bins - 1, 1.0, slope * s + rising_bias[:, None])
  # At a kink the gradient follows torch: min splits ties evenly (as jnp.minimum does), and
  # clamp(min=0) passes the gradient at exactly 0 (jax.nn.relu does not). This matters for the self
  # score 1.0 of batch mode, which sits on the kink between bins 0 and 1.
  tent = jnp.minimum(falling, rising)
  weights = jnp.where(tent >= 0, tent, 0.0)  # [B, bins, M]
  all_mass = jnp.sum(jnp.where(valid[:, None, :], weights, 0.0), axis=-1)  # [B, bins]
  pos_mass = jnp.sum(jnp.where(pos[:, None, :], weights, 0.0), axis=-1)
  precision = jnp.cumsum(pos_mass, axis=-1) / (1e-16 + jnp.cumsum(all_mass, axis=-1))
  pos_total = jnp.sum(pos_mass, axis=-1, keepdims=True)
  has_pos = pos_total[:, 0] > 0
  recall = pos_mass / jnp.where(pos_total > 0, pos_total, 1.0)
  ap = jnp.sum(precision * recall, axis=-1)
  return ranks.safe_reduce(1.0 - ap, where=has_pos, reduce_fn=reduce_fn)


def softbin_ap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  num_bins: int = 20,
  min_score: float = -1.0,
  max_score: float = 1.0,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`softbin_ap_loss` on raw dot products (config keys ``nq``, ``min``, ``max`` of the reference)."""
  del params
  scores, positives, where = inputs_lib.binary_scores(inputs, hierarchy_level, include_self, name="softbin_ap")
  return softbin_ap_loss(
    scores, positives, where=where, num_bins=num_bins, min_score=min_score, max_score=max_score, reduce_fn=reduce_fn
  )


# ----------------------------------------------------------------------------------------------------
# Black-box AP.


def _f32_divide(numerator, denominator):
  """float32 ``numerator / denominator`` rounded like IEEE division when float64 is available.

  XLA's CPU float32 division can be one ulp off; the reference's float32 ranks are exact quotients.
  Dividing in float64 and rounding once to float32 gives the correctly rounded quotient.
  """
  wide = jnp.promote_types(jnp.float32, jnp.result_type(float))
  return (numerator.astype(wide) / denominator.astype(wide)).astype(jnp.float32)


def _normalized_ranks(scores, valid):
  """(1 + position in decreasing score) / number of valid items, in float32; invalid items last."""
  keyed = jnp.where(valid, -scores, jnp.inf)
  position = jnp.argsort(jnp.argsort(keyed, axis=-1, stable=True), axis=-1, stable=True)
  count = jnp.maximum(jnp.sum(valid, axis=-1, keepdims=True), 1)
  return _f32_divide(position + 1, count)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def blackbox_ranks(scores, valid, lambda_val: float):
  """Normalised ranks with the black-box gradient of Vlastelica / Rolinek et al.

  Forward: ``(1 + position in decreasing score) / number of valid items`` per row (float32; invalid items
  are ranked last). Backward, for an upstream gradient ``g`` on the ranks:

  .. math:: \\nabla_s = -\\frac{rank(s) - rank(s + \\lambda g)}{\\lambda + 10^{-8}}

  Args:
    scores: ``[num_queries, num_items]``.
    valid: ``[num_queries, num_items]`` bool.
    lambda_val: interpolation strength ``lambda``.

  Returns:
    ``[num_queries, num_items]`` float32 ranks.
  """
  return _normalized_ranks(scores, valid)


def _blackbox_ranks_fwd(scores, valid, lambda_val):
  normalized = _normalized_ranks(scores, valid)
  return normalized, (scores, valid, normalized)


def _blackbox_ranks_bwd(lambda_val, residuals, g):
  scores, valid, normalized = residuals
  shifted = _normalized_ranks(scores + lambda_val * g, valid)
  grad = -(normalized - shifted) / (lambda_val + 1e-8)
  return jnp.where(valid, grad, 0.0).astype(scores.dtype), None


blackbox_ranks.defvjp(_blackbox_ranks_fwd, _blackbox_ranks_bwd)


def blackbox_ap_loss(
  scores,
  positives,
  noise,
  *,
  where=None,
  lambda_val: float = 4.0,
  margin: float = 0.02,
  reduce_fn: Callable | None = jnp.mean,
):
  """Black-box AP loss, ``1 - mAP`` with ranks differentiated by :func:`blackbox_ranks`.

  The scores are first perturbed, ``s' = s - margin |noise| (t - 1/2)`` with ``t`` the positives (the
  reference draws ``noise`` from a standard normal in its forward pass). Then per query

  .. math:: AP = \\frac{1}{|P| + 10^{-5}} \\sum_{j \\in P} \\frac{rank^+(j)}{rank(j)}

  with ``rank`` the normalised rank of :func:`blackbox_ranks` and ``rank+(j)`` the normalised position
  of ``j`` among the positives (no gradient). The loss is ``1 - mean AP`` over all queries (a query
  without positives has AP 0, as in the reference). Ranks and their ratio are float32, as in the
  reference.

  Args:
    scores: ``[num_queries, num_items]`` raw dot products.
    positives: ``[num_queries, num_items]`` bool.
    noise: ``[num_queries, num_items]`` standard-normal draws.
    where: optional ``[num_queries, num_items]`` bool, valid pairs (ranks are normalised by the number
      of valid items).
    lambda_val: black-box interpolation strength.
    margin: perturbation scale (``alpha`` in the paper).
    reduce_fn: reduction over all queries; None: ``[num_queries]`` per-query losses.

  Returns:
    Scalar loss (``[num_queries]`` with ``reduce_fn=None``).

  References:
    Rolinek et al., "Optimizing Rank-based Metrics with Blackbox Differentiation", CVPR 2020.
  """
  scores, pos, _, valid = inputs_lib.split_pairs("blackbox_ap_loss", scores, positives, where=where, noise=noise)
  target = pos.astype(scores.dtype)
  perturbed = scores - margin * jnp.abs(noise.astype(scores.dtype)) * (target - 0.5)
  rank = blackbox_ranks(perturbed, valid, lambda_val)
  rank_within = jax.lax.stop_gradient(_normalized_ranks(2.0 * target - rank.astype(scores.dtype), valid))
  ratio = _f32_divide(rank_within, rank).astype(scores.dtype)
  ap = jnp.sum(jnp.where(pos, ratio, 0.0), axis=-1) / (jnp.sum(target, axis=-1) + 1e-5)
  return ranks.safe_reduce(1.0 - ap, reduce_fn=reduce_fn)


def blackbox_ap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  lambda_val: float = 4.0,
  margin: float = 0.02,
  rng=None,
  normal_noise=None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`blackbox_ap_loss` on raw dot products (reference ``BlackBoxAPLoss``).

  Exactly one of ``rng`` (a PRNG key; the noise is ``jax.random.normal(rng, [B, M])``) and
  ``normal_noise`` (``[B, M]``) must be given: the loss is random.

  Raises:
    ValueError: when neither or both are given.
  """
  del params
  if (rng is None) == (normal_noise is None):
    raise ValueError(
      "blackbox_ap_embedding_loss is random: pass exactly one of rng= (a PRNG key) or "
      "normal_noise= ([num_queries, num_items] standard-normal draws)"
    )
  scores, positives, where = inputs_lib.binary_scores(inputs, hierarchy_level, include_self, name="blackbox_ap")
  if normal_noise is None:
    normal_noise = jax.random.normal(rng, scores.shape, scores.dtype)
  return blackbox_ap_loss(
    scores, positives, jnp.asarray(normal_noise), where=where, lambda_val=lambda_val, margin=margin, reduce_fn=reduce_fn
  )
