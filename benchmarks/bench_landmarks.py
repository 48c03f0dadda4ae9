"""Revisited Oxford + Paris evaluation with generated distractors: time and peak memory, exact and ScaNN;
the H-GLDv2 benchmark with its index in memory and on disk.

    python benchmarks/bench_landmarks.py                       # 100,000 distractors, 2048-d
    python benchmarks/bench_landmarks.py --distractors 20000   # quick check
    python benchmarks/bench_landmarks.py --hgldv2 100000       # H-GLDv2 benchmark, 100,000 index images

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

``--hgldv2 N``: the H-GLDv2 benchmark's metrics (the landmark configs' ``config.evals.hgldv2``: mAP@100,
P@1, P@100, AP, mAP@R, H-AP, ASI, NDCG over three label levels) for 1,129 generated queries (the
GLDv2 retrieval test's) against N generated 2048-d index embeddings in three levels (landmarks of
about 10 images, 1,000 clusters, 10 overall clusters), the index held in memory or read from its
``.npy`` store on disk, as the evaluator does for a set of ``cache_min_items`` or more. Same numbers,
compared to 1e-6.
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
    out[start : start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
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


def make_hgldv2(num_queries, num_index, dim, rng, chunk=10_000):
  """``(query, query_labels, index_labels)`` and a generator of index blocks: each query has its
  landmark's images near it (clustered), three label levels."""
  landmarks = rng.integers(0, max(1, num_index // 10), num_index)
  levels = lambda lm: np.stack([lm, lm % 1000, lm % 10], 1)  # landmark, cluster, overall cluster
  centres = rng.normal(size=(max(1, num_index // 10), dim)).astype(np.float32)
  query_lm = rng.choice(landmarks, num_queries)
  query = centres[query_lm] + 3.0 * rng.normal(size=(num_queries, dim)).astype(np.float32)
  query /= np.linalg.norm(query, axis=1, keepdims=True)

  def blocks():
    for start in range(0, num_index, chunk):
      lm = landmarks[start : start + chunk]
      x = centres[lm] + 3.0 * rng.normal(size=(len(lm), dim)).astype(np.float32)
      yield start, x / np.linalg.norm(x, axis=1, keepdims=True)

  return query, levels(query_lm), levels(landmarks), blocks


def run_hgldv2(args):
  from suprank_jax.configs.landmarks import compose  # pylint: disable=g-import-not-at-top
  from suprank_jax.evaluation import retrieval  # pylint: disable=g-import-not-at-top

  config = compose(dataset="gldv2_hier", loss="happier", optimizer="gldv2").evals.hgldv2.metrics
  query, query_labels, index_labels, _ = make_hgldv2(1129, args.hgldv2, args.dim, np.random.default_rng(0))
  index = np.load(args.path, mmap_mode="r")
  retrieval.evaluate_retrieval(query[:50], query_labels[:50], index[:3000], index_labels[:3000], config=config)
  start = time.perf_counter()
  if args.mode == "memory":
    index = np.array(index)
  results = retrieval.evaluate_retrieval(query, query_labels, index, index_labels, config=config)
  seconds = time.perf_counter() - start
  print(json.dumps({"mode": args.mode, "seconds": seconds, "peak_rss_gb": peak_rss_gb(), "results": results}))


def main_hgldv2(args):
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "index.npy")
    _, _, _, blocks = make_hgldv2(1129, args.hgldv2, args.dim, np.random.default_rng(0))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.hgldv2, args.dim))
    for start, block in blocks():
      out[start : start + len(block)] = block
    out.flush()
    del out
    print(
      f"H-GLDv2 benchmark: 1,129 queries, {args.hgldv2:,} index images x {args.dim} "
      f"({os.path.getsize(path) / 2**30:.2f} GiB on disk)"
    )
    runs = {}
    for mode in ("memory", "disk"):
      out = subprocess.run(
        [
          sys.executable,
          __file__,
          "--mode",
          mode,
          "--path",
          path,
          "--dim",
          str(args.dim),
          "--hgldv2",
          str(args.hgldv2),
        ],
        capture_output=True,
        text=True,
        check=False,
      )
      if out.returncode:
        print(out.stderr[-3000:])
        continue
      runs[mode] = r = json.loads(out.stdout.strip().splitlines()[-1])
      print(
        f"index {'in memory' if mode == 'memory' else 'on disk  '}: {r['seconds']:.1f} s, peak RSS "
        f"{r['peak_rss_gb']:.2f} GiB (H-AP {r['results']['H-AP_multi']:.4f}, "
        f"mAP@100 {r['results']['mAP@100_level0']:.4f})"
      )
    if len(runs) == 2:
      a, b = runs["memory"]["results"], runs["disk"]["results"]
      worst = max(abs(a[k] - b[k]) for k in a)
      print(
        f"largest metric difference between the two: {worst:.1e} ({'equal to 1e-6' if worst <= 1e-6 else 'DIFFER'})"
      )


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
  print(
    json.dumps(
      {
        "mode": args.mode,
        "seconds": seconds,
        "peak_rss_gb": peak,
        "roxford5k_mAP_medium": results["roxford5k"]["mAP_medium"],
        "rparis6k_mAP_hard": results["rparis6k"]["mAP_hard"],
      }
    )
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--distractors", type=int, default=100_000)
  parser.add_argument("--dim", type=int, default=2048)
  parser.add_argument("--neighbors", type=int, default=1000)
  parser.add_argument("--modes", default="exact,scann")
  parser.add_argument("--hgldv2", type=int, default=0, help="H-GLDv2 benchmark with this many index images")
  parser.add_argument("--mode", help=argparse.SUPPRESS)
  parser.add_argument("--path", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.mode:
    (run_hgldv2 if args.hgldv2 else run_mode)(args)
    return
  if args.hgldv2:
    main_hgldv2(args)
    return
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "distractors.npy")
    write_distractors(path, args.distractors, args.dim, np.random.default_rng(1))
    print(f"{args.distractors:,} distractors x {args.dim} ({os.path.getsize(path) / 2**30:.2f} GiB on disk)")
    for mode in args.modes.split(","):
      out = subprocess.run(
        [
          sys.executable,
          __file__,
          "--mode",
          mode,
          "--path",
          path,
          "--dim",
          str(args.dim),
          "--neighbors",
          str(args.neighbors),
        ],
        capture_output=True,
        text=True,
        check=False,
      )
      if out.returncode:
        print(out.stderr[-3000:])
        continue
      r = json.loads(out.stdout.strip().splitlines()[-1])
      print(
        f"{mode:>6}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GiB "
        f"(ROxf+R1M mAP medium {r['roxford5k_mAP_medium']:.4f}, RPar+R1M mAP hard {r['rparis6k_mAP_hard']:.4f})"
      )


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  main()
