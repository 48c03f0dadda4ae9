"""Average-precision rank losses: SupAP (ROADMAP, Ramzi et al. 2021) and Smooth-AP (Brown et al. 2020).

Both replace the ranks in

.. math:: AP_q = \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0} \\frac{rank^+(i)}{rank(i)}

by surrogates (see :mod:`suprank_jax.losses.ranks`); the loss is the mean over queries of ``1 - AP_q``.
``rank^+(i)`` counts the relevant items ranked before ``i`` (weighted by ``min(rel_i, rel_j)``, which
for binary relevances is the plain count). :func:`ap_family_loss` is the AP score function over the
driver :func:`~suprank_jax.losses.ranks.rank_loss`, with pluggable steps: with the Heaviside step
everywhere it is exactly ``1 - AP`` (``1 - H-AP`` with graded relevances). The hierarchical losses
(SupHAP, Smooth-HAP) are in :mod:`suprank_jax.losses.hap`.
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
  "ap_family_loss",
  "sup_ap_loss",
  "smooth_ap_loss",
  "sup_ap_embedding_loss",
  "smooth_ap_embedding_loss",
]


def _ap_score(items: ranks.RankedItems, *, plus_step_fn, higher_step_fn):
  """``AP_q`` of every query over its gathered relevant items, and whether it has any."""
  rank_plus = ranks.rank_plus(items, step_fn=plus_step_fn, higher_step_fn=higher_step_fn)
  norm = jnp.sum(items.relevances, axis=-1)
  has_relevant = norm > 0
  total = jnp.sum(jnp.where(items.valid, rank_plus / items.rank, 0.0), axis=-1)
  return total / jnp.where(has_relevant, norm, 1.0), has_relevant


def ap_family_loss(
  scores,
  levels,
  relevances,
  *,
  where=None,
  step_fn: Callable = ranks.heaviside,
  lower_step_fn: Callable | None = None,
  plus_step_fn: Callable = ranks.heaviside,
  higher_step_fn: Callable | None = None,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
  pair_block: int | None = None,
):
  """``1 - AP`` (or ``1 - H-AP``) per query with pluggable rank and rank+ step functions.

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (decide which step function a pair uses).
    relevances: ``[B, M]`` non-negative relevances.
    where: optional ``[B, M]`` bool, items that exist.
    step_fn / lower_step_fn: rank steps for equal-or-higher / lower level items.
    plus_step_fn / higher_step_fn: rank+ steps for equal-or-lower / higher level items.
    max_positives: static bound on relevant items per row (see :mod:`suprank_jax.losses.ranks`).
    reduce_fn: reduction over queries; None returns ``[B]`` per-query losses. Queries with no
      relevant item are left out (value 0).
    pair_block: memory budget, see :func:`suprank_jax.losses.ranks.item_ranks` (None: its default).

  Returns:
    Scalar loss, or ``[B]`` with ``reduce_fn=None``.

  >>> positives = jnp.array([[1, 0, 1]])  # the negative (0.6) is ranked above the second positive
  >>> round(float(ap_family_loss(jnp.array([[0.9, 0.6, 0.5]]), positives, positives)), 4)  # 1 - (1 + 2/3) / 2
  0.1667
  """
  score_fn = functools.partial(_ap_score, plus_step_fn=plus_step_fn, higher_step_fn=higher_step_fn)
  return ranks.rank_loss(
    scores,
    levels,
    relevances,
    score_fn=score_fn,
    where=where,
    step_fn=step_fn,
    lower_step_fn=lower_step_fn,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
    pair_block=pair_block,
    name="ap_family_loss",
  )


def _binary_ap_loss(name, scores, positives, where, max_positives, reduce_fn, **steps):
  """:func:`ap_family_loss` on binary ``positives`` (levels and relevances in {0, 1}) with ``steps``."""
  scores, positives, _, where = inputs_lib.split_pairs(name, scores, positives, where=where)
  levels = positives.astype(jnp.int32)
  return ap_family_loss(scores, levels, levels, where=where, max_positives=max_positives, reduce_fn=reduce_fn, **steps)


def sup_ap_loss(
  scores,
  positives,
  *,
  where=None,
  surrogate: SupRankSurrogate = SUPRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """SupAP loss (ROADMAP): ``1 - AP`` with the SupRank upper-bound surrogate of the rank.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{|P|} \\sum_{i \\in P} \\frac{1 + \\sum_{j \\in P, j \\ne i} H(s_j - s_i)}
        {1 + \\sum_{j \\in P, j \\ne i} H(s_j - s_i) + \\sum_{j \\in N} r(s_j - s_i)}

  with ``r`` the SupRank surrogate (so SupAP <= AP: the loss upper-bounds ``1 - AP``). Paper defaults
  (SOP); iNaturalist uses ``SupRankSurrogate(offset=1.0, start=0.0)``.

  Args:
    scores: ``[B, M]`` query-item scores.
    positives: ``[B, M]`` bool or 0/1, relevant items.
    where: optional ``[B, M]`` bool, items that exist.
    surrogate: ``r``, a :class:`~suprank_jax.losses.ranks.SupRankSurrogate` (its ``tau``, ``rho``, ``delta``,
      ``start``, ``offset``).
    max_positives: static bound on positives per row (see :mod:`suprank_jax.losses.ranks`).
    reduce_fn: reduction over queries (None: ``[B]`` per-query losses).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> scores = jnp.array([[0.9, 0.2, 0.5]])
  >>> round(float(sup_ap_loss(scores, jnp.array([[True, False, True]]))), 4)
  0.0
  """
  return _binary_ap_loss("sup_ap_loss", scores, positives, where, max_positives, reduce_fn, lower_step_fn=surrogate)


def smooth_ap_loss(
  scores,
  positives,
  *,
  where=None,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
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
  sig = functools.partial(ranks.tau_sigmoid, tau=tau)
  return _binary_ap_loss(
    "smooth_ap_loss", scores, positives, where, max_positives, reduce_fn, step_fn=sig, plus_step_fn=sig
  )


def sup_ap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  relevance_type: str = "pop",
  relevance_alpha=1.0,
  surrogate: SupRankSurrogate = SUPRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`sup_ap_loss` on :class:`LossInputs` (registry name ``sup_ap``); ``params`` is unused.

  With ``hierarchy_level="multi"`` this is SupHAP without ``with_hrank``. See
  :func:`suprank_jax.losses.inputs.graded_pairs` for the shared arguments; ``reduce_fn=None`` returns
  the ``[B]`` per-query losses.
  """
  del params
  levels, relevances, where = inputs_lib.graded_pairs(
    inputs, hierarchy_level, include_self, relevance_type, relevance_alpha, name="sup_ap"
  )
  return ap_family_loss(
    inputs.scores(),
    levels,
    relevances,
    where=where,
    lower_step_fn=surrogate,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
  )


def smooth_ap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  relevance_type: str = "pop",
  relevance_alpha=1.0,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`smooth_ap_loss` on :class:`LossInputs` (registry name ``smooth_ap``); ``params`` is unused.

  With ``hierarchy_level="multi"`` this is Smooth-HAP. ``reduce_fn=None``: ``[B]`` per-query losses.
  """
  del params
  levels, relevances, where = inputs_lib.graded_pairs(
    inputs, hierarchy_level, include_self, relevance_type, relevance_alpha, name="smooth_ap"
  )
  sig = functools.partial(ranks.tau_sigmoid, tau=tau)
  steps = dict(step_fn=sig, plus_step_fn=sig)
  return ap_family_loss(
    inputs.scores(), levels, relevances, where=where, max_positives=max_positives, reduce_fn=reduce_fn, **steps
  )
