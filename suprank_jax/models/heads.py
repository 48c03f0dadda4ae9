"""The retrieval head of the original experiments, plus multi-scale embedding at test time.

Head: pooling of the backbone's feature map (average by default, GeM with a learnable exponent,
max, or mean+max), an optional LayerNorm without affine parameters (the ``resnet_ln`` configs), a
linear projection to ``embed_dim`` (or none), and L2 normalisation (always, at test time only, or
never). The head computes in float32 whatever the backbone's dtype.

Whitening (``whiten=True``, the original's landmark model ``resnet_101_LM``): the pooled features
are L2-normalised before the projection, and the projection starts from the learned whitening of
``whitening_path`` (:mod:`suprank_jax.models.whitening`; the original's ``whiten: <file>``), then
trains as any projection. Without a file it starts from the usual random initialisation.

Pooling over part of the map (``feature_mask``): images of different sizes padded into one batch
are pooled over their own region only (:meth:`RetrievalHead.__call__`).

Multi-scale embedding (``multiscale_embed``, the package's one implementation) follows the original's
``RetrievalNet.forward_multiscale`` (itself cirtorch's): resize the images with
``F.interpolate(scale_factor=s, mode='bilinear', align_corners=True)`` (size ``floor(H s)``), embed
each scale without the final normalisation, average the embeddings raised to the GeM exponent (1
for other poolings), take the root, L2-normalise; the original evaluates with the scales
:data:`MULTISCALE_SCALES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# One L2 normalisation for the models' outputs and the losses (torch's F.normalize, finite gradient at 0).
from suprank_jax.losses.inputs import l2_normalize
from suprank_jax.models import whitening as whitening_lib

__all__ = [
  "POOLINGS",
  "NORMALIZE_MODES",
  "avg_pool",
  "max_pool",
  "avgmax_pool",
  "gem_pool",
  "layer_norm_no_affine",
  "resize_bilinear_align_corners",
  "RetrievalHead",
  "multiscale_embed",
  "MULTISCALE_SCALES",
]

# The original's multi-scale evaluation (landmark_evaluation.evaluate_a_city: [1, 1/sqrt(2), 1/2]).
MULTISCALE_SCALES = (1.0, 2**-0.5, 0.5)

# 'gem' learns its exponent (the original's default 'gem'); 'gem_frozen' keeps it fixed ('gem_froze').
# 'token' is for transformer backbones, whose features are already a vector (the class token).
POOLINGS = ("avg", "max", "avgmax", "gem", "gem_frozen", "token")
NORMALIZE_MODES = ("always", "test", "never")


def _check_map(x, name):
  if x.ndim != 4:
    raise ValueError(f"{name} expects a feature map [batch, height, width, channels]; got shape {x.shape}")


def _mean(x, mask):
  """Mean over the positions of ``x [B, H, W, C]`` (those where ``mask [B, H, W]`` is True)."""
  if mask is None:
    return jnp.mean(x, axis=(1, 2))
  m = mask[..., None].astype(x.dtype)
  return jnp.sum(x * m, axis=(1, 2)) / jnp.maximum(jnp.sum(m, axis=(1, 2)), 1)


def _max(x, mask):
  if mask is None:
    return jnp.max(x, axis=(1, 2))
  return jnp.max(jnp.where(mask[..., None], x, -jnp.inf), axis=(1, 2))


def avg_pool(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Global average pooling: ``[B, H, W, C] -> [B, C]`` (over the positions of ``mask [B, H, W]``)."""
  _check_map(x, "avg_pool")
  return _mean(x, mask)


