"""SupRank's other surrogates: recall@k and NDCG, as the SupRank repository's files compose them."""

from suprank_jax.configs.experiments.record import from_files

__all__ = ["EXPERIMENTS", "INTRO", "TITLE"]

TITLE = "SupRank's other surrogates"
INTRO = ""

# (the loss, where in the paper)
_NDCG = ("SupNDCG (NDCG surrogate + cluster loss)", "the NDCG experiments")
_RECALL = ("SupRecall (recall@k surrogate + calibration)", "the recall@k experiments")
_HALVES = "Its loss file's `weight: null` gives each of its two losses 1/2."


def _surrogate(file, loss, data, dataset, loss_file, *, freeze_epochs=5, hierarchy_levels=(0,), notes=""):
  """``suprank/<file>``: ``loss`` (one of the pairs above) on ``dataset`` (called ``data`` in the title) with
  the original's ``loss_file``, ResNet-50 with LayerNorm and the data set's own optimizer file."""
  what, table = loss
  optimizer = "sop" if dataset == "sop" else "inat"
  return from_files(
    f"suprank/{file}",
    f"{what} on {data}",
    dict(dataset=dataset, model="resnet_ln", optimizer=optimizer, loss=loss_file),
    paper="suprank",
    table=table,
    freeze_epochs=freeze_epochs,
    hierarchy_levels=hierarchy_levels,
    notes=notes,
  )


EXPERIMENTS = (
  _surrogate("supndcg_inat", _NDCG, "iNat-base", "inat_base", "roadndcg_inat", hierarchy_levels=(0, 1)),
  _surrogate("supndcg_sop", _NDCG, "SOP", "sop", "roadndcg_sop", hierarchy_levels=(0, 1)),
  _surrogate("suprecall_inat", _RECALL, "iNaturalist-2018", "inat_base", "ROADRatk_inat"),
  _surrogate("suprecall_sop", _RECALL, "SOP", "sop", "ROADRatk_SOP", freeze_epochs=0, notes=_HALVES),
)
