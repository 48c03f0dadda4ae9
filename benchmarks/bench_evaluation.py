"""Retrieval evaluation at SOP scale: time of each search mode against the bare score matmul.

    python benchmarks/bench_evaluation.py --num 30000        # the issue's size: 30,000 x 512
    python benchmarks/bench_evaluation.py                    # SOP test size, 60,502 x 512
    python benchmarks/bench_evaluation.py --num 150000       # iNaturalist-2018 test size
    python benchmarks/bench_evaluation.py --num 3000 --modes exact-full --rounds 1   # quick check

Synthetic data: 11,316 fine classes (SOP) nested in 12 super-classes; an embedding is its class
centre (itself near its super-class centre) plus noise, L2-normalised, so that R@1 and mAP@R are
far from 0 and 1. Each mode runs in a fresh subprocess (peak RSS per mode) after a small warm-up
call in the same process (jit compilation excluded from the timing).

Each mode is timed in alternation with the bare score matmul (chunk by chunk on the device, as
the exact searches run it) in the same process, the best of ``--rounds`` of each; the ratio is to
that matmul. Modes:
  exact-full : R@1/10/100/1000, P@1, AP, mAP@R (level 0), H-AP, ASI, NDCG (exact, whole ranking)
  exact-topk : R@1/10/100/1000 only (exact chunked lax.top_k)
  scann      : R@1/10/100/1000 only (ScaNN with the default settings for this gallery size), with
               its recall of the exact top-1000

Also printed: the bytes copied from the device to the host per query by each exact path
(:func:`counting_transfers`: the outputs of the searches' jitted chunk functions), including device-side ranking (forced on ``--device_queries`` queries
when the backend is a CPU; there it is slow, so only its bytes are meaningful).

Goals of the issue (2-core CPU, 30,000 x 512): exact-full within 2x the matmul; ScaNN recall of
the exact top-1000 >= 0.95 in at most half the time of exact-topk.
"""

import argparse
import contextlib
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


def bare_matmul(x, chunk_size=256):
  """Seconds of the chunked score matmul of every item against all (the exact searches' device work)."""
  import jax  # pylint: disable=g-import-not-at-top

  from suprank_jax.evaluation import scoring  # pylint: disable=g-import-not-at-top

  gallery = jax.numpy.asarray(x)
  self_index = np.arange(len(x), dtype=np.int32)

  def run():
    out = None
    for start in range(0, len(x), chunk_size):
      q = scoring._pad_rows(x[start : start + chunk_size], chunk_size, 0)  # pylint: disable=protected-access
      s = scoring._pad_rows(self_index[start : start + chunk_size], chunk_size, -1)  # pylint: disable=protected-access
      out = scoring._chunk_scores(q, gallery, s, sort=False)[0]  # pylint: disable=protected-access
      out.block_until_ready()
    return out

  run()  # compile and warm up
  start = time.perf_counter()
  run()
  return time.perf_counter() - start


@contextlib.contextmanager
def counting_transfers():
  """Counts what the exact searches copy from the device to the host: the outputs of their jitted chunk
  functions (score rows, top-k lists, the relevant items' ranks), wrapped for the duration. Yields
  ``bytes_per_query()`` (a chunk's padding rows count as queries: a small bias on the last chunk)."""
  import jax  # pylint: disable=g-import-not-at-top

  from suprank_jax.evaluation import scoring, search  # pylint: disable=g-import-not-at-top

  tally = {"bytes": 0, "rows": 0}

  def counted(fn):
    def wrapper(*args, **kwargs):
      out = fn(*args, **kwargs)
      leaves = jax.tree.leaves(out)
      tally["bytes"] += sum(x.nbytes for x in leaves)
      tally["rows"] += leaves[0].shape[0]
      return out

    return wrapper

  wrapped = [(scoring, "_chunk_scores"), (scoring, "_chunk_top_k"), (search, "_chunk_candidate_ranks")]
  originals = [getattr(module, name) for module, name in wrapped]
  for (module, name), fn in zip(wrapped, originals):
    setattr(module, name, counted(fn))
  try:
    yield lambda: tally["bytes"] / max(tally["rows"], 1)
  finally:
    for (module, name), fn in zip(wrapped, originals):
      setattr(module, name, fn)


