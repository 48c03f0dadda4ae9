"""Save-time overhead of the checkpoint integrity record, for a ResNet-50-sized train state.

    python benchmarks/bench_checkpoint.py [--saves 3] [--dir /tmp/bench_checkpoint]

The state: ResNet-50's parameters (25.6M float32) with Adam's two moments (76.7M values, 307 MB).
Plain orbax (``CheckpointManager.save`` of the state and a JSON record) against ours
(``suprank_jax.training.checkpoint.CheckpointManager.save``: the same, plus the finiteness check, the host copy
and the CRC-32 of every array, written as a third item). For each: the time ``save()`` blocks the
training thread, and the time until the step is on disk (save + wait). Also the parts alone (the
finiteness check, the CRC-32s), and a verified restore against a plain one. Warm-up saves first; the
figures are medians over ``--saves`` saves, measured in one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging

from suprank_jax.models import build_model, default_config
from suprank_jax.training import checkpoint


def _state():
  model = build_model(default_config("resnet50"))
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)), train=False))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.02, s.shape).astype(s.dtype)), shapes)
  params = variables["params"]
  opt_state = optax.adam(1e-3).init(params)
  # Moments of the size a trained state has (not zeros, which compress to nothing).
  opt_state = jax.tree.map(
    lambda x: jnp.asarray(rng.normal(0, 1e-3, x.shape).astype(x.dtype)) if getattr(x, "ndim", 0) else x, opt_state
  )
  return {
    "step": jnp.int32(1),
    "params": params,
    "batch_stats": variables.get("batch_stats", {}),
    "opt_state": opt_state,
  }


def _median(values):
  return statistics.median(values)


def _time_saves(save, wait, saves):
  blocking, total = [], []
  for i in range(saves + 1):  # the first is a warm-up (compilation, thread pools)
    t0 = time.perf_counter()
    save(i + 1)
    t1 = time.perf_counter()
    wait()
    t2 = time.perf_counter()
    if i:
      blocking.append(t1 - t0)
      total.append(t2 - t0)
  return _median(blocking), _median(total)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--saves", type=int, default=3)
  parser.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
  args = parser.parse_args()
  logging.set_verbosity(logging.ERROR)  # orbax reports each save
  root = args.dir or tempfile.mkdtemp(prefix="bench_checkpoint_")
  state = _state()
  leaves = jax.tree.leaves(state)
  n_values = sum(int(np.size(x)) for x in leaves)
  n_bytes = sum(int(np.asarray(x).nbytes) for x in leaves)
  print(
    f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); state: {len(leaves)} arrays, "
    f"{n_values / 1e6:.1f}M values, {n_bytes / 1e6:.0f} MB; medians over {args.saves} saves after a warm-up"
  )
  meta = {"step": 1, "config": "{}"}

  plain_dir = os.path.join(root, "plain")
  plain = ocp.CheckpointManager(plain_dir, options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))
  plain_block, plain_total = _time_saves(
    lambda s: plain.save(s, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))),
    plain.wait_until_finished,
    args.saves,
  )
  plain.close()

  ours_dir = os.path.join(root, "ours")
  ours = checkpoint.CheckpointManager(ours_dir, max_to_keep=1)
  ours_block, ours_total = _time_saves(lambda s: ours.save(s, state, meta), ours.wait_until_finished, args.saves)
  ours.close()

  # The parts alone.
  named = checkpoint.tree_paths(state)
  checkpoint._nonfinite(named)  # pylint: disable=protected-access
  t0 = time.perf_counter()
  for _ in range(args.saves):
    checkpoint._nonfinite(named)  # pylint: disable=protected-access
  finite_s = (time.perf_counter() - t0) / args.saves
  hosts = [(p, np.asarray(x)) for p, x in named]
  t0 = time.perf_counter()
  for _ in range(args.saves):
    checkpoint.integrity_record(1, hosts)
  crc_s = (time.perf_counter() - t0) / args.saves

  abstract = checkpoint.abstract_like(state)
  reader = ocp.CheckpointManager(plain_dir)
  step = reader.latest_step()
  times = []
  for _ in range(args.saves):
    t0 = time.perf_counter()
    jax.block_until_ready(reader.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))).state)
    times.append(time.perf_counter() - t0)
  plain_restore = _median(times)
  times = []
  for _ in range(args.saves):
    t0 = time.perf_counter()
    jax.block_until_ready(checkpoint.CheckpointManager(ours_dir).restore_latest(abstract, log=print)[1])
    times.append(time.perf_counter() - t0)
  ours_restore = _median(times)

  print(
    f"save() blocks the training thread: plain orbax {plain_block:.3f} s, ours {ours_block:.3f} s "
    f"(+{ours_block - plain_block:.3f} s per save)"
  )
  print(f"  of which the finiteness check {finite_s:.3f} s (the host copy is a view on CPU)")
  print(
    f"save until on disk: plain orbax {plain_total:.2f} s, ours {ours_total:.2f} s "
    f"({ours_total / plain_total:.2f}x); the CRC-32s alone {crc_s:.3f} s, in orbax's commit thread"
  )
  print(f"verified restore: {ours_restore:.2f} s vs plain {plain_restore:.2f} s ({ours_restore / plain_restore:.2f}x)")
  if not args.dir:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  main()
