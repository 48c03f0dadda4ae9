"""Forward and forward+backward throughput of the retrieval networks (ResNet-50 at 224 by default).

CPU (small batch):  python benchmarks/bench_models.py
GPU (when present): python benchmarks/bench_models.py --batch 128 --steps 20
Runs on JAX's default backend; prints images/s per dtype and the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from suprank_jax.models import build_model, default_config


def _variables(model, size):
  # Random values of the right shapes: model.init compiles slowly on CPU and the values do not matter.
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))
  rng = np.random.default_rng(0)
  return jax.tree_util.tree_map_with_path(
    lambda p, s: (
      rng.uniform(0.5, 1.5, s.shape) if str(p[-1].key) in ("var", "scale") else rng.normal(0, 0.02, s.shape)
    ).astype(s.dtype),
    shapes,
  )


def _time(fn, args, steps):
  jax.block_until_ready(fn(*args))  # compile and warm up
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(steps):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--model", default="resnet50")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--dtypes", default="float32,bfloat16")
  args = parser.parse_args()

  print(
    f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), model {args.model}, "
    f"{args.batch} x {args.size}x{args.size}"
  )
  images = jnp.asarray(np.random.default_rng(0).normal(size=(args.batch, args.size, args.size, 3)), jnp.float32)
  rows = []
  for dtype in args.dtypes.split(","):
    config = default_config(args.model)
    config.dtype = dtype
    model = build_model(config)
    variables = _variables(model, args.size)
    has_stats = "batch_stats" in variables

    def forward(v, x, model=model):
      return model.apply(v, x, train=False)

    def train_grads(v, x, model=model, has_stats=has_stats):
      def loss(params):
        out = model.apply({**v, "params": params}, x, train=True, mutable=["batch_stats"] if has_stats else False)
        emb = out[0] if has_stats else out
        return jnp.sum(emb @ emb.T)

      return jax.grad(loss)(v["params"])

    fwd = _time(jax.jit(forward), (variables, images), args.steps)
    fwd_bwd = _time(jax.jit(train_grads), (variables, images), args.steps)
    rows.append((dtype, args.batch / fwd, args.batch / fwd_bwd))

  print(f"{'dtype':<10} {'fwd img/s':>10} {'fwd+bwd img/s':>14} {'fwd+bwd / fwd time':>19}")
  for dtype, f, fb in rows:
    print(f"{dtype:<10} {f:>10.1f} {fb:>14.1f} {f / fb:>19.2f}")
  if len(rows) > 1:
    print(f"{rows[1][0]} / {rows[0][0]} fwd+bwd throughput: {rows[1][2] / rows[0][2]:.2f}")


if __name__ == "__main__":
  main()
