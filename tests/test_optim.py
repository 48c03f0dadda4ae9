"""Parameter groups and schedules of the optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from suprank_jax import optim, steps


def _params():
  return {
    "model": {"backbone": {"kernel": jnp.ones((2, 2))}, "projection": {"kernel": jnp.ones((2,))}},
    "loss": {"cluster": {"weights": jnp.ones((3,))}},
  }


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


@pytest.mark.parametrize(
  "key,value,match",
  [("name", "lamb", "optim.name"), ("schedule", "poly", "optim.schedule"), ("groups", (("(", 1.0),), "bad regex")],
)
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
  total = np.sqrt(sum(float(jnp.sum(u**2)) for u in jax.tree.leaves(updates)))
  assert total == pytest.approx(1.0, rel=1e-5)


def test_a_group_can_have_its_own_optimizer_rate_and_schedule():
  # HAPPIER: base SGD with a step decay; the cluster weights with Adam at rate 10 and a cosine decay.
  cfg = optim.default_config()
  cfg.name = "sgd"
  cfg.momentum = 0.0
  cfg.learning_rate = 0.1
  cfg.schedule = "steps"
  cfg.decay_steps = (5,)
  cfg.groups = (
    ("^loss/", dict(name="adam", learning_rate=10.0, schedule="cosine")),
    ("projection", dict(lr_multiplier=0.5)),
  )
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


@pytest.mark.parametrize(
  "setting,match",
  [
    (dict(nme="adam"), r"groups\[0\]: unknown keys \['nme'\]"),
    (dict(name="lamb"), r"groups\[0\]\.name='lamb' is unknown"),
    ("fast", r"groups\[0\]: the setting 'fast'"),
  ],
)
def test_bad_group_settings_name_the_rule(setting, match):
  cfg = optim.default_config()
  cfg.groups = (("^loss/", setting),)
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(cfg, total_steps=10)


# --- against PyTorch -------------------------------------------------------------------------------------

_SHAPES = {"backbone": (3,), "head": (4,), "loss": (5,)}
_PATHS = {
  "backbone": ("model", "backbone", "kernel"),
  "head": ("model", "head", "projection", "kernel"),
  "loss": ("loss", "cluster", "weights"),
}
_SCHEDULE_NAMES = {"backbone": "base", "head": "^model/head/", "loss": "^loss/"}


def _initial_values():
  rng = np.random.default_rng(0)
  return {k: rng.normal(size=shape).astype(np.float32) for k, shape in _SHAPES.items()}


def _gradient(value, key, step):
  """A quadratic pulled towards a target, plus a fixed random term that changes every step."""
  noise = np.random.default_rng(1000 * step + len(key)).normal(size=value.shape).astype(np.float32)
  return (value - 0.5 + noise).astype(np.float32)


def _nest(flat):
  tree = {}
  for key, path in _PATHS.items():
    node = tree
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = flat[key]
  return tree


def _flat(tree):
  out = {}
  for key, path in _PATHS.items():
    node = tree
    for part in path:
      node = node[part]
    out[key] = np.asarray(node)
  return out


def _torch_run(torch, opt_fns, sch_fns, *, num_epochs, steps_per_epoch, freeze_epochs, per_epoch=True):
  """The reference trainer's loop: per-key optimizers, the backbone's opt.step() skipped and no scheduler
  stepped during the warm-up epochs, schedulers stepped after each epoch (or after each step)."""
  params = {k: torch.tensor(v, requires_grad=True) for k, v in _initial_values().items()}
  opts = {k: fn([params[k]]) for k, fn in opt_fns.items()}
  schs = {k: fn(opts[k]) for k, fn in sch_fns.items()}
  history = []
  for step in range(num_epochs * steps_per_epoch):
    epoch = step // steps_per_epoch + 1
    rates = {k: schs[k].get_last_lr()[0] for k in opts}
    for k, p in params.items():
      p.grad = torch.tensor(_gradient(p.detach().numpy(), k, step))
    for k, opt in opts.items():
      if freeze_epochs >= epoch and k == "backbone":  # the reference's warmup_keys: [backbone]
        continue
      opt.step()
    end_of_epoch = (step + 1) % steps_per_epoch == 0
    if (end_of_epoch or not per_epoch) and not freeze_epochs >= epoch:
      for sch in schs.values():
        sch.step()
    history.append(({k: p.detach().numpy().copy() for k, p in params.items()}, rates))
  return history


def _our_run(cfg, *, num_epochs, steps_per_epoch):
  tx, schedules = optim.make_optimizer(cfg, total_steps=num_epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch)
  params = _nest({k: jnp.asarray(v) for k, v in _initial_values().items()})
  state = tx.init(params)
  update = jax.jit(tx.update)
  history = []
  for step in range(num_epochs * steps_per_epoch):
    rates = {k: float(schedules[name](step)) for k, name in _SCHEDULE_NAMES.items() if name in schedules}
    flat = _flat(params)
    grads = _nest({k: jnp.asarray(_gradient(v, k, step)) for k, v in flat.items()})
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    history.append((_flat(params), rates))
  return history


_TORCH_CASES = {  # case: (base optimizer, its torch class and options, schedule)
  "adam_cosine": ("adam", "Adam", {}, "cosine"),
  "adamw_steps": ("adamw", "AdamW", {}, "steps"),
  "sgd_nesterov_cosine": ("sgd", "SGD", dict(momentum=0.9, nesterov=True), "cosine"),
  "sgd_momentum_steps": ("sgd", "SGD", dict(momentum=0.9), "steps"),
  "adam_cosine_per_step": ("adam", "Adam", {}, "cosine"),
}


def _torch_case(torch, case, *, num_epochs, steps_per_epoch):
  """``(torch optimizer makers, torch scheduler makers, our config)`` of a reference-style setting:
  a backbone at rate 0.05, the head at twice the rate, and the loss weights with their own Adam at 0.5
  (HAPPIER's cluster weights), all with weight decay 0.01 but the loss."""
  name, torch_name, options, schedule = _TORCH_CASES[case]
  per_epoch = not case.endswith("per_step")
  horizon = num_epochs if per_epoch else num_epochs * steps_per_epoch
  lr_sched = torch.optim.lr_scheduler

  def opt(cls, rate, decay, **kwargs):
    return lambda ps: getattr(torch.optim, cls)(ps, lr=rate, weight_decay=decay, **kwargs)

  def sch(eta_min):
    if schedule == "cosine":
      return lambda o: lr_sched.CosineAnnealingLR(o, T_max=horizon, eta_min=eta_min)
    return lambda o: lr_sched.MultiStepLR(o, milestones=[1, 3], gamma=0.3)

  loss_cls = "Adam" if name == "sgd" else torch_name
  opt_fns = {
    "backbone": opt(torch_name, 0.05, 0.01, **options),
    "head": opt(torch_name, 0.1, 0.01, **options),
    "loss": opt(loss_cls, 0.5, 0.0),
  }
  sch_fns = {"backbone": sch(1e-3), "head": sch(1e-3), "loss": sch(0.05)}

  cfg = optim.default_config()
  cfg.name = name
  cfg.learning_rate = 0.05
  cfg.weight_decay = 0.01
  cfg.nesterov = options.get("nesterov", False)
  cfg.schedule = schedule
  cfg.schedule_per_epoch = per_epoch
  loss_setting = dict(learning_rate=0.5, weight_decay=0.0)
  if name == "sgd":
    loss_setting["name"] = "adam"
  if schedule == "cosine":
    cfg.min_learning_rate = 1e-3
    loss_setting["min_learning_rate"] = 0.05
  else:
    cfg.decay_epochs = (1, 3)
    cfg.decay_factor = 0.3
  cfg.groups = (("^model/head/", 2.0), ("^loss/", loss_setting))
  return opt_fns, sch_fns, cfg


@pytest.mark.parametrize(
  "case", ["adam_cosine", "adamw_steps", "sgd_nesterov_cosine", "sgd_momentum_steps", "adam_cosine_per_step"]
)
@pytest.mark.parametrize("freeze_epochs", [0, 2])
def test_matches_torch_optimizers_and_per_epoch_schedulers_with_frozen_warmup(case, freeze_epochs):
  torch = pytest.importorskip("torch", reason="torch is not installed: the PyTorch comparison needs it")
  epochs, steps_per_epoch = 6, 3
  per_epoch = not case.endswith("per_step")
  opt_fns, sch_fns, cfg = _torch_case(torch, case, num_epochs=epochs, steps_per_epoch=steps_per_epoch)
  cfg.freeze_epochs = freeze_epochs
  expected = _torch_run(
    torch,
    opt_fns,
    sch_fns,
    num_epochs=epochs,
    steps_per_epoch=steps_per_epoch,
    freeze_epochs=freeze_epochs,
    per_epoch=per_epoch,
  )
  got = _our_run(cfg, num_epochs=epochs, steps_per_epoch=steps_per_epoch)
  for step, ((want_params, want_rates), (got_params, got_rates)) in enumerate(zip(expected, got)):
    for key in _SHAPES:
      # Relative to the parameter's scale: a coordinate that crosses 0 keeps float32 errors of that scale.
      scale = float(np.max(np.abs(want_params[key])))
      np.testing.assert_allclose(
        got_params[key], want_params[key], rtol=1e-6, atol=2e-6 * scale, err_msg=f"{case}: {key} after step {step}"
      )
      np.testing.assert_allclose(
        got_rates[key], want_rates[key], rtol=1e-6, atol=1e-9, err_msg=f"{case}: learning rate of {key} at step {step}"
      )
  if freeze_epochs:  # the backbone did not move during the warm-up
    np.testing.assert_array_equal(
      got[freeze_epochs * steps_per_epoch - 1][0]["backbone"], _initial_values()["backbone"]
    )


def test_adam_weight_decay_is_an_l2_term_and_adamw_decays_decoupled():
  params = {"w": jnp.array([2.0, -4.0])}
  grads = {"w": jnp.array([1.0, 1.0])}

  def first_update(name, weight_decay):
    cfg = optim.default_config()
    cfg.name, cfg.learning_rate, cfg.weight_decay, cfg.groups = name, 0.1, weight_decay, ()
    tx, _ = optim.make_optimizer(cfg, total_steps=10)
    return np.asarray(tx.update(grads, tx.init(params), params)[0]["w"])

  # Adam's first step is -lr * sign(g + wd * p): the decay flips the sign of the second coordinate.
  np.testing.assert_allclose(first_update("adam", 0.0), [-0.1, -0.1], rtol=1e-6)
  np.testing.assert_allclose(first_update("adam", 0.5), [-0.1, 0.1], rtol=1e-6)
  # AdamW: -lr * (sign(g) + wd * p).
  np.testing.assert_allclose(first_update("adamw", 0.5), [-0.1 - 0.1, -0.1 + 0.2], rtol=1e-6)


def test_frozen_parameters_keep_a_fresh_optimizer_state_until_the_freeze_ends():
  # Adam's first update is -lr * sign(g); had the moments or the step counter advanced during the
  # freeze, the first unfrozen update would differ.
  cfg = optim.default_config()
  cfg.learning_rate = 0.1
  cfg.freeze_steps = 4
  cfg.groups = ()
  params = _params()
  tx, schedules = optim.make_optimizer(cfg, total_steps=10)
  state = tx.init(params)
  rng = np.random.default_rng(0)
  for step in range(5):
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape) * 10**step, jnp.float32), params)
    updates, state = tx.update(grads, state, params)
    backbone = np.asarray(updates["model"]["backbone"]["kernel"])
    if step < 4:
      np.testing.assert_array_equal(backbone, 0.0)
      assert np.all(np.asarray(updates["model"]["projection"]["kernel"]) != 0)  # not frozen
    else:
      np.testing.assert_allclose(backbone, -0.1 * np.sign(grads["model"]["backbone"]["kernel"]), rtol=1e-6)
  assert float(schedules["base"](0)) == float(schedules["base"](4)) == pytest.approx(0.1)


