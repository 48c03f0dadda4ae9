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
import re

import jax
import numpy as np
import pytest

from suprank_jax import losses, models
from suprank_jax.configs import common
from suprank_jax.training import train
from tests import miniatures
from tests.config_audit import KeyAudit, set_keys

pytestmark = pytest.mark.usefixtures("fast_compile")

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suprank_jax", "configs")
FAMILIES = ("happier", "roadmap", "suprank", "baselines", "landmarks")
EXPERIMENTS = sorted(
  os.path.relpath(p, CONFIGS)
  for family in FAMILIES
  for p in glob.glob(os.path.join(CONFIGS, family, "*.py"))
  if not p.endswith("__init__.py")
)
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


def test_roadmap_sop_trains_batch_norm_scale_and_bias_and_keeps_its_running_statistics(tmp_path):
  """Frozen batch norm is the original's: eval mode only (``freeze_batch_norm.py``), so three steps from
  pretrained weights move every scale and bias (backbone optimizer, weight decay) and no statistic."""
  from tests.test_torch_weights import _init, _torch_layout  # pylint: disable=g-import-not-at-top

  config = load_experiment("roadmap/sop.py")
  shrink(config, miniatures.for_config(config, str(tmp_path / "data")))
  config.model.name = "resnet18"
  config.optim.freeze_epochs = 0
  config.num_epochs, config.total_steps = 0, 3
  assert config.model.freeze_batch_norm and not config.model.freeze_batch_norm_affine
  _, variables = _init(config.model, size=TINY_IMAGE)
  variables["batch_stats"] = jax.tree_util.tree_map_with_path(  # a positive variance, as trained weights have
    lambda path, v: np.abs(v) + 0.5 if path[-1].key == "var" else v, variables["batch_stats"]
  )
  config.model.pretrained_path = str(tmp_path / "resnet18.npz")
  np.savez(config.model.pretrained_path, **_torch_layout(variables))
  state, _ = train.train_and_evaluate(config, str(tmp_path / "run"), log=lambda _: None)
  assert int(state.step) == 3
  before, after = _leaves(variables["params"]["backbone"]), _leaves(state.params["backbone"])
  norms = [p for p in before if re.search(models.BATCH_NORM_PARAMS_REGEX, f"model/backbone/{p}")]
  assert len(norms) == 2 * (1 + 2 * 8 + 3)
  for path in norms:
    assert not np.array_equal(after[path], before[path]), f"{path} did not move"
  stats_before, stats_after = _leaves(variables["batch_stats"]), _leaves(state.batch_stats)
  assert stats_before.keys() == stats_after.keys()
  for path, value in stats_before.items():
    np.testing.assert_array_equal(stats_after[path], value, err_msg=path)


