"""Step functions, the differentiable rank primitives and the one driver of every rank loss.

A rank loss scores every query ``b`` against items ``j`` with ``scores[b, j]``. The rank of item ``i``
is one plus the number of items scored above it,

.. math:: rank(i) = 1 + \\sum_{j \\ne i} H(s_j - s_i),

and a differentiable surrogate replaces the Heaviside step ``H`` by a *step function* (rax
``approx_ranks(step_fn=...)`` style). SupRank (Ramzi et al.) uses a different step for items of a
*lower* level than ``i`` (``lower_step_fn``: the upper-bound surrogate) than for items of an equal or
higher level (``step_fn``: the exact Heaviside), so that the AP-type score it yields is a lower bound
of the true score. Step functions are elementwise callables ``x -> y`` on ``x = s_j - s_i``; bind their
hyper-parameters with :func:`functools.partial`:

* :func:`heaviside`: ``H(0) = 1``, no gradient.
* :func:`tau_sigmoid`: ``sigmoid(clip(x / tau, -50, 50))``; the gradient is exactly 0 beyond 50 tau.
* :func:`suprank_surrogate`: sigmoid for ``x <= 0``, ``start + sigmoid`` on ``(0, delta]``, then linear.
* :func:`hrank_surrogate`: HAPPIER's rank+ step for items of a *higher* level.

The two surrogates' hyper-parameters travel as one frozen, hashable object each, which is also the bound
step function: :class:`SupRankSurrogate` (the ``surrogate=`` of every SupRank loss) and
:class:`HRankSurrogate` (SupHAP's ``hrank=``). Their defaults are written once, in :data:`SUPRANK` and
:data:`HRANK`; the config keys are their fields (``config.losses.sup_ap.tau``, see ``combine.py``).

**One driver, many score functions** (rax ``losses.py`` over ``utils.approx_ranks``): every rank loss
(AP, H-AP, recall@k, NDCG) is its score function handed to :func:`rank_loss`, which validates the
inputs, computes in float32 at least, gathers each query's relevant items into a ``[B, P]`` block of
static size ``P``, ranks them against all items with the loss's step functions (:func:`item_ranks`),
calls the score function on the :class:`RankedItems`, reduces ``1 - score`` over the queries that have a
score (:func:`safe_reduce`) and makes the loss NaN when a query had more relevant items than ``P``.

``P`` is ``max_positives`` when given (under ``jit`` give the sampler's bound, e.g. the samples per
class; a row with more relevant items makes the loss NaN and prints why), else the exact count when
the labels are concrete, else ``M`` (exact, ``O(B M^2)``). Only relevant items are ranked: ``[B, P, M]``
work instead of the reference's ``[B, M, M]``, in chunks of the items axis.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from suprank_jax.losses.inputs import check_scores, compute_dtype

__all__ = [
  "SupRankSurrogate",
  "HRankSurrogate",
  "SUPRANK",
  "HRANK",
  "heaviside",
  "tau_sigmoid",
  "suprank_surrogate",
  "hrank_surrogate",
  "approx_ranks",
  "gather_items",
  "item_ranks",
  "RankedItems",
  "rank_plus",
  "rank_loss",
  "safe_reduce",
  "nonzero_mean",
]

StepFn = Callable[[jax.Array], jax.Array]

# Elements of one [B, P, chunk] block of pair terms (16 MiB per float32 array).
_PAIR_BLOCK = 1 << 22


@dataclasses.dataclass(frozen=True)
class SupRankSurrogate:
  """The SupRank surrogate's hyper-parameters, bound: a step function ``x -> suprank_surrogate(x, ...)``.

  The SupRank losses take one as ``surrogate=`` (their ``lower_step_fn``); the config lists its fields
  flat (``config.losses.sup_ap.tau``). Defaults: ROADMAP / SupRank on SOP (the iNaturalist configs use
  ``offset=1.0, start=0.0``); ``tau`` is also the smooth baselines' temperature.

  Attributes:
    tau: temperature of the sigmoid.
    rho: slope beyond ``delta`` (``-1``: the plain sigmoid everywhere).
    delta: end of the sigmoid part above 0 (None: the linear part starts at 0).
    start: jump of the step at 0.
    offset: value at ``delta`` (None: continuous there).
  """

  tau: float = 0.01
  rho: float = 100.0
  delta: float | None = 0.05
  start: float | None = 0.5
  offset: float | None = 1.44

  def __call__(self, x):
    return suprank_surrogate(x, tau=self.tau, rho=self.rho, delta=self.delta, start=self.start, offset=self.offset)


@dataclasses.dataclass(frozen=True)
class HRankSurrogate:
  """HAPPIER's rank+ step's hyper-parameters (``HAPPIER.yaml``), bound: ``x -> hrank_surrogate(x, ...)``.

  SupHAP takes one as ``hrank=``; the config lists its fields flat (``beta``, ``leak``, ``gamma``).
  """

  beta: float = 25.0
  leak: float = 10.0
  gamma: float = 0.5

  def __call__(self, x):
    return hrank_surrogate(x, beta=self.beta, leak=self.leak, gamma=self.gamma)


SUPRANK = SupRankSurrogate()
HRANK = HRankSurrogate()


def heaviside(x):
  """Heaviside step with ``H(0) = 1`` and no gradient.

  >>> heaviside(jnp.array([-0.5, 0.0, 0.5])).tolist()
  [0.0, 1.0, 1.0]
  """
  return lax.stop_gradient((x >= 0).astype(x.dtype))


def tau_sigmoid(x, *, tau: float = SUPRANK.tau):
  """Temperature sigmoid, clamped so that its gradient is exactly zero for ``|x| > 50 tau``.

  .. math:: \\sigma_\\tau(x) = \\frac{1}{1 + \\exp(-\\mathrm{clip}(x / \\tau, -50, 50))}

  >>> float(tau_sigmoid(jnp.array(0.0)))
  0.5
  """
  # The reference's expression (not jax.nn.sigmoid) so that the tails' tiny gradients agree too.
  return 1.0 / (1.0 + jnp.exp(-jnp.clip(x / tau, -50.0, 50.0)))


def suprank_surrogate(
  x,
  *,
  tau: float = SUPRANK.tau,
  rho: float = SUPRANK.rho,
  delta: float | None = SUPRANK.delta,
  start: float | None = SUPRANK.start,
  offset: float | None = SUPRANK.offset,
):
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
    tau, rho, delta, start, offset: see above (defaults: :data:`SUPRANK`).

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


def hrank_surrogate(x, *, beta: float = HRANK.beta, leak: float = HRANK.leak, gamma: float = HRANK.gamma):
  """HAPPIER's rank+ step for items of a higher level than the ranked item.

  .. math:: h(x) = \\begin{cases} leak \\cdot x & x \\le 0 \\\\ \\min(\\beta x + \\gamma, 1) & x > 0 \\end{cases}

  (``H(x)`` instead of the clamped line for ``x > 0`` when ``gamma > 1``, as in the reference.)
  """
  if gamma > 1.0:
    positive = heaviside(x)
  else:
    positive = jnp.minimum(beta * x + gamma, 1.0)
  return jnp.where(x > 0, positive, leak * x)


def _pair_steps(x, other, step_fn, other_step_fn):
  """``other_step_fn`` where ``other`` (a level comparison), ``step_fn`` elsewhere."""
  if other_step_fn is None or other_step_fn is step_fn or other is None:
    return step_fn(x)
  return jnp.where(other, other_step_fn(x), step_fn(x))


def approx_ranks(scores, levels=None, *, where=None, step_fn: StepFn = heaviside, lower_step_fn: StepFn | None = None):
  """(Approximate) ranks of every item: :func:`item_ranks` of all ``M`` items.

  .. math:: rank_{bi} = 1 + \\sum_{j \\ne i,\\ where_{bj}} r_{bij}(s_{bj} - s_{bi})

  where ``r`` is ``lower_step_fn`` when ``levels[b, j] < levels[b, i]`` and ``step_fn`` otherwise.
  With the Heaviside step these are the exact ranks (ties count as ranked before).

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
  check_scores("approx_ranks", scores, levels=levels, where=where)
  b, m = scores.shape
  index = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32), (b, m))
  return item_ranks(scores, index, levels, where=where, step_fn=step_fn, lower_step_fn=lower_step_fn)


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


