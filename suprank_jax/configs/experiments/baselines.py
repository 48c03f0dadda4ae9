"""The baselines of the SupRank and HAPPIER comparison tables, as the SupRank repository's files compose them:
ResNet-50 with LayerNorm (``model=resnet_ln``) and the data set's own optimizer file."""

from suprank_jax.configs.experiments.record import from_files

__all__ = ["EXPERIMENTS", "INTRO", "TITLE"]

TITLE = "Baselines"
INTRO = ""

_DATA = {"sop": "SOP", "inat_base": "iNat-base", "inat_full": "iNat-full"}


def _baseline(name, what, dataset, loss, *, memory="", hierarchy_levels=(0,)):
  """``baselines/<name>``: ``what`` trained on ``dataset`` with ``loss``; the iNaturalist runs freeze the
  backbone for 5 epochs (``warmup_step=5``) as the original's iNaturalist files."""
  inat = dataset != "sop"
  files = dict(dataset=dataset, model="resnet_ln", optimizer="inat" if inat else "sop", loss=loss)
  if memory:
    files["memory"] = memory
  return from_files(
    f"baselines/{name}",
    f"Baseline: {what} on {_DATA[dataset]} with ResNet-50",
    files,
    paper="suprank",
    table="a baseline of its comparison tables and HAPPIER's",
    freeze_epochs=5 if inat else 0,
    hierarchy_levels=hierarchy_levels,
  )


EXPERIMENTS = (
  _baseline("arcface_sop", "ArcFace", "sop", "arcface_sop"),
  _baseline("blackboxap_sop", "black-box AP", "sop", "blackboxap"),
  _baseline("csl_inat_full", "CSL", "inat_full", "csl_inat", hierarchy_levels=(0, 1, 2, 3, 4, 5, 6)),
  _baseline("csl_sop", "CSL", "sop", "csl_sop", hierarchy_levels=(0, 1)),
  _baseline("fastap_sop", "FastAP", "sop", "fastap"),
  _baseline("norm_softmax_inat", "normalised softmax (NSM)", "inat_base", "norm_softmax", hierarchy_levels=(0, 1)),
  _baseline("norm_softmax_sop", "normalised softmax (NSM)", "sop", "norm_softmax_sop", hierarchy_levels=(0, 1)),
  _baseline("proxy_nca_pp_sop", "ProxyNCA++", "sop", "proxy_nca_pp"),
  _baseline("smoothap_sop", "Smooth-AP", "sop", "smoothap"),
  _baseline("smoothhap_sop", "Smooth-HAP", "sop", "smoothhap", hierarchy_levels=(0, 1)),
  _baseline("smoothndcg_sop", "Smooth-NDCG", "sop", "smoothndcg", hierarchy_levels=(0, 1)),
  _baseline("smoothrecall_sop", "Smooth-Recall", "sop", "smoothrecall"),
  _baseline("softbinap_sop", "soft-binning AP", "sop", "softbinap"),
  _baseline("supap_xbm_inat", "SupAP with a cross-batch memory", "inat_base", "supap_inat", memory="inat_memory"),
  _baseline("suphap_sop", "SupHAP (HAPPIER's surrogate alone)", "sop", "suphap", hierarchy_levels=(0, 1)),
  _baseline("triplet_inat", "the triplet loss", "inat_base", "triplet", hierarchy_levels=(0, 1)),
  _baseline("triplet_mining_sop", "the triplet loss with semi-hard mining", "sop", "triplet_mining"),
  _baseline("triplet_sop", "the triplet loss", "sop", "triplet"),
  _baseline("xbm_sop", "the contrastive loss with a cross-batch memory (XBM)", "sop", "xbm", memory="full_memory"),
)
