"""Exact ranking for evaluation: the ranks of each query's relevant items, from the chunked scores of
:mod:`suprank_jax.evaluation.scoring` (exact top-k lists are there too; approximate search with ScaNN:
:mod:`suprank_jax.evaluation.scann_search`).

Ranking rule (everywhere in this package): decreasing score, ties broken by increasing gallery
index (the order of a stable sort; ``lax.top_k`` uses the same rule). A query's own copy in the
gallery (``self_index``) is removed from its ranking.

Exact ranks of the relevant items (those sharing a label with the query), two ways:

* on an accelerator (:func:`rank_on_device`), each chunk is ranked on the device (stable argsort
  of the scores) and only the ranks and gallery indices of the relevant items come back, in
  ranking order: 8 bytes per relevant item instead of a 4-byte score per gallery item;
* on a CPU (XLA's sort is slow there), the rank of item ``j`` is ``1 + #{i : s_i > s_j}``,
  obtained by ``searchsorted`` of the relevant scores, put in ranking order by one integer sort of
  packed (row, score, index) keys, in the row sorted by value (``np.sort`` is ~10x faster than
  ``np.argsort``); two chunks are ranked at a time in threads. A relevant item whose score ties
  with others gets ``+ #{equal scores at a lower gallery index}`` (counted directly; rows with more
  than 64 tied relevant items use a stable argsort).

Both give the same integer ranks, hence the same metrics bit for bit. When the labels form a tree,
a query's relevant items are read from its coarsest-label group instead of comparing labels with
the whole gallery.

A gallery on disk (a ``np.memmap``) is scored block by block (``scoring.score_chunks``) and the score
rows of each chunk of queries are ranked on the host as above.

Exact ties only arise between bit-identical scores; duplicated embeddings usually give identical
scores, but a matmul may round two copies differently (different summation order), in which case
their order follows the rounded scores.
"""

from __future__ import annotations

import collections
import concurrent.futures
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from suprank_jax.evaluation import scoring
from suprank_jax.evaluation.metrics import RankedRelevant

__all__ = [
  "check_labels",
  "LabelStatistics",
  "label_statistics",
  "rank_on_device",
  "exact_ranked_relevant",
  "full_ranked_relevant",
  "top_k_relevant",
]

_MAX_COLUMNS = 8  # the agreement mask is a uint8


def check_labels(labels, num_items: int, name: str) -> np.ndarray:
  """Returns ``labels`` as an int64 ``[num_items, L]`` array (a 1-D vector becomes one column)."""
  labels = np.asarray(labels)
  if labels.ndim == 1:
    labels = labels[:, None]
  if labels.ndim != 2 or labels.shape[0] != num_items:
    raise ValueError(f"{name} must be [{num_items}, num_levels] (one row per embedding), got shape {labels.shape}")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}")
  if not 1 <= labels.shape[1] <= _MAX_COLUMNS:
    raise ValueError(f"{name} must have 1..{_MAX_COLUMNS} label columns, got {labels.shape[1]}")
  return labels.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------------------------
# Label statistics (relevance budget): computed once per evaluation and passed to the searches.


class LabelStatistics(NamedTuple):
  """What the labels alone fix about every query's ranking (:func:`label_statistics`).

  Attributes:
    level_counts: ``[Q, L + 1]`` int64, ranked items per number of agreeing label columns (per
      relevance level in a label tree).
    column_counts: ``[Q, L]`` int64, ranked items sharing label column ``h`` with the query.
    num_ranked: ``[Q]`` int64, items in each query's ranking.
    label_tree: every label of a column has a single parent in the next column; then a query's
      relevant items are those of its coarsest-label group.
  """

  level_counts: np.ndarray
  column_counts: np.ndarray
  num_ranked: np.ndarray
  label_tree: bool

  def rows(self, start: int, stop: int) -> LabelStatistics:
    """The statistics of queries ``start:stop``."""
    return LabelStatistics(
      self.level_counts[start:stop], self.column_counts[start:stop], self.num_ranked[start:stop], self.label_tree
    )