def test_schedules_start_after_the_freeze_and_step_once_per_epoch():
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule = "cosine"
  cfg.schedule_per_epoch = True
  cfg.freeze_epochs = 1
  cfg.freeze_regex = ""  # freeze nothing: only the schedules wait
  _, schedules = optim.make_optimizer(cfg, total_steps=12, steps_per_epoch=3)  # 4 epochs
  rates = [float(schedules["base"](s)) for s in range(12)]
  expected = [1.0] * 6 + [0.5 * (1 + np.cos(np.pi / 4))] * 3 + [0.5] * 3
  np.testing.assert_allclose(rates, expected, rtol=1e-6)
  assert set(schedules) == {"base", "^loss/"}


def test_epoch_keys_resolve_with_steps_per_epoch():
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule = "steps"
  cfg.decay_epochs = (2, 3)
  cfg.decay_factor = 0.5
  cfg.warmup_epochs = 1
  _, schedules = optim.make_optimizer(cfg, total_steps=40, steps_per_epoch=10)
  rates = [float(schedules["base"](s)) for s in (0, 5, 10, 19, 20, 29, 30, 39)]
  np.testing.assert_allclose(rates, [0.0, 0.5, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25], rtol=1e-6)


def test_min_learning_rate_is_the_cosine_floor_and_is_not_multiplied():
  cfg = optim.default_config()
  cfg.learning_rate = 10.0
  cfg.schedule = "cosine"
  cfg.min_learning_rate = 0.1
  cfg.groups = (("^model/head/", 2.0),)
  _, schedules = optim.make_optimizer(cfg, total_steps=10)
  assert float(schedules["base"](10)) == pytest.approx(0.1)
  assert float(schedules["^model/head/"](0)) == pytest.approx(20.0)
  assert float(schedules["^model/head/"](10)) == pytest.approx(0.1)
  assert float(schedules["base"](5)) == pytest.approx(0.1 + 9.9 / 2)


