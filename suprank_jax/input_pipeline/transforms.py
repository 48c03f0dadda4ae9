"""Per-image preprocessing (numpy + PIL), deterministic given a ``numpy.random.Generator``.

Training (``make_train_transform``): optional RandomResizedCrop (scale ``[0.16, 1]``, ratio
``[0.75, 1.33]``) to ``image_size``, or a plain resize, optional horizontal flip, optional random
shift by up to ``max_shift_px`` pixels (zero fill; for the 8x8 digits), then normalisation
(``'unit'``: ``x / 255``; ``'imagenet'``: ``(x / 255 - mean) / std``).

Evaluation (``make_eval_transform``), ``eval_resize`` modes:
  * ``'none'``: keep the size (digits);
  * ``'resize_center_crop'``: resize the shorter side to ``eval_resize_size`` then center crop
    ``image_size`` (the usual 256 -> 224);
  * ``'resize'``: resize to ``image_size x image_size`` (ignores the aspect ratio);
  * ``'resize_shorter'``: resize the shorter side to ``image_size`` (variable shape: use only with
    batch size 1 per process).

Every transform takes and returns ``[H, W, C]`` arrays; resizing uses PIL bilinear (antialiased).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "resize", "resize_shorter", "center_crop", "random_resized_crop_box",
    "random_resized_crop", "horizontal_flip", "random_shift", "normalize", "make_train_transform",
    "make_eval_transform", "EVAL_RESIZE_MODES", "NORMALIZATIONS",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
EVAL_RESIZE_MODES = ("none", "resize_center_crop", "resize", "resize_shorter")
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


def _check(config: Any):
  if config.normalization not in NORMALIZATIONS:
    raise ValueError(f"config.input.normalization={config.normalization!r}; valid: {list(NORMALIZATIONS)}")
  if config.eval_resize not in EVAL_RESIZE_MODES:
    raise ValueError(f"config.input.eval_resize={config.eval_resize!r}; valid: {list(EVAL_RESIZE_MODES)}")
  if config.random_resized_crop and config.image_size <= 0:
    raise ValueError("config.input.random_resized_crop needs config.input.image_size > 0")


def make_train_transform(config: Any) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
  """``(uint8 [H, W, C], rng) -> float32 [S, S, C']`` from ``config.input`` (see module docstring).

  ``image_size = 0`` keeps the source size (no crop, no resize).
  """
  _check(config)
  size = int(config.image_size)
  use_rrc = bool(config.random_resized_crop)
  scale, ratio = tuple(config.crop_scale), tuple(config.crop_ratio)
  flip = bool(config.horizontal_flip)
  shift = int(config.max_shift_px)
  mode = config.normalization

  def transform(image, rng):
    if use_rrc:
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
  _check(config)
  size = int(config.image_size)
  mode, resize_mode, resize_size = config.eval_resize, config.eval_resize, int(config.eval_resize_size)
  norm = config.normalization
  if mode != "none" and size <= 0:
    raise ValueError(f"config.input.eval_resize={mode!r} needs config.input.image_size > 0")
  if mode == "resize_center_crop" and resize_size < size:
    raise ValueError(f"config.input.eval_resize_size={resize_size} must be >= image_size={size}")

  def transform(image):
    if resize_mode == "resize_center_crop":
      image = center_crop(resize_shorter(image, resize_size), size)
    elif resize_mode == "resize":
      image = resize(image, size, size)
    elif resize_mode == "resize_shorter":
      image = resize_shorter(image, size)
    return normalize(image, norm)

  return transform
