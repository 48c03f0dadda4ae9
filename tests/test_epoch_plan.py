"""Epochs of varying length everywhere an epoch is used (``steps.EpochPlan``): lengths and periods in
epochs, the optimizer's per-epoch schedules (against torch's schedulers stepped once per epoch), the
cross-batch memory's activation, and a training run with the original's M-per-class epoch (evaluations
and checkpoints at epoch ends, no evaluation before training, exact resume)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax import optim, steps
from suprank_jax.configs import digits
from suprank_jax.input_pipeline import datasets, samplers, sources
from suprank_jax.losses import xbm
from suprank_jax.training import resume_rules, train

pytestmark = pytest.mark.usefixtures("fast_compile")

LENGTHS = (5, 3, 7, 4, 6, 2)


def _plan(lengths=LENGTHS):
  return steps.EpochPlan(length_fn=lambda e: lengths[e], what="the test's epochs vary in length")


def _naive_epoch(step, lengths=LENGTHS):
  """``(epoch, position)`` of a step by walking the epochs."""
  for epoch, n in enumerate(lengths):
    if step < n:
      return epoch, step
    step -= n
  raise AssertionError("step after the last epoch")


def test_a_plan_starts_each_epoch_after_the_previous_ones_whatever_the_order_of_the_questions():
  total = sum(LENGTHS)
  forward, backward = _plan(), _plan()
  got_backward = {s: backward.epoch_of(s) for s in reversed(range(total))}
  for s in range(total):
    assert forward.epoch_of(s) == got_backward[s] == _naive_epoch(s)
  assert [forward.start(e) for e in range(len(LENGTHS) + 1)] == [0, 5, 8, 15, 19, 25, 27]
  uniform = steps.EpochPlan(4)
  assert not uniform.varies and [uniform.epoch_of(s) for s in range(9)] == [divmod(s, 4) for s in range(9)]
  with pytest.raises(ValueError, match="epoch 1 has 0 steps .*every epoch needs at least one"):
    _plan((3, 0, 2)).start(2)


def test_epoch_index_under_jit_is_the_epoch_of_the_step():
  plan = _plan()
  index = jax.jit(plan.epoch_index_fn(len(LENGTHS)))
  for s in range(sum(LENGTHS) + 3):
    assert int(index(jnp.int32(s))) == (_naive_epoch(s)[0] if s < sum(LENGTHS) else len(LENGTHS))
  assert int(steps.EpochPlan(4).epoch_index_fn(9)(jnp.int32(13))) == 3


def test_lengths_in_epochs_are_whole_epochs_counted_from_an_epoch_start():
  plan = _plan()
  assert steps.to_steps(0, 3, plan, "config.total_steps", "config.num_epochs") == 15
  assert steps.to_steps((), (1, 3), plan, "d_steps", "d_epochs", after=5) == (3, 14)  # epochs 2 and 4 start
  assert steps.to_steps(7, 0, plan, "w_steps", "w_epochs", after=5) == 7
  assert steps.to_steps(0, 0.5, 6, "x_steps", "x_epochs", after=5) == 3  # a fixed length: fractions, no origin
  with pytest.raises(ValueError, match=r"w_epochs=1\.5 is not a whole number of epochs, and the test's epochs vary"):
    steps.to_steps(0, 1.5, plan, "w_steps", "w_epochs")
  with pytest.raises(
    ValueError,
    match=r"d_epochs\[0\]=1 counts epochs from step 6: step 6 is inside epoch 1 "
    r"\(steps 5 to 7",
  ):
    steps.to_steps((), (1,), plan, "d_steps", "d_epochs", after=6)


def test_periods_in_epochs_fall_at_the_ends_of_every_kth_epoch():
  plan = _plan()
  assert steps.to_period(0, 2, plan, "e_steps", "e_epochs") == (0, 2)
  assert steps.to_period(4, 0, plan, "e_steps", "e_epochs") == (4, 0)
  assert steps.to_period(0, 2, 6, "e_steps", "e_epochs") == (12, 0)
  with pytest.raises(ValueError, match="e_steps=4 and e_epochs=2 are both set"):
    steps.to_period(4, 2, plan, "e_steps", "e_epochs")
  with pytest.raises(ValueError, match=r"e_epochs=0\.5 is not a whole number"):
    steps.to_period(0, 0.5, plan, "e_steps", "e_epochs")
  due = [done for done in range(1, sum(LENGTHS) + 1) if steps.is_due(done, 0, 2, plan)]
  assert due == [8, 19, 27]  # the ends of epochs 2, 4 and 6
  assert [d for d in range(1, 13) if steps.is_due(d, 4, 0, plan)] == [4, 8, 12]
  assert not any(steps.is_due(d, 0, 0, plan) for d in range(30))


def _torch_rates(torch, make_scheduler, *, lengths, freeze_epochs):
  """The reference trainer: the rate of every step of each epoch, the scheduler stepped after each epoch
  once the frozen warm-up epochs are over."""
  param = torch.zeros(1, requires_grad=True)
  opt = torch.optim.SGD([param], lr=1.0)
  scheduler = make_scheduler(opt)
  rates = []
  for epoch, n in enumerate(lengths, start=1):
    rates += [scheduler.get_last_lr()[0]] * n
    param.grad = torch.zeros(1)
    opt.step()
    if epoch > freeze_epochs:
      scheduler.step()
  return rates


@pytest.mark.parametrize("schedule,freeze_epochs", [("cosine", 0), ("cosine", 2), ("steps", 0), ("steps", 2)])
def test_per_epoch_schedules_step_once_per_epoch_of_varying_length_like_torch(schedule, freeze_epochs):
  torch = pytest.importorskip("torch", reason="torch is not installed: the PyTorch comparison needs it")
  lr_sched = torch.optim.lr_scheduler
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule = schedule
  cfg.schedule_per_epoch = True
  if freeze_epochs:
    cfg.freeze_epochs = freeze_epochs
    cfg.freeze_regex = ""  # only the schedules wait
  if schedule == "cosine":
    cfg.min_learning_rate = 0.01
    make = lambda o: lr_sched.CosineAnnealingLR(o, T_max=len(LENGTHS), eta_min=0.01)  # T_max = max_iter
  else:
    cfg.decay_epochs = (1, 3)
    cfg.decay_factor = 0.3
    make = lambda o: lr_sched.MultiStepLR(o, milestones=[1, 3], gamma=0.3)
  expected = _torch_rates(torch, make, lengths=LENGTHS, freeze_epochs=freeze_epochs)
  _, schedules = optim.make_optimizer(cfg, total_steps=sum(LENGTHS), steps_per_epoch=_plan())
  rate = jax.jit(schedules["base"])
  np.testing.assert_allclose([float(rate(jnp.int32(s))) for s in range(sum(LENGTHS))], expected, rtol=1e-6)


def test_a_warm_up_ramp_in_epochs_counts_epochs_after_the_freeze():
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule_per_epoch = True
  cfg.warmup_epochs = 2
  cfg.freeze_epochs = 1
  cfg.freeze_regex = ""
  _, schedules = optim.make_optimizer(cfg, total_steps=sum(LENGTHS), steps_per_epoch=_plan())
  # Epochs 0 and 1 (frozen, then the first ramp epoch) at 0, epoch 2 at 1/2, then the full rate.
  expected = [0.0] * 8 + [0.5] * 7 + [1.0] * 12
  np.testing.assert_allclose([float(schedules["base"](s)) for s in range(sum(LENGTHS))], expected)


def test_a_fixed_length_plan_gives_the_schedules_of_steps_per_epoch_bit_for_bit():
  cfg = optim.default_config()
  cfg.schedule = "cosine"
  cfg.schedule_per_epoch = True
  cfg.warmup_steps = 3
  cfg.freeze_epochs = 1
  cfg.freeze_regex = ""
  _, by_int = optim.make_optimizer(cfg, total_steps=23, steps_per_epoch=4)
  _, by_plan = optim.make_optimizer(cfg, total_steps=23, steps_per_epoch=steps.EpochPlan(4))
  for s in range(25):
    assert float(by_int["base"](s)) == float(by_plan["base"](s))


@pytest.mark.parametrize(
  "keys,total,match",
  [
    (dict(), 20, r"schedule_per_epoch=True counts whole epochs, but the run \(total_steps=20: config\.num_epochs"),
    (
      dict(freeze_steps=6),
      27,
      r"but the freeze \(config\.optim\.freeze_steps / freeze_epochs\) ends: step 6 is "
      r"inside epoch 1",
    ),
    (dict(warmup_steps=4), 27, r"but the warm-up ramp \(config\.optim\.warmup_steps / config\.optim\.warmup_epochs\)"),
    (dict(schedule="steps", decay_epochs=(1.5,)), 27, r"config\.optim\.decay_epochs\[0\]=1\.5 is not a whole number"),
  ],
)
def test_per_epoch_schedules_over_varying_epochs_need_whole_epochs_naming_the_key(keys, total, match):
  cfg = optim.default_config()
  cfg.schedule_per_epoch = True
  cfg.schedule = "cosine"
  for key, value in keys.items():
    cfg[key] = value
  if cfg.freeze_steps:
    cfg.freeze_regex = ""
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(cfg, total_steps=total, steps_per_epoch=_plan())


def test_per_step_schedules_take_any_run_length_over_varying_epochs():
  cfg = optim.default_config()
  cfg.schedule = "steps"
  cfg.decay_epochs = (2,)
  _, schedules = optim.make_optimizer(cfg, total_steps=20, steps_per_epoch=_plan())
  assert float(schedules["base"](7)) == pytest.approx(1e-3) and float(schedules["base"](8)) == pytest.approx(1e-4)


def test_the_memory_turns_on_at_the_first_step_of_its_epoch():
  plan = _plan()
  on = [s for s in range(sum(LENGTHS)) if xbm.xbm_active(s, steps_per_epoch=plan, activate=3)]
  assert on[0] == 8 and on == list(range(8, sum(LENGTHS)))
  assert bool(jax.jit(lambda s: xbm.xbm_active(s, steps_per_epoch=plan, activate=3))(jnp.int32(7))) is False
  assert [xbm.xbm_active(s, steps_per_epoch=steps.EpochPlan(10), activate=5) for s in (39, 40)] == [False, True]


# --- a training run ---------------------------------------------------------------------------------

_UNEVEN = "uneven_digits_for_epoch_tests"


def _uneven_digits(data_dir="", split="train"):
  """The digits with classes of 4, 11, ..., 67 training images: the original's epochs then vary."""
  source = datasets.DATASETS["digits"](data_dir, split)
  if split != "train":
    return source
  keep = np.sort(np.concatenate([np.flatnonzero(source.labels[:, 0] == d)[: 4 + 7 * d] for d in range(10)]))
  return sources.Source(
    name="uneven_digits/train", labels=source.labels[keep], level_names=source.level_names, images=source.images[keep]
  )


