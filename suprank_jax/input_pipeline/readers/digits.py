"""The embedded ``digits`` data set (the default, no download).

scikit-learn's bundled ``load_digits()``: 1,797 grey 8x8 images with values 0..16, returned as
uint8 ``[N, 8, 8, 1]`` scaled to 0..255 (``round(v * 255 / 16)``). Two levels:

* level 0 ``digit``: the digit, 10 classes;
* level 1 ``shape``: a shape family, 3 classes: 0 = loops ``{0, 6, 8, 9}``, 1 = strokes
  ``{1, 4, 7}``, 2 = curves ``{2, 3, 5}``.

Split (stratified per class; a class-disjoint split is impossible with 10 classes): the images of
each digit, taken in ``load_digits()`` order, alternate between the splits: the 1st, 3rd, 5th, ...
image of each digit go to ``train`` and the 2nd, 4th, ... to ``test``. This gives 901 train and
896 test images, every digit in both. There is no randomness in the split.
"""

from __future__ import annotations

import functools

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import common

__all__ = ["digits", "DIGIT_SHAPE_GROUPS"]

# Level-1 group of each digit: 0 = loops {0, 6, 8, 9}, 1 = strokes {1, 4, 7}, 2 = curves {2, 3, 5}.
DIGIT_SHAPE_GROUPS = np.array([0, 1, 2, 2, 1, 2, 0, 1, 0, 0], np.int32)
_DIGIT_SPLITS = ("train", "test", "all")


@functools.lru_cache(maxsize=1)
def _load_digits_arrays():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  bunch = load_digits()
  images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, bunch.target.astype(np.int32)


def digits(data_dir: str = "", split: str = "train") -> sources.Source:
  """The embedded 8x8 digits (levels and split: the module docstring).

  Args:
    data_dir: ignored (the data ships with scikit-learn).
    split: ``'train'``, ``'test'`` or ``'all'``.
  """
  del data_dir
  common.check_split("digits", split, _DIGIT_SPLITS)
  images, digit = _load_digits_arrays()
  if split == "all":
    keep = np.arange(len(digit))
  else:
    # Rank of each image among the images of its digit, in load_digits() order.
    rank = np.zeros(len(digit), np.int64)
    for d in range(10):
      members = np.flatnonzero(digit == d)
      rank[members] = np.arange(len(members))
    keep = np.flatnonzero(rank % 2 == (0 if split == "train" else 1))
  labels = np.stack([digit[keep], DIGIT_SHAPE_GROUPS[digit[keep]]], axis=1)
  images = images[keep]
  images.setflags(write=False)
  return sources.Source(name=f"digits/{split}", labels=labels, level_names=("digit", "shape"), images=images)
