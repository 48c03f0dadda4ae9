"""ResNet-18/34/50/101 backbones in the torchvision layout, with the retrieval head.

The parameter tree mirrors torchvision's state-dict keys (``layer1/0/conv1/kernel`` for
``layer1.0.conv1.weight``, ``layer1/0/downsample/0`` for the projection shortcut), so
``torch_weights.py`` maps weights by name. Convolutions use explicit PyTorch padding (``'SAME'`` with
stride 2 pads differently from PyTorch), batch norm has eps 1e-5 and momentum 0.9 (PyTorch's 0.1).

Batch norm is trainable (batch statistics in training, running averages updated) or frozen
(``freeze_batch_norm=True``): the running statistics are always used and never updated, as the
original's ``freeze_batch_norm`` puts each ``BatchNorm2d`` in eval mode, and the scale and bias still
train (they keep ``requires_grad`` there and sit in the backbone's optimizer). ``freeze_batch_norm_affine``
also fixes the scale and bias (a deliberate difference from the original, off in every experiment).
All keep ``scale``/``bias`` in ``params`` and ``mean``/``var`` in ``batch_stats``, so checkpoints and
converted weights fit any of them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from suprank_jax.models.heads import RetrievalHead

__all__ = [
  "RESNET_LAYERS",
  "FrozenBatchNorm",
  "ResNet",
  "RetrievalResNet",
  "resnet18",
  "resnet34",
  "resnet50",
  "resnet101",
]

# depth -> (block kind, blocks per stage), as torchvision.
RESNET_LAYERS = {
  18: ("basic", (2, 2, 2, 2)),
  34: ("basic", (3, 4, 6, 3)),
  50: ("bottleneck", (3, 4, 6, 3)),
  101: ("bottleneck", (3, 4, 23, 3)),
}

_BN_EPS = 1e-5
_BN_MOMENTUM = 0.9  # flax convention: running = momentum * running + (1 - momentum) * batch
# torchvision's conv init: kaiming normal, fan_out, relu gain.
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _dtype(dtype: Any) -> jnp.dtype:
  return jnp.dtype(dtype)


class FrozenBatchNorm(nn.Module):
  """Batch norm with fixed statistics (same variables as ``nn.BatchNorm``): torch's eval mode.

  ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with the stored running statistics, whatever
  ``train`` is. ``scale`` and ``bias`` get their gradient, unless ``freeze_affine`` puts them behind
  ``stop_gradient``.
  """

  epsilon: float = _BN_EPS
  dtype: Any = jnp.float32
  freeze_affine: bool = False

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32)).value
    var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32)).value
    if self.freeze_affine:
      scale, bias = jax.lax.stop_gradient(scale), jax.lax.stop_gradient(bias)
    # Folded into one multiply-add, computed in float32 and applied in the compute dtype.
    mul = scale * jax.lax.rsqrt(var + self.epsilon)
    add = bias - mean * mul
    return x * mul.astype(self.dtype) + add.astype(self.dtype)


# How a ResNet's batch norm behaves (``bn`` of the blocks below): trainable, statistics frozen (the
# original's freeze), or statistics and affine parameters frozen.
BN_TRAIN, BN_FROZEN_STATS, BN_FROZEN_ALL = "train", "frozen_stats", "frozen_all"


def batch_norm_mode(freeze_batch_norm: bool, freeze_batch_norm_affine: bool) -> str:
  if freeze_batch_norm_affine and not freeze_batch_norm:
    raise ValueError(
      "config.model.freeze_batch_norm_affine=True needs config.model.freeze_batch_norm=True (it "
      "also fixes the scale and bias of the frozen batch norm); set both, or neither"
    )
  if not freeze_batch_norm:
    return BN_TRAIN
  return BN_FROZEN_ALL if freeze_batch_norm_affine else BN_FROZEN_STATS


def _norm(bn: str, train: bool, dtype, name: str):
  if bn != BN_TRAIN:
    return FrozenBatchNorm(dtype=dtype, freeze_affine=bn == BN_FROZEN_ALL, name=name)
  return nn.BatchNorm(
    use_running_average=not train,
    momentum=_BN_MOMENTUM,
    epsilon=_BN_EPS,
    use_fast_variance=False,
    dtype=dtype,
    param_dtype=jnp.float32,
    name=name,
  )


def _conv(features, kernel, stride, dtype, name):
  pad = kernel // 2
  return nn.Conv(
    features,
    (kernel, kernel),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    use_bias=False,
    kernel_init=_CONV_INIT,
    dtype=dtype,
    param_dtype=jnp.float32,
    name=name,
  )


class _Downsample(nn.Module):
  """The projection shortcut, named ``downsample/0`` (conv) and ``downsample/1`` (bn) as torchvision."""

  features: int
  stride: int
  bn: str
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    x = _conv(self.features, 1, self.stride, self.dtype, "0")(x)
    return _norm(self.bn, train, self.dtype, "1")(x)


# block kind -> its convolutions: (output channels over the planes, kernel, whether it takes the stride).
# torchvision's BasicBlock, and its Bottleneck (ResNet v1.5: the stride sits on the 3x3 convolution).
_BLOCK_CONVS = {
  "basic": ((1, 3, True), (1, 3, False)),
  "bottleneck": ((1, 1, False), (1, 3, True), (4, 1, False)),
}


class _Block(nn.Module):
  """A residual block of ``kind`` (``_BLOCK_CONVS``): ``conv1``, ``bn1``, ReLU, ..., the last ``convK`` and
  ``bnK``, plus the input (projected by ``downsample`` where the shape changes), then a ReLU."""

  kind: str
  planes: int
  stride: int
  bn: str
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    convs = _BLOCK_CONVS[self.kind]
    y = x
    for i, (expansion, kernel, strided) in enumerate(convs, 1):
      y = _conv(self.planes * expansion, kernel, self.stride if strided else 1, self.dtype, f"conv{i}")(y)
      y = _norm(self.bn, train, self.dtype, f"bn{i}")(y)
      if i < len(convs):
        y = nn.relu(y)
    residual = x
    if self.stride != 1 or x.shape[-1] != y.shape[-1]:
      residual = _Downsample(y.shape[-1], self.stride, self.bn, self.dtype, name="downsample")(x, train)
    return nn.relu(y + residual)


class _Stage(nn.Module):
  """``layerN``: blocks named ``0``, ``1``, ... as in torchvision's ``nn.Sequential``."""

  block: str
  planes: int
  num_blocks: int
  stride: int
  bn: str
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    for i in range(self.num_blocks):
      x = _Block(self.block, self.planes, self.stride if i == 0 else 1, self.bn, self.dtype, name=str(i))(x, train)
    return x


