"""Config files: presets, defaults, and the loss-combination validation."""

import pytest

from suprank_jax.configs import common


def test_parse_arg_types_values_by_their_default():
  args = common.parse_arg("smoke,steps=5,lr=0.5", smoke=False, steps=1, lr=1.0)
  assert args.smoke is True and args.steps == 5 and args.lr == 0.5


@pytest.mark.parametrize(
  "arg,match",
  [
    ("nope", "unknown config argument"),
    ("steps=x", "expected int"),
    ("steps", "needs a value"),
    ("smoke=maybe", "not a bool"),
  ],
)
def test_parse_arg_rejects_bad_presets(arg, match):
  with pytest.raises(ValueError, match=match):
    common.parse_arg(arg, smoke=False, steps=1)


# ----------------------------------------------------------------------------------------------
# Experiment composition, every key settable, and the checks that run before any model exists.


from suprank_jax import models  # noqa: E402
from suprank_jax.configs import experiment  # noqa: E402
from suprank_jax.losses import combine  # noqa: E402
from suprank_jax.training import train  # noqa: E402
from tests import commands, miniatures  # noqa: E402


def test_groups_compose_like_the_original_with_case_insensitive_names():
  config = experiment.compose(
    dataset="SOP",
    model="resnet_ln",
    optimizer="sop",
    loss="HAPPIER_SOP",
    num_epochs=100,
    freeze_epochs=5,
    hierarchy_levels=(0, 1),
  )
  assert config.losses.sup_hap.weight == 0.9 and config.losses.cluster.weight == 0.1
  assert config.losses.sup_hap.offset == 1.44 and config.losses.cluster.temperature == 0.05
  assert config.optim.name == "adam" and config.optim.learning_rate == 5e-5 and config.optim.weight_decay == 1e-4
  assert config.optim.freeze_epochs == 5 and config.optim.schedule_per_epoch
  assert config.optim.groups == (
    ("^model/head/", 2.0),
    (
      "^loss/cluster/",
      dict(name="adam", learning_rate=10.0, weight_decay=0.0, schedule="cosine", min_learning_rate=0.1),
    ),
  )
  assert config.input.sampler == "hierarchical" and config.input.train_resize_size == 256
  assert config.model.name == "resnet50" and config.model.layer_norm and config.model.pretrained
  assert config.evals.test.metrics.hierarchy_levels == (0, 1) and config.evals.test.metrics.protocol == "both"
  assert config.num_epochs == 100 and config.total_steps == 0
  with pytest.raises(ValueError, match="unknown loss group 'happyer'.*happier_sop"):
    experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="happyer")


def test_weight_null_means_equal_weights_and_a_loss_per_level():
  config = experiment.compose(dataset="cub", model="resnet_ln", optimizer="cub", loss="triplet_triple")
  assert [
    (e, config.losses[e].hierarchy_level, round(config.losses[e].weight, 6))
    for e in ("triplet", "triplet_level1", "triplet_level2")
  ] == [("triplet", 0, 0.333333), ("triplet_level1", 1, 0.333333), ("triplet_level2", 2, 0.333333)]


def test_a_net_optimizer_gives_loss_parameters_its_own_rate_and_a_warm_up_freezes_nothing():
  config = experiment.compose(
    dataset="dyml_vehicle", model="dyml_resnet34", optimizer="dyml", loss="happier", freeze_epochs=2
  )
  assert config.optim.groups == (("^loss/cluster/", 1.0),)  # ${optimizer.opt.head} without a head: the net's
  assert config.optim.freeze_epochs == 2 and config.optim.freeze_regex == ""


def test_max_positives_follow_the_batch_set_on_the_command_line():
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="happier_sop")
  assert config.losses.sup_hap.max_positives == 128  # 256 / 2 super-classes
  config.input.global_batch_size = 64
  assert config.losses.sup_hap.max_positives == 32
  config = experiment.compose(dataset="cub", model="resnet_ln", optimizer="cub", loss="roadmap_sop")
  assert config.losses.sup_ap.max_positives == 4


def test_every_loss_hyper_parameter_has_its_default_and_typed_fields():
  entry = combine.default_config("sup_ap")
  assert entry.weight == 0.0 and entry.max_positives is None and entry.tau == 0.01 and entry.rho == 100.0
  entry.max_positives = 4
  entry.hierarchy_level = "multi"
  with pytest.raises(AttributeError):
    entry.rhoo = 1.0  # locked: a misspelt key fails
  with pytest.raises(ValueError, match="takes no hyper-parameter"):
    combine.default_config("triplet", marign=0.1)


def test_model_config_has_every_key_of_its_family_and_rejects_others():
  resnet = models.default_config("resnet50")
  assert set(resnet.keys()) == {
    "name",
    "embed_dim",
    "pooling",
    "gem_p",
    "layer_norm",
    "normalize",
    "freeze_batch_norm",
    "freeze_batch_norm_affine",
    "dtype",
    "width",
    "whiten",
    "whitening_path",
    "pretrained",
    "pretrained_path",
  }
  vit = models.default_config("deit_small")
  assert vit.embed_dim == 0 and not vit.freeze_batch_norm and "img_size" in vit and "gem_p" not in vit
  resnet.name = "deit_small"
  with pytest.raises(ValueError, match="takes no key.*width"):
    models.build_model(resnet)
  resnet = models.default_config("resnet18")
  resnet.gem_p = 2.0
  with pytest.raises(ValueError, match="gem_p=2.0 is only read with pooling 'gem'"):
    models.build_model(resnet)


