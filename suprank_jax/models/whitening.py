"""Whitening projections of landmark retrieval: read one from a file, or learn a PCA-whitening.

A whitening is an affine map ``x -> W x + b`` (``W``: ``[out_dim, in_dim]``, ``b``: ``[out_dim]``),
stored as PyTorch's ``nn.Linear`` state dict (``weight``, ``bias``), as the original's landmark model
loads it into its projection (``resnet_101_LM.yaml``: ``whiten: <file>.trch``, a ``torch.save`` of
that state dict).

Files (:func:`load_whitening`): ``.trch``, ``.pth``, ``.pt`` (torch; a key prefix such as ``fc.`` is
accepted when it names a single layer), ``.npz`` and ``.safetensors`` with ``weight`` and ``bias``.
:func:`save_whitening` writes ``.npz`` (or ``.safetensors``).

PCA-whitening (:func:`learn_pca_whitening`, Jegou & Chum 2012, as ``suprank/models/tools/
whiten_utils.py``'s ``pca`` + ``create_pca_layer``): centre the training embeddings on their mean
``mu``, take the principal directions ``v_i`` and variances ``lambda_i`` of the centred set (sample
variance, ``n - 1``), and project

.. math:: y_i = \\frac{v_i^\\top (x - \\mu)}{\\sqrt{\\lambda_i}}, \\qquad W = \\Lambda^{-1/2} V^\\top,\\; b = -W \\mu.

The covariance is accumulated in float64 over chunks of embeddings, so any number of them is learned
from in ``O(D^2)`` memory (the original takes an SVD of the whole centred matrix in memory; the
directions and variances are the same). Each direction's sign is fixed so that its largest
coefficient is positive (the original fixes it on the SVD's left factor instead; a sign only flips
one output coordinate, which changes no dot product). Variances below ``min_variance_ratio`` times
the largest are raised to that floor, so that a set smaller than the dimension does not divide by
zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

__all__ = [
  "Whitening",
  "load_whitening",
  "save_whitening",
  "learn_pca_whitening",
  "apply_whitening",
  "WHITENING_EXTENSIONS",
]

WHITENING_EXTENSIONS = (".trch", ".pth", ".pt", ".npz", ".safetensors")


class Whitening(NamedTuple):
  """``weight [out_dim, in_dim]`` and ``bias [out_dim]`` (float32) of ``x -> weight @ x + bias``."""

  weight: np.ndarray
  bias: np.ndarray


def _linear_entries(state: dict, path: str) -> Whitening:
  """The ``weight``/``bias`` pair of a state dict of one linear layer (keys possibly prefixed)."""
  weights = [k for k in state if k == "weight" or k.endswith(".weight")]
  if len(weights) != 1:
    raise ValueError(
      f"{path}: expected the state dict of one linear layer ('weight', 'bias'); found keys {sorted(state)[:10]}"
    )
  prefix = weights[0][: -len("weight")]
  if prefix + "bias" not in state:
    raise ValueError(f"{path}: has {weights[0]!r} but no {prefix + 'bias'!r}")
  weight = np.asarray(state[weights[0]], np.float32)
  bias = np.asarray(state[prefix + "bias"], np.float32)
  if weight.ndim != 2 or bias.shape != (weight.shape[0],):
    raise ValueError(
      f"{path}: weight {weight.shape} and bias {bias.shape} are not those of a linear layer "
      "(weight [out_dim, in_dim], bias [out_dim])"
    )
  return Whitening(weight, bias)


def load_whitening(path: str) -> Whitening:
  """Reads a whitening file (see the module docstring).

  Raises:
    FileNotFoundError: no such file.
    ValueError: an unknown extension, a torch file without torch installed, or a file that does not
      hold one linear layer.
  """
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"whitening file {path!r}: no such file")
  ext = os.path.splitext(path)[1].lower()
  if ext in (".trch", ".pth", ".pt"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ValueError(
        f"{path}: reading {ext} files needs torch; convert it with torch installed: "
        "np.savez('whitening.npz', **{k: v.numpy() for k, v in torch.load(path).items()})"
      ) from e
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(obj, "state_dict"):
      obj = obj.state_dict()
    if not isinstance(obj, dict):
      raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    state = {k: v.detach().float().numpy() for k, v in obj.items() if hasattr(v, "detach")}
  elif ext == ".npz":
    with np.load(path, allow_pickle=False) as f:
      state = {k: f[k] for k in f.files}
  elif ext == ".safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top

    state = safetensors.numpy.load_file(path)
  else:
    raise ValueError(f"whitening file {path!r}: unknown extension {ext!r}; valid: {WHITENING_EXTENSIONS}")
  return _linear_entries(state, path)


def save_whitening(path: str, whitening: Whitening) -> str:
  """Writes ``whitening`` as ``.npz`` (or ``.safetensors``) with the keys ``weight`` and ``bias``."""
  weight = np.ascontiguousarray(whitening.weight, np.float32)
  bias = np.ascontiguousarray(whitening.bias, np.float32)
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npz":
    np.savez(path, weight=weight, bias=bias)
  elif ext == ".safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top

    safetensors.numpy.save_file({"weight": weight, "bias": bias}, path)
  else:
    raise ValueError(f"{path}: save a whitening as .npz or .safetensors")
  return path


def learn_pca_whitening(
  embeddings: np.ndarray | Iterable[np.ndarray], *, num_components: int | None = None, min_variance_ratio: float = 1e-9
) -> Whitening:
  """PCA-whitening of a set of embeddings (see the module docstring).

  Args:
    embeddings: ``[N, D]``, or an iterable of ``[n_i, D]`` chunks (streamed: memory ``O(D^2)``).
    num_components: output dimension (the leading directions); None keeps ``D``.
    min_variance_ratio: variances are at least this share of the largest one.

  Returns:
    The :class:`Whitening` (``weight [num_components, D]``).

  Raises:
    ValueError: fewer than two embeddings, non-finite values, or ``num_components`` out of range.
  """
  chunks = [embeddings] if isinstance(embeddings, np.ndarray) else embeddings
  count, total, second = 0, None, None
  for chunk in chunks:
    x = np.asarray(chunk, np.float64)
    if x.ndim != 2:
      raise ValueError(f"embeddings must be [N, D] chunks, got shape {x.shape}")
    if not np.isfinite(x).all():
      raise ValueError("embeddings hold NaN or inf values")
    if total is None:
      total, second = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
    count += len(x)
    total += x.sum(0)
    second += x.T @ x
  if count < 2:
    raise ValueError(f"a PCA-whitening needs at least 2 embeddings, got {count}")
  dim = len(total)
  num_components = dim if num_components is None else int(num_components)
  if not 1 <= num_components <= dim:
    raise ValueError(f"num_components={num_components} must be in [1, {dim}]")
  mean = total / count
  covariance = (second - count * np.outer(mean, mean)) / (count - 1)
  variances, directions = np.linalg.eigh((covariance + covariance.T) / 2)
  order = np.argsort(variances)[::-1][:num_components]
  variances, directions = np.maximum(variances[order], 0.0), directions[:, order].T
  signs = np.sign(directions[np.arange(num_components), np.argmax(np.abs(directions), axis=1)])
  directions *= np.where(signs == 0, 1.0, signs)[:, None]
  variances = np.maximum(variances, min_variance_ratio * max(variances.max(), 1e-300))
  weight = directions / np.sqrt(variances)[:, None]
  return Whitening(weight.astype(np.float32), (-weight @ mean).astype(np.float32))


def apply_whitening(embeddings: np.ndarray, whitening: Whitening, *, normalize: bool = True) -> np.ndarray:
  """``[N, D_in] -> [N, D_out]``: the whitening, then L2 normalisation (when ``normalize``), in float32."""
  x = np.asarray(embeddings, np.float32)
  if x.ndim != 2 or x.shape[1] != whitening.weight.shape[1]:
    raise ValueError(f"embeddings {x.shape} do not fit a whitening of input dimension {whitening.weight.shape[1]}")
  y = x @ whitening.weight.T + whitening.bias
  if normalize:
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
  return y
