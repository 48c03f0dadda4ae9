"""Parameter groups and schedules of the optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax import optim


def _params():
  return {"model": {"backbone": {"kernel": jnp.ones((2, 2))}, "projection": {"kernel": jnp.ones((2,))}},
          "loss": {"cluster": {"weights": jnp.ones((3,))}}}


def _one_step(cfg, grads_value=1.0):
  params = _params()
  tx, schedules = optim.make_optimizer(cfg, total_steps=10)
  grads = jax.tree.map(lambda x: jnp.full_like(x, grads_value), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates, schedules


def test_groups_scale_the_learning_rate_of_matching_paths():
  cfg = optim.default_config()
  cfg.name = "sgd"
  cfg.momentum = 0.0
  cfg.learning_rate = 0.1
  cfg.groups = (("^loss/", 10.0), ("backbone", None))
  updates, schedules = _one_step(cfg)
  np.testing.assert_allclose(updates["model"]["projection"]["kernel"], -0.1)
  np.testing.assert_allclose(updates["loss"]["cluster"]["weights"], -1.0)
  np.testing.assert_allclose(updates["model"]["backbone"]["kernel"], 0.0)  # frozen
  assert set(schedules) == {"base", "^loss/"}


def test_param_paths_join_keys_with_slashes():
  paths = optim.param_paths(_params())
  assert paths["loss"]["cluster"]["weights"] == "loss/cluster/weights"


def test_warmup_and_cosine_schedule():
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule = "cosine"
  cfg.warmup_steps = 2
  _, schedules = optim.make_optimizer(cfg, total_steps=10)
  lr = schedules["base"]
  assert float(lr(0)) == pytest.approx(0.0)
  assert float(lr(1)) == pytest.approx(0.5)
  assert float(lr(2)) == pytest.approx(1.0)
  assert float(lr(10)) == pytest.approx(0.0, abs=1e-6)


def test_steps_schedule_decays_at_the_given_steps():
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule = "steps"
  cfg.decay_steps = (3, 6)
  _, schedules = optim.make_optimizer(cfg, total_steps=10)
  assert [round(float(schedules["base"](s)), 6) for s in (0, 3, 6)] == [1.0, 0.1, 0.01]


@pytest.mark.parametrize("key,value,match", [("name", "lamb", "optim.name"), ("schedule", "poly", "optim.schedule"),
                                             ("groups", (("(", 1.0),), "bad regex")])
def test_bad_optimizer_config_names_the_key(key, value, match):
  cfg = optim.default_config()
  cfg.unlock()
  cfg[key] = value
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(cfg, total_steps=10)


def test_gradient_clipping():
  cfg = optim.default_config()
  cfg.name = "sgd"
  cfg.momentum = 0.0
  cfg.learning_rate = 1.0
  cfg.grad_clip_norm = 1.0
  cfg.groups = ()
  updates, _ = _one_step(cfg, grads_value=100.0)
  total = np.sqrt(sum(float(jnp.sum(u ** 2)) for u in jax.tree.leaves(updates)))
  assert total == pytest.approx(1.0, rel=1e-5)



def test_a_group_can_have_its_own_optimizer_rate_and_schedule():
  # HAPPIER: base SGD with a step decay; the cluster weights with Adam at rate 10 and a cosine decay.
  cfg = optim.default_config()
  cfg.name = "sgd"
  cfg.momentum = 0.0
  cfg.learning_rate = 0.1
  cfg.schedule = "steps"
  cfg.decay_steps = (5,)
  cfg.groups = (("^loss/", dict(name="adam", learning_rate=10.0, schedule="cosine")),
                ("projection", dict(lr_multiplier=0.5)))
  params = _params()
  tx, schedules = optim.make_optimizer(cfg, total_steps=10)
  grads = jax.tree.map(lambda x: jnp.full_like(x, 3.0), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["model"]["backbone"]["kernel"], -0.3)  # SGD: -lr * grad
  np.testing.assert_allclose(updates["model"]["projection"]["kernel"], -0.15)  # SGD at half the rate
  np.testing.assert_allclose(updates["loss"]["cluster"]["weights"], -10.0, rtol=1e-4)  # Adam: -lr * sign
  assert float(schedules["^loss/"](10)) == pytest.approx(0.0, abs=1e-6)  # cosine to 0
  assert float(schedules["projection"](6)) == pytest.approx(0.005)  # the base step decay, halved
  assert cfg.name == "sgd" and cfg.learning_rate == 0.1  # the base config is untouched


@pytest.mark.parametrize("setting,match", [(dict(nme="adam"), r"groups\[0\]: unknown keys \['nme'\]"),
                                           (dict(name="lamb"), r"groups\[0\].*optim.name='lamb'"),
                                           ("fast", r"groups\[0\]: the setting 'fast'")])
def test_bad_group_settings_name_the_rule(setting, match):
  cfg = optim.default_config()
  cfg.groups = (("^loss/", setting),)
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(cfg, total_steps=10)
