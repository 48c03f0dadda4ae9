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

Every transform takes and returns ``[H, W, C]`` arrays; resizing uses PIL bilinear (antialiased).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "resize", "resize_shorter", "center_crop", "random_resized_crop_box",
    "random_resized_crop", "horizontal_flip", "random_shift", "normalize", "make_train_transform",
    "make_eval_transform", "EVAL_RESIZE_MODES", "EVAL_CROP_MODES", "NORMALIZATIONS", "check_config",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
EVAL_RESIZE_MODES = ("none", "resize_center_crop", "square_resize_center_crop", "resize", "resize_shorter")
# The eval_resize modes that resize to eval_resize_size before a center crop of image_size.
EVAL_CROP_MODES = ("resize_center_crop", "square_resize_center_crop")
NORMALIZATIONS = ("unit", "imagenet")


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
  h, w = image.shape[:2]
  if h <= w:
    return resize(image, size, int(size * w / h))
  return resize(image, int(size * h / w), size)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Central ``size x size`` crop (torchvision rounding); the image must be at least that large."""
  h, w = image.shape[:2]
  if h < size or w < size:
    raise ValueError(f"center_crop({size}) of an image of size {h}x{w}")
  top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
  return image[top:top + size, left:left + size]


def random_resized_crop_box(rng: np.random.Generator, height: int, width: int, *, scale=(0.16, 1.0),
                            ratio=(0.75, 4.0 / 3.0), attempts: int = 10) -> tuple[int, int, int, int]:
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


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, *, size: int, scale=(0.16, 1.0),
                        ratio=(0.75, 4.0 / 3.0)) -> np.ndarray:
  """RandomResizedCrop of uint8 ``[H, W, C]`` to ``[size, size, C]``."""
  top, left, h, w = random_resized_crop_box(rng, image.shape[0], image.shape[1], scale=scale, ratio=ratio)
  return resize(image[top:top + h, left:left + w], size, size)


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
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h + min(-dy, 0),
                                                                     max(-dx, 0):w + min(-dx, 0)]
  return out


def normalize(image: np.ndarray, mode: str = "unit") -> np.ndarray:
  """uint8 ``[H, W, C]`` to float32: ``'unit'`` = ``x / 255``; ``'imagenet'`` = mean/std normalised."""
  x = np.asarray(image, np.float32) * (1.0 / 255.0)
  if mode == "unit":
    return x
  if mode == "imagenet":
    if x.shape[-1] == 1:
      x = np.repeat(x, 3, axis=-1)
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
    raise ValueError(f"config.input.crop_scale={tuple(config.crop_scale)} must be (a, b) with 0 < a <= b <= 1 "
                     "(fractions of the image area)")
  low, high = _pair(config, "crop_ratio")
  if not 0 < low <= high:
    raise ValueError(f"config.input.crop_ratio={tuple(config.crop_ratio)} must be (a, b) with 0 < a <= b "
                     "(aspect ratios w / h)")
  if config.train_resize_size and not config.random_resized_crop:
    raise ValueError(f"config.input.train_resize_size={config.train_resize_size} is the resize before the random "
                     "resized crop: set config.input.random_resized_crop=True or train_resize_size=0")
  if config.eval_resize != "none" and size <= 0:
    raise ValueError(f"config.input.eval_resize={config.eval_resize!r} needs config.input.image_size > 0")
  if config.eval_resize in EVAL_CROP_MODES and int(config.eval_resize_size) < size:
    raise ValueError(f"config.input.eval_resize_size={config.eval_resize_size} must be >= image_size={size} "
                     f"with eval_resize={config.eval_resize!r} (resize, then center crop image_size)")


def make_train_transform(config: Any) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
  """``(uint8 [H, W, C], rng) -> float32 [S, S, C']`` from ``config.input`` (see module docstring).

  ``image_size = 0`` keeps the source size (no crop, no resize).
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
    if use_rrc:
      if pre_size:
        image = resize_shorter(image, pre_size)
      image = random_resized_crop(image, rng, size=size, scale=scale, ratio=ratio)
    elif size > 0:
      image = resize(image, size, size)
    if flip:
      image = horizontal_flip(image, rng)
    if shift:
      image = random_shift(image, rng, max_shift_px=shift)
    return normalize(image, mode)

  return transform


def make_eval_transform(config: Any) -> Callable[[np.ndarray], np.ndarray]:
  """``uint8 [H, W, C] -> float32`` evaluation preprocessing from ``config.input``."""
  check_config(config)
  size = int(config.image_size)
  resize_mode, resize_size = config.eval_resize, int(config.eval_resize_size)
  norm = config.normalization

  def transform(image):
    if resize_mode == "resize_center_crop":
      image = center_crop(resize_shorter(image, resize_size), size)
    elif resize_mode == "square_resize_center_crop":
      image = center_crop(resize(image, resize_size, resize_size), size)
    elif resize_mode == "resize":
      image = resize(image, size, size)
    elif resize_mode == "resize_shorter":
      image = resize_shorter(image, size)
    return normalize(image, norm)

  return transform
