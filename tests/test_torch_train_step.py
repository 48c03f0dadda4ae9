"""Paired training steps against PyTorch: the original's loop and ours, from the same weights on the same batch.

The torch side is written from the original's code (SupRank ``engine/base_training_loop.py``,
``engine/train.py``, ``getter.py``, ``lib/freeze_batch_norm.py``, ``models/retrieval_net.py``):

* a ResNet-18 in torchvision's layout with the retrieval head ``GeM -> LayerNorm (no affine) -> Linear ->
  L2``; batch norm frozen the original's way: each ``BatchNorm2d`` in eval mode and nothing else, so its
  weight and bias train, in the backbone's optimizer, with its weight decay;
* one optimizer per key as ``Getter.get_optimizer``: ``backbone`` and ``head`` (Adam, weight decay added to
  the gradient, the head at twice the rate), each with a ``CosineAnnealingLR`` over ``max_iter`` epochs;
  the cluster loss's class weights with their own Adam and scheduler (``ClusterLoss.opt`` / ``on_epoch``);
* the loop: the weighted sum of SupAP and the cluster loss (``loss=roadmap_pp_sop``), one backward, then
  each optimizer steps except the backbone's during the frozen warm-up (``warmup_step`` epochs); after each
  epoch past the warm-up every scheduler steps.

Its two losses are checked against the original's golden vectors first, so both sides compute the
original's numbers. Our side is the trainer's: ``preflight.make_optimizer`` on the experiment groups,
``train_state.train_step``. With one step per epoch, step 1 is the warm-up (backbone fixed), step 2 the
backbone's first Adam step, step 3 the first after a scheduler step.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax import losses, steps
from suprank_jax.configs import common
from suprank_jax.configs.groups import loss as loss_groups
from suprank_jax.configs.groups import optimizer as optimizer_groups
from suprank_jax.losses import combine
from suprank_jax.models import build_model
from suprank_jax.models.torch_weights import convert_state_dict
from suprank_jax.training import preflight, train_state

torch = pytest.importorskip("torch", reason="torch is not installed: the paired training step needs its CPU build")
nn = torch.nn
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("fast_compile")

SIZE, WIDTH, EMBED, CLASSES, PER_CLASS = 32, 16, 32, 4, 4
BATCH = CLASSES * PER_CLASS
EPOCHS, WARMUP_EPOCHS = 3, 1  # the original's max_iter and warmup_step; one step per epoch
GEM_P, GEM_EPS = 3.0, 1e-6


# ------------------------------------------------------------------------------------------------
# The torch side.


class _BasicBlock(nn.Module):
  def __init__(self, inplanes, planes, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.downsample = None
    if stride != 1 or inplanes != planes:
      self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ResNet18(nn.Module):
  """torchvision's ResNet-18 without ``avgpool``/``fc`` (the original's backbone), at stem width ``width``."""

  def __init__(self, width):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    inplanes = width
    for i in range(4):
      planes = width * 2**i
      stride = 1 if i == 0 else 2
      setattr(
        self, f"layer{i + 1}", nn.Sequential(_BasicBlock(inplanes, planes, stride), _BasicBlock(planes, planes, 1))
      )
      inplanes = planes

  def forward(self, x):
    x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
    return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _GeM(nn.Module):
  def __init__(self):
    super().__init__()
    self.p = nn.Parameter(torch.ones(1) * GEM_P)

  def forward(self, x):
    return F.avg_pool2d(x.clamp(min=GEM_EPS).pow(self.p), x.shape[-2:]).pow(1.0 / self.p)


class _RetrievalNet(nn.Module):
  """The original's ``RetrievalNet`` (norm_features=True, pooling gem): ``backbone`` and ``head``."""

  def __init__(self):
    super().__init__()
    self.backbone = _ResNet18(WIDTH)
    features = WIDTH * 8
    self.head = nn.Sequential(
      _GeM(), nn.Flatten(), nn.LayerNorm(features, elementwise_affine=False), nn.Linear(features, EMBED)
    )

  def forward(self, x):
    return F.normalize(self.head(self.backbone(x)), p=2, dim=-1)


def _freeze_batch_norm(net):
  """The original's ``freeze_batch_norm``: every BatchNorm2d in eval mode for good; nothing else."""
  for module in net.modules():
    if isinstance(module, nn.BatchNorm2d):
      module.eval()
      module.train = lambda _mode=True: None
  return net


def _torch_net(seed=0):
  torch.manual_seed(seed)
  net = _RetrievalNet()
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():  # non-trivial batch norms (ImageNet-like weights are never at their init)
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5 + 0.75)
        m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
        m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 0.5 + 0.75)
  net.train()
  return _freeze_batch_norm(net)


