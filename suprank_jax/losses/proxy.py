"""Proxy (classification-style) losses with learnable class weights: normalised softmax (cluster loss),
ArcFace, ProxyNCA++ and CSL.

Each loss has a pure function ``(embeddings, labels, proxies, ...)``, an initialiser
``<name>_init_params(rng, *, embed_dim, num_classes, ...) -> {'proxies': [C, D]}`` that draws the
parameters like the reference (whose attribute is ``weight`` for the cluster loss, ArcFace and CSL and
``proxies`` for ProxyNCA++; here every learned class vector is a proxy, and the train state holds them
under ``loss/<entry>/proxies``), and an embedding-level adapter
``<name>_embedding_loss(inputs, params, *, hierarchy_level=..., ...)``. The adapters use the queries
only: these losses do not take reference embeddings (``takes_ref_embeddings`` is False in the
reference, or absent for ProxyNCA++), so the reference set of ``inputs`` is not read (nor is there an
``include_self`` option), and the reference trainer never combines them with the cross-batch memory.

Each loss is a mean over the queries of per-query terms (a cross-entropy, or CSL's per-level softplus);
``reduce_fn`` replaces that mean, and ``reduce_fn=None`` returns the ``[batch]`` per-query losses.

Class labels must lie in ``[0, num_classes)``; this cannot be checked on traced values (an
out-of-range label gets a zero target row, i.e. a wrong but finite loss). Everything is computed in
float32 at least.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from suprank_jax.losses import ranks
from suprank_jax.losses.inputs import LossInputs, check_embeddings, check_hierarchy_level, compute_dtype, l2_normalize

__all__ = [
  "cluster_loss",
  "cluster_init_params",
  "cluster_embedding_loss",
  "arcface_loss",
  "arcface_init_params",
  "arcface_embedding_loss",
  "proxy_nca_pp_loss",
  "proxy_nca_pp_init_params",
  "proxy_nca_pp_embedding_loss",
  "csl_loss",
  "csl_init_params",
  "csl_embedding_loss",
]


def _check(name, embeddings, labels, proxies, *, label_ndim=1):
  check_embeddings(name, embeddings, labels, label_ndim=label_ndim)
  if proxies.ndim != 2 or proxies.shape[1] != embeddings.shape[1]:
    raise ValueError(f"{name}: proxies must be [num_proxies, {embeddings.shape[1]}], got {proxies.shape}")
  dtype = compute_dtype(embeddings, proxies)
  return embeddings.astype(dtype), proxies.astype(dtype)


def _cross_entropy(logits, labels, reduce_fn):
  """Softmax cross-entropy with integer targets, reduced over the batch (torch ``nn.CrossEntropyLoss()``)."""
  one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  per_query = jax.nn.logsumexp(logits, axis=-1) - jnp.sum(one_hot * logits, axis=-1)
  return ranks.safe_reduce(per_query, reduce_fn=reduce_fn)


def _class_inputs(inputs: LossInputs, params, hierarchy_level, name):
  """``(embeddings, labels, proxies)`` of a proxy loss on one label column: the queries, their class in
  column ``hierarchy_level`` (an int) and the learned class vectors."""
  level = check_hierarchy_level(hierarchy_level, inputs.num_levels, name=name, accepts="int")
  return inputs.embeddings, inputs.labels[:, level], params["proxies"]


def _num_classes(num_classes, name):
  # combine.init_loss_params passes a tuple (one count per level) for multi-level losses.
  if isinstance(num_classes, Sequence):
    num_classes = num_classes[0]
  if int(num_classes) != num_classes or num_classes < 1:
    raise ValueError(f"{name}: num_classes must be a positive integer, got {num_classes!r}")
  return int(num_classes)


def _linear_init(rng, shape):
  """torch nn.Linear's weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(shape[1])
  return jax.random.uniform(rng, shape, jnp.float32, -bound, bound)


# ----------------------------------------------------------------------------------------------------
# Normalised softmax ("cluster loss").


