"""DeiT-S, DeiT-B and ViT-B/16 backbones in the timm layout, with the retrieval head.

The parameter tree mirrors timm's state-dict keys (``blocks/3/attn/qkv/kernel`` for
``blocks.3.attn.qkv.weight``; ``cls_token``, ``pos_embed``, ``patch_embed/proj``, ``norm``). The
features are the class token after the final LayerNorm (timm's ``reset_classifier`` output). As in
the original, the distilled DeiT checkpoints are used without their distillation token: the converter
drops ``dist_token`` and its position embedding, and the network is a plain ViT.

Inputs whose size differs from ``img_size`` (multi-scale embedding) get their position embeddings
resized bicubically over the patch grid, as timm's dynamic image size does.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from suprank_jax.models.heads import RetrievalHead

__all__ = ["VIT_SIZES", "VisionTransformer", "RetrievalViT", "deit_small", "deit_base", "vit_base_patch16"]

# name -> (hidden size, depth, heads); all use 16x16 patches and an MLP 4x the hidden size.
VIT_SIZES = {
  "small": (384, 12, 6),
  "base": (768, 12, 12),
}

_LN_EPS = 1e-6  # timm's ViT LayerNorm
_DENSE_INIT = nn.initializers.truncated_normal(0.02)


class _Attention(nn.Module):
  num_heads: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    batch, tokens, dim = x.shape
    head_dim = dim // self.num_heads
    qkv = nn.Dense(3 * dim, kernel_init=_DENSE_INIT, dtype=self.dtype, name="qkv")(x)
    # timm's column order of the fused qkv weight: (q/k/v, head, head_dim).
    qkv = qkv.reshape(batch, tokens, 3, self.num_heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * head_dim**-0.5, k).astype(jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, tokens, dim)
    return nn.Dense(dim, kernel_init=_DENSE_INIT, dtype=self.dtype, name="proj")(out)


class _Mlp(nn.Module):
  hidden: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    y = nn.Dense(self.hidden, kernel_init=_DENSE_INIT, dtype=self.dtype, name="fc1")(x)
    y = nn.gelu(y, approximate=False)  # torch.nn.GELU is the exact erf form
    return nn.Dense(x.shape[-1], kernel_init=_DENSE_INIT, dtype=self.dtype, name="fc2")(y)


class _Block(nn.Module):
  num_heads: int
  mlp_dim: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    norm1 = nn.LayerNorm(_LN_EPS, use_fast_variance=False, dtype=self.dtype, name="norm1")
    x = x + _Attention(self.num_heads, self.dtype, name="attn")(norm1(x))
    norm2 = nn.LayerNorm(_LN_EPS, use_fast_variance=False, dtype=self.dtype, name="norm2")
    return x + _Mlp(self.mlp_dim, self.dtype, name="mlp")(norm2(x))


class _Blocks(nn.Module):
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    for i in range(self.depth):
      x = _Block(self.num_heads, self.mlp_dim, self.dtype, name=str(i))(x)
    return x


class _PatchEmbed(nn.Module):
  dim: int
  patch_size: int
  dtype: Any

  @nn.compact
  def __call__(self, images):
    p = self.patch_size
    x = nn.Conv(self.dim, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, name="proj")(images)
    return x  # [B, gh, gw, dim]


def _resize_pos_embed(pos_embed, grid: tuple[int, int], new_grid: tuple[int, int]):
  """Bicubic resize of the patch position embeddings ``[1, 1 + gh*gw, D]`` to another grid."""
  if grid == new_grid:
    return pos_embed
  cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
  dim = pos_embed.shape[-1]
  patch_pos = patch_pos.reshape(1, *grid, dim)
  patch_pos = jax.image.resize(patch_pos, (1, *new_grid, dim), method="bicubic", antialias=False)
  return jnp.concatenate([cls_pos, patch_pos.reshape(1, -1, dim)], axis=1)


class VisionTransformer(nn.Module):
  """ViT without classifier: ``[B, H, W, 3] -> [B, hidden]`` (class token after the final norm).

  Attributes:
    hidden_dim: token width.
    depth: number of blocks.
    num_heads: attention heads.
    mlp_dim: MLP hidden width (4 x hidden_dim in DeiT / ViT-B).
    patch_size: patch side.
    img_size: image side the position embeddings are laid out for.
    dtype: computation dtype; parameters stay float32, the softmax runs in float32.
  """

  hidden_dim: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_dim: int = 1536
  patch_size: int = 16
  img_size: int = 224
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return self.hidden_dim

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    del train  # no dropout: the DeiT / ViT configs of the original train without it
    dtype = jnp.dtype(self.dtype)
    if self.img_size % self.patch_size:
      raise ValueError(f"img_size={self.img_size} is not a multiple of patch_size={self.patch_size}")
    grid = (self.img_size // self.patch_size,) * 2
    x = _PatchEmbed(self.hidden_dim, self.patch_size, dtype, name="patch_embed")(images.astype(dtype))
    batch, gh, gw, dim = x.shape
    x = x.reshape(batch, gh * gw, dim)
    cls_token = self.param("cls_token", nn.initializers.truncated_normal(1e-6), (1, 1, dim), jnp.float32)
    pos_embed = self.param(
      "pos_embed", nn.initializers.truncated_normal(0.02), (1, 1 + grid[0] * grid[1], dim), jnp.float32
    )
    x = jnp.concatenate([jnp.broadcast_to(cls_token, (batch, 1, dim)).astype(dtype), x], axis=1)
    x = x + _resize_pos_embed(pos_embed, grid, (gh, gw)).astype(dtype)
    x = _Blocks(self.depth, self.num_heads, self.mlp_dim, dtype, name="blocks")(x)
    x = nn.LayerNorm(_LN_EPS, use_fast_variance=False, dtype=dtype, name="norm")(x)
    return x[:, 0]


class RetrievalViT(nn.Module):
  """ViT backbone plus retrieval head: ``[B, H, W, 3] -> [B, embed_dim]`` float32 embeddings.

  Attributes:
    size: 'small' (DeiT-S) or 'base' (DeiT-B, ViT-B/16).
    embed_dim: projection size; 0 for none (the original's DeiT configs: ``without_fc``).
    pooling: 'token' (or 'default'): the class token; spatial poolings do not apply.
    layer_norm: affine-free LayerNorm on the features.
    normalize: 'always', 'test' or 'never'.
    freeze_batch_norm: must be False (a ViT has no batch norm); accepted for a uniform config.
    dtype: 'float32' or 'bfloat16' computation; parameters and output stay float32.
    img_size: image side of the position embeddings (224).
    depth: number of blocks (12; fewer only for tests).
  """

  size: str = "small"
  embed_dim: int = 0
  pooling: str = "token"
  layer_norm: bool = False
  normalize: str = "always"
  freeze_batch_norm: bool = False
  dtype: Any = "float32"
  img_size: int = 224
  depth: int = 12

  @nn.compact
  def __call__(self, images, *, train: bool = False, l2_normalize_output: bool | None = None):
    """Embeds ``images [B, H, W, 3]``; ``l2_normalize_output`` overrides ``normalize`` when not None."""
    if images.ndim != 4:
      raise ValueError(f"images must be [batch, height, width, channels]; got shape {images.shape}")
    if self.size not in VIT_SIZES:
      raise ValueError(f"ViT size={self.size!r} is unknown; valid: {sorted(VIT_SIZES)}")
    if self.freeze_batch_norm:
      raise ValueError("config.model.freeze_batch_norm=True, but a ViT has no batch norm; set it to False")
    pooling = "token" if self.pooling == "default" else self.pooling
    if pooling != "token":
      raise ValueError(
        f"config.model.pooling={self.pooling!r}: a ViT backbone gives its class token; use 'token' (or 'default')"
      )
    hidden, _, heads = VIT_SIZES[self.size]
    backbone = VisionTransformer(hidden, self.depth, heads, 4 * hidden, 16, self.img_size, self.dtype, name="backbone")
    features = backbone(images, train=train)
    head = RetrievalHead(self.embed_dim, pooling, 3.0, self.layer_norm, self.normalize, name="head")
    return head(features, train=train, l2_normalize_output=l2_normalize_output)


def _factory(name: str, size: str, doc: str):
  def make(**kwargs) -> RetrievalViT:
    return RetrievalViT(size=size, **kwargs)

  make.__name__ = name
  make.__doc__ = f"{doc} retrieval network; keyword arguments are ``RetrievalViT``'s attributes."
  return make


deit_small = _factory("deit_small", "small", "DeiT-S (distilled checkpoint, without its distillation token)")
deit_base = _factory("deit_base", "base", "DeiT-B (distilled checkpoint, without its distillation token)")
vit_base_patch16 = _factory("vit_base_patch16", "base", "ViT-B/16 (e.g. the ImageNet-21k checkpoint)")
