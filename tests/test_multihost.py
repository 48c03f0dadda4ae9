"""Multi-process data parallelism on CPU: 2 processes x 2 devices train and resume exactly like 1 x 2, and
stop together at one saved step when one of them gets a SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multihost_worker.py")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run(num_processes, workdir, total_steps, out_dir):
  port = _free_port()
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        WORKER,
        str(i),
        str(num_processes),
        str(port),
        workdir,
        str(total_steps),
        os.path.join(out_dir, f"out{i}.npz"),
      ],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=env,
    )
    for i in range(num_processes)
  ]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  return [dict(np.load(os.path.join(out_dir, f"out{i}.npz"))) for i in range(num_processes)], logs


@pytest.mark.slow
def test_two_processes_train_and_resume_like_one(tmp_path):
  (single,), _ = _run(1, str(tmp_path / "single"), 6, str(tmp_path))
  assert int(single["devices"]) == 2
  # Two processes: killed after the step-3 checkpoint (a 3-step run), then resumed to step 6.
  _run(2, str(tmp_path / "multi"), 3, str(tmp_path))
  results, logs = _run(2, str(tmp_path / "multi"), 6, str(tmp_path))
  assert all("resumed from step 3" in log for log in logs)
  for r in results:
    assert int(r["processes"]) == 2 and int(r["devices"]) == 4 and int(r["start_step"]) == 3
    assert float(r["map_at_r"]) == pytest.approx(float(single["map_at_r"]), abs=1e-6)
    for key in (k for k in single if k.startswith("param")):
      # Same global batch and loss; only the order of the cross-device sums differs.
      np.testing.assert_allclose(r[key], single[key], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_a_sigterm_to_one_process_stops_every_process_at_one_saved_step(tmp_path):
  # A pre-emption notice may reach one host only: JAX's preemption service makes every process agree on
  # the step to save at, and each one ends with 128 + SIGTERM.
  port, workdir = _free_port(), str(tmp_path / "multi")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  procs = [
    subprocess.Popen(
      [sys.executable, WORKER, str(i), "2", str(port), workdir, "100000", str(tmp_path / f"out{i}.npz"), "1000"],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=env,
    )
    for i in range(2)
  ]
  try:
    for line in procs[0].stdout:
      if line.startswith("step 10/"):
        break
    os.kill(procs[1].pid, signal.SIGTERM)
    logs = [p.communicate(timeout=300)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  steps = []
  for p, log in zip(procs, logs):
    assert p.returncode == 128 + signal.SIGTERM, log[-3000:]
    match = re.search(r"stopped by SIGTERM at step (\d+): the checkpoints in \S+ hold step (\d+)", log)
    assert match and match[1] == match[2], log[-3000:]
    steps.append(int(match[1]))
  assert steps[0] == steps[1] >= 10
  assert sorted(n for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit()) == [str(steps[0])]