def _torch_sup_ap(embeddings, labels, *, tau, rho, delta, start, offset):
  """SupAP in batch mode (the batch is its own reference set; the query is among its positives):
  ``1 - mean_b mean_{i in P_b} rank+(i) / rank(i)``, exact Heaviside among positives, the SupRank
  surrogate for the negatives."""
  scores = embeddings @ embeddings.T
  positives = labels[:, None] == labels[None, :]
  diff = scores[:, None, :] - scores[:, :, None]  # [b, i, j] = s_bj - s_bi
  sig = 1.0 / (1.0 + torch.exp(-torch.clamp(diff / tau, -50.0, 50.0)))
  surrogate = torch.where(diff <= 0, sig, torch.where(diff <= delta, start + sig, rho * (diff - delta) + offset))
  heaviside = (diff >= 0).to(diff.dtype).detach()
  others = ~torch.eye(len(labels), dtype=torch.bool)[None]
  pos_j = positives[:, None, :]
  rank_plus = 1.0 + (heaviside * (pos_j & others)).sum(-1)
  rank = rank_plus + (surrogate * ~pos_j).sum(-1)
  ap = (positives * rank_plus / rank).sum(-1) / positives.sum(-1)
  return 1.0 - ap.mean()


def _torch_cluster(embeddings, labels, weight, *, temperature):
  """The cluster loss: a normalised softmax over L2-normalised class weights with a temperature."""
  return F.cross_entropy(F.linear(embeddings, F.normalize(weight, dim=1)) / temperature, labels)


def _adam_and_cosine(params, *, lr, weight_decay, eta_min):
  opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
  return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=eta_min)


def _torch_steps(net, class_weight, images, labels, hp):
  """The original's loop for ``EPOCHS`` epochs of one batch: per step the losses, every gradient and every
  parameter after the update (the loss's class weights under ``loss/cluster/proxies``)."""
  weight = nn.Parameter(class_weight.clone())
  opts, schs = {}, {}
  for key in ("backbone", "head"):
    lr = hp["lr"] * (hp["head_multiplier"] if key == "head" else 1.0)
    opts[key], schs[key] = _adam_and_cosine(
      getattr(net, key).parameters(), lr=lr, weight_decay=hp["wd"], eta_min=hp["eta_min"]
    )
  loss_opt, loss_sch = _adam_and_cosine([weight], **hp["cluster_optimizer"])
  out = []
  for epoch in range(1, EPOCHS + 1):
    embeddings = net(images)
    terms = {
      "sup_ap": _torch_sup_ap(embeddings, labels, **hp["sup_ap"]),
      "cluster": _torch_cluster(embeddings, labels, weight, temperature=hp["temperature"]),
    }
    total = sum(hp["weights"][k] * v for k, v in terms.items())
    total.backward()
    grads = {f"model/{k}": p.grad.detach().clone() for k, p in net.named_parameters()}
    grads["loss/cluster/proxies"] = weight.grad.detach().clone()
    for key, opt in opts.items():
      if epoch <= WARMUP_EPOCHS and key == "backbone":
        continue
      opt.step()
    loss_opt.step()
    net.zero_grad()
    weight.grad = None
    if epoch > WARMUP_EPOCHS:
      for sch in (*schs.values(), loss_sch):
        sch.step()
    params = {f"model/{k}": p.detach().clone() for k, p in net.named_parameters()}
    params["loss/cluster/proxies"] = weight.detach().clone()
    out.append(
      dict(
        loss=float(total.detach()), terms={k: float(v.detach()) for k, v in terms.items()}, grads=grads, params=params
      )
    )
  return out


# ------------------------------------------------------------------------------------------------
# The mapping between the two sides' parameter names.


def _torch_name(path):
  """Our trainable path -> the torch parameter name (``model/backbone/layer1/0/bn1/scale`` ->
  ``model/backbone.layer1.0.bn1.weight``)."""
  if path.startswith("loss/"):
    return path
  parts = path.split("/")[1:]
  if parts[0] == "head":
    return {
      "gem_p": "model/head.0.p",
      "projection/kernel": "model/head.3.weight",
      "projection/bias": "model/head.3.bias",
    }["/".join(parts[1:])]
  leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[parts[-1]]
  return "model/" + ".".join(parts[:-1] + [leaf])


def _to_torch_layout(path, value):
  value = np.asarray(value)
  if path.endswith("kernel"):
    return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
  return value


