"""NDCG rank losses: SupNDCG (SupRank, Ramzi et al. 2023) and Smooth-NDCG.

Item ``i`` of level ``l_i`` (number of label columns it shares with the query) has the gain
``2^{l_i} - 1``; the score of a query is its DCG over the ideal DCG,

.. math::
   NDCG_q = \\frac{\\sum_i (2^{l_i} - 1) / \\log_2(1 + rank(i))}{\\sum_i (2^{l_i} - 1) / \\log_2(1 + rank^*(i))},

with ``rank*`` the position of ``i`` when the items are sorted by decreasing level, and the loss is the
mean of ``1 - NDCG_q``. Only items of non-zero gain need a (surrogate) rank.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp

from suprank_jax.losses import ranks as ranks_lib
from suprank_jax.losses.ap import _as_float, _validate
from suprank_jax.losses.inputs import LossInputs

__all__ = [
    "sup_ndcg_loss",
    "smooth_ndcg_loss",
    "sup_ndcg_embedding_loss",
    "smooth_ndcg_embedding_loss",
]


def _ndcg_sums(num_items, scores, levels, where, *, step_fn, lower_step_fn, pair_block):
  """Per-query ``(DCG, IDCG)`` over the gathered items of non-zero gain (``P = num_items``)."""
  index, valid = ranks_lib.gather_items(levels, num_items, where=where)
  rank = ranks_lib.item_ranks(scores, index, levels, where=where, step_fn=step_fn, lower_step_fn=lower_step_fn,
                              pair_block=pair_block)
  item_levels = jnp.take_along_axis(levels, index, axis=-1)
  gain = jnp.where(valid, 2.0 ** item_levels.astype(scores.dtype) - 1.0, 0.0)
  dcg = jnp.sum(gain / jnp.log2(1.0 + rank), axis=-1)
  # Ideal position: items of a higher level first, ties by index (equal gains: the order is irrelevant).
  # Every item of zero gain comes after all gathered ones, so the block suffices.
  lq, lp = item_levels[:, None, :], item_levels[:, :, None]
  before = (lq > lp) | ((lq == lp) & (index[:, None, :] < index[:, :, None]))
  ideal_rank = 1.0 + jnp.sum(before & valid[:, None, :], axis=-1).astype(scores.dtype)
  idcg = jnp.sum(gain / jnp.log2(1.0 + ideal_rank), axis=-1)
  return dcg, idcg


def _ndcg_loss(scores, levels, *, where, step_fn, lower_step_fn, max_positives, reduce_fn,
               pair_block=ranks_lib._PAIR_BLOCK):
  _validate(scores, levels, None, where)
  scores = _as_float(scores)
  if where is None:
    where = jnp.ones(scores.shape, bool)
  levels = jnp.where(where, levels.astype(jnp.int32), 0)
  count = jnp.max(jnp.sum(levels > 0, axis=-1))
  fn = functools.partial(_ndcg_sums, step_fn=step_fn, lower_step_fn=lower_step_fn, pair_block=pair_block)
  size = ranks_lib.static_item_count(count, scores.shape[-1], max_positives)
  dcg, idcg = fn(size, scores, levels, where)
  has_gain = idcg > 0
  ndcg = dcg / jnp.where(has_gain, idcg, 1.0)
  loss = ranks_lib.safe_reduce(1.0 - ndcg, where=has_gain, reduce_fn=reduce_fn)
  return ranks_lib.guard_item_count(loss, count, size, "ndcg loss")


def sup_ndcg_loss(scores, levels, *, where=None, tau: float = 0.01, rho: float = 100.0,
                  delta: float | None = 0.05, start: float | None = 0.5, offset: float | None = 1.44,
                  max_positives: int | None = None, reduce_fn: Callable | None = jnp.mean):
  """SupNDCG loss: ``1 - NDCG`` with the SupRank rank surrogate (lower-level items) in the DCG.

  .. math::
     \\mathcal{L} = 1 - \\frac{\\sum_{i: l_i > 0} (2^{l_i} - 1) / \\log_2(1 + \\widetilde{rank}(i))}
                             {\\sum_{i: l_i > 0} (2^{l_i} - 1) / \\log_2(1 + rank^*(i))}

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (gains ``2**levels - 1``).
    where: optional ``[B, M]`` bool, items that exist.
    tau, rho, delta, start, offset: :func:`~suprank_jax.losses.ranks.suprank_surrogate`.
    max_positives: static bound on items of non-zero level per row (see :mod:`suprank_jax.losses.ap`).
    reduce_fn: reduction over queries (None: ``[B]``).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> round(float(sup_ndcg_loss(jnp.array([[0.9, 0.5, 0.1]]), jnp.array([[2, 1, 0]]))), 4)
  0.0
  """
  lower = functools.partial(ranks_lib.suprank_surrogate, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  return _ndcg_loss(scores, levels, where=where, step_fn=ranks_lib.heaviside, lower_step_fn=lower,
                    max_positives=max_positives, reduce_fn=reduce_fn)


def smooth_ndcg_loss(scores, levels, *, where=None, tau: float = 0.01, max_positives: int | None = None,
                     reduce_fn: Callable | None = jnp.mean):
  """Smooth-NDCG loss: ``1 - NDCG`` with sigmoid ranks ``1 + sum_{j != i} sigma_tau(s_j - s_i)``.

  .. math::
     \\mathcal{L} = 1 - \\frac{\\sum_{i} (2^{l_i} - 1) / \\log_2(2 + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i))}
                             {\\sum_{i} (2^{l_i} - 1) / \\log_2(1 + rank^*(i))}
  """
  sig = functools.partial(ranks_lib.tau_sigmoid, tau=tau)
  return _ndcg_loss(scores, levels, where=where, step_fn=sig, lower_step_fn=None, max_positives=max_positives,
                    reduce_fn=reduce_fn)


def sup_ndcg_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int | str = "multi",
                            include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                            tau: float = 0.01, rho: float = 100.0, delta: float | None = 0.05,
                            start: float | None = 0.5, offset: float | None = 1.44,
                            max_positives: int | None = None):
  """:func:`sup_ndcg_loss` on :class:`LossInputs` (registry name ``sup_ndcg``).

  Gains come from the raw levels, so ``params``, ``relevance_type`` and ``relevance_alpha`` are unused.
  """
  del params
  scores, levels, _, where = ranks_lib.rank_loss_inputs(
      inputs, hierarchy_level=hierarchy_level, include_self=include_self, relevance_type=relevance_type,
      relevance_alpha=relevance_alpha)
  return sup_ndcg_loss(scores, levels, where=where, tau=tau, rho=rho, delta=delta, start=start, offset=offset,
                       max_positives=max_positives)


def smooth_ndcg_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int | str = "multi",
                               include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                               tau: float = 0.01, max_positives: int | None = None):
  """:func:`smooth_ndcg_loss` on :class:`LossInputs` (registry name ``smooth_ndcg``)."""
  del params
  scores, levels, _, where = ranks_lib.rank_loss_inputs(
      inputs, hierarchy_level=hierarchy_level, include_self=include_self, relevance_type=relevance_type,
      relevance_alpha=relevance_alpha)
  return smooth_ndcg_loss(scores, levels, where=where, tau=tau, max_positives=max_positives)
