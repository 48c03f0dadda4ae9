"""Every experiment config, on a miniature of its data set: no config can rot.

Each config of ``configs/{happier,roadmap,suprank,baselines,landmarks}`` runs on a generated copy of its
data set in the original's on-disk layout (``tests/miniatures.py``), with its own model family made tiny
(16-pixel images, a ResNet of width 8 or a one-block ViT), its own losses, optimizer groups,
schedules (shortened to the frozen warm-up plus one epoch) and evaluations.

* Every experiment goes through the trainer's checks (``train.prepare``: data set and index files,
  sampler, run length, model, optimizer, evaluations), and every key it sets (differing from the
  defaults) must be read: a key that is set and silently unused fails the test.
* Every experiment trains a few steps and evaluates, with finite metrics and every key it sets read
  by the whole run. Compiling a network per experiment takes ~30 s on 2 cores, so the default suite
  runs one experiment of each kind (data path, model family, optimizer) and ``-m slow`` the rest.
"""

import glob
import importlib.util
import math
import os

import pytest

from suprank_jax import losses, train
from suprank_jax.configs import common
from tests import miniatures
from tests.config_audit import KeyAudit, set_keys

pytestmark = pytest.mark.usefixtures("fast_compile")

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suprank_jax", "configs")
FAMILIES = ("happier", "roadmap", "suprank", "baselines", "landmarks")
EXPERIMENTS = sorted(os.path.relpath(p, CONFIGS) for family in FAMILIES
                     for p in glob.glob(os.path.join(CONFIGS, family, "*.py")) if not p.endswith("__init__.py"))
TINY_IMAGE = 16
TINY_BATCH = 16


def load_experiment(relative_path: str):
  spec = importlib.util.spec_from_file_location("experiment_config", os.path.join(CONFIGS, relative_path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def shrink(config, data_dir: str):
  """The same experiment at toy scale: tiny images, batch and network, the shortest run that still
  passes the frozen warm-up; no pretrained weights (there are none to load here)."""
  i = config.input
  i.data_dir = data_dir
  i.image_size = TINY_IMAGE
  if i.train_resize_size:
    i.train_resize_size = TINY_IMAGE
  if i.eval_resize_size:
    i.eval_resize_size = TINY_IMAGE
  i.global_batch_size = TINY_BATCH
  if i.sampler == "hierarchical":
    i.batches_per_super_tuple = 1
  m = config.model
  if "width" in m:
    m.width = 8
  if "depth" in m:
    m.depth = 1
    m.img_size = TINY_IMAGE
  m.pretrained = False
  m.freeze_batch_norm = False if "freeze_batch_norm" in m and not m.freeze_batch_norm else m.freeze_batch_norm
  # The shortest run through a frozen warm-up (one epoch) and every milestone of a step schedule
  # (moved to the first epochs after the warm-up).
  if config.optim.freeze_epochs:
    config.optim.freeze_epochs = 1
  if config.optim.decay_epochs:
    config.optim.decay_epochs = tuple(range(1, len(config.optim.decay_epochs) + 1))
  config.num_epochs = config.optim.freeze_epochs + len(config.optim.decay_epochs) + 1
  for ev in config.evals.values():
    ev.batch_size = TINY_BATCH
  if config.xbm.size > 0:
    # A toy memory for the toy data: a 60,000-item memory of a few classes gives each query ~M/C
    # positives against M items (an [B, P, M] comparison of tens of GB).
    config.xbm.size = min(config.xbm.size, 4 * TINY_BATCH)
  config.tensorboard = False
  return config


def defaults_of(config):
  """``common.base_config()`` with the defaults of the evaluations and loss entries ``config`` adds
  (``common.eval_config()``, ``combine.default_config(name)``), so that only the values the
  experiment sets differ."""
  base = common.base_config()
  with base.unlocked():
    for name in config.evals:
      if name not in base.evals:
        base.evals[name] = common.eval_config()
    for entry, loss in config.losses.items():
      if entry not in base.losses:
        base.losses[entry] = losses.combine.default_config(loss.name)
  return base


# One experiment of each kind in the default suite: a from-scratch ResNet-34 with Nesterov SGD and three
# query/gallery benchmarks whose galleries hold the queries (DyML-Vehicle); a ResNet-50 with frozen batch
# norm, a frozen warm-up, per-epoch cosine schedules and an Adam group for the class weights, on the
# hierarchical sampler, evaluated with both protocols (HAPPIER SOP); a DeiT with a step schedule (ROADMAP
# SOP DeiT-S).
FAST = ("happier/dyml_vehicle.py", "happier/sop.py", "roadmap/sop_deit_small.py")


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_experiment_passes_the_trainer_checks_reading_every_key_it_sets(path, tmp_path):
  config = load_experiment(path)
  wanted = set_keys(config, defaults_of(config))
  shrink(config, miniatures.for_config(config, str(tmp_path / "data")))
  with KeyAudit(config) as audit:
    run = train.prepare(config, str(tmp_path / "run"), log=lambda _: None)
  assert run.total_steps >= 1
  assert not audit.unread(wanted), f"{path} sets keys the trainer never reads: {audit.unread(wanted)}"


@pytest.mark.parametrize("path", [p if p in FAST else pytest.param(p, marks=pytest.mark.slow) for p in EXPERIMENTS])
def test_experiment_trains_and_evaluates_on_its_miniature_reading_every_key_it_sets(path, tmp_path):
  config = load_experiment(path)
  wanted = set_keys(config, defaults_of(config))
  data_dir = miniatures.for_config(config, str(tmp_path / "data"))
  shrink(config, data_dir)
  lines = []
  with KeyAudit(config) as audit:
    _, summary = train.train_and_evaluate(config, str(tmp_path / "run"), log=lines.append)
  assert not audit.unread(wanted), f"{path} sets keys the run never reads: {audit.unread(wanted)}"
  assert summary["final"], lines[-5:]
  for name, metrics in summary["final"].items():
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    assert not bad, f"{path}: evaluation {name} has non-finite metrics {bad}"


def test_every_experiment_is_listed():
  assert len(EXPERIMENTS) >= 30
  assert set(FAST) <= set(EXPERIMENTS)
  for family in ("happier/inat_base.py", "happier/dyml_product.py", "roadmap/sop.py", "suprank/suprecall_sop.py"):
    assert family in EXPERIMENTS
