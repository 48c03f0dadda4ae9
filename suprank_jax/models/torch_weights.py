"""Import torchvision / timm weights the user already has into the Flax backbones.

Nothing is downloaded: ``config.model.pretrained_path`` names a state dict saved as
``.safetensors`` or ``.npz`` (any machine), or ``.pth`` / ``.pt`` / ``.bin`` (needs torch). The
trainer calls ``load_pretrained(variables, config.model)`` after ``model.init``.

Mapping (the Flax backbones mirror the PyTorch module names, see ``resnet.py`` / ``vit.py``): the
key ``a.b.c.weight`` goes to the module ``backbone/a/b/c``; a conv weight ``[O, I, kh, kw]``
becomes ``kernel`` ``[kh, kw, I, O]``, a linear weight ``[O, I]`` becomes ``kernel`` ``[I, O]``,
a norm weight becomes ``scale``; ``running_mean`` / ``running_var`` go to ``batch_stats``
(``mean`` / ``var``); ``num_batches_tracked`` is dropped. Classifier weights (``fc.*``, ``head.*``,
``head_dist.*``) are dropped, and a distilled DeiT's ``dist_token`` with its position embedding
(index 1) is removed, as the original does. Any other unmatched key, any backbone variable the file
lacks, and any shape mismatch raise a ValueError that names the parameter. The retrieval head
(projection, GeM exponent) keeps its initialisation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

__all__ = ["load_state_dict", "convert_state_dict", "load_pretrained", "CLASSIFIER_PREFIXES"]

# Classifier heads of torchvision ResNets and timm (distilled) ViTs: not part of the features.
CLASSIFIER_PREFIXES = ("fc.", "head.", "head_dist.")
_WRAPPER_KEYS = ("state_dict", "model", "module")


def _unwrap(obj: Any, path: str) -> dict:
  # torch.save'd training checkpoints often hold the weights under one of these keys.
  while isinstance(obj, Mapping) and not any(hasattr(v, "shape") for v in obj.values()):
    inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj), None)
    if inner is None:
      raise ValueError(f"{path}: no state dict found (top-level keys: {sorted(obj)[:10]})")
    obj = inner
  if not isinstance(obj, Mapping):
    raise ValueError(f"{path}: expected a state dict (a mapping of names to arrays), got {type(obj).__name__}")
  return dict(obj)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a PyTorch-style state dict into ``{name: float32 numpy array}``.

  Args:
    path: ``.safetensors``, ``.npz``, or ``.pth`` / ``.pt`` / ``.bin`` (the last needs torch). A
      leading ``module.`` (DistributedDataParallel) is stripped from every key.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: an unknown extension, or a ``.pth`` file without torch installed.
  """
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config.model.pretrained_path={path!r}: no such file")
  ext = os.path.splitext(path)[1].lower()
  if ext == ".safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top

    raw = safetensors.numpy.load_file(path)
  elif ext == ".npz":
    with np.load(path, allow_pickle=False) as f:
      raw = {k: f[k] for k in f.files}
  elif ext in (".pth", ".pt", ".bin"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ValueError(
        f"{path}: reading {ext} files needs torch; convert it to .safetensors or .npz on a machine "
        "with torch (safetensors.torch.save_file(state_dict, 'weights.safetensors'))"
      ) from e
    obj = _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
    raw = {k: v.detach().float().numpy() for k, v in obj.items() if hasattr(v, "detach")}
  else:
    raise ValueError(
      f"config.model.pretrained_path={path!r}: unknown extension {ext!r}; use .safetensors, .npz, .pth, .pt or .bin"
    )
  out = {}
  for k, v in raw.items():
    key = k[len("module.") :] if k.startswith("module.") else k
    out[key] = np.asarray(v, np.float32) if np.issubdtype(np.asarray(v).dtype, np.floating) else np.asarray(v)
  return out


def _drop_distillation_token(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Removes ``dist_token`` and its position embedding (index 1, after the class token)."""
  state_dict = dict(state_dict)
  del state_dict["dist_token"]
  if "pos_embed" in state_dict:
    pos = state_dict["pos_embed"]
    state_dict["pos_embed"] = np.concatenate([pos[:, :1], pos[:, 2:]], axis=1)
  return state_dict


def _flax_name(torch_leaf: str, module: Mapping) -> tuple[str, str]:
  """(collection, flax leaf) for a torch leaf name inside a Flax module's parameters."""
  if torch_leaf == "weight":
    return "params", "kernel" if "kernel" in module else "scale"
  if torch_leaf == "bias":
    return "params", "bias"
  if torch_leaf == "running_mean":
    return "batch_stats", "mean"
  if torch_leaf == "running_var":
    return "batch_stats", "var"
  return "params", torch_leaf


def _to_flax_layout(value: np.ndarray, flax_leaf: str) -> np.ndarray:
  if flax_leaf == "kernel" and value.ndim == 4:
    return value.transpose(2, 3, 1, 0)  # [O, I, kh, kw] -> [kh, kw, I, O]
  if flax_leaf == "kernel" and value.ndim == 2:
    return value.T  # [O, I] -> [I, O]
  return value


def _lookup(tree: Mapping, parts) -> Any:
  node = tree
  for p in parts:
    if not isinstance(node, Mapping) or p not in node:
      return None
    node = node[p]
  return node


def _flatten(tree: Mapping, prefix=()) -> dict[tuple[str, ...], Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def _set(tree: dict, parts, value):
  node = tree
  for p in parts[:-1]:
    node = node[p]
  node[parts[-1]] = value


def _thaw(tree):
  return {k: _thaw(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def convert_state_dict(state_dict: Mapping[str, np.ndarray], variables: Mapping, *, scope: str = "backbone") -> dict:
  """Puts a torchvision / timm state dict into the ``scope`` part of Flax ``variables``.

  Args:
    state_dict: ``{torch key: array}`` (PyTorch layouts).
    variables: the model's variables (``{"params": ..., "batch_stats": ...}``), e.g. from ``init``.
    scope: the submodule holding the backbone.

  Returns:
    A new variables dict: the backbone's arrays replaced (float32, in the Flax layout), everything
    else as it was.

  Raises:
    ValueError: a key that maps to no backbone variable, a backbone variable the state dict lacks,
      or a shape mismatch; the message names the parameter (torch key and Flax path).
  """
  variables = _thaw(variables)
  if scope not in variables.get("params", {}):
    raise ValueError(f"the model has no {scope!r} parameters to load into (top-level: {sorted(variables['params'])})")
  state_dict = dict(state_dict)
  if "dist_token" in state_dict:
    state_dict = _drop_distillation_token(state_dict)
  targets = {c: variables[c][scope] for c in ("params", "batch_stats") if scope in variables.get(c, {})}
  pending = {(c,) + path for c, tree in targets.items() for path in _flatten(tree)}
  unexpected = []
  for key, value in state_dict.items():
    parts = key.split(".")
    if parts[-1] == "num_batches_tracked":
      continue
    direct = _lookup(targets.get("params", {}), parts)
    if direct is not None and not isinstance(direct, Mapping):
      collection, path = "params", tuple(parts)
    else:
      module = _lookup(targets.get("params", {}), parts[:-1])
      if not isinstance(module, Mapping):
        module = _lookup(targets.get("batch_stats", {}), parts[:-1])
      if not isinstance(module, Mapping):
        if not key.startswith(CLASSIFIER_PREFIXES):
          unexpected.append(key)
        continue
      collection, leaf = _flax_name(parts[-1], module)
      path = tuple(parts[:-1]) + (leaf,)
    current = _lookup(targets.get(collection, {}), path)
    flax_name = "/".join((collection, scope) + path)
    if current is None or isinstance(current, Mapping):
      unexpected.append(key)
      continue
    new = _to_flax_layout(np.asarray(value), path[-1])
    if tuple(new.shape) != tuple(current.shape):
      raise ValueError(
        f"pretrained parameter {key!r} has shape {tuple(np.shape(value))} (Flax layout "
        f"{tuple(new.shape)}), but the model's {flax_name} has shape {tuple(current.shape)}"
      )
    _set(variables[collection][scope], path, jnp.asarray(new, dtype=current.dtype))
    pending.discard((collection,) + path)
  if unexpected:
    raise ValueError(
      f"pretrained parameter(s) {unexpected[:10]} match no variable of the model's {scope} ({len(unexpected)} in all)"
    )
  if pending:
    missing = sorted("/".join((p[0], scope) + p[1:]) for p in pending)
    raise ValueError(f"the pretrained file lacks the model's {missing[:10]} ({len(missing)} in all)")
  return variables


def load_pretrained(variables: Mapping, model_config: ml_collections.ConfigDict) -> Mapping:
  """Loads ``model_config.pretrained_path`` into the backbone of ``variables``; a no-op when it is empty.

  Args:
    variables: ``{"params": ..., "batch_stats": ...}`` from ``model.init`` (or a train state's).
    model_config: ``config.model``.

  Returns:
    The variables with the backbone replaced by the pretrained weights.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: the file cannot be read, or a parameter name or shape does not match (named).
  """
  path = model_config.get("pretrained_path", "")
  if not path:
    return variables
  state_dict = load_state_dict(path)
  try:
    return convert_state_dict(state_dict, variables)
  except ValueError as e:
    raise ValueError(
      f"config.model.pretrained_path={path!r} does not fit config.model.name={model_config.get('name')!r}: {e}"
    ) from e
