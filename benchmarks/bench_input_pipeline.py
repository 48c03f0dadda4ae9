"""Input-pipeline throughput per core, against a plain PIL loop measured in the same run.

Generates JPEGs of realistic size (about 500x500, smooth content plus noise so that they compress
like photos), then times in this one process (one core), each stage several times in alternation
(the best of each kept, so that other jobs on the machine affect both sides alike):

  decode                 PIL decode to RGB
  plain train loop       open with PIL, RandomResizedCrop(224, scale [0.16, 1]) as crop + resize,
                         flip, ImageNet normalisation: what a hand-written loop does
  train transform        ours (transforms.make_train_transform on transforms.EncodedImage), uint8
  plain eval loop        open with PIL, resize 256, center crop 224, ImageNet normalisation
  eval transform         ours, uint8
  train iterator         the whole training iterator (sampler, grain, batches of 32), 0 workers,
                         uint8 images (normalised on the devices) and float32 images

and the training iterator with one worker process per core. Prints the ratios to the plain loops
and the cores needed to feed 3,000 images/s (a GPU training ResNet-50 at 224 in bf16).

  python benchmarks/bench_input_pipeline.py [--images 96] [--rounds 4] [--workers N]
"""

import argparse
import io
import os
import tempfile
import time

import numpy as np
from PIL import Image

from suprank_jax.input_pipeline import pipeline, sources, transforms

TARGET_IMAGES_PER_SECOND = 3000


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


def _normalised(image):
  return (np.asarray(image, np.float32) / 255.0 - transforms.IMAGENET_MEAN) / transforms.IMAGENET_STD


def plain_train_loop(paths, count):
  """The hand-written reference: PIL crop + resize + flip, normalised on the host."""
  for i in range(count):
    rng = np.random.default_rng(i)
    image = Image.open(paths[i % len(paths)]).convert("RGB")
    top, left, h, w = transforms.random_resized_crop_box(
      rng, image.height, image.width, scale=(0.16, 1.0), ratio=(0.75, 1.33)
    )
    image = image.crop((left, top, left + w, top + h)).resize((224, 224), Image.BILINEAR)
    if rng.uniform() < 0.5:
      image = image.transpose(Image.FLIP_LEFT_RIGHT)
    _normalised(image)


def plain_eval_loop(paths, count):
  for i in range(count):
    image = Image.open(paths[i % len(paths)]).convert("RGB")
    w, h = image.size
    image = image.resize((int(256 * w / h), 256) if h <= w else (256, int(256 * h / w)), Image.BILINEAR)
    left, top = int(round((image.width - 224) / 2)), int(round((image.height - 224) / 2))
    _normalised(image.crop((left, top, left + 224, top + 224)))


def iterator_seconds(config, source, *, steps, workers=0, uint8=True):
  """Seconds of ``steps`` batches of the training iterator, after its first one (start-up, warm-up)."""
  config.num_workers = workers
  it = pipeline.make_train_iterator(config, source, seed=0, start_step=0, total_steps=steps + 1, uint8_images=uint8)
  next(it)
  start = time.perf_counter()
  for _ in range(steps):
    next(it)
  seconds = time.perf_counter() - start
  if hasattr(it, "close"):
    it.close()
  return seconds


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--images", type=int, default=96)
  parser.add_argument("--rounds", type=int, default=4, help="alternating timing rounds (the best is kept)")
  parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes for the last row")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  config = pipeline.default_config()
  config.update(
    dict(
      image_size=224,
      random_resized_crop=True,
      horizontal_flip=True,
      normalization="imagenet",
      eval_resize="resize_center_crop",
      eval_resize_size=256,
      global_batch_size=32,
      samples_per_class=4,
    )
  )
  train_tf = transforms.make_train_transform(config, normalize_images=False)
  eval_tf = transforms.make_eval_transform(config, normalize_images=False)
  with tempfile.TemporaryDirectory() as folder:
    paths = _write_jpegs(folder, args.images, rng)
    mean_kb = np.mean([os.path.getsize(p) for p in paths]) / 1024
    labels = np.repeat(np.arange(args.images // 4), 4)
    source = sources.make_source("bench/train", labels, ("class",), paths=paths[: len(labels)])
    count = len(source)

    def encoded(i):
      with open(paths[i % count], "rb") as f:
        return transforms.EncodedImage(f.read())

    def decode(n):
      for i in range(n):
        np.asarray(Image.open(io.BytesIO(open(paths[i % count], "rb").read())).convert("RGB"))

    def train(n):
      for i in range(n):
        train_tf(encoded(i), np.random.default_rng(i))

    def evaluate(n):
      for i in range(n):
        eval_tf(encoded(i))

    steps = count // 32

    def iterator(uint8, workers=0):
      return lambda _: iterator_seconds(config, source, steps=steps, workers=workers, uint8=uint8)

    stages = {
      "decode": decode,
      "plain train loop": lambda n: plain_train_loop(paths, n),
      "train transform (uint8)": train,
      "plain eval loop": lambda n: plain_eval_loop(paths, n),
      "eval transform (uint8)": evaluate,
      "train iterator, uint8": iterator(True),
      "train iterator, float32": iterator(False),
    }
    best = dict.fromkeys(stages, 0.0)
    for name, fn in stages.items():  # warm-up
      if "iterator" not in name:
        fn(8)
    for _ in range(args.rounds):
      for name, fn in stages.items():
        n = steps * 32 if "iterator" in name else count
        start = time.perf_counter()
        seconds = fn(n)
        seconds = seconds if seconds is not None else time.perf_counter() - start
        best[name] = max(best[name], n / seconds)
    multi = steps * 32 / iterator(True, args.workers)(None) if args.workers else None

  print(
    f"{count} JPEGs of about 500x500 (mean {mean_kb:.0f} kB), {os.cpu_count()} CPU cores visible; "
    f"best of {args.rounds} alternating rounds"
  )
  print(f"{'stage (one core)':<28}{'images/s':>10}")
  for name, rate in best.items():
    print(f"{name:<28}{rate:>10.1f}")
  train_ratio = best["train iterator, uint8"] / best["plain train loop"]
  print(
    f"train iterator (uint8) / plain train loop:  {train_ratio:.2f}x  "
    f"(float32 images: {best['train iterator, float32'] / best['plain train loop']:.2f}x)"
  )
  print(
    f"train transform / plain train loop:         {best['train transform (uint8)'] / best['plain train loop']:.2f}x"
  )
  print(f"eval transform / plain eval loop:           {best['eval transform (uint8)'] / best['plain eval loop']:.2f}x")
  per_core = best["train iterator, uint8"]
  print(
    f"cores for {TARGET_IMAGES_PER_SECOND} images/s at the one-core iterator rate: "
    f"{TARGET_IMAGES_PER_SECOND / per_core:.1f} (plain loop: {TARGET_IMAGES_PER_SECOND / best['plain train loop']:.1f})"
  )
  if multi:
    print(
      f"train iterator, {args.workers} worker processes: {multi:.1f} images/s ({multi / args.workers:.1f} per worker)"
    )


if __name__ == "__main__":
  main()
