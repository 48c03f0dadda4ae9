"""Step functions, the differentiable rank primitive and a safe reduction for the rank losses.

A rank loss scores every query ``b`` against items ``j`` with ``scores[b, j]``. The rank of item ``i``
is one plus the number of items scored above it,

.. math:: rank(i) = 1 + \\sum_{j \\ne i} H(s_j - s_i),

and a differentiable surrogate replaces the Heaviside step ``H`` by a *step function* (rax
``approx_ranks(step_fn=...)`` style). SupRank (Ramzi et al.) uses a different step for items of a
*lower* level than ``i`` (``lower_step_fn``: the upper-bound surrogate) than for items of an equal or
higher level (``step_fn``: the exact Heaviside), so that the AP-type score it yields is a lower bound
of the true score. Step functions here are elementwise callables ``x -> y`` on ``x = s_j - s_i``;
bind their hyper-parameters with :func:`functools.partial`:

* :func:`heaviside`: ``H(0) = 1``, no gradient.
* :func:`tau_sigmoid`: ``sigmoid(clip(x / tau, -50, 50))``; the gradient is exactly 0 beyond 50 tau.
* :func:`suprank_surrogate`: sigmoid for ``x <= 0``, ``start + sigmoid`` on ``(0, delta]``, then linear.
* :func:`hrank_surrogate`: HAPPIER's rank+ step for items of a *higher* level.

:func:`step_rank` / :func:`step_hrank` combine them with a level comparison exactly like the reference's
functions of the same names. :func:`approx_ranks` and :func:`approx_rank_plus` are the dense
``[num_queries, num_items]`` primitives (``O(B M^2)`` memory); :func:`item_ranks` ranks only a gathered
block of items against all items, in chunks, which is what the losses use.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from suprank_jax import hierarchy
from suprank_jax.losses.inputs import LossInputs

__all__ = [
    "heaviside",
    "tau_sigmoid",
    "suprank_surrogate",
    "hrank_surrogate",
    "step_rank",
    "step_hrank",
    "approx_ranks",
    "approx_rank_plus",
    "item_ranks",
    "gather_items",
    "safe_reduce",
    "static_item_count",
    "guard_item_count",
    "rank_loss_inputs",
]

StepFn = Callable[[jax.Array], jax.Array]

# Elements of one [B, P, chunk] block of pair terms (16 MiB per float32 array).
_PAIR_BLOCK = 1 << 22


def heaviside(x):
  """Heaviside step with ``H(0) = 1`` and no gradient.

  >>> heaviside(jnp.array([-0.5, 0.0, 0.5])).tolist()
  [0.0, 1.0, 1.0]
  """
  return lax.stop_gradient((x >= 0).astype(x.dtype))


def tau_sigmoid(x, *, tau: float = 0.01):
  """Temperature sigmoid, clamped so that its gradient is exactly zero for ``|x| > 50 tau``.

  .. math:: \\sigma_\\tau(x) = \\frac{1}{1 + \\exp(-\\mathrm{clip}(x / \\tau, -50, 50))}

  >>> float(tau_sigmoid(jnp.array(0.0)))
  0.5
  """
  # The reference's expression (not jax.nn.sigmoid) so that the tails' tiny gradients agree too.
  return 1.0 / (1.0 + jnp.exp(-jnp.clip(x / tau, -50.0, 50.0)))


def suprank_surrogate(x, *, tau: float = 0.01, rho: float = 100.0, delta: float | None = 0.05,
                      start: float | None = 0.5, offset: float | None = 1.44):
  """The SupRank upper-bound step for items of a lower level than the ranked item.

  .. math::
     r(x) = \\begin{cases} \\sigma_\\tau(x) & x \\le 0 \\\\
                           start + \\sigma_\\tau(x) & 0 < x \\le \\delta \\\\
                           \\rho (x - \\delta) + offset & x > \\delta \\end{cases}

  Variants of the reference: ``offset=None`` uses ``offset = sigma_tau(delta) + start`` (continuous at
  ``delta``); ``delta=None`` uses ``rho * x + offset`` for every ``x > 0``; ``rho == -1`` is the plain
  sigmoid everywhere.

  Args:
    x: score differences ``s_j - s_i``, any shape.
    tau, rho, delta, start, offset: see above.

  Returns:
    Array shaped like ``x``.

  >>> [round(float(v), 3) for v in suprank_surrogate(jnp.array([0.03, 0.1]))]
  [1.453, 6.44]
  """
  sig = tau_sigmoid(x, tau=tau)
  if rho == -1:
    return sig
  if delta is None:
    return jnp.where(x > 0, rho * x + offset, sig)
  if offset is None:
    offset = 1.0 / (1.0 + math.exp(-min(max(delta / tau, -50.0), 50.0))) + start
  linear = rho * (x - delta) + offset
  return jnp.where(x <= 0, sig, jnp.where(x <= delta, start + sig, linear))


def hrank_surrogate(x, *, beta: float = 25.0, leak: float = 10.0, gamma: float = 0.5):
  """HAPPIER's rank+ step for items of a higher level than the ranked item.

  .. math:: h(x) = \\begin{cases} leak \\cdot x & x \\le 0 \\\\ \\min(\\beta x + \\gamma, 1) & x > 0 \\end{cases}

  (``H(x)`` instead of the clamped line for ``x > 0`` when ``gamma > 1``, as in the reference.)
  """
  if gamma > 1.0:
    positive = heaviside(x)
  else:
    positive = jnp.minimum(beta * x + gamma, 1.0)
  return jnp.where(x > 0, positive, leak * x)


def step_rank(x, lower, *, tau: float = 0.01, rho: float = 100.0, delta: float | None = 0.05,
              start: float | None = 0.5, offset: float | None = 1.44):
  """The reference's ``step_rank``: :func:`suprank_surrogate` where ``lower``, Heaviside elsewhere.

  Args:
    x: ``s_j - s_i``, any shape.
    lower: bool, broadcastable to ``x``: item ``j`` has a lower level than item ``i``.
  """
  surrogate = suprank_surrogate(x, tau=tau, rho=rho, delta=delta, start=start, offset=offset)
  return jnp.where(lower, surrogate, heaviside(x))


def step_hrank(x, higher, *, beta: float = 25.0, leak: float = 10.0, gamma: float = 0.5):
  """The reference's ``step_hrank``: :func:`hrank_surrogate` where ``higher``, Heaviside elsewhere.

  Args:
    x: ``s_j - s_i``, any shape.
    higher: bool, broadcastable to ``x``: item ``j`` has a higher level than item ``i``.
  """
  return jnp.where(higher, hrank_surrogate(x, beta=beta, leak=leak, gamma=gamma), heaviside(x))


def _pair_steps(x, lower, step_fn, lower_step_fn):
  if lower_step_fn is None or lower_step_fn is step_fn or lower is None:
    return step_fn(x)
  return jnp.where(lower, lower_step_fn(x), step_fn(x))


def _check_scores(scores, name="scores"):
  if scores.ndim != 2:
    raise ValueError(f"{name} must be [num_queries, num_items], got shape {scores.shape}")
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise ValueError(f"{name} must be floating point, got dtype {scores.dtype}")


def _check_same_shape(scores, other, name):
  if other is not None and tuple(other.shape) != tuple(scores.shape):
    raise ValueError(f"{name} must have the shape of scores {tuple(scores.shape)}, got {tuple(other.shape)}")


def approx_ranks(scores, levels=None, *, where=None, step_fn: StepFn = heaviside,
                 lower_step_fn: StepFn | None = None):
  """Dense (approximate) ranks of every item.

  .. math:: rank_{bi} = 1 + \\sum_{j \\ne i,\\ where_{bj}} r_{bij}(s_{bj} - s_{bi})

  where ``r`` is ``lower_step_fn`` when ``levels[b, j] < levels[b, i]`` and ``step_fn`` otherwise.
  Builds ``[B, M, M]`` arrays: use :func:`item_ranks` for large inputs.

  Args:
    scores: ``[B, M]`` scores.
    levels: optional ``[B, M]`` integer levels (needed only with ``lower_step_fn``).
    where: optional ``[B, M]`` bool, items that exist.
    step_fn: step for items of an equal or higher level (all items without ``lower_step_fn``).
    lower_step_fn: step for items of a lower level.

  Returns:
    ``[B, M]`` ranks (>= 1).

  >>> approx_ranks(jnp.array([[0.1, 0.9, 0.5]])).tolist()
  [[3.0, 1.0, 2.0]]
  """
  _check_scores(scores)
  _check_same_shape(scores, levels, "levels")
  _check_same_shape(scores, where, "where")
  m = scores.shape[-1]
  x = scores[:, None, :] - scores[:, :, None]
  lower = None if levels is None else levels[:, None, :] < levels[:, :, None]
  steps = _pair_steps(x, lower, step_fn, lower_step_fn)
  mask = ~jnp.eye(m, dtype=bool)[None]
  if where is not None:
    mask = mask & where[:, None, :]
  return 1.0 + jnp.sum(jnp.where(mask, steps, 0.0), axis=-1)


def approx_rank_plus(scores, levels, relevances, *, where=None, step_fn: StepFn = heaviside,
                     higher_step_fn: StepFn | None = None):
  """Dense (approximate) relevance-weighted rank among relevant items (HAPPIER's rank+).

  .. math:: rank^+_{bi} = rel_{bi} + \\sum_{j \\ne i} h_{bij}(s_{bj} - s_{bi}) \\min(rel_{bi}, rel_{bj})

  where ``h`` is ``higher_step_fn`` when ``levels[b, j] > levels[b, i]`` and ``step_fn`` otherwise.

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (may be None without ``higher_step_fn``).
    relevances: ``[B, M]`` non-negative relevances.
    where: optional ``[B, M]`` bool, items that exist.
    step_fn, higher_step_fn: see above.

  Returns:
    ``[B, M]``; 0 for items of relevance 0.
  """
  _check_scores(scores)
  _check_same_shape(scores, levels, "levels")
  _check_same_shape(scores, relevances, "relevances")
  _check_same_shape(scores, where, "where")
  rel = relevances.astype(scores.dtype)
  if where is not None:
    rel = jnp.where(where, rel, 0.0)
  m = scores.shape[-1]
  x = scores[:, None, :] - scores[:, :, None]
  higher = None if levels is None else levels[:, None, :] > levels[:, :, None]
  steps = _pair_steps(x, higher, step_fn, higher_step_fn)
  weight = jnp.minimum(rel[:, :, None], rel[:, None, :])
  mask = ~jnp.eye(m, dtype=bool)[None]
  return rel + jnp.sum(jnp.where(mask, steps * weight, 0.0), axis=-1)


def gather_items(relevances, num_items: int, *, where=None):
  """Indices of the items of non-zero relevance of every row, padded to a static count.

  Relevant items come first, in increasing index order, then the others (padding).

  Args:
    relevances: ``[B, M]``; items with ``relevances > 0`` (and ``where``) are gathered.
    num_items: static ``P <= M``.
    where: optional ``[B, M]`` bool.

  Returns:
    ``(index, valid)``: ``[B, P]`` int32 indices into ``M`` (all distinct within a row) and ``[B, P]``
    bool, True for gathered relevant items. Rows with more than ``P`` relevant items are truncated.
  """
  relevant = relevances > 0
  if where is not None:
    relevant = relevant & where
  b, m = relevant.shape
  if num_items >= m:
    index = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32), (b, m))
    return index, relevant
  j = jnp.arange(m, dtype=jnp.int32)
  key = jnp.where(relevant, m - j, -j)
  _, index = lax.top_k(key, num_items)
  index = index.astype(jnp.int32)
  return index, jnp.take_along_axis(relevant, index, axis=-1)


def _step_values(x, lower, step_fn, lower_step_fn):
  """Step values and their elementwise derivatives (the step functions act elementwise)."""
  ones = jnp.ones_like(x)
  if lower_step_fn is None or lower_step_fn is step_fn or lower is None:
    return jax.jvp(step_fn, (x,), (ones,))
  value, slope = jax.jvp(step_fn, (x,), (ones,))
  lower_value, lower_slope = jax.jvp(lower_step_fn, (x,), (ones,))
  return jnp.where(lower, lower_value, value), jnp.where(lower, lower_slope, slope)


def _item_rank_sums(item_scores, item_levels, item_index, scores, levels, where, offset, *, step_fn,
                    lower_step_fn):
  """``sum_j r(s_j - s_i)`` over a block of items ``j`` (global indices ``offset + arange``).

  A custom VJP: the backward pass recomputes the elementwise slopes ``r'(s_j - s_i)`` and reduces them
  both ways, instead of storing several ``[B, P, chunk]`` residuals (2-3x faster, far less memory).
  """

  def pairs(item_scores, scores, item_levels, item_index, levels, where, offset):
    x = scores[:, None, :] - item_scores[:, :, None]
    lower = None if levels is None else levels[:, None, :] < item_levels[:, :, None]
    column = offset + jnp.arange(scores.shape[-1], dtype=jnp.int32)
    mask = (column[None, None, :] != item_index[:, :, None]) & where[:, None, :]
    return x, lower, mask

  # Everything is an explicit argument: a custom_vjp function must not close over tracers.
  @jax.custom_vjp
  def rank_sums(*args):
    x, lower, mask = pairs(*args)
    return jnp.sum(jnp.where(mask, _pair_steps(x, lower, step_fn, lower_step_fn), 0.0), axis=-1)

  def fwd(*args):
    return rank_sums(*args), args

  def bwd(args, cotangent):
    x, lower, mask = pairs(*args)
    _, slope = _step_values(x, lower, step_fn, lower_step_fn)
    weighted = jnp.where(mask, slope, 0.0) * cotangent[:, :, None]
    return (-jnp.sum(weighted, axis=-1), jnp.sum(weighted, axis=1)) + (None,) * 5

  rank_sums.defvjp(fwd, bwd)
  return rank_sums(item_scores, scores, item_levels, item_index, levels, where, offset)


def item_ranks(scores, item_index, levels=None, *, where=None, step_fn: StepFn = heaviside,
               lower_step_fn: StepFn | None = None, pair_block: int = _PAIR_BLOCK):
  """Ranks of a gathered block of items against all items, in bounded memory.

  Same value as ``take_along_axis(approx_ranks(scores, levels, ...), item_index, -1)`` but with
  ``[B, P, chunk]`` pair blocks instead of ``[B, M, M]``: the items axis is scanned in chunks of
  ``pair_block // (B * P)`` and large ``P`` is split with ``lax.map``. The backward pass recomputes
  each block's step slopes (a custom VJP), so no ``[B, P, M]`` residual is ever stored.

  Args:
    scores: ``[B, M]`` scores.
    item_index: ``[B, P]`` int indices of the items to rank (see :func:`gather_items`).
    levels: optional ``[B, M]`` integer levels.
    where: optional ``[B, M]`` bool, items that exist.
    step_fn, lower_step_fn: as in :func:`approx_ranks`.
    pair_block: maximum number of pair terms per block.

  Returns:
    ``[B, P]`` ranks.
  """
  _check_scores(scores)
  _check_same_shape(scores, levels, "levels")
  _check_same_shape(scores, where, "where")
  if item_index.ndim != 2 or item_index.shape[0] != scores.shape[0]:
    raise ValueError(f"item_index must be [num_queries, P] with num_queries={scores.shape[0]}, got {item_index.shape}")
  b, m = scores.shape
  p = item_index.shape[1]
  if where is None:
    where = jnp.ones((b, m), bool)
  item_scores = jnp.take_along_axis(scores, item_index, axis=-1)
  item_levels = None if levels is None else jnp.take_along_axis(levels, item_index, axis=-1)
  kw = dict(step_fn=step_fn, lower_step_fn=lower_step_fn)

  min_chunk = min(m, 256)
  if b * p * min_chunk > pair_block and p > 1:
    # Split the items to rank; each part runs the chunked path below.
    part = max(1, pair_block // (b * min_chunk))
    num_parts = -(-p // part)
    pad = num_parts * part - p
    idx = jnp.pad(item_index, ((0, 0), (0, pad)))
    parts = idx.reshape(b, num_parts, part).transpose(1, 0, 2)
    ranks = lax.map(
        lambda ix: item_ranks(scores, ix, levels, where=where, pair_block=pair_block, **kw), parts)
    return ranks.transpose(1, 0, 2).reshape(b, num_parts * part)[:, :p]

  chunk = max(1, pair_block // (b * p))
  if chunk >= m:
    return 1.0 + _item_rank_sums(item_scores, item_levels, item_index, scores, levels, where, 0, **kw)

  num_chunks = -(-m // chunk)
  pad = num_chunks * chunk - m

  def split(a, fill):
    a = jnp.pad(a, ((0, 0), (0, pad)), constant_values=fill)
    return a.reshape(b, num_chunks, chunk).transpose(1, 0, 2)

  xs = (split(scores, 0), None if levels is None else split(levels, 0), split(where, False),
        jnp.arange(num_chunks, dtype=jnp.int32) * chunk)

  @jax.checkpoint
  def body(total, chunk_xs):
    s, lv, w, off = chunk_xs
    return total + _item_rank_sums(item_scores, item_levels, item_index, s, lv, w, off, **kw), None

  total, _ = lax.scan(body, jnp.zeros((b, p), scores.dtype), xs)
  return 1.0 + total


def safe_reduce(values, *, where=None, reduce_fn: Callable | None = jnp.mean):
  """Reduces per-query values over the valid queries without NaN when none is valid.

  Invalid entries are replaced by 0 (so their gradient is 0). ``jnp.mean`` divides by
  ``max(count, 1)``, so an all-invalid input gives 0 and a finite gradient; NaNs at valid entries
  still propagate. ``reduce_fn=None`` returns the masked per-query values.

  >>> float(safe_reduce(jnp.array([1.0, 3.0, 7.0]), where=jnp.array([True, True, False])))
  2.0
  """
  if where is None:
    where = jnp.ones(values.shape, bool)
  masked = jnp.where(where, values, 0.0)
  if reduce_fn is None:
    return masked
  if reduce_fn is jnp.mean:
    return jnp.sum(masked) / jnp.maximum(jnp.sum(where), 1).astype(values.dtype)
  if reduce_fn is jnp.sum:
    return jnp.sum(masked)
  out = reduce_fn(masked, where=where)
  return jnp.where(jnp.any(where), out, jnp.zeros_like(out))


def _is_traced(x) -> bool:
  return isinstance(x, jax.core.Tracer)


def static_item_count(count, num_items: int, max_items: int | None) -> int:
  """The static block size ``P`` for the relevant items of every row.

  ``max_items`` when given (capped at ``num_items``); else the exact maximum ``count`` when it is
  concrete (eager calls, or labels known outside ``jit``); else ``num_items`` (exact but
  ``O(B M^2)`` work: pass ``max_positives`` under ``jit`` for speed).
  """
  if max_items is not None:
    if max_items < 1:
      raise ValueError(f"max_positives must be >= 1, got {max_items}")
    return min(int(max_items), num_items)
  if not _is_traced(count):
    return min(max(int(count), 1), num_items)
  return num_items


def guard_item_count(value, count, size: int, name: str):
  """NaN (and a printed explanation) when a row has more relevant items than the static ``size``.

  A row with more relevant items than ``max_positives`` would otherwise be silently truncated.
  """
  if _is_traced(count):

    def warn(c):
      if np.any(np.asarray(c) > size):
        print(f"{name}: a query has {np.max(c)} relevant items > max_positives={size}; the loss is NaN. "
              "Raise max_positives.")

    jax.debug.callback(warn, count)
  elif int(count) > size:
    raise ValueError(f"{name}: a query has {int(count)} relevant items > max_positives={size}")
  return jnp.where(count > size, jnp.nan, value)


def rank_loss_inputs(inputs: LossInputs, *, hierarchy_level: int | str = 0, include_self: bool = True,
                     relevance_type: str = "pop", relevance_alpha=1.0):
  """Scores, pair levels, relevances and the item mask of a rank loss on :class:`LossInputs`.

  Args:
    inputs: queries ``[B, D]`` against references ``[M, D]``.
    hierarchy_level: an int ``k`` compares label column ``k`` only (levels and relevances in {0, 1});
      ``"multi"`` counts the agreeing columns (levels ``0..L``) and uses hierarchical relevances.
    include_self: keep each query's own copy in its reference set (the reference behaviour in batch
      mode: the query is one of its own positives). False removes it (``inputs.self_mask()``).
    relevance_type, relevance_alpha: :func:`suprank_jax.hierarchy.relevance_matrix` (``"multi"`` only).

  Returns:
    ``(scores, levels, relevances, where)``: ``[B, M]`` float (>= float32), int32, float, bool.

  Raises:
    ValueError: on an unknown ``hierarchy_level``.
  """
  scores = inputs.scores()
  b, m = scores.shape
  where = jnp.broadcast_to(inputs.ref_where.astype(bool)[None, :], (b, m))
  if not include_self:
    where = where & ~inputs.self_mask()
  if isinstance(hierarchy_level, str):
    if hierarchy_level.lower() != "multi":
      raise ValueError(f"hierarchy_level must be an int label column or 'multi', got {hierarchy_level!r}")
    levels = hierarchy.pair_levels(inputs.labels, inputs.ref_labels)
    relevances = hierarchy.relevance_matrix(levels, inputs.num_levels, kind=relevance_type,
                                            alpha=relevance_alpha, where=where)
  else:
    levels = hierarchy.pair_levels(inputs.labels, inputs.ref_labels, level=int(hierarchy_level))
    relevances = levels
  relevances = jnp.where(where, relevances.astype(scores.dtype), 0.0)
  return scores, levels, relevances, where
