"""Retrieval evaluation entry point: embeddings + labels -> metric dictionary.

:func:`evaluate_retrieval` covers the evaluation modes of SupRank/HAPPIER/ROADMAP:

* same source (``gallery_embeddings=None``): every item queries all the others, itself excluded;
* query / gallery (SOP-style ``InShop``, disjoint sets): pass the gallery;
* queries plus distractors: ``gallery, gallery_labels, self_index = with_distractors(...)``;
* gallery that already contains the queries (DyML's ``gallery_distractor`` sets): pass
  ``gallery_contains_queries=True`` and ``self_index`` (each query's index in the gallery, found by
  identical path or content); that copy is excluded from the query's ranking.

The metric keys, the protocols (``config.protocol``: ``'default'``, ``'original'``, ``'both'``) with
the mapping of the original's keys, and the searches (``config.search``: ``'exact'``, ``'scann'``) are
described in ``docs/metrics.md``; the definitions are in :mod:`suprank_jax.evaluation.metrics`.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from suprank_jax import hierarchy
from suprank_jax.evaluation import metrics as metrics_lib
from suprank_jax.evaluation import scann_search, scoring, search
from suprank_jax.runtime import reporting

__all__ = [
  "default_config",
  "check_config",
  "evaluate_retrieval",
  "with_distractors",
  "TOP_K_METRICS",
  "FULL_RANK_METRICS",
  "PROTOCOLS",
]

BINARY_METRICS = ("AP", "mAP@R", "RP")
MULTI_LEVEL_METRICS = ("H-AP", "ASI", "NDCG")
SEARCHES = ("exact", "scann")
PROTOCOLS = ("default", "original", "both")
ORIGINAL_PREFIX = metrics_lib.ORIGINAL_PREFIX
_ORIGINAL_RELEVANCE_BATCH = 256  # rows per block of the original's relevance table (BaseDataset.RELEVANCE_BS)
TOP_K_METRICS = ("R@k", "true_R@k", "P@k", "mAP@k")
FULL_RANK_METRICS = BINARY_METRICS + ("ASI (binary)",) + MULTI_LEVEL_METRICS + ("AP#v",)


def default_config() -> ml_collections.ConfigDict:
  """Evaluation settings (the SOP/iNat evaluation of the paper: R@1/10/100/1000, mAP@R, AP, H-AP,
  ASI, NDCG on the fine level)."""
  config = ml_collections.ConfigDict()
  # Binary metrics are computed for each of these label columns (0 = finest).
  config.hierarchy_levels = (0,)
  config.recall_at = (1, 10, 100, 1000)
  config.true_recall_at = ()
  config.precision_at = (1,)
  config.map_at = ()
  config.binary_metrics = ("AP", "mAP@R")  # subset of BINARY_METRICS
  config.binary_asi = False
  config.multi_level_metrics = ("H-AP", "ASI", "NDCG")  # subset of MULTI_LEVEL_METRICS
  config.level_ap = ()  # levels v >= 1 for AP#v
  config.relevance = ml_collections.ConfigDict()
  config.relevance.type = "pop"  # hierarchy.RELEVANCE_TYPES
  config.relevance.alpha = 1.0  # 'pop' exponent
  config.relevance.weights = ()  # 'map' level weights (one per label column)
  config.search = "exact"  # SEARCHES
  config.chunk_size = 256  # queries per chunk
  # PROTOCOLS: 'default' (the papers' definitions), 'original' (the original code's numbers, same
  # keys), 'both' (default keys plus 'original/<key>'); see the module docstring.
  config.protocol = "default"
  config.original_metric_batch_size = 256  # the original's metric_batch_size (its chunk means)
  config.scann = ml_collections.ConfigDict()
  # 0: per gallery size N and list length k (scann_search.scann_settings: recall of the exact top-k >= 0.95):
  config.scann.num_leaves = 0  # sqrt(N)
  config.scann.num_leaves_to_search = 0  # the share min(1, 5.5 sqrt(k / N)) of the leaves
  config.scann.reorder_k = 0  # 2 k + 200 candidates re-scored exactly
  config.scann.training_sample_size = 100_000
  config.scann.dims_per_block = 2
  config.scann.anisotropic_quantization_threshold = 0.2
  config.scann.brute_force = False
  # ScaNN's recall of the exact top-k, on the first recall_num_queries queries (exact search of those).
  config.scann.report_recall = True
  config.scann.recall_num_queries = 1000
  return config


def with_distractors(query_embeddings, query_labels, distractor_embeddings, distractor_labels):
  """Gallery made of the queries followed by distractors, with each query's own index.

  Returns:
    ``(gallery_embeddings, gallery_labels, self_index)`` for :func:`evaluate_retrieval`.
  """
  gallery = np.concatenate([np.asarray(query_embeddings), np.asarray(distractor_embeddings)])
  labels = np.concatenate([np.asarray(query_labels), np.asarray(distractor_labels)])
  return gallery, labels, np.arange(len(query_embeddings))


def _check_config(config, num_columns):
  for name, allowed, given in (
    ("binary_metrics", BINARY_METRICS, config.binary_metrics),
    ("multi_level_metrics", MULTI_LEVEL_METRICS, config.multi_level_metrics),
  ):
    unknown = set(given) - set(allowed)
    if unknown:
      raise ValueError(f"config.{name} has unknown metrics {sorted(unknown)}; valid: {allowed}")
  if config.search not in SEARCHES:
    raise ValueError(f"config.search={config.search!r}; valid: {SEARCHES}")
  if config.protocol not in PROTOCOLS:
    raise ValueError(f"config.protocol={config.protocol!r}; valid: {PROTOCOLS}")
  for h in config.hierarchy_levels:
    if not 0 <= h < num_columns:
      raise ValueError(f"config.hierarchy_levels has {h}, out of range for labels with {num_columns} columns")
  for v in config.level_ap:
    if not 1 <= v <= num_columns:
      raise ValueError(f"config.level_ap has {v}; levels 1..{num_columns} are valid")
  for name in ("recall_at", "true_recall_at", "precision_at", "map_at"):
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in config[name]):
      raise ValueError(f"config.{name} must hold positive integers, got {tuple(config[name])}")


def check_config(
  config, num_columns: int, *, num_queries: int | None = None, num_ranked: int | None = None, where: str = "config"
):
  """Validates an evaluation's metric settings before any embedding is computed.

  Besides :func:`evaluate_retrieval`'s own checks: metrics that need a full ranking with ScaNN, the
  'map' relevance weights, and settings that the chosen options would not read (ScaNN settings
  with exact search, 'map' weights with 'pop' relevance, the original protocol's batch size with
  the default protocol) set to non-default values. With ``num_queries`` and ``num_ranked`` (the
  items each query ranks) known, also what the original protocol cannot evaluate.

  Args:
    config: ``config.evals.<name>.metrics``.
    num_columns: label columns of the evaluated data.
    num_queries: number of queries, if known.
    num_ranked: gallery items each query ranks, if known.
    where: the config path printed in messages (e.g. ``config.evals.test.metrics``).

  Raises:
    ValueError: naming the key at fault.
  """
  try:
    _check_config(config, num_columns)
    if not isinstance(config.binary_asi, bool):
      raise ValueError(f"config.binary_asi={config.binary_asi!r} must be True or False")
    defaults = default_config()
    if config.search != "scann":
      changed = sorted(k for k in config.scann if config.scann[k] != defaults.scann[k])
      if changed:
        raise ValueError(
          f"config.scann.{changed[0]} is set but config.search={config.search!r}; set "
          "config.search='scann' or leave the ScaNN settings at their defaults"
        )
    elif _needs_full_ranking(config):
      raise ValueError(
        "config.search='scann' gives top-k lists only; it supports "
        f"{TOP_K_METRICS}; set binary_metrics=(), binary_asi=False, multi_level_metrics=(), "
        "level_ap=() or use search='exact'"
      )
    if config.relevance.type != "map" and tuple(config.relevance.weights):
      raise ValueError(
        f"config.relevance.weights is set but config.relevance.type={config.relevance.type!r} "
        "(weights are for 'map'); remove them or set the type to 'map'"
      )
    if config.relevance.type == "map" and len(tuple(config.relevance.weights)) != num_columns:
      raise ValueError(
        f"config.relevance.weights needs {num_columns} weights for 'map' relevance, got "
        f"{tuple(config.relevance.weights)}"
      )
    if config.protocol == "default" and config.original_metric_batch_size != defaults.original_metric_batch_size:
      raise ValueError(
        "config.original_metric_batch_size is read by protocol 'original' or 'both' only; set "
        "config.protocol or leave it at its default"
      )
    if int(config.chunk_size) < 1:
      raise ValueError(f"config.chunk_size={config.chunk_size} must be >= 1")
    if config.protocol != "default" and num_queries is not None and num_ranked is not None:
      _check_original_config(config, num_columns, num_queries, num_ranked)
  except ValueError as e:
    raise ValueError(str(e).replace("config.", f"{where}.", 1) if where != "config" else str(e)) from None


def _relevance_table(level_counts, config):
  num_columns = level_counts.shape[1] - 1
  alpha = tuple(config.relevance.weights) if config.relevance.type == "map" else config.relevance.alpha
  if config.relevance.type == "map" and len(alpha) != num_columns:
    raise ValueError(f"config.relevance.weights needs {num_columns} weights for 'map' relevance, got {alpha}")
  return np.asarray(
    hierarchy.relevance_table(level_counts.astype(np.float32), kind=config.relevance.type, alpha=alpha), np.float64
  )


def _check_original_config(config, num_columns, num_queries, num_ranked):
  """Raises for what the original evaluation code cannot compute (protocol 'original' or 'both')."""
  why = f"config.protocol={config.protocol!r} reproduces the original evaluation code, which"
  if "RP" in config.binary_metrics:
    raise ValueError(f"{why} has no 'RP': remove it from config.binary_metrics or use protocol 'default'")
  if config.search != "exact":
    raise ValueError(f"{why} ranks exactly: set config.search='exact'")
  if "H-AP" in config.multi_level_metrics and num_columns < 2:
    raise ValueError(f"{why} cannot compute H-AP for one label column (its 'pop' weights divide by L - 1)")
  if "H-AP" in config.multi_level_metrics and num_queries % _ORIGINAL_RELEVANCE_BATCH == 1:
    raise ValueError(
      f"{why} builds a wrong H-AP relevance table for the last of {num_queries} queries "
      f"({_ORIGINAL_RELEVANCE_BATCH} n + 1: its last block of one row loses a dimension)"
    )
  batch = int(config.original_metric_batch_size)
  if batch < 1:
    raise ValueError(f"config.original_metric_batch_size must be positive, got {batch}")
  if batch == 1 or num_queries % batch == 1:
    raise ValueError(
      f"{why} fails when its last chunk holds a single query ({num_queries} queries, "
      f"config.original_metric_batch_size={batch})"
    )
  if num_ranked < 2:
    raise ValueError(f"{why} fails on rankings of fewer than two items (the gallery is too small)")


def _original_relevance_table(query_labels, config, *, stats=None):
  """The original's H-AP relevances: query set against itself, the query included (float32 values).

  'pop' weights are computed in float64 and each division is rounded to float32, as the original does
  (exact for alpha 1); 'map' follows its float32 cumulative sum. ``stats``: those label statistics
  (nothing excluded) when the caller has them.
  """
  num_columns = query_labels.shape[1]
  if stats is None:
    stats = search.label_statistics(query_labels, query_labels, np.full(len(query_labels), -1, np.int64))
  counts = stats.level_counts.astype(np.float64)
  if config.relevance.type == "pop":
    weights = np.array([(v / (num_columns - 1)) ** config.relevance.alpha for v in range(num_columns + 1)])
    table = np.where(counts > 0, weights / np.maximum(counts, 1.0), 0.0).astype(np.float32)
  elif config.relevance.type == "map":
    weights = np.asarray(tuple(config.relevance.weights), np.float64)
    if len(weights) != num_columns:
      raise ValueError(f"config.relevance.weights needs {num_columns} weights for 'map' relevance, got {weights}")
    at_least = np.cumsum(counts[:, :0:-1], axis=1)[:, ::-1]  # items with level >= v, v = 1..L
    with np.errstate(divide="ignore"):
      share = (weights / at_least).astype(np.float32)
    table = np.concatenate([np.zeros((len(counts), 1), np.float32), np.cumsum(share, axis=1, dtype=np.float32)], 1)
  else:
    raise ValueError(f"config.relevance.type={config.relevance.type!r}; valid: {hierarchy.RELEVANCE_TYPES}")
  return table.astype(np.float64)


def _chunk_metrics(ranked, config, relevance_table, *, original=False):
  """Per-query values of every requested metric for one chunk (the original's values if ``original``)."""
  # The original scores a query without relevant item 0 on AP, mAP@R and mAP@k.
  zero_undefined = (lambda x: np.nan_to_num(x, nan=0.0)) if original else (lambda x: x)
  out = {}
  if ranked.depth is None:
    if "H-AP" in config.multi_level_metrics:
      out["H-AP_multi"] = metrics_lib.hap_metric(ranked, relevance_table, count_equal_relevances=original)
    if "ASI" in config.multi_level_metrics:
      out["ASI_multi"] = metrics_lib.asi_metric(ranked)
    if "NDCG" in config.multi_level_metrics:
      out["NDCG_multi"] = metrics_lib.ndcg_metric(ranked)
    for v in config.level_ap:
      out[f"AP#{v}_exclude"] = metrics_lib.level_ap_metric(ranked, level=v)
  for h in config.hierarchy_levels:
    offsets, ranks, num_rel = metrics_lib.select_column(ranked, h)
    suffix = f"_level{h}"
    for k in config.recall_at:
      out[f"R@{k}{suffix}"] = metrics_lib.recall_rate_at_k_metric(offsets, ranks, k=k)
    for k in config.true_recall_at:
      out[f"true_R@{k}{suffix}"] = metrics_lib.true_recall_at_k_metric(offsets, ranks, num_rel, k=k)
    for k in config.precision_at:
      out[f"P@{k}{suffix}"] = metrics_lib.precision_at_k_metric(offsets, ranks, ranked.num_ranked, k=k)
    for k in config.map_at:
      out[f"mAP@{k}{suffix}"] = zero_undefined(metrics_lib.map_at_k_metric(offsets, ranks, num_rel, k=k))
    if ranked.depth is None:
      if "AP" in config.binary_metrics:
        out[f"AP{suffix}"] = zero_undefined(metrics_lib.average_precision_metric(offsets, ranks, num_rel))
      if "mAP@R" in config.binary_metrics:
        out[f"mAP@R{suffix}"] = zero_undefined(metrics_lib.map_at_r_metric(offsets, ranks, num_rel))
      if "RP" in config.binary_metrics:
        out[f"RP{suffix}"] = metrics_lib.r_precision_metric(offsets, ranks, num_rel)
      if config.binary_asi:
        out[f"ASI{suffix}"] = metrics_lib.binary_asi_metric(offsets, ranks, num_rel)
  return out


def _needs_full_ranking(config):
  return bool(config.binary_metrics or config.binary_asi or config.multi_level_metrics or config.level_ap)


def _checked_sets(query_embeddings, query_labels, gallery_embeddings, gallery_labels, gallery_contains_queries):
  """``(query, query_labels, gallery, gallery_labels)`` checked; the gallery is the query set when
  ``gallery_embeddings`` is None."""
  query = scoring.check_embeddings(query_embeddings, "query_embeddings")
  query_labels = search.check_labels(query_labels, query.shape[0], "query_labels")
  same_source = gallery_embeddings is None
  if same_source:
    if gallery_labels is not None:
      raise ValueError("gallery_labels given without gallery_embeddings")
    if gallery_contains_queries:
      raise ValueError("gallery_contains_queries=True needs gallery_embeddings and gallery_labels")
    gallery, gallery_labels = query, query_labels
  else:
    if gallery_labels is None:
      raise ValueError("gallery_embeddings given without gallery_labels")
    gallery = scoring.check_embeddings(gallery_embeddings, "gallery_embeddings")
    gallery_labels = search.check_labels(gallery_labels, gallery.shape[0], "gallery_labels")
  if gallery.shape[1] != query.shape[1]:
    raise ValueError(f"query_embeddings {query.shape} and gallery_embeddings {gallery.shape} differ in dimension")
  if gallery_labels.shape[1] != query_labels.shape[1]:
    raise ValueError(
      f"query_labels {query_labels.shape} and gallery_labels {gallery_labels.shape} "
      "have a different number of label columns"
    )
  return query, query_labels, gallery, gallery_labels


def evaluate_retrieval(
  query_embeddings,
  query_labels,
  gallery_embeddings=None,
  gallery_labels=None,
  *,
  config: ml_collections.ConfigDict | None = None,
  self_index=None,
  gallery_contains_queries: bool = False,
  return_per_query: bool = False,
  log=None,
):
  """Retrieval metrics of ``query_embeddings`` against a gallery (see the module docstring).

  Args:
    query_embeddings: ``[Q, D]`` float embeddings (L2-normalised; scores are dot products).
    query_labels: ``[Q, L]`` (or ``[Q]``) int labels, column 0 the finest.
    gallery_embeddings: ``[N, D]``; ``None`` for same-source leave-one-out evaluation. A ``np.memmap``
      (an embedding store on disk; likewise the queries in same-source mode) is read in blocks, never
      whole (``scoring.on_disk``).
    gallery_labels: ``[N, L]``; required with ``gallery_embeddings``.
    config: :func:`default_config` or a variant.
    self_index: optional ``[Q]`` gallery index of each query's own copy (excluded from its
      ranking), -1 where absent; implied in same-source mode. Ignored by ``protocol='original'``.
    gallery_contains_queries: the gallery holds a copy of every query (the original's
      ``gallery_distractor`` sets, e.g. DyML-Vehicle/Animal). The default protocol then needs
      ``self_index`` (no -1) and excludes that copy; the original protocol leaves out each query's
      nearest gallery item instead, as the original code does.
    return_per_query: also return ``{key: [Q] per-query values}`` (NaN where undefined; under the
      original protocol its per-query values, e.g. AP 0 without relevant item).
    log: progress printer (queries searched, rate and ETA every 30 s), or None.

  Returns:
    ``{metric_key: float}`` (and the per-query dictionary when ``return_per_query``); with
    ``config.protocol='both'`` the original protocol's keys are prefixed with ``original/``.

  Raises:
    ValueError: NaN/inf embedding rows (with their count), mismatched shapes, a bad config,
      metrics that need a full ranking with ``config.search='scann'``, or (protocol 'original' or
      'both') a setting the original code cannot evaluate.
  """
  config = default_config() if config is None else config
  query, query_labels, gallery, gallery_labels = _checked_sets(
    query_embeddings, query_labels, gallery_embeddings, gallery_labels, gallery_contains_queries
  )
  same_source = gallery_embeddings is None
  num_q, num_columns = query_labels.shape
  _check_config(config, num_columns)
  protocol = config.protocol
  if gallery_contains_queries and protocol != "original" and (self_index is None or np.any(np.asarray(self_index) < 0)):
    raise ValueError(
      f"gallery_contains_queries=True needs self_index under config.protocol={protocol!r}: the "
      "gallery index of every query's own copy (e.g. the item with the same path), never -1"
    )
  if (
    protocol != "default"
    and not (same_source or gallery_contains_queries)
    and self_index is not None
    and np.any(np.asarray(self_index) >= 0)
  ):
    raise ValueError(
      f"config.protocol={protocol!r}: the original code has no self_index; it ranks a separate gallery "
      "whole or, for a gallery holding the queries, leaves out each query's nearest item (pass "
      "gallery_contains_queries=True)"
    )
  if protocol != "original":
    if same_source and self_index is None:
      self_index = np.arange(num_q)
    self_index = _checked_self_index(self_index, query_labels, gallery_labels)
  if gallery.dtype != query.dtype:
    dtype = np.promote_types(query.dtype, gallery.dtype)
    query, gallery = query.astype(dtype), gallery.astype(dtype)

  progress = reporting.ProgressLog(log, f"{config.search} search", num_q, "queries")
  if protocol == "default":
    results, per_query = _default_metrics(query, query_labels, gallery, gallery_labels, self_index, config, progress)
  else:
    results, per_query = _protocol_metrics(
      query,
      query_labels,
      gallery,
      gallery_labels,
      config,
      progress,
      drop_nearest=same_source or gallery_contains_queries,
      default_self_index=self_index if protocol == "both" else None,
    )
  if return_per_query:
    return results, per_query
  return results


def _checked_self_index(self_index, query_labels, gallery_labels):
  num_q = query_labels.shape[0]
  if self_index is None:
    self_index = np.full(num_q, -1, np.int64)
  self_index = np.asarray(self_index, np.int64)
  if self_index.shape != (num_q,) or np.any(self_index >= gallery_labels.shape[0]):
    raise ValueError(f"self_index must be [{num_q}] gallery indices or -1, got shape {self_index.shape}")
  has_self = self_index >= 0
  if np.any(gallery_labels[self_index[has_self]] != query_labels[has_self]):
    raise ValueError("self_index points to gallery items whose labels differ from their query's")
  return self_index


def _summarise(results, per_query, level_counts, column_counts, config, mean):
  """Adds the mean of every per-query metric (``mean(key, values)``) and the count keys to ``results``."""
  per_query_arrays = {key: np.concatenate(values) for key, values in per_query.items()}
  for key, values in per_query_arrays.items():
    results[key] = mean(key, values)
  results["num_queries"] = float(level_counts.shape[0])
  for h in config.hierarchy_levels:
    results[f"num_no_relevant_level{h}"] = float(np.sum(column_counts[:, h] == 0))
  results["num_no_relevant_multi"] = float(np.sum(level_counts[:, 1:].sum(1) == 0))
  return results, per_query_arrays


def _default_metrics(query, query_labels, gallery, gallery_labels, self_index, config, progress):
  """The default protocol: ``(results, per-query values)``."""
  num_q = query.shape[0]
  has_self = self_index >= 0
  stats = search.label_statistics(query_labels, gallery_labels, self_index)
  level_counts, column_counts, num_ranked = stats.level_counts, stats.column_counts, stats.num_ranked
  full = _needs_full_ranking(config)
  top_k = [int(k) for k in (*config.recall_at, *config.true_recall_at, *config.precision_at, *config.map_at)]
  depth = min(max(top_k, default=1), int(num_ranked.min()))
  results: dict[str, float] = {}
  per_query: dict[str, list[np.ndarray]] = {}

  def add(chunk_values):
    for key, values in chunk_values.items():
      per_query.setdefault(key, []).append(values)

  if config.search == "scann":
    if full:
      raise ValueError(
        "config.search='scann' gives top-k lists only; it supports "
        f"{TOP_K_METRICS}; set binary_metrics=(), binary_asi=False, multi_level_metrics=(), "
        "level_ap=() or use search='exact'"
      )
    sc = config.scann
    # Every key of config.scann but the recall report is a setting of the searcher.
    builder_settings = {k: v for k, v in sc.items() if k not in ("report_recall", "recall_num_queries")}
    searcher = scann_search.build_scann_searcher(gallery, num_neighbors=depth, **builder_settings)
    block = 8192  # queries per ScaNN call: bounds the [block, K] neighbour lists
    for start in range(0, num_q, block):
      stop = min(start + block, num_q)
      indices = scann_search.scann_top_k(
        searcher, query[start:stop], depth, self_index[start:stop] if has_self.any() else None
      )
      chunk_stats = stats.rows(start, stop)
      add(
        _chunk_metrics(
          search.top_k_relevant(indices, query_labels[start:stop], gallery_labels, chunk_stats), config, None
        )
      )
      progress.update(stop)
      if sc.report_recall and start == 0:
        n = min(sc.recall_num_queries, stop)
        exact, _ = scoring.exact_top_k(query[:n], gallery, depth, self_index[:n], chunk_size=config.chunk_size)
        results[f"scann_recall@{depth}"] = scann_search.top_k_recall(indices[:n], exact)
  elif not full:
    for start, indices, _ in scoring.exact_top_k_chunks(
      query, gallery, depth, self_index, chunk_size=config.chunk_size
    ):
      stop = start + len(indices)
      chunk_stats = stats.rows(start, stop)
      add(
        _chunk_metrics(
          search.top_k_relevant(indices, query_labels[start:stop], gallery_labels, chunk_stats), config, None
        )
      )
      progress.update(stop)
  else:
    table = _relevance_table(level_counts, config) if "H-AP" in config.multi_level_metrics else None
    for start, ranked in search.exact_ranked_relevant(
      query, query_labels, gallery, gallery_labels, self_index, stats=stats, chunk_size=config.chunk_size
    ):
      chunk_table = None if table is None else table[start : start + ranked.num_queries]
      add(_chunk_metrics(ranked, config, chunk_table))
      progress.update(start + ranked.num_queries)
  return _summarise(
    results, per_query, level_counts, column_counts, config, lambda key, values: metrics_lib.nan_mean(values)[0]
  )


def _protocol_metrics(
  query, query_labels, gallery, gallery_labels, config, progress, *, drop_nearest, default_self_index
):
  """The original protocol from one exact ranking of the whole gallery; with ``default_self_index``
  (protocol 'both') also the default metrics from the same ranking, the original ones prefixed.

  Each query's list leaves out its nearest item (``drop_nearest``) or its least similar one; the
  default view leaves out the item at ``default_self_index`` (-1: none), which gives the default
  path's integer ranks and counts, hence its numbers bit for bit.
  """
  num_q, num_columns = query_labels.shape
  _check_original_config(config, num_columns, num_q, gallery.shape[0] - 1)
  hap = "H-AP" in config.multi_level_metrics
  no_self = np.full(num_q, -1, np.int64)
  # Each set of label statistics is computed once: the ranking's (nothing excluded) serves the original's
  # relevances when the gallery is the query set, and the default view when it excludes nothing.
  stats = search.label_statistics(query_labels, gallery_labels, no_self)
  same_labels = np.array_equal(query_labels, gallery_labels)
  table = _original_relevance_table(query_labels, config, stats=stats if same_labels else None) if hap else None
  both = default_self_index is not None
  own_index = default_self_index if both else no_self
  if both:
    default_stats = (
      stats
      if np.all(default_self_index < 0)
      else search.label_statistics(query_labels, gallery_labels, default_self_index)
    )
    default_table = _relevance_table(default_stats[0], config) if hap else None
  original_values: dict[str, list[np.ndarray]] = {}
  default_values: dict[str, list[np.ndarray]] = {}
  level_counts, column_counts = [], []

  def add(per_query, chunk_values):
    for key, values in chunk_values.items():
      per_query.setdefault(key, []).append(values)

  for start, ranked, own_rank in search.full_ranked_relevant(
    query, query_labels, gallery, gallery_labels, own_index, stats=stats, chunk_size=config.chunk_size
  ):
    rows = slice(start, start + ranked.num_queries)
    drop = np.ones(ranked.num_queries, np.int64) if drop_nearest else ranked.num_ranked
    original = metrics_lib.drop_ranked(ranked, drop)
    add(original_values, _chunk_metrics(original, config, None if table is None else table[rows], original=True))
    level_counts.append(original.level_counts)
    column_counts.append(original.column_counts)
    if both:
      default = metrics_lib.drop_ranked(ranked, own_rank)
      add(default_values, _chunk_metrics(default, config, None if default_table is None else default_table[rows]))
    progress.update(rows.stop)

  batch = int(config.original_metric_batch_size)

  def original_mean(key, values):
    try:
      return metrics_lib.original_mean(values, batch, skip_undefined=key.startswith("AP#"))
    except ValueError as e:
      raise ValueError(f"{key}: {e} (config.protocol={config.protocol!r})") from e

  results, per_query = _summarise(
    {}, original_values, np.concatenate(level_counts), np.concatenate(column_counts), config, original_mean
  )
  if not both:
    return results, per_query
  default_results, default_per_query = _summarise(
    {}, default_values, default_stats[0], default_stats[1], config, lambda key, values: metrics_lib.nan_mean(values)[0]
  )
  default_results.update({ORIGINAL_PREFIX + k: v for k, v in results.items()})
  default_per_query.update({ORIGINAL_PREFIX + k: v for k, v in per_query.items()})
  return default_results, default_per_query
