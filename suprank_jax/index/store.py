"""A searchable gallery: the on-disk index folder written by ``suprank_jax.export`` and read by
``suprank_jax.search``.

Folder layout (format ``suprank_jax.index``, version 1)::

  INDEX_DIR/
    manifest.json      what the index is (below)
    items.csv          one row per gallery item, in index order: location (file path, or the data set
                       record such as 'digits/test[12]'), then one integer label column per level
    embeddings.npy     float32 [N, D], row i = item i: the exact gallery embeddings
    scann/             the ScaNN searcher over embeddings.npy (ScaNN's serialize(), relative paths):
                       exact brute force below EXACT_MAX_ITEMS items; above, a tree of sqrt(N) leaves +
                       asymmetric hashing, every leaf searched and the best 1,000 candidates re-scored
                       exactly (the manifest's "scann" settings; SearchIndex.search can search fewer
                       leaves, faster but with a lower recall: see benchmarks/bench_search.py)
    variables.msgpack  the model variables (flax msgpack) that embedded the gallery, so that queries
                       are embedded by the very same model
    config.yaml        the run's config (as in its workdir: runtime.run_dir.RunDir reads and writes it)

``manifest.json``::

  {"format": "suprank_jax.index", "version": 1, "num_items": N, "embed_dim": D,
   "searcher": "exact" | "scann",
   "scann": {"num_leaves", "leaves_to_search", "pre_reorder_num_neighbors"} (null for "exact"),
   "model": {"name": ..., "weights_sha256": ..., "checkpoint_step": ..., "workdir": ...,
             "input_shape": [H, W, C] (after preprocessing), "image_channels": 1 | 3 (decoding)},
   "gallery": {"dataset": ..., "split": ...} or {"images": FOLDER},
   "level_names": [...], "config": {the run's config.yaml}, "files": {...}}

Scores are dot products of L2-normalised embeddings (cosine similarity), higher is nearer.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from suprank_jax.evaluation.embedding_store import weights_fingerprint
from suprank_jax.runtime.run_dir import RunDir

__all__ = [
  "FORMAT",
  "VERSION",
  "EXACT_MAX_ITEMS",
  "SCANN_REORDER",
  "SEARCHERS",
  "SearchIndex",
  "build_searcher",
  "write_index",
  "load_index",
  "check_model",
]

FORMAT = "suprank_jax.index"
VERSION = 1
# Below this many items the searcher is ScaNN's exact brute force; from it on, a tree + AH searcher.
EXACT_MAX_ITEMS = 20_000
# Candidates re-scored exactly by the tree + AH searcher. On unstructured embeddings (random unit vectors,
# 100,000 x 512) the tree loses recall fast when fewer leaves are searched (10% of them: recall@10 0.24),
# while every leaf with 1,000 re-scored candidates gives 0.9997 at about 3 ms a query on 2 CPU cores.
SCANN_REORDER = 1000
SEARCHERS = ("auto", "exact", "scann")
_FILES = {
  "manifest": "manifest.json",
  "items": "items.csv",
  "embeddings": "embeddings.npy",
  "scann": "scann",
  "variables": "variables.msgpack",
  "config": "config.yaml",
}


def _searcher_kind(num_items: int, searcher: str) -> str:
  if searcher not in SEARCHERS:
    raise ValueError(f"searcher={searcher!r}; valid: {list(SEARCHERS)}")
  if searcher == "auto":
    return "exact" if num_items < EXACT_MAX_ITEMS else "scann"
  return searcher


def build_searcher(embeddings, kind: str, *, num_neighbors: int = 10):
  """A ScaNN searcher over ``embeddings`` ``[N, D]`` and its settings (the manifest's ``"scann"``).

  ``'exact'``: brute force (settings None). ``'scann'``:
  :func:`suprank_jax.evaluation.scann_search.build_scann_searcher` sized by
  :func:`~suprank_jax.evaluation.scann_search.scann_settings` (``sqrt(N)`` leaves), with every leaf
  searched and :data:`SCANN_REORDER` candidates re-scored exactly (the searches' ``k`` is not known yet).

  Returns:
    ``(searcher, settings)``.
  """
  from suprank_jax.evaluation import scann_search  # pylint: disable=g-import-not-at-top

  if kind not in ("exact", "scann"):
    raise ValueError(f"kind={kind!r}; valid: ['exact', 'scann']")
  if kind == "exact":
    return scann_search.build_scann_searcher(embeddings, num_neighbors=num_neighbors, brute_force=True), None
  sizes = scann_search.scann_settings(len(embeddings), num_neighbors, leaves_share=1.0, reorder_k=SCANN_REORDER)
  searcher = scann_search.build_scann_searcher(embeddings, num_neighbors=num_neighbors, **sizes)
  settings = {
    "num_leaves": sizes["num_leaves"],
    "leaves_to_search": sizes["num_leaves_to_search"],
    "pre_reorder_num_neighbors": sizes["reorder_k"],
  }
  return searcher, settings


def _check_embeddings(embeddings) -> np.ndarray:
  from suprank_jax.evaluation import scoring  # pylint: disable=g-import-not-at-top

  embeddings = scoring.check_embeddings(embeddings, "gallery embeddings").astype(np.float32)
  if len(embeddings) == 0:
    raise ValueError("the gallery is empty: an index needs at least one item")
  return embeddings


def write_index(
  out_dir: str,
  embeddings,
  *,
  locations: Sequence[str],
  labels,
  level_names: Sequence[str],
  variables,
  model: Mapping[str, Any],
  gallery: Mapping[str, Any],
  config: Mapping[str, Any],
  searcher: str = "auto",
) -> dict:
  """Writes an index folder (see the module docstring) and returns its manifest.

  Args:
    out_dir: the folder (created; an existing index there is replaced, any other content refused).
    embeddings: ``[N, D]`` float gallery embeddings (``N >= 1``).
    locations: ``N`` strings (file paths or record names).
    labels: ``[N, L]`` int labels (``L = len(level_names)``, may be 0).
    level_names: names of the label columns.
    variables: the model variables that embedded the gallery.
    model: manifest ``model`` fields (name, checkpoint_step, workdir, input_shape, image_channels);
      ``weights_sha256`` (:func:`embedding_store.weights_fingerprint`) is added.
    gallery: what was embedded (``{"dataset", "split"}`` or ``{"images": folder}``).
    config: the run's config as a dict.
    searcher: ``'auto'`` (exact below :data:`EXACT_MAX_ITEMS` items), ``'exact'`` or ``'scann'``.

  Raises:
    ValueError: an empty gallery, NaN/inf embeddings, mismatched lengths, or ``out_dir`` holding
      something other than an index.
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top

  embeddings = _check_embeddings(embeddings)
  num, dim = embeddings.shape
  labels = np.asarray(labels, np.int64)
  if len(locations) != num or labels.shape != (num, len(level_names)):
    raise ValueError(
      f"{num} embeddings but {len(locations)} locations and labels {labels.shape} for levels {list(level_names)}"
    )
  kind = _searcher_kind(num, searcher)
  out_dir = os.path.abspath(os.path.expanduser(out_dir))
  if os.path.exists(out_dir) and (
    not os.path.isdir(out_dir)
    or (os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, _FILES["manifest"])))
  ):
    raise ValueError(
      f"{out_dir} exists and is not an index folder (no {_FILES['manifest']}): choose an empty or new folder"
    )
  host_variables = jax.device_get(variables)
  searcher_obj, settings = build_searcher(embeddings, kind)
  manifest = {
    "format": FORMAT,
    "version": VERSION,
    "num_items": int(num),
    "embed_dim": int(dim),
    "searcher": kind,
    "scann": settings,
    "model": {**dict(model), "weights_sha256": weights_fingerprint(host_variables)},
    "gallery": dict(gallery),
    "level_names": list(level_names),
    "config": dict(config),
    "files": dict(_FILES),
  }
  # Written next to out_dir and renamed at the end: an interrupted export leaves no half index.
  staging = f"{out_dir}.partial-{os.getpid()}"
  shutil.rmtree(staging, ignore_errors=True)
  try:
    os.makedirs(os.path.join(staging, _FILES["scann"]))
    searcher_obj.serialize(os.path.join(staging, _FILES["scann"]), relative_path=True)
    np.save(os.path.join(staging, _FILES["embeddings"]), embeddings)
    with open(os.path.join(staging, _FILES["items"]), "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(["location", *level_names])
      for location, row in zip(locations, labels):
        writer.writerow([location, *row.tolist()])
    with open(os.path.join(staging, _FILES["variables"]), "wb") as f:
      f.write(serialization.msgpack_serialize(host_variables))
    RunDir(staging).write_config(dict(config))
    with open(os.path.join(staging, _FILES["manifest"]), "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=1)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  shutil.rmtree(out_dir, ignore_errors=True)
  os.replace(staging, out_dir)
  return manifest


@dataclasses.dataclass
class SearchIndex:
  """A loaded index (:func:`load_index`).

  Attributes:
    directory: the index folder.
    manifest: its ``manifest.json``.
    locations: ``N`` item locations.
    labels: ``[N, L]`` int64 labels.
    embeddings: ``[N, D]`` float32 (memory-mapped).
    searcher: the ScaNN searcher.
  """

  directory: str
  manifest: dict
  locations: tuple[str, ...]
  labels: np.ndarray
  embeddings: np.ndarray
  searcher: Any

  @property
  def embed_dim(self) -> int:
    return int(self.manifest["embed_dim"])

  @property
  def level_names(self) -> tuple[str, ...]:
    return tuple(self.manifest["level_names"])

  def __len__(self) -> int:
    return len(self.locations)

  def config(self):
    """The run's config (a ``ConfigDict``, read as a run's: :meth:`RunDir.read_config`)."""
    return RunDir(self.directory).read_config()

  def variables(self):
    """The model variables that embedded the gallery."""
    from flax import serialization  # pylint: disable=g-import-not-at-top

    with open(os.path.join(self.directory, _FILES["variables"]), "rb") as f:
      return serialization.msgpack_restore(f.read())

  def search(self, queries, k: int = 10, *, leaves_to_search: int | None = None):
    """Nearest gallery items of each query.

    Args:
      queries: ``[Q, D]`` (or ``[D]``) float embeddings of the index's model.
      k: neighbours per query (at most the gallery size).
      leaves_to_search: tree + AH searcher only: the leaves searched (default: the manifest's, all of
        them); fewer is faster and less exact.

    Returns:
      ``(indices [Q, k'] int64, scores [Q, k'] float32)``, nearest first, ``k' = min(k, N)``; -1 and NaN
      where a search of fewer leaves found fewer than ``k'`` items.

    Raises:
      ValueError: queries of another embedding size (naming the index), or NaN/inf rows.
    """
    from suprank_jax.evaluation import scoring  # pylint: disable=g-import-not-at-top

    queries = np.asarray(queries)
    if queries.ndim == 1:
      queries = queries[None]
    if queries.ndim != 2 or queries.shape[1] != self.embed_dim:
      raise ValueError(
        f"the index {self.directory} holds {self.embed_dim}-d embeddings (model "
        f"{self.manifest['model'].get('name')!r}); the queries have shape {queries.shape}: embed them "
        "with the index's model"
      )
    queries = scoring.check_embeddings(queries, "query embeddings")
    if k < 1:
      raise ValueError(f"k={k} must be >= 1")
    k = min(int(k), len(self))
    kwargs = {}
    settings = self.manifest.get("scann")
    if settings:
      kwargs = {
        "leaves_to_search": int(leaves_to_search or settings["leaves_to_search"]),
        "pre_reorder_num_neighbors": max(k, int(settings["pre_reorder_num_neighbors"])),
      }
    neighbors, scores = self.searcher.search_batched(
      np.ascontiguousarray(queries, np.float32), final_num_neighbors=k, **kwargs
    )
    neighbors, scores = np.asarray(neighbors, np.int64), np.asarray(scores, np.float32)
    # ScaNN pads a short answer (too few leaves searched) with item 0 and a NaN score.
    return np.where(np.isnan(scores), -1, neighbors), scores


def _manifest_error(path: str, what: str) -> ValueError:
  return ValueError(f"{path}: {what}; is this a folder written by python -m suprank_jax.export?")


def load_index(index_dir: str) -> SearchIndex:
  """Reads an index folder.

  Raises:
    FileNotFoundError: no such folder, or a file of the index missing (named).
    ValueError: a manifest of another format or version, or files that disagree with it.
  """
  import scann  # pylint: disable=g-import-not-at-top

  index_dir = os.path.abspath(os.path.expanduser(index_dir))
  manifest_path = os.path.join(index_dir, _FILES["manifest"])
  if not os.path.isfile(manifest_path):
    raise FileNotFoundError(
      f"{manifest_path} does not exist: --index must be a folder written by python -m suprank_jax.export"
    )
  try:
    with open(manifest_path, encoding="utf-8") as f:
      manifest = json.load(f)
  except json.JSONDecodeError as e:
    raise _manifest_error(manifest_path, f"not valid JSON ({e})") from e
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    found = manifest.get("format") if isinstance(manifest, dict) else None
    raise _manifest_error(manifest_path, f"format is {found!r}, expected {FORMAT!r}")
  if manifest.get("version") != VERSION:
    raise _manifest_error(
      manifest_path,
      f"version {manifest.get('version')!r}; this suprank_jax reads version {VERSION}: export the index again",
    )
  for key in ("items", "embeddings", "scann", "variables", "config"):
    path = os.path.join(index_dir, _FILES[key])
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} is missing from the index {index_dir}")
  with open(os.path.join(index_dir, _FILES["items"]), newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  header, rows = rows[0], rows[1:]
  level_names = list(manifest["level_names"])
  if header != ["location", *level_names]:
    raise _manifest_error(
      os.path.join(index_dir, _FILES["items"]),
      f"header {header} differs from ['location', *{level_names}] of the manifest",
    )
  embeddings = np.load(os.path.join(index_dir, _FILES["embeddings"]), mmap_mode="r")
  expected = (manifest["num_items"], manifest["embed_dim"])
  if len(rows) != expected[0] or embeddings.shape != expected:
    raise _manifest_error(
      index_dir,
      f"{len(rows)} items and embeddings {embeddings.shape}, but the manifest says "
      f"{expected[0]} items of dimension {expected[1]}",
    )
  labels = np.array([[int(v) for v in row[1:]] for row in rows], np.int64).reshape(len(rows), len(level_names))
  searcher = scann.scann_ops_pybind.load_searcher(os.path.join(index_dir, _FILES["scann"]))
  return SearchIndex(
    directory=index_dir,
    manifest=manifest,
    locations=tuple(row[0] for row in rows),
    labels=labels,
    embeddings=embeddings,
    searcher=searcher,
  )


def check_model(index: SearchIndex, *, name: str, embed_dim: int, weights_sha256: str, where: str = "the model"):
  """Raises unless the model described matches the one that built ``index``.

  Raises:
    ValueError: another model name, embedding size or weights, naming both sides.
  """
  built = index.manifest["model"]
  mine = f"{where} ({name}, embed_dim {embed_dim}, weights {weights_sha256[:12]})"
  theirs = (
    f"the model of {built.get('workdir')!r} at step {built.get('checkpoint_step')} ({built.get('name')}, "
    f"embed_dim {index.embed_dim}, weights {str(built.get('weights_sha256'))[:12]})"
  )
  if embed_dim != index.embed_dim:
    raise ValueError(
      f"the index {index.directory} was built with {index.embed_dim}-d embeddings by {theirs}; "
      f"{mine} gives {embed_dim}-d embeddings: export the index again with this model"
    )
  if name != built.get("name") or weights_sha256 != built.get("weights_sha256"):
    raise ValueError(
      f"the index {index.directory} was built by another model: {theirs}, not {mine}; their "
      "embeddings are not comparable: export the index again with this model"
    )
