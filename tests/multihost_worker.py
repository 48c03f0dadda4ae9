"""One process of a multi-process CPU run (driven by tests/test_multihost.py).

    python tests/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR TOTAL_STEPS OUT.npz [CHECKPOINT_EVERY]

Each process has 2 CPU devices; with NUM_PROCESSES > 1 they join one JAX cluster over gloo. Trains the
tiny digits config of tests/test_train.py (with a checkpoint every CHECKPOINT_EVERY steps when given, and a
log line every 5 steps, printed as it comes) and saves the final parameters and test mAP@R (its test set
embedded into an on-disk store, as a large set is). A run stopped
by a signal prints its message and exits with its status (128 + the signal).
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np


def main(argv):
  process_id, num_processes, port, workdir, total_steps, out = argv[1:7]
  if int(num_processes) > 1:
    jax.distributed.initialize(
      coordinator_address=f"127.0.0.1:{port}", num_processes=int(num_processes), process_id=int(process_id)
    )
  from suprank_jax.runtime import cli  # pylint: disable=g-import-not-at-top
  from suprank_jax.training import train  # pylint: disable=g-import-not-at-top
  from tests.test_train import _constant_lr_config  # pylint: disable=g-import-not-at-top

  config = _constant_lr_config(int(total_steps))
  # The evaluation embeds into an on-disk store (every process its own; the items to embed agreed on).
  config.evals.test.update(cache_min_items=0, cache_dir=workdir + "_embeddings")
  messages = []
  log = messages.append
  if len(argv) > 7:
    config.checkpoint_every_steps = int(argv[7])
    config.log_every_steps = 5
    log = lambda m: print(m, flush=True)
  try:
    state, summary = train.train_and_evaluate(config, workdir, log=log)
  except cli.Exit as e:
    print(e, flush=True)
    sys.exit(e.exit_code)
  leaves = {f"param{i}": np.asarray(jax.device_get(x)) for i, x in enumerate(jax.tree.leaves(state.params))}
  np.savez(
    out,
    map_at_r=summary["final"]["test"]["mAP@R_level0"],
    start_step=summary["start_step"],
    devices=jax.device_count(),
    processes=jax.process_count(),
    **leaves,
  )
  print("\n".join(messages))


if __name__ == "__main__":
  main(sys.argv)