def _our_variables(net, model, sample):
  """Our model's variables holding ``net``'s weights."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), sample, train=False))
  variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  state_dict = {k: v.detach().numpy().copy() for k, v in net.backbone.state_dict().items()}  # not views of net
  variables = convert_state_dict(state_dict, variables, scope="backbone")
  params = jax.tree.map(np.asarray, variables["params"])
  params["head"]["gem_p"] = net.head[0].p.detach().numpy().copy()
  params["head"]["projection"]["kernel"] = net.head[3].weight.detach().numpy().T.copy()
  params["head"]["projection"]["bias"] = net.head[3].bias.detach().numpy().copy()
  return {"params": params, "batch_stats": variables["batch_stats"]}


def _experiment_config():
  """The trainer's config: ResNet-18 with the head above, ``optimizer=sop`` and ``loss=roadmap_pp_sop``."""
  config = common.base_config()
  common.set_model(
    config,
    "resnet18",
    width=WIDTH,
    embed_dim=EMBED,
    pooling="gem",
    gem_p=GEM_P,
    layer_norm=True,
    freeze_batch_norm=True,
  )
  optimizer_groups.GROUPS["sop"](config)
  loss_groups.GROUPS["roadmap_pp_sop"](config)
  config.optim.freeze_epochs = WARMUP_EPOCHS
  return config


def _torch_hyper_parameters(config):
  """The torch side's settings, read from the same config (so both sides run one experiment)."""
  o, sup, cluster = config.optim, config.losses.sup_ap, config.losses.cluster
  (head_regex, head_multiplier), (cluster_regex, cluster_setting) = o.groups
  assert head_regex == optimizer_groups.HEAD_REGEX and cluster_regex == "^loss/cluster/"
  assert o.name == "adam" and o.schedule == "cosine" and o.schedule_per_epoch
  assert cluster_setting["name"] == "adam" and cluster_setting["schedule"] == "cosine"
  return dict(
    lr=o.learning_rate,
    wd=o.weight_decay,
    eta_min=o.min_learning_rate,
    head_multiplier=head_multiplier,
    cluster_optimizer=dict(
      lr=cluster_setting["learning_rate"],
      weight_decay=cluster_setting["weight_decay"],
      eta_min=cluster_setting["min_learning_rate"],
    ),
    weights={"sup_ap": sup.weight, "cluster": cluster.weight},
    temperature=cluster.temperature,
    sup_ap={k: sup[k] for k in ("tau", "rho", "delta", "start", "offset")},
  )


def _our_steps(config, variables, class_weight, images, labels):
  model = build_model(config.model)
  tx, schedules = preflight.make_optimizer(config, EPOCHS, steps.EpochPlan(1))
  loss_fn = combine.make_loss_fn(config.losses)
  state = train_state.create_state(
    jax.random.PRNGKey(0),
    model=model,
    tx=tx,
    sample_images=images[:1],
    losses_config=config.losses,
    registry=losses.LOSSES,
    num_classes_per_level=(CLASSES,),
  )
  state = state.replace(
    params=variables["params"], batch_stats=variables["batch_stats"], loss_params={"cluster": {"proxies": class_weight}}
  )
  state = state.replace(opt_state=tx.init(state.trainable()))
  batch = {"images": jnp.asarray(images), "labels": jnp.asarray(labels)[:, None]}
  step = jax.jit(lambda s: _train_step_with_grads(s, batch, model=model, loss_fn=loss_fn, tx=tx, schedules=schedules))
  out = []
  for _ in range(EPOCHS):
    state, loss, terms, grads = step(state)
    out.append(
      dict(
        loss=float(loss),
        terms={k: float(v) for k, v in terms.items()},
        grads=grads,
        params=state.trainable(),
        batch_stats=state.batch_stats,
      )
    )
  return out


def _train_step_with_grads(state, batch, **kwargs):
  """``train_state.train_step`` plus the gradient it applied (``train_state.loss_and_grads``)."""
  step_kwargs = {k: kwargs[k] for k in ("model", "loss_fn")}
  (loss, (terms, _, _)), grads = train_state.loss_and_grads(state, batch, **step_kwargs)
  new_state, _ = train_state.train_step(state, batch, **kwargs)
  return new_state, loss, terms, grads


