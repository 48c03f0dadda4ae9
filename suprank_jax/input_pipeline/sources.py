"""Data sources: a split of a data set as images (or their files) plus an ``[N, levels]`` label array.

A :class:`Source` is one split of one data set. The readers live in ``readers/``, one module per data
set (or family sharing a layout), each ``reader(data_dir, split, **kwargs) -> Source``; the registry of
their names and ``get_source`` are in ``datasets.py``. This module holds what the readers share: the
:class:`Source` type, reading an item's encoded bytes (:func:`read_image_bytes`, the one reader of
image files and records) and decoding them, :func:`make_source`, and the checks run before training
(missing files, single-image classes).

Labels are remapped to contiguous ids ``0..K_l-1`` per level *within the split*, column 0 is the
finest level (e.g. SOP: ``[class_id, super_class_id]``).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
  "Source",
  "ImageLoadError",
  "make_source",
  "remap_labels",
  "single_image_classes",
  "report_single_image_classes",
  "missing_files",
  "check_files_exist",
  "read_image_bytes",
  "image_name",
  "decode_image_file",
  "decode_image_bytes",
]


class ImageLoadError(ValueError):
  """An image file is missing, unreadable or corrupt (the message names the file)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
  """One split of a data set.

  Exactly one of ``images``, ``paths`` or ``records`` holds the pixels.

  Attributes:
    name: ``"<dataset>/<split>"``, used in messages.
    labels: int32 ``[N, L]``, ids ``>= 0`` per level, column 0 the finest; contiguous within a
      split, or over a query/gallery pair (so that the two splits' ids agree).
    level_names: ``L`` names, finest first.
    images: in-memory uint8 ``[N, H, W, C]``.
    paths: ``N`` image file paths (decoded with PIL, as RGB).
    records: a random-access sequence of ``N`` encoded images (bytes), e.g. an ArrayRecord/TFDS
      data source wrapped by :func:`make_source`; ``describe(i)`` names record ``i`` in messages.
    boxes: optional float ``[N, 4]`` crop boxes ``(x0, y0, x1, y1)`` in pixels, applied when
      loading (Revisited Oxford/Paris queries).
    extras: per-split metadata for evaluators (e.g. Revisited ``easy``/``hard``/``junk`` lists).
    channels: 3 (decode files/records as RGB) or 1 (as grey, ``[H, W, 1]``).
    index_files: the files (or folder) the split was read from, for messages.
  """

  name: str
  labels: np.ndarray
  level_names: tuple[str, ...]
  images: np.ndarray | None = None
  paths: tuple[str, ...] | None = None
  records: Sequence[bytes] | None = None
  describe: Callable[[int], str] | None = None
  boxes: np.ndarray | None = None
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  channels: int = 3
  index_files: tuple[str, ...] = ()

  def __post_init__(self):
    labels = np.asarray(self.labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"{self.name}: labels must be an integer [N, L] array, got {labels.dtype}{list(labels.shape)}")
    if labels.shape[1] != len(self.level_names):
      raise ValueError(f"{self.name}: labels have {labels.shape[1]} levels but level_names={self.level_names}")
    if labels.size and labels.min() < 0:
      raise ValueError(f"{self.name}: negative label {labels.min()} (labels must be contiguous ids >= 0)")
    given = [k for k in ("images", "paths", "records") if getattr(self, k) is not None]
    if len(given) != 1:
      raise ValueError(f"{self.name}: give exactly one of images, paths, records (got {given or 'none'})")
    n = len(getattr(self, given[0]))
    if n != len(labels):
      raise ValueError(f"{self.name}: {n} {given[0]} but {len(labels)} label rows")
    if self.images is not None and (self.images.ndim != 4 or self.images.dtype != np.uint8):
      raise ValueError(
        f"{self.name}: images must be uint8 [N, H, W, C], got {self.images.dtype}{list(self.images.shape)}"
      )
    object.__setattr__(self, "labels", labels.astype(np.int32))
    if self.paths is not None:
      object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def num_levels(self) -> int:
    return self.labels.shape[1]

  @property
  def num_classes(self) -> tuple[int, ...]:
    """Number of classes per level."""
    return tuple(int(self.labels[:, i].max()) + 1 if len(self) else 0 for i in range(self.num_levels))

  def location(self, i: int) -> str:
    """Where item ``i`` comes from (file path or record), for messages."""
    if self.paths is not None:
      return self.paths[i]
    if self.describe is not None:
      return self.describe(i)
    return f"{self.name}[{i}]"

  def load_image(self, i: int) -> np.ndarray:
    """Item ``i`` as uint8 ``[H, W, C]`` (RGB for files).

    Raises:
      ImageLoadError: the file is missing or cannot be decoded (the message names it).
    """
    if self.images is not None:
      image = self.images[i]
    else:
      image = decode_image_bytes(read_image_bytes(self, i), what=image_name(self, i), channels=self.channels)
    if self.boxes is not None:
      x0, y0, x1, y1 = (int(round(v)) for v in self.boxes[i])
      image = image[max(y0, 0) : max(y1, y0 + 1), max(x0, 0) : max(x1, x0 + 1)]
    return image


