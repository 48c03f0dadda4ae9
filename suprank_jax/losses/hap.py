"""Hierarchical average-precision losses (HAPPIER, Ramzi et al. 2022): SupHAP and Smooth-HAP.

H-AP weights every item by a graded relevance (see :mod:`suprank_jax.hierarchy`) and counts the items
ranked before ``i`` with ``min(rel_i, rel_j)``:

.. math::
   H\\text{-}AP_q = \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0} \\frac{rank^+(i)}{rank(i)}, \\qquad
   rank^+(i) = rel_i + \\sum_{j \\ne i} H(s_j - s_i) \\min(rel_i, rel_j).

SupHAP uses the SupRank surrogate for items of a lower level than ``i`` in ``rank(i)`` and, with
``with_hrank``, HAPPIER's :func:`~suprank_jax.losses.ranks.hrank_surrogate` for items of a higher level in
``rank+(i)``; Smooth-HAP uses a sigmoid everywhere. Shares its implementation with
:mod:`suprank_jax.losses.ap`.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp

from suprank_jax.losses import ranks as ranks_lib
from suprank_jax.losses.ap import ap_family_loss
from suprank_jax.losses.inputs import LossInputs

__all__ = [
    "sup_hap_loss",
    "smooth_hap_loss",
    "sup_hap_embedding_loss",
    "smooth_hap_embedding_loss",
]


def _sup_hap_steps(tau, rho, delta, start, offset, with_hrank, beta, leak, gamma):
  lower = functools.partial(ranks_lib.suprank_surrogate, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  higher = functools.partial(ranks_lib.hrank_surrogate, beta=beta, leak=leak, gamma=gamma) if with_hrank else None
  return dict(step_fn=ranks_lib.heaviside, lower_step_fn=lower, plus_step_fn=ranks_lib.heaviside,
              higher_step_fn=higher)


def sup_hap_loss(scores, levels, relevances, *, where=None, tau: float = 0.01, rho: float = 100.0,
                 delta: float | None = 0.05, start: float | None = 0.5, offset: float | None = 1.44,
                 with_hrank: bool = False, beta: float = 25.0, leak: float = 10.0, gamma: float = 0.5,
                 max_positives: int | None = None, reduce_fn: Callable | None = jnp.mean):
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
    max_positives: static bound on relevant items per row (see :mod:`suprank_jax.losses.ap`).
    reduce_fn: reduction over queries (None: ``[B]`` per-query losses).

  Returns:
    Scalar (or ``[B]``) loss.

  >>> scores = jnp.array([[0.9, 0.5, 0.2]])
  >>> levels = jnp.array([[2, 1, 0]])
  >>> round(float(sup_hap_loss(scores, levels, jnp.array([[1.0, 0.5, 0.0]]))), 4)
  0.0
  """
  return ap_family_loss(scores, levels, relevances, where=where, max_positives=max_positives,
                        reduce_fn=reduce_fn,
                        **_sup_hap_steps(tau, rho, delta, start, offset, with_hrank, beta, leak, gamma))


def smooth_hap_loss(scores, levels, relevances, *, where=None, tau: float = 0.01,
                    max_positives: int | None = None, reduce_fn: Callable | None = jnp.mean):
  """Smooth-HAP loss: ``1 - H-AP`` with a temperature sigmoid for every step.

  .. math::
     \\mathcal{L} = 1 - \\frac{1}{\\sum_i rel_i} \\sum_{i: rel_i > 0}
        \\frac{rel_i + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i) \\min(rel_i, rel_j)}{1 + \\sum_{j \\ne i} \\sigma_\\tau(s_j - s_i)}

  Args: as :func:`sup_hap_loss` (``levels`` is only validated; all pairs use the same step).
  """
  # Every pair uses the sigmoid: levels are only checked, for a uniform signature.
  ranks_lib._check_same_shape(scores, levels, "levels")
  sig = functools.partial(ranks_lib.tau_sigmoid, tau=tau)
  zeros = jnp.zeros(scores.shape, jnp.int32)
  return ap_family_loss(scores, zeros, relevances, where=where, step_fn=sig, plus_step_fn=sig,
                        max_positives=max_positives, reduce_fn=reduce_fn)


def sup_hap_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int | str = "multi",
                           include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                           tau: float = 0.01, rho: float = 100.0, delta: float | None = 0.05,
                           start: float | None = 0.5, offset: float | None = 1.44, with_hrank: bool = False,
                           beta: float = 25.0, leak: float = 10.0, gamma: float = 0.5,
                           max_positives: int | None = None):
  """:func:`sup_hap_loss` on :class:`LossInputs` (registry name ``sup_hap``); ``params`` is unused."""
  del params
  scores, levels, rel, where = ranks_lib.rank_loss_inputs(
      inputs, hierarchy_level=hierarchy_level, include_self=include_self, relevance_type=relevance_type,
      relevance_alpha=relevance_alpha)
  return sup_hap_loss(scores, levels, rel, where=where, tau=tau, rho=rho, delta=delta, start=start,
                      offset=offset, with_hrank=with_hrank, beta=beta, leak=leak, gamma=gamma,
                      max_positives=max_positives)


def smooth_hap_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int | str = "multi",
                              include_self: bool = True, relevance_type: str = "pop", relevance_alpha=1.0,
                              tau: float = 0.01, max_positives: int | None = None):
  """:func:`smooth_hap_loss` on :class:`LossInputs` (registry name ``smooth_hap``); ``params`` is unused."""
  del params
  scores, levels, rel, where = ranks_lib.rank_loss_inputs(
      inputs, hierarchy_level=hierarchy_level, include_self=include_self, relevance_type=relevance_type,
      relevance_alpha=relevance_alpha)
  return smooth_hap_loss(scores, levels, rel, where=where, tau=tau, max_positives=max_positives)
