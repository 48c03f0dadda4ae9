"""Losses: pure functions on scores, embedding-level adapters, and the ``LOSSES`` registry.

Every registered loss takes ``(inputs: LossInputs, params, **hyper_parameters)`` and returns a
scalar; ``config.losses`` names them by the keys of :data:`LOSSES` (see ``combine.py``).
"""

from suprank_jax.losses import ap, hap, ndcg, pairwise, recall
from suprank_jax.losses.combine import LossDef, entries, init_loss_params, weighted_loss
from suprank_jax.losses.inputs import LossInputs, batch_inputs, memory_inputs

__all__ = ["LOSSES", "LossDef", "LossInputs", "batch_inputs", "memory_inputs", "entries", "init_loss_params",
           "weighted_loss"]

# config name -> loss. One explicit dict: an unknown name fails listing these keys.
LOSSES = {
    # Rank losses (SupRank family and smooth baselines).
    "smooth_ap": LossDef(ap.smooth_ap_embedding_loss),
    "sup_ap": LossDef(ap.sup_ap_embedding_loss),
    "smooth_hap": LossDef(hap.smooth_hap_embedding_loss),
    "sup_hap": LossDef(hap.sup_hap_embedding_loss),
    "smooth_recall": LossDef(recall.smooth_recall_embedding_loss),
    "sup_recall": LossDef(recall.sup_recall_embedding_loss),
    "smooth_ndcg": LossDef(ndcg.smooth_ndcg_embedding_loss),
    "sup_ndcg": LossDef(ndcg.sup_ndcg_embedding_loss),
    # Pair losses.
    "calibration": LossDef(pairwise.calibration_embedding_loss),
    "xbm_contrastive": LossDef(pairwise.xbm_contrastive_embedding_loss),
    "triplet": LossDef(pairwise.triplet_embedding_loss),
}
