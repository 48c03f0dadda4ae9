"""What every loss sees, and the checks and conversions that all losses share.

The reference training loop calls each criterion as ``crit(embeddings, labels, ref_embeddings,
ref_labels)``. In *batch mode* the reference set is the batch itself (the very same arrays, so the
gradient flows through both roles and each query is one of its own reference items); in *memory mode*
it is a cross-batch memory (XBM) of constant embeddings, some of whose slots may still be empty.
:class:`LossInputs` carries both cases in one pytree so that every loss has one signature:

    loss_value = some_embedding_loss(inputs, params, **hyper_parameters)

This module is the only place that turns :class:`LossInputs` into the arrays of a loss (scores, the
valid pairs, binary positives, graded levels and relevances) and the only place that validates them,
so that every loss accepts and rejects the same things with the same messages:

* ``hierarchy_level`` is an int label column or ``'multi'`` (any case: the reference's configs write
  ``MULTI``), checked by :func:`check_hierarchy_level`; a loss that needs one kind rejects the other.
* ``include_self=True`` (the default of every loss that has a reference set) keeps each query's own copy
  among its reference items, the reference's batch-mode convention; ``False`` drops it.
* Everything is computed in float32 at least (:func:`compute_dtype`), whatever the model's dtype.

:func:`l2_normalize` is also the models' output normalisation (``models/heads.py`` imports it): the
losses are the lower layer (plain ``jax``, no model code), and both must be torch's ``F.normalize``.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from suprank_jax import hierarchy

__all__ = [
  "LossInputs",
  "batch_inputs",
  "memory_inputs",
  "l2_normalize",
  "compute_dtype",
  "check_embeddings",
  "check_scores",
  "check_hierarchy_level",
  "split_pairs",
  "binary_pairs",
  "graded_pairs",
  "binary_scores",
]


def l2_normalize(x, *, eps: float = 1e-12):
  """``x / max(||x||_2, eps)`` along the last axis (torch's ``F.normalize``), with a finite gradient at 0.

  Written with the max inside the square root, so an all-zero row (an empty memory slot) has a finite
  gradient; the value is the same.

  >>> [[round(float(v), 4) for v in row] for row in l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]]))]
  [[0.6, 0.8], [0.0, 0.0]]
  """
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps**2))


def compute_dtype(*arrays):
  """The dtype losses compute in: float32 at least (bf16 inputs are upcast), float64 under x64 inputs."""
  dtype = jnp.float32
  for a in arrays:
    dtype = jnp.promote_types(dtype, a.dtype)
  return dtype


@flax.struct.dataclass
class LossInputs:
  """Queries and their reference set.

  Attributes:
    embeddings: ``[B, D]`` query embeddings.
    labels: ``[B, L]`` integer query labels (column 0 finest).
    ref_embeddings: ``[M, D]`` reference embeddings (the batch itself in batch mode).
    ref_labels: ``[M, L]`` reference labels.
    ref_where: ``[M]`` bool, valid reference slots (False for empty memory slots).
    self_index: ``[B]`` int32, the column of each query's own copy in the reference set, or -1 when
      it is not there (memory mode). Lets a loss exclude the query from its own positives.
  """

  embeddings: jax.Array
  labels: jax.Array
  ref_embeddings: jax.Array
  ref_labels: jax.Array
  ref_where: jax.Array
  self_index: jax.Array

  @property
  def num_levels(self) -> int:
    return self.labels.shape[-1]

  def scores(self, *, normalize: bool = False):
    """``[B, M]`` dot products of queries and references, in float32 at least.

    Args:
      normalize: L2-normalise both sides first (cosine similarities, as pytorch-metric-learning's
        ``DotProductSimilarity``); models already output unit-norm embeddings, so the rank losses don't.
    """
    dtype = compute_dtype(self.embeddings, self.ref_embeddings)
    queries, refs = self.embeddings.astype(dtype), self.ref_embeddings.astype(dtype)
    if normalize:
      queries, refs = l2_normalize(queries), l2_normalize(refs)
    return queries @ refs.T

  def self_mask(self):
    """``[B, M]`` bool, True at each query's own copy in the reference set."""
    return self.self_index[:, None] == jnp.arange(self.ref_labels.shape[0])[None, :]

  def valid_pairs(self, *, include_self: bool = True):
    """``[B, M]`` bool: the (query, reference item) pairs a loss may use.

    Empty memory slots are left out, and so is each query's own copy unless ``include_self``.
    """
    where = jnp.broadcast_to(self.ref_where.astype(bool)[None, :], (self.labels.shape[0], self.ref_labels.shape[0]))
    return where if include_self else where & ~self.self_mask()


