"""Evaluation without training: re-evaluate a trained run, or evaluate a (pretrained) backbone.

Commands::

  # a run's evaluations, on its latest checkpoint (or --step N), with the run's config.yaml
  python -m suprank_jax.evaluate --workdir runs/sop [--step 20]
  # the same run with settings changed (any --config.* override of the run's config)
  python -m suprank_jax.evaluate --workdir runs/sop --config suprank_jax/configs/workdir.py:runs/sop \\
      --config.evals.test.metrics.recall_at='(1,2,4,8)' --config.input.data_dir=/mnt/Stanford_Online_Products
  # a backbone without training: the config's model with the weights of --pretrained
  python -m suprank_jax.evaluate --config suprank_jax/configs/roadmap/sop.py --pretrained /weights/resnet50.safetensors \\
      --config.input.data_dir=/data/Stanford_Online_Products [--output runs/resnet50_imagenet]

Each evaluation of ``config.evals`` reads its own data set (``dataset``, ``data_dir`` of the
evaluation, else ``config.input``'s), so a model can be evaluated on a data set other than its
training one. Results are printed as a table and written as JSON to
``<workdir or output>/evaluations/step_<N>.json`` (``pretrained.json`` for a backbone).
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from suprank_jax.evaluation import evaluator as evaluator_lib
from suprank_jax.input_pipeline import pipeline
from suprank_jax.models import build_model, torch_weights
from suprank_jax.runtime import cli, parallel, reporting
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import checkpoint

__all__ = ["evaluate", "prepare_evaluators", "main"]


def prepare_evaluators(config: ml_collections.ConfigDict, mesh, *, log=reporting.log):
  """The model and every evaluation of ``config.evals``, with their data sets read and their settings
  checked (before any weights are read or any model is initialised).

  Returns:
    ``(model, {name: Evaluator})``.
  """
  model = build_model(config.model)
  if not config.evals:
    raise ValueError("config.evals is empty: nothing to evaluate")
  evaluators = {
    name: evaluator_lib.make_evaluator(name, ev, config.input, model=model, mesh=mesh, log=log)
    for name, ev in config.evals.items()
  }
  unknown = [n for n in config.overall_accuracy_over if n not in evaluators]
  if unknown:
    raise ValueError(f"config.overall_accuracy_over names {unknown}, which are not in config.evals")
  return model, evaluators


def evaluate(
  config: ml_collections.ConfigDict,
  *,
  workdir: str | None = None,
  step: int | None = None,
  pretrained: str | None = None,
  log=reporting.log,
):
  """Runs ``config.evals`` on a run's checkpoint (``workdir``, ``step``) or on ``pretrained`` weights.

  Every data set is read and checked before any model is initialised.

  Args:
    config: the run's config (``configs/workdir.py``) or any experiment config.
    workdir: the run's folder (checkpoints under ``checkpoints/``); None with ``pretrained``.
    step: the checkpoint step (None: the newest readable one).
    pretrained: a torchvision / timm state dict for the model's backbone, instead of a checkpoint.
    log: progress printer.

  Returns:
    ``(step, {evaluation: {metric: value}})``; step is None for pretrained weights.
  """
  if (workdir is None) == (pretrained is None):
    raise ValueError("give either a run (--workdir) or pretrained weights (--pretrained)")
  mesh = parallel.make_mesh()
  model, evaluators = prepare_evaluators(config, mesh, log=log)
  first = next(iter(evaluators.values()))
  sample = pipeline.sample_images(first.input_config, first.query_source)
  if pretrained is not None:
    if not os.path.isfile(os.path.expanduser(pretrained)):
      raise FileNotFoundError(f"--pretrained={pretrained!r}: no such file")
    variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), sample, train=False))()
    model_config = config.model.copy_and_resolve_references()
    with model_config.unlocked():
      model_config.pretrained_path = pretrained
    variables = torch_weights.load_pretrained(jax.device_get(variables), model_config)
    log(f"loaded pretrained weights from {pretrained}")
  else:
    step, variables = checkpoint.CheckpointManager(RunDir(workdir).checkpoints).restore_variables(step)
    log(f"restored the model of step {step} from {workdir}")
  variables = jax.device_put(variables, parallel.replicated(mesh))
  results = evaluator_lib.run_all(
    evaluators,
    variables,
    overall_over=config.overall_accuracy_over,
    report=lambda name, metrics, _: log(
      f"[eval {name}] " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    ),
  )
  return step, results


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """The command line's flags, defined only when this module runs as the program (so that the
  trainer's and this module's functions can be imported together; tests parse into their own
  ``flag_values``)."""
  config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file (default: the run's config.yaml, with --workdir).",
    lock_config=True,
    flag_values=flag_values,
  )
  flags.DEFINE_string("workdir", None, "A run's folder: its config.yaml and checkpoints.", flag_values=flag_values)
  flags.DEFINE_integer(
    "step", None, "Checkpoint step to evaluate (default: the newest readable one).", flag_values=flag_values
  )
  flags.DEFINE_string(
    "pretrained", None, "Evaluate the config's model with these backbone weights, untrained.", flag_values=flag_values
  )
  flags.DEFINE_string(
    "output", None, "Where to write evaluations/*.json (default: --workdir).", flag_values=flag_values
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  with cli.user_errors():
    if FLAGS.pretrained and FLAGS.workdir and FLAGS.config is None:
      raise ValueError("with --pretrained, give the model and data with --config (not a run's --workdir)")
    config = (
      FLAGS.config if FLAGS.config is not None else (RunDir(FLAGS.workdir).read_config() if FLAGS.workdir else None)
    )
    if config is None:
      raise ValueError("give --workdir (a trained run) or --config with --pretrained (a backbone)")
    step, results = evaluate(
      config, workdir=None if FLAGS.pretrained else FLAGS.workdir, step=FLAGS.step, pretrained=FLAGS.pretrained
    )
  out = FLAGS.output or FLAGS.workdir
  if out and jax.process_index() == 0:
    folder = RunDir(out).evaluations
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pretrained.json" if step is None else f"step_{step}.json")
    with open(path, "w") as f:
      json.dump({"step": step, "pretrained": FLAGS.pretrained, "results": results}, f, indent=1, default=float)
    reporting.log(f"wrote {path}")
  rows = dict(results.items())
  reporting.log("\n" + reporting.format_table(rows, evaluator_lib.headline_columns(rows)))


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
