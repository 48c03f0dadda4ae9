"""Embedding images of varied sizes at a landmark protocol's resolution, in bounded memory.

The Revisited protocol embeds whole images (no square crop) at a maximum side of 1024 pixels, so the
images of a data set have many shapes. Here:

* :func:`load_landmark_image` reads an item as the original's ``RevisitedDataset`` does: a query is
  cropped to its box, then PIL's ``thumbnail`` (Lanczos) shrinks the image, never enlarging it, so
  that the longer side of the *full* image is ``max_side`` (a crop keeps its image's scale); or, with
  ``square_size``, as the original's configs and ``evaluate_landmark.py`` do: the (cropped) image
  resized to ``square_size x square_size`` (torchvision's ``Resize((s, s))``: PIL bilinear);
* :class:`ImageEmbedder` embeds uint8 batches of one shape with a jitted function on this process's
  devices (every process embeds every item: no collective, so a multi-process run evaluates at
  the speed of one process). Images keep their shape and are batched with images of the same shape
  (one compilation per distinct shape), or, with ``pad_to_multiple``, are zero-padded to a multiple
  of it and pooled over their own region (few compilations; approximate near the padded border);
* :class:`EmbeddingStore` holds the ``[N, D]`` float32 embeddings of a set in memory, or for a large
  set in a ``.npy`` memmap with a ``done`` mask next to it: an interrupted embedding resumes with
  the items not yet done, and memory stays bounded whatever N;
* :func:`embed_images` loads items in threads, groups them by shape (at most a few batches of
  images pending), embeds, writes them to the store, and logs progress with an ETA.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import logging
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from suprank_jax.input_pipeline import sources, transforms
from suprank_jax.models import heads
from suprank_jax.runtime import reporting

__all__ = [
  "load_landmark_image",
  "ImageEmbedder",
  "EmbeddingStore",
  "embed_images",
  "variables_fingerprint",
  "default_cache_dir",
  "STORE_DEFAULTS",
  "remove_store",
]

_LOG = logging.getLogger(__name__)
_FLUSH_SECONDS = 30.0


def _read_bytes(source: sources.Source, i: int) -> bytes:
  if source.paths is not None:
    try:
      with open(source.paths[i], "rb") as f:
        return f.read()
    except OSError as e:
      raise sources.ImageLoadError(f"cannot read image {source.paths[i]}: {e.strerror or e}") from e
  try:
    return source.records[i]
  except Exception as e:
    raise sources.ImageLoadError(f"cannot read {source.location(i)}: {type(e).__name__}: {e}") from e


def load_landmark_image(source: sources.Source, i: int, *, max_side: int, square_size: int = 0) -> np.ndarray:
  """Item ``i`` of ``source`` as uint8 ``[h, w, 3]`` (see the module docstring): the protocol's
  ``max_side`` thumbnail, or with ``square_size > 0`` the original's square resize (``max_side`` unread).

  Raises:
    sources.ImageLoadError: the image cannot be read or decoded (naming it).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  i = int(i)
  try:
    if source.images is not None:
      pixels = source.images[i]
      img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    else:
      img = Image.open(io.BytesIO(_read_bytes(source, i)))
    full_side = max(img.size)
    target = float(max_side)
    if source.boxes is not None:
      img = img.crop(tuple(float(v) for v in source.boxes[i]))  # PIL rounds the box, as the original's crop
      target = max_side * max(img.size) / full_side
    if img.mode not in ("RGB", "L"):
      img = img.convert("RGB")
    if square_size:
      img = img.convert("RGB").resize((square_size, square_size), Image.BILINEAR)
    else:
      img.thumbnail((target, target), Image.LANCZOS)
    return np.asarray(img.convert("RGB"))
  except sources.ImageLoadError:
    raise
  except Exception as e:
    raise sources.ImageLoadError(f"cannot decode {source.location(i)}: {type(e).__name__}: {e}") from e


