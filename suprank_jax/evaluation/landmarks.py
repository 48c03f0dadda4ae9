"""Revisited Oxford / Paris landmark retrieval protocol (Radenovic et al., CVPR 2018).

Used for the GLDv2-trained models of SupRank. Ground truth comes from ``gnd_roxford5k.pkl`` /
``gnd_rparis6k.pkl``: a pickled dict with ``'imlist'`` (gallery image names), ``'qimlist'`` (query
names) and ``'gnd'``, one dict per query with ``'easy'``, ``'hard'``, ``'junk'`` gallery indices
(and ``'bbx'``, the query crop).

Setups: ``easy`` (positives = easy; junk = junk + hard), ``medium`` (positives = easy + hard; junk =
junk), ``hard`` (positives = hard; junk = junk + easy). Junk images are removed from the ranking
before positions are counted. AP uses the trapezoid rule of the official code: for the ``j``-th
positive (0-based) at 0-based position ``r``, ``(j / r + (j + 1) / (r + 1)) / 2`` (``j / r := 1`` at
``r = 0``), summed and divided by the number of positives. ``mP@k``: with 1-based positions ``p``,
``k' = min(max(p), k)`` and ``#{p <= k'} / k'``. Queries without positives in a setup are left
out of that setup's means. Ranking: decreasing score, ties by lower gallery index.

Keys returned by :func:`revisited_metrics`: ``mAP_easy``, ``mAP_medium``, ``mAP_hard`` and
``mP@{k}_{setup}`` for every ``k`` in ``kappas`` (the original SupRank code reports ``mapM`` =
``mAP_medium`` and ``mapH`` = ``mAP_hard`` only).
"""

from __future__ import annotations

import math
import pickle
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from suprank_jax.evaluation import search

__all__ = [
    "SETUPS",
    "load_revisited_ground_truth",
    "setup_ground_truth",
    "revisited_average_precision",
    "revisited_metrics",
    "evaluate_revisited",
    "multiscale_embed",
]

SETUPS = ("easy", "medium", "hard")


def load_revisited_ground_truth(path) -> dict:
  """Loads a ``gnd_<dataset>.pkl`` file; checks its keys and per-query fields."""
  with open(path, "rb") as f:
    data = pickle.load(f)
  for key in ("imlist", "qimlist", "gnd"):
    if key not in data:
      raise ValueError(f"{path}: missing key {key!r} (found {sorted(data)})")
  if len(data["gnd"]) != len(data["qimlist"]):
    raise ValueError(f"{path}: {len(data['gnd'])} ground-truth entries for {len(data['qimlist'])} queries")
  for i, g in enumerate(data["gnd"]):
    missing = {"easy", "hard", "junk"} - set(g)
    if missing:
      raise ValueError(f"{path}: query {i} lacks {sorted(missing)}")
  return data


def setup_ground_truth(gnd: Sequence[Mapping[str, Sequence[int]]], setup: str):
  """``[(positives, junk)]`` per query for ``setup`` in :data:`SETUPS`."""
  if setup not in SETUPS:
    raise ValueError(f"unknown setup {setup!r}; valid: {SETUPS}")
  out = []
  for g in gnd:
    easy, hard, junk = (np.asarray(g[k], np.int64).reshape(-1) for k in ("easy", "hard", "junk"))
    if setup == "easy":
      out.append((easy, np.concatenate([junk, hard])))
    elif setup == "medium":
      out.append((np.concatenate([easy, hard]), junk))
    else:
      out.append((hard, np.concatenate([junk, easy])))
  return out


def revisited_average_precision(positions, num_positives: int) -> float:
  """Trapezoid AP from the sorted 0-based positions of the positives (junk already removed)."""
  positions = np.asarray(positions, np.float64)
  j = np.arange(len(positions), dtype=np.float64)
  precision_0 = np.divide(j, positions, out=np.ones_like(j), where=positions > 0)
  precision_1 = (j + 1) / (positions + 1)
  return float(np.sum((precision_0 + precision_1) / 2) / num_positives)


def _positions(rank_of, positives, junk):
  """0-based positions of the positives in the ranking with the junk items removed."""
  pos = np.sort(rank_of[positives])
  junk_pos = np.sort(rank_of[junk]) if len(junk) else np.empty(0, np.int64)
  return pos - np.searchsorted(junk_pos, pos, side="left")


