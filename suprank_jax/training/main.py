"""The training command line: ``python -m suprank_jax.train --config FILE --workdir DIR [--config.a.b=v ...]``.

A thin entry point (as flax's ``main.py``): flags, the multi-process runtime, one-line errors; the
work is ``train.train_and_evaluate``, which notebooks and tests call directly. Flags are defined by
:func:`define_flags` when the command runs, so that other modules (and tests) can import the trainer
and the evaluation command together.
"""

from __future__ import annotations

import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from suprank_jax.runtime import cli, reporting
from suprank_jax.training import train

__all__ = ["define_flags", "main", "run"]

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """The command's flags (tests parse into their own ``flags.FlagValues``)."""
  config_flags.DEFINE_config_file(
    "config",
    None,
    "Experiment config file (e.g. suprank_jax/configs/digits.py).",
    lock_config=True,
    flag_values=flag_values,
  )
  flags.DEFINE_string(
    "workdir", None, "Output folder: checkpoints, metrics, TensorBoard, config.", flag_values=flag_values
  )
  flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)
  flags.DEFINE_bool(
    "distributed",
    False,
    "Join a multi-process JAX cluster: jax.distributed.initialize() "
    "(auto-detected on Cloud TPU pods, SLURM and Open MPI; elsewhere give the three flags below).",
    flag_values=flag_values,
  )
  flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (implies --distributed).", flag_values=flag_values
  )
  flags.DEFINE_integer(
    "num_processes", None, "Number of processes of the run (with --coordinator_address).", flag_values=flag_values
  )
  flags.DEFINE_integer(
    "process_id",
    None,
    "This process's index, 0..num_processes-1 (with --coordinator_address).",
    flag_values=flag_values,
  )
  flags.DEFINE_bool(
    "allow_config_change",
    False,
    "Resume from the workdir's checkpoints even where the config "
    "differs from the run's config.yaml in keys a resume may not change (suprank_jax/training/resume_rules.py "
    "lists those it may: run length, logging, checkpointing, evaluations, data location).",
    flag_values=flag_values,
  )


def _init_distributed():
  """Starts the multi-process runtime when the flags ask for it (before any JAX computation)."""
  if not (FLAGS.distributed or FLAGS.coordinator_address):
    return
  explicit = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if any(v is not None for v in explicit) and any(v is None for v in explicit):
    raise ValueError(
      "give --coordinator_address, --num_processes and --process_id together "
      "(or only --distributed where the cluster is auto-detected)"
    )
  jax.distributed.initialize(
    coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes, process_id=FLAGS.process_id
  )


def _check_workdir(workdir: str):
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test.{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise OSError(f"--workdir={workdir!r} is not writable ({e.strerror}); choose a folder you can write to") from e


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  with cli.user_errors():
    _init_distributed()
    _check_workdir(FLAGS.workdir)
    _, summary = train.train_and_evaluate(FLAGS.config, FLAGS.workdir, allow_config_change=FLAGS.allow_config_change)
  reporting.log("\n" + train.summary_table(summary))


def run():
  """Defines the flags and runs :func:`main` (``python -m suprank_jax.train``)."""
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