def _is_label_tree(labels):
  """True when every label of column h has a single parent in column h + 1."""
  for h in range(labels.shape[1] - 1):
    pairs = np.unique(labels[:, h : h + 2], axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
      return False
  return True


def label_statistics(query_labels, gallery_labels, self_index, *, chunk_size: int = 1024) -> LabelStatistics:
  """Level and column counts of every query over its ranked gallery.

  Args:
    query_labels: ``[Q, L]`` int labels.
    gallery_labels: ``[N, L]`` int labels.
    self_index: ``[Q]`` gallery index of each query's own copy (excluded), or -1.
    chunk_size: rows per chunk for the brute-force path (labels that are not a tree).

  Returns:
    :class:`LabelStatistics`.
  """
  num_q, num_columns = query_labels.shape
  has_self = self_index >= 0
  num_ranked = gallery_labels.shape[0] - has_self.astype(np.int64)
  column_counts = np.zeros((num_q, num_columns), np.int64)
  for h in range(num_columns):
    values, counts = np.unique(gallery_labels[:, h], return_counts=True)
    pos = np.clip(np.searchsorted(values, query_labels[:, h]), 0, len(values) - 1)
    column_counts[:, h] = np.where(values[pos] == query_labels[:, h], counts[pos], 0) - has_self
  label_tree = _is_label_tree(np.concatenate([query_labels, gallery_labels]))
  if label_tree:
    # In a label tree, agreeing on column h implies agreeing on every coarser column, so
    # "level >= v" is "agrees on column L - v".
    at_least = np.concatenate([num_ranked[:, None], column_counts[:, ::-1], np.zeros((num_q, 1), np.int64)], 1)
    level_counts = at_least[:, :-1] - at_least[:, 1:]
  else:
    level_counts = np.zeros((num_q, num_columns + 1), np.int64)
    for start in range(0, num_q, chunk_size):
      q = query_labels[start : start + chunk_size]
      levels = (q[:, None, :] == gallery_labels[None, :, :]).sum(-1)
      rows = np.nonzero(has_self[start : start + chunk_size])[0]
      levels[rows, self_index[start + rows]] = -1
      for v in range(num_columns + 1):
        level_counts[start : start + len(q), v] = (levels == v).sum(1)
  return LabelStatistics(level_counts, column_counts, num_ranked, label_tree)


def _agree_bits(query_labels, gallery_labels):
  """uint8 masks, bit ``h`` set where label column ``h`` agrees (label arrays ``[..., L]`` that broadcast)."""
  agree = np.zeros(np.broadcast_shapes(query_labels.shape[:-1], gallery_labels.shape[:-1]), np.uint8)
  for h in range(query_labels.shape[-1]):
    agree |= (query_labels[..., h] == gallery_labels[..., h]).astype(np.uint8) << np.uint8(h)
  return agree


class _CoarseGroups:
  """Gallery indices grouped by the coarsest label (a query's relevant items in a label tree)."""

  def __init__(self, gallery_labels):
    coarse = gallery_labels[:, -1]
    self.order = np.argsort(coarse, kind="stable")
    self.values, self.starts, self.sizes = np.unique(coarse[self.order], return_index=True, return_counts=True)

  def candidates(self, query_labels):
    """``(rows, cols)`` of the gallery items sharing the coarsest label of each query."""
    coarse = query_labels[:, -1]
    pos = np.clip(np.searchsorted(self.values, coarse), 0, len(self.values) - 1)
    found = self.values[pos] == coarse
    starts = self.starts[pos]
    sizes = np.where(found, self.sizes[pos], 0)
    rows = np.repeat(np.arange(len(coarse)), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    within = np.arange(len(rows)) - np.repeat(first, sizes)
    return rows, self.order[np.repeat(starts, sizes) + within]


def _candidates(query_labels, gallery_labels, self_index, groups):
  """Rows and gallery columns of every (query, item) pair sharing a label, the query's own copy left out."""
  if groups is None:
    agree = _agree_bits(query_labels[:, None, :], gallery_labels[None, :, :])
    rows = np.nonzero(self_index >= 0)[0]
    agree[rows, self_index[rows]] = 0
    return np.nonzero(agree)
  rows, cols = groups.candidates(query_labels)
  keep = cols != self_index[rows]
  return rows[keep], cols[keep]


def _in_ranking_order(rows, cols, values, num_cols):
  """Sorts pairs by row, then decreasing score, then increasing column: each row's ranking order.

  float32 scores are packed with the row and the column into one uint64 key (one integer sort);
  otherwise a lexsort.
  """
  row_bits = max(int(rows.max(initial=0)).bit_length(), 1)
  col_bits = max(int(num_cols - 1).bit_length(), 1)
  if values.dtype != np.float32 or row_bits + 32 + col_bits > 64:
    order = np.lexsort((cols, -values, rows))
    return rows[order], cols[order], values[order]
  # -0.0 + 0.0 = +0.0: the two zeros must tie, as they compare equal.
  bits = (values + np.float32(0.0)).view(np.int32)
  # Sign-magnitude to an order-preserving integer, complemented for a decreasing order.
  descending = ~((bits ^ ((bits >> 31) & 0x7FFFFFFF)).view(np.uint32) ^ np.uint32(0x80000000))
  shift = np.uint64(col_bits)
  keys = (
    (rows.astype(np.uint64) << np.uint64(32 + col_bits))
    | (descending.astype(np.uint64) << shift)
    | cols.astype(np.uint64)
  )
  keys.sort()
  signed = (~(keys >> shift).astype(np.uint32) ^ np.uint32(0x80000000)).view(np.int32)
  values = (signed ^ ((signed >> 31) & 0x7FFFFFFF)).view(np.float32)
  return (
    (keys >> np.uint64(32 + col_bits)).astype(np.int64),
    (keys & np.uint64((1 << col_bits) - 1)).astype(np.int64),
    values,
  )


_MAX_TIES_PER_ROW = 64  # above this, a row is ranked by a stable argsort instead
_HOST_THREADS = 2  # chunks ranked at a time on the host


def _host_ranks(scores, sorted_scores, rows, cols, values, offsets):
  """1-based ranks of pairs given in ranking order (:func:`_in_ranking_order`), from the sorted rows.

  rank = 1 + #{greater scores} + #{equal scores at a lower gallery index}.
  """
  num_b, num_g = scores.shape
  right = np.empty(len(values), np.int64)
  for b in range(num_b):
    lo, hi = offsets[b], offsets[b + 1]
    if lo < hi:
      # Increasing needles: numpy narrows each binary search from the previous one.
      right[lo:hi] = np.searchsorted(sorted_scores[b], values[lo:hi][::-1], side="right")[::-1]
  ranks = num_g - right + 1
  # The item itself sits at right - 1 of its sorted row, so it ties with another item iff
  # position right - 2 holds the same score.
  previous = sorted_scores.reshape(-1)[rows * num_g + np.maximum(right - 2, 0)]
  tied = np.nonzero((right >= 2) & (previous == values))[0]
  for b in np.unique(rows[tied]):
    row, in_row = scores[b], tied[rows[tied] == b]
    if len(in_row) > _MAX_TIES_PER_ROW:
      order = np.argsort(-row, kind="stable")
      inverse = np.empty(num_g, np.int64)
      inverse[order] = np.arange(1, num_g + 1)
      ranks[offsets[b] : offsets[b + 1]] = inverse[cols[offsets[b] : offsets[b + 1]]]
    else:
      for t in in_row:
        ranks[t] += np.count_nonzero(row[: cols[t]] == values[t])
  return ranks


def _ranked(rows, cols, ranks, query_labels, gallery_labels, stats, own_index):
  """RankedRelevant of pairs in ranking order, and ``[B]`` the rank of ``own_index`` (0 where -1)."""
  num_b = query_labels.shape[0]
  own_rank = np.zeros(num_b, np.int64)
  if own_index is not None:
    is_own = cols == own_index[rows]
    own_rank[rows[is_own]] = ranks[is_own]
    if np.any((own_index >= 0) & (own_rank == 0)):
      raise ValueError("an own_index item shares no label with its query")
  per_row = np.bincount(rows, minlength=num_b)
  agree = np.zeros(len(rows), np.uint8)
  for h in range(query_labels.shape[1]):
    same = np.repeat(query_labels[:, h], per_row) == np.ascontiguousarray(gallery_labels[:, h])[cols]
    agree |= same.astype(np.uint8) << np.uint8(h)
  return RankedRelevant(
    offsets=np.concatenate([[0], np.cumsum(per_row)]),
    ranks=ranks,
    agree=agree,
    level_counts=stats.level_counts,
    column_counts=stats.column_counts,
    num_ranked=stats.num_ranked,
    depth=None,
  ), own_rank


def _host_ranked_chunk(scores, sorted_scores, query_labels, gallery_labels, self_index, stats, groups, own_index=None):
  rows, cols = _candidates(query_labels, gallery_labels, self_index, groups)
  rows, cols, values = _in_ranking_order(rows, cols, scores[rows, cols], scores.shape[1])
  offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=scores.shape[0]))])
  ranks = _host_ranks(scores, sorted_scores, rows, cols, values, offsets)
  return _ranked(rows, cols, ranks, query_labels, gallery_labels, stats, own_index)


