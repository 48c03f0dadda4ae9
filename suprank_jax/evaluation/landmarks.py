"""Revisited Oxford / Paris landmark retrieval protocol (Radenovic et al., CVPR 2018), with distractors.

Used for the GLDv2-trained models of SupRank. Ground truth comes from ``gnd_roxford5k.pkl`` /
``gnd_rparis6k.pkl``: a pickled dict with ``'imlist'`` (gallery image names), ``'qimlist'`` (query
names) and ``'gnd'``, one dict per query with ``'easy'``, ``'hard'``, ``'junk'`` gallery indices
(and ``'bbx'``, the query crop).

Setups: ``easy`` (positives = easy; junk = junk + hard), ``medium`` (positives = easy + hard; junk =
junk), ``hard`` (positives = hard; junk = junk + easy). Junk images are removed from the ranking
before positions are counted. AP uses the trapezoid rule of the official code (revisitop's
``compute_map``): for the ``j``-th positive (0-based) at 0-based position ``r``,
``(j / r + (j + 1) / (r + 1)) / 2`` (``j / r := 1`` at ``r = 0``), summed and divided by the number of
positives. ``mP@k``: with 1-based positions ``p``, ``k' = min(max(p), k)`` and ``#{p <= k'} / k'``.
Queries without positives in a setup are left out of that setup's means. Ranking: decreasing score,
ties by lower gallery index.

Keys returned by :func:`revisited_metrics`: ``mAP_easy``, ``mAP_medium``, ``mAP_hard`` (revisitop's
``mAP E / M / H``), ``mP@{k}_{setup}`` for every ``k`` in ``kappas`` (its ``mP@k``, ``[1, 5, 10]``) and
``num_queries_{setup}``. The original SupRank code reports ``mapM`` = ``mAP_medium`` and ``mapH`` =
``mAP_hard`` only.

Distractors (the 1M set, ``R1M``): they come after the gallery in the ranking's tie rule and are
relevant to no query, so only the number of distractors scoring above each gallery item matters:
:func:`count_distractors_before` streams the distractor embeddings in blocks of
``scoring.GALLERY_BLOCK_BYTES`` (memory: one block plus ``[queries, gallery]`` counts, whatever the number of
distractors) and counts them exactly. With ScaNN (:func:`scann_distractors_before`) each block of
``_SCANN_SHARD_ITEMS`` distractors gets a ScaNN index and the best ``num_neighbors`` distractor
scores of each query are kept; the ranking is then exact down to the ``num_neighbors``-th distractor,
and a gallery item below it is left out of the ranking (:data:`NOT_RETRIEVED`), as revisitop's
``compute_map`` treats a positive missing from a truncated ranking (it adds nothing to AP; AP is still
divided by all positives).

Settings of an evaluation of kind ``'revisited'`` (``config.evals.<name>.revisited``):
:func:`default_config`. Multi-scale embedding is :func:`suprank_jax.models.heads.multiscale_embed`
(re-exported here as ``multiscale_embed``), the package's one implementation.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence

import ml_collections
import numpy as np

from suprank_jax.evaluation import scann_search, scoring
from suprank_jax.models.heads import multiscale_embed
from suprank_jax.runtime import reporting

__all__ = [
  "SETUPS",
  "SEARCHES",
  "DISTRACTOR_MODES",
  "NOT_RETRIEVED",
  "default_config",
  "check_config",
  "load_revisited_ground_truth",
  "setup_ground_truth",
  "revisited_average_precision",
  "revisited_metrics",
  "count_distractors_before",
  "scann_distractors_before",
  "gallery_scores",
  "evaluate_revisited",
  "evaluate_revisited_sets",
  "multiscale_embed",
]

SETUPS = ("easy", "medium", "hard")
SEARCHES = ("exact", "scann")
DISTRACTOR_MODES = ("auto", "yes", "no")
DTYPES = ("", "float32", "bfloat16")
# A gallery item ranked below the searched part of a truncated (ScaNN) ranking.
NOT_RETRIEVED = np.iinfo(np.int64).max // 4
_SCANN_SHARD_ITEMS = 100_000  # distractors per ScaNN index (its memory: about twice the shard's embeddings)


def default_config() -> ml_collections.ConfigDict:
  """Every setting of a Revisited evaluation (``config.evals.<name>.revisited``), with its default."""
  c = ml_collections.ConfigDict()
  # The benchmarks, read from config.evals.<name>.data_dir/<dataset>/ (revisitop / cirtorch layout).
  c.datasets = ("roxford5k", "rparis6k")
  # The 1M distractors, data_dir/revisitop1m/: 'auto' (when revisitop1m.txt is there), 'yes' or 'no'.
  c.distractors = "auto"
  # Images: the longer side of each full image shrunk to max_side (never enlarged; a query crop keeps
  # its image's scale), the protocol's 1024. Batches hold images of one shape.
  c.max_side = 1024
  # 0, or N: instead, every (cropped) image resized to N x N, as the original's configs (Resize([224,
  # 224]); gldv2_bench: [1024, 1024]) and evaluate_landmark.py (--imsize, default 224) do; max_side unread.
  c.square_size = 0
  # Multi-scale embedding at the original's scales (models.heads.MULTISCALE_SCALES).
  c.multiscale = False
  # '' (the model's dtype), 'float32' or 'bfloat16' (mixed precision: bf16 backbone, float32 head).
  c.dtype = ""
  # 0: each image shape is its own batch shape (exact; one compilation per distinct shape). N (a
  # multiple of the backbone's stride, 32 for a ResNet): images are zero-padded to multiples of N and
  # pooled over their own region (few compilations; approximate near the padded border).
  c.pad_to_multiple = 0
  c.kappas = (1, 5, 10)
  # Search of the distractors: 'exact' (streamed, exact ranks) or 'scann' (top scann_num_neighbors).
  c.search = "exact"
  c.scann_num_neighbors = 1000
  # A whitening applied to every embedding (then L2): a file (models/whitening.py), or learned
  # (PCA-whitening) from the embeddings of learn_whitening_images images of the training split (a fixed
  # random subset; all of them when it has fewer).
  c.whitening = ""
  c.learn_whitening_images = 0
  # (Large sets are embedded on disk: config.evals.<name>.cache_dir, cache_min_items, keep_embeddings.)
  c.loader_threads = 4
  return c


def check_config(c, *, where: str = "config.evals.<name>.revisited"):
  """Rejects impossible Revisited settings, naming the key.

  Raises:
    ValueError: an unknown value, or a setting that the others make unread.
  """
  from suprank_jax.input_pipeline.readers import revisited  # pylint: disable=g-import-not-at-top

  defaults = default_config()
  unknown = sorted(set(c.keys()) - set(defaults.keys()))
  if unknown:
    raise ValueError(f"{where} has unknown keys {unknown}; valid: {sorted(defaults.keys())}")
  bad = [d for d in c.datasets if d not in revisited.REVISITED_DATASETS]
  if not c.datasets or bad or len(set(c.datasets)) != len(c.datasets):
    raise ValueError(f"{where}.datasets={tuple(c.datasets)} must name some of {revisited.REVISITED_DATASETS} once each")
  for key, valid in (("distractors", DISTRACTOR_MODES), ("search", SEARCHES), ("dtype", DTYPES)):
    if c[key] not in valid:
      raise ValueError(f"{where}.{key}={c[key]!r}; valid: {valid}")
  for key, low in (
    ("max_side", 1),
    ("square_size", 0),
    ("pad_to_multiple", 0),
    ("scann_num_neighbors", 1),
    ("learn_whitening_images", 0),
    ("loader_threads", 1),
  ):
    if isinstance(c[key], bool) or not isinstance(c[key], int) or c[key] < low:
      raise ValueError(f"{where}.{key}={c[key]!r} must be an integer >= {low}")
  if not c.kappas or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in c.kappas):
    raise ValueError(f"{where}.kappas={tuple(c.kappas)} must be positive integers")
  if c.square_size and c.max_side != defaults.max_side:
    raise ValueError(f"{where}.max_side is not read with {where}.square_size={c.square_size}: set one of them")
  if c.square_size and c.pad_to_multiple:
    raise ValueError(f"{where}.pad_to_multiple is not needed with {where}.square_size (every image has one shape)")
  if c.pad_to_multiple and c.multiscale:
    raise ValueError(f"{where}.pad_to_multiple needs multiscale=False (each scale would be padded differently)")
  if c.search != "scann" and c.scann_num_neighbors != defaults.scann_num_neighbors:
    raise ValueError(
      f"{where}.scann_num_neighbors is set but {where}.search={c.search!r}; set search='scann' "
      "or leave it at its default"
    )
  if c.distractors == "no" and c.search != defaults.search:
    raise ValueError(f"{where}.search={c.search!r} searches the distractors, but {where}.distractors='no'")
  if c.whitening and c.learn_whitening_images:
    raise ValueError(f"{where}.whitening and {where}.learn_whitening_images are both set: give one")


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
  """0-based positions of the ranked positives in the ranking with the ranked junk items removed."""
  pos = np.sort(rank_of[positives])
  pos = pos[pos < NOT_RETRIEVED]
  junk_pos = np.sort(rank_of[junk]) if len(junk) else np.empty(0, np.int64)
  return pos - np.searchsorted(junk_pos, pos, side="left")


def _precision_at(positions, kappas):
  """revisitop's mP@k of one query: ``#{p <= k'} / k'`` with ``k' = min(max(p), k)`` (1-based ``p``)."""
  if not len(positions):
    return [0.0] * len(kappas)
  one_based = positions + 1
  return [np.sum(one_based <= min(one_based.max(), k)) / min(one_based.max(), k) for k in kappas]


def revisited_metrics(scores, gnd, *, kappas: Sequence[int] = (1, 5, 10), distractors_before=None) -> dict[str, float]:
  """mAP and mP@k of the easy / medium / hard setups.

  Args:
    scores: ``[num_queries, num_gallery]`` similarities (query @ gallery.T).
    gnd: per-query ground truth dicts (``'easy'``, ``'hard'``, ``'junk'`` gallery indices).
    kappas: cut-offs of the mean precision.
    distractors_before: optional ``[num_queries, num_gallery]`` integers: how many distractors rank
      before each gallery item (:func:`count_distractors_before`), or :data:`NOT_RETRIEVED` for an item
      below a truncated ranking.

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
  if distractors_before is not None:
    distractors_before = np.asarray(distractors_before, np.int64)
    if distractors_before.shape != scores.shape:
      raise ValueError(f"distractors_before has shape {distractors_before.shape}, scores {scores.shape}")
    rank_of = np.where(distractors_before >= NOT_RETRIEVED, NOT_RETRIEVED, rank_of + distractors_before)
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
      prs.append(_precision_at(pos, kappas))
    out[f"mAP_{setup}"] = float(np.mean(aps)) if aps else float("nan")
    for j, k in enumerate(kappas):
      out[f"mP@{k}_{setup}"] = float(np.mean([p[j] for p in prs])) if prs else float("nan")
    out[f"num_queries_{setup}"] = float(len(aps))
  return out


