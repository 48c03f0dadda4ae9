"""Losses: pure functions on scores, embedding-level adapters, and the ``LOSSES`` registry.

Every registered loss takes ``(inputs: LossInputs, params, **hyper_parameters)`` and returns a
scalar; ``config.losses`` names them by the keys of :data:`LOSSES` (see ``combine.py``). Shared
conventions, the same for every loss:

* ``hierarchy_level``: an int label column or ``'multi'`` (any case), validated by
  :func:`inputs.check_hierarchy_level`; a loss on one column rejects ``'multi'`` and CSL requires it.
* ``include_self=True`` (every loss with a reference set): each query counts among its own reference
  items, the reference's batch-mode convention; ``False`` drops it (the reference's FastAP).
* ``reduce_fn``: the reduction over the batch (the reference's by default); ``reduce_fn=None`` returns the
  ``[num_queries]`` per-query losses. It is not a config entry.
* Learned class vectors are ``params['proxies']`` (``loss/<entry>/proxies`` in the train state).
* Rank losses are score functions over one driver, :func:`ranks.rank_loss`. The SupRank losses take the
  surrogate's settings as one ``surrogate=`` (:class:`ranks.SupRankSurrogate`, default
  :data:`ranks.SUPRANK`); their config keys stay flat (``tau``, ``rho``, ...: ``combine.loss_kwargs``).
"""

from suprank_jax.losses import ap, ap_baselines, hap, inputs, ndcg, pairwise, proxy, ranks, recall, xbm
from suprank_jax.losses.combine import LossDef, entries, init_loss_params, make_loss_fn, weighted_loss
from suprank_jax.losses.inputs import LossInputs, batch_inputs, memory_inputs

__all__ = [
  "LOSSES",
  "LossDef",
  "LossInputs",
  "batch_inputs",
  "memory_inputs",
  "entries",
  "init_loss_params",
  "make_loss_fn",
  "weighted_loss",
  "ap",
  "ap_baselines",
  "hap",
  "inputs",
  "ndcg",
  "pairwise",
  "proxy",
  "ranks",
  "recall",
  "xbm",
]

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
  "proxy_nca_pp": LossDef(proxy.proxy_nca_pp_embedding_loss, proxy.proxy_nca_pp_init_params, uses_reference=False),
  "csl": LossDef(proxy.csl_embedding_loss, proxy.csl_init_params, uses_reference=False),
}
