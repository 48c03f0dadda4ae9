"""Evaluation without training (``suprank_jax.evaluate``), evaluations that read their own data set, and
the DyML benchmarks whose galleries hold the queries."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from suprank_jax import evaluate as evaluate_lib
from suprank_jax.configs import common, experiment
from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.evaluation import retrieval
from suprank_jax.input_pipeline import transforms
from suprank_jax.models import build_model
from suprank_jax.runtime import parallel, reporting
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import train
from tests import commands, miniatures
from tests.test_torch_weights import _torch_layout
from tests.test_train import _tiny_config

pytestmark = pytest.mark.usefixtures("fast_compile")
REPO = commands.REPO


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  """A finished 6-step digits run: its workdir and its final metrics."""
  config = _tiny_config(6)
  config.losses.sup_ap.max_positives = 4
  workdir = str(tmp_path_factory.mktemp("digits_run"))
  _, summary = train.train_and_evaluate(config, workdir, log=lambda _: None)
  return workdir, summary["final"]


def test_reevaluating_a_run_gives_its_final_metrics_and_an_earlier_step_differs(digits_run):
  workdir, final = digits_run
  config = RunDir(workdir).read_config()
  step, results = evaluate_lib.evaluate(config, workdir=workdir, log=lambda _: None)
  assert step == 6
  assert results["test"] == pytest.approx(final["test"], rel=1e-6)
  step, earlier = evaluate_lib.evaluate(config, workdir=workdir, step=3, log=lambda _: None)
  assert step == 3 and earlier["test"]["mAP@R_level0"] != final["test"]["mAP@R_level0"]


def test_evaluate_command_writes_json_and_names_a_missing_step(digits_run, tmp_path):
  workdir, final = digits_run
  run = lambda *args: commands.run_command("evaluate", "--workdir", workdir, *args)
  result = run("--config", f"suprank_jax/configs/workdir.py:{workdir}", "--config.evals.test.metrics.recall_at=(1,2)")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(os.path.join(workdir, "evaluations", "step_6.json")) as f:
    saved = json.load(f)["results"]["test"]
  assert saved["R@1_level0"] == pytest.approx(final["test"]["R@1_level0"], rel=1e-6)
  assert "R@2_level0" in saved and "R@10_level0" not in saved
  result = run("--step", "5")
  assert result.returncode != 0
  assert "has no checkpoint of step 5; found [3, 6]" in result.stderr
  assert "Traceback" not in result.stderr


def _tiny_sop_config(data_dir):
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadmap_sop", num_epochs=1)
  config.input.data_dir = data_dir
  config.input.image_size = config.input.train_resize_size = config.input.eval_resize_size = 16
  config.input.global_batch_size = 16
  config.input.batches_per_super_tuple = 1
  common.set_model(config, "resnet18", width=4, embed_dim=8)
  config.evals.test.batch_size = 16
  return config


def test_pretrained_backbone_is_evaluated_with_the_weights_of_the_file(tmp_path, monkeypatch):
  config = _tiny_sop_config(miniatures.make_sop(str(tmp_path / "sop")))
  model = build_model(config.model)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))
  rng = np.random.default_rng(0)
  weights = jax.tree.map(lambda s: rng.normal(0.0, 0.1, s.shape).astype(np.float32), shapes)
  weights["batch_stats"] = jax.tree.map(lambda x: np.abs(x) + 0.5, weights["batch_stats"])
  path = str(tmp_path / "resnet18.safetensors")
  safetensors.numpy.save_file(_torch_layout(weights), path)
  seen = []
  evaluate_retrieval = retrieval.evaluate_retrieval
  monkeypatch.setattr(
    retrieval, "evaluate_retrieval", lambda q, *a, **k: seen.append(q) or evaluate_retrieval(q, *a, **k)
  )
  _, results = evaluate_lib.evaluate(config, pretrained=path, log=lambda _: None)
  assert np.all(np.isfinite(list(results["test"].values())))

  # Independently: the file's backbone (the head is a fresh init, seed 0, as evaluate() does), the
  # evaluation transform applied image by image, the model applied once. (Metrics are not compared:
  # a random tiny network gives near ties that a 1e-7 difference reorders.)
  ev = evaluator_lib.make_evaluator("test", config.evals.test, config.input, model=model, mesh=parallel.make_mesh())
  fresh = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))()
  variables = {
    "params": {"backbone": weights["params"]["backbone"], "head": fresh["params"]["head"]},
    "batch_stats": weights["batch_stats"],
  }
  transform = transforms.make_eval_transform(config.input)
  images = np.stack([transform(ev.query_source.load_image(i)) for i in range(len(ev.query_source))])
  np.testing.assert_allclose(seen[0], np.asarray(model.apply(variables, images, train=False)), atol=1e-5)
  untrained = np.asarray(model.apply(fresh, images, train=False))
  assert np.abs(seen[0] - untrained).max() > 1e-2


def test_an_evaluation_reads_its_own_data_set(tmp_path):
  config = _tiny_sop_config(miniatures.make_sop(str(tmp_path / "sop")))
  config.evals.test.dataset = "cub"
  config.evals.test.data_dir = miniatures.make_cub(str(tmp_path / "cub"))
  config.evals.test.metrics.recall_at = (1, 2)
  config.evals.test.metrics.hierarchy_levels = (0, 2)
  run = train.prepare(config, str(tmp_path / "run"), log=lambda _: None)
  ev = run.evaluators["test"]
  assert run.train_source.name == "sop/train"
  assert ev.query_source.name == "cub/test" and ev.query_source.level_names == ("species", "family", "order")
  assert ev.input_config.dataset == "cub" and config.input.dataset == "sop"


def test_an_evaluation_on_an_unknown_data_set_stops_before_any_model_is_built(tmp_path, monkeypatch):
  config = _tiny_sop_config(miniatures.make_sop(str(tmp_path / "sop")))
  config.evals.test.dataset = "cubb"
  monkeypatch.setattr(train, "create_state", lambda *a, **k: pytest.fail("the model was initialised"))
  with pytest.raises(ValueError, match="cubb"):
    train.train_and_evaluate(config, str(tmp_path / "run"), log=lambda _: None)


def _dyml_benchmark(tmp_path, contains_queries):
  config = experiment.compose(
    dataset="dyml_vehicle", model="dyml_resnet34", optimizer="dyml", loss="happier", num_epochs=1
  )
  experiment.dyml_evaluation(config, hierarchy_levels=(0,))
  config.input.data_dir = miniatures.make_dyml_vehicle(str(tmp_path / "dyml"))
  config.input.image_size = config.input.eval_resize_size = 16
  ev_config = config.evals.bmk_fine
  ev_config.batch_size = 16
  ev_config.gallery_contains_queries = contains_queries
  ev_config.metrics.protocol = "default"
  common.set_model(config, "resnet18", width=4, embed_dim=8, freeze_batch_norm=False)
  model = build_model(config.model)
  ev = evaluator_lib.make_evaluator(
    "bmk_fine", ev_config, config.input, model=model, mesh=parallel.make_mesh(), log=lambda _: None
  )
  variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))()
  return ev, ev.run(variables)


def test_dyml_benchmark_removes_each_querys_copy_so_an_untrained_network_does_not_score_one(tmp_path):
  ev, metrics = _dyml_benchmark(tmp_path, contains_queries=True)
  copies = ev.self_index
  assert len(copies) == len(ev.query_source) and np.all(copies >= 0)
  for q, g in enumerate(copies):  # each copy has the query's bytes under another name
    assert open(ev.query_source.paths[q], "rb").read() == open(ev.gallery_source.paths[g], "rb").read()
    assert ev.query_source.paths[q] != ev.gallery_source.paths[g]
  assert metrics["P@1_level0"] < 1.0
  # Without the rule every query finds its own copy first: the defect the rule fixes.
  _, leaky = _dyml_benchmark(tmp_path / "leaky", contains_queries=False)
  assert leaky["P@1_level0"] == 1.0


def test_embedding_a_split_reports_progress_with_an_eta(tmp_path, monkeypatch):
  config = _tiny_sop_config(miniatures.make_sop(str(tmp_path / "sop")))
  model = build_model(config.model)
  lines = []
  ev = evaluator_lib.make_evaluator(
    "test", config.evals.test, config.input, model=model, mesh=parallel.make_mesh(), log=lines.append
  )
  variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))()
  monkeypatch.setattr(reporting, "PROGRESS_SECONDS", 0.0)  # a line after every batch
  embeddings, _ = ev.embed(variables, ev.query_source)
  n = len(ev.query_source)
  progress = [line for line in lines if "images/s" in line]
  assert len(embeddings) == n and len(progress) == -(-n // 16)
  assert progress[-1].startswith(f"[eval test] {ev.query_source.name}: {n:,} of {n:,} images (")
  assert progress[-1].endswith("ETA 0:00:00)")