def test_a_group_length_replaces_the_base_twin_key():
  cfg = optim.default_config()
  cfg.learning_rate = 1.0
  cfg.schedule = "steps"
  cfg.decay_epochs = (2,)
  cfg.groups = (("^loss/", dict(decay_steps=(5,))),)
  _, schedules = optim.make_optimizer(cfg, total_steps=30, steps_per_epoch=10)
  assert float(schedules["base"](19)) == pytest.approx(1.0) and float(schedules["base"](20)) == pytest.approx(0.1)
  assert float(schedules["^loss/"](4)) == pytest.approx(1.0) and float(schedules["^loss/"](5)) == pytest.approx(0.1)


def test_the_optimizer_runs_under_jit():
  cfg = optim.default_config()
  cfg.schedule = "cosine"
  cfg.freeze_steps = 2
  cfg.schedule_per_epoch = True
  tx, schedules = optim.make_optimizer(cfg, total_steps=10, steps_per_epoch=2)
  params = _params()
  state = tx.init(params)
  step = jax.jit(lambda g, s, p: tx.update(g, s, p))
  updates, state = step(jax.tree.map(jnp.ones_like, params), state, params)
  np.testing.assert_array_equal(updates["model"]["backbone"]["kernel"], 0.0)
  assert float(jax.jit(schedules["base"])(jnp.int32(5))) == pytest.approx(float(schedules["base"](5)))


