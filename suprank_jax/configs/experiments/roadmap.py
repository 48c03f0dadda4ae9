"""The ROADMAP experiments: the runs of the ROADMAP repository's README (its NeurIPS 2021 table), and
compositions of the SupRank repository's files for the same table."""

import dataclasses

from suprank_jax.configs.experiments.record import Experiment, Source, from_files, leaderboard

__all__ = ["EXPERIMENTS", "INTRO", "TITLE", "readme_evaluation"]

TITLE = "ROADMAP: SupAP + calibration"
INTRO = """\
`roadmap/sop`, `cub`, `inat`, `sop_deit_small` and `cub_deit_small` are the runs of the ROADMAP
repository's README (its NeurIPS table), built from that repository's config files (the
`roadmap_repo_*` groups where SupRank's same-named files differ: no LayerNorm, MultiStepLR or constant
rates, loss weights 1 and 1, seed 333, evaluation every 5 epochs); `*_suprank`, `*_deit_base` and
`inat_deit_*` compose the SupRank repository's files instead, for which no README gives a command.
"""


def readme_evaluation(config):
  """The ROADMAP repository's ``experience/default.yaml``: evaluation every 5 epochs and at the end
  (``test_eval_freq: 5``); no warm-up (``warm_up: -1``, the default ``freeze_epochs=0``)."""
  config.eval_every_epochs = 5


_TABLE = "Table 4"
_SUPRANK_FILES = "the SupRank repository's composition of its Table 4 run `roadmap/{}`"
_ROADMAP_LOSS = "`loss=roadmap` weighs SupAP and calibration 1 and 1; evaluation every 5 epochs."
_DEFAULTS = "Its `default.yaml` gives `max_iter` 100 and seed 0."
_DEIT_S = "`roadmap/{}_deit_small` is the ROADMAP README's DeiT-S run."
_README_SEED = 333
_DATA = {"cub": "CUB-200-2011", "inat": "iNaturalist-2018", "sop": "SOP"}  # the first word of a file name
# model group -> (its name in the titles, its weights); any other is a ResNet-50.
_DEIT = {
  "deit_base": ("DeiT-B", ("deit_base_distilled_patch16_224.safetensors",)),
  "deit_small": ("DeiT-S", ("deit_small_distilled_patch16_224.safetensors",)),
}
_RESNET = ("ResNet-50", ("resnet50.safetensors",))


def _title(file: str, model: str) -> str:
  backbone = _DEIT.get(model, _RESNET)[0]
  return f"ROADMAP (SupAP + calibration) on {_DATA[file.split('_')[0]]} with {backbone}"


def _readme_run(file, groups, files, readme, **fields):
  """``roadmap/<file>``: the ROADMAP README's run ``readme``, of that repository's config ``files`` (the loss
  last), with its seed 333, evaluation every 5 epochs, and the run length and sampler arguments of ``fields``;
  ``groups``: the groups that hold the files' values."""
  e = Experiment(
    f"roadmap/{file}",
    _title(file, groups["model"]),
    groups,
    Source("roadmap", "", readme),
    paper="roadmap",
    table=_TABLE,
    weights=_DEIT.get(groups["model"], _RESNET)[1],
    seed=_README_SEED,
    finish=(readme_evaluation,),
    **fields,
  )
  *others, loss = files.split()
  sampler = {"batch_size": e.batch_size, "batches_per_super_pair": e.batches_per_super_tuple}
  args = [f"experience.seed={e.seed}", f"experience.max_iter={e.epochs}", *others]
  args += [f"dataset.sampler.kwargs.{key}={value}" for key, value in sampler.items() if value] + [loss]
  return dataclasses.replace(e, source=Source("roadmap", " ".join(args), readme))


def _suprank_files(file, dataset, model, optimizer, loss_file, **fields):
  """``roadmap/<file>``: a composition of the SupRank repository's files; ``<data>_suprank`` is that of the
  README's ResNet-50 run ``roadmap/<data>``."""
  title, table = _title(file, model), _TABLE
  if file.endswith("_suprank"):
    title += ", as the SupRank repository's files compose it"
    table, fields["published"] = _SUPRANK_FILES.format(file.split("_")[0]), "none for this composition"
  return from_files(
    f"roadmap/{file}",
    title,
    dict(dataset=dataset, model=model, optimizer=optimizer, loss=loss_file),
    paper="roadmap",
    table=table,
    weights=_DEIT.get(model, _RESNET)[1],
    **fields,
  )


