"""Exact scores and exact top-k for evaluation: ``query @ gallery.T`` in chunks of queries, never the whole
matrix (the ranks of the relevant items built from them: :mod:`suprank_jax.evaluation.search`).

Scores are dot products (embeddings are expected L2-normalised, so this is the cosine similarity),
computed ``chunk_size`` query rows at a time by a jitted matmul on the default device; float64
embeddings are scored in numpy. Ties rank the lower gallery index first (``lax.top_k``'s rule). A
query's own copy in the gallery (``self_index``) is scored ``-inf``.

A gallery on disk (a ``np.memmap``, e.g. an evaluator's embedding store for a large index) is never
held whole: it is read in blocks of :data:`GALLERY_BLOCK_BYTES`, each scored on the device, and the
score rows of a chunk of queries (at most ``_ON_DISK_SCORE_BYTES`` of them, which sets the chunk
size) go back to the host; exact top-k merges the blocks' top-k on the device. Memory: one block and
a few chunks of score rows, whatever the gallery size. (Scores computed block by block may differ
from a whole-gallery matmul in the last bit, as any change of matmul shape may.)
"""

from __future__ import annotations

import functools
import mmap

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "GALLERY_BLOCK_BYTES",
  "on_disk",
  "read_rows",
  "check_embeddings",
  "numpy_scores",
  "masked_scores",
  "chunk_rows",
  "score_chunks",
  "exact_top_k",
  "exact_top_k_chunks",
]

GALLERY_BLOCK_BYTES = 64 << 20  # embeddings of an array on disk read (and scored) at a time
_ON_DISK_SCORE_BYTES = 256 << 20  # score rows of one chunk of queries against a gallery on disk


# ----------------------------------------------------------------------------------------------
# Input checks.


def on_disk(array) -> bool:
  """Whether ``array`` is a ``np.memmap`` (an embedding store on disk): the searches then read it in
  blocks of :data:`GALLERY_BLOCK_BYTES` instead of holding it whole."""
  return isinstance(array, np.memmap)


def read_rows(array, start: int, stop: int) -> np.ndarray:
  """Rows ``start:stop`` of ``array`` in memory (its dtype). A ``.npy`` memmap (the whole file's array,
  not a view of it) is read with a file read, so that the rows already read do not stay mapped into
  the process: its memory holds one block, whatever the file's size."""
  if isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous:
    row_items = int(np.prod(array.shape[1:]))
    with open(array.filename, "rb") as f:
      f.seek(array.offset + start * row_items * array.dtype.itemsize)
      block = np.fromfile(f, array.dtype, (stop - start) * row_items)
    return block.reshape((stop - start,) + array.shape[1:])
  return np.array(array[start:stop])