def check_embeddings(name: str, embeddings, labels, *, label_ndim: int = 2):
  """Raises a ValueError naming ``name`` unless embeddings are ``[N, D]`` floats and labels ``N`` integer
  rows (``[N, L]``, or ``[N]`` with ``label_ndim=1``)."""
  want = "[N, L]" if label_ndim == 2 else "[N]"
  if embeddings.ndim != 2 or labels.ndim != label_ndim or embeddings.shape[0] != labels.shape[0]:
    raise ValueError(
      f"{name}: expected embeddings [N, D] and labels {want} with the same N, got {embeddings.shape} and {labels.shape}"
    )
  if not jnp.issubdtype(embeddings.dtype, jnp.floating):
    raise ValueError(f"{name}: embeddings must be floating point, got {embeddings.dtype}")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"{name}: labels must be integers, got {labels.dtype}")


def check_scores(name: str, scores, **same_shape):
  """Raises a ValueError naming ``name`` unless ``scores`` is a ``[num_queries, num_items]`` float array and
  every other array given (``None`` is skipped) has its shape; the message prints both shapes."""
  if scores.ndim != 2:
    raise ValueError(f"{name}: scores must be [num_queries, num_items], got shape {scores.shape}")
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise ValueError(f"{name}: scores must be floating point, got dtype {scores.dtype}")
  for key, array in same_shape.items():
    if array is not None and tuple(array.shape) != tuple(scores.shape):
      raise ValueError(f"{name}: {key} must have the shape of scores {tuple(scores.shape)}, got {tuple(array.shape)}")


_ACCEPTS = {
  "any": "an int label column or 'multi'",
  "int": "an int label column (this loss compares one label column)",
  "multi": "'multi' (this loss uses every label level)",
}


def check_hierarchy_level(level, num_levels: int, *, name: str, accepts: str = "any") -> int | str:
  """``hierarchy_level`` normalised to an int label column in ``[0, num_levels)`` or ``'multi'``.

  Args:
    level: an int (numpy ints too), or ``'multi'`` in any case.
    num_levels: label columns of the inputs.
    name: the loss, for the message.
    accepts: ``'any'``, ``'int'`` (losses on one label column) or ``'multi'`` (losses on every level).

  Raises:
    ValueError: for another value, a kind the loss does not accept, or a column out of range.
  """
  if isinstance(level, str) and level.lower() == "multi":
    normalised = "multi"
  elif isinstance(level, (int, np.integer)) and not isinstance(level, (bool, np.bool_)):
    normalised = int(level)
  else:
    normalised = None
  wrong_kind = (accepts == "int" and normalised == "multi") or (accepts == "multi" and normalised != "multi")
  if normalised is None or wrong_kind:
    raise ValueError(f"{name}: hierarchy_level must be {_ACCEPTS[accepts]}, got {level!r}")
  if normalised != "multi" and not 0 <= normalised < num_levels:
    raise ValueError(f"{name}: hierarchy_level={normalised} is out of range for labels with {num_levels} levels")
  return normalised


def split_pairs(name: str, scores, positives, *, where=None, **same_shape):
  """Validates the inputs of a loss on a score matrix and a positives matrix, and splits the pairs.

  Args:
    name: the loss, for messages.
    scores: ``[num_queries, num_items]`` floats.
    positives: ``[num_queries, num_items]`` bool (or 0/1), the relevant pairs.
    where: optional ``[num_queries, num_items]`` bool, the pairs that exist.
    **same_shape: other arrays that must have the shape of ``scores`` (e.g. ``noise``).

  Returns:
    ``(scores, positives, negatives, where)``: the scores in float32 at least and three ``[B, M]`` bool
    arrays (positive and negative valid pairs, valid pairs).
  """
  check_scores(name, scores, positives=positives, where=where, **same_shape)
  valid = jnp.ones(scores.shape, bool) if where is None else where.astype(bool)
  positives = positives.astype(bool)
  return scores.astype(compute_dtype(scores)), positives & valid, ~positives & valid, valid