def _cfg(**overrides):
  cfg = optim.default_config()
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


@pytest.mark.parametrize(
  "overrides,match",
  [
    (dict(momentum=0.5), r"config\.optim\.momentum=0\.5 would be ignored"),
    (dict(name="adamw", nesterov=True), r"config\.optim\.nesterov=True would be ignored"),
    (dict(name="sgd", momentum=0.0, nesterov=True), r"config\.optim\.nesterov=True needs momentum > 0"),
    (dict(learning_rate=-1e-3), r"config\.optim\.learning_rate=-0\.001 must be >= 0"),
    (dict(weight_decay=-1.0), r"config\.optim\.weight_decay"),
    (dict(name="sgd", momentum=-0.1), r"config\.optim\.momentum"),
    (dict(grad_clip_norm=-1.0), r"config\.optim\.grad_clip_norm"),
    (dict(min_learning_rate=0.1), r"config\.optim\.min_learning_rate=0\.1 would be ignored.*'constant'"),
    (dict(schedule="cosine", decay_steps=(5,)), r"config\.optim\.decay_steps=\(5,\) would be ignored"),
    (dict(schedule="cosine", decay_factor=0.5), r"config\.optim\.decay_factor=0\.5 would be ignored"),
    (dict(schedule="steps", decay_factor=-0.5, decay_steps=(5,)), r"config\.optim\.decay_factor=-0\.5"),
    (dict(schedule="steps"), r"config\.optim\.schedule='steps' needs milestones"),
    (dict(schedule="steps", decay_steps=(5, 3)), r"config\.optim\.decay_steps.*strictly increasing"),
    (dict(schedule="steps", decay_steps=(0,)), r"config\.optim\.decay_steps.*after the warm-up ramp"),
    (dict(schedule="steps", decay_steps=(11,)), r"config\.optim\.decay_steps.*within the 10 steps"),
    (dict(schedule="steps", decay_steps=(3,), warmup_steps=3), r"config\.optim\.decay_steps.*after the warm-up"),
    (
      dict(schedule="steps", decay_steps=(3,), decay_epochs=(1,)),
      r"config\.optim\.decay_steps=\(3,\) and config\.optim\.decay_epochs=\(1,\) are both set",
    ),
    (dict(warmup_steps=2, warmup_epochs=1), r"config\.optim\.warmup_steps=2 and config\.optim\.warmup_epochs=1"),
    (dict(freeze_steps=2, freeze_epochs=1), r"config\.optim\.freeze_steps=2 and config\.optim\.freeze_epochs=1"),
    (dict(warmup_steps=11), r"warm-up ramp of 11 steps"),
    (dict(warmup_steps=-1), r"config\.optim\.warmup_steps=-1 must be >= 0"),
    (dict(freeze_steps=10), r"frozen warm-up of 10 steps .* covers the whole run"),
    (dict(freeze_regex="^model/head/"), r"config\.optim\.freeze_regex='\^model/head/' would be ignored"),
    (dict(freeze_steps=2, freeze_regex="("), r"config\.optim\.freeze_regex: bad regex"),
    (
      dict(groups=(("^loss/", dict(name="sgd", nesterov="yes")),)),
      r"config\.optim\.groups\[0\]\.nesterov='yes' must be True or False",
    ),
    (dict(groups=(("^loss/", dict(freeze_steps=3)),)), r"groups\[0\]: \['freeze_steps'\] are global"),
    (dict(groups=(("^loss/", dict(momentum=0.5)),)), r"config\.optim\.groups\[0\]\.momentum=0\.5 would be ignored"),
    (
      dict(groups=(("^loss/", dict(name="sgd", nesterov=True, momentum=0.0)),)),
      r"config\.optim\.groups\[0\]\.nesterov=True needs momentum > 0",
    ),
    (dict(groups=(("^loss/", dict(learning_rate=-1.0)),)), r"config\.optim\.groups\[0\]\.learning_rate=-1\.0"),
    (dict(groups=(("^loss/", dict(lr_multiplier=-2.0)),)), r"config\.optim\.groups\[0\]\.lr_multiplier=-2\.0"),
    (dict(groups=(("^loss/", -1.0),)), r"config\.optim\.groups\[0\] \(lr multiplier\)=-1\.0"),
    (
      dict(groups=(("^loss/", dict(schedule="cosine", decay_epochs=(2,))),)),
      r"config\.optim\.groups\[0\]\.decay_epochs=\(2,\) would be ignored",
    ),
    (dict(groups=(("^loss/", dict(schedule="steps")),)), r"config\.optim\.groups\[0\]\.schedule='steps' needs"),
    (
      dict(groups=(("^loss/", dict(warmup_epochs=1)),)),
      r"config\.optim\.groups\[0\]\.warmup_epochs=1 needs the "
      r"number of steps per epoch",
    ),
    (dict(groups=(("^loss/",),)), r"config\.optim\.groups\[0\]=.*must be a \(regex, setting\) pair"),
    (dict(schedule_per_epoch=True), r"config\.optim\.schedule_per_epoch=True needs the number of steps per epoch"),
    (dict(warmup_epochs=1), r"config\.optim\.warmup_epochs=1 needs the number of steps per epoch"),
  ],
)
def test_invalid_or_ignored_options_raise_naming_the_key(overrides, match):
  cfg = _cfg(**overrides)
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(cfg, total_steps=10)


