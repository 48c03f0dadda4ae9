"""Input-pipeline throughput: decoded-and-augmented images per second per core.

Generates JPEGs of realistic size (about 500x500, smooth content so they compress like photos),
then times, in this one process (one core):
  decode                       PIL decode to RGB
  decode + train augmentation  RandomResizedCrop(224, scale [0.16, 1]) + flip + ImageNet norm
  decode + eval preprocessing  resize 256 + center crop 224 + ImageNet norm
and the whole training iterator (sampler + grain) with 0 and ``--workers`` worker processes.

  python benchmarks/bench_input_pipeline.py [--images 96] [--workers 2]
"""

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from suprank_jax.input_pipeline import pipeline, sources, transforms


def _write_jpegs(folder, count, rng):
  paths = []
  for i in range(count):
    h, w = rng.integers(450, 551, size=2)
    # Low-frequency colour field plus noise: JPEG sizes close to photos (~40-80 kB).
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize((int(w), int(h)), Image.BICUBIC), np.int16)
    image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    path = os.path.join(folder, f"{i:05d}.jpg")
    Image.fromarray(image).save(path, quality=90)
    paths.append(path)
  return paths


def _rate(fn, count, repeats=2):
  fn(min(8, count))  # warm up
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn(count)
    best = min(best, time.perf_counter() - t0)
  return count / best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--images", type=int, default=96)
  parser.add_argument("--workers", type=int, default=2)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  config = pipeline.default_config()
  config.update(dict(image_size=224, random_resized_crop=True, horizontal_flip=True, normalization="imagenet",
                     eval_resize="resize_center_crop", eval_resize_size=256))
  train_tf, eval_tf = transforms.make_train_transform(config), transforms.make_eval_transform(config)
  with tempfile.TemporaryDirectory() as folder:
    paths = _write_jpegs(folder, args.images, rng)
    mean_kb = np.mean([os.path.getsize(p) for p in paths]) / 1024
    labels = np.repeat(np.arange(args.images // 4), 4)[:args.images]
    source = sources.make_source("bench/train", labels, ("class",), paths=paths[:len(labels)])

    def decode(n):
      for i in range(n):
        source.load_image(i)

    def train(n):
      for i in range(n):
        train_tf(source.load_image(i), np.random.default_rng(i))

    def evaluate(n):
      for i in range(n):
        eval_tf(source.load_image(i))

    rows = [("decode", _rate(decode, len(source))), ("decode + train augmentation", _rate(train, len(source))),
            ("decode + eval preprocessing", _rate(evaluate, len(source)))]

    config.global_batch_size = 32
    config.samples_per_class = 4
    steps = len(source) // 32

    def iterate(workers):
      config.num_workers = workers
      it = pipeline.make_train_iterator(config, source, seed=0, start_step=0, total_steps=steps + 1)
      next(it)  # start-up (worker spawn) and warm-up
      t0 = time.perf_counter()
      for _ in range(steps):
        next(it)
      rate = steps * 32 / (time.perf_counter() - t0)
      if hasattr(it, "close"):
        it.close()
      return rate

    base = iterate(0)
    rows.append(("train iterator, 0 workers", base))
    if args.workers:
      rows.append((f"train iterator, {args.workers} workers", iterate(args.workers)))

  print(f"{len(source)} JPEGs of about 500x500 (mean {mean_kb:.0f} kB), {os.cpu_count()} CPU cores visible")
  print(f"{'stage':<34}{'images/s':>10}{'ratio to decode':>18}")
  for name, rate in rows:
    print(f"{name:<34}{rate:>10.1f}{rate / rows[0][1]:>18.2f}")


if __name__ == "__main__":
  main()
