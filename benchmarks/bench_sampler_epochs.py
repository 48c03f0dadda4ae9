"""Batches per epoch: our M-per-class sampler (``m_per_class``, a fixed count) against the original's
``MPerClassSampler`` epoch (``m_per_class_original``, a count that depends on each epoch's class order).

No timing: it prints, for each setting, our count and the original's over ``--epochs`` epochs (min,
mean, max), with the share of the training images each epoch uses.

Class sizes (the exact per-class counts of the data sets were not at hand; stand-ins with their totals):
  CUB-200-2011 train: 100 classes, 5,864 images, 41 to 60 images per class: 42 classes of 60, 48 of
    59 and 10 of 41, 44, 45, 48, 52, 53, 56, 57, 58, 58.
  SOP train: 11,318 classes, 59,551 images, 2 to 12 images per class: 2 + Binomial(10, 0.326), seeded,
    then single images moved between classes to reach the total.

  python benchmarks/bench_sampler_epochs.py [--epochs 100]
"""

import argparse

import numpy as np

from suprank_jax.input_pipeline import samplers


def cub_sizes() -> np.ndarray:
  small = [41, 44, 45, 48, 52, 53, 56, 57, 58, 58]
  sizes = np.array([60] * 42 + [59] * 48 + small)
  assert len(sizes) == 100 and sizes.sum() == 5864
  return sizes


def sop_sizes(num_classes=11318, total=59551, seed=0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  sizes = 2 + rng.binomial(10, 0.326, num_classes)
  while sizes.sum() != total:  # one image at a time, keeping every class in [2, 12]
    step = 1 if sizes.sum() < total else -1
    k = rng.integers(num_classes)
    if 2 <= sizes[k] + step <= 12:
      sizes[k] += step
  return sizes


def report(name, sizes, *, batch_size, samples_per_class=4, epochs=100, seed=0):
  labels = np.repeat(np.arange(len(sizes)), sizes)
  ours = samplers.m_per_class_num_batches(labels, batch_size=batch_size, samples_per_class=samples_per_class)
  length = samplers.m_per_class_original_lengths(
    labels, batch_size=batch_size, samples_per_class=samples_per_class, seed=seed
  )
  counts = np.array([length(e) for e in range(epochs)])
  used = counts * batch_size / len(labels)
  print(
    f"{name:<20} batch {batch_size:>3}, M={samples_per_class}: ours {ours:>4} | original min {counts.min():>4}, "
    f"mean {counts.mean():7.2f}, max {counts.max():>4} over {epochs} epochs (original/ours "
    f"{counts.mean() / ours:.3f}; images used per epoch {used.min():.1%} to {used.max():.1%})"
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=100)
  args = parser.parse_args()
  for batch_size in (256, 128):
    report("CUB-200-2011 train", cub_sizes(), batch_size=batch_size, epochs=args.epochs)
  report("SOP train", sop_sizes(), batch_size=256, epochs=args.epochs)


if __name__ == "__main__":
  main()