def _item_rank_sums(item_scores, item_levels, item_index, scores, levels, where, offset, *, step_fn, lower_step_fn):
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


def item_ranks(
  scores,
  item_index,
  levels=None,
  *,
  where=None,
  step_fn: StepFn = heaviside,
  lower_step_fn: StepFn | None = None,
  pair_block: int = _PAIR_BLOCK,
):
  """Ranks of a gathered block of items against all items, in bounded memory.

  .. math:: rank_{bp} = 1 + \\sum_{j \\ne i_{bp},\\ where_{bj}} r_{bpj}(s_{bj} - s_{b i_{bp}})

  where ``r`` is ``lower_step_fn`` when ``levels[b, j] < levels[b, i]`` and ``step_fn`` otherwise, with
  ``[B, P, chunk]`` pair blocks instead of ``[B, M, M]``: the items axis is scanned in chunks of
  ``pair_block // (B * P)`` and large ``P`` is split with ``lax.map``. The backward pass recomputes
  each block's step slopes (a custom VJP), so no ``[B, P, M]`` residual is ever stored.

  Args:
    scores: ``[B, M]`` scores.
    item_index: ``[B, P]`` int indices of the items to rank (see :func:`gather_items`).
    levels: optional ``[B, M]`` integer levels.
    where: optional ``[B, M]`` bool, items that exist.
    step_fn: step for items of an equal or higher level (all items without ``lower_step_fn``).
    lower_step_fn: step for items of a lower level.
    pair_block: maximum number of pair terms per block.

  Returns:
    ``[B, P]`` ranks.
  """
  check_scores("item_ranks", scores, levels=levels, where=where)
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
    ranks = lax.map(lambda ix: item_ranks(scores, ix, levels, where=where, pair_block=pair_block, **kw), parts)
    return ranks.transpose(1, 0, 2).reshape(b, num_parts * part)[:, :p]

  chunk = max(1, pair_block // (b * p))
  if chunk >= m:
    return 1.0 + _item_rank_sums(item_scores, item_levels, item_index, scores, levels, where, 0, **kw)

  num_chunks = -(-m // chunk)
  pad = num_chunks * chunk - m

  def split(a, fill):
    a = jnp.pad(a, ((0, 0), (0, pad)), constant_values=fill)
    return a.reshape(b, num_chunks, chunk).transpose(1, 0, 2)

  xs = (
    split(scores, 0),
    None if levels is None else split(levels, 0),
    split(where, False),
    jnp.arange(num_chunks, dtype=jnp.int32) * chunk,
  )

  @jax.checkpoint
  def body(total, chunk_xs):
    s, lv, w, off = chunk_xs
    return total + _item_rank_sums(item_scores, item_levels, item_index, s, lv, w, off, **kw), None

  total, _ = lax.scan(body, jnp.zeros((b, p), scores.dtype), xs)
  return 1.0 + total


class RankedItems(NamedTuple):
  """The gathered relevant items of every query and their ranks: what a score function sees.

  Attributes (all ``[B, P]``):
    index: int32 column of each item among the ``M`` items.
    valid: bool, a relevant item (False: padding of a row with fewer than ``P``).
    rank: its (surrogate) rank among all valid items.
    scores: its score.
    levels: its int32 level.
    relevances: its relevance (0 at padding).
  """

  index: jax.Array
  valid: jax.Array
  rank: jax.Array
  scores: jax.Array
  levels: jax.Array
  relevances: jax.Array


def rank_plus(items: RankedItems, *, step_fn: StepFn = heaviside, higher_step_fn: StepFn | None = None):
  """Relevance-weighted rank among the relevant items (HAPPIER's rank+), ``[B, P]``.

  .. math:: rank^+_{i} = rel_i + \\sum_{j \\ne i} h_{ij}(s_j - s_i) \\min(rel_i, rel_j)

  over the gathered items (only relevant items have ``min(rel_i, rel_j) > 0``), where ``h`` is
  ``higher_step_fn`` when ``levels_j > levels_i`` and ``step_fn`` otherwise. 0 at padding.
  """
  x = items.scores[:, None, :] - items.scores[:, :, None]
  higher = items.levels[:, None, :] > items.levels[:, :, None]
  steps = _pair_steps(x, higher, step_fn, higher_step_fn)
  rel = items.relevances
  p = rel.shape[1]
  weight = jnp.where(jnp.eye(p, dtype=bool)[None], 0.0, jnp.minimum(rel[:, :, None], rel[:, None, :]))
  return rel + jnp.sum(steps * weight, axis=-1)


ScoreFn = Callable[[RankedItems], tuple[jax.Array, jax.Array]]


def rank_loss(
  scores,
  levels,
  relevances=None,
  *,
  score_fn: ScoreFn,
  where=None,
  step_fn: StepFn = heaviside,
  lower_step_fn: StepFn | None = None,
  max_positives: int | None = None,
  reduce_fn: Callable | None = jnp.mean,
  pair_block: int | None = None,
  name: str = "rank_loss",
):
  """The driver of every rank loss: ``reduce_fn`` over queries of ``1 - score_fn(ranked items)``.

  Args:
    scores: ``[B, M]`` scores.
    levels: ``[B, M]`` integer levels (decide which step function a pair uses).
    relevances: ``[B, M]`` non-negative relevances (``levels`` when None); items with ``relevances > 0``
      are gathered and ranked.
    score_fn: ``score_fn(items: RankedItems) -> (score, has_score)``, two ``[B]`` arrays: the score in
      ``[0, 1]`` of every query and whether it has one (queries without one are left out of the reduction).
    where: optional ``[B, M]`` bool, items that exist.
    step_fn / lower_step_fn: rank steps for equal-or-higher / lower level items (:func:`item_ranks`).
    max_positives: static bound on the relevant items of a row (see the module docstring).
    reduce_fn: reduction over queries (:func:`safe_reduce`); None returns ``[B]`` per-query losses
      (0 for a query without a score).
    pair_block: memory budget, see :func:`item_ranks` (None: its default).
    name: the loss, for messages.

  Returns:
    Scalar loss, or ``[B]`` with ``reduce_fn=None``; NaN when a row has more relevant items than
    ``max_positives`` (traced inputs; eager inputs raise).

  Raises:
    ValueError: for inputs of the wrong shape or dtype, or (eagerly) too many relevant items.
  """
  check_scores(name, scores, levels=levels, relevances=relevances, where=where)
  if not jnp.issubdtype(levels.dtype, jnp.integer):
    raise ValueError(f"{name}: levels must be integers, got dtype {levels.dtype}")
  scores = scores.astype(compute_dtype(scores))
  where = jnp.ones(scores.shape, bool) if where is None else where.astype(bool)
  relevances = jnp.where(where, (levels if relevances is None else relevances).astype(scores.dtype), 0.0)
  levels = levels.astype(jnp.int32)
  count = jnp.max(jnp.sum(relevances > 0, axis=-1))
  size = _static_item_count(count, scores.shape[-1], max_positives)
  index, valid = gather_items(relevances, size, where=where)
  rank = item_ranks(
    scores,
    index,
    levels,
    where=where,
    step_fn=step_fn,
    lower_step_fn=lower_step_fn,
    pair_block=_PAIR_BLOCK if pair_block is None else pair_block,
  )
  take = functools.partial(jnp.take_along_axis, indices=index, axis=-1)
  items = RankedItems(index, valid, rank, take(scores), take(levels), jnp.where(valid, take(relevances), 0.0))
  score, has_score = score_fn(items)
  loss = safe_reduce(1.0 - score, where=has_score, reduce_fn=reduce_fn)
  return _guard_item_count(loss, count, size, name)


def safe_reduce(values, *, where=None, reduce_fn: Callable | None = jnp.mean):
  """Reduces per-query values over the valid queries without NaN when none is valid (rax ``safe_reduce``).

  Invalid entries are replaced by 0 (so their gradient is 0). ``jnp.mean`` divides by
  ``max(count, 1)``, so an all-invalid input gives 0 and a finite gradient; NaNs at valid entries
  still propagate. ``reduce_fn=None`` returns the masked per-query values; any other ``reduce_fn`` is
  called as ``reduce_fn(values, where=where)`` (e.g. :func:`nonzero_mean`).

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


def nonzero_mean(values, *, where=None, axis=None):
  """Mean of the strictly positive ``values`` under ``where``, 0 where there are none.

  pytorch-metric-learning's ``AvgNonZeroReducer``, the reduction of the reference's calibration,
  triplet and FastAP losses.

  >>> round(float(nonzero_mean(jnp.array([0.0, 0.2, 0.4, 0.0]))), 4)
  0.3
  """
  active = values > 0 if where is None else where & (values > 0)
  count = jnp.sum(active, axis=axis, dtype=values.dtype)
  total = jnp.sum(jnp.where(active, values, 0.0), axis=axis)
  return jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)


def _is_traced(x) -> bool:
  return isinstance(x, jax.core.Tracer)


def _static_item_count(count, num_items: int, max_items: int | None) -> int:
  """The static block size ``P``: ``max_items`` when given (capped at ``num_items``); else the exact
  maximum ``count`` when it is concrete (eager calls, or labels known outside ``jit``); else ``num_items``."""
  if max_items is not None:
    if max_items < 1:
      raise ValueError(f"max_positives must be >= 1, got {max_items}")
    return min(int(max_items), num_items)
  if not _is_traced(count):
    return min(max(int(count), 1), num_items)
  return num_items


def _guard_item_count(value, count, size: int, name: str):
  """NaN (and a printed explanation) when a row has more relevant items than the static ``size``, which
  would otherwise be silently truncated; eagerly, a ValueError."""
  if _is_traced(count):

    def warn(c):
      if np.any(np.asarray(c) > size):
        print(
          f"{name}: a query has {np.max(c)} relevant items > max_positives={size}; the loss is NaN. "
          "Raise max_positives."
        )

    jax.debug.callback(warn, count)
  elif int(count) > size:
    raise ValueError(f"{name}: a query has {int(count)} relevant items > max_positives={size}")
  return jnp.where(count > size, jnp.nan, value)