def _block_rows(array) -> int:
  """Rows of ``array`` in :data:`GALLERY_BLOCK_BYTES` (at least one)."""
  return max(1, GALLERY_BLOCK_BYTES // max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize))


def check_embeddings(embeddings, name: str) -> np.ndarray:
  """Returns ``embeddings`` as a 2-D floating numpy array (a ``np.memmap`` stays one, read in blocks
  here); raises on NaN/inf rows.

  Raises:
    ValueError: not 2-D, not floating, or some rows hold NaN or inf (the message gives how many).
  """
  if not isinstance(embeddings, np.ndarray):
    embeddings = np.asarray(embeddings)
  if embeddings.ndim != 2:
    raise ValueError(f"{name} must be [num_items, dim], got shape {embeddings.shape}")
  if not np.issubdtype(embeddings.dtype, np.floating):
    raise ValueError(f"{name} must be floating point, got dtype {embeddings.dtype}")
  num, rows = embeddings.shape[0], _block_rows(embeddings)
  bad = np.zeros(num, bool)
  for start in range(0, num, rows):
    bad[start : start + rows] = ~np.isfinite(read_rows(embeddings, start, min(start + rows, num))).all(axis=1)
  if bad.any():
    rows = np.nonzero(bad)[0]
    raise ValueError(
      f"{name} has {len(rows)} of {len(embeddings)} rows with NaN or inf values (first rows: {rows[:5].tolist()})"
    )
  return embeddings


# ----------------------------------------------------------------------------------------------
# Exact search.


def numpy_scores(dtype):
  # float64 inputs without jax_enable_x64 would be silently truncated to float32 by jax.
  return np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64


def masked_scores(query, gallery, self_index):
  """``query @ gallery.T`` on the device, each query's own copy (``self_index``, or -1) at ``-inf``."""
  scores = jnp.matmul(query, gallery.T, precision=jax.lax.Precision.HIGHEST)
  is_self = jnp.arange(gallery.shape[0])[None, :] == self_index[:, None]
  return jnp.where(is_self, -jnp.inf, scores)


@functools.partial(jax.jit, static_argnames=("sort",))
def _chunk_scores(query, gallery, self_index, *, sort: bool):
  scores = masked_scores(query, gallery, self_index)
  if sort:
    return scores, jnp.sort(scores, axis=1)
  return scores, scores[:, :0]


@functools.partial(jax.jit, static_argnames=("k",))
def _chunk_top_k(query, gallery, self_index, *, k: int):
  return jax.lax.top_k(masked_scores(query, gallery, self_index), k)


@jax.jit
def _block_scores(query, block, self_index, num_valid):
  """Scores against a block of gallery rows whose first ``num_valid`` are real (the rest at ``-inf``);
  ``self_index`` relative to the block."""
  scores = masked_scores(query, block, self_index)
  return jnp.where(jnp.arange(block.shape[0])[None, :] < num_valid, scores, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("k",))
def _block_top_k(query, block, self_index, num_valid, *, k: int):
  return jax.lax.top_k(_block_scores(query, block, self_index, num_valid), k)


def _pad_rows(x, size, value):
  if len(x) == size:
    return x
  pad = np.full((size - len(x),) + x.shape[1:], value, x.dtype)
  return np.concatenate([x, pad])


def _device_blocks(gallery):
  """Yields ``(start, num_valid, block)``: the gallery's rows read in blocks of
  :data:`GALLERY_BLOCK_BYTES`, put on the device, the last zero-padded to the others' shape."""
  num_g, rows = gallery.shape[0], min(gallery.shape[0], _block_rows(gallery))
  for start in range(0, num_g, rows):
    block = read_rows(gallery, start, min(start + rows, num_g))
    yield start, len(block), jnp.asarray(_pad_rows(block, rows, 0))


def chunk_rows(query, self_index, start, stop, chunk_size):
  """Queries ``start:stop`` (read from the file when on disk) and their self indices, padded to
  ``chunk_size`` rows."""
  rows = read_rows(query, start, stop) if on_disk(query) else np.asarray(query[start:stop])
  return (_pad_rows(rows, chunk_size, 0), _pad_rows(self_index[start:stop].astype(np.int32), chunk_size, -1))


def _on_disk_score_chunks(query, gallery, self_index, chunk_size, sort):
  """:func:`score_chunks` for a gallery on disk: each chunk's rows assembled block by block."""
  num_q, num_g = query.shape[0], gallery.shape[0]
  chunk_size = max(1, min(chunk_size, _ON_DISK_SCORE_BYTES // (4 * num_g)))
  for start in range(0, num_q, chunk_size):
    stop = min(start + chunk_size, num_q)
    q, s = chunk_rows(query, self_index, start, stop, chunk_size)
    scores, pending = None, None
    for block_start, valid, block in _device_blocks(gallery):
      # The block's matmul runs while the previous block's scores are copied and the next block is read.
      result = (block_start, valid, _block_scores(q, block, s - block_start, valid))
      if pending is not None:
        scores = _copy_block(scores, *pending, stop - start, num_g)
      pending = result
    scores = _copy_block(scores, *pending, stop - start, num_g)
    yield start, scores, np.sort(scores, axis=1) if sort else None


def _copy_block(scores, block_start, valid, block_scores, num_rows, num_g):
  block_scores = np.asarray(block_scores[:num_rows, :valid])
  if scores is None:
    scores = np.empty((num_rows, num_g), block_scores.dtype)
  scores[:, block_start : block_start + valid] = block_scores
  return scores


def score_chunks(query, gallery, self_index, *, chunk_size: int = 256, sort: bool = False):
  """Yields ``(start, scores, sorted_scores)`` for chunks of ``chunk_size`` queries.

  ``scores`` is ``[B, N]`` numpy with the query's own copy set to ``-inf``; ``sorted_scores`` is
  each row sorted increasingly when ``sort`` (computed on the device unless it is a CPU, where
  ``np.sort`` is much faster than XLA's sort), else ``None``. A gallery on disk (:func:`on_disk`) is
  read in blocks; its chunks are smaller when ``chunk_size`` rows of scores would exceed
  :data:`_ON_DISK_SCORE_BYTES`, and their rows are sorted on the host.
  """
  num_q = query.shape[0]
  use_numpy = numpy_scores(query.dtype)
  if on_disk(gallery) and not use_numpy:
    yield from _on_disk_score_chunks(query, gallery, self_index, chunk_size, sort)
    return
  sort_on_device = sort and jax.default_backend() != "cpu" and not use_numpy
  gallery_dev = None if use_numpy else jnp.asarray(gallery)

  def dispatch(start):
    """Starts the device computation of a chunk (asynchronous: it runs while the caller works)."""
    q, s = chunk_rows(query, self_index, start, min(start + chunk_size, num_q), chunk_size)
    return _chunk_scores(q, gallery_dev, s, sort=sort_on_device)

  pending = None if use_numpy or num_q == 0 else dispatch(0)
  for start in range(0, num_q, chunk_size):
    stop = min(start + chunk_size, num_q)
    if use_numpy:
      sidx = self_index[start:stop]
      scores = query[start:stop] @ gallery.T
      rows = np.nonzero(sidx >= 0)[0]
      scores[rows, sidx[rows]] = -np.inf
      sorted_scores = None
    else:
      scores, sorted_scores = pending
      # The next chunk's matmul overlaps with this chunk's host work (sorting, ranking, metrics).
      pending = dispatch(stop) if stop < num_q else None
      scores = np.array(scores[: stop - start])
      sorted_scores = np.asarray(sorted_scores[: stop - start]) if sort_on_device else None
    if sort and sorted_scores is None:
      sorted_scores = np.sort(scores, axis=1)
    yield start, scores, sorted_scores


def exact_top_k_chunks(query, gallery, k: int, self_index=None, *, chunk_size: int = 256):
  """Yields ``(start, indices [B, k] int64, scores [B, k])``: exact top-``k`` of each chunk of queries.

  Jitted chunked matmul + ``lax.top_k`` (ties: lower gallery index first); the gallery is moved to
  the device once (a gallery on disk: read in blocks, each block's top-``k`` merged on the device).
  Arguments as in :func:`exact_top_k`.
  """
  query = query if isinstance(query, np.ndarray) else np.asarray(query)
  gallery = gallery if isinstance(gallery, np.ndarray) else np.asarray(gallery)
  num_q = query.shape[0]
  self_index = np.full(num_q, -1, np.int64) if self_index is None else np.asarray(self_index)
  available = gallery.shape[0] - int(np.any(self_index >= 0))
  if not 1 <= k <= available:
    raise ValueError(f"k={k} must be in 1..{available} (gallery size minus the query itself)")
  if numpy_scores(query.dtype):
    for start, scores, _ in score_chunks(query, gallery, self_index, chunk_size=chunk_size):
      idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
      yield start, idx, np.take_along_axis(scores, idx, 1)
    return
  gallery_dev = None if on_disk(gallery) else jnp.asarray(gallery)
  for start in range(0, num_q, chunk_size):
    stop = min(start + chunk_size, num_q)
    q, s = chunk_rows(query, self_index, start, stop, chunk_size)
    if gallery_dev is None:
      vals, idx = _on_disk_top_k(q, gallery, s, k)
    else:
      vals, idx = _chunk_top_k(q, gallery_dev, s, k=k)
    idx, vals = np.asarray(idx[: stop - start]), np.asarray(vals[: stop - start])
    yield start, idx.astype(np.int64), vals


def _on_disk_top_k(query, gallery, self_index, k):
  """``lax.top_k`` over a gallery on disk: each block's top-``k`` (blocks in order, so that equal
  scores still rank the lower gallery index first), then the top-``k`` of those."""
  values, indices = [], []
  for block_start, valid, block in _device_blocks(gallery):
    v, i = _block_top_k(query, block, self_index - block_start, valid, k=min(k, block.shape[0]))
    values.append(v)
    indices.append(i + block_start)
  vals, pos = jax.lax.top_k(jnp.concatenate(values, axis=1), k)
  return vals, jnp.take_along_axis(jnp.concatenate(indices, axis=1), pos, axis=1)


def exact_top_k(query, gallery, k: int, self_index=None, *, chunk_size: int = 256):
  """Exact top-``k`` gallery indices of every query (jitted chunked matmul + ``lax.top_k``).

  Args:
    query: ``[Q, D]`` embeddings.
    gallery: ``[N, D]`` embeddings.
    k: neighbours per query (at most ``N``, or ``N - 1`` with a self index).
    self_index: optional ``[Q]`` gallery index of each query's own copy (excluded), or -1.
    chunk_size: queries per chunk.

  Returns:
    ``(indices [Q, k] int64, scores [Q, k])`` in ranking order.
  """
  chunks = list(exact_top_k_chunks(query, gallery, k, self_index, chunk_size=chunk_size))
  return np.concatenate([c[1] for c in chunks]), np.concatenate([c[2] for c in chunks])
