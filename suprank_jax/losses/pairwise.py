"""Pair and triplet losses on similarity scores: calibration (contrastive), XBM's contrastive, triplet.

Each loss comes twice:

* a pure function on a ``[num_queries, num_items]`` score matrix and a boolean ``positives`` matrix of
  the same shape, with ``where`` marking the valid pairs (rax style);
* an embedding-level adapter ``<name>_embedding_loss(inputs, params=None, *, hierarchy_level=0,
  include_self=True, ...)`` on :class:`~suprank_jax.losses.inputs.LossInputs`, which builds the scores
  the way the reference does and the positives from one label column.

The reference wraps pytorch-metric-learning (PML) for the calibration and triplet losses, whose
``DotProductSimilarity`` L2-normalises the embeddings before the dot product (so the gradients include
that normalisation), and whose ``AvgNonZeroReducer`` averages a group of terms over its *strictly
positive* members only (0 when there are none). The XBM contrastive loss uses raw dot products.

``include_self=True`` (the default everywhere) keeps each query's own copy among its reference items,
as the reference training loop does in batch mode (it passes the batch again as reference set).
``include_self=False`` drops the self pair; for the semi-hard triplet miner this is the correction of
a reference quirk (see :func:`triplet_margin_loss`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from suprank_jax import hierarchy
from suprank_jax.losses.inputs import LossInputs

__all__ = [
    "normalized_scores",
    "pair_masks",
    "check_pairs",
    "calibration_loss",
    "calibration_embedding_loss",
    "xbm_contrastive_loss",
    "xbm_contrastive_embedding_loss",
    "easy_semihard_triplets",
    "triplet_margin_loss",
    "triplet_embedding_loss",
]

# torch.nn.functional.normalize's eps.
_NORM_EPS = 1e-12


def _compute_dtype(*arrays):
  dtype = jnp.float32
  for a in arrays:
    dtype = jnp.promote_types(dtype, a.dtype)
  return dtype


def _l2_normalize(x):
  # Same value as x / max(|x|, eps); written with the max inside the sqrt so an all-zero row (an empty
  # memory slot) has a finite gradient.
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, _NORM_EPS**2))


def normalized_scores(inputs: LossInputs):
  """``[B, M]`` dot products of the L2-normalised queries and references (PML's DotProductSimilarity).

  Computed in float32 at least (bf16 embeddings are upcast).
  """
  dtype = _compute_dtype(inputs.embeddings, inputs.ref_embeddings)
  queries = _l2_normalize(inputs.embeddings.astype(dtype))
  refs = _l2_normalize(inputs.ref_embeddings.astype(dtype))
  return queries @ refs.T


def pair_masks(inputs: LossInputs, *, hierarchy_level: int = 0, include_self: bool = True):
  """Positives and valid pairs of every (query, reference item) pair on one label column.

  Args:
    inputs: the queries and their reference set.
    hierarchy_level: the label column that defines positives (0 = finest).
    include_self: keep each query's own copy in the reference set (the reference's batch mode).

  Returns:
    ``(positives, where)``, two ``[B, M]`` bool arrays; ``positives`` is False wherever ``where`` is.

  Raises:
    ValueError: for a non-integer ``hierarchy_level`` (e.g. ``'MULTI'``), one out of range, or labels
      whose number of levels differ.
  """
  if isinstance(hierarchy_level, str) or not isinstance(hierarchy_level, int):
    raise ValueError(f"hierarchy_level must be an int label column for this loss, got {hierarchy_level!r}")
  same = hierarchy.pair_levels(inputs.labels, inputs.ref_labels, level=hierarchy_level) > 0
  where = jnp.broadcast_to(inputs.ref_where[None, :], same.shape)
  if not include_self:
    where = where & ~inputs.self_mask()
  return same & where, where


def check_pairs(scores, positives, where, name):
  """Raises a ValueError naming ``name`` unless scores are 2-D floats and the masks have their shape."""
  if scores.ndim != 2:
    raise ValueError(f"{name}: scores must be [num_queries, num_items], got shape {scores.shape}")
  if not jnp.issubdtype(scores.dtype, jnp.floating):
    raise ValueError(f"{name}: scores must be floating point, got {scores.dtype}")
  if positives.shape != scores.shape:
    raise ValueError(f"{name}: positives shape {positives.shape} != scores shape {scores.shape}")
  if where is not None and where.shape != scores.shape:
    raise ValueError(f"{name}: where shape {where.shape} != scores shape {scores.shape}")


def _masks(positives, where):
  positives = positives.astype(bool)
  valid = jnp.ones(positives.shape, bool) if where is None else where.astype(bool)
  return positives & valid, ~positives & valid


def _mean_of_positive(values, mask):
  """PML's AvgNonZeroReducer: mean of the strictly positive ``values`` under ``mask``, 0 if none."""
  active = mask & (values > 0)
  count = jnp.sum(active, dtype=values.dtype)
  total = jnp.sum(jnp.where(active, values, 0.0))
  return jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)


