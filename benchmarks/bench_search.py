"""Searching an exported index: per-query latency and recall of the ScaNN index against exact search.

    python benchmarks/bench_search.py                      # 100,000 x 512 random unit vectors
    python benchmarks/bench_search.py --num 20000 --dim 64  # quick check

The gallery and the queries are random unit vectors (the hardest case for an approximate index: no
cluster structure). Two searchers are built through ``suprank_jax.index`` (as ``export`` builds them):

  scann : tree + asymmetric hashing, every leaf searched, 1,000 candidates re-scored exactly (the
          index above EXACT_MAX_ITEMS items); also timed searching 10% of the leaves
  exact : ScaNN brute force (the index below EXACT_MAX_ITEMS items, here forced on the same gallery)

and compared with an exact float64 numpy search. For each: the build time, the latency of one query
(``SearchIndex.search`` with a single embedding, median and 95th percentile after a warm-up), the time
per query in a batch, and recall@k against numpy. Then the whole index folder is written and loaded
back (``load_index``), and one query is answered from disk, as ``python -m suprank_jax.search`` does
(image decoding and the model's forward pass excluded).

Goal of the issue: a 100,000-item index answers a query in well under a second on CPU.
"""

import argparse
import functools
import os
import tempfile
import time

import numpy as np


def unit_vectors(rng, num, dim):
  x = rng.normal(size=(num, dim)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_neighbors(queries, gallery, k):
  scores = queries.astype(np.float64) @ gallery.T.astype(np.float64)
  return np.argsort(-scores, axis=1)[:, :k]


def recall(found, exact):
  return float(np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(found, exact)]))


def time_single_queries(search, queries, k, warmup=20):
  for q in queries[:warmup]:
    search(q, k)
  seconds = []
  for q in queries:
    start = time.perf_counter()
    search(q, k)
    seconds.append(time.perf_counter() - start)
  return np.median(seconds), np.percentile(seconds, 95)


def main():
  from suprank_jax.index import store as index_lib  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser()
  parser.add_argument("--num", type=int, default=100_000)
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--queries", type=int, default=1000, help="queries for the recall and the batch timing")
  parser.add_argument("--single", type=int, default=200, help="single-query calls timed")
  parser.add_argument("--k", type=int, default=10)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  gallery, queries = unit_vectors(rng, args.num, args.dim), unit_vectors(rng, args.queries, args.dim)
  print(f"gallery {args.num:,} x {args.dim}, {args.queries} queries, k={args.k}, {os.cpu_count()} CPUs")

  start = time.perf_counter()
  exact = exact_neighbors(queries, gallery, args.k)
  numpy_seconds = time.perf_counter() - start
  print(f"numpy exact (float64 matmul + argsort), batch: {1e3 * numpy_seconds / args.queries:.2f} ms per query")

  rows = []
  for kind in ("scann", "exact"):
    start = time.perf_counter()
    searcher, settings = index_lib.build_searcher(gallery, kind)
    build = time.perf_counter() - start
    index = index_lib.SearchIndex(
      directory="(in memory)",
      locations=("",) * args.num,
      labels=np.zeros((args.num, 0)),
      manifest={"embed_dim": args.dim, "searcher": kind, "scann": settings, "model": {}},
      embeddings=gallery,
      searcher=searcher,
    )
    variants = [(kind, None)]
    if settings:  # also fewer leaves: the evaluation's default of 10%
      variants.append(
        (f"scann, {settings['num_leaves'] // 10} of {settings['num_leaves']} leaves", settings["num_leaves"] // 10)
      )
    for name, leaves in variants:
      search = functools.partial(index.search, leaves_to_search=leaves)
      median, p95 = time_single_queries(search, queries[: args.single], args.k)
      search(queries[:50], args.k)  # warm-up of the batch path
      start = time.perf_counter()
      found, _ = search(queries, args.k)
      batch = (time.perf_counter() - start) / args.queries
      rows.append((name, build, median, p95, batch, recall(found, exact)))
  print(
    f"{'searcher':<24} {'build s':>8} {'1 query ms (median)':>20} {'p95 ms':>8} {'batch ms/query':>15} "
    f"{'recall@' + str(args.k):>10}"
  )
  for name, build, median, p95, batch, r in rows:
    print(f"{name:<24} {build:8.1f} {1e3 * median:20.2f} {1e3 * p95:8.2f} {1e3 * batch:15.3f} {r:10.4f}")

  with tempfile.TemporaryDirectory() as folder:
    out = os.path.join(folder, "index")
    start = time.perf_counter()
    index_lib.write_index(
      out,
      gallery,
      locations=[f"/photos/{i:06d}.jpg" for i in range(args.num)],
      labels=np.zeros((args.num, 0), np.int64),
      level_names=(),
      variables={"params": {"w": np.zeros(1, np.float32)}},
      model={"name": "bench"},
      gallery={"images": "/photos"},
      config={},
    )
    write = time.perf_counter() - start
    start = time.perf_counter()
    loaded = index_lib.load_index(out)
    load = time.perf_counter() - start
    start = time.perf_counter()
    loaded.search(queries[0], args.k)
    first = time.perf_counter() - start
    print(
      f"index folder ({loaded.manifest['searcher']}): written in {write:.1f} s, loaded in {load:.2f} s, "
      f"first query after loading {1e3 * first:.1f} ms; load + first query {load + first:.2f} s"
    )


if __name__ == "__main__":
  main()