EXPERIMENTS = (
  _readme_run(
    "cub",
    dict(dataset="cub_big", model="resnet_ln_max", optimizer="roadmap_repo_cub", loss="roadmap_repo_roadmap"),
    "optimizer=cub model=resnet_max_ln transform=cub_big dataset=cub loss=roadmap",
    "CUB-200-2011",
    published=leaderboard("roadmap", "R@1 68.5 (ResNet-50)", unread="mAP@R"),
    epochs=200,
    batch_size=128,
    notes=(
      "Its files: `optimizer=cub` is one Adam over every parameter at a constant 1e-6, weight decay 4e-4, no "
      "scheduler (read from `margin_ap/config/optimizer/cub.yaml`, the package's earlier name: the stored copy "
      "lacks `roadmap/config/optimizer/cub.yaml`); `model=resnet_max_ln` is SupRank's `resnet_ln_max`, and "
      f"`dataset=cub` with `transform=cub_big` SupRank's `cub_big` (256 crops, MPerClassSampler); {_ROADMAP_LOSS}"
    ),
  ),
  _suprank_files(
    "cub_deit_base",
    "cub",
    "deit_base",
    "cub_deit",
    "ROADMAP_SOP",
    published=leaderboard("roadmap", "R@1 77.4 (DeiT-B)"),
    epochs=150,
    batch_size=128,
    notes=_DEIT_S.format("cub"),
  ),
  _readme_run(
    "cub_deit_small",
    dict(dataset="cub", model="deit_small", optimizer="roadmap_repo_cub_deit", loss="roadmap_repo_roadmap"),
    "optimizer=cub_deit model=deit transform=cub dataset=cub loss=roadmap",
    "CUB-200-2011, DeiT",
    epochs=150,
    batch_size=128,
    notes=(
      "Its files: `model=deit` is DeiT-S (`deit_small` here, as `roadmap/sop_deit_small`); `optimizer=cub_deit` "
      "is one AdamW over every parameter at a constant 1e-6, weight decay 5e-4, no scheduler; `dataset=cub` with "
      f"`transform=cub` is SupRank's `cub`; {_ROADMAP_LOSS}"
    ),
  ),
  _suprank_files("cub_suprank", "cub_big", "resnet_ln_max", "cub", "ROADMAP_SOP", epochs=200, batch_size=128),
  _readme_run(
    "inat",
    dict(
      dataset="inat_base",
      model="roadmap_repo_resnet",
      optimizer="roadmap_repo_inaturalist",
      loss="roadmap_repo_roadmap_inat",
    ),
    "optimizer=inaturalist model=resnet transform=inaturalist dataset=inaturalist loss=roadmap_inat",
    "INaturalist, 3 GPUs",
    published="not read here (see the paper; the leaderboard row for ResNet-50 is cut off in the stored page)",
    epochs=90,
    batch_size=384,
    notes=(
      "Its files: `model=resnet` has no LayerNorm; `optimizer=inaturalist` is Adam 1e-5, weight decay 4e-4 on the "
      "backbone and the fc layer, MultiStepLR at epochs 30 and 70 with gamma 0.3 on both (read from "
      "`marginap/config/optimizer/inaturalist.yaml`, the package's earlier name: the stored copy lacks "
      "`roadmap/config/optimizer/inaturalist.yaml`); `dataset=inaturalist` with its transform is SupRank's "
      "`inat_base` (species and path super-category, 224 crops, MPerClassSampler); `loss=roadmap_inat` weighs "
      "SupAP and calibration 1 and 1; evaluation every 5 epochs."
    ),
  ),
  _suprank_files("inat_deit_base", "inat_base", "deit_base", "inat_deit", "ROADMAP_inat", notes=_DEFAULTS),
  _suprank_files(
    "inat_deit_small",
    "inat_base",
    "deit_small",
    "inat_deit",
    "ROADMAP_inat",
    published=leaderboard("roadmap", "R@1 73.6 (DeiT-S)"),
    notes=_DEFAULTS,
  ),
  _suprank_files("inat_suprank", "inat_base", "resnet_ln", "inat", "ROADMAP_inat", epochs=90, batch_size=384),
  _readme_run(
    "sop",
    dict(
      dataset="roadmap_repo_sop_big",
      model="roadmap_repo_resnet",
      optimizer="roadmap_repo_sop",
      loss="roadmap_repo_roadmap",
    ),
    "optimizer=sop model=resnet transform=sop_big dataset=sop loss=roadmap",
    "SOP",
    published=leaderboard("roadmap", "R@1 83.1 (ResNet-50)", unread="mAP@R"),
    batch_size=128,
    batches_per_super_tuple=10,
    notes=(
      "Its files: `model=resnet` has no LayerNorm; `optimizer=sop` is Adam 1e-5, weight decay 1e-4 on the backbone "
      "and the fc layer, MultiStepLR at epoch 25 with gamma 0.1 (read from `margin_ap/config/optimizer/sop.yaml`, "
      "the package's earlier name: the stored copy lacks `roadmap/config/optimizer/sop.yaml`); `transform=sop_big` "
      "is Resize(288), 256 crops; `loss=roadmap` weighs SupAP and calibration 1 and 1; the HierarchicalSampler "
      "(2 super-classes per batch); evaluation every 5 epochs."
    ),
  ),
  _suprank_files(
    "sop_deit_base",
    "sop",
    "deit_base",
    "sop_deit_sch",
    "ROADMAP_SOP",
    published=leaderboard("roadmap", "R@1 86.0 (DeiT-B)"),
    epochs=75,
    batch_size=128,
    batches_per_super_tuple=10,
    notes=_DEIT_S.format("sop"),
  ),
  _readme_run(
    "sop_deit_small",
    dict(dataset="sop", model="deit_small", optimizer="sop_deit_sch", loss="roadmap_repo_roadmap"),
    "optimizer=sop_deit model=deit transform=sop dataset=sop loss=roadmap",
    "SOP, transformer backbone",
    epochs=75,
    batch_size=128,
    batches_per_super_tuple=10,
    notes=(
      "Its files: `model=deit` is DeiT-S (`vit_deit_distilled`: the distilled checkpoint without its distillation "
      "token, the class token, no projection): `deit_small` here; `optimizer=sop_deit`, one AdamW 1e-5, weight "
      f"decay 5e-4, MultiStepLR at epochs 25 and 50 with gamma 0.3, is SupRank's `sop_deit_sch`; {_ROADMAP_LOSS}"
    ),
  ),
  _suprank_files("sop_suprank", "sop", "resnet_ln", "sop", "ROADMAP_SOP", notes=_DEFAULTS),
)