def _read_file(path: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise ImageLoadError(f"cannot read image {path}: {e.strerror or e}") from e


def read_image_bytes(source: Source, i: int) -> bytes:
  """The encoded bytes of item ``i`` of a file or record source (not decoded).

  Raises:
    ImageLoadError: the file or record cannot be read (the message names it).
    ValueError: ``source`` holds in-memory pixels, not encoded images.
  """
  if source.paths is not None:
    return _read_file(source.paths[i])
  if source.records is None:
    raise ValueError(f"{source.name} holds decoded images in memory, not encoded bytes")
  try:
    return source.records[i]
  except Exception as e:
    raise ImageLoadError(f"cannot read {source.location(i)}: {type(e).__name__}: {e}") from e


def image_name(source: Source, i: int) -> str:
  """Item ``i`` in the messages of a decoding error: ``image <path>``, or the record's location."""
  return f"image {source.paths[i]}" if source.paths is not None else source.location(i)


def decode_image_bytes(data: bytes, *, what: str = "image", channels: int = 3) -> np.ndarray:
  """Decodes encoded image bytes to uint8 ``[H, W, channels]`` (RGB or grey)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(io.BytesIO(data)) as img:
      if channels == 1:
        return np.asarray(img.convert("L"))[..., None]
      return np.asarray(img.convert("RGB"))
  except Exception as e:
    raise ImageLoadError(f"cannot decode {what}: {type(e).__name__}: {e}") from e


def decode_image_file(path: str, *, channels: int = 3) -> np.ndarray:
  """Reads and decodes an image file to uint8 ``[H, W, channels]``."""
  return decode_image_bytes(_read_file(path), what=f"image {path}", channels=channels)


def remap_labels(raw: np.ndarray) -> np.ndarray:
  """Maps each column of ``raw`` ``[N, L]`` to contiguous ids ``0..K-1`` (order of the raw ids kept)."""
  raw = np.asarray(raw)
  if raw.ndim != 2:
    raise ValueError(f"raw labels must be [N, L], got shape {raw.shape}")
  out = np.zeros(raw.shape, np.int32)
  for level in range(raw.shape[1]):
    _, out[:, level] = np.unique(raw[:, level], return_inverse=True)
  return out


def make_source(
  name: str,
  raw_labels,
  level_names: Sequence[str],
  *,
  images=None,
  paths=None,
  records=None,
  describe=None,
  remap: bool = True,
  **kwargs,
) -> Source:
  """Builds a :class:`Source` from raw labels (any integer or string ids), remapped per level to
  ``0..K-1`` unless ``remap=False`` (labels already remapped, e.g. jointly over a query/gallery pair)."""
  raw_labels = np.asarray(raw_labels)
  if raw_labels.ndim == 1:
    raw_labels = raw_labels[:, None]
  labels = remap_labels(raw_labels) if remap else raw_labels.astype(np.int32)
  return Source(
    name=name,
    labels=labels,
    level_names=tuple(level_names),
    images=images,
    paths=None if paths is None else tuple(paths),
    records=records,
    describe=describe,
    **kwargs,
  )


def single_image_classes(source: Source, level: int = 0) -> np.ndarray:
  """Class ids of ``level`` that have exactly one image in ``source``."""
  counts = np.bincount(source.labels[:, level], minlength=source.num_classes[level] if len(source) else 0)
  return np.flatnonzero(counts == 1)


def report_single_image_classes(source: Source, *, log=None) -> int:
  """Warns (through ``logging`` or ``log``) about finest-level classes with a single image: they give
  no positive pair in training (the M-per-class sampler repeats their image). Returns their count."""
  single = single_image_classes(source)
  if len(single):
    first = np.flatnonzero(np.isin(source.labels[:, 0], single[:3]))
    message = f"{source.name}: {len(single)} of {source.num_classes[0]} classes have a single image, e.g. " + ", ".join(
      source.location(int(i)) for i in first
    )
    (log or logging.getLogger(__name__).warning)(message)
  return len(single)


def missing_files(source: Source, *, log=None, threads: int = 16, progress_seconds: float = 10.0) -> list[str]:
  """The image files of ``source`` that are not there (none for in-memory or record sources).

  Each distinct path is ``stat``-ed once, by ``threads`` threads (network file systems answer many
  requests at a time); on large sets ``log`` gets a progress line every ``progress_seconds``.
  """
  if source.paths is None:
    return []
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  paths = list(dict.fromkeys(source.paths))
  chunks = [paths[i : i + 2048] for i in range(0, len(paths), 2048)]
  missing, checked, last = [], 0, time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
    for chunk, absent in zip(chunks, pool.map(lambda c: [p for p in c if not os.path.isfile(p)], chunks)):
      missing.extend(absent)
      checked += len(chunk)
      if log is not None and time.monotonic() - last >= progress_seconds and checked < len(paths):
        log(f"{source.name}: checked {checked:,} of {len(paths):,} image files ({len(missing):,} missing so far)")
        last = time.monotonic()
  return missing


def check_files_exist(splits: Sequence[Source], *, skip: bool = False, log=print, report_path: str | None = None):
  """Checks, before any training, that every image file of ``splits`` exists, and reports all the
  missing ones at once: the first 20 in the message, all of them in ``report_path`` (when given).

  Args:
    splits: the sources to check (in-memory and record sources have no file to check).
    skip: the items of missing files will be skipped (``config.input.skip_corrupt_images``): warn instead.
    log: progress and warnings.
    report_path: where to write the full list (one path a line).

  Raises:
    FileNotFoundError: some files are missing and ``skip`` is False.
  """
  missing, counts = [], []
  for source in splits:
    absent = missing_files(source, log=log)
    if absent:
      missing.extend(absent)
      counts.append(f"{source.name}: {len(absent)} of {len(set(source.paths))}")
  if not missing:
    return
  listed = "\n  ".join(missing[:20]) + (f"\n  ... ({len(missing) - 20} more)" if len(missing) > 20 else "")
  written = ""
  if report_path:
    with open(report_path, "w", encoding="utf-8") as f:
      f.write("".join(p + "\n" for p in missing))
    written = f"; the full list is in {report_path}"
  message = f"{len(missing)} image files are missing ({'; '.join(counts)}){written}:\n  {listed}"
  if not skip:
    raise FileNotFoundError(
      message + "\n(restore them, fix the data set's index, or set "
      "config.input.skip_corrupt_images=True to train without them)"
    )
  log(f"warning: {message}\nconfig.input.skip_corrupt_images=True: their items are skipped")