def device_bytes(x, labels, num_queries):
  """Bytes per query copied to the host by device-side exact ranking (forced on a CPU backend)."""
  from suprank_jax.evaluation import search  # pylint: disable=g-import-not-at-top

  n = min(num_queries, len(x))
  with counting_transfers() as bytes_per_query:
    for _ in search.exact_ranked_relevant(x[:n], labels[:n], x, labels, np.arange(n), on_device=True):
      pass
  return bytes_per_query()


def run_mode(mode, num, dim, device_queries, rounds):
  """One mode in this process: its seconds and the bare matmul's, in alternation, the best of ``rounds``
  each (other jobs on the machine then slow both alike)."""
  from suprank_jax.evaluation import retrieval  # pylint: disable=g-import-not-at-top

  x, labels = make_data(num, dim)
  if mode == "device-bytes":
    return {"mode": mode, "bytes_per_query": device_bytes(x, labels, device_queries)}
  cfg = config_for(mode)
  warm = min(num, 2000)
  if mode != "scann":  # warm-up: compile the jitted chunk functions
    retrieval.evaluate_retrieval(x[:warm], labels[:warm], config=cfg)
  seconds, matmul = [], []
  for _ in range(rounds):
    matmul.append(bare_matmul(x))
    with counting_transfers() as bytes_per_query:
      start = time.perf_counter()
      res = retrieval.evaluate_retrieval(x, labels, config=cfg)
      seconds.append(time.perf_counter() - start)
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {
    "mode": mode,
    "seconds": min(seconds),
    "matmul_seconds": min(matmul),
    "peak_rss_mb": peak_mb,
    "metrics": res,
    "bytes_per_query": bytes_per_query(),
  }


def _child(mode, args):
  out = subprocess.run(
    [
      sys.executable,
      __file__,
      "--child",
      mode,
      "--num",
      str(args.num),
      "--dim",
      str(args.dim),
      "--device_queries",
      str(args.device_queries),
      "--rounds",
      str(args.rounds),
    ],
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--num", type=int, default=60502)
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--modes", default="exact-full,exact-topk,scann,device-bytes")
  parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each mode and the matmul")
  parser.add_argument("--device_queries", type=int, default=512, help="queries for the device-ranking bytes")
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(run_mode(args.child, args.num, args.dim, args.device_queries, args.rounds)))
    return
  rows = [_child(mode, args) for mode in args.modes.split(",")]
  print(
    f"N = {args.num} x {args.dim}, same-source (leave-one-out), two label levels; best of {args.rounds} rounds, "
    "each mode alternating with the bare score matmul in its process"
  )
  print(
    f"{'mode':<12} {'seconds':>8} {'matmul s':>9} {'ratio':>6} {'peak RSS MB':>12} {'D2H bytes/query':>16}  metrics"
  )
  keys = (
    "R@1_level0",
    "R@1000_level0",
    "mAP@R_level0",
    "AP_level0",
    "H-AP_multi",
    "ASI_multi",
    "NDCG_multi",
    "scann_recall@1000",
  )
  for r in rows:
    if r["mode"] == "device-bytes":
      print(
        f"{'device rank':<12} {'-':>8} {'-':>9} {'-':>6} {'-':>12} {r['bytes_per_query']:>16.0f}  (exact-full "
        "ranking on the device: ranks and columns of the relevant items only)"
      )
      continue
    shown = ", ".join(f"{k}={r['metrics'][k]:.4f}" for k in keys if k in r["metrics"])
    print(
      f"{r['mode']:<12} {r['seconds']:>8.1f} {r['matmul_seconds']:>9.1f} {r['seconds'] / r['matmul_seconds']:>6.2f} "
      f"{r['peak_rss_mb']:>12.0f} {r['bytes_per_query']:>16.0f}  {shown}"
    )
  print(f"a float32 score row: {4 * args.num} bytes")
  ratios = {r["mode"]: r["seconds"] / r["matmul_seconds"] for r in rows if "seconds" in r}
  if "scann" in ratios and "exact-topk" in ratios:
    print(f"scann / exact-topk (each against its own matmul): {ratios['scann'] / ratios['exact-topk']:.2f}")


if __name__ == "__main__":
  main()