def _paths(tree):
  return {
    "/".join(str(k.key) for k in path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


# ------------------------------------------------------------------------------------------------
# Tests.


@pytest.mark.parametrize("case", ["supap_sop_batch_a", "cluster_batch"])
def test_the_torch_side_losses_are_the_originals(golden, case):
  meta, arrays = golden(case)
  hp = meta["hyperparameters"]
  embeddings = torch.tensor(arrays["embeddings"], dtype=torch.float64, requires_grad=True)
  labels = torch.tensor(arrays["labels"][:, hp["hierarchy_level"]])
  if case == "cluster_batch":
    weight = torch.tensor(arrays["weight"], dtype=torch.float64, requires_grad=True)
    loss = _torch_cluster(embeddings, labels, weight, temperature=hp["temperature"])
  else:
    loss = _torch_sup_ap(embeddings, labels, **{k: hp[k] for k in ("tau", "rho", "delta", "start", "offset")})
  loss.backward()
  np.testing.assert_allclose(float(loss.detach()), float(arrays["loss"]), rtol=1e-9)
  np.testing.assert_allclose(embeddings.grad.numpy(), arrays["grad_embeddings"], rtol=1e-7, atol=1e-12)
  if case == "cluster_batch":
    np.testing.assert_allclose(weight.grad.numpy(), arrays["grad_weight"], rtol=1e-7, atol=1e-12)


@pytest.fixture(scope="module")
def paired_runs():
  """Both sides' steps from the same weights and batch."""
  rng = np.random.default_rng(0)
  images = rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32)
  labels = np.repeat(np.arange(CLASSES), PER_CLASS)
  net = _torch_net()
  class_weight = (rng.uniform(-1, 1, size=(CLASSES, EMBED)) / math.sqrt(EMBED)).astype(np.float32)
  config = _experiment_config()
  variables = _our_variables(net, build_model(config.model), images[:1])
  ours = _our_steps(config, variables, class_weight, images, labels)
  running = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
  theirs = _torch_steps(
    net,
    torch.tensor(class_weight),
    torch.tensor(images.transpose(0, 3, 1, 2)),
    torch.tensor(labels),
    _torch_hyper_parameters(config),
  )
  return dict(ours=ours, theirs=theirs, variables=variables, class_weight=class_weight, net=net, running=running)


@pytest.mark.parametrize("step", range(EPOCHS))
def test_losses_gradients_and_updates_equal_the_originals(paired_runs, step):
  ours, theirs = paired_runs["ours"][step], paired_runs["theirs"][step]
  np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)
  for k in theirs["terms"]:
    np.testing.assert_allclose(ours["terms"][k], theirs["terms"][k], rtol=1e-5, err_msg=k)
  before = (
    paired_runs["ours"][step - 1]["params"]
    if step
    else {"model": paired_runs["variables"]["params"], "loss": {"cluster": {"proxies": paired_runs["class_weight"]}}}
  )
  before = {p: _to_torch_layout(p, v) for p, v in _paths(before).items()}
  errors, sizes = [], []
  for what in ("grads", "params"):
    flat = _paths(ours[what])
    assert {_torch_name(p) for p in flat} == set(theirs[what]), what
    # Per element: 1e-4 relative, plus float32 resolution at the scale of the step's largest value (GeM's
    # exponent has a gradient of ~1e-8 against 0.5 elsewhere: the LayerNorm after it all but cancels it).
    atol = 1e-6 * max(float(v.abs().max()) for v in theirs[what].values())
    for path, value in flat.items():
      actual, expected = _to_torch_layout(path, value), theirs[what][_torch_name(path)].numpy()
      np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=atol, err_msg=f"step {step + 1} {what} {path}")
      if what == "params":  # the update itself, not only the (much larger) parameter it lands on
        delta, expected_delta = actual - before[path], expected - before[path]
        error, size = np.linalg.norm(delta - expected_delta), np.linalg.norm(expected_delta)
        # Adam divides by |gradient| + 1e-8: a gradient at float32 noise level moves its element by noise.
        assert error <= 1e-2 * size, f"step {step + 1}: the update of {path} differs by {error / size:.2g}"
        errors.append(error)
        sizes.append(size)
  assert np.linalg.norm(errors) <= 1e-3 * np.linalg.norm(sizes), "the step's updates differ"


def test_the_backbone_waits_for_the_warm_up_then_batch_norm_scale_and_bias_train(paired_runs):
  steps = [_paths(s["params"]) for s in paired_runs["ours"]]
  start = _paths({"model": paired_runs["variables"]["params"]})
  bn = [p for p in start if "/bn" in p or "/downsample/1/" in p]
  assert len(bn) == 2 * (1 + 2 * 8 + 3)
  for p in start:  # step 1: the backbone's optimizer is skipped (warm-up); the head moves
    moved = not np.array_equal(steps[0][p], start[p])
    assert moved == p.startswith("model/head/"), p
  for p in bn:  # steps 2 and 3: every batch-norm scale and bias moves
    assert not np.array_equal(steps[1][p], steps[0][p]) and not np.array_equal(steps[2][p], steps[1][p]), p


def test_running_statistics_stay_fixed_on_both_sides(paired_runs):
  initial = paired_runs["variables"]["batch_stats"]
  for step in paired_runs["ours"]:
    for a, b in zip(jax.tree.leaves(step["batch_stats"]), jax.tree.leaves(initial)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for k, v in paired_runs["running"].items():
    assert torch.equal(paired_runs["net"].state_dict()[k], v), k