@jax.jit
def _chunk_candidate_ranks(query, gallery, self_index, cand_cols):
  """Device ranking: ``(ranks, cols)`` ``[B, P]`` int32 of each row's candidates in ranking order
  (padding, ``cand_cols = -1``, last with rank ``N + 1``). Only these leave the device."""
  scores = scoring.masked_scores(query, gallery, self_index)
  num_b, num_g = scores.shape
  # Decreasing score, ties by increasing gallery index (a stable sort of the negated scores).
  order = jnp.argsort(-scores, axis=1, stable=True)
  rank_of = (
    jnp.zeros((num_b, num_g), jnp.int32)
    .at[jnp.arange(num_b)[:, None], order]
    .set(jnp.arange(1, num_g + 1, dtype=jnp.int32)[None, :])
  )
  ranks = jnp.take_along_axis(rank_of, jnp.maximum(cand_cols, 0), axis=1)
  ranks = jnp.where(cand_cols >= 0, ranks, num_g + 1)
  return jax.lax.sort_key_val(ranks, cand_cols, dimension=1)


def rank_on_device() -> bool:
  """Whether exact ranking runs on the device (any backend but CPU, where XLA's sort is slow)."""
  return jax.default_backend() != "cpu"


def _padded_width(count: int) -> int:
  """``count`` rounded up to 1, 1.25, 1.5 or 1.75 times a power of two (at least 8): few shapes to
  compile, at most 25% padding."""
  if count <= 8:
    return 8
  step = 1 << max(count.bit_length() - 3, 0)
  return -(-count // step) * step


def _device_ranked_chunks(
  query, query_labels, gallery, gallery_labels, self_index, own_index, stats, groups, chunk_size
):
  num_q = query.shape[0]
  gallery_dev = jnp.asarray(gallery)

  def dispatch(start):
    stop = min(start + chunk_size, num_q)
    rows, cols = _candidates(query_labels[start:stop], gallery_labels, self_index[start:stop], groups)
    counts = np.bincount(rows, minlength=stop - start)
    width = _padded_width(int(counts.max(initial=1)))
    cand = np.full((chunk_size, width), -1, np.int32)
    cand[rows, np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)] = cols
    q = scoring._pad_rows(query[start:stop], chunk_size, 0)
    s = scoring._pad_rows(self_index[start:stop].astype(np.int32), chunk_size, -1)
    return _chunk_candidate_ranks(q, gallery_dev, s, cand), counts

  pending = dispatch(0) if num_q else None
  for start in range(0, num_q, chunk_size):
    stop = min(start + chunk_size, num_q)
    (ranks, cols), counts = pending
    pending = dispatch(stop) if stop < num_q else None
    ranks, cols = np.asarray(ranks[: stop - start]), np.asarray(cols[: stop - start])
    valid = np.arange(ranks.shape[1])[None, :] < counts[:, None]
    rows = np.nonzero(valid)[0]
    chunk_stats = stats.rows(start, stop)
    own = None if own_index is None else own_index[start:stop]
    ranked, own_rank = _ranked(
      rows,
      cols[valid].astype(np.int64),
      ranks[valid].astype(np.int64),
      query_labels[start:stop],
      gallery_labels,
      chunk_stats,
      own,
    )
    yield start, ranked, own_rank


