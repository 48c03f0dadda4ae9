"""Fault injection on whole runs: a run never reports a wrong result and never loses work.

Each test injects one fault into a run of the tiny digits config (damaged bytes, damaged or foreign-config
checkpoints, a NaN at a save step, a signal mid-run, a failing checkpoint write, two runs on one workdir,
missing files) and checks the promised behaviour, and that what was written before the fault is intact.
Command-line runs are subprocesses (signals, exit codes, a process that must not hang).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from suprank_jax.training import checkpoint, resume_rules, train, workdir_lock
from tests import commands
from tests.test_checkpoint import damage_bytes
from tests.test_sources import write_jpeg
from tests.test_train import _tiny_config

pytestmark = pytest.mark.usefixtures("fast_compile")

REPO = commands.REPO
# The command-line twin of _config(): the same run, so that a command can resume an in-process run.
TINY_FLAGS = (
  "--config",
  "suprank_jax/configs/digits.py",
  "--config.model.width=8",
  "--config.model.hidden_dim=32",
  "--config.model.embed_dim=16",
  "--config.input.global_batch_size=40",
  "--config.input.samples_per_class=4",
  "--config.tensorboard=False",
  "--config.log_every_steps=2",
  "--config.checkpoint_every_steps=3",
  "--config.evals.test.metrics.multi_level_metrics=()",
)


def _config(total_steps):
  config = _tiny_config(total_steps)
  config.evals.test.metrics.multi_level_metrics = ()
  return config


def _quiet(*_):
  pass


def _command(workdir, *flags):
  return commands.module_command("train", *TINY_FLAGS, "--workdir", workdir, *flags)


def _cli(workdir, *flags, timeout=240, **kwargs):
  return commands.run_command("train", *TINY_FLAGS, "--workdir", workdir, *flags, timeout=timeout, **kwargs)


def _start(workdir, *flags):
  """A long run (100000 steps, a checkpoint every 1000) whose stdout is read line by line."""
  return subprocess.Popen(
    _command(
      workdir,
      "--config.total_steps=100000",
      "--config.checkpoint_every_steps=1000",
      "--config.log_every_steps=5",
      *flags,
    ),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    cwd=REPO,
    env=commands.command_env(),
  )


def _wait_for_line(proc, prefix):
  for line in proc.stdout:
    if line.startswith(prefix):
      return line
  raise AssertionError(f"the run ended before printing {prefix!r}: {proc.stderr.read()[-2000:]}")


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _steps(workdir, split="train"):
  return [r["step"] for r in _records(workdir) if r["split"] == split]


def _snapshot(workdir):
  """Every file under the workdir (but the lock) with its bytes."""
  out = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(root, name)
      if name != ".lock":
        with open(path, "rb") as f:
          out[os.path.relpath(path, workdir)] = f.read()
  return out


def _checkpoint_files(workdir, step):
  return {k: v for k, v in _snapshot(workdir).items() if k.startswith(os.path.join("checkpoints", str(step), ""))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished 6-step run: checkpoints 3 and 6, logs at steps 2, 4, 6, evaluations at 0 and 6."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  train.train_and_evaluate(_config(6), str(workdir), log=_quiet)
  return workdir


@pytest.fixture
def run(trained, tmp_path):
  """A copy of the trained run to inject faults into."""
  return shutil.copytree(trained, tmp_path / "run")


# ----------------------------------------------------------------------------------------------
# Checkpoints are verified


def test_damaged_bytes_in_the_latest_checkpoint_are_detected_and_moved_aside(run):
  step3 = _checkpoint_files(run, 3)
  damage_bytes(str(run / "checkpoints" / "6"), every_file=True)
  config = _config(9)
  config.keep_checkpoints = 3  # a resume may change it
  messages = []
  train.train_and_evaluate(config, str(run), log=messages.append)
  assert any("checkpoint step 6" in m and "damaged" in m for m in messages), messages
  assert any(m.startswith("resumed from step 3") for m in messages)
  assert os.path.isdir(run / "checkpoints" / "damaged" / "6")  # kept for inspection
  assert checkpoint.CheckpointManager(str(run / "checkpoints")).all_steps() == [3, 6, 9]
  assert _checkpoint_files(run, 3) == step3  # the good step it resumed from is untouched
  assert _steps(run) == [2, 4, 6, 8, 9] and _steps(run, "test") == [0, 9]
  # The damaged step is out of the way: the next run resumes from the final step without a warning.
  messages = []
  train.train_and_evaluate(config, str(run), log=messages.append)
  assert messages[0] == "resumed from step 9" and not any("warning" in m for m in messages)


def test_no_readable_checkpoint_stops_the_run_and_changes_nothing(run):
  for step in (3, 6):
    damage_bytes(str(run / "checkpoints" / str(step)), seed=step, every_file=True)
  before = _snapshot(run)
  with pytest.raises(checkpoint.NoUsableCheckpointError, match=r"step folders \[3, 6\].*start afresh on purpose"):
    train.train_and_evaluate(_config(9), str(run), log=_quiet)
  assert _snapshot(run) == before


def test_a_read_error_is_named_in_one_line_per_step(run, monkeypatch):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  def failing_restore(self, step, *args, **kwargs):
    raise Exception(
      f"Encountered error while reading array index of step {step}. See full TensorStore "
      "details: TensorStore({\n  'base': {\n    'driver': 'zarr',\n  }\n})"
    )

  monkeypatch.setattr(ocp.CheckpointManager, "restore", failing_restore)
  before = _snapshot(run)
  with pytest.raises(checkpoint.NoUsableCheckpointError) as info:
    train.train_and_evaluate(_config(9), str(run), log=_quiet)
  message = str(info.value)
  assert re.search(
    r"step folders \[3, 6\] and none of them restores: .*step 6: unreadable: Exception: "
    r"Encountered error while reading array index of step 6\. See full TensorStore details: "
    r"TensorStore\(\{.*start afresh on purpose",
    message,
    re.S,
  )
  assert "'driver'" not in message
  assert _snapshot(run) == before


def test_a_resume_from_another_runs_folder_verifies_it_and_changes_nothing_there(run, tmp_path):
  damage_bytes(str(run / "checkpoints" / "6"), every_file=True)
  before = _snapshot(run)
  config = _config(5)
  config.resume = str(run / "checkpoints")
  messages = []
  train.train_and_evaluate(config, str(tmp_path / "finetune"), log=messages.append)
  assert any("checkpoint step 6" in m and "damaged" in m for m in messages)
  assert any(m.startswith("resumed from step 3 of config.resume=") for m in messages)
  assert _snapshot(run) == before


def test_a_changed_config_stops_naming_the_keys_unless_the_user_allows_it(run):
  before = _snapshot(run)
  config = _config(9)
  config.model.embed_dim = 32
  config.optim.learning_rate = 0.01
  with pytest.raises(
    resume_rules.ConfigChangedError,
    match=r"model\.embed_dim: 16 -> 32; optim\.learning_rate: 0\.001 -> 0\.01.*--allow_config_change",
  ):
    train.train_and_evaluate(config, str(run), log=_quiet)
  assert _snapshot(run) == before
  # Allowed explicitly: the checkpoints cannot take another embedding size, which is named.
  with pytest.raises(checkpoint.IncompatibleCheckpointError, match=r"params/.*\[16\] in the checkpoint.*\[32\] here"):
    train.train_and_evaluate(config, str(run), log=_quiet, allow_config_change=True)
  assert _snapshot(run) == before


# ----------------------------------------------------------------------------------------------
# A non-finite state never replaces good checkpoints


def test_a_nan_at_a_save_step_is_never_saved_and_the_last_good_step_is_named(run):
  before = {step: _checkpoint_files(run, step) for step in (3, 6)}
  config = _config(12)
  config.log_every_steps = 20  # the losses are checked at the save steps too
  config.optim.learning_rate = 1e30  # the parameters blow up after step 6
  with pytest.raises(
    FloatingPointError,
    match=r"non-finite loss at step 7: loss/sup_ap=nan.*hold step 6, the last "
    r"good state",
  ):
    train.train_and_evaluate(config, str(run), log=_quiet, allow_config_change=True)
  assert checkpoint.CheckpointManager(str(run / "checkpoints")).all_steps() == [3, 6]
  assert {step: _checkpoint_files(run, step) for step in (3, 6)} == before


def test_a_zero_temperature_is_blamed_on_its_loss_term_in_one_line(tmp_path):
  result = _cli(tmp_path / "run", "--config.total_steps=4", "--config.losses.sup_ap.tau=0")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  message = result.stderr.splitlines()[0]
  assert message.startswith("error: non-finite gradient at step 0")
  assert "the gradient of loss/sup_ap is non-finite (finite: loss/calibration)" in message
  assert "the learning rate is not the cause" in message and "config.losses.sup_ap" in message


@pytest.mark.parametrize(
  "key,value,expected",
  [
    ("log_every_steps", 0, "config.log_every_steps=0"),
    ("checkpoint_every_steps", 0, "config.checkpoint_every_steps=0 and config.checkpoint_every_epochs=0"),
    ("keep_checkpoints", 0, "config.keep_checkpoints=0"),
    ("checkpoint_every_minutes", -1.0, "config.checkpoint_every_minutes=-1.0"),
    ("evals.test.batch_size", 0, "config.evals.test.batch_size=0"),
    ("optim.learning_rate", -1.0, "config.optim.learning_rate=-1.0"),
    ("input.global_batch_size", -40, "config.input.global_batch_size=-40"),
    ("input.crop_scale", (0.9, 0.1), r"config.input.crop_scale=\(0.9, 0.1\)"),
    (
      "evals.test.metrics.recall_at",
      (1.5, 2),
      r"config.evals.test.metrics.recall_at must hold positive integers, "
      r"got \(1.5, 2\)",
    ),
  ],
)
def test_impossible_values_are_rejected_before_any_work(tmp_path, key, value, expected):
  config = _config(4)
  config.input.random_resized_crop = key == "input.crop_scale"
  config.input.image_size = 8 if key == "input.crop_scale" else 0
  *parents, leaf = key.split(".")
  node = config
  for name in parents:
    node = node[name]
  node[leaf] = value
  with pytest.raises(ValueError, match=expected):
    train.train_and_evaluate(config, str(tmp_path), log=_quiet)
  assert sorted(os.listdir(tmp_path)) == [".lock"]


def test_time_based_checkpoints_save_at_the_log_steps_once_due(tmp_path):
  config = _config(5)
  config.checkpoint_every_steps = 0
  config.checkpoint_every_minutes = 1e-9  # due at every log step
  config.keep_checkpoints = 5
  train.train_and_evaluate(config, str(tmp_path), log=_quiet)
  assert checkpoint.CheckpointManager(str(tmp_path / "checkpoints")).all_steps() == [2, 4, 5]


# ----------------------------------------------------------------------------------------------
# Ending cleanly


def test_sigterm_saves_at_the_next_step_and_ends_the_run_and_a_second_run_is_refused(tmp_path):
  workdir = tmp_path / "run"
  proc = _start(workdir)
  try:
    _wait_for_line(proc, "step 10/")
    # One run per workdir: a second run on it stops at once, naming the first.
    second = _cli(workdir, "--config.total_steps=50")
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"in use by another run: pid {proc.pid} on host" in second.stderr.splitlines()[0]
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  finally:
    proc.kill()
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  match = re.search(
    r"stopped by SIGTERM at step (\d+): the checkpoints in \S+ hold step (\d+); run the same "
    r"command to resume",
    err,
  )
  assert match and match[1] == match[2], err[-2000:]
  step = int(match[1])
  assert step >= 10 and checkpoint.CheckpointManager(str(workdir / "checkpoints")).all_steps() == [step]
  assert checkpoint.CheckpointManager(str(workdir / "checkpoints")).restore_variables()[0] == step
  # Every log line up to the signal is there, once (the second run wrote nothing).
  assert _steps(workdir) == list(range(5, step + 1, 5)) and _steps(workdir, "test") == [0]


def test_sigint_saves_the_step_it_interrupts_and_ends_the_run(tmp_path):
  # Ctrl-C while step 4 is logged (in this process: the signal arrives before step 5 starts).
  config = _config(100)
  config.checkpoint_every_steps = 50

  def log(message):
    if message.startswith("step 4/"):
      os.kill(os.getpid(), signal.SIGINT)

  handler = signal.getsignal(signal.SIGINT)
  with pytest.raises(
    train.RunInterrupted, match=r"stopped by SIGINT at step 4: the checkpoints in \S+ hold step 4"
  ) as stopped:
    train.train_and_evaluate(config, str(tmp_path), log=log)
  assert stopped.value.exit_code == 128 + signal.SIGINT
  assert checkpoint.CheckpointManager(str(tmp_path / "checkpoints")).all_steps() == [4]
  assert _steps(tmp_path) == [2, 4]
  assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back


def test_a_second_signal_ends_the_run_at_once_without_saving(tmp_path):
  workdir = tmp_path / "run"
  proc = _start(workdir)
  try:
    _wait_for_line(proc, "step 10/")
    # Both signals arrive together: the first asks for a save at the next step, the second ends the run.
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
  finally:
    proc.kill()
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert "second signal (SIGTERM): exiting at once, without saving" in err
  assert checkpoint.CheckpointManager(str(workdir / "checkpoints")).all_steps() == []
  assert _steps(workdir)[:2] == [5, 10]


# Runs a command without the capabilities that let root write into read-only folders (a launcher, not a
# preexec_fn: the test process is multithreaded, and Python code between fork and exec may deadlock).
_UNPRIVILEGED = (
  "import ctypes, os, sys\n"
  "libc = ctypes.CDLL(None, use_errno=True)\n"
  "for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER\n"
  "  if os.geteuid() == 0 and libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP\n"
  "    sys.exit('cannot drop capability %d' % cap)\n"
  "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def _unprivileged_cli(workdir, *flags):
  return subprocess.run(
    [sys.executable, "-c", _UNPRIVILEGED, *_command(workdir, *flags)],
    capture_output=True,
    text=True,
    cwd=REPO,
    env=commands.command_env(),
    timeout=180,
  )


def _can_drop_root_privileges():
  return (
    subprocess.run([sys.executable, "-c", _UNPRIVILEGED, sys.executable, "-c", "pass"], check=False).returncode == 0
  )


@pytest.mark.skipif(not _can_drop_root_privileges(), reason="root cannot drop CAP_DAC_OVERRIDE here")
def test_a_failed_checkpoint_write_ends_the_process_with_a_message(run):
  before = {step: _checkpoint_files(run, step) for step in (3, 6)}
  # A read-only leftover where orbax writes step 9: the write of step 9 fails mid-run.
  leftover = run / "checkpoints" / "9.orbax-checkpoint-tmp"
  os.makedirs(leftover / "state")
  (leftover / "state" / "data").write_text("x")
  os.chmod(leftover, 0o555)
  start = time.monotonic()
  try:
    result = _unprivileged_cli(run, "--config.total_steps=12")
  finally:
    os.chmod(leftover, 0o755)
  # The process ends (orbax's writer threads would wait forever), with one line of ours last (orbax's
  # thread logs its own traceback before).
  assert result.returncode == 1 and time.monotonic() - start < 120, result.stderr[-2000:]
  assert result.stderr.splitlines()[-2].startswith("error: writing checkpoint step 9 to ")
  assert "the steps written before are kept: [3, 6]" in result.stderr
  assert {step: _checkpoint_files(run, step) for step in (3, 6)} == before
  # A read-only checkpoint folder stops the run before any work.
  shutil.rmtree(leftover)
  records = _records(run)
  os.chmod(run / "checkpoints", 0o555)
  try:
    result = _unprivileged_cli(run, "--config.total_steps=12")
  finally:
    os.chmod(run / "checkpoints", 0o755)
  assert result.returncode == 1 and "is not writable" in result.stderr.splitlines()[0]
  assert _records(run) == records


def test_a_resumed_run_logs_each_step_once_and_keeps_the_first_evaluation(run, trained):
  # Killed after logging step 4, before the checkpoint of step 6 was written.
  shutil.rmtree(run / "checkpoints" / "6")
  with open(run / "metrics.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in _records(trained) if r["step"] <= 4)
  _, summary = train.train_and_evaluate(_config(6), str(run), log=_quiet)
  assert _steps(run) == [2, 4, 6] and _steps(run, "test") == [0, 6]
  first = next(r for r in _records(trained) if r["split"] == "test" and r["step"] == 0)
  assert summary["initial"]["test"]["mAP@R_level0"] == pytest.approx(first["mAP@R_level0"])
  assert "untrained (test)" in train.summary_table(summary)


def test_an_evaluation_stopped_after_its_checkpoint_runs_again_on_resume(tmp_path, monkeypatch):
  from suprank_jax.evaluation.retrieval_evaluator import RetrievalEvaluator  # pylint: disable=g-import-not-at-top

  config = _config(6)
  config.eval_every_steps = 3  # evaluations at 0, 3 and 6; checkpoints at 3 and 6
  workdir = str(tmp_path / "run")
  real_run, calls = RetrievalEvaluator.run, []

  def killed_at_step_3(self, variables):
    calls.append(1)
    if len(calls) == 2:  # the run dies while evaluating step 3, its checkpoint already written
      raise KeyboardInterrupt
    return real_run(self, variables)

  monkeypatch.setattr(RetrievalEvaluator, "run", killed_at_step_3)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir, log=_quiet)
  assert _steps(workdir, "test") == [0] and os.path.isdir(os.path.join(workdir, "checkpoints", "3"))
  monkeypatch.setattr(RetrievalEvaluator, "run", real_run)
  lines = []
  train.train_and_evaluate(config, workdir, log=lines.append)
  assert "the evaluation at step 3 has no record (the run stopped during it): running it again" in lines
  assert _steps(workdir, "test") == [0, 3, 6]
  # A resume whose evaluation was recorded does not run it again.
  shutil.rmtree(os.path.join(workdir, "checkpoints", "6"))
  lines.clear()
  train.train_and_evaluate(config, workdir, log=lines.append)
  assert not any("has no record" in line for line in lines) and _steps(workdir, "test") == [0, 3, 6]


# ----------------------------------------------------------------------------------------------
# One run per workdir


def test_the_workdir_lock_names_its_holder_and_dies_with_it(tmp_path):
  with workdir_lock.WorkdirLock(str(tmp_path)):
    with pytest.raises(workdir_lock.WorkdirBusyError, match=rf"in use by another run: pid {os.getpid()} on host"):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    # Each process of a multi-process run takes its own lock.
    with workdir_lock.WorkdirLock(str(tmp_path), process_index=1):
      pass
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import time; from suprank_jax.training import workdir_lock; "
      f"lock = workdir_lock.WorkdirLock({str(tmp_path)!r}).acquire(); "
      "print('locked', flush=True); time.sleep(600)",
    ],
    stdout=subprocess.PIPE,
    text=True,
    cwd=REPO,
  )
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f"pid {holder.pid}"):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    holder.kill()  # a crash: the operating system releases the lock
    holder.wait()
    workdir_lock.WorkdirLock(str(tmp_path)).acquire().release()
  finally:
    holder.kill()
    holder.wait()
    holder.stdout.close()


# ----------------------------------------------------------------------------------------------
# Data found early


def _sop(root, train_classes=8):
  """A Stanford Online Products miniature: ``train_classes`` products x 3 images, 2 test products x 2."""
  os.makedirs(root)
  for split, rows in (
    ("train", [(c, k) for c in range(1, train_classes + 1) for k in range(3)]),
    ("test", [(c, k) for c in (101, 102) for k in range(2)]),
  ):
    with open(os.path.join(root, f"Ebay_{split}.txt"), "w") as f:
      f.write("image_id class_id super_class_id path\n")
      for n, (c, k) in enumerate(rows, start=1):
        f.write(f"{n} {c} {1 + c % 2} products/{c}_{k}.JPG\n")
        write_jpeg(os.path.join(root, "products", f"{c}_{k}.JPG"), 100 * c + k)
  return root


def _sop_config(root):
  config = _config(2)
  config.input.update(dict(dataset="sop", data_dir=root, global_batch_size=24, samples_per_class=3, image_size=8))
  return config


def test_missing_images_are_all_reported_before_training(tmp_path):
  root = _sop(str(tmp_path / "sop"))
  missing = [os.path.join(root, "products", name) for name in ("2_0.JPG", "5_2.JPG", "101_1.JPG")]
  for path in missing:
    os.remove(path)
  workdir = tmp_path / "run"
  with pytest.raises(
    FileNotFoundError, match=r"3 image files are missing \(sop/train: 2 of 24; sop/test: 1 of 4\)"
  ) as error:
    train.train_and_evaluate(_sop_config(root), str(workdir), log=_quiet)
  assert all(path in str(error.value) for path in missing)
  with open(workdir / "missing_files.txt") as f:
    assert sorted(f.read().split()) == sorted(missing)
  assert not os.path.exists(workdir / "config.yaml") and not os.path.exists(workdir / "metrics.jsonl")
  # With skip_corrupt_images the run goes on, warned about every missing file.
  config = _sop_config(root)
  config.input.skip_corrupt_images = True
  messages = []
  train.prepare(config, str(workdir), log=messages.append)
  assert any("3 image files are missing" in m and "their items are skipped" in m for m in messages)


def test_an_empty_test_index_names_the_file(tmp_path):
  root = _sop(str(tmp_path / "sop"))
  with open(os.path.join(root, "Ebay_test.txt"), "w") as f:
    f.write("image_id class_id super_class_id path\n")
  index = os.path.join(root, "Ebay_test.txt")
  with pytest.raises(ValueError, match=re.escape(f"sop/test: the split 'test' is empty: {index} lists no image")):
    train.prepare(_sop_config(root), str(tmp_path / "run"), log=_quiet)
