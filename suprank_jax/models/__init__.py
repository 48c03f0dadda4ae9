"""Embedding networks: ``build_model(config.model)`` returns a Flax Linen module.

Every model maps ``images [B, H, W, C]`` to ``embeddings [B, embed_dim]`` with
``model.apply(variables, images, train=bool)``; models with batch norm keep a ``batch_stats``
collection.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import ml_collections

from suprank_jax.models.convnet import ConvNet
from suprank_jax.models.heads import multiscale_embed
from suprank_jax.models.resnet import RetrievalResNet
from suprank_jax.models.vit import RetrievalViT

__all__ = [
  "MODELS",
  "build_model",
  "default_config",
  "multiscale_embed",
  "ConvNet",
  "RetrievalResNet",
  "RetrievalViT",
  "TRAINER_KEYS",
  "BATCH_NORM_PARAMS_REGEX",
  "frozen_parameter_regex",
]

# name -> (module class, the arguments the name fixes). The other fields of the class are the keys of
# config.model (see default_config).
MODELS = {
  "convnet": (ConvNet, {}),
  "resnet18": (RetrievalResNet, {"depth": 18}),
  "resnet34": (RetrievalResNet, {"depth": 34}),
  "resnet50": (RetrievalResNet, {"depth": 50}),
  "resnet101": (RetrievalResNet, {"depth": 101}),
  "deit_small": (RetrievalViT, {"size": "small"}),  # the original's 'vit_small'
  "deit_base": (RetrievalViT, {"size": "base"}),  # the original's 'vit_base'
  "vit_base_patch16": (RetrievalViT, {"size": "base"}),  # the original's 'vit_base_in21k'
}

# Keys of config.model read by the trainer, not by the module: the name, and the pretrained weights
# loaded after initialisation (models/torch_weights.py).
TRAINER_KEYS = ("name", "pretrained", "pretrained_path")

# The original's defaults where they differ from the module's: a ViT's embedding is its class token
# without projection (deit_small.yaml: without_fc), and it has no batch norm to freeze.
_ORIGINAL_DEFAULTS = {RetrievalViT: {"embed_dim": 0, "freeze_batch_norm": False}}


def _module_fields(cls) -> dict:
  return {
    f.name: f.default
    for f in dataclasses.fields(cls)
    if f.name not in ("parent", "name") and f.default is not dataclasses.MISSING
  }


def _check_name(name: str):
  if name not in MODELS:
    raise ValueError(f"unknown config.model.name={name!r}; valid names: {sorted(MODELS)}")


def default_config(name: str = "resnet50") -> ml_collections.ConfigDict:
  """Every key of ``config.model`` for model ``name``, with its default.

  The keys are the module's fields (minus those the name fixes, e.g. a ResNet's depth), plus
  ``pretrained`` and ``pretrained_path``: ``pretrained=True`` says the run must start from the
  weights of ``pretrained_path`` (a torchvision / timm state dict: .safetensors, .npz, .pth), as
  the original's ``pretrained: True`` starts from ImageNet weights; nothing is downloaded, so a
  fresh run with ``pretrained=True`` and no path stops before any work.

  ``resnet*``: the ``resnet_ln`` setup without its LayerNorm (512-d projection, average pooling,
  frozen batch-norm statistics with a trainable scale and bias, as the original's
  ``freeze_batch_norm``); ``whiten`` and ``whitening_path`` give the original's landmark head (L2 then a
  projection that starts from a learned whitening, ``models/whitening.py``). ``deit_*`` / ``vit_*``:
  the class token without projection (``deit_small.yaml``). ``width`` (ResNet) and ``depth`` (ViT)
  exist for tests on small networks.
  """
  _check_name(name)
  cls, fixed = MODELS[name]
  fields = {k: v for k, v in _module_fields(cls).items() if k not in fixed}
  fields.update(_ORIGINAL_DEFAULTS.get(cls, {}))
  c = ml_collections.ConfigDict()
  c.name = name
  for key, value in fields.items():
    c[key] = value
  c.pretrained = False
  c.pretrained_path = ""
  return c


# The affine parameters of batch norm (ResNet: bn1, layerN/i/bnK, layerN/0/downsample/1).
BATCH_NORM_PARAMS_REGEX = r"^model/backbone/(.+/)?(bn\d+|downsample/1)/"


def frozen_parameter_regex(model_config) -> str | None:
  """The regex of the parameters that ``model_config`` keeps fixed, or None.

  Only ``freeze_batch_norm_affine`` fixes parameters (the batch-norm scale and bias, put in a frozen
  optimizer group). ``freeze_batch_norm`` alone fixes the running statistics and nothing else, as the
  original's ``freeze_batch_norm`` (eval mode only: the scale and bias keep ``requires_grad=True``, are
  in the backbone optimizer built from ``net.backbone.parameters()`` and get its weight decay).
  """
  cls, _ = MODELS[model_config.name]
  if cls is RetrievalResNet and model_config.get("freeze_batch_norm_affine", False):
    return BATCH_NORM_PARAMS_REGEX
  return None


def _check_whitening(kwargs):
  """The whitening keys of a ResNet: the file exists (it is read when the parameters are made)."""
  path = kwargs.get("whitening_path", "")
  if path and not kwargs.get("whiten"):
    raise ValueError(
      "config.model.whitening_path is set but config.model.whiten=False: set whiten=True (the "
      "original's landmark model) or leave the path empty"
    )
  if kwargs.get("whiten") and (not kwargs.get("embed_dim") or kwargs.get("layer_norm")):
    raise ValueError("config.model.whiten=True needs a projection (embed_dim > 0) and layer_norm=False")
  if path and not os.path.isfile(os.path.expanduser(path)):
    raise FileNotFoundError(f"config.model.whitening_path={path!r}: no such file")
  if kwargs.get("whiten") and not path:
    logging.getLogger(__name__).warning(
      "config.model.whiten=True without config.model.whitening_path: the projection starts from a random "
      "initialisation; the original starts it from its learned whitening (resnet_101_LM.yaml: whiten)"
    )


def build_model(model_config: ml_collections.ConfigDict):
  """Builds the model named ``model_config.name``; every other key (but ``pretrained`` and
  ``pretrained_path``) is a constructor argument.

  Raises:
    ValueError: on an unknown model name, or a key the model does not take (a config written for
      another model family: start from that model's ``default_config``).
  """
  kwargs = dict(model_config)
  name = kwargs.get("name")
  _check_name(name)
  cls, fixed = MODELS[name]
  for key in TRAINER_KEYS:
    kwargs.pop(key, None)
  expected = {k for k in _module_fields(cls) if k not in fixed}
  unknown = sorted(set(kwargs) - expected)
  if unknown:
    raise ValueError(
      f"config.model.name={name!r} takes no key {unknown} (valid: {sorted(expected)}); the config "
      "was written for another model: start from models.default_config(name) or the experiment "
      "argument model=<group>"
    )
  pooling = kwargs.get("pooling")
  _check_whitening(kwargs)
  if "gem_p" in kwargs and pooling not in ("gem", "gem_frozen") and kwargs["gem_p"] != _module_fields(cls)["gem_p"]:
    raise ValueError(
      f"config.model.gem_p={kwargs['gem_p']} is only read with pooling 'gem' or 'gem_frozen', "
      f"not {pooling!r}; set config.model.pooling='gem' or leave gem_p at its default"
    )
  return cls(**fixed, **kwargs)
