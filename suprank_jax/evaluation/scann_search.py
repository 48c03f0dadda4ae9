"""Approximate top-k search with ScaNN: searcher sizes, building, top-k lists, and their recall.

A ScaNN searcher (tree + asymmetric hashing + exact reordering) scores by dot product like the exact
search of :mod:`suprank_jax.evaluation.search`, but gives top-k lists only, never complete rankings;
:func:`top_k_recall` measures how many of the exact top-k neighbours a list holds. Used by the
retrieval protocol (``search='scann'``), the landmark distractor search and the exported index
(:mod:`suprank_jax.index.store`), all sized by :func:`scann_settings`. ``scann`` is imported only when
a searcher is built.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["scann_settings", "build_scann_searcher", "scann_top_k", "top_k_recall"]


def scann_settings(
  num_gallery: int,
  num_neighbors: int,
  *,
  num_leaves: int = 0,
  num_leaves_to_search: int = 0,
  reorder_k: int = 0,
  leaves_share: float | None = None,
) -> dict[str, int]:
  """ScaNN's tree and reordering sizes for a gallery of ``num_gallery`` items and top-``num_neighbors``
  lists (the one sizing rule of every ScaNN searcher here), chosen so that the recall of the exact top-k
  is at least 0.95 (measured on SOP-like synthetic embeddings at 30k and 60k items, k = 100 and 1000:
  ``benchmarks/bench_evaluation.py``).

  * ``num_leaves``: ``sqrt(N)``;
  * ``num_leaves_to_search``: the share ``min(1, 5.5 sqrt(k / N))`` of the leaves: a top-k that
    is a larger part of the gallery spreads over more leaves (k = 1000: 71% of the leaves at 60k
    items, all of them at 30k; k = 100 at 30k: 32%). A top-k of more than about 1% of the gallery
    needs most leaves: ScaNN is then no faster than exact search;
  * ``reorder_k``: ``2 k + 200`` candidates re-scored exactly (the hashed scores rank the true
    neighbours within about twice k).

  A size given (non-zero) replaces the rule's: ``num_leaves`` at most ``N``; without
  ``num_leaves_to_search``, the rule's share of those leaves is searched (``leaves_share``, when given,
  replaces that share: 1.0 searches every leaf); ``reorder_k`` at least ``num_neighbors``.
  """
  num_gallery, k = int(num_gallery), int(num_neighbors)
  auto_leaves = min(max(1, int(math.sqrt(num_gallery))), max(num_gallery, 1))
  leaves = min(num_leaves, num_gallery) if num_leaves else auto_leaves
  share = min(1.0, 5.5 * math.sqrt(k / max(num_gallery, 1))) if leaves_share is None else float(leaves_share)
  auto_to_search = max(1, math.ceil(auto_leaves * share))
  if not num_leaves_to_search:
    # Explicit leaves keep the share of the rule's leaves that the rule searches.
    num_leaves_to_search = max(1, math.ceil(leaves * auto_to_search / auto_leaves)) if num_leaves else auto_to_search
  auto_reorder = min(2 * k + 200, max(num_gallery, k))
  return {
    "num_leaves": leaves,
    "num_leaves_to_search": min(num_leaves_to_search, leaves),
    "reorder_k": max(reorder_k, k) if reorder_k else auto_reorder,
  }


def build_scann_searcher(
  gallery,
  *,
  num_neighbors: int = 10,
  num_leaves: int = 0,
  num_leaves_to_search: int = 0,
  reorder_k: int = 0,
  training_sample_size: int = 100_000,
  dims_per_block: int = 2,
  anisotropic_quantization_threshold: float = 0.2,
  brute_force: bool = False,
):
  """ScaNN dot-product searcher over ``gallery`` (tree + asymmetric hashing + exact reordering).

  Args:
    gallery: ``[N, D]`` embeddings (cast to float32).
    num_neighbors: default number of neighbours of a search.
    num_leaves, num_leaves_to_search, reorder_k: the tree's partitions, those searched per query, and
      the candidates re-scored exactly; 0: the rule's (:func:`scann_settings`, which sizes them all).
    training_sample_size: points used to train the tree (at most ``N``).
    dims_per_block: asymmetric-hashing block size.
    anisotropic_quantization_threshold: ScaNN's anisotropic loss threshold.
    brute_force: exact brute-force scoring instead (for checks).

  Returns:
    A ``scann_ops_pybind`` searcher (cannot be pickled; ``serialize(dir)`` to save it).
  """
  import scann  # pylint: disable=g-import-not-at-top

  gallery = np.ascontiguousarray(gallery, np.float32)
  num_g = gallery.shape[0]
  builder = scann.scann_ops_pybind.builder(gallery, num_neighbors, "dot_product")
  if brute_force:
    return builder.score_brute_force().build()
  sizes = scann_settings(
    num_g, num_neighbors, num_leaves=num_leaves, num_leaves_to_search=num_leaves_to_search, reorder_k=reorder_k
  )
  builder = builder.tree(
    num_leaves=sizes["num_leaves"],
    num_leaves_to_search=sizes["num_leaves_to_search"],
    training_sample_size=min(training_sample_size, num_g),
  )
  builder = builder.score_ah(dims_per_block, anisotropic_quantization_threshold=anisotropic_quantization_threshold)
  return builder.reorder(max(sizes["reorder_k"], num_neighbors)).build()


def scann_top_k(
  searcher,
  query,
  k: int,
  self_index=None,
  *,
  leaves_to_search: int | None = None,
  pre_reorder_num_neighbors: int | None = None,
):
  """Top-``k`` gallery indices from a ScaNN searcher, the query's own copy removed.

  With a self index the search asks for ``k + 1`` neighbours and drops the query's own copy, or
  the last neighbour when the approximate search missed the copy.

  Returns:
    ``[Q, k]`` int64 gallery indices in ranking order.
  """
  query = np.ascontiguousarray(query, np.float32)
  extra = 0 if self_index is None or not np.any(np.asarray(self_index) >= 0) else 1
  kwargs = {"final_num_neighbors": k + extra}
  if leaves_to_search:
    kwargs["leaves_to_search"] = leaves_to_search
  if pre_reorder_num_neighbors:
    kwargs["pre_reorder_num_neighbors"] = pre_reorder_num_neighbors
  neighbors, _ = searcher.search_batched_parallel(query, **kwargs)
  neighbors = np.asarray(neighbors, np.int64)
  if neighbors.shape[1] < k + extra:
    raise ValueError(f"ScaNN returned {neighbors.shape[1]} neighbours, fewer than the {k + extra} requested")
  if not extra:
    return neighbors[:, :k]
  self_index = np.asarray(self_index)
  is_self = neighbors == self_index[:, None]
  # Drop the self match if present, else the last neighbour: a stable argsort moves it to the end.
  order = np.argsort(is_self, axis=1, kind="stable")
  return np.take_along_axis(neighbors, order, 1)[:, :k]


def top_k_recall(approx_indices, exact_indices) -> float:
  """Mean fraction of the exact top-``k`` neighbours found by an approximate search."""
  approx_indices = np.asarray(approx_indices, np.int64)
  exact_indices = np.asarray(exact_indices, np.int64)
  if approx_indices.shape != exact_indices.shape:
    raise ValueError(f"approx and exact indices differ in shape: {approx_indices.shape} vs {exact_indices.shape}")
  if approx_indices.size == 0:
    return float("nan")
  # One key per (query, item): a set intersection per row in O(Q k log(Q k)), not a [Q, k, k] comparison.
  low = min(approx_indices.min(), exact_indices.min())
  width = max(approx_indices.max(), exact_indices.max()) - low + 1
  rows = np.arange(approx_indices.shape[0], dtype=np.int64)[:, None] * width
  return float(np.isin(rows + approx_indices - low, rows + exact_indices - low).mean())
