"""Loss groups: the original's ``suprank/config/loss/*.yaml`` as entries of ``config.losses``.

Each original file lists losses and their weights (``weight: null`` means ``1 / number of losses``,
the original getter's rule). Key names map to ours: ``nq`` -> ``num_bins``, ``min``/``max`` ->
``min_score``/``max_score``, ``s``/``m`` -> ``scale``/``margin``, ``hierarchy_level: MULTI`` ->
``'multi'``. A loss with learnable parameters (class weights, proxies) gets its own optimizer in
the original: ``${optimizer.opt.head}`` (the head's: here the ``^model/head/`` group's setting, or
the base optimizer without one), ``${optimizer.opt.net}`` (the whole network's: the base optimizer;
the original cannot resolve it with a backbone/head optimizer file, see happier_product), or its own,
e.g. Adam at 10.0 with a cosine floor of 0.1 (HAPPIER_SOP.yaml). It becomes a rule of
``config.optim.groups`` on ``^loss/<entry>/``, so a loss group is applied after the optimizer group.

``roadmap_repo_<name>`` is the ROADMAP repository's ``roadmap/config/loss/<name>.yaml``: SupAP
(``temp`` -> ``tau``, ``tau`` -> ``rho``, ``margin`` -> ``delta``) and its ``ContrastiveLoss`` (the
calibration loss), weights 1 and 1. Its SupAP (``losses/smooth_rank_ap.py``, ``step_rank``) puts a
negative scored ``x > margin`` above a positive at ``tau * x + offset``, SupRank's (and ours) at
``rho * (x - delta) + offset``: the same function with our ``offset`` = its ``offset + rho * delta``.
"""

from __future__ import annotations

from typing import Any

from suprank_jax.configs import common
from suprank_jax.configs.groups import optimizer as optimizer_groups

__all__ = ["GROUPS"]

# The SupRank surrogate of the SOP/CUB/DyML configs, and of the iNaturalist ones.
SUP = dict(tau=0.01, rho=100.0, offset=1.44, delta=0.05, start=0.5)
SUP_INAT = dict(tau=0.01, rho=100.0, offset=1.0, delta=0.05, start=0.0)
HAP = dict(beta=25.0, gamma=0.5, leak=10.0, with_hrank=False, hierarchy_level="multi")
# The loss parameters' own optimizer of many configs: Adam 10.0, no weight decay, cosine to 0.1.
ADAM10 = dict(name="adam", learning_rate=10.0, weight_decay=0.0, schedule="cosine", min_learning_rate=0.1)
CALIBRATION = ("calibration", "calibration", dict(pos_margin=0.9, neg_margin=0.6))


def _optimizer_setting(config, spec):
  """The ``config.optim.groups`` setting of a loss-parameter optimizer ``spec`` ('head', 'net' or a dict)."""
  if isinstance(spec, dict):
    return dict(spec)
  if spec == "head":
    for regex, setting in config.optim.groups:
      if regex == optimizer_groups.HEAD_REGEX:
        return setting
  return 1.0


def _group(
  entries: list[tuple[str, str, dict[str, Any]]],
  weights: tuple[float, ...] | None = None,
  optimizer: Any = None,
  doc: str = "",
):
  """A loss group: ``entries`` of ``(entry, loss name, hyper-parameters)``; ``weights`` None means equal
  weights summing to 1; ``optimizer`` the spec of the parameter losses' optimizer."""
  weights = weights or tuple(1.0 / len(entries) for _ in entries)
  if len(weights) != len(entries):
    raise ValueError(f"{len(weights)} weights for {len(entries)} losses")

  def group(config):
    rules = []
    for (entry, name, hp), weight in zip(entries, weights):
      if entry in config.losses and config.losses[entry].name == name:
        common.set_loss(config, entry, weight, **hp)
      else:
        common.add_loss(config, entry, name, weight, **hp)
      if optimizer is not None and name in ("cluster", "arcface", "proxy_nca_pp", "csl"):
        rules.append((f"^loss/{entry}/", _optimizer_setting(config, optimizer)))
    config.optim.groups = tuple(config.optim.groups) + tuple(rules)

  group.__doc__ = doc or " + ".join(f"{w:g} {name}" for (_, name, _), w in zip(entries, weights))
  return group


