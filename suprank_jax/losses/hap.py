"""Hierarchical average-precision losses (HAPPIER, Ramzi et al. 2022): SupHAP and Smooth-HAP.

H-AP weights every item by a graded relevance (see :mod:`suprank_jax.hierarchy`) and counts the items
ranked before ``i`` with ``min(rel_i, rel_j)``:

.. math::
   H\\text{-}AP_q = \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0} \\frac{rank^+(i)}{rank(i)}, \\qquad
   rank^+(i) = rel_i + \\sum_{j \\ne i} H(s_j - s_i) \\min(rel_i, rel_j).

SupHAP uses the SupRank surrogate for items of a lower level than ``i`` in ``rank(i)`` and, with
``with_hrank``, HAPPIER's :func:`~suprank_jax.losses.ranks.hrank_surrogate` for items of a higher level in
``rank+(i)``; Smooth-HAP uses a sigmoid everywhere. Both are :func:`suprank_jax.losses.ap.ap_family_loss`
with these steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax.numpy as jnp

from suprank_jax.losses import inputs as inputs_lib
from suprank_jax.losses import ranks
from suprank_jax.losses.ap import ap_family_loss, smooth_ap_embedding_loss
from suprank_jax.losses.inputs import LossInputs
from suprank_jax.losses.ranks import HRANK, SUPRANK, HRankSurrogate, SupRankSurrogate

__all__ = [
  "sup_hap_loss",
  "smooth_hap_loss",
  "sup_hap_embedding_loss",
  "smooth_hap_embedding_loss",
]


def sup_hap_loss(
  scores,
  levels,
  relevances,
  *,
  where=None,
  surrogate: SupRankSurrogate = SUPRANK,
  with_hrank: bool = False,
  hrank: HRankSurrogate = HRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """SupHAP loss (HAPPIER): ``1 - H-AP`` with the SupRank surrogate for lower-level items.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0}
        \\frac{rel_i + \\sum_{j \\ne i} h_{ij}(s_j - s_i) \\min(rel_i, rel_j)}
             {1 + \\sum_{j \\ne i,\\, l_j \\ge l_i} H(s_j - s_i) + \\sum_{j: l_j < l_i} r(s_j - s_i)}

  with ``h = H`` (or :func:`~suprank_jax.losses.ranks.hrank_surrogate` for ``l_j > l_i`` with
  ``with_hrank``). Defaults are HAPPIER's (``HAPPIER.yaml``; iNaturalist: ``offset=1.0, start=0.0``).

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (number of agreeing label columns).
    relevances: ``[B, M]`` relevances (0 for irrelevant items).
    where: optional ``[B, M]`` bool, items that exist.
    surrogate: ``r``, a :class:`~suprank_jax.losses.ranks.SupRankSurrogate`.
    with_hrank: use ``hrank`` for higher-level items in rank+.
    hrank: that step, a :class:`~suprank_jax.losses.ranks.HRankSurrogate` (its ``beta``, ``leak``, ``gamma``).
    max_positives: static bound on relevant items per row (see :mod:`suprank_jax.losses.ranks`).
    reduce_fn: reduction over queries (None: ``[B]`` per-query losses).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> scores = jnp.array([[0.9, 0.5, 0.2]])
  >>> levels = jnp.array([[2, 1, 0]])
  >>> round(float(sup_hap_loss(scores, levels, jnp.array([[1.0, 0.5, 0.0]]))), 4)
  0.0
  """
  steps = dict(lower_step_fn=surrogate, higher_step_fn=hrank if with_hrank else None)
  return ap_family_loss(
    scores, levels, relevances, where=where, max_positives=max_positives, reduce_fn=reduce_fn, **steps
  )


def smooth_hap_loss(
  scores,
  levels,
  relevances,
  *,
  where=None,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """Smooth-HAP loss: ``1 - H-AP`` with a temperature sigmoid for every step.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0}
        \\frac{rel_i + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i) \\min(rel_i, rel_j)}{1 + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i)}

  Args: as :func:`sup_hap_loss` (every pair uses the same step, so ``levels`` only has to be valid).
  """
  sig = functools.partial(ranks.tau_sigmoid, tau=tau)
  steps = dict(step_fn=sig, plus_step_fn=sig)
  return ap_family_loss(
    scores, levels, relevances, where=where, max_positives=max_positives, reduce_fn=reduce_fn, **steps
  )


def sup_hap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = "multi",
  include_self: bool = True,
  relevance_type: str = "pop",
  relevance_alpha=1.0,
  surrogate: SupRankSurrogate = SUPRANK,
  with_hrank: bool = False,
  hrank: HRankSurrogate = HRANK,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`sup_hap_loss` on :class:`LossInputs` (registry name ``sup_hap``); ``params`` is unused.

  See :func:`suprank_jax.losses.inputs.graded_pairs` for the shared arguments; ``reduce_fn=None``
  returns the ``[B]`` per-query losses.
  """
  del params
  levels, relevances, where = inputs_lib.graded_pairs(
    inputs, hierarchy_level, include_self, relevance_type, relevance_alpha, name="sup_hap"
  )
  return sup_hap_loss(
    inputs.scores(),
    levels,
    relevances,
    where=where,
    surrogate=surrogate,
    with_hrank=with_hrank,
    hrank=hrank,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
  )


def smooth_hap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = "multi",
  include_self: bool = True,
  relevance_type: str = "pop",
  relevance_alpha=1.0,
  tau: float = SUPRANK.tau,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`smooth_hap_loss` on :class:`LossInputs` (registry name ``smooth_hap``); ``params`` is unused.

  :func:`suprank_jax.losses.ap.smooth_ap_embedding_loss` with HAPPIER's default ``hierarchy_level='multi'``.
  """
  return smooth_ap_embedding_loss(
    inputs,
    params,
    hierarchy_level=hierarchy_level,
    include_self=include_self,
    relevance_type=relevance_type,
    relevance_alpha=relevance_alpha,
    tau=tau,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
  )
