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
* :func:`embed_images` loads items in threads, groups them by shape (at most a few batches of
  images pending), embeds, writes them to an :class:`embedding_store.EmbeddingStore` (in memory, or on
  disk for a large set: an interrupted embedding resumes with the items not yet done), and logs
  progress with an ETA.
"""

from __future__ import annotations

import concurrent.futures
import io
import logging

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from suprank_jax.evaluation.embedding_store import EmbeddingStore
from suprank_jax.input_pipeline import sources, transforms
from suprank_jax.models import heads
from suprank_jax.runtime import reporting

__all__ = ["load_landmark_image", "ImageEmbedder", "embed_images"]

_LOG = logging.getLogger(__name__)


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
      img = Image.open(io.BytesIO(sources.read_image_bytes(source, i)))
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