def revisited_metrics(scores, gnd, *, kappas: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
  """mAP and mP@k of the easy / medium / hard setups.

  Args:
    scores: ``[num_queries, num_gallery]`` similarities (query @ gallery.T).
    gnd: per-query ground truth dicts (``'easy'``, ``'hard'``, ``'junk'`` gallery indices).
    kappas: cut-offs of the mean precision.

  Returns:
    ``{'mAP_<setup>': .., 'mP@<k>_<setup>': .., 'num_queries_<setup>': ..}``.
  """
  scores = np.asarray(scores)
  if scores.ndim != 2 or scores.shape[0] != len(gnd):
    raise ValueError(f"scores must be [num_queries={len(gnd)}, num_gallery], got shape {scores.shape}")
  num_q, num_g = scores.shape
  rank_of = np.empty((num_q, num_g), np.int64)
  order = np.argsort(-scores, axis=1, kind="stable")
  np.put_along_axis(rank_of, order, np.arange(num_g)[None, :], axis=1)
  out = {}
  for setup in SETUPS:
    aps, prs = [], []
    for i, (positives, junk) in enumerate(setup_ground_truth(gnd, setup)):
      if len(positives) == 0:
        continue
      if positives.max() >= num_g or (len(junk) and junk.max() >= num_g):
        raise ValueError(f"query {i}: ground-truth index out of range for {num_g} gallery items")
      pos = _positions(rank_of[i], positives, junk)
      aps.append(revisited_average_precision(pos, len(positives)))
      one_based = pos + 1
      prs.append([np.sum(one_based <= min(one_based.max(), k)) / min(one_based.max(), k) for k in kappas])
    out[f"mAP_{setup}"] = float(np.mean(aps)) if aps else float("nan")
    for j, k in enumerate(kappas):
      out[f"mP@{k}_{setup}"] = float(np.mean([p[j] for p in prs])) if prs else float("nan")
    out[f"num_queries_{setup}"] = float(len(aps))
  return out


def evaluate_revisited(query_embeddings, gallery_embeddings, gnd, *, kappas: Sequence[int] = (1, 5, 10),
                       chunk_size: int = 256) -> dict[str, float]:
  """Embeddings -> :func:`revisited_metrics` (scores by the chunked exact search).

  Raises:
    ValueError: NaN/inf rows, or dimension mismatch.
  """
  query = search.check_embeddings(query_embeddings, "query_embeddings")
  gallery = search.check_embeddings(gallery_embeddings, "gallery_embeddings")
  if query.shape[1] != gallery.shape[1]:
    raise ValueError(f"query_embeddings {query.shape} and gallery_embeddings {gallery.shape} differ in dimension")
  no_self = np.full(query.shape[0], -1, np.int64)
  scores = np.concatenate([s for _, s, _ in search.score_chunks(query, gallery, no_self, chunk_size=chunk_size)])
  return revisited_metrics(scores, gnd, kappas=kappas)


def multiscale_embed(embed_fn: Callable, images, *, scales: Sequence[float] = (1.0, 1 / math.sqrt(2), 0.5),
                     power: float = 1.0):
  """Multi-scale embedding: generalised mean over scales of un-normalised embeddings, then L2.

  .. math:: e = \\mathrm{normalize}\\Big( \\big(\\tfrac{1}{S} \\sum_s f(\\mathrm{resize}_s(x))^p\\big)^{1/p} \\Big)

  ``p`` is the GeM exponent of the model's pooling (1 for average pooling), as in the original.

  Args:
    embed_fn: maps ``[B, H, W, C]`` images to ``[B, D]`` un-normalised embeddings.
    images: ``[B, H, W, C]`` images.
    scales: resize factors. Resizing is bilinear with half-pixel centres (``jax.image.resize``);
      the original uses PyTorch's ``align_corners=True``, so pixels differ slightly.
    power: exponent ``p``.

  Returns:
    ``[B, D]`` L2-normalised embeddings.
  """
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
  b, h, w, c = images.shape
  total = 0.0
  for s in scales:
    size = (b, max(1, round(h * s)), max(1, round(w * s)), c)
    resized = images if size == images.shape else jax.image.resize(images, size, method="bilinear")
    total = total + jnp.asarray(embed_fn(resized), jnp.float32) ** power
  embedding = (total / len(scales)) ** (1.0 / power)
  return embedding / jnp.maximum(jnp.linalg.norm(embedding, axis=-1, keepdims=True), 1e-12)
