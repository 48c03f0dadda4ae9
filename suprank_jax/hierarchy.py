"""Label hierarchies: pair levels and the HAPPIER relevance functions.

Labels are integer matrices ``[num_items, num_levels]``: column 0 is the finest class, column 1 its
super-class, and so on. The *level* of a pair of items is the number of label columns on which they
agree (``0..num_levels``); with a consistent label tree this is the depth of their common ancestor.

Relevances (HAPPIER, Ramzi et al. 2022) turn levels into graded relevances, per query row:

* ``'pop'``: ``w(v) = (v / (L - 1)) ** alpha`` divided by the number of items of the row at level ``v``
  (so that every level carries the same total weight whatever its population). ``L`` is the number of
  label columns; this is the definition of the reference implementation (``relevance_for_batch``).
* ``'map'``: ``rel(v) = sum_{u=1..v} weights[u-1] / #{items of the row with level >= u}``, i.e. the
  weight of a level is shared among all items that reach it.

Everything here is plain ``jnp`` and works under ``jit`` and on numpy inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

__all__ = [
  "pair_levels",
  "level_counts",
  "pop_relevance_table",
  "map_relevance_table",
  "relevance_table",
  "relevance_matrix",
  "RELEVANCE_TYPES",
]

RELEVANCE_TYPES = ("pop", "map")


def _check_labels(labels, name):
  if labels.ndim != 2:
    raise ValueError(f"{name} must be [num_items, num_levels] integer labels, got shape {labels.shape}")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}")


def pair_levels(labels, other_labels=None, *, level: int | None = None):
  """Number of agreeing label columns of every pair.

  Args:
    labels: ``[N, L]`` integer labels.
    other_labels: ``[M, L]`` integer labels; ``labels`` when omitted.
    level: compare only this column (result in {0, 1}); all columns when ``None``.

  Returns:
    ``[N, M]`` int32 levels in ``0..L`` (``0..1`` with ``level``).

  Raises:
    ValueError: on non-integer labels or a different number of label columns.
  """
  other_labels = labels if other_labels is None else other_labels
  _check_labels(labels, "labels")
  _check_labels(other_labels, "other_labels")
  if labels.shape[1] != other_labels.shape[1]:
    raise ValueError(
      f"labels and other_labels have a different number of levels: {labels.shape} vs {other_labels.shape}"
    )
  if level is not None:
    if not 0 <= level < labels.shape[1]:
      raise ValueError(f"level={level} is out of range for labels with {labels.shape[1]} levels")
    labels, other_labels = labels[:, level : level + 1], other_labels[:, level : level + 1]
  agree = labels[:, None, :] == other_labels[None, :, :]
  return jnp.sum(agree, axis=-1, dtype=jnp.int32)


def level_counts(levels, num_levels: int, *, where=None):
  """How many items of each row have each level.

  Args:
    levels: ``[N, M]`` integer pair levels.
    num_levels: ``L``; levels range over ``0..L``.
    where: optional ``[N, M]`` boolean mask of the items to count.

  Returns:
    ``[N, L + 1]`` float32 counts.
  """
  one_hot = levels[..., None] == jnp.arange(num_levels + 1)
  if where is not None:
    one_hot = one_hot & where[..., None]
  return jnp.sum(one_hot, axis=-2, dtype=jnp.float32)


def pop_relevance_table(counts, *, alpha: float = 1.0):
  """'pop' relevance of each level for each row.

  .. math:: rel_i(v) = \\frac{(v / (L - 1))^\\alpha}{\\#\\{j : level_{ij} = v\\}}

  Args:
    counts: ``[N, L + 1]`` level counts (see :func:`level_counts`).
    alpha: exponent of the level weights.

  Returns:
    ``[N, L + 1]`` float32 table; 0 for levels absent from a row and for level 0.
  """
  num_levels = counts.shape[-1] - 1
  denom = max(num_levels - 1, 1)
  weights = (jnp.arange(num_levels + 1, dtype=jnp.float32) / denom) ** alpha
  weights = weights.at[0].set(0.0)
  return jnp.where(counts > 0, weights / jnp.maximum(counts, 1.0), 0.0)


def map_relevance_table(counts, *, weights: Sequence[float]):
  """'map' relevance of each level for each row.

  .. math:: rel_i(v) = \\sum_{u=1}^{v} \\frac{weights_{u-1}}{\\#\\{j : level_{ij} \\ge u\\}}

  Args:
    counts: ``[N, L + 1]`` level counts.
    weights: ``L`` level weights.

  Returns:
    ``[N, L + 1]`` float32 table; 0 at level 0. A level that no item of the row reaches gets 0
    (the reference leaves ``+inf`` there; the value is never gathered).
  """
  num_levels = counts.shape[-1] - 1
  if len(weights) != num_levels:
    raise ValueError(f"'map' relevance needs {num_levels} weights (one per level), got {len(weights)}: {weights}")
  # at_least[:, u] = number of items with level >= u, for u = 1..L.
  at_least = jnp.flip(jnp.cumsum(jnp.flip(counts, -1), -1), -1)[:, 1:]
  share = jnp.where(at_least > 0, jnp.asarray(weights, jnp.float32) / jnp.maximum(at_least, 1.0), 0.0)
  table = jnp.cumsum(share, axis=-1)
  table = jnp.where(at_least > 0, table, 0.0)
  return jnp.concatenate([jnp.zeros_like(table[:, :1]), table], axis=-1)


def relevance_table(counts, *, kind: str = "pop", alpha: float | Sequence[float] = 1.0):
  """Relevance table of a row of level counts, for ``kind`` in :data:`RELEVANCE_TYPES`.

  ``alpha`` is the exponent for ``'pop'`` and the list of level weights for ``'map'`` (as in the
  reference's config key ``relevance.alpha``).
  """
  if kind == "pop":
    return pop_relevance_table(counts, alpha=float(alpha))
  if kind == "map":
    return map_relevance_table(counts, weights=tuple(alpha))
  raise ValueError(f"unknown relevance type {kind!r}; valid: {RELEVANCE_TYPES}")


def relevance_matrix(levels, num_levels: int, *, kind: str = "pop", alpha=1.0, where=None):
  """Relevance of every pair, from the pair levels of a batch.

  Args:
    levels: ``[N, M]`` integer pair levels (:func:`pair_levels`).
    num_levels: number of label columns ``L``.
    kind: ``'pop'`` or ``'map'``.
    alpha: see :func:`relevance_table`.
    where: optional ``[N, M]`` mask of the items that exist (excluded items are neither counted
      nor given a relevance).

  Returns:
    ``[N, M]`` float32 relevances.
  """
  table = relevance_table(level_counts(levels, num_levels, where=where), kind=kind, alpha=alpha)
  rel = jnp.take_along_axis(table, levels.astype(jnp.int32), axis=-1)
  return rel if where is None else jnp.where(where, rel, 0.0)
