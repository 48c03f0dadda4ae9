"""End-to-end trainer tests on the embedded digits data: smoke run, exact resume, data parallelism, CLI errors."""

import functools
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from suprank_jax import losses, optim
from suprank_jax.configs import common, digits
from suprank_jax.input_pipeline import datasets, pipeline
from suprank_jax.models import build_model
from suprank_jax.runtime import parallel
from suprank_jax.training import train
from tests import commands


def _tiny_config(total_steps):
  config = digits.get_config()
  config.total_steps = total_steps
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.tensorboard = False
  config.model.width = 8
  config.model.hidden_dim = 32
  config.model.embed_dim = 16
  config.input.global_batch_size = 40
  config.input.samples_per_class = 4
  return config


def test_smoke_run_writes_outputs_and_summary(tmp_path):
  state, summary = train.train_and_evaluate(_tiny_config(4), str(tmp_path), log=lambda *_: None)
  assert int(state.step) == 4
  for key in ("initial", "final"):
    metrics = summary[key]["test"]
    assert 0.0 <= metrics["mAP@R_level0"] <= 1.0 and metrics["num_queries"] == 896
  assert os.path.exists(tmp_path / "config.yaml") and os.path.exists(tmp_path / "summary.json")
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  train_lines = [l for l in lines if l["split"] == "train"]
  assert [l["step"] for l in train_lines] == [2, 4]
  assert all(np.isfinite(l["loss"]) and "loss/sup_ap" in l and "l2_grads" in l for l in train_lines)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "4"]
  assert "trained (test)" in train.summary_table(summary)


def test_overall_accuracy_within_and_across_test_sets(tmp_path):
  config = _tiny_config(1)
  config.evals.test.metrics.multi_level_metrics = ()
  config.evals.test.metrics.hierarchy_levels = (0, 1)
  config.evals.train = common.eval_config("train")
  config.evals.train.metrics.multi_level_metrics = ()
  config.overall_accuracy_over = ("test", "train")
  _, summary = train.train_and_evaluate(config, str(tmp_path), log=lambda *_: None)
  test, train_set, overall = (summary["final"][k] for k in ("test", "train", "overall"))
  assert test["overall_R@1"] == pytest.approx((test["R@1_level0"] + test["R@1_level1"]) / 2)
  assert overall["R@1_level0"] == pytest.approx((test["R@1_level0"] + train_set["R@1_level0"]) / 2)
  assert overall["R@1_level1"] == pytest.approx(test["R@1_level1"])  # only the test set reports level 1
  config.overall_accuracy_over = ("test", "val")
  with pytest.raises(ValueError, match="overall_accuracy_over.*val"):
    train.train_and_evaluate(config, str(tmp_path / "bad"), log=lambda *_: None)


def _constant_lr_config(total_steps):
  # A constant rate makes the first 3 steps of a 3-step run those of a 6-step run: the 3-step run then
  # stands for a 6-step run killed after its step-3 checkpoint.
  config = _tiny_config(total_steps)
  config.optim.schedule = "constant"
  config.evals.test.metrics.multi_level_metrics = ()
  return config


def test_killed_run_resumes_exactly(tmp_path):
  straight, _ = train.train_and_evaluate(_constant_lr_config(6), str(tmp_path / "straight"), log=lambda *_: None)
  _, first = train.train_and_evaluate(_constant_lr_config(3), str(tmp_path / "resumed"), log=lambda *_: None)
  messages = []
  resumed, summary = train.train_and_evaluate(_constant_lr_config(6), str(tmp_path / "resumed"), log=messages.append)
  # The untrained row of the final table is the first run's initial evaluation.
  assert summary["start_step"] == 3 and summary["initial"]["test"] == pytest.approx(first["initial"]["test"])
  assert "untrained (test)" in train.summary_table(summary)
  assert any("resumed from step 3" in m for m in messages)
  jax.tree.map(
    lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), straight.params, resumed.params
  )
  jax.tree.map(
    lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), straight.opt_state, resumed.opt_state
  )


def test_train_step_on_sharded_batch_equals_single_device():
  config = _tiny_config(1)
  source = datasets.get_source(config.input, "train")
  batch = next(pipeline.make_train_iterator(config.input, source, seed=0, start_step=0, total_steps=1))
  model = build_model(config.model)
  tx, schedules = optim.make_optimizer(config.optim, 10)
  make = functools.partial(
    train.create_state,
    model=model,
    tx=tx,
    sample_images=batch["images"][:1],
    losses_config=config.losses,
    registry=losses.LOSSES,
    num_classes_per_level=(10, 3),
  )
  step = functools.partial(
    train.train_step, model=model, loss_fn=losses.make_loss_fn(config.losses, losses.LOSSES), tx=tx, schedules=schedules
  )
  mesh = parallel.make_mesh()
  assert mesh.size == 8  # tests/conftest.py fakes 8 CPU devices
  sharded_state, sharded = jax.jit(step)(make(jax.random.PRNGKey(0)), parallel.global_batch(batch, mesh))
  single_state, single = jax.jit(step)(make(jax.random.PRNGKey(0)), jax.device_put(batch, jax.devices()[0]))
  np.testing.assert_allclose(sharded["loss"], single["loss"], rtol=1e-5)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), sharded_state.params, single_state.params
  )