def _scores(query, items):
  """``[Q, N]`` scores and each row sorted, computed as :func:`evaluate_revisited` scores the gallery."""
  no_self = np.full(len(query), -1, np.int64)
  ((_, scores, sorted_scores),) = scoring.score_chunks(query, items, no_self, chunk_size=len(query), sort=True)
  return scores, sorted_scores


def _blocks(distractors, rows: int, transform, log, what: str):
  """Blocks of ``rows`` distractor embeddings (read one at a time), transformed, with progress."""
  total = len(distractors)
  progress = reporting.ProgressLog(log, what, total, "distractors")
  for start in range(0, total, rows):
    block = scoring.read_rows(distractors, start, min(start + rows, total)).astype(np.float32, copy=False)
    yield transform(block) if transform is not None else block
    progress.update(min(start + rows, total))


def _groups(query, gallery_scores):
  """``gallery_scores`` as a list of ``[Q_j, G_j]`` arrays whose rows are consecutive queries."""
  single = not isinstance(gallery_scores, (list, tuple))
  groups = [np.asarray(gallery_scores)] if single else [np.asarray(g) for g in gallery_scores]
  if sum(len(g) for g in groups) != len(query):
    raise ValueError(f"gallery_scores have {sum(len(g) for g in groups)} rows for {len(query)} queries")
  return single, groups, np.cumsum([0] + [len(g) for g in groups])


