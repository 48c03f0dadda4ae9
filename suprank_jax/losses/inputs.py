"""What every loss sees: query embeddings and labels against a reference set.

The reference training loop calls each criterion as ``crit(embeddings, labels, ref_embeddings,
ref_labels)``. In *batch mode* the reference set is the batch itself (the very same arrays, so the
gradient flows through both roles and each query is one of its own reference items); in *memory mode*
it is a cross-batch memory (XBM) of constant embeddings, some of whose slots may still be empty.
:class:`LossInputs` carries both cases in one pytree so that every loss has one signature:

    loss_value = some_embedding_loss(inputs, params, **hyper_parameters)
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

__all__ = ["LossInputs", "batch_inputs", "memory_inputs"]


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

  def scores(self):
    """``[B, M]`` dot products of queries and references, in float32 at least (bf16 inputs are upcast).

    Embeddings are not normalised here: models output unit-norm embeddings.
    """
    dtype = jnp.promote_types(self.embeddings.dtype, jnp.float32)
    return self.embeddings.astype(dtype) @ self.ref_embeddings.astype(dtype).T

  def self_mask(self):
    """``[B, M]`` bool, True at each query's own copy in the reference set."""
    return self.self_index[:, None] == jnp.arange(self.ref_labels.shape[0])[None, :]


def _check(embeddings, labels, name):
  if embeddings.ndim != 2 or labels.ndim != 2 or embeddings.shape[0] != labels.shape[0]:
    raise ValueError(f"{name}: expected embeddings [N, D] and labels [N, L] with the same N, got "
                     f"{embeddings.shape} and {labels.shape}")
  if not jnp.issubdtype(embeddings.dtype, jnp.floating):
    raise ValueError(f"{name}: embeddings must be floating point, got {embeddings.dtype}")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"{name}: labels must be integers, got {labels.dtype}")


def batch_inputs(embeddings, labels) -> LossInputs:
  """Batch mode: the batch is its own reference set (gradients flow through both roles)."""
  _check(embeddings, labels, "batch_inputs")
  n = embeddings.shape[0]
  return LossInputs(embeddings, labels, embeddings, labels, jnp.ones((n,), bool), jnp.arange(n, dtype=jnp.int32))


def memory_inputs(embeddings, labels, memory_embeddings, memory_labels, memory_where=None) -> LossInputs:
  """Memory mode: queries against constant memory embeddings (no gradient into the memory)."""
  _check(embeddings, labels, "memory_inputs (queries)")
  _check(memory_embeddings, memory_labels, "memory_inputs (memory)")
  if labels.shape[1] != memory_labels.shape[1]:
    raise ValueError(f"memory_inputs: queries have {labels.shape[1]} label levels, memory has {memory_labels.shape[1]}")
  if embeddings.shape[1] != memory_embeddings.shape[1]:
    raise ValueError(f"memory_inputs: embedding sizes differ: {embeddings.shape} vs {memory_embeddings.shape}")
  m = memory_embeddings.shape[0]
  where = jnp.ones((m,), bool) if memory_where is None else memory_where.astype(bool)
  return LossInputs(embeddings, labels, jax.lax.stop_gradient(memory_embeddings), memory_labels, where,
                    jnp.full((embeddings.shape[0],), -1, jnp.int32))
