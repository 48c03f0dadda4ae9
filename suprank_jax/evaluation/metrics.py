"""Retrieval metrics from the ranks of the relevant items (pure numpy, float64).

Every metric here is computed per query from a *ragged* description of its ranked gallery: for each
query, the 1-based ranks of the gallery items that share at least one label column with it, in
increasing rank order, with a bit mask of the label columns they agree on. Non-relevant items
never need to be listed, so a query costs memory proportional to its relevant items only, and no
metric needs a full argsort of the gallery (see :mod:`suprank_jax.evaluation.search`, which
produces these ranks by counting scores against a sorted row).

The ragged layout (one :class:`RankedRelevant` per chunk of queries):

* ``offsets``: ``[num_queries + 1]`` start of each query's segment in the flat arrays.
* ``ranks``: ``[num_listed]`` 1-based rank of each listed item in its query's ranking, strictly
  increasing within a segment. Ties between scores are broken before this point (lower gallery
  index first).
* ``agree``: ``[num_listed]`` uint8 bit mask; bit ``h`` is set when the item shares label column
  ``h`` with the query. The pair level (number of agreeing columns, ``1..L``) is its popcount.
* ``level_counts``: ``[num_queries, L + 1]`` how many ranked gallery items the query has at each
  level (level 0 included), over the *whole* ranked gallery, even when the lists are truncated.
* ``column_counts``: ``[num_queries, L]`` how many ranked gallery items agree on each column.
* ``num_ranked``: ``[num_queries]`` length of each query's ranking (gallery size minus the
  query's own copy, if any).
* ``depth``: ``None`` when every relevant item is listed (exact full ranking), else ``K`` when only
  the top-``K`` of each ranking is listed (top-k or ScaNN search).

Per-query functions return ``[num_queries]`` float64 values with NaN where the metric is undefined
(a query without relevant items for AP-type metrics); :func:`nan_mean` then averages over the
defined ones. Definitions (``r_1 < r_2 < ... < r_R`` are the ranks of the ``R`` relevant items):

* ``R@k`` (recall rate): 1 if ``r_1 <= k`` else 0 (a query without relevant item is a miss).
* ``true_R@k``: ``#{r_j <= k} / min(R, k)``.
* ``P@k``: ``#{r_j <= k} / min(k, num_ranked)`` (a query without relevant item scores 0).
* ``AP``: ``(1/R) sum_j j / r_j``; ``mAP@R``: same sum over ``r_j <= R``, still divided by ``R``;
  ``mAP@k``: sum over ``r_j <= k`` divided by ``min(R, k)``; ``RP`` (R-precision):
  ``#{r_j <= R} / R``.
* ``ASI`` (binary): ``(1/R) sum_{k=1..R} #{r_j <= k} / k``.
* ``H-AP`` (HAPPIER): ``sum_k [sum_{j: r_j <= r_k} min(rel_j, rel_k)] / r_k / sum_j rel_j`` with
  ``rel = table[level]``.
* ``ASI`` (multi-level): ``(1/R) sum_{k=1..R} (1/k) sum_{v>=1} min(c_v(k), c*_v(k))`` with ``c_v(k)``
  the number of level-``v`` items in the top ``k`` and ``c*_v`` the same in the ideal ranking
  (levels in decreasing order), ``R`` the number of items with level >= 1.
* ``NDCG``: gains ``2**level - 1`` over the whole ranking, divided by the ideal DCG.
* ``AP#v``: AP of the items at level exactly ``v``, in the ranking from which items of a level
  higher than ``v`` are removed (lower levels stay as negatives).

The original SupRank evaluation code (``protocol='original'`` of
:mod:`suprank_jax.evaluation.retrieval`) is reproduced with the same per-query functions plus
:func:`drop_ranked` (its ranked lists leave out one gallery item), ``hap_metric(...,
count_equal_relevances=True)`` and :func:`original_mean` (its size-weighted chunk means).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
  "RankedRelevant",
  "popcount",
  "select_column",
  "recall_rate_at_k_metric",
  "true_recall_at_k_metric",
  "precision_at_k_metric",
  "average_precision_metric",
  "map_at_r_metric",
  "map_at_k_metric",
  "r_precision_metric",
  "binary_asi_metric",
  "hap_metric",
  "asi_metric",
  "ndcg_metric",
  "level_ap_metric",
  "drop_ranked",
  "nan_mean",
  "original_mean",
  "ORIGINAL_PREFIX",
  "overall_accuracy",
  "inter_set_overall_accuracy",
]

# Prefix of the original protocol's keys when both protocols are evaluated (config.protocol='both').
ORIGINAL_PREFIX = "original/"

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.int8)


class RankedRelevant(NamedTuple):
  """Ranks of the relevant items of a chunk of queries (see the module docstring)."""

  offsets: np.ndarray
  ranks: np.ndarray
  agree: np.ndarray
  level_counts: np.ndarray
  column_counts: np.ndarray
  num_ranked: np.ndarray
  depth: int | None = None

  @property
  def num_queries(self) -> int:
    return len(self.offsets) - 1

  @property
  def levels(self) -> np.ndarray:
    """``[num_listed]`` int8 pair level of each listed item."""
    return popcount(self.agree)


def popcount(agree: np.ndarray) -> np.ndarray:
  """Number of set bits of each uint8 agreement mask (the pair level)."""
  return _POPCOUNT[np.asarray(agree, np.uint8)]


# ----------------------------------------------------------------------------------------------
# Segment helpers.


# The last offsets / agreement arrays seen and what was derived from them: the metrics of one chunk
# share their segment ids and pair levels (the arrays are kept, so the identity test is safe).
_DERIVED: dict = {}


def _derived(name, array, fn):
  cached = _DERIVED.get(name)
  if cached is None or cached[0] is not array:
    cached = _DERIVED[name] = (array, fn(array))
  return cached[1]


def _segment_ids(offsets):
  return _derived("segments", offsets, lambda o: np.repeat(np.arange(len(o) - 1), np.diff(o)))


def _levels(ranked):
  return _derived("levels", ranked.agree, lambda a: popcount(a).astype(np.intp))


def _segment_counts(indicator, offsets, seg):
  """Inclusive running count of ``indicator`` restarted at every segment (int64, exact)."""
  total = np.cumsum(indicator, dtype=np.int64)
  return total - np.concatenate([[0], total])[offsets[:-1]][seg]


def _segment_sum(values, seg, num_segments):
  return np.bincount(seg, weights=values, minlength=num_segments).astype(np.float64)


def _segment_cumsum(values, offsets, seg):
  """Inclusive cumulative sum restarted at every segment."""
  total = np.cumsum(values, dtype=np.float64)
  before = np.concatenate([[0.0], total])[offsets[:-1]]
  return total - before[seg]


def select_column(ranked: RankedRelevant, column: int):
  """Binary view of one label column: the ranks of the items agreeing on ``column``.

  Args:
    ranked: chunk of ranked relevant items.
    column: label column (hierarchy level) that defines relevance.

  Returns:
    ``(offsets, ranks, num_relevant)``: ``[Q + 1]`` segment starts, the increasing ranks of the
    relevant items of each query, and ``[Q]`` how many relevant items each query has in the whole
    ranked gallery.
  """
  num_columns = ranked.column_counts.shape[1]
  if not 0 <= column < num_columns:
    raise ValueError(f"column={column} is out of range for labels with {num_columns} columns")
  keep = (ranked.agree >> np.uint8(column)) & np.uint8(1) == 1
  seg = _segment_ids(ranked.offsets)
  counts = np.bincount(seg[keep], minlength=ranked.num_queries)
  offsets = np.concatenate([[0], np.cumsum(counts)])
  return offsets, ranked.ranks[keep], ranked.column_counts[:, column].astype(np.int64)


def drop_ranked(ranked: RankedRelevant, rank) -> RankedRelevant:
  """Removes one item from each query's ranking: the item at 1-based ``rank[q]`` (0: none).

  The items ranked after it move up by one; the level and column counts and ``num_ranked`` lose
  it (an item that is not listed shares no label with the query: level 0).

  Args:
    ranked: complete ranks (``depth=None``) of a chunk of queries.
    rank: ``[Q]`` rank of the item to remove from each query's ranking, 0 to keep them all.

  Returns:
    A complete :class:`RankedRelevant` of the shortened rankings.
  """
  _require_complete(ranked, "drop_ranked")
  rank = np.asarray(rank, np.int64)
  num_q, num_columns = ranked.num_queries, ranked.column_counts.shape[1]
  num_ranked = np.asarray(ranked.num_ranked, np.int64)
  if rank.shape != (num_q,) or np.any((rank < 0) | (rank > num_ranked)):
    raise ValueError(f"rank must be [{num_q}] ranks in 0..num_ranked, got shape {rank.shape}")
  seg = _segment_ids(ranked.offsets)
  rank_seg = rank[seg]
  hit = ranked.ranks == rank_seg
  dropped = np.zeros(num_q, np.uint8)
  dropped[seg[hit]] = ranked.agree[hit]
  keep = ~hit
  ranks = ranked.ranks - ((ranked.ranks > rank_seg) & (rank_seg > 0))
  removed = rank > 0
  level_counts = np.array(ranked.level_counts, np.int64)
  level_counts[np.nonzero(removed)[0], popcount(dropped[removed])] -= 1
  bits = (dropped[:, None] >> np.arange(num_columns, dtype=np.uint8)) & np.uint8(1)
  return RankedRelevant(
    offsets=np.concatenate([[0], np.cumsum(np.bincount(seg[keep], minlength=num_q))]),
    ranks=ranks[keep],
    agree=ranked.agree[keep],
    level_counts=level_counts,
    column_counts=np.asarray(ranked.column_counts, np.int64) - bits.astype(np.int64),
    num_ranked=num_ranked - removed,
    depth=None,
  )


def _positions(offsets, seg):
  """1-based position of every listed item inside its segment."""
  return np.arange(len(seg)) - offsets[:-1][seg] + 1


# ----------------------------------------------------------------------------------------------
# Binary metrics: ``offsets`` / ``ranks`` list the relevant items of each query (increasing ranks).


def recall_rate_at_k_metric(offsets, ranks, *, k: int):
  """``[Q]`` 1.0 when a relevant item is ranked within the top ``k``, else 0.0."""
  seg = _segment_ids(offsets)
  return (np.bincount(seg[ranks <= k], minlength=len(offsets) - 1) > 0).astype(np.float64)


def true_recall_at_k_metric(offsets, ranks, num_relevant, *, k: int):
  """``[Q]`` fraction ``#{relevant in top k} / min(R, k)``; NaN without relevant items."""
  seg = _segment_ids(offsets)
  hits = np.bincount(seg[ranks <= k], minlength=len(offsets) - 1).astype(np.float64)
  denom = np.minimum(num_relevant, k).astype(np.float64)
  return np.divide(hits, denom, out=np.full_like(hits, np.nan), where=denom > 0)


