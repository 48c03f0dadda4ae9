"""A run's folder: its files' paths and its config.yaml, read and written."""

import os

import ml_collections
import pytest

from suprank_jax.runtime.run_dir import RunDir


def _config(lr):
  return ml_collections.ConfigDict({"optim": {"lr": lr}, "evals": {"test": {"recall_at": (1, 10)}}})


def test_the_layout_is_relative_to_the_folder(tmp_path):
  run = RunDir(str(tmp_path))
  names = [run.config, run.checkpoints, run.metrics, run.tensorboard, run.pictures, run.summary, run.evaluations]
  assert [os.path.relpath(p, tmp_path) for p in names] == [
    "config.yaml",
    "checkpoints",
    "metrics.jsonl",
    "tensorboard",
    "pictures",
    "summary.json",
    "evaluations",
  ]


def test_a_written_config_reads_back_with_tuples(tmp_path):
  run = RunDir(str(tmp_path))
  assert run.read_config_dict() is None
  run.write_config(_config(0.1))
  assert run.read_config_dict()["evals"]["test"]["recall_at"] == [1, 10]
  config = run.read_config()
  assert config.evals.test.recall_at == (1, 10) and config.optim.lr == 0.1


def test_a_resume_with_another_config_keeps_the_previous_one(tmp_path):
  run = RunDir(str(tmp_path))
  run.write_config(_config(0.1))
  run.write_config(_config(0.1), start_step=5)  # the same config: nothing kept
  assert sorted(os.listdir(tmp_path)) == ["config.yaml"]
  run.write_config(_config(0.2), start_step=5)
  run.write_config(_config(0.3), start_step=5)
  assert sorted(os.listdir(tmp_path)) == ["config.until_step_5.2.yaml", "config.until_step_5.yaml", "config.yaml"]
  assert RunDir(str(tmp_path)).read_config().optim.lr == 0.3


def test_a_missing_or_broken_config_names_the_file(tmp_path):
  run = RunDir(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="config.yaml does not exist: --workdir must be the folder of a run"):
    run.read_config()
  (tmp_path / "config.yaml").write_text("[1, 2]")
  with pytest.raises(ValueError, match="config.yaml is not a config written by suprank_jax.train"):
    run.read_config()
  (tmp_path / "config.yaml").write_text("a: [1")
  with pytest.raises(ValueError, match=r"(?s)config.yaml is not readable YAML \(.*\); move it away"):
    run.read_config_dict(hint="move it away")