class ImageEmbedder:
  """Jitted ``uint8 [n, h, w, 3] -> float32 [n, D]`` on this process's devices.

  Args:
    model: the Linen module (``model.apply(variables, images, train=False)``).
    normalization: ``config.input.normalization`` (applied on the devices).
    batch_size: images per call (rounded up to a multiple of the local devices).
    multiscale: embed at :data:`heads.MULTISCALE_SCALES` (``heads.multiscale_embed``).
    pad_to_multiple: 0, or the multiple images are padded to (the model must take ``image_sizes``).
  """

  def __init__(self, model, *, normalization: str, batch_size: int, multiscale: bool = False, pad_to_multiple: int = 0):
    devices = jax.local_devices()
    self.mesh = Mesh(np.asarray(devices), ("data",))
    self.batch_size = -(-int(batch_size) // len(devices)) * len(devices)
    self.pad_to_multiple = int(pad_to_multiple)
    padded = self.pad_to_multiple > 0

    def embed(variables, images, sizes):
      x = transforms.normalize(images, normalization, xp=jnp)
      if padded:
        rows = jnp.arange(x.shape[1])[None, :, None] < sizes[:, 0, None, None]
        cols = jnp.arange(x.shape[2])[None, None, :] < sizes[:, 1, None, None]
        x = jnp.where((rows & cols)[..., None], x, 0.0)
        out = model.apply(variables, x, train=False, image_sizes=sizes)
      elif multiscale:
        out = heads.multiscale_embed(model, variables, x)
      else:
        out = model.apply(variables, x, train=False)
      return out.astype(jnp.float32)

    self._replicated = NamedSharding(self.mesh, P())
    data = NamedSharding(self.mesh, P("data"))
    self._fn = jax.jit(embed, in_shardings=(self._replicated, data, data), out_shardings=self._replicated)

  def local_variables(self, variables):
    """``variables`` on this process's devices (a replicated global array gives its local copy)."""

    def local(x):
      if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
      return np.asarray(x)

    return jax.device_put(jax.tree.map(local, variables), self._replicated)

  def batch_shape(self, height: int, width: int) -> tuple[int, int]:
    """The batch shape of an image of this size (itself, or padded to the multiple)."""
    m = self.pad_to_multiple
    return (height, width) if not m else (-(-height // m) * m, -(-width // m) * m)

  def __call__(self, variables, images) -> np.ndarray:
    """Embeds ``images`` (a list of uint8 ``[h, w, 3]`` with one batch shape, at most ``batch_size``)."""
    shape = self.batch_shape(*images[0].shape[:2])
    batch = np.zeros((self.batch_size, *shape, 3), np.uint8)
    sizes = np.zeros((self.batch_size, 2), np.int32)
    for j, image in enumerate(images):
      h, w = image.shape[:2]
      batch[j, :h, :w] = image
      sizes[j] = (h, w)
    return np.asarray(self._fn(variables, batch, sizes))[: len(images)]

  def output_dim(self, variables) -> int:
    images = jax.ShapeDtypeStruct((self.batch_size, 64, 64, 3), jnp.uint8)
    sizes = jax.ShapeDtypeStruct((self.batch_size, 2), jnp.int32)
    return int(jax.eval_shape(self._fn, variables, images, sizes).shape[-1])


# The on-disk store settings of every evaluation (config.evals.<name>.cache_dir, cache_min_items,
# keep_embeddings; see configs/common.eval_config).
STORE_DEFAULTS = {"cache_dir": "", "cache_min_items": 100_000, "keep_embeddings": False}


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/suprank_jax/embeddings`` (``~/.cache/...`` without it)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "suprank_jax", "embeddings")


def variables_fingerprint(variables, *extra) -> str:
  """A hex digest of the variables' values and of ``extra`` (settings): names a cache folder."""
  h = hashlib.blake2b(digest_size=12)
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    leaf = leaf.addressable_data(0) if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable else leaf
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}{a.shape}{a.dtype.str}".encode())
    h.update(a.tobytes())
  h.update(json.dumps([str(e) for e in extra]).encode())
  return h.hexdigest()


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


def _loaded(source, indices, max_side, square_size, threads, skip):
  """``(index, uint8 image)`` in order, loaded by ``threads`` threads a window at a time."""

  def load(i):
    try:
      return i, load_landmark_image(source, i, max_side=max_side, square_size=square_size)
    except sources.ImageLoadError as e:
      if not skip:
        raise
      _LOG.warning("a bad image is embedded as a black 32 x 32 one: %s", e)
      return i, np.zeros((32, 32, 3), np.uint8)

  window = max(64, 8 * threads)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for start in range(0, len(indices), window):
      yield from pool.map(load, indices[start : start + window])


def embed_images(
  embedder: ImageEmbedder,
  variables,
  source: sources.Source,
  store: EmbeddingStore,
  *,
  max_side: int,
  square_size: int = 0,
  threads: int = 4,
  skip_corrupt: bool = False,
  log=None,
  what: str = "",
  max_pending_batches: int = 4,
):
  """Fills ``store`` with the embeddings of the items of ``source`` it lacks.

  Args:
    embedder: the jitted embedding.
    variables: its variables (:meth:`ImageEmbedder.local_variables`).
    source: the items (paths, records or in-memory images; boxes crop the queries).
    store: where the rows go (its ``done`` items are skipped).
    max_side: the protocol's resolution (:func:`load_landmark_image`).
    square_size: 0, or the original's square resize (:func:`load_landmark_image`).
    threads: image-loading threads.
    skip_corrupt: embed an unreadable image as a black one (logged) instead of raising.
    log: progress printer (every ``_PROGRESS_SECONDS`` and at the end), or None.
    what: the set's name in progress lines.
    max_pending_batches: images waiting for a full batch of their shape, in batches; beyond, the
      largest group is embedded in a partial batch.
  """
  todo = store.missing()
  total, batch_size = len(todo), embedder.batch_size
  groups: dict[tuple[int, int], list] = {}
  pending, done = 0, 0
  progress = reporting.ProgressLog(log, what, total)
  if log is not None and store.resumed:
    log(f"{what}: resuming with {store.resumed:,} of {len(store.done):,} images already embedded")

  def run(shape):
    nonlocal pending, done
    items = groups.pop(shape)
    store.write([i for i, _ in items], embedder(variables, [x for _, x in items]))
    pending -= len(items)
    done += len(items)
    progress.update(done)

  try:
    for i, image in _loaded(source, todo, max_side, square_size, threads, skip_corrupt):
      shape = embedder.batch_shape(*image.shape[:2])
      groups.setdefault(shape, []).append((i, image))
      pending += 1
      if len(groups[shape]) == batch_size:
        run(shape)
      elif pending >= max_pending_batches * batch_size:
        run(max(groups, key=lambda s: len(groups[s])))
    while groups:
      run(max(groups, key=lambda s: len(groups[s])))
  finally:
    store.flush()  # what is done stays done, also when interrupted
