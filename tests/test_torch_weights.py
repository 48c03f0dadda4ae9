"""Tests for models/torch_weights.py: reading state dicts, name/shape checks, and PyTorch equivalence.

The equivalence tests build ResNet-50 and DeiT-S in plain torch.nn with the torchvision / timm
state-dict names, initialise them randomly, and compare their features with the converted Flax
models. They are skipped when torch is absent (CI installs the CPU wheel: ``pip install torch==2.13.0``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from suprank_jax.models import build_model, default_config
from suprank_jax.models.torch_weights import convert_state_dict, load_pretrained, load_state_dict

pytestmark = pytest.mark.usefixtures("fast_compile")


def _torch_layout(variables, scope="backbone"):
  """Hand-written inverse of the mapping: Flax variables -> a torchvision/timm-named state dict."""
  out = {}

  def walk(tree, path, collection):
    for k, v in tree.items():
      if isinstance(v, dict):
        walk(v, path + [k], collection)
        continue
      v = np.asarray(v)
      if collection == "batch_stats":
        out[".".join(path + [{"mean": "running_mean", "var": "running_var"}[k]])] = v
      elif k == "kernel":
        out[".".join(path + ["weight"])] = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v.T
      elif k == "scale":
        out[".".join(path + ["weight"])] = v
      else:
        out[".".join(path + [k])] = v

  walk(jax.tree.map(np.asarray, dict(variables["params"][scope])), [], "params")
  if "batch_stats" in variables:
    walk(jax.tree.map(np.asarray, dict(variables["batch_stats"][scope])), [], "batch_stats")
  # safetensors writes the underlying buffer, so transposed views must be made contiguous.
  return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _tiny_resnet_config(**overrides):
  c = default_config("resnet18")
  c.width = 4
  c.embed_dim = 8
  c.update(overrides)
  return c


def _init(config, size=32, seed=0):
  """The model and random variables of its shapes (``model.init`` itself compiles for a minute on CPU)."""
  model = build_model(config)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))
  rng = np.random.default_rng(seed)
  return model, jax.tree.map(lambda s: rng.normal(0.0, 0.1, s.shape).astype(np.float32), shapes)


def _assert_trees_equal(a, b):
  flat_a, tree_a = jax.tree.flatten(a)
  flat_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(flat_a, flat_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def tiny_resnet():
  config = _tiny_resnet_config()
  model, source = _init(config, seed=1)
  _, target = _init(config, seed=2)
  # Distinct running statistics, so a swapped mean/var mapping would show.
  rng = np.random.default_rng(0)
  source["batch_stats"] = jax.tree.map(
    lambda x: rng.uniform(0.5, 1.5, x.shape).astype(np.float32), source["batch_stats"]
  )
  return config, model, source, target


def test_missing_file_raises_file_not_found_naming_the_path(tmp_path):
  path = str(tmp_path / "nope.safetensors")
  with pytest.raises(FileNotFoundError, match="nope.safetensors"):
    load_state_dict(path)


def test_unknown_extension_raises(tmp_path):
  path = tmp_path / "weights.h5"
  path.write_bytes(b"")
  with pytest.raises(ValueError, match="unknown extension"):
    load_state_dict(str(path))


@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_round_trip_through_file_restores_backbone_and_keeps_head(tiny_resnet, tmp_path, ext):
  config, _, source, target = tiny_resnet
  state_dict = _torch_layout(source)
  state_dict["fc.weight"] = np.zeros((10, 32), np.float32)  # classifier: dropped
  state_dict["fc.bias"] = np.zeros((10,), np.float32)
  state_dict["bn1.num_batches_tracked"] = np.array(3, np.int64)
  path = str(tmp_path / f"w{ext}")
  if ext == ".npz":
    np.savez(path, **{f"module.{k}": v for k, v in state_dict.items()})  # DDP prefix stripped
  else:
    safetensors.numpy.save_file(state_dict, path)
  config.pretrained_path = path
  loaded = load_pretrained(target, config)
  _assert_trees_equal(loaded["params"]["backbone"], source["params"]["backbone"])
  _assert_trees_equal(loaded["batch_stats"]["backbone"], source["batch_stats"]["backbone"])
  _assert_trees_equal(loaded["params"]["head"], target["params"]["head"])


def test_pth_checkpoint_with_wrapper_and_ddp_prefix_loads(tiny_resnet, tmp_path):
  torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
  config, _, source, target = tiny_resnet
  state_dict = {f"module.{k}": torch.from_numpy(v) for k, v in _torch_layout(source).items()}
  path = str(tmp_path / "checkpoint.pth")
  torch.save({"epoch": 3, "state_dict": state_dict}, path)
  config.pretrained_path = path
  loaded = load_pretrained(target, config)
  _assert_trees_equal(loaded["params"]["backbone"], source["params"]["backbone"])
  _assert_trees_equal(loaded["batch_stats"]["backbone"], source["batch_stats"]["backbone"])


def test_empty_pretrained_path_returns_variables_unchanged(tiny_resnet):
  config, _, _, target = tiny_resnet
  config.pretrained_path = ""
  assert load_pretrained(target, config) is target


def test_shape_mismatch_names_the_parameter(tiny_resnet):
  _, _, source, target = tiny_resnet
  state_dict = _torch_layout(source)
  state_dict["layer2.0.conv1.weight"] = np.zeros((3, 4, 3, 3), np.float32)
  with pytest.raises(ValueError, match=r"layer2\.0\.conv1\.weight.*params/backbone/layer2/0/conv1/kernel"):
    convert_state_dict(state_dict, target)


def test_missing_parameter_is_named(tiny_resnet):
  _, _, source, target = tiny_resnet
  state_dict = _torch_layout(source)
  del state_dict["layer3.1.bn2.running_var"]
  with pytest.raises(ValueError, match="lacks.*batch_stats/backbone/layer3/1/bn2/var"):
    convert_state_dict(state_dict, target)


def test_unexpected_parameter_is_named(tiny_resnet):
  _, _, source, target = tiny_resnet
  state_dict = _torch_layout(source)
  state_dict["layer5.0.conv1.weight"] = np.zeros((4, 4, 3, 3), np.float32)
  with pytest.raises(ValueError, match=r"layer5\.0\.conv1\.weight"):
    convert_state_dict(state_dict, target)


def test_load_pretrained_error_names_config_key(tiny_resnet, tmp_path):
  config, _, source, target = tiny_resnet
  state_dict = _torch_layout(source)
  state_dict["conv1.weight"] = np.zeros((4, 3, 5, 5), np.float32)
  path = str(tmp_path / "bad.safetensors")
  safetensors.numpy.save_file(state_dict, path)
  config.pretrained_path = path
  with pytest.raises(ValueError, match=r"pretrained_path.*conv1\.weight"):
    load_pretrained(target, config)


def test_trainer_loads_pretrained_backbone_into_state_and_resets_optimizer(tiny_resnet, tmp_path):
  import optax

  from suprank_jax.training import train

  config, _, source, target = tiny_resnet
  path = str(tmp_path / "w.safetensors")
  safetensors.numpy.save_file(_torch_layout(source), path)
  config.pretrained_path = path
  tx = optax.adam(1e-3)
  trainable = {"model": target["params"], "loss": {}}
  # An optimizer state that has seen a step (non-zero moments), which the load must reset.
  opt_state = tx.update(jax.tree.map(jnp.ones_like, trainable), tx.init(trainable), trainable)[1]
  state = train.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=target["params"],
    batch_stats=target["batch_stats"],
    loss_params={},
    opt_state=opt_state,
    memory={},
    rng=jax.random.PRNGKey(0),
  )
  loaded = train.load_pretrained(state, config, tx)
  _assert_trees_equal(loaded.params["backbone"], source["params"]["backbone"])
  _assert_trees_equal(loaded.batch_stats["backbone"], source["batch_stats"]["backbone"])
  _assert_trees_equal(loaded.params["head"], target["params"]["head"])
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(loaded.opt_state[0].mu))


def test_distillation_token_and_its_position_are_dropped():
  config = default_config("deit_small")
  config.depth = 1
  config.img_size = 32
  _, source = _init(config, seed=1)
  _, target = _init(config, seed=2)
  state_dict = _torch_layout(source)
  pos = state_dict["pos_embed"]  # [1, 1 + 4, 384]
  dist_pos = np.full((1, 1, pos.shape[-1]), 7.0, np.float32)
  state_dict["pos_embed"] = np.concatenate([pos[:, :1], dist_pos, pos[:, 1:]], axis=1)
  state_dict["dist_token"] = np.ones((1, 1, pos.shape[-1]), np.float32)
  state_dict["head.weight"] = np.zeros((1000, 384), np.float32)
  state_dict["head_dist.weight"] = np.zeros((1000, 384), np.float32)
  loaded = convert_state_dict(state_dict, target)
  _assert_trees_equal(loaded["params"]["backbone"], source["params"]["backbone"])


# ----------------------------------------------------------------------------------------------
# Numerical equivalence with PyTorch (random init), torch CPU only.


def _torch_resnet50(torch):
  nn = torch.nn

  class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(planes)
      self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(planes)
      self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
      self.bn3 = nn.BatchNorm2d(planes * 4)
      self.relu = nn.ReLU()
      self.downsample = None
      if stride != 1 or inplanes != planes * 4:
        self.downsample = nn.Sequential(
          nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
        )

    def forward(self, x):
      out = self.relu(self.bn1(self.conv1(x)))
      out = self.relu(self.bn2(self.conv2(out)))
      out = self.bn3(self.conv3(out))
      return self.relu(out + (x if self.downsample is None else self.downsample(x)))

  class ResNet50(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      self.relu = nn.ReLU()
      self.maxpool = nn.MaxPool2d(3, 2, 1)
      inplanes = 64
      for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        layers = []
        for b in range(blocks):
          layers.append(Bottleneck(inplanes, planes, (1 if i == 0 else 2) if b == 0 else 1))
          inplanes = planes * 4
        setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
      self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
      x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
      x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
      return x.mean(dim=(2, 3))  # features before the classifier

  return ResNet50()


def _torch_deit(torch, *, dim, depth, heads, img_size, distilled):
  nn = torch.nn

  class Attention(nn.Module):
    def __init__(self):
      super().__init__()
      self.qkv = nn.Linear(dim, 3 * dim)
      self.proj = nn.Linear(dim, dim)

    def forward(self, x):
      b, n, c = x.shape
      qkv = self.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
      q, k, v = qkv[0], qkv[1], qkv[2]
      attn = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
      return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))

  class Mlp(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc1 = nn.Linear(dim, 4 * dim)
      self.act = nn.GELU()
      self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
      return self.fc2(self.act(self.fc1(x)))

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.norm1 = nn.LayerNorm(dim, eps=1e-6)
      self.attn = Attention()
      self.norm2 = nn.LayerNorm(dim, eps=1e-6)
      self.mlp = Mlp()

    def forward(self, x):
      x = x + self.attn(self.norm1(x))
      return x + self.mlp(self.norm2(x))

  class PatchEmbed(nn.Module):
    def __init__(self):
      super().__init__()
      self.proj = nn.Conv2d(3, dim, 16, 16)

    def forward(self, x):
      return self.proj(x).flatten(2).transpose(1, 2)

  class DeiT(nn.Module):
    def __init__(self):
      super().__init__()
      extra = 2 if distilled else 1
      self.patch_embed = PatchEmbed()
      self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
      if distilled:
        self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
      self.pos_embed = nn.Parameter(torch.randn(1, (img_size // 16) ** 2 + extra, dim) * 0.02)
      self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
      self.norm = nn.LayerNorm(dim, eps=1e-6)
      self.head = nn.Linear(dim, 1000)
      if distilled:
        self.head_dist = nn.Linear(dim, 1000)

    def forward(self, x):
      x = self.patch_embed(x)
      tokens = [self.cls_token.expand(x.shape[0], -1, -1)]
      if distilled:
        tokens.append(self.dist_token.expand(x.shape[0], -1, -1))
      x = torch.cat(tokens + [x], dim=1) + self.pos_embed
      return self.norm(self.blocks(x))[:, 0]  # class token, classifier reset

  return DeiT()


def _randomise_norms(torch, model, seed):
  """Non-trivial norm parameters and running statistics, so every mapping is exercised."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
        m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5 + 0.75)
        m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
        m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 0.5 + 0.75)
  return model


