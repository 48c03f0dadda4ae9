"""A small convolutional embedding network for the embedded digits data set (8x8 grey images).

Two 3x3 convolutions, a 2x2 max-pool, a hidden dense layer and a linear projection to ``embed_dim``,
followed by L2 normalisation: the size of network the ROADMAP digits demo of the reference trains.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from suprank_jax.losses.inputs import l2_normalize

__all__ = ["ConvNet"]


class ConvNet(nn.Module):
  """Tiny conv net: ``[B, H, W, C]`` images -> ``[B, embed_dim]`` unit-norm embeddings.

  Attributes:
    embed_dim: size of the embedding.
    width: channels of the first convolution (the second has twice as many).
    hidden_dim: size of the hidden dense layer.
    normalize: L2-normalise the output.
    dtype: computation dtype, 'float32' or 'bfloat16' (parameters stay float32; the output is float32).
  """

  embed_dim: int = 64
  width: int = 32
  hidden_dim: int = 256
  normalize: bool = True
  dtype: str = "float32"

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    del train  # no dropout or batch norm
    dtype = jnp.dtype(self.dtype)
    x = images.astype(dtype)
    x = nn.relu(nn.Conv(self.width, (3, 3), padding=1, dtype=dtype, name="conv1")(x))
    x = nn.relu(nn.Conv(2 * self.width, (3, 3), padding=1, dtype=dtype, name="conv2")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden_dim, dtype=dtype, name="hidden")(x))
    x = nn.Dense(self.embed_dim, dtype=dtype, name="projection")(x).astype(jnp.float32)
    if self.normalize:
      x = l2_normalize(x)
    return x
