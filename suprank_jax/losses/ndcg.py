"""NDCG rank losses: SupNDCG (SupRank, Ramzi et al. 2023) and Smooth-NDCG.

Item ``i`` of level ``l_i`` (number of label columns it shares with the query) has the gain
``2^{l_i} - 1``; the score of a query is its DCG over the ideal DCG,

.. math::
   NDCG_q = \\frac{\\sum_i (2^{l_i} - 1) / \\log_2(1 + rank(i))}{\\sum_i (2^{l_i} - 1) / \\log_2(1 + rank^*(i))},

with ``rank*`` the position of ``i`` when the items are sorted by decreasing level, and the loss is the
mean of ``1 - NDCG_q``. The NDCG score function runs over the driver
:func:`~suprank_jax.losses.ranks.rank_loss`: only items of non-zero gain need a (surrogate) rank. Gains
come from the levels, as in the reference, so there is no relevance function to choose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax.numpy as jnp

from suprank_jax.losses import inputs as inputs_lib
from suprank_jax.losses import ranks
from suprank_jax.losses.inputs import LossInputs
from suprank_jax.losses.ranks import SUPRANK, SupRankSurrogate

__all__ = [
  "sup_ndcg_loss",
  "smooth_ndcg_loss",
  "sup_ndcg_embedding_loss",
  "smooth_ndcg_embedding_loss",
]


def _ndcg_score(items: ranks.RankedItems):
  """``NDCG_q`` of every query over its gathered items of non-zero gain, and whether it has any."""
  dtype = items.rank.dtype
  gain = jnp.where(items.valid, 2.0 ** items.levels.astype(dtype) - 1.0, 0.0)
  dcg = jnp.sum(gain / jnp.log2(1.0 + items.rank), axis=-1)
  # Ideal position: items of a higher level first, ties by index (equal gains: the order is irrelevant).
  # Every item of zero gain comes after all gathered ones, so the block suffices.
  lq, lp = items.levels[:, None, :], items.levels[:, :, None]
  before = (lq > lp) | ((lq == lp) & (items.index[:, None, :] < items.index[:, :, None]))
  ideal_rank = 1.0 + jnp.sum(before & items.valid[:, None, :], axis=-1).astype(dtype)
  idcg = jnp.sum(gain / jnp.log2(1.0 + ideal_rank), axis=-1)
  has_gain = idcg > 0
  return dcg / jnp.where(has_gain, idcg, 1.0), has_gain


def _ndcg_loss(name, scores, levels, where, max_positives, reduce_fn, **steps):
  """The NDCG loss of the public functions below, with their rank ``steps`` (:func:`ranks.rank_loss`)."""
  return ranks.rank_loss(
    scores,
    levels,
    score_fn=_ndcg_score,
    where=where,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
    name=name,
    **steps,
  )


def sup_ndcg_loss(
  scores,
  levels,
  *,
  where=None,
  surrogate: SupRankSurrogate = SUPRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """SupNDCG loss: ``1 - NDCG`` with the SupRank rank surrogate (lower-level items) in the DCG.

  .. math::
     \\mathcal{L} = 1 - \\frac{\\sum_{i: l_i > 0} (2^{l_i} - 1) / \\log_2(1 + \\widetilde{rank}(i))}
                             {\\sum_{i: l_i > 0} (2^{l_i} - 1) / \\log_2(1 + rank^*(i))}

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (gains ``2**levels - 1``).
    where: optional ``[B, M]`` bool, items that exist.
    surrogate: the rank step of lower-level items, a :class:`~suprank_jax.losses.ranks.SupRankSurrogate`.
    max_positives: static bound on items of non-zero level per row (see :mod:`suprank_jax.losses.ranks`).
    reduce_fn: reduction over queries (None: ``[B]``).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> round(float(sup_ndcg_loss(jnp.array([[0.9, 0.5, 0.1]]), jnp.array([[2, 1, 0]]))), 4)
  0.0
  """
  return _ndcg_loss("sup_ndcg_loss", scores, levels, where, max_positives, reduce_fn, lower_step_fn=surrogate)


def smooth_ndcg_loss(
  scores,
  levels,
  *,
  where=None,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """Smooth-NDCG loss: ``1 - NDCG`` with sigmoid ranks ``1 + sum_{j != i} sigma_tau(s_j - s_i)``.

  .. math::
     \\mathcal{L} = 1 - \\frac{\\sum_{i} (2^{l_i} - 1) / \\log_2(2 + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i))}
                             {\\sum_{i} (2^{l_i} - 1) / \\log_2(1 + rank^*(i))}
  """
  sig = functools.partial(ranks.tau_sigmoid, tau=tau)
  return _ndcg_loss("smooth_ndcg_loss", scores, levels, where, max_positives, reduce_fn, step_fn=sig)


def sup_ndcg_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = "multi",
  include_self: bool = True,
  surrogate: SupRankSurrogate = SUPRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`sup_ndcg_loss` on :class:`LossInputs` (registry name ``sup_ndcg``); ``params`` is unused.

  ``reduce_fn=None`` returns the ``[B]`` per-query losses.
  """
  del params
  levels, _, where = inputs_lib.graded_pairs(inputs, hierarchy_level, include_self, name="sup_ndcg")
  return sup_ndcg_loss(
    inputs.scores(), levels, where=where, surrogate=surrogate, max_positives=max_positives, reduce_fn=reduce_fn
  )


def smooth_ndcg_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = "multi",
  include_self: bool = True,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`smooth_ndcg_loss` on :class:`LossInputs` (registry name ``smooth_ndcg``); ``params`` is unused."""
  del params
  levels, _, where = inputs_lib.graded_pairs(inputs, hierarchy_level, include_self, name="smooth_ndcg")
  return smooth_ndcg_loss(
    inputs.scores(), levels, where=where, tau=tau, max_positives=max_positives, reduce_fn=reduce_fn
  )