def test_eval_config_rejects_unknown_keys():
  with pytest.raises(ValueError, match="unknown"):
    common.eval_config("test", galery_split="x")
  with pytest.raises(ValueError, match=r"evaluation metrics keys \['recal_at'\] are unknown"):
    common.eval_config("test", metrics=dict(recal_at=(1,)))
  with pytest.raises(ValueError, match=r"evaluation revisited keys \['max_size'\] are unknown"):
    common.eval_config("test", revisited=dict(max_size=512))


def _cli(*args):
  return commands.run_command("train", *args)


def test_model_and_loss_keys_are_set_from_the_command_line_and_a_misspelt_one_is_named(tmp_path):
  common_args = ["--config", "suprank_jax/configs/happier/sop.py", "--workdir", str(tmp_path)]
  ok = _cli(
    *common_args,
    "--config.model.freeze_batch_norm=False",
    "--config.model.layer_norm=false",
    "--config.losses.triplet.weight=0.5",
    "--config.losses.cluster.weight=0",
    "--config.losses.sup_hap.tau=0.02",
    "--config.input.dataset=nope",
  )
  # Every override parsed; the run then stops at the first check, on the data set it was told to read.
  assert "config.input.dataset='nope' is unknown" in ok.stderr, ok.stderr[-2000:]
  bad = _cli(*common_args, "--config.model.freez_batch_norm=False")
  assert bad.returncode != 0 and "freeze_batch_norm" in bad.stderr and "Traceback" not in bad.stderr


def _sop_config(tmp_path, **keys):
  config = experiment.compose(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadmap_sop", num_epochs=2)
  config.input.data_dir = miniatures.make_sop(str(tmp_path / "sop"))
  config.input.image_size = config.input.train_resize_size = config.input.eval_resize_size = 16
  config.input.global_batch_size = 16
  config.input.batches_per_super_tuple = 1
  config.evals.test.batch_size = 16
  common.set_model(config, "resnet18", width=4, embed_dim=8, **keys)
  return config


def test_epochs_become_steps_of_the_sampler_and_a_pair_cannot_be_set_twice(tmp_path):
  config = _sop_config(tmp_path)
  run = train.prepare(config, str(tmp_path / "run"), log=lambda _: None)
  assert run.steps_per_epoch == 3  # comb(3 super-classes, 2) x 1 batch per pair
  assert run.total_steps == 6 and run.checkpoint_every_steps == 3 and run.eval_every_steps == 60
  config.total_steps = 10
  with pytest.raises(ValueError, match="config.total_steps=10 and config.num_epochs=2 are both set"):
    train.prepare(config, str(tmp_path / "run"), log=lambda _: None)


def test_pretrained_experiments_need_weights_and_frozen_batch_norm_from_scratch_is_warned_about(tmp_path):
  config = _sop_config(tmp_path, pretrained=True)
  with pytest.raises(ValueError, match="config.model.pretrained=True.*pretrained_path"):
    train.prepare(config, str(tmp_path / "run"), log=lambda _: None)
  config.model.pretrained = False
  messages = []
  train.prepare(config, str(tmp_path / "run"), log=messages.append)
  assert any("freeze_batch_norm=True without pretrained weights" in m for m in messages)


@pytest.mark.parametrize(
  "key,value,match",
  [
    ("input.global_batch_size", 12, "global_batch_size=12"),
    ("input.samples_per_class", 3, "samples_per_class"),
    ("evals.test.split", "tset", "tset"),
    ("optim.momentum", 0.5, "momentum"),
  ],
)
def test_data_sampler_and_optimizer_errors_come_before_the_model_is_built(tmp_path, monkeypatch, key, value, match):
  config = _sop_config(tmp_path)
  group, name = key.rsplit(".", 1)
  node = config
  for part in group.split("."):
    node = node[part]
  node[name] = value
  monkeypatch.setattr(train, "create_state", lambda *a, **k: pytest.fail("the model was initialised"))
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(config, str(tmp_path / "run"), log=lambda _: None)


def test_gldv2_bench_resizes_to_1024_without_a_crop_and_evaluates_revisited_only():
  # SupRank dataset/gldv2_bench.yaml: GLDv2Dataset, batch 256, 4 per class, Resize([1024, 1024]) +
  # RandomHorizontalFlip for training; RParis6k/ROxford5k with Resize([1024, 1024]) for testing.
  config = experiment.compose(
    dataset="gldv2_bench", model="resnet_101_lm", optimizer="gldv2_bench", loss="roadmap_pp_lm"
  )
  i = config.input
  assert (i.dataset, i.global_batch_size, i.samples_per_class, i.max_per_class) == ("gldv2", 256, 4, 0)
  assert (i.image_size, i.random_resized_crop, i.horizontal_flip, i.normalization) == (1024, False, True, "imagenet")
  assert list(config.evals) == ["roxf_rpar"] and config.evals.roxf_rpar.revisited.square_size == 1024


def test_sop_deit_is_one_adamw_with_a_cosine_to_zero():
  # SupRank optimizer/sop_deit.yaml: opt.net AdamW lr 1e-5, weight_decay 5e-4; sch.net CosineAnnealingLR, eta_min 0.
  config = experiment.compose(dataset="sop", model="deit_small", optimizer="sop_deit", loss="roadmap_sop")
  o = config.optim
  assert (o.name, o.learning_rate, o.weight_decay, o.schedule, o.min_learning_rate, o.groups) == (
    "adamw",
    1e-5,
    5e-4,
    "cosine",
    0.0,
    (),
  )
