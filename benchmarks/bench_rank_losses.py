"""Forward+backward time of SupAP / SupHAP against the dense batch^3 jnp formulation, and memory-mode RSS.

    python benchmarks/bench_rank_losses.py [--quick] [--memory-size 65536]

Prints, for each loss, the median time of one jitted value_and_grad w.r.t. the embeddings (batch mode:
the batch is its own reference set) for our gathered ``[B, P, M]`` formulation and for the reference's
dense ``[B, M, M]`` one written plainly in jnp, and their ratio measured in the same run. Then runs SupAP
for 256 queries against an XBM-sized memory in a subprocess and prints its peak RSS.
"""

import argparse
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from suprank_jax.losses import ap, hap
from suprank_jax.losses.inputs import batch_inputs, memory_inputs


def dense_hap(embeddings, levels, rel, *, tau=0.01, rho=100.0, delta=0.05, start=0.5, offset=1.44):
  """The reference's formulation: every pair of items for every query, [B, M, M]."""
  scores = embeddings @ embeddings.T
  x = scores[:, None, :] - scores[:, :, None]
  m = scores.shape[1]
  off_diagonal = ~jnp.eye(m, dtype=bool)[None]
  sig = 1.0 / (1.0 + jnp.exp(-jnp.clip(x / tau, -50, 50)))
  heavy = jax.lax.stop_gradient((x >= 0).astype(x.dtype))
  surrogate = jnp.where(x <= 0, sig, jnp.where(x <= delta, start + sig, rho * (x - delta) + offset))
  rank_step = jnp.where(levels[:, None, :] < levels[:, :, None], surrogate, heavy)
  rank = 1.0 + jnp.sum(jnp.where(off_diagonal, rank_step, 0.0), -1)
  weight = jnp.minimum(rel[:, :, None], rel[:, None, :])
  rank_plus = rel + jnp.sum(jnp.where(off_diagonal, heavy * weight, 0.0), -1)
  score = jnp.sum(jnp.where(rel > 0, rank_plus / rank, 0.0), -1) / jnp.sum(rel, -1)
  return jnp.mean(1.0 - score)


def _time(fn, *args, repeats):
  out = fn(*args)
  jax.block_until_ready(out)  # compile + warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times)), out


def _embeddings(rng, n, dim):
  e = rng.normal(size=(n, dim)).astype(np.float32)
  return jnp.asarray(e / np.linalg.norm(e, axis=1, keepdims=True))


def batch_benchmarks(batch, dim, repeats):
  rng = np.random.default_rng(0)
  emb = _embeddings(rng, batch, dim)
  rows = []

  # SupAP: 4 images per class.
  labels = jnp.asarray(np.stack([np.repeat(np.arange(batch // 4), 4), np.repeat(np.arange(batch // 4), 4) % 2], 1))
  fast = jax.jit(jax.value_and_grad(lambda e: ap.sup_ap_embedding_loss(batch_inputs(e, labels), max_positives=4)))
  levels = (labels[:, None, 0] == labels[None, :, 0]).astype(jnp.int32)
  dense = jax.jit(jax.value_and_grad(lambda e: dense_hap(e, levels, levels.astype(jnp.float32))))
  t_fast, (v_fast, _) = _time(fast, emb, repeats=repeats)
  t_dense, (v_dense, _) = _time(dense, emb, repeats=max(3, repeats // 4))
  rows.append(("sup_ap (P=4)", t_fast, t_dense, abs(float(v_fast) - float(v_dense))))

  # SupHAP: 2 super-classes, so half the batch shares the query's super-class (P = B / 2).
  labels = jnp.asarray(np.stack([np.repeat(np.arange(batch // 4), 4), np.repeat(np.arange(batch // 4), 4) % 2], 1))
  from suprank_jax import hierarchy  # pylint: disable=g-import-not-at-top

  levels = hierarchy.pair_levels(labels)
  rel = hierarchy.relevance_matrix(levels, 2)
  fast = jax.jit(
    jax.value_and_grad(lambda e: hap.sup_hap_embedding_loss(batch_inputs(e, labels), max_positives=batch // 2))
  )
  dense = jax.jit(jax.value_and_grad(lambda e: dense_hap(e, levels, rel)))
  t_fast, (v_fast, _) = _time(fast, emb, repeats=repeats)
  t_dense, (v_dense, _) = _time(dense, emb, repeats=max(3, repeats // 4))
  rows.append((f"sup_hap (P={batch // 2})", t_fast, t_dense, abs(float(v_fast) - float(v_dense))))

  print(f"batch {batch}, dim {dim}, fwd+bwd, {jax.devices()[0].platform}")
  print(f"{'loss':<18}{'ours ms':>10}{'dense ms':>11}{'speed-up':>10}{'|diff|':>10}")
  for name, t_fast, t_dense, diff in rows:
    print(f"{name:<18}{t_fast * 1e3:>10.1f}{t_dense * 1e3:>11.1f}{t_dense / t_fast:>9.1f}x{diff:>10.1e}")


def memory_run(batch, memory_size, dim, max_positives, repeats):
  """SupAP of ``batch`` queries against a memory; prints time and this process's peak RSS."""
  rng = np.random.default_rng(1)
  emb = _embeddings(rng, batch, dim)
  mem = _embeddings(rng, memory_size, dim)
  num_classes = memory_size // 4
  mem_labels = jnp.asarray(np.stack([np.arange(memory_size) % num_classes, np.zeros(memory_size, int)], 1))
  labels = jnp.asarray(np.stack([rng.integers(0, num_classes, batch), np.zeros(batch, int)], 1))
  fn = jax.jit(
    jax.value_and_grad(
      lambda e, m, ml: ap.sup_ap_embedding_loss(memory_inputs(e, labels, m, ml), max_positives=max_positives)
    )
  )
  seconds, (value, grad) = _time(fn, emb, mem, mem_labels, repeats=repeats)
  rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(
    f"memory {memory_size}x{dim}, {batch} queries, sup_ap fwd+bwd: {seconds:.2f} s, loss {float(value):.4f}, "
    f"finite grad {bool(np.isfinite(np.asarray(grad)).all())}, peak RSS {rss_gb:.2f} GB"
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--memory-size", type=int, default=65536)
  parser.add_argument("--memory-only", action="store_true")
  parser.add_argument("--skip-memory", action="store_true")
  args = parser.parse_args()
  if args.memory_only:
    memory_run(args.batch, args.memory_size, args.dim, max_positives=8, repeats=2)
    return
  batch_benchmarks(args.batch, args.dim, args.repeats)
  if not args.skip_memory:
    # A fresh process, so that its peak RSS is the memory-mode run's alone.
    subprocess.run(
      [
        sys.executable,
        __file__,
        "--memory-only",
        "--memory-size",
        str(args.memory_size),
        "--batch",
        str(args.batch),
        "--dim",
        str(args.dim),
      ],
      check=True,
    )


if __name__ == "__main__":
  main()