def binary_pairs(inputs: LossInputs, hierarchy_level=0, include_self: bool = True, *, name: str = "loss"):
  """Binary positives of every (query, reference item) pair on one label column.

  Returns:
    ``(positives, where)``, two ``[B, M]`` bool arrays; ``positives`` is False wherever ``where`` is.

  Raises:
    ValueError: see :func:`check_hierarchy_level` (``accepts='int'``); labels with different numbers
      of levels.
  """
  level = check_hierarchy_level(hierarchy_level, inputs.num_levels, name=name, accepts="int")
  where = inputs.valid_pairs(include_self=include_self)
  same = hierarchy.pair_levels(inputs.labels, inputs.ref_labels, level=level) > 0
  return same & where, where


def graded_pairs(
  inputs: LossInputs,
  hierarchy_level=0,
  include_self: bool = True,
  relevance_type: str = "pop",
  relevance_alpha=1.0,
  *,
  name: str = "loss",
):
  """Levels and relevances of every (query, reference item) pair, for the rank losses.

  Args:
    inputs: queries ``[B, D]`` against references ``[M, D]``.
    hierarchy_level: an int ``k`` compares label column ``k`` only (levels and relevances in {0, 1});
      ``'multi'`` counts the agreeing columns (levels ``0..L``) with hierarchical relevances.
    include_self: keep each query's own copy among its reference items (see the module docstring).
    relevance_type, relevance_alpha: :func:`suprank_jax.hierarchy.relevance_matrix` (``'multi'`` only).
    name: the loss, for messages.

  Returns:
    ``(levels, relevances, where)``: ``[B, M]`` int32, relevances (0 outside ``where``) and bool.
  """
  level = check_hierarchy_level(hierarchy_level, inputs.num_levels, name=name)
  where = inputs.valid_pairs(include_self=include_self)
  if level == "multi":
    levels = hierarchy.pair_levels(inputs.labels, inputs.ref_labels)
    relevances = hierarchy.relevance_matrix(
      levels, inputs.num_levels, kind=relevance_type, alpha=relevance_alpha, where=where
    )
  else:
    levels = hierarchy.pair_levels(inputs.labels, inputs.ref_labels, level=level)
    relevances = levels
  return levels, jnp.where(where, relevances, 0), where


def binary_scores(
  inputs: LossInputs, hierarchy_level=0, include_self: bool = True, *, normalize: bool = False, name: str
):
  """What a loss on binary positives takes from :class:`LossInputs`, for its embedding-level adapter.

  Args:
    inputs: queries ``[B, D]`` against references ``[M, D]``.
    hierarchy_level, include_self, name: :func:`binary_pairs`.
    normalize: cosine similarities instead of dot products (:meth:`LossInputs.scores`).

  Returns:
    ``(scores, positives, where)``: ``[B, M]`` floats (float32 at least) and two ``[B, M]`` bool arrays.
  """
  positives, where = binary_pairs(inputs, hierarchy_level, include_self, name=name)
  return inputs.scores(normalize=normalize), positives, where


def batch_inputs(embeddings, labels) -> LossInputs:
  """Batch mode: the batch is its own reference set (gradients flow through both roles)."""
  check_embeddings("batch_inputs", embeddings, labels)
  n = embeddings.shape[0]
  return LossInputs(embeddings, labels, embeddings, labels, jnp.ones((n,), bool), jnp.arange(n, dtype=jnp.int32))


def memory_inputs(embeddings, labels, memory_embeddings, memory_labels, memory_where=None) -> LossInputs:
  """Memory mode: queries against constant memory embeddings (no gradient into the memory)."""
  check_embeddings("memory_inputs (queries)", embeddings, labels)
  check_embeddings("memory_inputs (memory)", memory_embeddings, memory_labels)
  if labels.shape[1] != memory_labels.shape[1]:
    raise ValueError(f"memory_inputs: queries have {labels.shape[1]} label levels, memory has {memory_labels.shape[1]}")
  if embeddings.shape[1] != memory_embeddings.shape[1]:
    raise ValueError(f"memory_inputs: embedding sizes differ: {embeddings.shape} vs {memory_embeddings.shape}")
  m = memory_embeddings.shape[0]
  where = jnp.ones((m,), bool) if memory_where is None else memory_where.astype(bool)
  return LossInputs(
    embeddings,
    labels,
    jax.lax.stop_gradient(memory_embeddings),
    memory_labels,
    where,
    jnp.full((embeddings.shape[0],), -1, jnp.int32),
  )