def cluster_loss(
  embeddings,
  labels,
  proxies,
  *,
  temperature: float = 0.05,
  num_centers: int = 1,
  temperature_centers: float = 0.1,
  reduce_fn: Callable | None = jnp.mean,
):
  """Normalised softmax with temperature (reference ``ClusterLoss``).

  .. math:: \\mathcal{L} = \\operatorname{CE}\\big(x W_n^\\top / T, y\\big),
            \\qquad W_n = W / \\lVert W \\rVert_{rows}

  Embeddings are not re-normalised. With ``num_centers = K > 1``, ``proxies`` has ``C K`` rows (class
  ``c``, centre ``k`` at row ``c K + k``) and the class logit is the softmax(``/ temperature_centers``)
  -weighted mean of its centres' logits.

  Args:
    embeddings: ``[batch, dim]``.
    labels: ``[batch]`` class indices in ``[0, C)``.
    proxies: ``[C * num_centers, dim]`` class weights ``W`` (unnormalised parameter).
    temperature: softmax temperature.
    num_centers: centres per class.
    temperature_centers: temperature of the soft assignment to centres.
    reduce_fn: reduction over the batch; None: ``[batch]`` per-query cross-entropies.

  Returns:
    Scalar mean cross-entropy.

  References:
    Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning", BMVC 2019.
  """
  embeddings, proxies = _check("cluster_loss", embeddings, labels, proxies)
  if proxies.shape[0] % num_centers:
    raise ValueError(
      f"cluster_loss: proxies rows ({proxies.shape[0]}) must be a multiple of num_centers ({num_centers})"
    )
  logits = embeddings @ l2_normalize(proxies).T
  if num_centers > 1:
    logits = logits.reshape(logits.shape[0], -1, num_centers)
    logits = jnp.sum(logits * jax.nn.softmax(logits / temperature_centers, axis=-1), axis=-1)
  return _cross_entropy(logits / temperature, labels, reduce_fn)


def cluster_init_params(rng, *, embed_dim: int, num_classes, num_centers: int = 1):
  """``{'proxies': [num_classes * num_centers, embed_dim]}`` drawn like torch ``nn.Linear``."""
  num_classes = _num_classes(num_classes, "cluster_init_params")
  return {"proxies": _linear_init(rng, (num_classes * num_centers, embed_dim))}


