"""Recall@k rank losses: SupRecall (SupRank, Ramzi et al. 2023) and Smooth-Recall (Patel et al. 2022).

Recall@k of a query counts its positives ranked within the top ``k``; replacing the indicator
``1[rank(i) <= k]`` by a sigmoid of ``k - rank(i)`` and the rank by a surrogate makes it differentiable:

.. math::
   R@k_q = \\frac{1}{\\min(|P_q|, k)} \\sum_{i \\in P_q} \\sigma_{temp}(k - rank(i)), \\qquad
   \\mathcal{L} = 1 - \\frac{1}{|K|} \\sum_{k \\in K} R@k_q \\quad \\text{(mean over queries)}.

The recall score function runs over the driver :func:`~suprank_jax.losses.ranks.rank_loss`. Positives
are binary, so ``hierarchy_level`` is an int label column. Unlike the reference (which reshapes the
positives to ``[B, n_pos]`` and raises otherwise), queries may have different numbers of positives;
with equal counts the values are the reference's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax.numpy as jnp

from suprank_jax.losses import inputs as inputs_lib
from suprank_jax.losses import ranks
from suprank_jax.losses.inputs import LossInputs
from suprank_jax.losses.ranks import SUPRANK, SupRankSurrogate

__all__ = [
  "sup_recall_loss",
  "smooth_recall_loss",
  "sup_recall_embedding_loss",
  "smooth_recall_embedding_loss",
]

# suprecall.yaml: the k averaged, and the temperature of the sigmoid of k - rank.
_AT_K = (1, 2, 4, 8, 16)
_TEMP = 1.0


def _recall_score(items: ranks.RankedItems, *, at_k, temp):
  """The mean over ``at_k`` of the sigmoid recall@k of every query, and whether it has a positive."""
  num_pos = jnp.sum(items.valid, axis=-1).astype(items.rank.dtype)
  total = jnp.zeros(num_pos.shape, num_pos.dtype)
  for k in at_k:
    hits = jnp.sum(jnp.where(items.valid, ranks.tau_sigmoid(k - items.rank, tau=temp), 0.0), axis=-1)
    total = total + hits / jnp.maximum(jnp.minimum(num_pos, float(k)), 1.0)
  return total / len(at_k), num_pos > 0


def _recall_loss(name, scores, positives, where, at_k, temp, max_positives, reduce_fn, **steps):
  """The recall loss of the public functions below, with their rank ``steps`` (:func:`ranks.rank_loss`)."""
  at_k = tuple(int(k) for k in at_k)
  if not at_k or min(at_k) < 1:
    raise ValueError(f"{name}: at_k must be a non-empty sequence of positive ints, got {at_k}")
  scores, positives, _, where = inputs_lib.split_pairs(name, scores, positives, where=where)
  levels = positives.astype(jnp.int32)
  return ranks.rank_loss(
    scores,
    levels,
    score_fn=functools.partial(_recall_score, at_k=at_k, temp=temp),
    where=where,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
    name=name,
    **steps,
  )


def sup_recall_loss(
  scores,
  positives,
  *,
  where=None,
  at_k: Sequence[int] = _AT_K,
  temp: float = _TEMP,
  surrogate: SupRankSurrogate = SUPRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
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
    surrogate: the rank step of negatives, a :class:`~suprank_jax.losses.ranks.SupRankSurrogate`.
    max_positives, reduce_fn: as in :func:`suprank_jax.losses.ap.sup_ap_loss`.

  Returns:
    Scalar (or ``[B]``) loss.
  """
  return _recall_loss(
    "sup_recall_loss", scores, positives, where, at_k, temp, max_positives, reduce_fn, lower_step_fn=surrogate
  )


def smooth_recall_loss(
  scores,
  positives,
  *,
  where=None,
  at_k: Sequence[int] = _AT_K,
  temp: float = _TEMP,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """Smooth-Recall loss: as :func:`sup_recall_loss` with sigmoid ranks (every step a ``tau`` sigmoid).

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{|K|} \\sum_{k \\in K} \\frac{1}{\\min(|P|, k)} \\sum_{i \\in P}
        \\sigma_{temp}\\Big(k - 1 - \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i)\\Big)

  >>> scores = jnp.array([[0.9, 0.8, 0.1]])
  >>> round(float(smooth_recall_loss(scores, jnp.array([[1, 1, 0]]), at_k=(2,))), 3)
  0.384
  """
  sig = functools.partial(ranks.tau_sigmoid, tau=tau)
  return _recall_loss("smooth_recall_loss", scores, positives, where, at_k, temp, max_positives, reduce_fn, step_fn=sig)


def sup_recall_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  at_k: Sequence[int] = _AT_K,
  temp: float = _TEMP,
  surrogate: SupRankSurrogate = SUPRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`sup_recall_loss` on :class:`LossInputs` (registry name ``sup_recall``); ``params`` is unused.

  Positives share label column ``hierarchy_level`` (an int). ``reduce_fn=None``: ``[B]`` per-query losses.
  """
  del params
  scores, positives, where = inputs_lib.binary_scores(inputs, hierarchy_level, include_self, name="sup_recall")
  return sup_recall_loss(
    scores,
    positives,
    where=where,
    at_k=at_k,
    temp=temp,
    surrogate=surrogate,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
  )


def smooth_recall_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  at_k: Sequence[int] = _AT_K,
  temp: float = _TEMP,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`smooth_recall_loss` on :class:`LossInputs` (registry name ``smooth_recall``); ``params`` is unused."""
  del params
  scores, positives, where = inputs_lib.binary_scores(inputs, hierarchy_level, include_self, name="smooth_recall")
  return smooth_recall_loss(
    scores, positives, where=where, at_k=at_k, temp=temp, tau=tau, max_positives=max_positives, reduce_fn=reduce_fn
  )