@pytest.fixture
def uneven(monkeypatch):
  monkeypatch.setitem(datasets.DATASETS, _UNEVEN, _uneven_digits)


def _config(**keys):
  config = digits.get_config()
  config.input.dataset = _UNEVEN
  config.input.sampler = "m_per_class_original"
  config.input.global_batch_size = 16
  config.input.samples_per_class = 4
  config.model.width = 8
  config.model.hidden_dim = 32
  config.model.embed_dim = 16
  config.tensorboard = False
  config.log_every_steps = 1
  config.evals.test.metrics.multi_level_metrics = ()
  for key, value in keys.items():
    node, name = config, key
    while "." in name:
      head, name = name.split(".", 1)
      node = node[head]
    node[name] = value
  return config


def _epoch_ends(config, num_epochs):
  """The steps that end each epoch, from the sampler's own batches (each epoch computed alone)."""
  labels = _uneven_digits().labels
  lengths = [
    len(samplers.m_per_class_original_batches(labels, batch_size=16, samples_per_class=4, seed=config.seed, epoch=e))
    for e in range(num_epochs)
  ]
  assert len(set(lengths)) > 1, lengths
  return [int(n) for n in np.cumsum(lengths)]


def test_a_run_of_varying_epochs_evaluates_and_saves_at_epoch_ends_without_an_evaluation_before(tmp_path, uneven):
  config = _config(
    total_steps=0,
    num_epochs=3,
    eval_every_epochs=1,
    checkpoint_every_steps=0,
    checkpoint_every_epochs=2,
    eval_at_start=False,
    **{"optim.schedule": "cosine", "optim.schedule_per_epoch": True},
  )
  ends = _epoch_ends(config, 3)
  lines = []
  state, summary = train.train_and_evaluate(config, str(tmp_path), log=lines.append)
  assert int(state.step) == ends[-1]
  assert summary["initial"] is None and summary["final"]["test"]["num_queries"] == 896
  table = train.summary_table(summary)
  assert "trained (test)" in table and "untrained" not in table
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in records if r["split"] == "test"] == ends  # the ends of epochs 1, 2 and 3
  assert sorted(int(n) for n in os.listdir(tmp_path / "checkpoints")) == [ends[1], ends[2]]
  rates = {r["step"] - 1: r["lr/base"] for r in records if r["split"] == "train"}
  epoch = np.searchsorted(ends, np.arange(ends[-1]), side="right")
  np.testing.assert_allclose(
    [rates[s] for s in range(ends[-1])], 1e-3 * 0.5 * (1 + np.cos(np.pi * epoch / 3)), rtol=1e-6
  )
  assert any(f"3 epochs of {min(np.diff([0, *ends]))} to {max(np.diff([0, *ends]))} steps" in m for m in lines)


def test_a_resumed_run_of_varying_epochs_sees_the_batches_of_an_uninterrupted_one(tmp_path, uneven):
  ends = _epoch_ends(_config(), 2)
  total = ends[0] + 3  # across the first epoch end
  # A constant rate makes the shorter run the start of the longer one (a run killed after its last save).
  run = lambda steps, folder: train.train_and_evaluate(
    _config(total_steps=steps, eval_at_start=False, **{"optim.schedule": "constant"}),
    str(tmp_path / folder),
    log=lambda *_: None,
  )
  straight, _ = run(total, "straight")
  run(ends[0] - 2, "resumed")
  resumed, summary = run(total, "resumed")
  assert summary["start_step"] == ends[0] - 2
  jax.tree.map(
    lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), straight.params, resumed.params
  )


def test_eval_at_start_is_a_bool_a_resume_may_change():
  resume_rules.check_resume_config(
    {"eval_at_start": True}, {"eval_at_start": False}, where="config.yaml", log=lambda *_: None
  )
  config = _config()
  with config.ignore_type():
    config.eval_at_start = 1
  with pytest.raises(ValueError, match=r"config\.eval_at_start=1 must be True .* or False"):
    train.prepare(config, "/nonexistent/never_written", log=lambda *_: None)
