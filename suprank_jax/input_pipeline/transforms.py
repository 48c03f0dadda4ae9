"""Per-image preprocessing (numpy + PIL), deterministic given a ``numpy.random.Generator``.

Training (``make_train_transform``): optional RandomResizedCrop (scale ``crop_scale``, ratio
``crop_ratio``) to ``image_size``, preceded, when ``train_resize_size > 0``, by a resize of the
shorter side to ``train_resize_size`` (the reference's SOP recipe ``Resize(256)`` then
``RandomResizedCrop(224)``: the crop's area is then a fraction of the resized image); or, without
RandomResizedCrop, a plain resize to ``image_size x image_size`` (none when ``image_size = 0``);
then an optional horizontal flip, an optional random shift by up to ``max_shift_px`` pixels (zero
fill; for the 8x8 digits), then normalisation (``'unit'``: ``x / 255``; ``'imagenet'``:
``(x / 255 - mean) / std``).

Evaluation (``make_eval_transform``), ``eval_resize`` modes:
  * ``'none'``: keep the size (digits);
  * ``'resize_center_crop'``: resize the shorter side to ``eval_resize_size`` then center crop
    ``image_size`` (torchvision ``Resize(256), CenterCrop(224)``);
  * ``'square_resize_center_crop'``: resize to ``eval_resize_size x eval_resize_size`` (aspect
    ratio not kept) then center crop ``image_size`` (torchvision ``Resize([256, 256]),
    CenterCrop(224)``, the reference's SOP test recipe);
  * ``'resize'``: resize to ``image_size x image_size`` (ignores the aspect ratio);
  * ``'resize_shorter'``: resize the shorter side to ``image_size`` (variable shape: use only with
    batch size 1 per process).

:func:`check_config` validates the values of these keys (``pipeline.check_input_config`` also
rejects keys set but not read).

Every transform takes a uint8 ``[H, W, C]`` array or an :class:`EncodedImage` (an image file decoded
on demand, as the input pipeline passes them) and returns ``[H, W, C]``: float32 normalised, or
uint8 with ``normalize_images=False`` (the batch is then normalised on the devices:
``parallel.global_batch(..., normalization=...)``).

Resampling (PIL bilinear, antialiased): only the region that the recipe keeps is resampled. A
crop then resize is one call (``Image.resize`` with a box: the filter also reads the pixels just
outside the box at its border, where a crop-then-resize stops). A resize then crop (the eval
center crop; the crop of the image resized to ``train_resize_size``) resamples the crop's region
of the original straight to the crop's size: the pixels of resizing the whole image (up to the
rounding of the filter's positions: one grey level on under 1% of them), without resizing what
the crop drops. An :class:`EncodedImage` JPEG is decoded at a reduced DCT scale
(1/2, 1/4 or 1/8, PIL's ``draft``) when the region stays at least the size it is resampled to at
that scale (no upsampling is introduced); the DCT downscale then stands for part of the bilinear
one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from suprank_jax.input_pipeline.sources import ImageLoadError

__all__ = [
  "IMAGENET_MEAN",
  "IMAGENET_STD",
  "EncodedImage",
  "ImageInput",
  "resize",
  "resize_shorter",
  "center_crop",
  "random_resized_crop_box",
  "random_resized_crop",
  "horizontal_flip",
  "random_shift",
  "normalize",
  "make_train_transform",
  "make_eval_transform",
  "EVAL_RESIZE_MODES",
  "EVAL_CROP_MODES",
  "NORMALIZATIONS",
  "check_config",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
EVAL_RESIZE_MODES = ("none", "resize_center_crop", "square_resize_center_crop", "resize", "resize_shorter")
# The eval_resize modes that resize to eval_resize_size before a center crop of image_size.
EVAL_CROP_MODES = ("resize_center_crop", "square_resize_center_crop")
NORMALIZATIONS = ("unit", "imagenet")


_DRAFT_SCALES = (8, 4, 2)  # the JPEG DCT scales PIL decodes at (1/8, 1/4, 1/2)


class EncodedImage:
  """An encoded image (JPEG, PNG, ...) whose pixels are decoded only when resampled.

  Only the header is read at construction (size, format). :meth:`resample` decodes a JPEG at the
  smallest DCT scale that keeps the requested region at least the output size.

  Args:
    data: the file's bytes.
    what: how messages name the image (e.g. ``"image /data/x.jpg"``).
    channels: 3 (RGB) or 1 (grey), as :func:`sources.decode_image_bytes`.
    box: optional ``(x0, y0, x1, y1)`` pixel region of the image that stands for it (the source's
      crop box, rounded and clipped as ``Source.load_image`` does).

  Raises:
    ImageLoadError: the header cannot be read (naming ``what``).
  """

  def __init__(self, data: bytes, *, what: str = "image", channels: int = 3, box=None):
    self.data, self.what, self.channels = data, what, channels
    self._unused = self._open()  # header read; pixels decoded by the first resample
    width, height = self._unused.size
    x0, y0, x1, y1 = (0, 0, width, height) if box is None else (int(round(v)) for v in box)
    left, top = min(max(x0, 0), width), min(max(y0, 0), height)
    self.region = (left, top, max(min(max(x1, x0 + 1), width), left), max(min(max(y1, y0 + 1), height), top))

  @property
  def height(self) -> int:
    return self.region[3] - self.region[1]

  @property
  def width(self) -> int:
    return self.region[2] - self.region[0]

  def _open(self):
    from PIL import Image  # pylint: disable=g-import-not-at-top

    try:
      return Image.open(io.BytesIO(self.data))
    except Exception as e:
      raise ImageLoadError(f"cannot decode {self.what}: {type(e).__name__}: {e}") from e

  def resample(self, box, height: int, width: int, *, mirror: bool = False) -> np.ndarray:
    """uint8 ``[height, width, C]``: the region ``box = (x0, y0, x1, y1)`` (floats, in this image's
    pixels) resampled bilinearly, mirrored left-right with ``mirror``; ``box=None`` decodes the whole
    image at its size."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    left, top = self.region[:2]
    full = box is None
    x0, y0, x1, y1 = (0, 0, self.width, self.height) if full else box
    x0, y0, x1, y1 = x0 + left, y0 + top, x1 + left, y1 + top
    try:
      image, self._unused = self._unused or self._open(), None
      scale = 1
      if not full and image.format == "JPEG":
        scale = next((s for s in _DRAFT_SCALES if (x1 - x0) / s >= width and (y1 - y0) / s >= height), 1)
      if scale > 1:
        full_width = image.width
        drafted = image.draft(None, (image.width // scale, image.height // scale))
        scale = full_width / drafted[1][2] if drafted else 1
      image = image.convert("L") if self.channels == 1 else image.convert("RGB") if image.mode != "RGB" else image
      if full:
        image.load()
        out = image.crop(self.region) if self.region != (0, 0) + image.size else image
      else:
        x0, y0, x1, y1 = (v / scale for v in (x0, y0, x1, y1))
        out = image.resize((width, height), Image.BILINEAR, box=(x0, y0, min(x1, image.width), min(y1, image.height)))
      out = np.asarray(out.transpose(Image.FLIP_LEFT_RIGHT) if mirror else out)
    except ImageLoadError:
      raise
    except Exception as e:
      raise ImageLoadError(f"cannot decode {self.what}: {type(e).__name__}: {e}") from e
    return out[..., None] if self.channels == 1 else out


ImageInput = np.ndarray | EncodedImage


def _size(image: ImageInput) -> tuple[int, int]:
  return (image.height, image.width) if isinstance(image, EncodedImage) else image.shape[:2]


def _resample(image: ImageInput, box, height: int, width: int, mirror: bool = False) -> np.ndarray:
  """The region ``box = (x0, y0, x1, y1)`` of ``image`` resampled to ``[height, width, C]`` uint8,
  mirrored left-right with ``mirror`` (by PIL: a contiguous result, cheap to batch)."""
  if isinstance(image, EncodedImage):
    return image.resample(box, height, width, mirror=mirror)
  from PIL import Image as PILImage  # pylint: disable=g-import-not-at-top

  h, w, channels = image.shape
  if tuple(box) == (0, 0, w, h) and (h, w) == (height, width):
    return image[:, ::-1] if mirror else image
  pil = PILImage.fromarray(image[..., 0] if channels == 1 else image)
  pil = pil.resize((width, height), PILImage.BILINEAR, box=tuple(float(v) for v in box))
  out = np.asarray(pil.transpose(PILImage.FLIP_LEFT_RIGHT) if mirror else pil)
  return out[..., None] if channels == 1 else out


def _decoded(image: ImageInput) -> np.ndarray:
  return image.resample(None, image.height, image.width) if isinstance(image, EncodedImage) else image


def _shorter_side_size(height: int, width: int, size: int) -> tuple[int, int]:
  """The size after resizing the shorter side to ``size`` (torchvision's rounding)."""
  return (size, int(size * width / height)) if height <= width else (int(size * height / width), size)


def _mapped_box(top, left, h, w, scale_y, scale_x):
  """A ``(top, left, h, w)`` box of a resized image, in the original's pixels ``(x0, y0, x1, y1)``."""
  return (left * scale_x, top * scale_y, (left + w) * scale_x, (top + h) * scale_y)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of uint8 ``[H, W, C]`` to ``[height, width, C]``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if image.shape[:2] == (height, width):
    return image
  channels = image.shape[2]
  pil = Image.fromarray(image[..., 0] if channels == 1 else image)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out[..., None] if channels == 1 else out


def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes so that the shorter side is ``size`` (aspect ratio kept, rounded like torchvision)."""
  return resize(image, *_shorter_side_size(*image.shape[:2], size))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Central ``size x size`` crop (torchvision rounding); the image must be at least that large."""
  h, w = image.shape[:2]
  if h < size or w < size:
    raise ValueError(f"center_crop({size}) of an image of size {h}x{w}")
  top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
  return image[top : top + size, left : left + size]


def random_resized_crop_box(
  rng: np.random.Generator, height: int, width: int, *, scale=(0.16, 1.0), ratio=(0.75, 4.0 / 3.0), attempts: int = 10
) -> tuple[int, int, int, int]:
  """torchvision's RandomResizedCrop box ``(top, left, h, w)``: area fraction in ``scale`` and
  aspect ratio (w/h) log-uniform in ``ratio``; falls back to a central crop after ``attempts``."""
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    h, w = height, int(round(height * ratio[1]))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
  image: np.ndarray, rng: np.random.Generator, *, size: int, scale=(0.16, 1.0), ratio=(0.75, 4.0 / 3.0)
) -> np.ndarray:
  """RandomResizedCrop of uint8 ``[H, W, C]`` to ``[size, size, C]``."""
  top, left, h, w = random_resized_crop_box(rng, image.shape[0], image.shape[1], scale=scale, ratio=ratio)
  return resize(image[top : top + h, left : left + w], size, size)


def horizontal_flip(image: np.ndarray, rng: np.random.Generator, *, probability: float = 0.5) -> np.ndarray:
  """Mirrors left-right with ``probability``."""
  return image[:, ::-1] if rng.uniform() < probability else image


def random_shift(image: np.ndarray, rng: np.random.Generator, *, max_shift_px: int) -> np.ndarray:
  """Translates by integers ``dy, dx`` uniform in ``[-max_shift_px, max_shift_px]``, filling with 0."""
  if max_shift_px <= 0:
    return image
  dy, dx = rng.integers(-max_shift_px, max_shift_px + 1, size=2)
  h, w = image.shape[:2]
  out = np.zeros_like(image)
  out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
    max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
  ]
  return out