def exact_ranked_relevant(
  query,
  query_labels,
  gallery,
  gallery_labels,
  self_index,
  *,
  stats: LabelStatistics | None = None,
  chunk_size: int = 256,
  on_device: bool | None = None,
):
  """Yields ``(start, RankedRelevant)`` over chunks of queries (exact, complete ranks).

  ``stats``: :func:`label_statistics` of these labels and ``self_index``, when the caller has them
  (computed here otherwise). ``on_device``: rank on the device (only the candidates' ranks come
  back to the host) or on the host from the score rows; ``None``: :func:`rank_on_device`.
  """
  for start, ranked, _ in _ranked_chunks(
    query, query_labels, gallery, gallery_labels, self_index, None, stats, chunk_size=chunk_size, on_device=on_device
  ):
    yield start, ranked


def full_ranked_relevant(
  query,
  query_labels,
  gallery,
  gallery_labels,
  own_index,
  *,
  stats: LabelStatistics | None = None,
  chunk_size: int = 256,
  on_device: bool | None = None,
):
  """Yields ``(start, RankedRelevant, own_rank)``: exact ranks over the whole gallery, nothing excluded.

  ``own_rank[b]`` is the rank of gallery item ``own_index[start + b]`` in query ``start + b``'s
  ranking (0 where ``own_index`` is -1); such an item must share a label with its query (a copy of
  the query). :func:`suprank_jax.evaluation.metrics.drop_ranked` then removes any one item.
  ``stats``: :func:`label_statistics` with no item excluded (``self_index`` all -1), when the caller
  has them (computed here otherwise).
  """
  num_q = query.shape[0]
  return _ranked_chunks(
    query,
    query_labels,
    gallery,
    gallery_labels,
    np.full(num_q, -1, np.int64),
    np.asarray(own_index, np.int64),
    stats,
    chunk_size=chunk_size,
    on_device=on_device,
  )