def calibration_loss(scores, positives, *, where=None, pos_margin: float = 0.9, neg_margin: float = 0.6):
  """Calibration loss (ROADMAP): a contrastive loss with margins on similarity scores.

  .. math::

    \\mathcal{L} = \\operatorname{avg}_{>0}\\{[m_+ - s_{ij}]_+ : j \\in P_i\\}
                 + \\operatorname{avg}_{>0}\\{[s_{ij} - m_-]_+ : j \\in N_i\\}

  where each :math:`\\operatorname{avg}_{>0}` averages over the strictly positive terms of its group
  (PML ``ContrastiveLoss`` with ``AvgNonZeroReducer``), and is 0 when the group has none.

  Args:
    scores: ``[num_queries, num_items]`` similarities (cosine similarities in the reference).
    positives: ``[num_queries, num_items]`` bool, same label.
    where: optional ``[num_queries, num_items]`` bool, the pairs that exist.
    pos_margin: similarity a positive pair should exceed.
    neg_margin: similarity a negative pair should stay below.

  Returns:
    Scalar loss.

  References:
    Ramzi et al., "Robust and Decomposable Average Precision for Image Retrieval", NeurIPS 2021.

  Example:
    >>> import jax.numpy as jnp
    >>> s = jnp.array([[1.0, 0.5, 0.8]])
    >>> round(float(calibration_loss(s, jnp.array([[True, True, False]]))), 6)  # 0.4 + 0.2
    0.6
  """
  check_pairs(scores, positives, where, "calibration_loss")
  pos, neg = _masks(positives, where)
  pos_loss = _mean_of_positive(jax.nn.relu(pos_margin - scores), pos)
  neg_loss = _mean_of_positive(jax.nn.relu(scores - neg_margin), neg)
  return pos_loss + neg_loss


def calibration_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int = 0,
                               include_self: bool = True, pos_margin: float = 0.9, neg_margin: float = 0.6):
  """:func:`calibration_loss` on normalised embeddings (reference ``CalibrationLoss``).

  Pairs are all (query, reference item) pairs; in batch mode that includes the self pair, which adds
  a zero term (not counted by the reducer), so ``include_self`` does not change the value.
  """
  del params
  positives, where = pair_masks(inputs, hierarchy_level=hierarchy_level, include_self=include_self)
  return calibration_loss(normalized_scores(inputs), positives, where=where, pos_margin=pos_margin,
                          neg_margin=neg_margin)


def xbm_contrastive_loss(scores, positives, *, where=None, margin: float = 0.5, epsilon: float = 1e-5):
  """The contrastive loss of the XBM paper.

  .. math::

    \\mathcal{L} = \\frac{1}{B} \\sum_i \\Big(\\sum_{j \\in P_i, s_{ij} < 1 - \\epsilon} (1 - s_{ij})
                   + \\sum_{j \\in N_i, s_{ij} > m} s_{ij}\\Big)

  The ``s < 1 - epsilon`` filter is how the reference drops the query itself (and any exact duplicate)
  from its positives. ``B`` counts every query row, valid pairs or not.

  Args:
    scores: ``[num_queries, num_items]`` dot products (not re-normalised).
    positives: ``[num_queries, num_items]`` bool.
    where: optional ``[num_queries, num_items]`` bool, valid pairs.
    margin: negatives count only above this similarity.
    epsilon: positives at or above ``1 - epsilon`` are ignored.

  Returns:
    Scalar loss.

  References:
    Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020.
  """
  check_pairs(scores, positives, where, "xbm_contrastive_loss")
  pos, neg = _masks(positives, where)
  pos = pos & (scores < 1.0 - epsilon)
  neg = neg & (scores > margin)
  per_query = jnp.sum(jnp.where(pos, 1.0 - scores, 0.0), axis=1) + jnp.sum(jnp.where(neg, scores, 0.0), axis=1)
  return jnp.sum(per_query) / scores.shape[0]


def xbm_contrastive_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int = 0,
                                   include_self: bool = True, margin: float = 0.5):
  """:func:`xbm_contrastive_loss` on raw dot products (reference ``XBMLoss``)."""
  del params
  positives, where = pair_masks(inputs, hierarchy_level=hierarchy_level, include_self=include_self)
  return xbm_contrastive_loss(inputs.scores(), positives, where=where, margin=margin)