def _save(model, path):
  safetensors.numpy.save_file({k: v.detach().numpy() for k, v in model.state_dict().items()}, path)


def _features_config(name, path, **overrides):
  c = default_config(name)
  c.embed_dim = 0
  c.normalize = "never"
  c.pretrained_path = path
  c.update(overrides)
  return c


def test_resnet50_features_match_pytorch(tmp_path):
  torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
  torch.manual_seed(0)
  reference = _randomise_norms(torch, _torch_resnet50(torch), seed=1).eval()
  path = str(tmp_path / "resnet50.safetensors")
  _save(reference, path)
  images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    expected = reference(torch.from_numpy(images)).numpy()

  config = _features_config("resnet50", path)
  model, variables = _init(config, size=64)
  variables = load_pretrained(variables, config)
  actual = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images.transpose(0, 2, 3, 1))
  assert actual.shape == (2, 2048)
  np.testing.assert_array_less(np.max(np.abs(np.asarray(actual) - expected)), 1e-4)
  assert np.abs(expected).max() > 0.1  # features are not degenerate


def test_distilled_deit_small_features_match_pytorch_without_distillation_token(tmp_path):
  torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
  torch.manual_seed(0)
  kwargs = dict(dim=384, depth=12, heads=6, img_size=64)
  distilled = _randomise_norms(torch, _torch_deit(torch, distilled=True, **kwargs), seed=1).eval()
  path = str(tmp_path / "deit_small_distilled.safetensors")
  _save(distilled, path)
  # The original: a plain DeiT loaded (strict=False) from the distilled weights, with the
  # distillation token's position embedding removed.
  reference = _torch_deit(torch, distilled=False, **kwargs).eval()
  state_dict = dict(distilled.state_dict())
  state_dict["pos_embed"] = torch.cat([state_dict["pos_embed"][:, :1], state_dict["pos_embed"][:, 2:]], dim=1)
  reference.load_state_dict(state_dict, strict=False)
  images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    expected = reference(torch.from_numpy(images)).numpy()

  config = _features_config("deit_small", path, img_size=64)
  model, variables = _init(config, size=64)
  variables = load_pretrained(variables, config)
  actual = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images.transpose(0, 2, 3, 1))
  assert actual.shape == (2, 384)
  np.testing.assert_array_less(np.max(np.abs(np.asarray(actual) - expected)), 1e-4)
