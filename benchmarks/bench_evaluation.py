"""Retrieval evaluation at SOP scale: time and peak memory of each search mode.

    python benchmarks/bench_evaluation.py                    # 60,502 x 512, two label levels
    python benchmarks/bench_evaluation.py --num 150000       # iNaturalist-2018 test size
    python benchmarks/bench_evaluation.py --num 6000         # quick check

Synthetic data: 11,316 fine classes (SOP) nested in 12 super-classes; an embedding is its class
centre (itself near its super-class centre) plus noise, L2-normalised, so that R@1 and mAP@R are
far from 0 and 1. Each mode runs in a fresh subprocess (peak RSS per mode) after a small warm-up
call in the same process (jit compilation excluded from the timing).

Modes:
  exact-full : R@1/10/100/1000, P@1, AP, mAP@R (level 0), H-AP, ASI, NDCG (exact, whole ranking)
  exact-topk : R@1/10/100/1000 only (exact chunked lax.top_k)
  scann      : R@1/10/100/1000 only (ScaNN tree + AH + reorder), with its recall@1000 vs exact

Goals of the issue (2-core CPU): exact-full <= 240 s and < 4 GB peak RSS (the original: ~40 min,
2.4 GB); scann < 60 s.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def make_data(num, dim, seed=0):
  rng = np.random.default_rng(seed)
  num_fine = max(2, round(num * 11316 / 60502))
  coarse_of_fine = rng.integers(0, 12, num_fine)
  coarse_centers = rng.normal(size=(12, dim)).astype(np.float32)
  fine_centers = coarse_centers[coarse_of_fine] + 1.2 * rng.normal(size=(num_fine, dim)).astype(np.float32)
  fine = rng.integers(0, num_fine, num)
  x = fine_centers[fine] + 3.0 * rng.normal(size=(num, dim)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x, np.stack([fine, coarse_of_fine[fine]], 1)


def config_for(mode):
  from suprank_jax.evaluation import retrieval  # pylint: disable=g-import-not-at-top
  cfg = retrieval.default_config()
  cfg.recall_at = (1, 10, 100, 1000)
  if mode != "exact-full":
    cfg.binary_metrics = ()
    cfg.multi_level_metrics = ()
  if mode == "scann":
    cfg.search = "scann"
    cfg.scann.report_recall = True
  return cfg


def run_mode(mode, num, dim):
  from suprank_jax.evaluation import retrieval  # pylint: disable=g-import-not-at-top
  x, labels = make_data(num, dim)
  cfg = config_for(mode)
  warm = min(num, 2000)
  if mode != "scann":  # warm-up: compile the jitted chunk functions
    retrieval.evaluate_retrieval(x[:warm], labels[:warm], config=cfg)
  start = time.perf_counter()
  res = retrieval.evaluate_retrieval(x, labels, config=cfg)
  seconds = time.perf_counter() - start
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {"mode": mode, "seconds": seconds, "peak_rss_mb": peak_mb, "metrics": res}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--num", type=int, default=60502)
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--modes", default="exact-full,exact-topk,scann")
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(run_mode(args.child, args.num, args.dim)))
    return
  rows = []
  for mode in args.modes.split(","):
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--num", str(args.num), "--dim", str(args.dim)],
                         capture_output=True, text=True, check=True)
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  print(f"N = {args.num} x {args.dim}, same-source (leave-one-out), two label levels")
  print(f"{'mode':<11} {'seconds':>8} {'peak RSS MB':>12}  metrics")
  keys = ("R@1_level0", "R@1000_level0", "mAP@R_level0", "AP_level0", "H-AP_multi", "ASI_multi", "NDCG_multi",
          "scann_recall@1000")
  for r in rows:
    shown = ", ".join(f"{k}={r['metrics'][k]:.4f}" for k in keys if k in r["metrics"])
    print(f"{r['mode']:<11} {r['seconds']:>8.1f} {r['peak_rss_mb']:>12.0f}  {shown}")
  times = {r["mode"]: r["seconds"] for r in rows}
  if "exact-full" in times:
    for other in ("exact-topk", "scann"):
      if other in times:
        print(f"ratio exact-full / {other}: {times['exact-full'] / times[other]:.1f}")
    print(f"exact-full vs the 240 s goal: {times['exact-full'] / 240:.2f}x of the budget")
  if "scann" in times:
    print(f"scann vs the 60 s goal: {times['scann'] / 60:.2f}x of the budget")


if __name__ == "__main__":
  main()
