"""Embedding networks: ``build_model(config.model)`` returns a Flax Linen module.

Every model maps ``images [B, H, W, C]`` to ``embeddings [B, embed_dim]`` with
``model.apply(variables, images, train=bool)``; models with batch norm keep a ``batch_stats``
collection.
"""

from __future__ import annotations

import ml_collections

from suprank_jax.models import resnet, vit
from suprank_jax.models.convnet import ConvNet
from suprank_jax.models.heads import multiscale_embed
from suprank_jax.models.resnet import RetrievalResNet
from suprank_jax.models.vit import RetrievalViT

__all__ = ["MODELS", "build_model", "default_config", "multiscale_embed", "ConvNet", "RetrievalResNet",
           "RetrievalViT"]

# name -> module class (or constructor); the remaining keys of config.model are its arguments.
MODELS = {
    "convnet": ConvNet,
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
    "deit_small": vit.deit_small,  # the original's 'vit_small'
    "deit_base": vit.deit_base,  # the original's 'vit_base'
    "vit_base_patch16": vit.vit_base_patch16,  # the original's 'vit_base_in21k'
}


def default_config(name: str = "resnet50") -> ml_collections.ConfigDict:
  """The ``config.model`` keys of the ResNet / ViT retrieval networks, with the original's defaults.

  ``resnet*``: the ``resnet_ln`` setup without its LayerNorm (512-d projection, average pooling,
  frozen batch norm). ``deit_*`` / ``vit_*``: the class token without projection (``deit_small.yaml``).
  """
  c = ml_collections.ConfigDict()
  c.name = name
  is_vit = name.startswith(("deit", "vit"))
  c.embed_dim = 0 if is_vit else 512  # 0: no projection
  c.pooling = "default"  # 'avg' for ResNets, 'token' for ViTs; or 'gem', 'gem_frozen', 'max', 'avgmax'
  c.gem_p = 3.0
  c.layer_norm = False  # affine-free LayerNorm on the pooled features (resnet_ln configs)
  c.normalize = "always"  # or 'test' (only at test time), 'never'
  c.freeze_batch_norm = not is_vit
  c.dtype = "float32"  # or 'bfloat16' (mixed precision; parameters and embeddings stay float32)
  c.pretrained_path = ""  # a torchvision / timm state dict (.safetensors, .npz, .pth) to load after init
  return c


def build_model(model_config: ml_collections.ConfigDict):
  """Builds the model named ``model_config.name`` with the other keys as constructor arguments.

  Raises:
    ValueError: on an unknown model name or an argument the model does not take.
  """
  kwargs = dict(model_config)
  name = kwargs.pop("name")
  if name not in MODELS:
    raise ValueError(f"unknown config.model.name={name!r}; valid names: {sorted(MODELS)}")
  cls = MODELS[name]
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ValueError(f"config.model for {name!r} has an argument {cls.__name__} does not take: {e}") from e
