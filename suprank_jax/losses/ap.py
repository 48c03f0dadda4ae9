"""Average-precision rank losses: SupAP (ROADMAP, Ramzi et al. 2021) and Smooth-AP (Brown et al. 2020).

Both replace the ranks in

.. math:: AP_q = \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0} \\frac{rank^+(i)}{rank(i)}

by surrogates (see :mod:`suprank_jax.losses.ranks`); the loss is the mean over queries of ``1 - AP_q``.
``rank^+(i)`` counts the relevant items ranked before ``i`` (weighted by ``min(rel_i, rel_j)``, which
for binary relevances is the plain count). The hierarchical versions (H-AP) are in
:mod:`suprank_jax.losses.hap` and share the implementation here.

Only relevant items need a rank: they are gathered into a padded ``[B, P]`` block and ranked against
all ``M`` items (``[B, P, M]`` instead of the reference's ``[B, M, M]``), in chunks of the items
axis. ``P`` must be static (:func:`suprank_jax.losses.ranks.static_item_count`): ``max_positives``
when given (under ``jit`` give the sampler's bound, e.g. the samples per class; a row with more
relevant items makes the loss NaN and prints why), else the exact count when the labels are concrete,
else ``M`` (exact, ``O(B M^2)``).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp

from suprank_jax.losses import ranks as ranks_lib
from suprank_jax.losses.inputs import LossInputs

__all__ = [
    "sup_ap_loss",
    "smooth_ap_loss",
    "sup_ap_embedding_loss",
    "smooth_ap_embedding_loss",
]


def _validate(scores, levels, relevances, where):
  ranks_lib._check_scores(scores)
  ranks_lib._check_same_shape(scores, levels, "levels")
  ranks_lib._check_same_shape(scores, relevances, "relevances")
  ranks_lib._check_same_shape(scores, where, "where")
  if levels is not None and not jnp.issubdtype(levels.dtype, jnp.integer):
    raise ValueError(f"levels must be integers, got dtype {levels.dtype}")


def _as_float(scores):
  return scores.astype(jnp.promote_types(scores.dtype, jnp.float32))


def _ap_sums(num_items, scores, levels, relevances, where, *, step_fn, lower_step_fn, plus_step_fn,
             higher_step_fn, pair_block):
  """``sum_i rank+(i) / rank(i)`` per query, over the gathered relevant items (``P = num_items``)."""
  index, valid = ranks_lib.gather_items(relevances, num_items, where=where)
  rank = ranks_lib.item_ranks(scores, index, levels, where=where, step_fn=step_fn,
                              lower_step_fn=lower_step_fn, pair_block=pair_block)
  item_scores = jnp.take_along_axis(scores, index, axis=-1)
  item_levels = jnp.take_along_axis(levels, index, axis=-1)
  item_rel = jnp.where(valid, jnp.take_along_axis(relevances, index, axis=-1), 0.0)
  # rank+ only involves relevant items: min(rel_i, rel_j) = 0 for the others.
  x = item_scores[:, None, :] - item_scores[:, :, None]
  higher = item_levels[:, None, :] > item_levels[:, :, None]
  steps = ranks_lib._pair_steps(x, higher, plus_step_fn, higher_step_fn)
  p = index.shape[1]
  weight = jnp.where(jnp.eye(p, dtype=bool)[None], 0.0,
                     jnp.minimum(item_rel[:, :, None], item_rel[:, None, :]))
  rank_plus = item_rel + jnp.sum(steps * weight, axis=-1)
  return jnp.sum(jnp.where(valid, rank_plus / rank, 0.0), axis=-1)


def ap_family_loss(scores, levels, relevances, *, where=None, step_fn: Callable = ranks_lib.heaviside,
                   lower_step_fn: Callable | None = None, plus_step_fn: Callable = ranks_lib.heaviside,
                   higher_step_fn: Callable | None = None, max_positives: int | None = None,
                   reduce_fn: Callable | None = jnp.mean, pair_block: int = ranks_lib._PAIR_BLOCK):
  """``1 - AP`` (or H-AP) per query with pluggable rank and rank+ step functions.

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (decide which step function a pair uses).
    relevances: ``[B, M]`` non-negative relevances.
    where: optional ``[B, M]`` bool, items that exist.
    step_fn / lower_step_fn: rank steps for equal-or-higher / lower level items.
    plus_step_fn / higher_step_fn: rank+ steps for equal-or-lower / higher level items.
    max_positives: static bound on relevant items per row (see the module docstring).
    reduce_fn: reduction over queries; None returns ``[B]`` per-query losses. Queries with no
      relevant item are left out (value 0).
    pair_block: memory budget, see :func:`suprank_jax.losses.ranks.item_ranks`.

  Returns:
    Scalar loss, or ``[B]`` with ``reduce_fn=None``.
  """
  _validate(scores, levels, relevances, where)
  scores = _as_float(scores)
  if where is None:
    where = jnp.ones(scores.shape, bool)
  relevances = jnp.where(where, relevances.astype(scores.dtype), 0.0)
  levels = levels.astype(jnp.int32)
  count = jnp.max(jnp.sum(relevances > 0, axis=-1))
  fn = functools.partial(_ap_sums, step_fn=step_fn, lower_step_fn=lower_step_fn, plus_step_fn=plus_step_fn,
                         higher_step_fn=higher_step_fn, pair_block=pair_block)
  size = ranks_lib.static_item_count(count, scores.shape[-1], max_positives)
  sums = fn(size, scores, levels, relevances, where)
  norm = jnp.sum(relevances, axis=-1)
  has_positive = norm > 0
  score = sums / jnp.where(has_positive, norm, 1.0)
  loss = ranks_lib.safe_reduce(1.0 - score, where=has_positive, reduce_fn=reduce_fn)
  return ranks_lib.guard_item_count(loss, count, size, "ap_family_loss")


def _binary(positives, where):
  positives = positives > 0 if positives.dtype != bool else positives
  if where is not None:
    positives = positives & where
  return positives.astype(jnp.int32)


def sup_ap_loss(scores, positives, *, where=None, tau: float = 0.01, rho: float = 100.0,
                delta: float | None = 0.05, start: float | None = 0.5, offset: float | None = 1.44,
                max_positives: int | None = None, reduce_fn: Callable | None = jnp.mean):
  """SupAP loss (ROADMAP): ``1 - AP`` with the SupRank upper-bound surrogate of the rank.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{|P|} \\sum_{i \\in P} \\frac{1 + \\sum_{j \\in P, j \\ne i} H(s_j - s_i)}
        {1 + \\sum_{j \\in P, j \\ne i} H(s_j - s_i) + \\sum_{j \\in N} r(s_j - s_i)}

  with ``r`` :func:`~suprank_jax.losses.ranks.suprank_surrogate` (so SupAP <= AP: the loss upper-bounds
  ``1 - AP``). Paper defaults (SOP); iNaturalist uses ``offset=1.0, start=0.0``.

  Args:
    scores: ``[B, M]`` query-item scores.
    positives: ``[B, M]`` bool or 0/1, relevant items.
    where: optional ``[B, M]`` bool, items that exist.
    tau, rho, delta, start, offset: :func:`~suprank_jax.losses.ranks.suprank_surrogate`.
    max_positives: static bound on positives per row (see the module docstring).
    reduce_fn: reduction over queries (None: ``[B]`` per-query losses).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> scores = jnp.array([[0.9, 0.2, 0.5]])
  >>> round(float(sup_ap_loss(scores, jnp.array([[True, False, True]]))), 4)
  0.0
  """
  levels = _binary(positives, where)
  lower = functools.partial(ranks_lib.suprank_surrogate, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  return ap_family_loss(scores, levels, levels, where=where, step_fn=ranks_lib.heaviside, lower_step_fn=lower,
                        plus_step_fn=ranks_lib.heaviside, max_positives=max_positives, reduce_fn=reduce_fn)


def smooth_ap_loss(scores, positives, *, where=None, tau: float = 0.01, max_positives: int | None = None,
                   reduce_fn: Callable | None = jnp.mean):
  """Smooth-AP loss: ``1 - AP`` with every Heaviside step replaced by a temperature sigmoid.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{|P|} \\sum_{i \\in P} \\frac{1 + \\sum_{j \\in P, j \\ne i} \\sigma_\\tau(s_j - s_i)}
        {1 + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i)}

  Args:
    scores: ``[B, M]`` scores.
    positives: ``[B, M]`` bool or 0/1.
    where: optional ``[B, M]`` bool.
    tau: sigmoid temperature.
    max_positives, reduce_fn: as in :func:`sup_ap_loss`.

  Returns:
    Scalar (or ``[B]``) loss.
  """
  levels = _binary(positives, where)
  sig = functools.partial(ranks_lib.tau_sigmoid, tau=tau)
  return ap_family_loss(scores, levels, levels, where=where, step_fn=sig, plus_step_fn=sig,
                        max_positives=max_positives, reduce_fn=reduce_fn)


def sup_ap_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int | str = 0,
                          include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                          tau: float = 0.01, rho: float = 100.0, delta: float | None = 0.05,
                          start: float | None = 0.5, offset: float | None = 1.44,
                          max_positives: int | None = None):
  """:func:`sup_ap_loss` on :class:`LossInputs` (registry name ``sup_ap``); ``params`` is unused.

  With ``hierarchy_level="multi"`` this is SupHAP without ``with_hrank``. See
  :func:`suprank_jax.losses.ranks.rank_loss_inputs` for the shared arguments.
  """
  del params
  scores, levels, rel, where = ranks_lib.rank_loss_inputs(
      inputs, hierarchy_level=hierarchy_level, include_self=include_self, relevance_type=relevance_type,
      relevance_alpha=relevance_alpha)
  lower = functools.partial(ranks_lib.suprank_surrogate, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  return ap_family_loss(scores, levels, rel, where=where, step_fn=ranks_lib.heaviside, lower_step_fn=lower,
                        plus_step_fn=ranks_lib.heaviside, max_positives=max_positives)


def smooth_ap_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int | str = 0,
                             include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                             tau: float = 0.01, max_positives: int | None = None):
  """:func:`smooth_ap_loss` on :class:`LossInputs` (registry name ``smooth_ap``); ``params`` is unused."""
  del params
  scores, levels, rel, where = ranks_lib.rank_loss_inputs(
      inputs, hierarchy_level=hierarchy_level, include_self=include_self, relevance_type=relevance_type,
      relevance_alpha=relevance_alpha)
  sig = functools.partial(ranks_lib.tau_sigmoid, tau=tau)
  return ap_family_loss(scores, levels, rel, where=where, step_fn=sig, plus_step_fn=sig,
                        max_positives=max_positives)
