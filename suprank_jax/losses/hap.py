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
from suprank_jax.losses.ranks import HRANK, SUPRANK

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
  tau: float = SUPRANK.tau,
  rho: float = SUPRANK.rho,
  delta: float | None = SUPRANK.delta,
  start: float | None = SUPRANK.start,
  offset: float | None = SUPRANK.offset,
  with_hrank: bool = False,
  beta: float = HRANK.beta,
  leak: float = HRANK.leak,
  gamma: float = HRANK.gamma,
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
    tau, rho, delta, start, offset: :func:`~suprank_jax.losses.ranks.suprank_surrogate`.
    with_hrank, beta, leak, gamma: :func:`~suprank_jax.losses.ranks.hrank_surrogate` in rank+.
    max_positives: static bound on relevant items per row (see :mod:`suprank_jax.losses.ranks`).
    reduce_fn: reduction over queries (None: ``[B]`` per-query losses).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> scores = jnp.array([[0.9, 0.5, 0.2]])
  >>> levels = jnp.array([[2, 1, 0]])
  >>> round(float(sup_hap_loss(scores, levels, jnp.array([[1.0, 0.5, 0.0]]))), 4)
  0.0
  """
  lower = functools.partial(ranks.suprank_surrogate, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  higher = functools.partial(ranks.hrank_surrogate, beta=beta, leak=leak, gamma=gamma) if with_hrank else None
  return ap_family_loss(
    scores,
    levels,
    relevances,
    where=where,
    lower_step_fn=lower,
    higher_step_fn=higher,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
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
  return ap_family_loss(
    scores,
    levels,
    relevances,
    where=where,
    step_fn=sig,
    plus_step_fn=sig,
    max_positives=max_positives,
    reduce_fn=reduce_fn,
  )


def sup_hap_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = "multi",
  include_self: bool = True,
  relevance_type: str = "pop",
  relevance_alpha=1.0,
  tau: float = SUPRANK.tau,
  rho: float = SUPRANK.rho,
  delta: float | None = SUPRANK.delta,
  start: float | None = SUPRANK.start,
  offset: float | None = SUPRANK.offset,
  with_hrank: bool = False,
  beta: float = HRANK.beta,
  leak: float = HRANK.leak,
  gamma: float = HRANK.gamma,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`sup_hap_loss` on :class:`LossInputs` (registry name ``sup_hap``); ``params`` is unused.

  See :func:`suprank_jax.losses.inputs.graded_pairs` for the shared arguments; ``reduce_fn=None``
  returns the ``[B]`` per-query losses.
  """
  del params
  levels, relevances, where = inputs_lib.graded_pairs(
    inputs,
    hierarchy_level=hierarchy_level,
    include_self=include_self,
    relevance_type=relevance_type,
    relevance_alpha=relevance_alpha,
    name="sup_hap",
  )
  return sup_hap_loss(
    inputs.scores(),
    levels,
    relevances,
    where=where,
    tau=tau,
    rho=rho,
    delta=delta,
    start=start,
    offset=offset,
    with_hrank=with_hrank,
    beta=beta,
    leak=leak,
    gamma=gamma,
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