def normalize(image, mode: str = "unit", *, xp=np):
  """uint8 ``[..., H, W, C]`` to float32: ``'unit'`` = ``x / 255``; ``'imagenet'`` = mean/std normalised
  (grey images become 3 channels). ``xp=jax.numpy`` runs it on the devices, under jit."""
  x = xp.asarray(image, xp.float32) * (1.0 / 255.0)
  if mode == "unit":
    return x
  if mode == "imagenet":
    if x.shape[-1] == 1:
      x = xp.repeat(x, 3, axis=-1)
    return (x - IMAGENET_MEAN) / IMAGENET_STD
  raise ValueError(f"unknown normalization {mode!r}; valid: {list(NORMALIZATIONS)}")


def _pair(config: Any, key: str) -> tuple[float, float]:
  value = tuple(getattr(config, key))
  if len(value) != 2:
    raise ValueError(f"config.input.{key}={value} must be a pair (low, high)")
  return float(value[0]), float(value[1])


def check_config(config: Any):
  """Validates the preprocessing keys of ``config.input`` (see the module docstring).

  Raises:
    ValueError: naming ``config.input.<key>`` and what to change.
  """
  if config.normalization not in NORMALIZATIONS:
    raise ValueError(f"config.input.normalization={config.normalization!r}; valid: {list(NORMALIZATIONS)}")
  if config.eval_resize not in EVAL_RESIZE_MODES:
    raise ValueError(f"config.input.eval_resize={config.eval_resize!r}; valid: {list(EVAL_RESIZE_MODES)}")
  for key in ("image_size", "max_shift_px", "train_resize_size", "eval_resize_size"):
    if int(getattr(config, key)) < 0:
      raise ValueError(f"config.input.{key}={getattr(config, key)} must be >= 0")
  size = int(config.image_size)
  if config.random_resized_crop and size <= 0:
    raise ValueError("config.input.random_resized_crop needs config.input.image_size > 0 (the crop's size)")
  low, high = _pair(config, "crop_scale")
  if not 0 < low <= high <= 1:
    raise ValueError(
      f"config.input.crop_scale={tuple(config.crop_scale)} must be (a, b) with 0 < a <= b <= 1 "
      "(fractions of the image area)"
    )
  low, high = _pair(config, "crop_ratio")
  if not 0 < low <= high:
    raise ValueError(
      f"config.input.crop_ratio={tuple(config.crop_ratio)} must be (a, b) with 0 < a <= b (aspect ratios w / h)"
    )
  if config.train_resize_size and not config.random_resized_crop:
    raise ValueError(
      f"config.input.train_resize_size={config.train_resize_size} is the resize before the random "
      "resized crop: set config.input.random_resized_crop=True or train_resize_size=0"
    )
  if config.eval_resize != "none" and size <= 0:
    raise ValueError(f"config.input.eval_resize={config.eval_resize!r} needs config.input.image_size > 0")
  if config.eval_resize in EVAL_CROP_MODES and int(config.eval_resize_size) < size:
    raise ValueError(
      f"config.input.eval_resize_size={config.eval_resize_size} must be >= image_size={size} "
      f"with eval_resize={config.eval_resize!r} (resize, then center crop image_size)"
    )