def count_distractors_before(query, gallery_scores, distractors, *, transform: Callable | None = None, log=None):
  """Exact number of distractors ranked before each gallery item, for every query.

  A distractor ranks before gallery item ``g`` of query ``q`` when its score is higher than ``g``'s
  (equal scores rank the gallery item first: distractors come after the gallery). The distractors are
  read once, one block at a time, whatever the number of benchmarks.

  Args:
    query: ``[Q, D]`` query embeddings.
    gallery_scores: ``[Q, G]`` scores of the gallery, or a list of ``[Q_j, G_j]`` (benchmarks with
      their own galleries, whose queries are consecutive rows of ``query``).
    distractors: ``[M, D]`` embeddings (an array or a ``np.memmap``, read one block at a time).
    transform: applied to each block of distractor embeddings (e.g. a whitening).
    log: progress printer (None: silent).

  Returns:
    int64 counts shaped as ``gallery_scores`` (an array, or a list of arrays).
  """
  single, groups, offsets = _groups(query, gallery_scores)
  counts = [np.zeros(g.shape, np.int64) for g in groups]
  rows = max(1, scoring.GALLERY_BLOCK_BYTES // (4 * np.shape(distractors)[1]))
  for block in _blocks(distractors, rows, transform, log, "exact search"):
    _, sorted_scores = _scores(query, block)
    for j, g in enumerate(groups):
      for q in range(len(g)):
        counts[j][q] += len(block) - np.searchsorted(sorted_scores[offsets[j] + q], g[q], side="right")
  return counts[0] if single else counts


def scann_distractors_before(
  query,
  gallery_scores,
  distractors,
  *,
  num_neighbors: int = 1000,
  transform: Callable | None = None,
  log=None,
  **scann_settings,
):
  """:func:`count_distractors_before` from ScaNN's top ``num_neighbors`` distractors of each query.

  Each shard of ``_SCANN_SHARD_ITEMS`` distractors gets its own ScaNN index, built once and searched
  by every query (memory bounded by a shard); the best ``num_neighbors`` scores over all shards are
  kept. A gallery item scoring at least the ``num_neighbors``-th kept score gets its count among the
  kept ones; a lower one gets :data:`NOT_RETRIEVED` (it lies beyond the searched ranking).

  Args:
    query, gallery_scores, distractors, transform, log: as :func:`count_distractors_before`.
    num_neighbors: distractors kept per query.
    **scann_settings: passed to :func:`scann_search.build_scann_searcher` (tree and reordering sizes).
  """
  single, groups, offsets = _groups(query, gallery_scores)
  query = np.ascontiguousarray(query, np.float32)
  best = np.full((len(query), 0), -np.inf, np.float32)
  for shard in _blocks(distractors, _SCANN_SHARD_ITEMS, transform, log, "ScaNN search"):
    k = min(num_neighbors, len(shard))
    searcher = scann_search.build_scann_searcher(shard, num_neighbors=k, **scann_settings)
    _, found = searcher.search_batched(query, final_num_neighbors=k)
    best = np.sort(np.concatenate([best, np.asarray(found, np.float32)], axis=1), axis=1)[:, -num_neighbors:]
    del searcher
  counts = []
  for j, g in enumerate(groups):
    c = np.empty(g.shape, np.int64)
    for q in range(len(g)):
      row = best[offsets[j] + q]
      c[q] = best.shape[1] - np.searchsorted(row, g[q], side="right")
      if best.shape[1] == num_neighbors:
        c[q][g[q] < row[0]] = NOT_RETRIEVED
    counts.append(c)
  return counts[0] if single else counts


def gallery_scores(query_embeddings, gallery_embeddings, *, chunk_size: int = 256) -> np.ndarray:
  """``[Q, G]`` query-gallery similarities by the chunked exact search, rows checked finite.

  Raises:
    ValueError: NaN/inf rows, or dimension mismatch.
  """
  query = scoring.check_embeddings(query_embeddings, "query_embeddings")
  gallery = scoring.check_embeddings(gallery_embeddings, "gallery_embeddings")
  if query.shape[1] != gallery.shape[1]:
    raise ValueError(f"query_embeddings {query.shape} and gallery_embeddings {gallery.shape} differ in dimension")
  no_self = np.full(query.shape[0], -1, np.int64)
  return np.concatenate([s for _, s, _ in scoring.score_chunks(query, gallery, no_self, chunk_size=chunk_size)])


def evaluate_revisited_sets(
  sets: Mapping[str, tuple],
  *,
  kappas: Sequence[int] = (1, 5, 10),
  chunk_size: int = 256,
  distractors=None,
  search_mode: str = "exact",
  scann_num_neighbors: int = 1000,
  distractor_transform: Callable | None = None,
  log=None,
) -> dict[str, dict[str, float]]:
  """:func:`revisited_metrics` of several benchmarks, with the distractors searched once for all.

  Args:
    sets: ``{name: (query [Q, D], gallery [G, D], gnd)}``.
    kappas: mP@k cut-offs.
    chunk_size: queries per chunk of the gallery scores.
    distractors: optional ``[M, D]`` distractor embeddings (array or memmap, streamed once), ranked
      after the gallery on equal scores.
    search_mode: 'exact' or 'scann' (the distractors' search).
    scann_num_neighbors: distractors kept per query with ScaNN.
    distractor_transform: applied to each block of distractors before scoring (a whitening).
    log: progress printer of the distractor search.

  Returns:
    ``{name: metrics}`` and, with distractors, ``{name + '+1m': metrics}``.

  Raises:
    ValueError: NaN/inf rows, or dimension mismatch.
  """
  scores = {name: gallery_scores(q, g, chunk_size=chunk_size) for name, (q, g, _) in sets.items()}
  out = {name: revisited_metrics(scores[name], gnd, kappas=kappas) for name, (_, _, gnd) in sets.items()}
  if distractors is None:
    return out
  if search_mode not in SEARCHES:
    raise ValueError(f"search_mode={search_mode!r}; valid: {SEARCHES}")
  names = list(sets)
  query = np.concatenate([np.asarray(sets[n][0], np.float32) for n in names])
  groups = [scores[n] for n in names]
  if search_mode == "scann":
    before = scann_distractors_before(
      query, groups, distractors, num_neighbors=scann_num_neighbors, transform=distractor_transform, log=log
    )
  else:
    before = count_distractors_before(query, groups, distractors, transform=distractor_transform, log=log)
  for name, counts in zip(names, before):
    out[f"{name}+1m"] = revisited_metrics(scores[name], sets[name][2], kappas=kappas, distractors_before=counts)
  return out


def evaluate_revisited(
  query_embeddings,
  gallery_embeddings,
  gnd,
  *,
  kappas: Sequence[int] = (1, 5, 10),
  chunk_size: int = 256,
  distractors=None,
  search_mode: str = "exact",
  scann_num_neighbors: int = 1000,
  distractor_transform: Callable | None = None,
  log=None,
) -> dict[str, float]:
  """Embeddings of one benchmark -> :func:`revisited_metrics` (with the distractors when given; see
  :func:`evaluate_revisited_sets` for the arguments).

  Raises:
    ValueError: NaN/inf rows, or dimension mismatch.
  """
  out = evaluate_revisited_sets(
    {"set": (query_embeddings, gallery_embeddings, gnd)},
    kappas=kappas,
    chunk_size=chunk_size,
    distractors=distractors,
    search_mode=search_mode,
    scann_num_neighbors=scann_num_neighbors,
    distractor_transform=distractor_transform,
    log=log,
  )
  return out["set+1m"] if distractors is not None else out["set"]
