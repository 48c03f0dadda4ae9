"""Cross-batch memory (XBM) as functional state, and the reference trainer's use of it.

The memory is a pure ``(init, update)`` pair over a pytree, like an optax ``GradientTransformation``:

    state = xbm_init(size, embed_dim, num_levels)
    state = xbm_update(state, embeddings, labels)      # jit-able FIFO ring of constant embeddings

It reproduces the reference queue (``suprank.losses.tools.XBM``) slot for slot:

* enqueue of a batch of ``B`` items: ``count += B`` (clamped at ``K + 100``); if ``ptr + B > K`` the batch
  overwrites the *last* ``B`` slots ``[K - B, K)`` and ``ptr`` resets to 0 (so some older items are
  overwritten before the oldest ones, as in the reference); otherwise it is written at ``[ptr, ptr + B)``
  and ``ptr`` advances;
* the valid part of the memory is every slot once ``count >= K``, else the slots ``[0, ptr)``.
  Slots start at zero; :attr:`XBMState.where` marks the valid ones (the reference slices them instead,
  which gives the same items in the same order).

How the reference trainer uses it (``suprank/engine/base_training_loop.py`` with ``config/memory/*.yaml``,
which all set ``factor = factor_true_loss = 1.0`` and ``activate = 5``; queue sizes 512 (small), the
training-set size (full) or 60000 (iNaturalist)). At every training step, whether the memory is
active or not:

1. the batch embeddings (detached) and labels are enqueued, and *then* the memory is read
   (``get_first=False``, the default), so the memory holds the current batch too, whose items are
   each query's own copy (a positive at similarity ~1);
2. for each criterion ``c`` with weight ``w_c``, the batch loss ``b_c`` is computed with the batch as
   reference set; if the criterion takes reference embeddings (``takes_ref_embeddings``: the rank losses,
   calibration, XBM contrastive, triplet, soft-binning AP, black-box AP; not the proxy losses nor
   FastAP) and ``epoch >= activate`` (epochs count from 1), its memory loss ``m_c`` is computed with
   the memory as reference set and the criterion's loss becomes

   .. math:: \\ell_c = \\frac{f_t \\, b_c + f \\, m_c}{f_t + f}

   with ``f_t = factor_true_loss`` and ``f = factor`` (so the default is the plain average of the batch
   and memory losses); otherwise ``l_c = b_c``;
3. the total loss is ``sum_c w_c l_c``. The logged value of a criterion is ``l_c``.

:func:`with_memory` computes ``l_c`` for one loss function; :func:`xbm_active` says whether a step
falls in an active epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp

from suprank_jax import steps as steps_lib
from suprank_jax.losses.inputs import LossInputs, memory_inputs

__all__ = [
  "XBMState",
  "xbm_init",
  "xbm_update",
  "xbm_inputs",
  "xbm_step",
  "xbm_active",
  "with_memory",
]

# The reference clamps its running count at K + 100 (only ``count >= K`` matters).
_COUNT_SLACK = 100


@flax.struct.dataclass
class XBMState:
  """A fixed-size memory of embeddings and labels.

  Attributes:
    embeddings: ``[K, D]`` stored embeddings (zeros in empty slots).
    labels: ``[K, L]`` stored integer labels.
    where: ``[K]`` bool, the valid slots.
    ptr: int32 scalar, the next write position.
    count: int32 scalar, items enqueued so far (clamped at ``K + 100``).
  """

  embeddings: jax.Array
  labels: jax.Array
  where: jax.Array
  ptr: jax.Array
  count: jax.Array

  @property
  def size(self) -> int:
    return self.embeddings.shape[0]


def xbm_init(size: int, embed_dim: int, num_levels: int, dtype=jnp.float32, label_dtype=jnp.int32) -> XBMState:
  """An empty memory of ``size`` slots.

  Args:
    size: ``K``, the number of slots (``queue_size`` in the reference).
    embed_dim: ``D``.
    num_levels: ``L``, label columns per item.
    dtype: storage dtype of the embeddings.
    label_dtype: storage dtype of the labels.

  Raises:
    ValueError: for a non-positive size, embedding size or number of levels.
  """
  for name, value in (("size", size), ("embed_dim", embed_dim), ("num_levels", num_levels)):
    if int(value) != value or value < 1:
      raise ValueError(f"xbm_init: {name} must be a positive integer, got {value!r}")
  return XBMState(
    embeddings=jnp.zeros((size, embed_dim), dtype),
    labels=jnp.zeros((size, num_levels), label_dtype),
    where=jnp.zeros((size,), bool),
    ptr=jnp.zeros((), jnp.int32),
    count=jnp.zeros((), jnp.int32),
  )


def xbm_update(state: XBMState, embeddings, labels) -> XBMState:
  """Enqueues a batch (as constants) with the reference's ring rule; see the module docstring.

  Args:
    state: the memory.
    embeddings: ``[B, D]`` batch embeddings (no gradient is kept).
    labels: ``[B, L]`` integer labels.

  Returns:
    The new memory.

  Raises:
    ValueError: when shapes do not match the memory or the batch is larger than the memory.
  """
  size, dim = state.embeddings.shape
  num_levels = state.labels.shape[1]
  if embeddings.ndim != 2 or embeddings.shape[1] != dim:
    raise ValueError(f"xbm_update: embeddings must be [B, {dim}], got {embeddings.shape}")
  if labels.ndim != 2 or labels.shape != (embeddings.shape[0], num_levels):
    raise ValueError(
      f"xbm_update: labels must be [{embeddings.shape[0]}, {num_levels}] (the memory has "
      f"{num_levels} label levels), got {labels.shape}"
    )
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"xbm_update: labels must be integers, got {labels.dtype}")
  batch = embeddings.shape[0]
  if batch > size:
    raise ValueError(f"xbm_update: a batch of {batch} items does not fit a memory of {size} slots")
  wraps = state.ptr + batch > size
  start = jnp.where(wraps, size - batch, state.ptr).astype(jnp.int32)
  # Both indices int32: a Python 0 becomes int64 under jax_enable_x64, and dynamic_update_slice wants
  # indices of one type.
  origin = (start, jnp.zeros((), jnp.int32))
  new_embeddings = jax.lax.dynamic_update_slice(
    state.embeddings, jax.lax.stop_gradient(embeddings).astype(state.embeddings.dtype), origin
  )
  new_labels = jax.lax.dynamic_update_slice(state.labels, labels.astype(state.labels.dtype), origin)
  ptr = jnp.where(wraps, 0, state.ptr + batch).astype(jnp.int32)
  count = jnp.minimum(state.count + batch, size + _COUNT_SLACK).astype(jnp.int32)
  where = (count >= size) | (jnp.arange(size) < ptr)
  return XBMState(new_embeddings, new_labels, where, ptr, count)


def xbm_inputs(state: XBMState, embeddings, labels, *, self_in_memory: bool = False) -> LossInputs:
  """:class:`LossInputs` of the queries against the memory (constant, empty slots masked).

  Args:
    state: the memory to read (after :func:`xbm_update` for the reference's order).
    embeddings: ``[B, D]`` query embeddings.
    labels: ``[B, L]`` query labels.
    self_in_memory: set ``self_index`` to the slots where this batch was just written, so that losses
      with ``include_self=False`` drop each query's own copy. The reference does not know these copies
      (``self_index = -1``, the default): they count as positives like any other item.

  Returns:
    Memory-mode loss inputs.
  """
  inputs = memory_inputs(embeddings, labels, state.embeddings, state.labels, state.where)
  if not self_in_memory:
    return inputs
  batch, size = embeddings.shape[0], state.size
  # Where the last xbm_update wrote: [K - B, K) after a wrap (ptr reset to 0), else [ptr - B, ptr).
  start = jnp.where(state.ptr == 0, size - batch, state.ptr - batch)
  return inputs.replace(self_index=(start + jnp.arange(batch)).astype(jnp.int32))


def xbm_step(state: XBMState, embeddings, labels, *, get_first: bool = False, self_in_memory: bool = False):
  """One training step's memory use: enqueue the batch and read the memory.

  Args:
    state: the memory.
    embeddings: ``[B, D]`` batch embeddings (with gradient: the queries keep it, the memory does not).
    labels: ``[B, L]`` labels.
    get_first: the reference option ``get_first`` (default False: enqueue, then read, so the batch is
      in the memory it is compared with). The reference's ``get_first=True`` reads the valid slots
      *before* enqueuing but returns views of its buffers, which the enqueue then overwrites in place:
      the loss sees the post-enqueue contents restricted to the pre-enqueue valid slots (so it can
      still contain the current batch). This is reproduced. No shipped config sets it; for a true
      read-before-write, call :func:`xbm_inputs` on the old state.
    self_in_memory: see :func:`xbm_inputs` (ignored with ``get_first``, where the batch is not in the
      memory read).

  Returns:
    ``(memory_inputs, new_state)``.
  """
  new_state = xbm_update(state, embeddings, labels)
  if get_first:
    return xbm_inputs(new_state.replace(where=state.where), embeddings, labels), new_state
  return xbm_inputs(new_state, embeddings, labels, self_in_memory=self_in_memory), new_state


def xbm_active(step, *, steps_per_epoch: int | steps_lib.EpochPlan, activate: int = 5):
  """Whether the memory losses are on at a 0-based training ``step``.

  The reference counts epochs from 1 and turns the memory losses on when ``epoch >= activate``; here
  ``epoch = step // steps_per_epoch + 1``, or, when ``steps_per_epoch`` is the run's
  :class:`~suprank_jax.steps.EpochPlan` (epochs of varying length), from the first step of epoch
  ``activate``: ``step >= plan.start(activate - 1)``. Works on Python ints and traced arrays.
  """
  if isinstance(steps_per_epoch, steps_lib.EpochPlan):
    return step >= steps_per_epoch.start(max(activate - 1, 0))
  if steps_per_epoch < 1:
    raise ValueError(f"xbm_active: steps_per_epoch must be positive, got {steps_per_epoch}")
  return step // steps_per_epoch + 1 >= activate


def with_memory(
  loss_fn: Callable[..., jax.Array],
  batch: LossInputs,
  memory: LossInputs,
  params=None,
  *,
  active,
  factor: float = 1.0,
  factor_true_loss: float = 1.0,
  **hyper_parameters,
):
  """One criterion's loss with the cross-batch memory, as the reference trainer combines them.

  .. math:: \\ell = \\frac{f_t \\, \\ell(batch) + f \\, \\ell(memory)}{f_t + f}
            \\text{ when active, else } \\ell(batch)

  Only for losses that take reference embeddings (the caller decides; proxy losses and FastAP use the
  batch loss alone in the reference).

  Args:
    loss_fn: ``loss_fn(inputs, params, **hyper_parameters) -> scalar``.
    batch: batch-mode inputs (the batch as its own reference set).
    memory: memory-mode inputs (e.g. from :func:`xbm_step`).
    params: the loss's learnable parameters, if any.
    active: Python bool or traced bool scalar (see :func:`xbm_active`); when traced, the memory loss is
      only evaluated under ``lax.cond`` when active.
    factor: ``f``, weight of the memory loss.
    factor_true_loss: ``f_t``, weight of the batch loss.
    **hyper_parameters: passed to ``loss_fn``.

  Returns:
    Scalar loss.
  """
  if factor + factor_true_loss == 0:
    raise ValueError("with_memory: factor + factor_true_loss must not be 0")
  batch_loss = loss_fn(batch, params, **hyper_parameters)

  def mixed():
    memory_loss = loss_fn(memory, params, **hyper_parameters).astype(batch_loss.dtype)
    return (factor_true_loss * batch_loss + factor * memory_loss) / (factor_true_loss + factor)

  if isinstance(active, (bool, int)):
    return mixed() if active else batch_loss
  return jax.lax.cond(active, mixed, lambda: batch_loss)