def _rank(name: str, surrogate: dict, **hp):
  return (name, name, {**surrogate, **hp})


def _cluster(level: int = 0, entry: str = "cluster", **hp):
  return (entry, "cluster", dict(hierarchy_level=level, **hp))


def _levels(name: str, levels, **hp):
  """One entry of loss ``name`` per label level (``<name>``, ``<name>_level1``, ...)."""
  return [(name if level == 0 else f"{name}_level{level}", name, dict(hierarchy_level=level, **hp)) for level in levels]


RECALL = dict(at_k=(1, 2, 4, 8, 16), temp=1.0)
CSL3 = (0.25, 0.35, 0.45)

GROUPS = {
  # HAPPIER: SupHAP + normalised softmax (the cluster loss).
  "happier": _group([_rank("sup_hap", SUP, **HAP), _cluster()], (0.9, 0.1), "head"),
  "happier_5": _group([_rank("sup_hap", SUP, **HAP), _cluster(temperature=0.05)], (0.5, 0.5), "head"),
  "happier_5_sop": _group([_rank("sup_hap", SUP, **HAP), _cluster(temperature=0.05)], (0.5, 0.5), ADAM10),
  "happier_sop": _group([_rank("sup_hap", SUP, **HAP), _cluster(temperature=0.05)], (0.9, 0.1), ADAM10),
  "happier_sop_arcface": _group(
    [_rank("sup_hap", SUP, **HAP), ("arcface", "arcface", dict(scale=30.0, margin=0.3))], (0.9, 0.1), ADAM10
  ),
  "happier_inat": _group([_rank("sup_hap", SUP_INAT, **HAP), _cluster(temperature=0.05)], (0.9, 0.1), ADAM10),
  "happier_pp_lm": _group([_rank("sup_hap", SUP, hierarchy_level="multi"), _cluster()], (0.9, 0.1), "head"),
  # SupRank's HAPPIER_product.yaml gives the class weights ${optimizer.opt.net}, which dyml_product.yaml
  # lacks (Hydra stops); the HAPPIER repository's file, whose README has the DyML-Product command, gives
  # ${optimizer.opt.1}: its dyml_product.yaml's fc optimizer, the head's SGD at 2x (0.02).
  "happier_product": _group([_rank("sup_hap", SUP, **HAP), _cluster(temperature=0.05)], (0.9, 0.1), "head"),
  # ROADMAP: SupAP + calibration; the '_pp' variants replace calibration by a proxy loss.
  "roadmap_sop": _group([_rank("sup_ap", SUP), CALIBRATION], (0.9, 0.1)),
  "roadmap_inat": _group([_rank("sup_ap", SUP_INAT), CALIBRATION], (0.9, 0.1)),
  "roadmap_repo_roadmap": _group([_rank("sup_ap", SUP, offset=6.44), CALIBRATION], (1.0, 1.0)),
  "roadmap_repo_roadmap_inat": _group([_rank("sup_ap", SUP_INAT, offset=6.0), CALIBRATION], (1.0, 1.0)),
  "roadmap_pp": _group([_rank("sup_ap", SUP), _cluster()], (0.9, 0.1), "head"),
  "roadmap_pp_lm": _group([_rank("sup_ap", SUP), _cluster()], (0.9, 0.1), "net"),
  "roadmap_pp_sop": _group([_rank("sup_ap", SUP), _cluster(temperature=0.05)], (0.9, 0.1), ADAM10),
  "roadmap_pp_arcface_sop": _group(
    [_rank("sup_ap", SUP), ("arcface", "arcface", dict(scale=30.0, margin=0.5))], (0.9, 0.1), ADAM10
  ),
  "roadmap_pp_inat": _group([_rank("sup_ap", SUP_INAT), _cluster(temperature=0.05)], (0.9, 0.1), ADAM10),
  "roadmap_pp_inat_arcface": _group(
    [_rank("sup_ap", SUP_INAT), ("arcface", "arcface", dict(scale=30.0, margin=0.5))], (0.9, 0.1), "head"
  ),
  "roadmap_pp_inat_base": _group([_rank("sup_ap", SUP_INAT), _cluster()], (0.9, 0.1), "head"),
  # SupRecall (ROADRatk): recall@k surrogate + calibration or a proxy loss (weight: null -> 1/2 each).
  "roadratk_sop": _group([_rank("sup_recall", SUP, **RECALL), CALIBRATION]),
  "roadratk_inat": _group([_rank("sup_recall", SUP_INAT, **RECALL), CALIBRATION]),
  "roadratk_pp": _group([_rank("sup_recall", SUP, **RECALL), _cluster()], optimizer="head"),
  "roadratk_pp_sop": _group([_rank("sup_recall", SUP, **RECALL), _cluster(temperature=0.05)], optimizer=ADAM10),
  "roadratk_pp_inat": _group([_rank("sup_recall", SUP_INAT, **RECALL), _cluster(temperature=0.05)], optimizer=ADAM10),
  # SupNDCG (ROAD_NDCG) + the cluster loss.
  "roadndcg_05": _group(
    [_rank("sup_ndcg", SUP, hierarchy_level="multi"), _cluster(temperature=0.05)], (0.5, 0.5), "net"
  ),
  "roadndcg_dyml": _group(
    [_rank("sup_ndcg", SUP, hierarchy_level="multi"), _cluster(temperature=0.05)], (0.9, 0.1), "net"
  ),
  "roadndcg_inat": _group(
    [_rank("sup_ndcg", SUP_INAT, hierarchy_level="multi"), _cluster(temperature=0.05)], (0.9, 0.1), ADAM10
  ),
  "roadndcg_product": _group(
    [_rank("sup_ndcg", SUP, hierarchy_level="multi"), _cluster(temperature=0.05)], (0.9, 0.1), "head"
  ),
  "roadndcg_sop": _group(
    [_rank("sup_ndcg", SUP, hierarchy_level="multi"), _cluster(temperature=0.05)], (0.9, 0.1), ADAM10
  ),
  # The SupRank surrogates alone.
  "supap": _group([_rank("sup_ap", SUP)]),
  "supap_inat": _group([_rank("sup_ap", SUP_INAT)]),
  "suphap": _group([_rank("sup_hap", SUP, hierarchy_level="multi")]),
  "suphap_inat": _group([_rank("sup_hap", SUP_INAT, hierarchy_level="multi")]),
  "supndcg": _group([_rank("sup_ndcg", SUP, hierarchy_level="multi")]),
  "supndcg_inat": _group([_rank("sup_ndcg", SUP_INAT, hierarchy_level="multi")]),
  "suprecall": _group([_rank("sup_recall", SUP, **RECALL)]),
  "suprecall_at_10": _group([_rank("sup_recall", SUP, at_k=(10,), temp=1.0)]),
  "suprecall_inat": _group([_rank("sup_recall", SUP_INAT, **RECALL)]),
  # Smooth (sigmoid) baselines.
  "smoothap": _group([("smooth_ap", "smooth_ap", dict(tau=0.01))]),
  "smoothhap": _group([("smooth_hap", "smooth_hap", dict(tau=0.01, hierarchy_level="multi"))]),
  "smoothndcg": _group([("smooth_ndcg", "smooth_ndcg", dict(tau=0.01, hierarchy_level="multi"))]),
  "smoothrecall": _group([("smooth_recall", "smooth_recall", dict(tau=0.01, **RECALL))]),
  # AP baselines.
  # The reference runs FastAP without a reference set: PML leaves each query's own pair out.
  "fastap": _group([("fastap", "fastap", dict(include_self=False))]),
  "softbinap": _group([("softbin_ap", "softbin_ap", dict(num_bins=20, min_score=-1.0, max_score=1.0))]),
  "blackboxap": _group([("blackbox_ap", "blackbox_ap", dict(lambda_val=4.0, margin=0.02))]),
  # Pair losses.
  "triplet": _group([("triplet", "triplet", dict(margin=0.05, semihard=False))]),
  # include_self=False: the reference's semi-hard miner picks the anchor itself as its positive, so its
  # batch-mode loss is exactly 0; this experiment trains with the corrected miner (True: the reference).
  "triplet_mining": _group([("triplet", "triplet", dict(margin=0.05, semihard=True, include_self=False))]),
  "triplet_double": _group(_levels("triplet", (0, 1), margin=0.05, semihard=False)),
  "triplet_triple": _group(_levels("triplet", (0, 1, 2), margin=0.05, semihard=False)),
  # As the original file: levels 0, 1, 3, 4, 5, 6 (level 2 is not in triplet_seven.yaml).
  "triplet_seven": _group(_levels("triplet", (0, 1, 3, 4, 5, 6), margin=0.05, semihard=False)),
  "xbm": _group([("xbm_contrastive", "xbm_contrastive", dict(margin=0.5))]),
  # Proxy / classification losses.
  "norm_softmax": _group([_cluster()], optimizer="head"),
  "norm_softmax_cub": _group([_cluster()], optimizer=dict(ADAM10, learning_rate=400.0)),
  "norm_softmax_product": _group([_cluster()], optimizer="net"),
  "norm_softmax_sop": _group([_cluster()], optimizer=ADAM10),
  "norm_softmax_sop_double": _group(_levels("cluster", (0, 1)), optimizer=ADAM10),
  "norm_softmax_triple": _group(_levels("cluster", (0, 1, 2)), optimizer="head"),
  "norm_softmax_product_triple": _group(_levels("cluster", (0, 1, 2)), optimizer="net"),
  "norm_softmax_seven": _group(_levels("cluster", range(7)), optimizer="head"),
  "arcface": _group([("arcface", "arcface", dict(scale=30.0, margin=0.5))], optimizer="head"),
  "arcface_lm": _group([("arcface", "arcface", dict(scale=30.0, margin=0.3))], optimizer="net"),
  "arcface_sop": _group([("arcface", "arcface", dict(scale=30.0, margin=0.3))], optimizer=ADAM10),
  "proxy_nca_pp": _group([("proxy_nca_pp", "proxy_nca_pp", {})], optimizer="head"),
  "csl": _group([("csl", "csl", dict(margins=CSL3, scale=32.0, reduce_type="sum"))], optimizer="net"),
  "csl_product": _group([("csl", "csl", dict(margins=CSL3, scale=32.0, reduce_type="sum"))], optimizer="head"),
  "csl_inat": _group(
    [("csl", "csl", dict(margins=(0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75), scale=32.0, reduce_type="sum"))],
    optimizer="head",
  ),
  "csl_inat_base": _group(
    [("csl", "csl", dict(margins=(0.25, 0.45), scale=32.0, reduce_type="sum"))], optimizer="head"
  ),
  # Adam 10.0 without weight decay, with the head's scheduler (${optimizer.sch.head}).
  "csl_sop": _group(
    [("csl", "csl", dict(margins=(0.25, 0.45), scale=32.0, reduce_type="sum"))],
    optimizer=dict(name="adam", learning_rate=10.0, weight_decay=0.0),
  ),
  "csl_gldv2_l3": _group(
    [("csl", "csl", dict(margins=CSL3, scale=32.0, reduce_type="sum"))],
    optimizer=dict(name="adam", learning_rate=10.0, weight_decay=0.0),
  ),
}