def precision_at_k_metric(offsets, ranks, num_ranked, *, k: int):
  """``[Q]`` precision of the top ``k`` (of the top ``num_ranked`` when the ranking is shorter)."""
  seg = _segment_ids(offsets)
  hits = np.bincount(seg[ranks <= k], minlength=len(offsets) - 1).astype(np.float64)
  return hits / np.maximum(np.minimum(np.asarray(num_ranked), k), 1)


def _precision_sum(offsets, ranks, cutoff):
  """``sum_j j / r_j`` over the relevant items with ``r_j <= cutoff`` (``cutoff`` per query)."""
  seg = _segment_ids(offsets)
  precision = _positions(offsets, seg) / ranks.astype(np.float64)
  if cutoff is not None:
    precision = np.where(ranks <= np.asarray(cutoff)[seg], precision, 0.0)
  return _segment_sum(precision, seg, len(offsets) - 1)


def _safe_ratio(num, denom):
  denom = np.asarray(denom, np.float64)
  return np.divide(num, denom, out=np.full(num.shape, np.nan), where=denom > 0)


def average_precision_metric(offsets, ranks, num_relevant):
  """``[Q]`` average precision over the whole ranking; NaN without relevant items.

  Needs every relevant item listed (exact full ranking).
  """
  return _safe_ratio(_precision_sum(offsets, ranks, None), num_relevant)