def max_pool(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Global max pooling: ``[B, H, W, C] -> [B, C]`` (over the positions of ``mask``)."""
  _check_map(x, "max_pool")
  return _max(x, mask)


def avgmax_pool(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Sum of global average and global max pooling (the original's ``MeanMaxPooling``): ``[B, C]``."""
  _check_map(x, "avgmax_pool")
  return _mean(x, mask) + _max(x, mask)


def gem_pool(x: jax.Array, p, *, eps: float = 1e-6, mask: jax.Array | None = None) -> jax.Array:
  r"""Generalised-mean pooling: ``[B, H, W, C] -> [B, C]``.

  .. math:: \mathrm{GeM}(x)_c = \Big(\frac{1}{HW}\sum_{h,w} \max(x_{hwc}, \epsilon)^p\Big)^{1/p}

  Args:
    x: feature map ``[B, H, W, C]``.
    p: exponent, a scalar (or a ``[1]`` array, as the learnable parameter is stored).
    eps: lower clamp of the features, so the power is defined.
    mask: optional ``[B, H, W]`` booleans: the mean is over these positions only.

  Returns:
    ``[B, C]`` pooled features.
  """
  _check_map(x, "gem_pool")
  p = jnp.reshape(jnp.asarray(p, x.dtype), ())
  return _mean(jnp.maximum(x, eps) ** p, mask) ** (1.0 / p)


def layer_norm_no_affine(x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
  """LayerNorm over the last axis without scale or bias (``nn.LayerNorm(d, elementwise_affine=False)``)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def resize_bilinear_align_corners(images: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear resize with ``align_corners=True`` (as ``F.interpolate`` in the original's multi-scale).

  Args:
    images: ``[B, H, W, C]``.
    size: output ``(height, width)``.

  Returns:
    ``[B, height, width, C]`` in the input dtype.
  """
  if images.ndim != 4:
    raise ValueError(f"images must be [batch, height, width, channels]; got shape {images.shape}")
  out_h, out_w = size
  if out_h < 1 or out_w < 1:
    raise ValueError(f"size must be positive; got {size}")
  h, w = images.shape[1:3]

  def coords(n_in, n_out):
    pos = jnp.linspace(0.0, n_in - 1.0, n_out) if n_out > 1 else jnp.zeros((1,))
    lo = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, n_in - 1)
    hi = jnp.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(jnp.float32)

  y0, y1, wy = coords(h, out_h)
  x0, x1, wx = coords(w, out_w)
  x = images.astype(jnp.float32)
  rows = x[:, y0] * (1.0 - wy)[None, :, None, None] + x[:, y1] * wy[None, :, None, None]
  out = rows[:, :, x0] * (1.0 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]
  return out.astype(images.dtype)


def _torch_bias_init(fan_in: int):
  """``torch.nn.Linear``'s bias init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; Dense does not pass fan_in."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _whitening_init(path: str, in_dim: int, out_dim: int):
  """Initialisers of the projection from the whitening file ``path`` (kernel ``weight.T``, bias)."""
  white = whitening_lib.load_whitening(path)
  if white.weight.shape != (out_dim, in_dim):
    raise ValueError(
      f"config.model.whitening_path={path!r} holds a whitening of shape {white.weight.shape} "
      f"(out, in); the model projects {in_dim} pooled features to embed_dim={out_dim}"
    )

  def kernel(key, shape, dtype=jnp.float32):
    del key
    return jnp.asarray(white.weight.T, dtype).reshape(shape)

  def bias(key, shape, dtype=jnp.float32):
    del key
    return jnp.asarray(white.bias, dtype).reshape(shape)

  return kernel, bias


class RetrievalHead(nn.Module):
  """Pooling, optional affine-free LayerNorm or L2 whitening input, optional projection, L2 normalisation.

  Attributes:
    embed_dim: size of the linear projection; 0 means no projection (the original's ``without_fc``).
    pooling: one of ``POOLINGS``; 'token' takes vector features as they are.
    gem_p: initial (or fixed, for 'gem_frozen') GeM exponent.
    layer_norm: LayerNorm without affine parameters on the pooled features (``norm_features``).
    normalize: 'always', 'test' (only when ``train=False``; the original's ``normalize: False``)
      or 'never'.
    whiten: L2-normalise the pooled features before the projection, which is a whitening (the
      original's ``whiten``; needs a projection, excludes ``layer_norm``).
    whitening_path: the whitening file the projection starts from ('' for a random start).
  """

  embed_dim: int = 512
  pooling: str = "avg"
  gem_p: float = 3.0
  layer_norm: bool = False
  normalize: str = "always"
  whiten: bool = False
  whitening_path: str = ""

  @nn.compact
  def __call__(
    self,
    features: jax.Array,
    *,
    train: bool = False,
    l2_normalize_output: bool | None = None,
    feature_mask: jax.Array | None = None,
  ):
    """Embeds backbone features.

    Args:
      features: ``[B, H, W, C]`` feature map, or ``[B, C]`` vectors for pooling 'token'.
      train: training mode (matters for ``normalize='test'``).
      l2_normalize_output: overrides the ``normalize`` mode when not None (multi-scale needs the
        unnormalised embeddings).
      feature_mask: optional ``[B, H, W]`` booleans: pool over these positions only (an image padded
        into a larger batch shape).

    Returns:
      ``[B, embed_dim]`` (or ``[B, C]`` without projection) float32 embeddings.
    """
    if self.pooling not in POOLINGS:
      raise ValueError(f"config.model.pooling={self.pooling!r} is unknown; valid: {POOLINGS}")
    if self.normalize not in NORMALIZE_MODES:
      raise ValueError(f"config.model.normalize={self.normalize!r} is unknown; valid: {NORMALIZE_MODES}")
    if self.whiten and (not self.embed_dim or self.layer_norm):
      raise ValueError("config.model.whiten=True needs a projection (embed_dim > 0) and layer_norm=False")
    if self.whitening_path and not self.whiten:
      raise ValueError(
        "config.model.whitening_path is set but config.model.whiten=False: set whiten=True (the "
        "original's landmark model) or leave the path empty"
      )
    x = features.astype(jnp.float32)
    if self.pooling == "token":
      if x.ndim != 2:
        raise ValueError(f"pooling 'token' expects [batch, features] backbone outputs; got shape {x.shape}")
      if feature_mask is not None:
        raise ValueError("pooling 'token' has no feature map to mask")
    elif x.ndim != 4:
      raise ValueError(
        f"pooling {self.pooling!r} expects a [batch, height, width, channels] feature map; got shape {x.shape}"
      )
    elif self.pooling == "avg":
      x = avg_pool(x, feature_mask)
    elif self.pooling == "max":
      x = max_pool(x, feature_mask)
    elif self.pooling == "avgmax":
      x = avgmax_pool(x, feature_mask)
    elif self.pooling == "gem":
      p = self.param("gem_p", nn.initializers.constant(self.gem_p), (1,), jnp.float32)
      x = gem_pool(x, p, mask=feature_mask)
    else:  # gem_frozen
      x = gem_pool(x, self.gem_p, mask=feature_mask)
    if self.layer_norm:
      x = layer_norm_no_affine(x)
    if self.whiten:
      x = l2_normalize(x)
    if self.embed_dim:
      kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
      bias_init = _torch_bias_init(x.shape[-1])
      if self.whitening_path and self.is_initializing():  # the file is read only when the parameters are made
        kernel_init, bias_init = _whitening_init(self.whitening_path, x.shape[-1], self.embed_dim)
      x = nn.Dense(self.embed_dim, kernel_init=kernel_init, bias_init=bias_init, name="projection")(x)
    if l2_normalize_output is None:
      l2_normalize_output = self.normalize == "always" or (self.normalize == "test" and not train)
    if l2_normalize_output:
      x = l2_normalize(x)
    return x


def _gem_power(model, variables) -> jax.Array | float:
  pooling = getattr(model, "pooling", "avg")
  if pooling == "gem":
    return jnp.reshape(variables["params"]["head"]["gem_p"], ())
  if pooling == "gem_frozen":
    return float(model.gem_p)
  return 1.0


def multiscale_embed(model, variables, images: jax.Array, *, scales: Sequence[float] = MULTISCALE_SCALES):
  r"""Multi-scale test-time embedding (the original's ``forward_multiscale``).

  .. math:: e = \mathrm{normalize}\Big(\big(\tfrac{1}{S}\sum_s f(\mathrm{resize}_s(x))^{p}\big)^{1/p}\Big)

  where ``f`` is the unnormalised embedding and ``p`` the GeM exponent (1 for other poolings). The
  power keeps the sign (``sign(v) |v|^p``), so a projection's negative outputs stay finite; for
  positive embeddings (GeM without projection, as in cirtorch) this is the original's formula.

  Args:
    model: a model from ``build_model`` (its ``__call__`` takes ``l2_normalize_output``).
    variables: its variables.
    images: ``[B, H, W, C]``.
    scales: resize factors; each scale's size is ``floor(H * s), floor(W * s)`` (as
      ``F.interpolate(scale_factor=s)``).

  Returns:
    ``[B, D]`` float32 unit-norm embeddings.
  """
  if not scales:
    raise ValueError("scales must hold at least one factor")
  p = _gem_power(model, variables)
  h, w = images.shape[1:3]
  total = 0.0
  for s in scales:
    size = (int(h * s), int(w * s))
    resized = images if size == (h, w) else resize_bilinear_align_corners(images, size)
    e = model.apply(variables, resized, train=False, l2_normalize_output=False)
    total = total + jnp.sign(e) * jnp.abs(e) ** p
  mean = total / len(scales)
  return l2_normalize(jnp.sign(mean) * jnp.abs(mean) ** (1.0 / p))
