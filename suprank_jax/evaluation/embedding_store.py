"""The store of an evaluation's embeddings: when a set goes to disk, where, and the store itself.

Policy (``config.evals.<name>``: ``cache_dir``, ``cache_min_items``, ``keep_embeddings``, with the
defaults :data:`STORE_DEFAULTS`): a set of at least ``cache_min_items`` items is embedded on disk, in
``<cache_dir>/<weights fingerprint>/process<i>/<set>`` (:func:`store_folder`; ``cache_dir`` defaults
to :func:`default_cache_dir`), so that an interrupted evaluation resumes with the items not yet
embedded; smaller sets stay in memory. The folder is checked to be writable when the evaluator is
built (:func:`check_writable`), and deleted after the evaluation unless ``keep_embeddings``.

Mechanism: :class:`EmbeddingStore` holds the ``[N, D]`` float32 embeddings of a set in memory, or
in a ``.npy`` memmap with a ``done`` mask next to it: memory stays bounded whatever N.

:func:`weights_fingerprint` (sha256 of the model variables, and of settings) names a store's folder
and, in an exported index, the model that embedded the gallery.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time

import jax
import numpy as np

__all__ = [
  "STORE_DEFAULTS",
  "default_cache_dir",
  "setting",
  "check_settings",
  "check_writable",
  "store_folder",
  "weights_fingerprint",
  "EmbeddingStore",
  "remove_store",
]

_FLUSH_SECONDS = 30.0

# The on-disk store settings of every evaluation (config.evals.<name>.cache_dir, cache_min_items,
# keep_embeddings; see configs/common.eval_config).
STORE_DEFAULTS = {"cache_dir": "", "cache_min_items": 100_000, "keep_embeddings": False}


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/suprank_jax/embeddings`` (``~/.cache/...`` without it)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "suprank_jax", "embeddings")


def setting(eval_config, key: str):
  """``eval_config[key]`` for a store setting (a run written before the store settings existed has their
  defaults)."""
  return eval_config[key] if key in eval_config else STORE_DEFAULTS[key]


def check_settings(name: str, eval_config):
  """Raises ValueError for a store setting of ``config.evals.<name>`` of the wrong type."""
  where = f"config.evals.{name}"
  low = setting(eval_config, "cache_min_items")
  if isinstance(low, bool) or not isinstance(low, int) or low < 0:
    raise ValueError(
      f"{where}.cache_min_items={low!r} must be an integer >= 0 (sets at least this large are embedded on disk)"
    )
  if not isinstance(setting(eval_config, "keep_embeddings"), bool):
    raise ValueError(f"{where}.keep_embeddings={eval_config.keep_embeddings!r} must be True or False")
  if not isinstance(setting(eval_config, "cache_dir"), str):
    raise ValueError(f"{where}.cache_dir={eval_config.cache_dir!r} must be a folder path ('' for the default)")


def check_writable(name: str, eval_config, sources):
  """Raises ValueError unless the store folder can be written when one of ``sources`` (None: none) is
  large enough to go there (checked when the evaluator is built, not after the training)."""
  low = setting(eval_config, "cache_min_items")
  large = [s for s in sources if s is not None and len(s) >= low]
  if not large:
    return
  folder = setting(eval_config, "cache_dir") or default_cache_dir()
  try:
    os.makedirs(folder, exist_ok=True)
    tempfile.TemporaryFile(dir=folder).close()
  except OSError as e:
    raise ValueError(
      f"config.evals.{name}.cache_dir: {folder} is not writable ({e.strerror or e}), and "
      f"{large[0].name} ({len(large[0]):,} images, cache_min_items={low:,}) would be embedded "
      "there: give a writable cache_dir, or raise cache_min_items to keep it in memory"
    ) from e


def store_folder(eval_config, key, what: str, num_items: int) -> str | None:
  """Where a set of ``num_items`` is embedded on disk (``key()``: the weights' fingerprint, computed only
  then), or None (in memory) below ``cache_min_items``."""
  if num_items < setting(eval_config, "cache_min_items"):
    return None
  return os.path.join(
    setting(eval_config, "cache_dir") or default_cache_dir(), key(), f"process{jax.process_index()}", what
  )


def weights_fingerprint(variables, *extra) -> str:
  """sha256 hex digest of every leaf of ``variables`` (path, dtype, shape, bytes, in jax's sorted-key
  order) and of ``extra`` (settings, as strings). A variable sharded over several processes counts its
  local copy (it must be replicated)."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      leaf = leaf.addressable_data(0)
    leaf = np.ascontiguousarray(jax.device_get(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype.str}|{leaf.shape}".encode())
    digest.update(leaf.tobytes())
  if extra:
    digest.update(json.dumps([str(e) for e in extra]).encode())
  return digest.hexdigest()


class EmbeddingStore:
  """``[N, D]`` float32 embeddings being filled: in memory, or resumable on disk (``folder``).

  On disk: ``embeddings.npy`` (a memmap) and ``done.npy`` (uint8 per item), flushed every
  ``_FLUSH_SECONDS`` and at the end, embeddings first; a store opened again on the same folder
  keeps the items already done.
  """

  def __init__(self, num_items: int, dim: int, folder: str | None = None):
    self.folder = folder
    self._last_flush = time.monotonic()
    if folder is None:
      self.embeddings = np.zeros((num_items, dim), np.float32)
      self.done = np.zeros(num_items, np.uint8)
      self.resumed = 0
      return
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, n) for n in ("embeddings.npy", "done.npy")]
    try:
      embeddings = np.load(paths[0], mmap_mode="r+")
      done = np.load(paths[1], mmap_mode="r+")
      if embeddings.shape != (num_items, dim) or done.shape != (num_items,):
        raise ValueError("shape")
    except (OSError, ValueError):
      embeddings = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float32, shape=(num_items, dim))
      done = np.lib.format.open_memmap(paths[1], mode="w+", dtype=np.uint8, shape=(num_items,))
    self.embeddings, self.done = embeddings, done
    self.resumed = int(np.count_nonzero(done))

  @classmethod
  def reopen(cls, folder: str, num_items: int) -> EmbeddingStore | None:
    """The store of ``num_items`` rows that an earlier (interrupted) run left in ``folder``, or None."""
    try:
      shape = np.load(os.path.join(folder, "embeddings.npy"), mmap_mode="r").shape
    except (OSError, ValueError):
      return None
    if len(shape) != 2 or shape[0] != num_items:
      return None
    return cls(num_items, shape[1], folder)

  def missing(self) -> np.ndarray:
    return np.flatnonzero(self.done == 0)

  def write(self, index, rows):
    index = np.asarray(index, np.int64)
    self.embeddings[index] = rows
    self.done[index] = 1
    if self.folder is not None and time.monotonic() - self._last_flush >= _FLUSH_SECONDS:
      self.flush()

  def flush(self):
    if self.folder is not None:
      self.embeddings.flush()
      self.done.flush()
      self._last_flush = time.monotonic()

  def remove(self):
    """Deletes the on-disk folder (nothing in memory)."""
    if self.folder is not None:
      del self.embeddings, self.done
      remove_store(self.folder)


def remove_store(folder: str):
  """Deletes a store's folder, and its process and fingerprint folders once empty."""
  shutil.rmtree(folder, ignore_errors=True)
  parent = os.path.dirname(folder)
  for _ in range(2):
    try:
      os.rmdir(parent)
    except OSError:
      break
    parent = os.path.dirname(parent)
