"""Revisited Oxford + Paris evaluation with generated distractors: time and peak memory, exact and ScaNN.

    python benchmarks/bench_landmarks.py                       # 100,000 distractors, 2048-d
    python benchmarks/bench_landmarks.py --distractors 20000   # quick check

Generated embeddings at the benchmarks' sizes (ROxford5k: 70 queries, 4,993 gallery images;
RParis6k: 70 queries, 6,322 gallery images; 2048-d, the landmark model's), with the protocol's
easy / hard / junk lists (positives near their query), and ``--distractors`` 2048-d distractors
written to a ``.npy`` file, as the Revisited evaluation stores the embeddings of a large set: the
search reads it one block at a time. Each mode runs in a fresh subprocess after a warm-up on a
small copy (jit compilation and ScaNN's first import excluded) and reports the time of the two
benchmarks with the distractors (``landmarks.evaluate_revisited_sets``: gallery scores, one distractor
search for the queries of both, metrics) and the process's peak RSS. Modes:
  exact : every distractor scored and counted (exact ranks)
  scann : ScaNN indexes of 100,000 distractors at most, the best ``--neighbors`` per query kept
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = {"roxford5k": (70, 4993), "rparis6k": (70, 6322)}


def make_benchmark(num_queries, num_gallery, dim, rng):
  """Unit query/gallery embeddings and ground truth: each query has ~40 positives near it (easy ones
  nearer than hard ones) and ~10 junk items, the rest of the gallery is unrelated."""
  query = rng.normal(size=(num_queries, dim)).astype(np.float32)
  gallery = rng.normal(size=(num_gallery, dim)).astype(np.float32)
  gnd = []
  for q in range(num_queries):
    items = rng.permutation(num_gallery)[:50]
    easy, hard, junk = items[:25], items[25:40], items[40:]
    gallery[easy] = query[q] + 1.2 * rng.normal(size=(len(easy), dim))
    gallery[hard] = query[q] + 2.5 * rng.normal(size=(len(hard), dim))
    gnd.append({"easy": easy, "hard": hard, "junk": junk})
  for x in (query, gallery):
    x /= np.linalg.norm(x, axis=1, keepdims=True)
  return query, gallery, gnd


def write_distractors(path, num, dim, rng, chunk=10_000):
  out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(num, dim))
  for start in range(0, num, chunk):
    x = rng.normal(size=(min(chunk, num - start), dim)).astype(np.float32)
    out[start:start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
  out.flush()
  del out


def peak_rss_gb() -> float:
  """This process's peak resident memory since it started (``VmHWM``: unlike ``ru_maxrss``, it does not
  carry over the parent's peak across fork and exec)."""
  with open("/proc/self/status", encoding="utf-8") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 2**20  # KiB -> GiB
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_mode(args):
  from suprank_jax.evaluation import landmarks  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  sets = {name: make_benchmark(nq, ng, args.dim, rng) for name, (nq, ng) in SIZES.items()}
  distractors = np.load(args.path, mmap_mode="r")
  kwargs = dict(search_mode=args.mode)
  if args.mode == "scann":
    kwargs["scann_num_neighbors"] = args.neighbors
  q, g, gnd = make_benchmark(4, 500, args.dim, np.random.default_rng(2))
  landmarks.evaluate_revisited(q, g, gnd, distractors=distractors[:2000], **kwargs)  # warm-up
  start = time.perf_counter()
  results = landmarks.evaluate_revisited_sets(sets, distractors=distractors, **kwargs)
  results = {name: results[f"{name}+1m"] for name in sets}
  seconds = time.perf_counter() - start
  peak = peak_rss_gb()
  print(json.dumps({"mode": args.mode, "seconds": seconds, "peak_rss_gb": peak,
                    "roxford5k_mAP_medium": results["roxford5k"]["mAP_medium"],
                    "rparis6k_mAP_hard": results["rparis6k"]["mAP_hard"]}))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--distractors", type=int, default=100_000)
  parser.add_argument("--dim", type=int, default=2048)
  parser.add_argument("--neighbors", type=int, default=1000)
  parser.add_argument("--modes", default="exact,scann")
  parser.add_argument("--mode", help=argparse.SUPPRESS)
  parser.add_argument("--path", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.mode:
    run_mode(args)
    return
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "distractors.npy")
    write_distractors(path, args.distractors, args.dim, np.random.default_rng(1))
    print(f"{args.distractors:,} distractors x {args.dim} ({os.path.getsize(path) / 2**30:.2f} GiB on disk)")
    for mode in args.modes.split(","):
      out = subprocess.run([sys.executable, __file__, "--mode", mode, "--path", path, "--dim", str(args.dim),
                            "--neighbors", str(args.neighbors)], capture_output=True, text=True, check=False)
      if out.returncode:
        print(out.stderr[-3000:])
        continue
      r = json.loads(out.stdout.strip().splitlines()[-1])
      print(f"{mode:>6}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GiB "
            f"(ROxf+R1M mAP medium {r['roxford5k_mAP_medium']:.4f}, RPar+R1M mAP hard {r['rparis6k_mAP_hard']:.4f})")


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  main()