def make_train_transform(
  config: Any, *, normalize_images: bool = True
) -> Callable[[ImageInput, np.random.Generator], np.ndarray]:
  """``(uint8 [H, W, C] or EncodedImage, rng) -> [S, S, C']`` from ``config.input`` (module docstring).

  float32 normalised, or uint8 (not normalised) with ``normalize_images=False``. ``image_size = 0``
  keeps the source size (no crop, no resize). The rng draws are those of torchvision's recipe: the
  crop box (on the image resized to ``train_resize_size`` when set), then the flip, then the shift.
  """
  check_config(config)
  size = int(config.image_size)
  use_rrc = bool(config.random_resized_crop)
  pre_size = int(config.train_resize_size)
  scale, ratio = tuple(config.crop_scale), tuple(config.crop_ratio)
  flip = bool(config.horizontal_flip)
  shift = int(config.max_shift_px)
  mode = config.normalization

  def transform(image, rng):
    h, w = _size(image)
    if use_rrc and pre_size:
      rh, rw = _shorter_side_size(h, w, pre_size)
      top, left, crop_h, crop_w = random_resized_crop_box(rng, rh, rw, scale=scale, ratio=ratio)
      # The crop of the resized image, resampled from its region of the original only (the recipe's
      # first resize, restricted to the crop), then resized to the output as the recipe does.
      crop = _resample(image, _mapped_box(top, left, crop_h, crop_w, h / rh, w / rw), crop_h, crop_w)
      out = _resample(crop, (0, 0, crop_w, crop_h), size, size, mirror=flip and rng.uniform() < 0.5)
    elif use_rrc or size > 0:
      box = (0, 0, w, h)
      if use_rrc:
        top, left, crop_h, crop_w = random_resized_crop_box(rng, h, w, scale=scale, ratio=ratio)
        box = (left, top, left + crop_w, top + crop_h)
      # The flip is drawn after the box (horizontal_flip's draw) and applied with the resampling.
      out = _resample(image, box, size, size, mirror=flip and rng.uniform() < 0.5)
    else:
      out = _decoded(image)
      if flip:
        out = horizontal_flip(out, rng)
    if shift:
      out = random_shift(out, rng, max_shift_px=shift)
    return normalize(out, mode) if normalize_images else out

  return transform


def make_eval_transform(config: Any, *, normalize_images: bool = True) -> Callable[[ImageInput], np.ndarray]:
  """``uint8 [H, W, C] or EncodedImage -> [S, S, C']`` evaluation preprocessing from ``config.input``
  (float32 normalised, or uint8 with ``normalize_images=False``)."""
  check_config(config)
  size = int(config.image_size)
  resize_mode, resize_size = config.eval_resize, int(config.eval_resize_size)
  norm = config.normalization

  def transform(image):
    h, w = _size(image)
    if resize_mode in EVAL_CROP_MODES:
      rh, rw = (
        (resize_size, resize_size)
        if resize_mode == "square_resize_center_crop"
        else _shorter_side_size(h, w, resize_size)
      )
      # center_crop's offsets, on the resized image, mapped back to the original.
      top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
      out = _resample(image, _mapped_box(top, left, size, size, h / rh, w / rw), size, size)
    elif resize_mode == "resize":
      out = _resample(image, (0, 0, w, h), size, size)
    elif resize_mode == "resize_shorter":
      out = _resample(image, (0, 0, w, h), *_shorter_side_size(h, w, size))
    else:
      out = _decoded(image)
    return normalize(out, norm) if normalize_images else out

  return transform
