"""Pair and triplet losses on similarity scores: calibration (contrastive), XBM's contrastive, triplet.

Each loss comes twice (rax style):

* a pure function on a ``[num_queries, num_items]`` score matrix and a boolean ``positives`` matrix of
  the same shape, with ``where`` marking the valid pairs;
* an embedding-level adapter ``<name>_embedding_loss(inputs, params=None, *, hierarchy_level=0,
  include_self=True, ...)`` on :class:`~suprank_jax.losses.inputs.LossInputs`, which builds the scores
  the way the reference does and the positives from one label column
  (:func:`~suprank_jax.losses.inputs.binary_pairs`).

The reference wraps pytorch-metric-learning (PML) for the calibration and triplet losses, whose
``DotProductSimilarity`` L2-normalises the embeddings before the dot product (so the gradients include
that normalisation), and whose ``AvgNonZeroReducer`` (:func:`~suprank_jax.losses.ranks.nonzero_mean`)
averages a group of terms over its *strictly positive* members only (0 when there are none). The XBM
contrastive loss uses raw dot products.

``reduce_fn`` reduces the loss's terms over the batch: the pair terms (calibration, one reduction per
group), the triplet terms (triplet) or the per-query sums (XBM contrastive); its default is the
reference's. ``reduce_fn=None`` returns ``[num_queries]`` per-query values: each query's loss on its own
pairs or triplets alone.

``include_self=True`` (the default of every loss) keeps each query's own copy among its reference
items, as the reference training loop does in batch mode (it passes the batch again as reference set).
``include_self=False`` drops the self pair; for the semi-hard triplet miner this is the correction of
a reference quirk (see :func:`triplet_margin_loss`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from suprank_jax.losses import inputs as inputs_lib
from suprank_jax.losses import ranks
from suprank_jax.losses.inputs import LossInputs

__all__ = [
  "calibration_loss",
  "calibration_embedding_loss",
  "xbm_contrastive_loss",
  "xbm_contrastive_embedding_loss",
  "easy_semihard_triplets",
  "triplet_margin_loss",
  "triplet_embedding_loss",
]


def _reduce_terms(terms, mask, reduce_fn, query_axes):
  """``reduce_fn`` over the valid terms of the batch; with None, each query's own terms' nonzero mean."""
  if reduce_fn is None:
    return ranks.nonzero_mean(terms, where=mask, axis=query_axes)
  return ranks.safe_reduce(terms, where=mask, reduce_fn=reduce_fn)


def calibration_loss(
  scores,
  positives,
  *,
  where=None,
  pos_margin: float = 0.9,
  neg_margin: float = 0.6,
  reduce_fn: Callable | None = ranks.nonzero_mean,
):
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
    reduce_fn: reduction of each group's pair terms (the two are summed); None: ``[num_queries]``.

  Returns:
    Scalar loss (``[num_queries]`` with ``reduce_fn=None``).

  References:
    Ramzi et al., "Robust and Decomposable Average Precision for Image Retrieval", NeurIPS 2021.

  Example:
    >>> import jax.numpy as jnp
    >>> s = jnp.array([[1.0, 0.5, 0.8]])
    >>> round(float(calibration_loss(s, jnp.array([[True, True, False]]))), 6)  # 0.4 + 0.2
    0.6
  """
  scores, pos, neg, _ = inputs_lib.split_pairs("calibration_loss", scores, positives, where=where)
  pos_loss = _reduce_terms(jax.nn.relu(pos_margin - scores), pos, reduce_fn, -1)
  neg_loss = _reduce_terms(jax.nn.relu(scores - neg_margin), neg, reduce_fn, -1)
  return pos_loss + neg_loss


def calibration_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  pos_margin: float = 0.9,
  neg_margin: float = 0.6,
  reduce_fn: Callable | None = ranks.nonzero_mean,
):
  """:func:`calibration_loss` on normalised embeddings (reference ``CalibrationLoss``).

  Pairs are all (query, reference item) pairs; in batch mode that includes the self pair, which adds
  a zero term (not counted by the reducer), so ``include_self`` does not change the value.
  """
  del params
  scores, positives, where = inputs_lib.binary_scores(
    inputs, hierarchy_level, include_self, normalize=True, name="calibration"
  )
  return calibration_loss(
    scores, positives, where=where, pos_margin=pos_margin, neg_margin=neg_margin, reduce_fn=reduce_fn
  )