def cluster_embedding_loss(
  inputs: LossInputs,
  params,
  *,
  hierarchy_level: int | str = 0,
  temperature: float = 0.05,
  num_centers: int = 1,
  temperature_centers: float = 0.1,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`cluster_loss` on the queries, classes from label column ``hierarchy_level`` (an int)."""
  embeddings, labels, proxies = _class_inputs(inputs, params, hierarchy_level, "cluster")
  return cluster_loss(
    embeddings,
    labels,
    proxies,
    temperature=temperature,
    num_centers=num_centers,
    temperature_centers=temperature_centers,
    reduce_fn=reduce_fn,
  )


# ----------------------------------------------------------------------------------------------------
# ArcFace.


def arcface_loss(
  embeddings,
  labels,
  proxies,
  *,
  scale: float = 30.0,
  margin: float = 0.5,
  easy_margin: bool = False,
  ls_eps: float = 0.0,
  reduce_fn: Callable | None = jnp.mean,
):
  """ArcFace, additive angular margin (reference ``ArcFaceLoss``).

  .. math::

    \\cos\\theta_{ic} = \\hat x_i \\cdot \\hat w_c, \\quad
    \\phi = \\cos(\\theta + m) \\text{ if } \\cos\\theta > \\cos(\\pi - m)
            \\text{ else } \\cos\\theta - m \\sin(\\pi - m)

  The target logit uses ``phi``, the others ``cos``; all are multiplied by ``scale`` and fed to the
  cross-entropy. ``easy_margin`` uses ``phi`` only where ``cos > 0``. ``ls_eps`` smooths the one-hot
  mixing mask (not the cross-entropy target), as in the reference.

  Args:
    embeddings: ``[batch, dim]`` (normalised inside).
    labels: ``[batch]`` class indices.
    proxies: ``[C, dim]`` class weights (normalised inside).
    scale: ``s``.
    margin: ``m`` (radians).
    easy_margin: see above.
    ls_eps: label smoothing of the mixing mask.
    reduce_fn: reduction over the batch; None: ``[batch]`` per-query cross-entropies.

  Returns:
    Scalar mean cross-entropy.

  References:
    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019.
  """
  embeddings, proxies = _check("arcface_loss", embeddings, labels, proxies)
  cosine = l2_normalize(embeddings) @ l2_normalize(proxies).T
  sine_sq = jnp.clip(1.0 - cosine**2, 0.0, 1.0)
  # sqrt with a zero (not infinite) gradient at 0: only |cos| = 1 differs from the reference.
  sine = jnp.where(sine_sq > 0, jnp.sqrt(jnp.where(sine_sq > 0, sine_sq, 1.0)), 0.0)
  phi = cosine * math.cos(margin) - sine * math.sin(margin)
  if easy_margin:
    phi = jnp.where(cosine > 0, phi, cosine)
  else:
    phi = jnp.where(cosine > math.cos(math.pi - margin), phi, cosine - math.sin(math.pi - margin) * margin)
  one_hot = jax.nn.one_hot(labels, cosine.shape[-1], dtype=cosine.dtype)
  if ls_eps > 0:
    one_hot = (1 - ls_eps) * one_hot + ls_eps / cosine.shape[-1]
  logits = scale * (one_hot * phi + (1.0 - one_hot) * cosine)
  return _cross_entropy(logits, labels, reduce_fn)


def arcface_init_params(rng, *, embed_dim: int, num_classes):
  """``{'proxies': [num_classes, embed_dim]}`` drawn like torch ``nn.Linear``."""
  return {"proxies": _linear_init(rng, (_num_classes(num_classes, "arcface_init_params"), embed_dim))}


def arcface_embedding_loss(
  inputs: LossInputs,
  params,
  *,
  hierarchy_level: int | str = 0,
  scale: float = 30.0,
  margin: float = 0.5,
  easy_margin: bool = False,
  ls_eps: float = 0.0,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`arcface_loss` on the queries (reference config keys ``s`` -> ``scale``, ``m`` -> ``margin``)."""
  embeddings, labels, proxies = _class_inputs(inputs, params, hierarchy_level, "arcface")
  return arcface_loss(
    embeddings, labels, proxies, scale=scale, margin=margin, easy_margin=easy_margin, ls_eps=ls_eps, reduce_fn=reduce_fn
  )


# ----------------------------------------------------------------------------------------------------
# ProxyNCA++.


def proxy_nca_pp_loss(embeddings, labels, proxies, *, scale: float = 3.0, reduce_fn: Callable | None = jnp.mean):
  """ProxyNCA++ (reference ``ProxyNCAppLoss``, one-hot targets).

  .. math:: \\mathcal{L} = -\\frac{1}{B} \\sum_i \\log
            \\operatorname{softmax}_c\\big(-\\lVert s \\hat x_i - s \\hat p_c \\rVert^2\\big)_{y_i}

  The squared distance is computed as ``|x|^2 + |p|^2 - 2 x.p`` clamped at 0, like the reference;
  ``scale = sqrt(1 / T)`` (``T = 1/9`` in the paper).

  Args:
    embeddings: ``[batch, dim]``.
    labels: ``[batch]`` class indices.
    proxies: ``[C, dim]``.
    scale: see above.
    reduce_fn: reduction over the batch; None: ``[batch]`` per-query losses.

  Returns:
    Scalar loss.

  References:
    Teh et al., "ProxyNCA++: Revisiting and Revitalizing Proxy Neighborhood Component Analysis",
    ECCV 2020.
  """
  embeddings, proxies = _check("proxy_nca_pp_loss", embeddings, labels, proxies)
  x = scale * l2_normalize(embeddings)
  p = scale * l2_normalize(proxies)
  dist = jnp.sum(x * x, -1, keepdims=True) + jnp.sum(p * p, -1)[None, :] - 2.0 * x @ p.T
  return _cross_entropy(-jnp.maximum(dist, 0.0), labels, reduce_fn)


def proxy_nca_pp_init_params(rng, *, embed_dim: int, num_classes):
  """``{'proxies': [num_classes, embed_dim]}`` ~ N(0, 1) / 8, like the reference."""
  num_classes = _num_classes(num_classes, "proxy_nca_pp_init_params")
  return {"proxies": jax.random.normal(rng, (num_classes, embed_dim), jnp.float32) / 8.0}


def proxy_nca_pp_embedding_loss(
  inputs: LossInputs,
  params,
  *,
  hierarchy_level: int | str = 0,
  scale: float = 3.0,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`proxy_nca_pp_loss` on the queries, classes from label column ``hierarchy_level`` (an int)."""
  embeddings, labels, proxies = _class_inputs(inputs, params, hierarchy_level, "proxy_nca_pp")
  return proxy_nca_pp_loss(embeddings, labels, proxies, scale=scale, reduce_fn=reduce_fn)


# ----------------------------------------------------------------------------------------------------
# CSL.


def _masked_logsumexp(x, mask):
  """logsumexp over ``mask`` per row; ``-inf`` (with a zero gradient) for an empty row."""
  any_ = jnp.any(mask, axis=-1)
  peak = jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1)
  peak = jax.lax.stop_gradient(jnp.where(any_, peak, 0.0))
  # Mask before exp so that large masked-out entries cannot overflow into a NaN gradient.
  total = jnp.sum(jnp.exp(jnp.where(mask, x - peak[:, None], -jnp.inf)), axis=-1)
  return jnp.where(any_, peak + jnp.log(jnp.where(any_, total, 1.0)), -jnp.inf)


def _torch_softplus(x):
  """torch's F.softplus (threshold 20): exactly ``x`` above 20, where softplus(x) - x < 2.1e-9."""
  return jnp.where(x > 20.0, x, jax.nn.softplus(jnp.minimum(x, 20.0)))


def csl_loss(
  embeddings,
  labels,
  proxies,
  proxy_labels,
  *,
  margins: Sequence[float] = (0.25, 0.35, 0.45),
  scale: float = 32.0,
  reduce_type: str = "sum",
  reduce_fn: Callable | None = jnp.mean,
):
  """CSL hierarchical proxy loss with one margin per level (reference ``CSLLoss``).

  With ``s_ip = x_i . \\hat p_p`` (embeddings not normalised) and ``S^l_i`` the proxies that share
  query ``i``'s label on level ``l``:

  .. math::

    \\mathcal{L}_l = \\frac{1}{B} \\sum_i \\operatorname{softplus}\\Big(
        \\operatorname{LSE}_{p \\notin S^l_i}(\\gamma s_{ip}) + \\operatorname{LSE}_{p \\in S^0_i}(-\\gamma s_{ip})
        + \\gamma m_l\\Big)

  (the positive term always uses the finest level; ``1/B sum_i`` is ``reduce_fn``), reduced over levels
  by ``reduce_type``.

  Args:
    embeddings: ``[batch, dim]``.
    labels: ``[batch, L]`` integer labels.
    proxies: ``[P, dim]`` proxy weights (normalised inside).
    proxy_labels: ``[P, L]`` the label row of each proxy (the reference's ``register_labels``: the
      sorted unique label rows of the training set).
    margins: ``L`` margins, one per level.
    scale: ``gamma``.
    reduce_type: ``'sum'``, ``'mean'`` or ``'none'`` (per-level losses, ``[L]``).
    reduce_fn: reduction over the batch; None: per-query losses (``[batch]``, ``[batch, L]`` for ``'none'``).

  Returns:
    Scalar loss (``[L]`` for ``'none'``; see ``reduce_fn``).

  References:
    Sun et al., "Dynamic Metric Learning: Towards a Scalable Metric Space to Accommodate Multiple
    Semantic Scales", CVPR 2021.
  """
  embeddings, proxies = _check("csl_loss", embeddings, labels, proxies, label_ndim=2)
  proxy_labels = jnp.asarray(proxy_labels)
  num_levels = labels.shape[1]
  if proxy_labels.shape != (proxies.shape[0], num_levels):
    raise ValueError(
      f"csl_loss: proxy_labels must be [{proxies.shape[0]}, {num_levels}] (one label row per "
      f"proxy, as many levels as labels {labels.shape}), got {proxy_labels.shape}"
    )
  if len(margins) != num_levels:
    raise ValueError(f"csl_loss: {len(margins)} margins {tuple(margins)} for labels with {num_levels} levels")
  if reduce_type not in ("sum", "mean", "none"):
    raise ValueError(f"csl_loss: unknown reduce_type {reduce_type!r}; valid: 'sum', 'mean', 'none'")
  sim = scale * (embeddings @ l2_normalize(proxies).T)
  same = labels[:, None, :] == proxy_labels[None, :, :]  # [B, P, L]
  lse_pos = _masked_logsumexp(-sim, same[..., 0])
  per_query = [
    _torch_softplus(_masked_logsumexp(sim, ~same[..., level]) + lse_pos + margins[level] * scale)
    for level in range(num_levels)
  ]
  if reduce_fn is not None:
    per_query = [ranks.safe_reduce(values, reduce_fn=reduce_fn) for values in per_query]
  losses = jnp.stack(per_query, axis=-1)  # [L], or [B, L] per query
  if reduce_type == "sum":
    return jnp.sum(losses, axis=-1)
  if reduce_type == "mean":
    return jnp.mean(losses, axis=-1)
  return losses


def csl_init_params(rng, *, embed_dim: int, num_classes):
  """``{'proxies': [num_classes, embed_dim]}`` drawn like torch ``nn.Linear``, one proxy per finest class.

  ``num_classes`` may be the per-level tuple; its first entry (the finest level) is used.
  """
  return {"proxies": _linear_init(rng, (_num_classes(num_classes, "csl_init_params"), embed_dim))}


def csl_embedding_loss(
  inputs: LossInputs,
  params,
  *,
  hierarchy_level: int | str = "multi",
  proxy_labels=None,
  margins: Sequence[float] = (0.25, 0.35, 0.45),
  scale: float = 32.0,
  reduce_type: str = "sum",
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`csl_loss` on the queries, all label levels (``hierarchy_level`` must be ``'multi'``).

  ``proxy_labels`` (``[P, L]``, the label row of every finest class, sorted by class id) is required:
  it comes from the training set, not from the batch.
  """
  check_hierarchy_level(hierarchy_level, inputs.num_levels, name="csl", accepts="multi")
  if proxy_labels is None:
    raise ValueError(
      "csl_embedding_loss needs proxy_labels=[num_proxies, num_levels], the label row of each "
      "finest class of the training set"
    )
  return csl_loss(
    inputs.embeddings,
    inputs.labels,
    params["proxies"],
    proxy_labels,
    margins=margins,
    scale=scale,
    reduce_type=reduce_type,
    reduce_fn=reduce_fn,
  )