def easy_semihard_triplets(scores, positives, *, where=None):
  """PML ``BatchEasyHardMiner()`` (easy positive, semi-hard negative), in similarity space.

  For each anchor the easiest positive is the most similar positive; the semi-hard negative is the
  most similar negative that is strictly less similar than that positive. The reference mines with L2
  distances of normalised embeddings, a decreasing function of the cosine similarity, so the choices
  agree. An anchor is kept when it has both.

  Args:
    scores: ``[num_queries, num_items]`` cosine similarities.
    positives: ``[num_queries, num_items]`` bool.
    where: optional ``[num_queries, num_items]`` bool, valid pairs.

  Returns:
    ``(positive_index, negative_index, keep)``: ``[num_queries]`` int32, int32 and bool.
  """
  check_pairs(scores, positives, where, "easy_semihard_triplets")
  scores = jax.lax.stop_gradient(scores)
  pos, neg = _masks(positives, where)
  neg_inf = jnp.array(-jnp.inf, scores.dtype)
  pos_scores = jnp.where(pos, scores, neg_inf)
  positive_index = jnp.argmax(pos_scores, axis=1).astype(jnp.int32)
  has_pos = jnp.any(pos, axis=1)
  best_pos = jnp.take_along_axis(scores, positive_index[:, None], axis=1)
  semihard = neg & (scores < best_pos)
  negative_index = jnp.argmax(jnp.where(semihard, scores, neg_inf), axis=1).astype(jnp.int32)
  keep = has_pos & jnp.any(semihard, axis=1)
  return positive_index, negative_index, keep


def triplet_margin_loss(scores, positives, *, where=None, margin: float = 0.05, mining: str = "all"):
  """Triplet margin loss on similarities (PML ``TripletMarginLoss`` with ``DotProductSimilarity``).

  .. math:: \\mathcal{L} = \\operatorname{avg}_{>0}\\{[s_{ik} - s_{ij} + m]_+ : (i, j, k) \\in T\\}

  averaged over the strictly positive terms (0 if none). With ``mining='all'``, ``T`` holds every
  (anchor, positive, negative) triplet, ``O(B M^2)`` memory. With ``mining='easy_semihard'`` (the
  reference's ``semihard=True``), ``T`` holds one triplet per anchor from :func:`easy_semihard_triplets`.

  Reference quirk: the reference mines with the self pair present, so in batch mode the easiest
  positive is the anchor itself (similarity 1) and every mined triplet is inactive: the loss is
  exactly 0. The embedding adapter corrects this by default (the miner picks the most similar *other*
  positive); ``include_self=True`` reproduces the reference.

  Args:
    scores: ``[num_queries, num_items]`` cosine similarities.
    positives: ``[num_queries, num_items]`` bool.
    where: optional ``[num_queries, num_items]`` bool, valid pairs.
    margin: the triplet margin.
    mining: ``'all'`` or ``'easy_semihard'``.

  Returns:
    Scalar loss.

  References:
    Schroff et al., "FaceNet", CVPR 2015; Xuan et al., "Improved Embeddings with Easy Positive
    Triplet Mining", WACV 2020.
  """
  check_pairs(scores, positives, where, "triplet_margin_loss")
  if mining == "all":
    pos, neg = _masks(positives, where)
    violation = scores[:, None, :] - scores[:, :, None] + margin  # [i, j (positive), k (negative)]
    mask = pos[:, :, None] & neg[:, None, :]
    return _mean_of_positive(jax.nn.relu(violation), mask)
  if mining == "easy_semihard":
    positive_index, negative_index, keep = easy_semihard_triplets(scores, positives, where=where)
    s_ap = jnp.take_along_axis(scores, positive_index[:, None], axis=1)[:, 0]
    s_an = jnp.take_along_axis(scores, negative_index[:, None], axis=1)[:, 0]
    return _mean_of_positive(jax.nn.relu(s_an - s_ap + margin), keep)
  raise ValueError(f"triplet_margin_loss: unknown mining {mining!r}; valid: 'all', 'easy_semihard'")


def triplet_embedding_loss(inputs: LossInputs, params=None, *, hierarchy_level: int = 0,
                           include_self: bool | None = None, margin: float = 0.05, semihard: bool = False):
  """:func:`triplet_margin_loss` on normalised embeddings (reference ``TripletLoss``).

  ``semihard=True`` selects the easy-positive / semi-hard-negative miner. ``include_self`` (the anchor
  may be its own positive, as in the reference) defaults to True for all triplets, where it only adds
  zero terms unless a negative is more similar than ``1 - margin``, and to False for the semi-hard
  miner, where the reference's choice makes the batch-mode loss exactly 0 (no training signal);
  ``semihard=True, include_self=True`` reproduces the reference.
  """
  del params
  if include_self is None:
    include_self = not semihard
  positives, where = pair_masks(inputs, hierarchy_level=hierarchy_level, include_self=include_self)
  return triplet_margin_loss(normalized_scores(inputs), positives, where=where, margin=margin,
                             mining="easy_semihard" if semihard else "all")