def map_at_r_metric(offsets, ranks, num_relevant):
  """``[Q]`` AP truncated to the first ``R`` positions, divided by ``R`` (mAP@R of Musgrave et al.)."""
  return _safe_ratio(_precision_sum(offsets, ranks, num_relevant), num_relevant)


def map_at_k_metric(offsets, ranks, num_relevant, *, k: int):
  """``[Q]`` AP truncated to the top ``k``, divided by ``min(R, k)``; NaN without relevant items."""
  cutoff = np.full(len(offsets) - 1, k)
  return _safe_ratio(_precision_sum(offsets, ranks, cutoff), np.minimum(num_relevant, k))


def r_precision_metric(offsets, ranks, num_relevant):
  """``[Q]`` precision of the top ``R``; NaN without relevant items."""
  seg = _segment_ids(offsets)
  hits = _segment_sum((ranks <= np.asarray(num_relevant)[seg]).astype(np.float64), seg, len(offsets) - 1)
  return _safe_ratio(hits, num_relevant)


def _harmonic(n):
  """``H[i] = sum_{t=1..i} 1/t`` for ``i = 0..n``."""
  return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def binary_asi_metric(offsets, ranks, num_relevant):
  """``[Q]`` binary ASI: the mean over depths ``k <= R`` of the precision at ``k``."""
  num_relevant = np.asarray(num_relevant, np.int64)
  seg = _segment_ids(offsets)
  big_r = num_relevant[seg]
  h = _harmonic(int(num_relevant.max(initial=0)))
  inside = ranks <= big_r
  # Item j contributes 1/k to every depth k in [r_j, R].
  contrib = np.where(inside, h[big_r] - h[np.minimum(ranks, big_r + 1) - 1], 0.0)
  return _safe_ratio(_segment_sum(contrib, seg, len(offsets) - 1), num_relevant)


