"""Tests for the ResNet / ViT retrieval networks and their head (models/resnet.py, vit.py, heads.py).

Variables come from ``jax.eval_shape`` filled with numpy random values: ``model.init`` of a ResNet
compiles for about a minute on CPU, and the tests only need well-defined values.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.models import MODELS, build_model, default_config, heads

RNG = np.random.default_rng(0)


pytestmark = pytest.mark.usefixtures("fast_compile")


def _random_variables(model, size, *, seed=0, batch_stats_positive=True):
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = str(path[-1].key)
    if name in ("var", "scale"):
      return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
    if name == "gem_p":
      return np.full(s.shape, 3.0, s.dtype)
    return rng.normal(0.0, 0.1, s.shape).astype(s.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _tiny_resnet(**overrides):
  c = default_config("resnet18")
  c.width = 4
  c.embed_dim = 8
  c.update(overrides)
  return build_model(c)


def _tiny_vit(**overrides):
  c = default_config("deit_small")
  c.depth = 1
  c.img_size = 32
  c.update(overrides)
  return build_model(c)


# ----------------------------------------------------------------------------------------------
# Pooling, LayerNorm, projection, normalisation: against numpy.


def _feature_map():
  return RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)


def test_avg_max_and_avgmax_pooling_match_numpy():
  x = _feature_map()
  np.testing.assert_allclose(heads.avg_pool(x), x.mean(axis=(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(heads.max_pool(x), x.max(axis=(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(heads.avgmax_pool(x), x.mean(axis=(1, 2)) + x.max(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("p", [1.0, 3.0, 4.5])
def test_gem_pooling_matches_numpy_with_clamped_negatives(p):
  x = _feature_map()
  expected = np.mean(np.maximum(x.astype(np.float64), 1e-6) ** p, axis=(1, 2)) ** (1 / p)
  np.testing.assert_allclose(heads.gem_pool(x, np.array([p], np.float32)), expected, rtol=1e-5)


def test_pooling_rejects_vectors():
  with pytest.raises(ValueError, match="feature map"):
    heads.gem_pool(np.ones((2, 5), np.float32), 3.0)


def _apply_head(head, x, *, train=False):
  variables = head.init(jax.random.PRNGKey(0), x, train=False)
  return variables, head.apply(variables, x, train=train)


def test_head_with_layer_norm_projection_and_l2_matches_numpy():
  x = _feature_map()
  head = heads.RetrievalHead(embed_dim=3, pooling="avg", layer_norm=True, normalize="always")
  variables, out = _apply_head(head, x)
  assert set(variables["params"]) == {"projection"}  # LayerNorm without affine parameters
  pooled = x.astype(np.float64).mean(axis=(1, 2))
  standardized = (pooled - pooled.mean(-1, keepdims=True)) / np.sqrt(pooled.var(-1, keepdims=True) + 1e-5)
  proj = variables["params"]["projection"]
  e = standardized @ np.asarray(proj["kernel"], np.float64) + np.asarray(proj["bias"], np.float64)
  np.testing.assert_allclose(out, e / np.linalg.norm(e, axis=-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_head_without_projection_returns_pooled_features():
  x = _feature_map()
  variables, out = _apply_head(heads.RetrievalHead(embed_dim=0, pooling="max", normalize="never"), x)
  assert not variables.get("params")
  np.testing.assert_allclose(out, x.max(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize(
  "mode,train,unit",
  [
    ("always", True, True),
    ("always", False, True),
    ("test", True, False),
    ("test", False, True),
    ("never", True, False),
    ("never", False, False),
  ],
)
def test_l2_normalisation_modes(mode, train, unit):
  x = _feature_map() + 3.0  # pooled norms far from 1
  _, out = _apply_head(heads.RetrievalHead(embed_dim=0, pooling="avg", normalize=mode), x, train=train)
  norms = np.linalg.norm(np.asarray(out), axis=-1)
  if unit:
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
  else:
    np.testing.assert_allclose(out, x.mean(axis=(1, 2)), rtol=1e-6)


def test_gem_exponent_is_learnable_and_gem_frozen_has_no_parameter():
  x = np.abs(_feature_map()) + 0.1
  head = heads.RetrievalHead(embed_dim=0, pooling="gem", normalize="never")
  variables = head.init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(variables["params"]["gem_p"], [3.0])
  grad = jax.grad(lambda v: head.apply(v, x).sum())(variables)
  assert np.abs(grad["params"]["gem_p"]).sum() > 0
  frozen = heads.RetrievalHead(embed_dim=0, pooling="gem_frozen", gem_p=2.0, normalize="never")
  assert not frozen.init(jax.random.PRNGKey(0), x).get("params")
  expected = np.mean(x.astype(np.float64) ** 2, axis=(1, 2)) ** 0.5
  np.testing.assert_allclose(frozen.apply({}, x), expected, rtol=1e-5)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(pooling="sum"), "pooling"),
    (dict(normalize="sometimes"), "normalize"),
  ],
)
def test_head_rejects_unknown_modes(kwargs, match):
  with pytest.raises(ValueError, match=match):
    heads.RetrievalHead(**kwargs).init(jax.random.PRNGKey(0), _feature_map())


# ----------------------------------------------------------------------------------------------
# Registry and architectures.

# Backbone parameter counts of torchvision / timm without the classifier (an independent source:
# torchvision resnet18 11,689,512 - fc 513,000, ...; timm deit_small 22,050,664 - head 385,000, ...).
_BACKBONE_PARAMS = {
  "resnet18": 11_176_512,
  "resnet34": 21_284_672,
  "resnet50": 23_508_032,
  "resnet101": 42_500_160,
  "deit_small": 21_665_664,
  "deit_base": 85_798_656,
  "vit_base_patch16": 85_798_656,
}


@pytest.mark.parametrize("name", sorted(_BACKBONE_PARAMS))
def test_backbone_parameter_count_matches_torchvision_and_timm(name):
  model = build_model(default_config(name))
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)), train=False))
  count = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes["params"]["backbone"]))
  assert count == _BACKBONE_PARAMS[name]
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 224, 224, 3))), shapes)
  expected_dim = default_config(name).embed_dim or {"deit_small": 384}.get(name, 768)
  assert out.shape == (2, expected_dim) and out.dtype == jnp.float32


def test_every_registered_model_is_covered():
  assert set(MODELS) == set(_BACKBONE_PARAMS) | {"convnet"}


def test_unknown_config_key_is_reported():
  c = default_config("resnet50")
  c.dropout = 0.1
  with pytest.raises(ValueError, match="resnet50"):
    build_model(c)


@pytest.mark.parametrize(
  "overrides,match",
  [
    (dict(freeze_batch_norm=True), "freeze_batch_norm"),
    (dict(pooling="gem"), "pooling"),
  ],
)
def test_vit_rejects_batch_norm_and_spatial_pooling(overrides, match):
  model = _tiny_vit(**overrides)
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))


def test_vit_accepts_other_image_sizes_by_resizing_position_embeddings():
  model = _tiny_vit()
  variables = _random_variables(model, 32)
  out = model.apply(variables, RNG.normal(size=(2, 48, 48, 3)).astype(np.float32))
  assert out.shape == (2, 384) and np.all(np.isfinite(out))


# ----------------------------------------------------------------------------------------------
# Batch norm: frozen and trainable.


def _train_step_outputs(model, variables, images):
  def loss(params):
    out, updates = model.apply(
      {"params": params, "batch_stats": variables["batch_stats"]}, images, train=True, mutable=["batch_stats"]
    )
    return jnp.sum(out * jnp.arange(out.shape[-1])), (out, updates["batch_stats"])

  (_, (out, stats)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  return out, stats, grads


def _bn_leaves(tree):
  """Leaves of the norm layers: ``.../bnN/{scale,bias}`` and ``.../downsample/1/{scale,bias}``."""
  out = {}
  for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]:
    keys = [str(k.key) for k in path]
    if keys[-2].startswith("bn") or keys[-3:-1] == ["downsample", "1"]:
      out["/".join(keys)] = np.asarray(v)
  return out


@pytest.mark.parametrize("freeze_affine", [False, True], ids=["original", "affine_frozen"])
def test_frozen_batch_norm_keeps_statistics_fixed_and_trains_scale_and_bias_unless_told(freeze_affine):
  # The original's freeze_batch_norm: eval mode only; weight and bias keep requires_grad=True.
  model = _tiny_resnet(freeze_batch_norm=True, freeze_batch_norm_affine=freeze_affine)
  variables = _random_variables(model, 32)
  images = RNG.normal(size=(4, 32, 32, 3)).astype(np.float32)
  out, stats, grads = _train_step_outputs(model, variables, images)
  for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(variables["batch_stats"])):
    np.testing.assert_array_equal(a, b)
  bn_grads = _bn_leaves(grads["backbone"])
  # Scale and bias of every norm layer: the stem, two per basic block, three downsample shortcuts.
  assert len(bn_grads) == 2 * (1 + 2 * 8 + 3)
  for name, g in bn_grads.items():
    assert np.any(g) != freeze_affine, name
  assert np.any(np.asarray(grads["backbone"]["conv1"]["kernel"]))
  # Training mode uses the running statistics, as evaluation does.
  np.testing.assert_allclose(out, model.apply(variables, images, train=False), rtol=1e-5, atol=1e-6)


def test_frozen_batch_norm_affine_needs_frozen_batch_norm():
  model = _tiny_resnet(freeze_batch_norm=False, freeze_batch_norm_affine=True)
  with pytest.raises(ValueError, match="freeze_batch_norm_affine=True needs"):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))


def test_trainable_batch_norm_updates_statistics_and_gets_gradients():
  model = _tiny_resnet(freeze_batch_norm=False)
  variables = _random_variables(model, 32)
  images = RNG.normal(size=(4, 32, 32, 3)).astype(np.float32)
  out, stats, grads = _train_step_outputs(model, variables, images)
  old_mean = np.asarray(variables["batch_stats"]["backbone"]["bn1"]["mean"])
  assert not np.allclose(stats["backbone"]["bn1"]["mean"], old_mean)
  assert all(np.any(g) for g in _bn_leaves(grads["backbone"]).values())
  assert not np.allclose(out, model.apply(variables, images, train=False), atol=1e-4)


def test_frozen_batch_norm_matches_the_formula():
  from suprank_jax.models.resnet import FrozenBatchNorm  # pylint: disable=g-import-not-at-top

  x = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
  v = {
    "params": {"scale": RNG.uniform(0.5, 2, 4).astype(np.float32), "bias": RNG.normal(size=4).astype(np.float32)},
    "batch_stats": {"mean": RNG.normal(size=4).astype(np.float32), "var": RNG.uniform(0.5, 2, 4).astype(np.float32)},
  }
  expected = (x - v["batch_stats"]["mean"]) / np.sqrt(v["batch_stats"]["var"] + 1e-5) * v["params"]["scale"] + v[
    "params"
  ]["bias"]
  np.testing.assert_allclose(FrozenBatchNorm().apply(v, x), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Mixed precision.


@pytest.mark.parametrize("make", [_tiny_resnet, _tiny_vit], ids=["resnet", "vit"])
def test_bfloat16_compute_keeps_float32_parameters_and_outputs_close_to_float32(make):
  f32, bf16 = make(dtype="float32"), make(dtype="bfloat16")
  variables = _random_variables(f32, 32)
  shapes = jax.eval_shape(lambda: bf16.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  assert all(s.dtype == jnp.float32 for s in jax.tree.leaves(shapes))
  images = RNG.normal(size=(2, 32, 32, 3)).astype(np.float32)
  ref = f32.apply(variables, images)
  out = bf16.apply(variables, images)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, ref, atol=3e-2)
  np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Multi-scale embedding.


def _numpy_resize_align_corners(x, out_h, out_w):
  b, h, w, c = x.shape
  out = np.zeros((b, out_h, out_w, c), np.float64)
  for i in range(out_h):
    y = i * (h - 1) / (out_h - 1) if out_h > 1 else 0.0
    y0 = int(np.floor(y))
    y1 = min(y0 + 1, h - 1)
    for j in range(out_w):
      xx = j * (w - 1) / (out_w - 1) if out_w > 1 else 0.0
      x0 = int(np.floor(xx))
      x1 = min(x0 + 1, w - 1)
      dy, dx = y - y0, xx - x0
      out[:, i, j] = (
        (1 - dy) * (1 - dx) * x[:, y0, x0]
        + (1 - dy) * dx * x[:, y0, x1]
        + dy * (1 - dx) * x[:, y1, x0]
        + dy * dx * x[:, y1, x1]
      )
  return out


@pytest.mark.parametrize("size", [(5, 7), (12, 3), (1, 1), (8, 9)])
def test_align_corners_resize_matches_numpy(size):
  x = RNG.normal(size=(2, 8, 9, 3)).astype(np.float32)
  np.testing.assert_allclose(
    heads.resize_bilinear_align_corners(x, size), _numpy_resize_align_corners(x, *size), rtol=1e-5, atol=1e-6
  )


def test_multiscale_with_one_scale_equals_the_normalised_embedding():
  model = _tiny_resnet(normalize="never")
  variables = _random_variables(model, 32)
  images = RNG.normal(size=(2, 32, 32, 3)).astype(np.float32)
  e = np.asarray(model.apply(variables, images))
  np.testing.assert_allclose(
    heads.multiscale_embed(model, variables, images, scales=(1.0,)),
    e / np.linalg.norm(e, axis=-1, keepdims=True),
    rtol=1e-5,
    atol=1e-6,
  )


def test_multiscale_averages_gem_powered_embeddings_over_resized_images():
  model = _tiny_resnet(embed_dim=0, pooling="gem", normalize="always")
  variables = _random_variables(model, 32)
  variables["params"]["head"]["gem_p"] = np.array([2.5], np.float32)
  images = RNG.normal(size=(2, 32, 32, 3)).astype(np.float32)
  scales = (1.0, 0.75, 0.5)
  per_scale = []
  for s in scales:
    resized = _numpy_resize_align_corners(images, int(32 * s), int(32 * s)).astype(np.float32)
    per_scale.append(np.asarray(model.apply(variables, resized, l2_normalize_output=False), np.float64))
  assert min(e.min() for e in per_scale) > 0  # GeM features without projection are positive
  mean = np.mean([e**2.5 for e in per_scale], axis=0) ** (1 / 2.5)
  expected = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
  np.testing.assert_allclose(
    heads.multiscale_embed(model, variables, images, scales=scales), expected, rtol=1e-4, atol=1e-6
  )


# ----------------------------------------------------------------------------------------------
# Landmark pieces: pooling over each image's region, the whitening head, PCA-whitening.


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", "gem"])
def test_masked_pooling_equals_pooling_of_each_images_region(pool):
  x = np.abs(RNG.normal(size=(2, 4, 5, 3))).astype(np.float32) + 0.1
  regions = [(3, 4), (2, 5)]
  mask = np.zeros((2, 4, 5), bool)
  for b, (h, w) in enumerate(regions):
    mask[b, :h, :w] = True
  fn = {
    "avg": heads.avg_pool,
    "max": heads.max_pool,
    "avgmax": heads.avgmax_pool,
    "gem": lambda v, mask=None: heads.gem_pool(v, 3.0, mask=mask),
  }[pool]
  expected = np.concatenate([fn(x[b : b + 1, :h, :w]) for b, (h, w) in enumerate(regions)])
  np.testing.assert_allclose(fn(x, mask=mask) if pool == "gem" else fn(x, mask), expected, rtol=1e-5)


def test_resnet_image_sizes_cover_the_feature_rows_of_each_image():
  model = _tiny_resnet(pooling="gem")
  variables = _random_variables(model, 64)
  images = RNG.normal(size=(2, 64, 64, 3)).astype(np.float32)
  full = model.apply(variables, images)
  np.testing.assert_allclose(
    model.apply(variables, images, image_sizes=np.array([[64, 64], [64, 64]])), full, rtol=1e-5, atol=1e-6
  )
  # 33 x 10 pixels of a 64 x 64 canvas: the 2 x 1 feature positions that cover them (stride 32).
  out = model.apply(variables, images, image_sizes=np.array([[33, 10], [64, 64]]))
  assert not np.allclose(out[0], full[0]) and np.allclose(out[1], full[1], rtol=1e-5, atol=1e-6)


def _whitening_file(tmp_path, out_dim, in_dim, *, seed=0):
  from suprank_jax.models import whitening  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  white = whitening.Whitening(
    rng.normal(size=(out_dim, in_dim)).astype(np.float32), rng.normal(size=out_dim).astype(np.float32)
  )
  return whitening.save_whitening(str(tmp_path / "whitening.npz"), white), white


def test_whitening_head_normalises_the_pooled_features_then_applies_the_files_whitening(tmp_path):
  x = np.abs(_feature_map()) + 0.1
  path, white = _whitening_file(tmp_path, 4, x.shape[-1])
  head = heads.RetrievalHead(embed_dim=4, pooling="gem_frozen", whiten=True, whitening_path=path, normalize="never")
  variables = head.init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(variables["params"]["projection"]["kernel"], white.weight.T)
  pooled = np.mean(x.astype(np.float64) ** 3, axis=(1, 2)) ** (1 / 3)
  pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
  np.testing.assert_allclose(head.apply(variables, x), pooled @ white.weight.T + white.bias, rtol=1e-5, atol=1e-5)
  os.remove(path)  # the file is read when the parameters are made, not when they are used
  np.testing.assert_allclose(head.apply(variables, x), pooled @ white.weight.T + white.bias, rtol=1e-5, atol=1e-5)


def test_the_originals_torch_whitening_file_starts_the_landmark_projection(tmp_path):
  torch = pytest.importorskip("torch")
  from suprank_jax.models import whitening  # pylint: disable=g-import-not-at-top

  linear = torch.nn.Linear(32, 8)
  path = str(tmp_path / "gldv2_resnet101_gem_whitening.trch")
  torch.save(linear.state_dict(), path)
  model = _tiny_resnet(embed_dim=8, pooling="gem", whiten=True, whitening_path=path)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  assert shapes["params"]["head"]["projection"]["kernel"].shape == (32, 8)  # width 4: 32 pooled features
  variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))()
  np.testing.assert_allclose(variables["params"]["head"]["projection"]["kernel"], linear.weight.detach().numpy().T)
  np.testing.assert_allclose(whitening.load_whitening(path).bias, linear.bias.detach().numpy())


@pytest.mark.parametrize(
  "overrides,error,match",
  [
    (dict(whitening_path="w.npz"), ValueError, "whiten=False"),
    (dict(whiten=True, embed_dim=0), ValueError, "needs a projection"),
    (dict(whiten=True, whitening_path="/nowhere/w.npz"), FileNotFoundError, "no such file"),
  ],
)
def test_whitening_keys_are_checked_when_the_model_is_built(overrides, error, match):
  c = default_config("resnet18")
  c.update(overrides)
  with pytest.raises(error, match=match):
    build_model(c)


def test_a_whitening_of_another_shape_is_named(tmp_path):
  path, _ = _whitening_file(tmp_path, 8, 5)
  model = _tiny_resnet(embed_dim=8, whiten=True, whitening_path=path)
  with pytest.raises(ValueError, match="whitening of shape \\(8, 5\\).*projects 32 pooled features"):
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))


def _original_pca_layer(features):
  """suprank/models/tools/whiten_utils.py: pca() then create_pca_layer(whiten=True), with torch."""
  import torch  # pylint: disable=g-import-not-at-top

  features = torch.as_tensor(features, dtype=torch.float64)
  mean = features.mean(dim=0)
  n_samples = features.size(0)
  u, s, v = torch.linalg.svd(features - mean, full_matrices=False)
  signs = torch.sign(u[u.abs().argmax(0), range(u.size(1))])
  v = v * signs.unsqueeze(1)
  explained_variance = (s**2) / (n_samples - 1)
  weight = v / torch.sqrt(explained_variance).unsqueeze(1)
  return weight.numpy(), (-mean @ v.T / torch.sqrt(explained_variance)).numpy()


def test_pca_whitening_matches_the_originals_up_to_signs_and_whitens_streamed_embeddings():
  pytest.importorskip("torch")
  from suprank_jax.models import whitening  # pylint: disable=g-import-not-at-top

  x = RNG.normal(size=(400, 6)) @ RNG.normal(size=(6, 6)) + RNG.normal(size=6)
  white = whitening.learn_pca_whitening(x)
  weight, bias = _original_pca_layer(x)
  signs = np.sign(np.sum(white.weight * weight, axis=1))[:, None]
  np.testing.assert_allclose(white.weight, signs * weight, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(white.bias, signs[:, 0] * bias, rtol=1e-4, atol=1e-5)
  y = x @ white.weight.T + white.bias
  np.testing.assert_allclose(np.cov(y, rowvar=False), np.eye(6), atol=1e-4)
  np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
  streamed = whitening.learn_pca_whitening(iter(np.array_split(x, 7)))
  np.testing.assert_allclose(streamed.weight, white.weight, rtol=1e-5, atol=1e-6)
  out = whitening.apply_whitening(x[:3], white)
  np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_the_original_landmark_model_group():
  from suprank_jax.configs import common  # pylint: disable=g-import-not-at-top
  from suprank_jax.configs.groups import GROUPS  # pylint: disable=g-import-not-at-top

  config = common.base_config()
  GROUPS["model"]["resnet_101_lm"](config)
  m = config.model
  assert (m.name, m.embed_dim, m.pooling, m.whiten, m.dtype, m.pretrained) == (
    "resnet101",
    2048,
    "gem",
    True,
    "bfloat16",
    True,
  )
  model = build_model(m)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  assert shapes["params"]["head"]["projection"]["kernel"].shape == (2048, 2048)
  assert shapes["params"]["head"]["gem_p"].shape == (1,)
