"""SupRank's other surrogates: recall@k and NDCG, as the SupRank repository's files compose them."""

from suprank_jax.configs.experiments.record import Experiment, Source

__all__ = ["EXPERIMENTS", "INTRO", "TITLE"]

TITLE = "SupRank's other surrogates"
INTRO = ""

_NDCG = "the NDCG experiments"
_RECALL = "the recall@k experiments"

EXPERIMENTS = (
  Experiment(
    "suprank/supndcg_inat",
    "SupNDCG (NDCG surrogate + cluster loss) on iNat-base",
    dict(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="roadndcg_inat"),
    Source("suprank", "dataset=inat_base model=resnet_ln optimizer=inat loss=roadndcg_inat warmup_step=5"),
    paper="suprank",
    table=_NDCG,
    freeze_epochs=5,
    hierarchy_levels=(0, 1),
  ),
  Experiment(
    "suprank/supndcg_sop",
    "SupNDCG (NDCG surrogate + cluster loss) on SOP",
    dict(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadndcg_sop"),
    Source("suprank", "dataset=sop model=resnet_ln optimizer=sop loss=roadndcg_sop warmup_step=5"),
    paper="suprank",
    table=_NDCG,
    freeze_epochs=5,
    hierarchy_levels=(0, 1),
  ),
  Experiment(
    "suprank/suprecall_inat",
    "SupRecall (recall@k surrogate + calibration) on iNaturalist-2018",
    dict(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="roadratk_inat"),
    Source("suprank", "dataset=inat_base model=resnet_ln optimizer=inat loss=ROADRatk_inat warmup_step=5"),
    paper="suprank",
    table=_RECALL,
    freeze_epochs=5,
  ),
  Experiment(
    "suprank/suprecall_sop",
    "SupRecall (recall@k surrogate + calibration) on SOP",
    dict(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadratk_sop"),
    Source("suprank", "dataset=sop model=resnet_ln optimizer=sop loss=ROADRatk_SOP"),
    paper="suprank",
    table=_RECALL,
    notes="Its loss file's `weight: null` gives each of its two losses 1/2.",
  ),
)