# ----------------------------------------------------------------------------------------------
# Multi-level metrics: use the pair level of every listed item.


def _require_complete(ranked: RankedRelevant, name: str):
  if ranked.depth is not None:
    raise ValueError(
      f"{name} needs the rank of every relevant item; got truncated top-{ranked.depth} lists (use exact search)"
    )


def hap_metric(ranked: RankedRelevant, relevance_table, *, count_equal_relevances: bool = False):
  """``[Q]`` hierarchical average precision (H-AP, HAPPIER); NaN when ``sum(rel) == 0``.

  Args:
    ranked: complete ranks of a chunk of queries.
    relevance_table: ``[Q, L + 1]`` relevance of each level for each query (level 0 is ignored:
      non-relevant items have relevance 0).
    count_equal_relevances: the original evaluation code's count: for each level ``v`` it counts
      the items whose relevance *equals* ``table[v]``, so when two levels of a query share a
      relevance value their items are counted once for each of them. Off: each item once.
  """
  _require_complete(ranked, "H-AP")
  table = np.asarray(relevance_table, np.float64)
  num_q, num_levels = ranked.num_queries, ranked.level_counts.shape[1] - 1
  if table.shape != (num_q, num_levels + 1):
    raise ValueError(f"relevance_table must be [{num_q}, {num_levels + 1}], got {table.shape}")
  table = table.copy()
  table[:, 0] = 0.0
  seg = _segment_ids(ranked.offsets)
  levels = _levels(ranked)
  counts = [_segment_counts(levels == v, ranked.offsets, seg).astype(np.float64) for v in range(1, num_levels + 1)]
  if count_equal_relevances:
    item_table = table[seg]
    counts = [
      sum(np.where(item_table[:, w] == item_table[:, v], counts[w - 1], 0.0) for w in range(1, num_levels + 1))
      for v in range(1, num_levels + 1)
    ]
  # pair_min[q, v, w] = min(table[q, v], table[q, w]): the weight of a level-v item before a level-w one.
  pair_min = np.minimum(table[:, :, None], table[:, None, :]).reshape(-1)
  first = seg * (num_levels + 1) ** 2 + levels
  hrank = None
  for v in range(1, num_levels + 1):
    term = pair_min[first + v * (num_levels + 1)] * counts[v - 1]
    hrank = term if hrank is None else hrank + term
  if hrank is None:
    hrank = np.zeros(len(levels))
  num = _segment_sum(hrank / ranked.ranks, seg, num_q)
  denom = np.sum(table * ranked.level_counts, axis=1)
  return _safe_ratio(num, denom)