class ResNet(nn.Module):
  """torchvision ResNet without the classifier: ``[B, H, W, 3] -> [B, H/32, W/32, C]`` feature map.

  Attributes:
    depth: 18, 34, 50 or 101.
    width: channels of the stem and first stage (64 in torchvision; smaller only for tests).
    bn: batch norm: ``BN_TRAIN``, ``BN_FROZEN_STATS`` or ``BN_FROZEN_ALL`` (see the module docstring).
    dtype: computation dtype; parameters stay float32.
  """

  depth: int = 50
  width: int = 64
  bn: str = BN_FROZEN_STATS
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    block, _ = RESNET_LAYERS[self.depth]
    return self.width * 8 * _BLOCK_CONVS[block][-1][0]

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    if self.depth not in RESNET_LAYERS:
      raise ValueError(f"ResNet depth={self.depth} is not supported; valid: {sorted(RESNET_LAYERS)}")
    dtype = _dtype(self.dtype)
    block, layers = RESNET_LAYERS[self.depth]
    x = images.astype(dtype)
    x = _conv(self.width, 7, 2, dtype, "conv1")(x)
    if self.bn not in (BN_TRAIN, BN_FROZEN_STATS, BN_FROZEN_ALL):
      raise ValueError(f"ResNet bn={self.bn!r}; valid: {[BN_TRAIN, BN_FROZEN_STATS, BN_FROZEN_ALL]}")
    x = nn.relu(_norm(self.bn, train, dtype, "bn1")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, num_blocks in enumerate(layers):
      x = _Stage(block, self.width * 2**i, num_blocks, 1 if i == 0 else 2, self.bn, dtype, name=f"layer{i + 1}")(
        x, train
      )
    return x


class RetrievalResNet(nn.Module):
  """ResNet backbone plus retrieval head: ``[B, H, W, 3] -> [B, embed_dim]`` float32 embeddings.

  Parameters live under ``backbone`` (torchvision names) and ``head`` (``projection``, ``gem_p``).

  Attributes:
    depth: 18, 34, 50 or 101.
    embed_dim: projection size; 0 for none (the embedding is then the pooled features).
    pooling: 'avg' (or 'default'), 'gem', 'gem_frozen', 'max', 'avgmax'.
    gem_p: initial GeM exponent.
    layer_norm: affine-free LayerNorm on the pooled features (the ``resnet_ln`` configs).
    normalize: 'always', 'test' or 'never' (L2 normalisation of the output).
    freeze_batch_norm: frozen batch norm: running statistics fixed (torch's eval mode, the original's
      ``freeze_batch_norm``); scale and bias still train.
    freeze_batch_norm_affine: with ``freeze_batch_norm``, the scale and bias fixed too (not the
      original's behaviour; off in every experiment).
    dtype: 'float32' or 'bfloat16' computation in the backbone; parameters and output stay float32.
    width: stem width (64; smaller only for tests).
    whiten: L2-normalise the pooled features before the projection, a whitening (the original's
      landmark model, ``resnet_101_LM``: ``whiten: <file>``).
    whitening_path: the learned whitening the projection starts from (``models/whitening.py``).
  """

  depth: int = 50
  embed_dim: int = 512
  pooling: str = "avg"
  gem_p: float = 3.0
  layer_norm: bool = False
  normalize: str = "always"
  freeze_batch_norm: bool = True
  freeze_batch_norm_affine: bool = False
  dtype: Any = "float32"
  width: int = 64
  whiten: bool = False
  whitening_path: str = ""

  @nn.compact
  def __call__(self, images, *, train: bool = False, l2_normalize_output: bool | None = None, image_sizes=None):
    """Embeds ``images [B, H, W, 3]``; ``l2_normalize_output`` overrides ``normalize`` when not None.

    ``image_sizes``: optional ``[B, 2]`` integer (height, width) of each image in the top-left corner of
    its zero-padded row: the pooling then covers the feature positions of that region,
    ``ceil(h * H' / H)`` rows and ``ceil(w * W' / W)`` columns of the ``H' x W'`` map (ResNet's stride
    32 on a batch shape that is a multiple of 32). The features near the padded border still see
    the padding through their receptive field, so this approximates embedding each image alone.
    """
    if images.ndim != 4:
      raise ValueError(f"images must be [batch, height, width, channels]; got shape {images.shape}")
    pooling = "avg" if self.pooling == "default" else self.pooling
    if pooling == "token":
      raise ValueError("config.model.pooling='token' is for transformer backbones; ResNet needs a spatial pooling")
    bn = batch_norm_mode(self.freeze_batch_norm, self.freeze_batch_norm_affine)
    features = ResNet(self.depth, self.width, bn, self.dtype, name="backbone")(images, train=train)
    feature_mask = None
    if image_sizes is not None:
      sizes = jnp.asarray(image_sizes, jnp.int32)
      (height, width), (fh, fw) = images.shape[1:3], features.shape[1:3]
      rows, cols = (sizes[:, 0] * fh + height - 1) // height, (sizes[:, 1] * fw + width - 1) // width
      feature_mask = (jnp.arange(fh)[None, :, None] < rows[:, None, None]) & (
        jnp.arange(fw)[None, None, :] < cols[:, None, None]
      )
    head = RetrievalHead(
      self.embed_dim,
      pooling,
      self.gem_p,
      self.layer_norm,
      self.normalize,
      self.whiten,
      self.whitening_path,
      name="head",
    )
    return head(features, train=train, l2_normalize_output=l2_normalize_output, feature_mask=feature_mask)


def _factory(depth: int):
  def make(**kwargs) -> RetrievalResNet:
    return RetrievalResNet(depth=depth, **kwargs)

  make.__name__ = f"resnet{depth}"
  make.__doc__ = f"ResNet-{depth} retrieval network; keyword arguments are ``RetrievalResNet``'s attributes."
  return make


resnet18 = _factory(18)
resnet34 = _factory(34)
resnet50 = _factory(50)
resnet101 = _factory(101)
