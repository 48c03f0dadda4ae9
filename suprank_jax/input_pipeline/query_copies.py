"""Finds each query's own copy in a gallery that already holds every query.

DyML-Vehicle and DyML-Animal evaluate each benchmark ``bmk_<level>`` with a query set and a gallery
that *already contains a copy of every query* (the reference's ``gallery_distractor``: "the gallery
set is already composed of the queries", ``suprank/engine/accuracy_calculator.py``). A query must
not retrieve its own copy, so the evaluation needs, for each query, the gallery index of that copy.
The copies sit under other file names, so they are matched by identical path first, then by
identical content:

1. identical path: ``os.path.realpath`` of the query file equals that of a gallery file (both
   sources read files);
2. identical content: the md5 of the file bytes (path sources), of the
   encoded record bytes (record sources), or of the pixel array with its shape (in-memory
   sources). A file and a record with the same encoded bytes match.

Each gallery item is the copy of at most one query: queries are served in order, each taking the
lowest gallery index not yet taken among its matches (two identical queries need two copies).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from collections.abc import Callable

import numpy as np

from suprank_jax.input_pipeline import sources

__all__ = ["find_query_copies", "content_digest"]

_PROGRESS_EVERY = 5000


def content_digest(source: sources.Source, i: int) -> str:
  """md5 hex digest of item ``i``'s content: file bytes, record bytes (both read by
  :func:`sources.read_image_bytes`), or pixels.

  Raises:
    sources.ImageLoadError: the file or record cannot be read (the message names it).
  """
  digest = hashlib.md5()
  if source.images is None:
    digest.update(bytes(sources.read_image_bytes(source, i)))
  else:
    image = np.ascontiguousarray(source.images[i])
    digest.update(repr((image.shape, image.dtype.str)).encode())
    digest.update(image.tobytes())
  return digest.hexdigest()


def _progress(log: Callable[[str], None], what: str, total: int):
  """A callback ``done -> None`` that logs every ``_PROGRESS_EVERY`` items of a large set."""

  def report(done):
    if total >= _PROGRESS_EVERY and (done % _PROGRESS_EVERY == 0 or done == total):
      log(f"query copies: hashed {done}/{total} {what}")

  return report


def find_query_copies(
  query_source: sources.Source, gallery_source: sources.Source, *, log: Callable[[str], None] | None = None
) -> np.ndarray:
  """The gallery index of each query's own copy (see the module docstring for the rule).

  Args:
    query_source: ``Q`` queries.
    gallery_source: ``G`` gallery items, holding a copy of every query.
    log: progress messages on large sets (default ``logging.info``).

  Returns:
    int64 ``[Q]``: distinct gallery indices, ``gallery[copies[q]]`` being query ``q``'s copy.

  Raises:
    ValueError: some queries have no copy (the message says how many and names a few).
    sources.ImageLoadError: a file or record cannot be read.
  """
  log = log or logging.getLogger(__name__).info
  num_queries, num_gallery = len(query_source), len(gallery_source)
  copies = np.full(num_queries, -1, np.int64)
  taken = np.zeros(num_gallery, bool)
  if query_source.paths is not None and gallery_source.paths is not None:
    by_path = collections.defaultdict(collections.deque)
    for g, path in enumerate(gallery_source.paths):
      by_path[os.path.realpath(path)].append(g)
    for q, path in enumerate(query_source.paths):
      candidates = by_path.get(os.path.realpath(path))
      if candidates:
        copies[q] = candidates.popleft()
        taken[copies[q]] = True
  pending = np.flatnonzero(copies < 0)
  if len(pending):
    waiting = collections.defaultdict(collections.deque)  # digest -> queries without a copy, in order
    report = _progress(log, f"queries of {query_source.name}", len(pending))
    for done, q in enumerate(pending, start=1):
      waiting[content_digest(query_source, int(q))].append(int(q))
      report(done)
    left = len(pending)
    free = np.flatnonzero(~taken)
    report = _progress(log, f"gallery items of {gallery_source.name}", len(free))
    for done, g in enumerate(free, start=1):
      queue = waiting.get(content_digest(gallery_source, int(g)))
      if queue:
        copies[queue.popleft()] = g
        left -= 1
      report(done)
      if not left:
        break
  missing = np.flatnonzero(copies < 0)
  if len(missing):
    examples = ", ".join(query_source.location(int(q)) for q in missing[:3])
    raise ValueError(
      f"{len(missing)} of {num_queries} queries of {query_source.name} have no copy in {gallery_source.name} "
      f"(e.g. {examples}). The gallery must hold a copy of every query: the same file (same real path) or "
      "an identical file, record or pixel array (same md5), each gallery item the copy of at most one query."
    )
  return copies