def asi_metric(ranked: RankedRelevant):
  """``[Q]`` multi-level average set intersection (ASI) over depths ``1..R``; NaN when ``R == 0``."""
  _require_complete(ranked, "ASI")
  counts = np.asarray(ranked.level_counts, np.int64)
  num_q, num_levels = counts.shape[0], counts.shape[1] - 1
  big_r = counts[:, 1:].sum(1)
  depth_offsets = np.concatenate([[0], np.cumsum(big_r)])
  starts = depth_offsets[:-1]
  total = int(depth_offsets[-1])
  depth_seg = np.repeat(np.arange(num_q), big_r)
  depth = np.arange(1, total + 1) - np.repeat(starts, big_r)  # 1..R within each query
  seg = _segment_ids(ranked.offsets)
  inside = ranked.ranks <= big_r[seg]
  slot = (starts[seg] + ranked.ranks - 1)[inside]
  levels_inside = _levels(ranked)[inside]
  # Integer counts (exact): found and ideal level-v counts at every depth, summed over the levels.
  overlap = np.zeros(total, np.int64)
  above = np.zeros(num_q, np.int64)  # number of items with a level higher than v
  for v in range(num_levels, 0, -1):
    found = np.zeros(total, np.int64)
    found[slot[levels_inside == v]] = 1
    np.cumsum(found, out=found)
    found -= np.repeat(np.concatenate([[0], found])[starts], big_r)
    ideal = depth - np.repeat(above, big_r)
    np.clip(ideal, 0, np.repeat(counts[:, v], big_r), out=ideal)
    overlap += np.minimum(found, ideal, out=found)
    above += counts[:, v]
  return _safe_ratio(_segment_sum(overlap / depth, depth_seg, num_q), big_r)


def ndcg_metric(ranked: RankedRelevant):
  """``[Q]`` NDCG with gains ``2**level - 1`` over the whole ranking; NaN without relevant items."""
  _require_complete(ranked, "NDCG")
  counts = np.asarray(ranked.level_counts, np.int64)
  num_q, num_levels = counts.shape[0], counts.shape[1] - 1
  seg = _segment_ids(ranked.offsets)
  gains = (2.0 ** np.arange(num_levels + 1, dtype=np.float64) - 1.0)[_levels(ranked)]
  # log2(1 + r) from a table over the ranks (the same float64 values as computing them per item).
  discount_of_rank = np.log2(1.0 + np.arange(int(ranked.ranks.max(initial=0)) + 1))
  dcg = _segment_sum(gains / discount_of_rank[ranked.ranks], seg, num_q)
  # discount[i] = sum_{t=1..i} 1/log2(1+t): the ideal ranking sorts the levels in decreasing order.
  big_r = int(counts[:, 1:].sum(1).max(initial=0))
  discount = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(2.0 + np.arange(big_r)))])
  idcg = np.zeros(num_q)
  at_least = np.zeros(num_q, np.int64)
  for v in range(num_levels, 0, -1):
    start = at_least.copy()
    at_least += counts[:, v]
    idcg += (2.0**v - 1.0) * (discount[at_least] - discount[start])
  return _safe_ratio(dcg, idcg)


def level_ap_metric(ranked: RankedRelevant, *, level: int):
  """``[Q]`` AP of the items at exactly ``level``, items of higher levels removed (``AP#level``).

  NaN for a query without an item at that level.
  """
  _require_complete(ranked, f"AP#{level}")
  num_levels = ranked.level_counts.shape[1] - 1
  if not 1 <= level <= num_levels:
    raise ValueError(f"level={level} must be in 1..{num_levels} for AP#level")
  seg = _segment_ids(ranked.offsets)
  levels = _levels(ranked)
  higher_before = _segment_cumsum((levels > level).astype(np.float64), ranked.offsets, seg)
  positive = levels == level
  index = _segment_cumsum(positive.astype(np.float64), ranked.offsets, seg)
  kept_rank = ranked.ranks - higher_before
  precision = np.divide(index, kept_rank, out=np.zeros(len(levels)), where=positive)
  return _safe_ratio(_segment_sum(precision, seg, ranked.num_queries), ranked.level_counts[:, level])


# ----------------------------------------------------------------------------------------------
# Aggregation.


def nan_mean(values) -> tuple[float, int]:
  """Mean over the defined (non-NaN) values and how many were left out."""
  values = np.asarray(values, np.float64)
  defined = ~np.isnan(values)
  count = int(defined.sum())
  return (float(values[defined].mean()) if count else float("nan")), int(values.size - count)


