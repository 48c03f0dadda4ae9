"""Embedding networks: ``build_model(config.model)`` returns a Flax Linen module.

Every model maps ``images [B, H, W, C]`` to ``embeddings [B, embed_dim]`` with
``model.apply(variables, images, train=bool)``; models with batch norm keep a ``batch_stats``
collection.
"""

from __future__ import annotations

import ml_collections

from suprank_jax.models.convnet import ConvNet

__all__ = ["MODELS", "build_model", "ConvNet"]

# name -> module class; the remaining keys of config.model are its constructor arguments.
MODELS = {
    "convnet": ConvNet,
}


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