def _ranked_chunks(
  query, query_labels, gallery, gallery_labels, self_index, own_index, stats, *, chunk_size, on_device
):
  if stats is None:
    stats = label_statistics(query_labels, gallery_labels, self_index)
  groups = _CoarseGroups(gallery_labels) if stats.label_tree else None
  if on_device is None:
    on_device = rank_on_device()
  if on_device and not scoring.numpy_scores(query.dtype) and not scoring.on_disk(gallery):
    yield from _device_ranked_chunks(
      query, query_labels, gallery, gallery_labels, self_index, own_index, stats, groups, chunk_size
    )
    return

  def rank(start, scores, sorted_scores):
    stop = start + scores.shape[0]
    if sorted_scores is None:
      sorted_scores = np.sort(scores, axis=1)
    own = None if own_index is None else own_index[start:stop]
    ranked, own_rank = _host_ranked_chunk(
      scores,
      sorted_scores,
      query_labels[start:stop],
      gallery_labels,
      self_index[start:stop],
      stats.rows(start, stop),
      groups,
      own,
    )
    return start, ranked, own_rank

  # Two chunks are ranked at a time in threads (numpy's sorts and searches release the GIL), while
  # the device computes the next chunk's scores and the caller computes the metrics of the previous.
  chunks = scoring.score_chunks(query, gallery, self_index, chunk_size=chunk_size, sort=rank_on_device())
  with concurrent.futures.ThreadPoolExecutor(max_workers=_HOST_THREADS) as pool:
    pending = collections.deque()
    for chunk in chunks:
      pending.append(pool.submit(rank, *chunk))
      if len(pending) >= _HOST_THREADS:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def top_k_relevant(indices, query_labels, gallery_labels, stats) -> RankedRelevant:
  """Truncated :class:`RankedRelevant` from top-``K`` neighbour lists.

  Args:
    indices: ``[Q, K]`` gallery indices in ranking order (the query's own copy already removed).
    query_labels: ``[Q, L]`` labels.
    gallery_labels: ``[N, L]`` labels.
    stats: :class:`LabelStatistics` of these queries.
  """
  indices = np.asarray(indices, np.int64)
  num_q, depth = indices.shape
  agree = _agree_bits(query_labels[:, None, :], gallery_labels[indices])
  rows, cols = np.nonzero(agree)  # row-major: increasing rank inside a row
  return RankedRelevant(
    offsets=np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_q))]),
    ranks=cols.astype(np.int64) + 1,
    agree=agree[rows, cols],
    level_counts=stats.level_counts,
    column_counts=stats.column_counts,
    num_ranked=stats.num_ranked,
    depth=depth,
  )
