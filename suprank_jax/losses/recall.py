"""Recall@k rank losses: SupRecall (SupRank, Ramzi et al. 2023) and Smooth-Recall (Patel et al. 2022).

Recall@k of a query counts its positives ranked within the top ``k``; replacing the indicator
``1[rank(i) <= k]`` by a sigmoid of ``k - rank(i)`` and the rank by a surrogate makes it differentiable:

.. math::
   R@k_q = \\frac{1}{\\min(|P_q|, k)} \\sum_{i \\in P_q} \\sigma_{temp}(k - rank(i)), \\qquad
   \\mathcal{L} = 1 - \\frac{1}{|K|} \\sum_{k \\in K} R@k_q \\quad \\text{(mean over queries)}.

Unlike the reference (which reshapes the positives to ``[B, n_pos]`` and raises otherwise), queries may
have different numbers of positives; with equal counts the values are the reference's.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax.numpy as jnp

from suprank_jax.losses import ranks as ranks_lib
from suprank_jax.losses.ap import _as_float, _binary, _validate
from suprank_jax.losses.inputs import LossInputs

__all__ = [
    "sup_recall_loss",
    "smooth_recall_loss",
    "sup_recall_embedding_loss",
    "smooth_recall_embedding_loss",
]

_AT_K = (1, 2, 4, 8, 16)


def _recall_sums(num_items, scores, levels, where, *, at_k, temp, step_fn, lower_step_fn, pair_block):
  """``sum_k sum_i sigma((k - rank_i) / temp) / min(n_pos, k)`` per query (``P = num_items``)."""
  index, valid = ranks_lib.gather_items(levels, num_items, where=where)
  rank = ranks_lib.item_ranks(scores, index, levels, where=where, step_fn=step_fn, lower_step_fn=lower_step_fn,
                              pair_block=pair_block)
  num_pos = jnp.sum(valid, axis=-1).astype(scores.dtype)
  total = jnp.zeros(scores.shape[:1], scores.dtype)
  for k in at_k:
    hits = jnp.sum(jnp.where(valid, ranks_lib.tau_sigmoid(k - rank, tau=temp), 0.0), axis=-1)
    total = total + hits / jnp.maximum(jnp.minimum(num_pos, float(k)), 1.0)
  return total


def _recall_loss(scores, positives, *, where, at_k, temp, step_fn, lower_step_fn, max_positives, reduce_fn,
                 pair_block=ranks_lib._PAIR_BLOCK):
  _validate(scores, None, positives, where)
  at_k = tuple(int(k) for k in at_k)
  if not at_k or min(at_k) < 1:
    raise ValueError(f"at_k must be a non-empty sequence of positive ints, got {at_k}")
  scores = _as_float(scores)
  if where is None:
    where = jnp.ones(scores.shape, bool)
  levels = _binary(positives, where)
  num_pos = jnp.sum(levels, axis=-1)
  fn = functools.partial(_recall_sums, at_k=at_k, temp=temp, step_fn=step_fn, lower_step_fn=lower_step_fn,
                         pair_block=pair_block)
  count = jnp.max(num_pos)
  size = ranks_lib.static_item_count(count, scores.shape[-1], max_positives)
  sums = fn(size, scores, levels, where)
  recall = sums / len(at_k)
  loss = ranks_lib.safe_reduce(1.0 - recall, where=num_pos > 0, reduce_fn=reduce_fn)
  return ranks_lib.guard_item_count(loss, count, size, "recall loss")


def sup_recall_loss(scores, positives, *, where=None, at_k: Sequence[int] = _AT_K, temp: float = 1.0,
                    tau: float = 0.01, rho: float = 100.0, delta: float | None = 0.05, start: float | None = 0.5,
                    offset: float | None = 1.44, max_positives: int | None = None,
                    reduce_fn: Callable | None = jnp.mean):
  """SupRecall loss: ``1 -`` the mean over ``at_k`` of a sigmoid recall@k on SupRank ranks.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{|K|} \\sum_{k \\in K} \\frac{1}{\\min(|P|, k)} \\sum_{i \\in P}
        \\sigma_{temp}(k - \\widetilde{rank}(i))

  where ``rank~`` uses the Heaviside step for positives and
  :func:`~suprank_jax.losses.ranks.suprank_surrogate` for negatives. Defaults: ``suprecall.yaml``.

  Args:
    scores: ``[B, M]`` scores.
    positives: ``[B, M]`` bool or 0/1 (any number per query).
    where: optional ``[B, M]`` bool, items that exist.
    at_k: the ``k`` values averaged.
    temp: temperature of the sigmoid of ``k - rank``.
    tau, rho, delta, start, offset: the rank surrogate.
    max_positives, reduce_fn: as in :func:`suprank_jax.losses.ap.sup_ap_loss`.

  Returns:
    Scalar (or ``[B]``) loss.
  """
  lower = functools.partial(ranks_lib.suprank_surrogate, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  return _recall_loss(scores, positives, where=where, at_k=at_k, temp=temp, step_fn=ranks_lib.heaviside,
                      lower_step_fn=lower, max_positives=max_positives, reduce_fn=reduce_fn)


def smooth_recall_loss(scores, positives, *, where=None, at_k: Sequence[int] = _AT_K, temp: float = 1.0,
                       tau: float = 0.01, max_positives: int | None = None, reduce_fn: Callable | None = jnp.mean):
  """Smooth-Recall loss: as :func:`sup_recall_loss` with sigmoid ranks (every step a ``tau`` sigmoid).

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{|K|} \\sum_{k \\in K} \\frac{1}{\\min(|P|, k)} \\sum_{i \\in P}
        \\sigma_{temp}\\Big(k - 1 - \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i)\\Big)

  >>> scores = jnp.array([[0.9, 0.8, 0.1]])
  >>> round(float(smooth_recall_loss(scores, jnp.array([[1, 1, 0]]), at_k=(2,))), 3)
  0.384
  """
  sig = functools.partial(ranks_lib.tau_sigmoid, tau=tau)
  return _recall_loss(scores, positives, where=where, at_k=at_k, temp=temp, step_fn=sig, lower_step_fn=None,
                      max_positives=max_positives, reduce_fn=reduce_fn)


def _binary_inputs(inputs, hierarchy_level, include_self):
  if isinstance(hierarchy_level, str):
    raise ValueError(f"recall losses take an int hierarchy_level (binary positives), got {hierarchy_level!r}")
  scores, levels, _, where = ranks_lib.rank_loss_inputs(inputs, hierarchy_level=hierarchy_level,
                                                        include_self=include_self)
  return scores, levels, where


def sup_recall_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int = 0,
                              include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                              at_k: Sequence[int] = _AT_K, temp: float = 1.0, tau: float = 0.01,
                              rho: float = 100.0, delta: float | None = 0.05, start: float | None = 0.5,
                              offset: float | None = 1.44, max_positives: int | None = None):
  """:func:`sup_recall_loss` on :class:`LossInputs` (registry name ``sup_recall``).

  ``params``, ``relevance_type`` and ``relevance_alpha`` are unused (binary positives).
  """
  del params, relevance_type, relevance_alpha
  scores, levels, where = _binary_inputs(inputs, hierarchy_level, include_self)
  return sup_recall_loss(scores, levels, where=where, at_k=at_k, temp=temp, tau=tau, rho=rho, delta=delta,
                         start=start, offset=offset, max_positives=max_positives)


def smooth_recall_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int = 0,
                                 include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                                 at_k: Sequence[int] = _AT_K, temp: float = 1.0, tau: float = 0.01,
                                 max_positives: int | None = None):
  """:func:`smooth_recall_loss` on :class:`LossInputs` (registry name ``smooth_recall``)."""
  del params, relevance_type, relevance_alpha
  scores, levels, where = _binary_inputs(inputs, hierarchy_level, include_self)
  return smooth_recall_loss(scores, levels, where=where, at_k=at_k, temp=temp, tau=tau,
                            max_positives=max_positives)