def xbm_contrastive_loss(
  scores, positives, *, where=None, margin: float = 0.5, epsilon: float = 1e-5, reduce_fn: Callable | None = jnp.mean
):
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
    reduce_fn: reduction of the per-query sums over all queries; None: the ``[num_queries]`` sums.

  Returns:
    Scalar loss (``[num_queries]`` with ``reduce_fn=None``).

  References:
    Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020.
  """
  scores, pos, neg, _ = inputs_lib.split_pairs("xbm_contrastive_loss", scores, positives, where=where)
  pos = pos & (scores < 1.0 - epsilon)
  neg = neg & (scores > margin)
  per_query = jnp.sum(jnp.where(pos, 1.0 - scores, 0.0), axis=1) + jnp.sum(jnp.where(neg, scores, 0.0), axis=1)
  return ranks.safe_reduce(per_query, reduce_fn=reduce_fn)


def xbm_contrastive_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  margin: float = 0.5,
  reduce_fn: Callable | None = jnp.mean,
):
  """:func:`xbm_contrastive_loss` on raw dot products (reference ``XBMLoss``)."""
  del params
  scores, positives, where = inputs_lib.binary_scores(inputs, hierarchy_level, include_self, name="xbm_contrastive")
  return xbm_contrastive_loss(scores, positives, where=where, margin=margin, reduce_fn=reduce_fn)


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
  scores, pos, neg, _ = inputs_lib.split_pairs("easy_semihard_triplets", scores, positives, where=where)
  scores = jax.lax.stop_gradient(scores)
  neg_inf = jnp.array(-jnp.inf, scores.dtype)
  positive_index = jnp.argmax(jnp.where(pos, scores, neg_inf), axis=1).astype(jnp.int32)
  has_pos = jnp.any(pos, axis=1)
  best_pos = jnp.take_along_axis(scores, positive_index[:, None], axis=1)
  semihard = neg & (scores < best_pos)
  negative_index = jnp.argmax(jnp.where(semihard, scores, neg_inf), axis=1).astype(jnp.int32)
  keep = has_pos & jnp.any(semihard, axis=1)
  return positive_index, negative_index, keep


def triplet_margin_loss(
  scores,
  positives,
  *,
  where=None,
  margin: float = 0.05,
  mining: str = "all",
  reduce_fn: Callable | None = ranks.nonzero_mean,
):
  """Triplet margin loss on similarities (PML ``TripletMarginLoss`` with ``DotProductSimilarity``).

  .. math:: \\mathcal{L} = \\operatorname{avg}_{>0}\\{[s_{ik} - s_{ij} + m]_+ : (i, j, k) \\in T\\}

  averaged over the strictly positive terms (0 if none). With ``mining='all'``, ``T`` holds every
  (anchor, positive, negative) triplet, ``O(B M^2)`` memory. With ``mining='easy_semihard'`` (the
  reference's ``semihard=True``), ``T`` holds one triplet per anchor from :func:`easy_semihard_triplets`.

  Reference quirk: the reference mines with the self pair present, so in batch mode the easiest
  positive is the anchor itself (similarity 1) and every mined triplet is inactive: the loss is
  exactly 0. The embedding adapter's ``include_self=False`` corrects this (the miner picks the most
  similar *other* positive); its default ``include_self=True`` reproduces the reference.

  Args:
    scores: ``[num_queries, num_items]`` cosine similarities.
    positives: ``[num_queries, num_items]`` bool.
    where: optional ``[num_queries, num_items]`` bool, valid pairs.
    margin: the triplet margin.
    mining: ``'all'`` or ``'easy_semihard'``.
    reduce_fn: reduction of the triplet terms; None: ``[num_queries]``, each anchor's own triplets.

  Returns:
    Scalar loss (``[num_queries]`` with ``reduce_fn=None``).

  References:
    Schroff et al., "FaceNet", CVPR 2015; Xuan et al., "Improved Embeddings with Easy Positive
    Triplet Mining", WACV 2020.
  """
  if mining not in ("all", "easy_semihard"):
    raise ValueError(f"triplet_margin_loss: unknown mining {mining!r}; valid: 'all', 'easy_semihard'")
  scores, pos, neg, valid = inputs_lib.split_pairs("triplet_margin_loss", scores, positives, where=where)
  if mining == "all":
    violation = scores[:, None, :] - scores[:, :, None] + margin  # [i, j (positive), k (negative)]
    return _reduce_terms(jax.nn.relu(violation), pos[:, :, None] & neg[:, None, :], reduce_fn, (1, 2))
  positive_index, negative_index, keep = easy_semihard_triplets(scores, pos, where=valid)
  s_ap = jnp.take_along_axis(scores, positive_index[:, None], axis=1)[:, 0]
  s_an = jnp.take_along_axis(scores, negative_index[:, None], axis=1)[:, 0]
  return _reduce_terms(jax.nn.relu(s_an - s_ap + margin), keep, reduce_fn, ())


def triplet_embedding_loss(
  inputs: LossInputs,
  params=None,
  *,
  hierarchy_level: int | str = 0,
  include_self: bool = True,
  margin: float = 0.05,
  semihard: bool = False,
  reduce_fn: Callable | None = ranks.nonzero_mean,
):
  """:func:`triplet_margin_loss` on normalised embeddings (reference ``TripletLoss``).

  ``semihard=True`` selects the easy-positive / semi-hard-negative miner. ``include_self=True`` (the
  anchor may be its own positive) is the reference's: for all triplets it only adds zero terms unless a
  negative is more similar than ``1 - margin``; with the semi-hard miner it makes the batch-mode loss
  exactly 0 (no training signal), so train that one with ``include_self=False``.
  """
  del params
  scores, positives, where = inputs_lib.binary_scores(
    inputs, hierarchy_level, include_self, normalize=True, name="triplet"
  )
  mining = "easy_semihard" if semihard else "all"
  return triplet_margin_loss(scores, positives, where=where, margin=margin, mining=mining, reduce_fn=reduce_fn)