def original_mean(values, batch_size: int, *, skip_undefined: bool = False) -> float:
  """The original evaluation's average of per-query values (its ``DictAverage`` over query chunks).

  Queries are taken in chunks of ``batch_size`` (the original's ``metric_batch_size``); a chunk's
  value is the mean of its queries (NaN if any is NaN) or, with ``skip_undefined`` (its
  ``safe_mean``, used for AP#v), the mean of its defined ones. Chunk values are averaged weighted by
  the full chunk size; NaN or inf chunk values are left out, and 0.0 is returned when none is left
  (the meter's initial average).

  Raises:
    ValueError: with ``skip_undefined``, a chunk without any defined value (the original fails there).
  """
  values = np.asarray(values, np.float64)
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  num = len(values)
  if num == 0:
    return 0.0
  starts = np.arange(0, num, batch_size)
  sizes = np.minimum(batch_size, num - starts).astype(np.float64)
  if skip_undefined:
    defined = ~np.isnan(values)
    count = np.add.reduceat(defined.astype(np.float64), starts)
    if np.any(count == 0):
      first = int(starts[np.argmax(count == 0)])
      raise ValueError(
        f"the queries {first}..{first + batch_size - 1} have no defined value; the original "
        "evaluation fails on such a chunk (mean of an empty tensor)"
      )
    chunk = np.add.reduceat(np.where(defined, values, 0.0), starts) / count
  else:
    chunk = np.add.reduceat(values, starts) / sizes
  finite = np.isfinite(chunk)
  if not finite.any():
    return 0.0
  return float(np.sum(chunk[finite] * sizes[finite]) / np.sum(sizes[finite]))


def _split_level_key(key):
  name, sep, level = key.rpartition("_level")
  if sep and level.isdigit():
    return name, int(level)
  return None, None


def overall_accuracy(metrics: Mapping[str, float], *, protocol: str = "default") -> dict[str, float]:
  """Average of each binary metric across hierarchy levels within one test set (DyML "overall").

  ``{'R@1_level0': a, 'R@1_level1': b, 'AP_level0': c}`` gives ``{'R@1': (a + b) / 2, 'AP': c}``.
  Multi-level and count keys are ignored.

  Args:
    metrics: one evaluation's metrics.
    protocol: the evaluation's ``config.protocol``. ``'original'`` reproduces the original hook,
      which also averages ``ASI_multi`` into ``ASI`` when binary ASI is computed (its name starts
      with ``ASI``); ``'both'`` applies the default rule to the plain keys and the original rule to
      the ``original/`` keys (results keep the prefix).
  """
  if protocol == "both":
    prefix = ORIGINAL_PREFIX
    out = overall_accuracy({k: v for k, v in metrics.items() if not k.startswith(prefix)})
    original = overall_accuracy(
      {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}, protocol="original"
    )
    out.update({prefix + k: v for k, v in original.items()})
    return out
  if protocol not in ("default", "original"):
    raise ValueError(f"protocol={protocol!r}; valid: ('default', 'original', 'both')")
  grouped: dict[str, list[float]] = {}
  for key, value in metrics.items():
    name, level = _split_level_key(key)
    if name is not None and not name.startswith("num_"):
      grouped.setdefault(name, []).append(float(value))
  if protocol == "original" and "ASI" in grouped and "ASI_multi" in metrics:
    grouped["ASI"].append(float(metrics["ASI_multi"]))
  return {name: float(np.mean(values)) for name, values in grouped.items()}


def inter_set_overall_accuracy(
  metrics_per_set: Mapping[str, Mapping[str, float]], *, keys: Sequence[str] | None = None
) -> dict[str, float]:
  """Average of each per-level binary metric key across several test sets (DyML-Vehicle/Animal).

  Args:
    metrics_per_set: ``{set_name: {metric_key: value}}``, e.g. one entry per DyML test level.
    keys: keys to average; by default every ``*_level<h>`` key found in any set.

  Returns:
    ``{metric_key: mean over the sets that report it}``.
  """
  grouped: dict[str, list[float]] = {}
  for metrics in metrics_per_set.values():
    for key, value in metrics.items():
      name, _ = _split_level_key(key)
      wanted = (name is not None and not name.startswith("num_")) if keys is None else key in keys
      if wanted:
        grouped.setdefault(key, []).append(float(value))
  return {key: float(np.mean(values)) for key, values in grouped.items()}
