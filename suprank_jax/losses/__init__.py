"""Losses: pure functions on scores, embedding-level adapters, and the ``LOSSES`` registry.

Every registered loss takes ``(inputs: LossInputs, params, **hyper_parameters)`` and returns a
scalar; ``config.losses`` names them by the keys of :data:`LOSSES` (see ``combine.py``).
"""

from suprank_jax.losses import ap, ap_baselines, hap, ndcg, pairwise, proxy, recall, xbm
from suprank_jax.losses.combine import LossDef, entries, init_loss_params, weighted_loss
from suprank_jax.losses.inputs import LossInputs, batch_inputs, memory_inputs

__all__ = ["LOSSES", "LossDef", "LossInputs", "batch_inputs", "memory_inputs", "entries", "init_loss_params",
           "weighted_loss"]

# config name -> loss. One explicit dict: an unknown name fails listing these keys.
LOSSES = {
    # Rank losses: the SupRank family and its smooth (sigmoid) baselines.
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
    # AP baselines.
    "fastap": LossDef(ap_baselines.fastap_embedding_loss, uses_reference=False),
    "softbin_ap": LossDef(ap_baselines.softbin_ap_embedding_loss),
    "blackbox_ap": LossDef(ap_baselines.blackbox_ap_embedding_loss),
    # Proxy losses (learnable parameters, no reference set).
    "cluster": LossDef(proxy.cluster_embedding_loss, proxy.cluster_init_params, uses_reference=False),
    "arcface": LossDef(proxy.arcface_embedding_loss, proxy.arcface_init_params, uses_reference=False),
    "proxy_nca_pp": LossDef(proxy.proxy_nca_pp_embedding_loss, proxy.proxy_nca_pp_init_params,
                            uses_reference=False),
    "csl": LossDef(proxy.csl_embedding_loss, proxy.csl_init_params, uses_reference=False),
}
