"""The run's policies and its start, each without a training run: when to log, save and evaluate, the
non-finite window, the save timer, the stop message, and the one resume order."""

import math
import signal
import types

import ml_collections
import numpy as np
import pytest

from suprank_jax import steps
from suprank_jax.training import policies, train


def _run(total_steps=10, checkpoint_every=0, eval_every=0, epochs=None):
  """A stand-in for ``preflight.Prepared``: its periodic rules only."""
  plan = epochs or steps.EpochPlan(5)
  return types.SimpleNamespace(
    total_steps=total_steps,
    evaluators={"test": None},
    checkpoint_due=lambda done: steps.is_due(done, checkpoint_every, 0, plan),
    evaluation_due=lambda done: steps.is_due(done, eval_every, 0, plan),
  )


class _Timer:
  def __init__(self, due):
    self.calls, self._due = 0, due

  def due(self):
    self.calls += 1
    return self._due


def test_logs_every_n_steps_and_at_the_end():
  assert [d for d in range(1, 12) if policies.log_due(d, 11, 4)] == [4, 8, 11]


def test_saves_at_the_end_at_each_period_and_at_a_log_step_once_the_timer_is_due():
  run = _run(total_steps=10, checkpoint_every=4)
  never = _Timer(False)
  assert [d for d in range(1, 11) if policies.save_due(d, 10, run, log_now=False, timer=never)] == [4, 8, 10]
  assert never.calls == 0  # the timer is read at log steps only
  assert policies.save_due(3, 10, run, log_now=True, timer=_Timer(True))
  assert not policies.save_due(3, 10, run, log_now=False, timer=_Timer(True))


def test_periodic_evaluations_leave_out_the_start_and_the_end():
  run = _run(total_steps=10, eval_every=5)
  assert [d for d in range(0, 11) if policies.evaluation_due(d, 10, run)] == [5]


def test_the_metric_window_names_the_first_non_finite_step():
  window = policies.MetricWindow(start=7)
  for loss, grads in ((1.0, 0.5), (2.0, 0.5), (math.inf, 0.5), (math.nan, math.nan)):
    window.add({"loss": np.float32(loss), "l2_grads": np.float32(grads)})
  with pytest.raises(FloatingPointError, match="step 9: inf"):
    window.check(lambda step, m: f"step {step}: {float(m['loss'])}")
  window.restart(11)
  window.add({"loss": np.float32(1.0), "l2_grads": np.float32(math.nan)})  # NaN gradient, finite loss
  assert policies.first_nonfinite(window.pending) == 0
  with pytest.raises(FloatingPointError, match="step 11"):
    window.check(lambda step, m: f"step {step}")
  window.restart(12)
  window.add({"loss": np.float32(1.0), "l2_grads": np.float32(0.1)})
  assert [float(m["loss"]) for m in window.check(str)] == [1.0]


def test_the_non_finite_message_blames_the_terms_and_says_what_was_saved():
  metrics = {"loss": math.nan, "loss/sup_ap": math.nan, "loss/calibration": 0.3}
  first = policies.nonfinite_message(0, metrics, run_start=0, restored=False, last_saved=None, directory="/ck")
  assert "non-finite loss at step 0: loss/sup_ap=nan" in first and "(finite: loss/calibration)" in first
  assert "the learning rate is not the cause" in first and "No checkpoint was saved" in first
  later = policies.nonfinite_message(
    12,
    {"loss": 1.0, "loss/a": 1.0},
    run_start=0,
    restored=True,
    last_saved=10,
    directory="/ck",
    gradient_norms={"a": math.inf},
  )
  assert "non-finite gradient at step 12" in later and "the gradient of loss/a is non-finite" in later
  assert "lower config.optim.learning_rate" in later and "hold step 10" in later


def test_the_save_timer_is_due_after_its_minutes_and_off_at_zero(monkeypatch):
  clock = [100.0]
  monkeypatch.setattr(policies.time, "monotonic", lambda: clock[0])
  timer = policies.SaveTimer(minutes=1.0)
  clock[0] += 59.0
  assert not timer.due()
  clock[0] += 1.0
  assert timer.due()
  timer.saved()
  assert not timer.due()
  assert not policies.SaveTimer(0.0).due()


def test_the_stop_message_says_what_the_checkpoints_hold():
  assert "hold step 4; run the same command to resume" in str(policies.RunInterrupted(signal.SIGINT, 4, 4, "/ck"))
  assert "nothing was trained yet" in str(policies.RunInterrupted(signal.SIGTERM, 0, None, "/ck"))
  stopped = policies.RunInterrupted(signal.SIGTERM, 6, 4, "/ck")
  assert "hold step 4" in str(stopped) and stopped.exit_code == 128 + signal.SIGTERM


class _Checkpoints:
  """A checkpoint manager holding ``held`` (a ``(step, state, meta)`` or None)."""

  created = []

  def __init__(self, held=None, directory="/ck", create=True):
    del create
    self.held, self.directory = held, directory
    _Checkpoints.created.append(self)

  def restore_latest(self, abstract, *, log, move_damaged=True):
    del abstract, log, move_damaged
    return self.held


def _config(resume="", pretrained_path=""):
  c = ml_collections.ConfigDict({"resume": resume, "model": {"pretrained_path": pretrained_path}})
  return c


@pytest.fixture
def fake_checkpoints(monkeypatch):
  held = {}
  monkeypatch.setattr(
    train.checkpoint, "CheckpointManager", lambda directory, create=True: _Checkpoints(held.get(directory), directory)
  )
  return held


def _fresh(step=0):
  return types.SimpleNamespace(step=np.int32(step), name="fresh")


def test_a_run_resumes_its_own_checkpoint_first(fake_checkpoints):
  fake_checkpoints["/other"] = (3, "other", {})
  own = _Checkpoints((8, "own", {"initial": {"test": {"R@1": 0.5}}}))
  lines = []
  start = train.start_run(
    _config(resume="/other", pretrained_path="/w.npz"),
    own,
    _fresh(),
    None,
    pretrained=lambda s: pytest.fail("no pretrained weights on a resume"),
    log=lines.append,
  )
  assert (start.state, start.step, start.restored_from, start.last_saved) == ("own", 8, own, 8)
  assert start.initial == {"test": {"R@1": 0.5}} and lines == ["resumed from step 8"]


def test_then_the_resume_folder_then_a_fresh_start_with_the_pretrained_backbone(fake_checkpoints):
  fake_checkpoints["/other"] = (3, "other", {"initial": "not this run's"})
  start = train.start_run(_config(resume="/other"), _Checkpoints(), _fresh(), None, pretrained=None, log=lambda _: None)
  assert (start.state, start.step, start.last_saved, start.initial) == ("other", 3, None, None)
  assert start.restored_from.directory == "/other"
  with pytest.raises(ValueError, match="config.resume='/empty' holds no checkpoint"):
    train.start_run(_config(resume="/empty"), _Checkpoints(), _fresh(), None, pretrained=None, log=lambda _: None)
  loaded = types.SimpleNamespace(step=np.int32(0), name="pretrained")
  start = train.start_run(
    _config(pretrained_path="/w.npz"), _Checkpoints(), _fresh(), None, pretrained=lambda s: loaded, log=lambda _: None
  )
  assert start.state is loaded and start.restored_from is None and start.step == 0
  start = train.start_run(_config(), _Checkpoints(), _fresh(), None, pretrained=None, log=lambda _: None)
  assert start.state.name == "fresh" and start.last_saved is None