def test_an_inherited_value_that_the_group_does_not_use_is_fine():
  # The base's SGD momentum and milestones are not the Adam group's business: no "ignored" error.
  cfg = _cfg(name="sgd", momentum=0.5, nesterov=True, schedule="steps", decay_steps=(5,))
  cfg.groups = (("^loss/", dict(name="adam", schedule="cosine")),)
  optim.make_optimizer(cfg, total_steps=10)


def test_unknown_keys_and_a_freeze_regex_that_matches_nothing_raise():
  cfg = optim.default_config()
  cfg.unlock()
  cfg.betas = (0.9, 0.99)
  with pytest.raises(ValueError, match=r"config\.optim\.betas is not an optimizer key"):
    optim.make_optimizer(cfg, total_steps=10)
  tx, _ = optim.make_optimizer(_cfg(freeze_steps=2, freeze_regex="^model/trunk/"), total_steps=10)
  with pytest.raises(ValueError, match=r"config\.optim\.freeze_regex='\^model/trunk/' matches no parameter"):
    tx.init(_params())


# --- steps.py -------------------------------------------------------------------------------------------


def test_to_steps_resolves_either_key_of_a_pair():
  assert steps.to_steps(0, 5, 120, "w_steps", "w_epochs") == 600
  assert steps.to_steps(7, 0, None, "w_steps", "w_epochs") == 7
  assert steps.to_steps(None, None, None, "config.total_steps", "config.num_epochs") == 0
  assert steps.to_steps((), (30, 70), 10, "d_steps", "d_epochs") == (300, 700)
  assert steps.to_steps((3, 4), (), None, "d_steps", "d_epochs") == (3, 4)
  assert steps.to_steps(0, 0.5, 5, "x_steps", "x_epochs") == 3  # nearest step, halves up


@pytest.mark.parametrize(
  "args,match",
  [
    ((5, 2, 10), r"a_steps=5 and a_epochs=2 are both set"),
    ((0, 2, None), r"a_epochs=2 needs the number of steps per epoch"),
    ((-1, 0, 10), r"a_steps=-1 must be >= 0"),
    ((0, -1, 10), r"a_epochs=-1 must be >= 0"),
    ((2.5, 0, 10), r"a_steps=2\.5 must be a whole number"),
    (((1, 2), 3, 10), r"a_epochs=3 must be a tuple"),
    ((0, 1, 0), r"steps_per_epoch=0"),
  ],
)
def test_to_steps_errors_name_the_key(args, match):
  with pytest.raises(ValueError, match=match):
    steps.to_steps(*args, "a_steps", "a_epochs")
