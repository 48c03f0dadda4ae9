"""One accelerator check: train step, input pipeline and evaluation figures, in one run.

    bash benchmarks/device_check.sh             # on a GPU machine (under 5 minutes)
    python benchmarks/device_check.py --tiny    # the same code path on small sizes (CPU, a test runs it)

Prints, for JAX's default backend:

1. the full train step of the HAPPIER SOP experiment (``configs/happier/sop.py``: ResNet-50 at 224 in
   bf16, batch 256, SupHAP + cluster loss, Adam groups), as the trainer jits it, on synthetic images
   already on the devices: images/s;
2. the backbone alone (forward + backward of the same network on the same batch, a plain sum as
   the loss) and so the share of the step spent outside it (losses, optimiser, cross-device gathers);
3. the training iterator with uint8 images and one worker process per host core, on generated
   500x500 JPEGs (``bench_input_pipeline.py``), and the host cores needed to feed the step;
4. SOP-size exact evaluation (60,502 x 512, the full metric set; ranks computed on the device):
   seconds, ratio to the bare score matmul in the same run, bytes copied to the host per query.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_evaluation  # pylint: disable=g-import-not-at-top,wrong-import-position
import bench_input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position

from suprank_jax import losses, models, optim  # pylint: disable=wrong-import-position
from suprank_jax.configs.happier import sop  # pylint: disable=wrong-import-position
from suprank_jax.evaluation import retrieval  # pylint: disable=wrong-import-position
from suprank_jax.input_pipeline import pipeline, sources  # pylint: disable=wrong-import-position
from suprank_jax.models import build_model, default_config  # pylint: disable=wrong-import-position
from suprank_jax.runtime import parallel  # pylint: disable=wrong-import-position
from suprank_jax.training import train  # pylint: disable=wrong-import-position

SIZES = {  # full: the settings; tiny: the same code on CPU in seconds
  "full": dict(model="resnet50", image=224, batch=256, classes=(11318, 12), steps=20, jpegs=512, eval_num=60502),
  "tiny": dict(model="convnet", image=32, batch=16, classes=(40, 4), steps=2, jpegs=32, eval_num=1500),
}


def _timed(fn, steps):
  """Mean seconds of ``fn()`` over ``steps`` calls after two warm-up calls (compilation)."""
  jax.block_until_ready(fn())
  jax.block_until_ready(fn())
  start = time.perf_counter()
  out = None
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def _experiment(size):
  config = sop.get_config()
  if size["model"] != config.model.name:
    dtype = config.model.dtype
    config.model = default_config(size["model"])
    if "dtype" in config.model:
      config.model.dtype = dtype
    config.optim.freeze_regex = ""  # names ResNet parameters
  optim_config = config.optim.copy_and_resolve_references()
  frozen = models.frozen_parameter_regex(config.model)
  if frozen:  # as the trainer does: frozen batch-norm parameters get no update
    with optim_config.unlocked():
      optim_config.groups = ((frozen, None),) + tuple(optim_config.groups)
  return config, optim_config


def train_step_figures(size, log):
  """``(step seconds, backbone seconds)`` of the HAPPIER step at ``size`` on the default devices."""
  config, optim_config = _experiment(size)
  mesh = parallel.make_mesh()
  batch_size = size["batch"]
  model = build_model(config.model)
  tx, schedules = optim.make_optimizer(optim_config, 1000, steps_per_epoch=100)
  rng = np.random.default_rng(0)
  # Hierarchical-sampler batches: 4 images per class, two super-classes per batch.
  fine = np.repeat(rng.choice(size["classes"][0], batch_size // 4, replace=False), 4)
  labels = np.stack([fine, np.repeat(np.arange(2), batch_size // 2)], 1).astype(np.int32)
  images = rng.integers(0, 256, (batch_size, size["image"], size["image"], 3), dtype=np.uint8)
  batch = parallel.global_batch(
    {"images": images, "labels": labels, "index": np.arange(batch_size, dtype=np.int32)}, mesh, normalization="imagenet"
  )
  proxy_labels = np.stack([np.arange(size["classes"][0]), np.arange(size["classes"][0]) % size["classes"][1]], 1)
  make_state = functools.partial(
    train.create_state,
    model=model,
    tx=tx,
    sample_images=jnp.zeros((1, size["image"], size["image"], 3)),
    losses_config=config.losses,
    registry=losses.LOSSES,
    num_classes_per_level=size["classes"],
  )
  state = jax.jit(make_state, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(0))
  step_fn = jax.jit(
    functools.partial(
      train.train_step,
      model=model,
      loss_fn=losses.make_loss_fn(config.losses, losses.LOSSES),
      tx=tx,
      schedules=schedules,
      steps_per_epoch=100,
      loss_context={"proxy_labels": jnp.asarray(proxy_labels, jnp.int32)},
    ),
    in_shardings=(parallel.replicated(mesh), parallel.data_sharding(mesh)),
    out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
    donate_argnums=(0,),
  )
  log(f"compiling the {size['model']} train step (batch {batch_size}, {size['image']}px, {config.model.dtype})")
  holder = {"state": state}

  def step():
    holder["state"], metrics = step_fn(holder["state"], batch)
    return metrics["loss"]

  step_seconds = _timed(step, size["steps"])
  variables = holder["state"].variables()
  has_stats = "batch_stats" in variables

  def backbone_loss(params, images):
    out = model.apply(
      {**variables, "params": params}, images, train=True, mutable=["batch_stats"] if has_stats else False
    )
    embeddings = out[0] if has_stats else out
    return jnp.sum(embeddings.astype(jnp.float32))

  backbone = jax.jit(jax.value_and_grad(backbone_loss))
  backbone_seconds = _timed(lambda: backbone(variables["params"], batch["images"]), size["steps"])
  return step_seconds, backbone_seconds


def pipeline_rate(size, workers):
  """Training-iterator images/s with ``workers`` worker processes, uint8 images, 224 crops."""
  config = pipeline.default_config()
  config.update(
    dict(
      image_size=224,
      random_resized_crop=True,
      horizontal_flip=True,
      normalization="imagenet",
      global_batch_size=32,
      samples_per_class=4,
    )
  )
  with tempfile.TemporaryDirectory() as folder:
    paths = bench_input_pipeline._write_jpegs(folder, size["jpegs"], np.random.default_rng(0))  # pylint: disable=protected-access
    source = sources.make_source("check/train", np.repeat(np.arange(len(paths) // 4), 4), ("class",), paths=paths)
    steps = len(paths) // 32
    return steps * 32 / bench_input_pipeline.iterator_seconds(config, source, steps=steps, workers=workers)


def evaluation_figures(size):
  """``(seconds, matmul seconds, bytes per query, metrics)`` of the exact full metric set."""
  x, labels = bench_evaluation.make_data(size["eval_num"], 512)
  cfg = bench_evaluation.config_for("exact-full")
  retrieval.evaluate_retrieval(x[:1000], labels[:1000], config=cfg)  # compile
  matmul = bench_evaluation.bare_matmul(x)
  with bench_evaluation.counting_transfers() as bytes_per_query:
    start = time.perf_counter()
    metrics = retrieval.evaluate_retrieval(x, labels, config=cfg)
    seconds = time.perf_counter() - start
  return seconds, matmul, bytes_per_query(), metrics


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tiny", action="store_true", help="small sizes: checks the code path on a CPU")
  parser.add_argument("--skip", default="", help="comma-separated parts to skip: train,pipeline,eval")
  args = parser.parse_args(argv)
  size = SIZES["tiny" if args.tiny else "full"]
  skip = set(filter(None, args.skip.split(",")))
  log = functools.partial(print, flush=True)
  devices = jax.devices()
  log(
    f"devices: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} host cores, "
    f"jax {jax.__version__}, {time.strftime('%Y-%m-%d')}"
  )
  per_second = None
  if "train" not in skip:
    step, backbone = train_step_figures(size, log)
    per_second = size["batch"] / step
    log(
      f"train step ({size['model']}, {size['image']}px, batch {size['batch']}, HAPPIER loss): {1e3 * step:.1f} ms, "
      f"{per_second:.0f} images/s"
    )
    log(
      f"backbone forward+backward alone: {1e3 * backbone:.1f} ms; share of the step outside the backbone "
      f"(losses, optimiser, gathers): {max(0.0, 1 - backbone / step):.1%}"
    )
  if "pipeline" not in skip:
    workers = os.cpu_count() or 1
    rate = pipeline_rate(size, workers)
    log(
      f"input pipeline, {workers} worker processes (uint8, RandomResizedCrop 224): {rate:.0f} images/s "
      f"({rate / workers:.0f} per core)"
    )
    if per_second:
      log(f"host cores to feed the step: {per_second / (rate / workers):.1f} (this host has {workers})")
  if "eval" not in skip:
    seconds, matmul, per_query, metrics = evaluation_figures(size)
    log(
      f"exact evaluation, {size['eval_num']} x 512, full metric set: {seconds:.1f} s; bare matmul {matmul:.2f} s "
      f"(ratio {seconds / matmul:.2f}); device-to-host {per_query:.0f} bytes per query "
      f"(a score row: {4 * size['eval_num']}); R@1 {metrics['R@1_level0']:.4f}, H-AP {metrics['H-AP_multi']:.4f}"
    )


if __name__ == "__main__":
  main()