def _leaves(tree):
  return {
    "/".join(str(k.key) for k in path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


# ----------------------------------------------------------------------------------------------
# The resolved keys of the experiments against the files of the runs they cite. The expected values
# are literal facts read off those files (named in the comments), not taken from our groups.

HEAD = "^model/head/"


def _roadmap_step_rank(x, *, temp, tau, offset, margin, start):
  """The ROADMAP repository's ``roadmap/losses/smooth_rank_ap.py::step_rank`` for a negative item."""
  sig = 1.0 / (1.0 + np.exp(-np.clip(x / temp, -50, 50)))
  return np.where(x <= 0, sig, np.where(x <= margin, start + sig, tau * x + offset))


def _assert_roadmap_loss(config, *, offset, start):
  """``roadmap/config/loss/roadmap{,_inat}.yaml``: SupAP weight 1.0 (temp 0.01, tau 100.0, ``offset``,
  margin 0.05, ``start``) and ContrastiveLoss weight 1.0 (pos_margin 0.9, neg_margin 0.6)."""
  from suprank_jax.losses import ranks  # pylint: disable=g-import-not-at-top

  on = {entry: loss for entry, loss in config.losses.items() if loss.weight}
  assert sorted(on) == ["calibration", "sup_ap"]
  assert on["sup_ap"].weight == 1.0 and on["calibration"].weight == 1.0
  assert (on["calibration"].pos_margin, on["calibration"].neg_margin) == (0.9, 0.6)
  sup = on["sup_ap"]
  x = np.linspace(-0.3, 0.3, 601)
  ours = ranks.suprank_surrogate(x, tau=sup.tau, rho=sup.rho, delta=sup.delta, start=sup.start, offset=sup.offset)
  np.testing.assert_allclose(
    ours, _roadmap_step_rank(x, temp=0.01, tau=100.0, offset=offset, margin=0.05, start=start), rtol=1e-6, atol=1e-6
  )


def _assert_roadmap_readme_run(config, *, epochs, batch_size):
  # The ROADMAP README's commands: experience.seed=333, experience.max_iter, dataset.sampler.kwargs.batch_size;
  # roadmap/config/experience/default.yaml: test_eval_freq 5, warm_up -1.
  assert (config.seed, config.num_epochs, config.input.global_batch_size) == (333, epochs, batch_size)
  assert config.eval_every_epochs == 5 and config.optim.freeze_epochs == 0 and config.optim.schedule_per_epoch


def _model(config):
  m = config.model
  return m.name, m.embed_dim, m.layer_norm, m.get("pooling"), m.freeze_batch_norm


def _optimizer(config):
  o = config.optim
  return o.name, o.learning_rate, o.weight_decay, o.schedule, tuple(o.decay_epochs), o.decay_factor, o.groups


def test_roadmap_inat_is_the_roadmap_repository_run():
  config = load_experiment("roadmap/inat.py")
  _assert_roadmap_readme_run(config, epochs=90, batch_size=384)
  # roadmap/config/model/resnet.yaml: resnet50, embed_dim 512, norm_features False, freeze_batch_norm True.
  assert _model(config) == ("resnet50", 512, False, "avg", True)
  # marginap/config/optimizer/inaturalist.yaml: Adam on backbone and fc, lr 1e-5, wd 4e-4, both with
  # MultiStepLR(milestones=[30, 70], gamma=0.3).
  assert _optimizer(config) == ("adam", 1e-5, 4e-4, "steps", (30, 70), 0.3, ((HEAD, 1.0),))
  _assert_roadmap_loss(config, offset=1.0, start=0.0)
  # roadmap/config/dataset/inaturalist.yaml: MPerClassSampler, 4 per class; transform: 224 crops.
  assert config.input.sampler.startswith("m_per_class") and config.input.samples_per_class == 4
  assert config.input.image_size == 224 and config.input.dataset_kwargs.mode == "base"


def test_roadmap_cub_is_the_roadmap_repository_run():
  config = load_experiment("roadmap/cub.py")
  _assert_roadmap_readme_run(config, epochs=200, batch_size=128)
  # roadmap/config/model/resnet_max_ln.yaml: norm_features True, pooling max.
  assert _model(config) == ("resnet50", 512, True, "max", True)
  # margin_ap/config/optimizer/cub.yaml: one Adam over every parameter (params: null), lr 1e-6, wd 4e-4, no scheduler.
  assert _optimizer(config) == ("adam", 1e-6, 4e-4, "constant", (), 0.1, ())
  _assert_roadmap_loss(config, offset=1.44, start=0.5)
  # transform/cub_big.yaml: RandomResizedCrop(256), test Resize(288) + CenterCrop(256).
  i = config.input
  assert (i.image_size, i.random_resized_crop, i.train_resize_size, i.eval_resize, i.eval_resize_size) == (
    256,
    True,
    0,
    "resize_center_crop",
    288,
  )


def test_roadmap_sop_is_the_roadmap_repository_run():
  config = load_experiment("roadmap/sop.py")
  _assert_roadmap_readme_run(config, epochs=100, batch_size=128)
  # The README's dataset.sampler.kwargs.batches_per_super_pair=10; HierarchicalSampler, 4 per class, 2 categories.
  i = config.input
  assert (i.sampler, i.batches_per_super_tuple, i.samples_per_class, i.super_classes_per_batch) == (
    "hierarchical",
    10,
    4,
    2,
  )
  # transform/sop_big.yaml: Resize(288), RandomResizedCrop(256); test Resize([288, 288]) + CenterCrop(256).
  assert (i.train_resize_size, i.image_size, i.eval_resize, i.eval_resize_size) == (
    288,
    256,
    "square_resize_center_crop",
    288,
  )
  assert _model(config) == ("resnet50", 512, False, "avg", True)  # model/resnet.yaml
  # margin_ap/config/optimizer/sop.yaml: Adam on backbone and fc, lr 1e-5, wd 1e-4, MultiStepLR([25], gamma=0.1).
  assert _optimizer(config) == ("adam", 1e-5, 1e-4, "steps", (25,), 0.1, ((HEAD, 1.0),))
  _assert_roadmap_loss(config, offset=1.44, start=0.5)


@pytest.mark.parametrize(
  "path,epochs,optimizer",
  [
    # roadmap/config/optimizer/sop_deit.yaml: AdamW (params: null) 1e-5, wd 5e-4, MultiStepLR([25, 50], gamma=0.3).
    ("roadmap/sop_deit_small.py", 75, ("adamw", 1e-5, 5e-4, "steps", (25, 50), 0.3, ())),
    # roadmap/config/optimizer/cub_deit.yaml: AdamW (params: null) 1e-6, wd 5e-4, no scheduler.
    ("roadmap/cub_deit_small.py", 150, ("adamw", 1e-6, 5e-4, "constant", (), 0.1, ())),
  ],
)
def test_roadmap_deit_runs_are_the_roadmap_repository_runs(path, epochs, optimizer):
  config = load_experiment(path)
  _assert_roadmap_readme_run(config, epochs=epochs, batch_size=128)
  # margin_ap/config/model/deit.yaml: vit_deit_distilled (DeiT-S), norm_features False, without_fc True.
  assert _model(config)[:3] == ("deit_small", 0, False)
  assert _optimizer(config) == optimizer
  _assert_roadmap_loss(config, offset=1.44, start=0.5)


@pytest.mark.parametrize(
  "path,expected",
  [
    # /work/shared/original_configs/roadmap_{sop,cub,inat}.txt (SupRank's files resolved by Hydra).
    ("roadmap/sop_suprank.py", dict(epochs=100, batch=256, lr=5e-5, wd=1e-4, eta_min=0.0, layer_norm=True)),
    ("roadmap/cub_suprank.py", dict(epochs=200, batch=128, lr=1e-6, wd=4e-4, eta_min=0.0, layer_norm=True)),
    ("roadmap/inat_suprank.py", dict(epochs=90, batch=384, lr=1e-5, wd=4e-4, eta_min=1e-6, layer_norm=True)),
  ],
)
def test_roadmap_suprank_compositions_are_the_suprank_files(path, expected):
  config = load_experiment(path)
  o = config.optim
  assert (config.seed, config.num_epochs, config.input.global_batch_size) == (0, expected["epochs"], expected["batch"])
  assert (o.name, o.learning_rate, o.weight_decay, o.schedule, o.min_learning_rate) == (
    "adam",
    expected["lr"],
    expected["wd"],
    "cosine",
    expected["eta_min"],
  )
  assert o.groups == ((HEAD, 2.0),) and config.model.layer_norm == expected["layer_norm"]
  assert (config.losses.sup_ap.weight, config.losses.calibration.weight) == (0.9, 0.1)


def test_dyml_product_class_weights_take_the_head_sgd_of_the_happier_repository():
  config = load_experiment("happier/dyml_product.py")
  # HAPPIER repository: loss/HAPPIER_product.yaml's ClusterLoss optimizer ${optimizer.opt.1}, the fc optimizer of
  # optimizer/dyml_product.yaml: SGD lr ${mult:2, 0.01} = 0.02, wd 1e-4, momentum 0.9, Nesterov, cosine eta_min 1e-5.
  o = config.optim
  rules = dict(o.groups)
  assert (o.name, o.learning_rate, o.weight_decay, o.momentum, o.nesterov, o.min_learning_rate) == (
    "sgd",
    0.01,
    1e-4,
    0.9,
    True,
    1e-5,
  )
  assert rules["^loss/cluster/"] * o.learning_rate == pytest.approx(0.02)
  assert rules[HEAD] * o.learning_rate == pytest.approx(0.02)