def _cli(*args):
  return commands.run_command("train", *args)


@pytest.mark.parametrize(
  "args,expected",
  [
    (["--workdir", "{tmp}"], "--config"),
    (
      ["--config", "suprank_jax/configs/digits.py", "--workdir", "{tmp}", "--config.optim.learnig_rate=1"],
      "learnig_rate",
    ),
    (["--config", "suprank_jax/configs/digits.py", "--workdir", "/proc/forbidden"], "is not writable"),
    (
      ["--config", "suprank_jax/configs/digits.py", "--workdir", "{tmp}", "--coordinator_address=127.0.0.1:1"],
      "together",
    ),
    (
      [
        "--config",
        "suprank_jax/configs/digits.py",
        "--workdir",
        "{tmp}",
        "--config.losses.sup_ap.weight=1",
        "--config.input.dataset=nope",
      ],
      "valid",
    ),
  ],
)
def test_bad_command_lines_stop_with_one_clear_message(tmp_path, args, expected):
  result = _cli(*[a.format(tmp=tmp_path) for a in args])
  assert result.returncode != 0
  assert expected in result.stderr
  assert "Traceback" not in result.stderr


# Every loss in batch mode; with a memory, the reference-set losses (a representative few in the fast
# suite, the rest under -m slow). Proxy losses and FastAP take no reference set.
_MEMORY_FAST = {"sup_ap", "sup_hap", "calibration", "xbm_contrastive"}
_TRAIN_STEP_CASES = [pytest.param(name, False, id=f"batch-{name}") for name in sorted(losses.LOSSES)] + [
  pytest.param(name, True, id=f"xbm-{name}", marks=() if name in _MEMORY_FAST else pytest.mark.slow)
  for name in sorted(losses.LOSSES)
  if losses.LOSSES[name].uses_reference
]


@pytest.mark.parametrize("name,memory", _TRAIN_STEP_CASES)
def test_every_registered_loss_trains_a_step(name, memory):
  config = _tiny_config(1)
  # Hyper-parameters without a default that fits two-level digits.
  overrides = {"csl": {"margins": (0.25, 0.45)}}
  config.losses = ml_collections.ConfigDict({name: {"weight": 1.0, **overrides.get(name, {})}})
  config.xbm.size = 80 if memory else 0
  config.xbm.activate_epoch = 1
  source = datasets.get_source(config.input, "train")
  batch = next(pipeline.make_train_iterator(config.input, source, seed=0, start_step=0, total_steps=1))
  model = build_model(config.model)
  tx, schedules = optim.make_optimizer(config.optim, 10)
  state = train.create_state(
    jax.random.PRNGKey(0),
    model=model,
    tx=tx,
    sample_images=batch["images"][:1],
    losses_config=config.losses,
    registry=losses.LOSSES,
    num_classes_per_level=(10, 3),
    memory_size=config.xbm.size,
  )
  step = jax.jit(
    functools.partial(
      train.train_step,
      model=model,
      loss_fn=losses.make_loss_fn(config.losses, losses.LOSSES),
      tx=tx,
      schedules=schedules,
      memory_config=config.xbm if memory else None,
      steps_per_epoch=7,
      loss_context=train._loss_context(source),
    )
  )
  before = jax.tree.map(np.asarray, state.params)
  state, metrics = step(state, batch)
  assert np.isfinite(float(metrics["loss"])), name
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), before, state.params))
  assert any(changed), f"{name}: no parameter moved"
  if memory:
    assert int(np.sum(state.memory.where)) == 40


def test_rank_loss_without_max_positives_is_warned_about(tmp_path):
  config = _tiny_config(1)
  config.losses.sup_ap.max_positives = None
  config.input.dataset = "not_a_dataset"  # stops right after the config checks
  messages = []
  with pytest.raises(ValueError, match="not_a_dataset"):
    train.train_and_evaluate(config, str(tmp_path), log=messages.append)
  assert any("config.losses.sup_ap has no max_positives" in m and "samples_per_class=4" in m for m in messages)
  assert not any("calibration" in m for m in messages)


def test_max_positives_below_the_samples_per_class_stops_early(tmp_path):
  config = _tiny_config(1)
  config.losses.sup_ap.max_positives = 3  # the sampler gives every query 4 positives
  with pytest.raises(ValueError, match="max_positives=3 is below config.input.samples_per_class=4"):
    train.train_and_evaluate(config, str(tmp_path), log=lambda *_: None)
