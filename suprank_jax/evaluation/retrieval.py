"""Retrieval evaluation entry point: embeddings + labels -> metric dictionary.

:func:`evaluate_retrieval` covers the evaluation modes of SupRank/HAPPIER/ROADMAP:

* same source (``gallery_embeddings=None``): every item queries all the others, itself excluded;
* query / gallery (SOP-style ``InShop``, disjoint sets): pass the gallery;
* queries plus distractors: ``gallery, gallery_labels, self_index = with_distractors(...)``;
* gallery that already contains the queries: pass ``self_index`` (each query's index in the
  gallery), and that copy is excluded from the query's ranking.

Metric keys (``h`` is a label column / hierarchy level of ``config.hierarchy_levels``, column 0 the
finest; definitions in :mod:`suprank_jax.evaluation.metrics`):

========================  =====================================================================
``R@{k}_level{h}``        recall rate: a relevant item in the top k (``config.recall_at``)
``true_R@{k}_level{h}``   ``#relevant in top k / min(R, k)`` (``config.true_recall_at``)
``P@{k}_level{h}``        precision at k (``config.precision_at``; P@1 by default)
``AP_level{h}``           average precision over the whole ranking
``mAP@R_level{h}``        AP truncated to the first R (Musgrave et al.)
``mAP@{k}_level{h}``      AP truncated to the top k (``config.map_at``)
``RP_level{h}``           R-precision (``'RP'`` in ``config.binary_metrics``)
``ASI_level{h}``          binary ASI (``config.binary_asi``)
``H-AP_multi``            hierarchical AP with the HAPPIER relevances (``config.relevance``)
``ASI_multi``             multi-level average set intersection
``NDCG_multi``            NDCG with gains ``2**level - 1``
``AP#{v}_exclude``        AP of the items at level v, higher levels removed (``config.level_ap``)
``num_queries``           number of queries
``num_no_relevant_level{h}``  queries without any relevant item at column h (AP-type means
                          skip them; R@k counts them as misses; P@k as 0)
``num_no_relevant_multi`` queries without any item of level >= 1
``scann_recall@{K}``      ScaNN's top-K recall against exact search (``config.scann.report_recall``)
========================  =====================================================================

AP-type metrics (AP, mAP@R, mAP@k, true_R@k, RP, ASI, H-AP, NDCG, AP#v) are means over the queries
where they are defined; ``R@k`` and ``P@k`` are means over all queries. Every mean is over queries
(not over chunks).

Search: ``config.search = 'exact'`` ranks the whole gallery (chunked jitted matmul; ranks of the
relevant items by counting against the sorted row, no full argsort). When only top-k metrics are
requested (R@k, true_R@k, P@k, mAP@k) it uses the cheaper exact top-K (``lax.top_k``). ``'scann'``
uses an approximate ScaNN top-K and supports only those top-k metrics.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from suprank_jax import hierarchy
from suprank_jax.evaluation import metrics as metrics_lib
from suprank_jax.evaluation import search

__all__ = ["default_config", "evaluate_retrieval", "with_distractors", "TOP_K_METRICS", "FULL_RANK_METRICS"]

BINARY_METRICS = ("AP", "mAP@R", "RP")
MULTI_LEVEL_METRICS = ("H-AP", "ASI", "NDCG")
SEARCHES = ("exact", "scann")
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
  config.binary_metrics = ("AP", "mAP@R")          # subset of BINARY_METRICS
  config.binary_asi = False
  config.multi_level_metrics = ("H-AP", "ASI", "NDCG")  # subset of MULTI_LEVEL_METRICS
  config.level_ap = ()                             # levels v >= 1 for AP#v
  config.relevance = ml_collections.ConfigDict()
  config.relevance.type = "pop"                    # hierarchy.RELEVANCE_TYPES
  config.relevance.alpha = 1.0                     # 'pop' exponent
  config.relevance.weights = ()                    # 'map' level weights (one per label column)
  config.search = "exact"                          # SEARCHES
  config.chunk_size = 256                          # queries per chunk
  config.scann = ml_collections.ConfigDict()
  config.scann.num_leaves = 0                      # 0: sqrt(gallery size)
  config.scann.num_leaves_to_search = 0            # 0: num_leaves / 10
  config.scann.reorder_k = 100
  config.scann.training_sample_size = 100_000
  config.scann.dims_per_block = 2
  config.scann.anisotropic_quantization_threshold = 0.2
  config.scann.brute_force = False
  config.scann.report_recall = False
  config.scann.recall_num_queries = 1000           # queries used for the recall report (first ones)
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
  for name, allowed, given in (("binary_metrics", BINARY_METRICS, config.binary_metrics),
                               ("multi_level_metrics", MULTI_LEVEL_METRICS, config.multi_level_metrics)):
    unknown = set(given) - set(allowed)
    if unknown:
      raise ValueError(f"config.{name} has unknown metrics {sorted(unknown)}; valid: {allowed}")
  if config.search not in SEARCHES:
    raise ValueError(f"config.search={config.search!r}; valid: {SEARCHES}")
  for h in config.hierarchy_levels:
    if not 0 <= h < num_columns:
      raise ValueError(f"config.hierarchy_levels has {h}, out of range for labels with {num_columns} columns")
  for v in config.level_ap:
    if not 1 <= v <= num_columns:
      raise ValueError(f"config.level_ap has {v}; levels 1..{num_columns} are valid")
  for name in ("recall_at", "true_recall_at", "precision_at", "map_at"):
    if any(int(k) < 1 for k in config[name]):
      raise ValueError(f"config.{name} must hold positive integers, got {tuple(config[name])}")


def _relevance_table(level_counts, config):
  num_columns = level_counts.shape[1] - 1
  alpha = tuple(config.relevance.weights) if config.relevance.type == "map" else config.relevance.alpha
  if config.relevance.type == "map" and len(alpha) != num_columns:
    raise ValueError(f"config.relevance.weights needs {num_columns} weights for 'map' relevance, got {alpha}")
  return np.asarray(hierarchy.relevance_table(level_counts.astype(np.float32), kind=config.relevance.type,
                                              alpha=alpha), np.float64)


def _chunk_metrics(ranked, config, relevance_table):
  """Per-query values of every requested metric for one chunk."""
  out = {}
  if ranked.depth is None:
    if "H-AP" in config.multi_level_metrics:
      out["H-AP_multi"] = metrics_lib.hap_metric(ranked, relevance_table)
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
      out[f"mAP@{k}{suffix}"] = metrics_lib.map_at_k_metric(offsets, ranks, num_rel, k=k)
    if ranked.depth is None:
      if "AP" in config.binary_metrics:
        out[f"AP{suffix}"] = metrics_lib.average_precision_metric(offsets, ranks, num_rel)
      if "mAP@R" in config.binary_metrics:
        out[f"mAP@R{suffix}"] = metrics_lib.map_at_r_metric(offsets, ranks, num_rel)
      if "RP" in config.binary_metrics:
        out[f"RP{suffix}"] = metrics_lib.r_precision_metric(offsets, ranks, num_rel)
      if config.binary_asi:
        out[f"ASI{suffix}"] = metrics_lib.binary_asi_metric(offsets, ranks, num_rel)
  return out


def _needs_full_ranking(config):
  return bool(config.binary_metrics or config.binary_asi or config.multi_level_metrics or config.level_ap)


def evaluate_retrieval(query_embeddings, query_labels, gallery_embeddings=None, gallery_labels=None, *,
                       config: ml_collections.ConfigDict | None = None, self_index=None,
                       return_per_query: bool = False):
  """Retrieval metrics of ``query_embeddings`` against a gallery (see the module docstring).

  Args:
    query_embeddings: ``[Q, D]`` float embeddings (L2-normalised; scores are dot products).
    query_labels: ``[Q, L]`` (or ``[Q]``) int labels, column 0 the finest.
    gallery_embeddings: ``[N, D]``; ``None`` for same-source leave-one-out evaluation.
    gallery_labels: ``[N, L]``; required with ``gallery_embeddings``.
    config: :func:`default_config` or a variant.
    self_index: optional ``[Q]`` gallery index of each query's own copy (excluded from its
      ranking), -1 where absent; implied in same-source mode.
    return_per_query: also return ``{key: [Q] per-query values}`` (NaN where undefined).

  Returns:
    ``{metric_key: float}`` (and the per-query dictionary when ``return_per_query``).

  Raises:
    ValueError: NaN/inf embedding rows (with their count), mismatched shapes, a bad config, or
      metrics that need a full ranking with ``config.search='scann'``.
  """
  config = default_config() if config is None else config
  query = search.check_embeddings(query_embeddings, "query_embeddings")
  query_labels = search.check_labels(query_labels, query.shape[0], "query_labels")
  if gallery_embeddings is None:
    if gallery_labels is not None:
      raise ValueError("gallery_labels given without gallery_embeddings")
    gallery, gallery_labels = query, query_labels
    self_index = np.arange(query.shape[0]) if self_index is None else self_index
  else:
    if gallery_labels is None:
      raise ValueError("gallery_embeddings given without gallery_labels")
    gallery = search.check_embeddings(gallery_embeddings, "gallery_embeddings")
    gallery_labels = search.check_labels(gallery_labels, gallery.shape[0], "gallery_labels")
  if gallery.shape[1] != query.shape[1]:
    raise ValueError(f"query_embeddings {query.shape} and gallery_embeddings {gallery.shape} differ in dimension")
  if gallery_labels.shape[1] != query_labels.shape[1]:
    raise ValueError(f"query_labels {query_labels.shape} and gallery_labels {gallery_labels.shape} "
                     "have a different number of label columns")
  num_q, num_columns = query_labels.shape
  if self_index is None:
    self_index = np.full(num_q, -1, np.int64)
  self_index = np.asarray(self_index, np.int64)
  if self_index.shape != (num_q,) or np.any(self_index >= gallery.shape[0]):
    raise ValueError(f"self_index must be [{num_q}] gallery indices or -1, got shape {self_index.shape}")
  has_self = self_index >= 0
  if np.any(gallery_labels[self_index[has_self]] != query_labels[has_self]):
    raise ValueError("self_index points to gallery items whose labels differ from their query's")
  _check_config(config, num_columns)
  if gallery.dtype != query.dtype:
    dtype = np.promote_types(query.dtype, gallery.dtype)
    query, gallery = query.astype(dtype), gallery.astype(dtype)

  stats = search.label_statistics(query_labels, gallery_labels, self_index)
  level_counts, column_counts, num_ranked = stats
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
      raise ValueError("config.search='scann' gives top-k lists only; it supports "
                       f"{TOP_K_METRICS}; set binary_metrics=(), binary_asi=False, multi_level_metrics=(), "
                       "level_ap=() or use search='exact'")
    sc = config.scann
    searcher = search.build_scann_searcher(
        gallery, num_neighbors=depth, num_leaves=sc.num_leaves, num_leaves_to_search=sc.num_leaves_to_search,
        reorder_k=sc.reorder_k, training_sample_size=sc.training_sample_size, dims_per_block=sc.dims_per_block,
        anisotropic_quantization_threshold=sc.anisotropic_quantization_threshold, brute_force=sc.brute_force)
    block = 8192  # queries per ScaNN call: bounds the [block, K] neighbour lists
    for start in range(0, num_q, block):
      stop = min(start + block, num_q)
      indices = search.scann_top_k(searcher, query[start:stop], depth,
                                   self_index[start:stop] if has_self.any() else None)
      chunk_stats = tuple(s[start:stop] for s in stats)
      add(_chunk_metrics(search.top_k_relevant(indices, query_labels[start:stop], gallery_labels, chunk_stats),
                         config, None))
      if sc.report_recall and start == 0:
        n = min(sc.recall_num_queries, stop)
        exact, _ = search.exact_top_k(query[:n], gallery, depth, self_index[:n], chunk_size=config.chunk_size)
        results[f"scann_recall@{depth}"] = search.top_k_recall(indices[:n], exact)
  elif not full:
    for start, indices, _ in search.exact_top_k_chunks(query, gallery, depth, self_index,
                                                       chunk_size=config.chunk_size):
      stop = start + len(indices)
      chunk_stats = tuple(s[start:stop] for s in stats)
      add(_chunk_metrics(search.top_k_relevant(indices, query_labels[start:stop], gallery_labels, chunk_stats),
                         config, None))
  else:
    table = _relevance_table(level_counts, config) if "H-AP" in config.multi_level_metrics else None
    for start, ranked in search.exact_ranked_relevant(query, query_labels, gallery, gallery_labels, self_index,
                                                      chunk_size=config.chunk_size):
      chunk_table = None if table is None else table[start:start + ranked.num_queries]
      add(_chunk_metrics(ranked, config, chunk_table))

  per_query_arrays = {key: np.concatenate(values) for key, values in per_query.items()}
  for key, values in per_query_arrays.items():
    results[key], _ = metrics_lib.nan_mean(values)
  results["num_queries"] = float(num_q)
  for h in config.hierarchy_levels:
    results[f"num_no_relevant_level{h}"] = float(np.sum(column_counts[:, h] == 0))
  results["num_no_relevant_multi"] = float(np.sum(level_counts[:, 1:].sum(1) == 0))
  if return_per_query:
    return results, per_query_arrays
  return results
