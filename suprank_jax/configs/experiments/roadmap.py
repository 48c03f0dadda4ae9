"""The ROADMAP experiments: the runs of the ROADMAP repository's README (its NeurIPS 2021 table), and
compositions of the SupRank repository's files for the same table."""

from suprank_jax.configs.experiments.record import Experiment, Source, leaderboard

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

EXPERIMENTS = (
  Experiment(
    "roadmap/cub",
    "ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50",
    dict(dataset="cub_big", model="resnet_ln_max", optimizer="roadmap_repo_cub", loss="roadmap_repo_roadmap"),
    Source(
      "roadmap",
      "experience.seed=333 experience.max_iter=200 optimizer=cub model=resnet_max_ln transform=cub_big dataset=cub "
      "dataset.sampler.kwargs.batch_size=128 loss=roadmap",
      readme="CUB-200-2011",
    ),
    paper="roadmap",
    table=_TABLE,
    published=leaderboard("roadmap", "R@1 68.5 (ResNet-50)", unread="mAP@R"),
    epochs=200,
    seed=333,
    batch_size=128,
    finish=(readme_evaluation,),
    notes=(
      "Its files: `optimizer=cub` is one Adam over every parameter at a constant 1e-6, weight decay 4e-4, no "
      "scheduler (read from `margin_ap/config/optimizer/cub.yaml`, the package's earlier name: the stored copy "
      "lacks `roadmap/config/optimizer/cub.yaml`); `model=resnet_max_ln` is SupRank's `resnet_ln_max`, and "
      f"`dataset=cub` with `transform=cub_big` SupRank's `cub_big` (256 crops, MPerClassSampler); {_ROADMAP_LOSS}"
    ),
  ),
  Experiment(
    "roadmap/cub_deit_base",
    "ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-B",
    dict(dataset="cub", model="deit_base", optimizer="cub_deit", loss="roadmap_sop"),
    Source(
      "suprank",
      "dataset=cub model=deit_base optimizer=cub_deit loss=ROADMAP_SOP max_iter=150 dataset.sampler.batch_size=128",
    ),
    paper="roadmap",
    table=_TABLE,
    published=leaderboard("roadmap", "R@1 77.4 (DeiT-B)"),
    weights=("deit_base_distilled_patch16_224.safetensors",),
    epochs=150,
    batch_size=128,
    notes="`roadmap/cub_deit_small` is the ROADMAP README's DeiT-S run.",
  ),
  Experiment(
    "roadmap/cub_deit_small",
    "ROADMAP (SupAP + calibration) on CUB-200-2011 with DeiT-S",
    dict(dataset="cub", model="deit_small", optimizer="roadmap_repo_cub_deit", loss="roadmap_repo_roadmap"),
    Source(
      "roadmap",
      "experience.seed=333 experience.max_iter=150 optimizer=cub_deit model=deit transform=cub dataset=cub "
      "dataset.sampler.kwargs.batch_size=128 loss=roadmap",
      readme="CUB-200-2011, DeiT",
    ),
    paper="roadmap",
    table=_TABLE,
    weights=("deit_small_distilled_patch16_224.safetensors",),
    epochs=150,
    seed=333,
    batch_size=128,
    finish=(readme_evaluation,),
    notes=(
      "Its files: `model=deit` is DeiT-S (`deit_small` here, as `roadmap/sop_deit_small`); `optimizer=cub_deit` "
      "is one AdamW over every parameter at a constant 1e-6, weight decay 5e-4, no scheduler; `dataset=cub` with "
      f"`transform=cub` is SupRank's `cub`; {_ROADMAP_LOSS}"
    ),
  ),
  Experiment(
    "roadmap/cub_suprank",
    "ROADMAP (SupAP + calibration) on CUB-200-2011 with ResNet-50, as the SupRank repository's files compose it",
    dict(dataset="cub_big", model="resnet_ln_max", optimizer="cub", loss="roadmap_sop"),
    Source(
      "suprank",
      "dataset=cub_big model=resnet_ln_max optimizer=cub loss=ROADMAP_SOP max_iter=200 dataset.sampler.batch_size=128",
    ),
    paper="roadmap",
    table=_SUPRANK_FILES.format("cub"),
    published="none for this composition",
    epochs=200,
    batch_size=128,
  ),
  Experiment(
    "roadmap/inat",
    "ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50",
    dict(
      dataset="inat_base",
      model="roadmap_repo_resnet",
      optimizer="roadmap_repo_inaturalist",
      loss="roadmap_repo_roadmap_inat",
    ),
    Source(
      "roadmap",
      "experience.seed=333 experience.max_iter=90 optimizer=inaturalist model=resnet transform=inaturalist "
      "dataset=inaturalist dataset.sampler.kwargs.batch_size=384 loss=roadmap_inat",
      readme="INaturalist, 3 GPUs",
    ),
    paper="roadmap",
    table=_TABLE,
    published="not read here (see the paper; the leaderboard row for ResNet-50 is cut off in the stored page)",
    epochs=90,
    seed=333,
    batch_size=384,
    finish=(readme_evaluation,),
    notes=(
      "Its files: `model=resnet` has no LayerNorm; `optimizer=inaturalist` is Adam 1e-5, weight decay 4e-4 on the "
      "backbone and the fc layer, MultiStepLR at epochs 30 and 70 with gamma 0.3 on both (read from "
      "`marginap/config/optimizer/inaturalist.yaml`, the package's earlier name: the stored copy lacks "
      "`roadmap/config/optimizer/inaturalist.yaml`); `dataset=inaturalist` with its transform is SupRank's "
      "`inat_base` (species and path super-category, 224 crops, MPerClassSampler); `loss=roadmap_inat` weighs "
      "SupAP and calibration 1 and 1; evaluation every 5 epochs."
    ),
  ),
  Experiment(
    "roadmap/inat_deit_base",
    "ROADMAP (SupAP + calibration) on iNaturalist-2018 with DeiT-B",
    dict(dataset="inat_base", model="deit_base", optimizer="inat_deit", loss="roadmap_inat"),
    Source("suprank", "dataset=inat_base model=deit_base optimizer=inat_deit loss=ROADMAP_inat"),
    paper="roadmap",
    table=_TABLE,
    weights=("deit_base_distilled_patch16_224.safetensors",),
    notes=_DEFAULTS,
  ),
  Experiment(
    "roadmap/inat_deit_small",
    "ROADMAP (SupAP + calibration) on iNaturalist-2018 with DeiT-S",
    dict(dataset="inat_base", model="deit_small", optimizer="inat_deit", loss="roadmap_inat"),
    Source("suprank", "dataset=inat_base model=deit_small optimizer=inat_deit loss=ROADMAP_inat"),
    paper="roadmap",
    table=_TABLE,
    published=leaderboard("roadmap", "R@1 73.6 (DeiT-S)"),
    weights=("deit_small_distilled_patch16_224.safetensors",),
    notes=_DEFAULTS,
  ),
  Experiment(
    "roadmap/inat_suprank",
    "ROADMAP (SupAP + calibration) on iNaturalist-2018 with ResNet-50, as the SupRank repository's files compose it",
    dict(dataset="inat_base", model="resnet_ln", optimizer="inat", loss="roadmap_inat"),
    Source(
      "suprank",
      "dataset=inat_base model=resnet_ln optimizer=inat loss=ROADMAP_inat max_iter=90 dataset.sampler.batch_size=384",
    ),
    paper="roadmap",
    table=_SUPRANK_FILES.format("inat"),
    published="none for this composition",
    epochs=90,
    batch_size=384,
  ),
  Experiment(
    "roadmap/sop",
    "ROADMAP (SupAP + calibration) on SOP with ResNet-50",
    dict(
      dataset="roadmap_repo_sop_big",
      model="roadmap_repo_resnet",
      optimizer="roadmap_repo_sop",
      loss="roadmap_repo_roadmap",
    ),
    Source(
      "roadmap",
      "experience.seed=333 experience.max_iter=100 optimizer=sop model=resnet transform=sop_big dataset=sop "
      "dataset.sampler.kwargs.batch_size=128 dataset.sampler.kwargs.batches_per_super_pair=10 loss=roadmap",
      readme="SOP",
    ),
    paper="roadmap",
    table=_TABLE,
    published=leaderboard("roadmap", "R@1 83.1 (ResNet-50)", unread="mAP@R"),
    seed=333,
    batch_size=128,
    batches_per_super_tuple=10,
    finish=(readme_evaluation,),
    notes=(
      "Its files: `model=resnet` has no LayerNorm; `optimizer=sop` is Adam 1e-5, weight decay 1e-4 on the backbone "
      "and the fc layer, MultiStepLR at epoch 25 with gamma 0.1 (read from `margin_ap/config/optimizer/sop.yaml`, "
      "the package's earlier name: the stored copy lacks `roadmap/config/optimizer/sop.yaml`); `transform=sop_big` "
      "is Resize(288), 256 crops; `loss=roadmap` weighs SupAP and calibration 1 and 1; the HierarchicalSampler "
      "(2 super-classes per batch); evaluation every 5 epochs."
    ),
  ),
  Experiment(
    "roadmap/sop_deit_base",
    "ROADMAP (SupAP + calibration) on SOP with DeiT-B",
    dict(dataset="sop", model="deit_base", optimizer="sop_deit_sch", loss="roadmap_sop"),
    Source(
      "suprank",
      "dataset=sop model=deit_base optimizer=sop_deit_sch loss=ROADMAP_SOP max_iter=75 dataset.sampler.batch_size=128 "
      "dataset.sampler.batches_per_super_tuple=10",
    ),
    paper="roadmap",
    table=_TABLE,
    published=leaderboard("roadmap", "R@1 86.0 (DeiT-B)"),
    weights=("deit_base_distilled_patch16_224.safetensors",),
    epochs=75,
    batch_size=128,
    batches_per_super_tuple=10,
    notes="`roadmap/sop_deit_small` is the ROADMAP README's DeiT-S run.",
  ),
  Experiment(
    "roadmap/sop_deit_small",
    "ROADMAP (SupAP + calibration) on SOP with DeiT-S",
    dict(dataset="sop", model="deit_small", optimizer="sop_deit_sch", loss="roadmap_repo_roadmap"),
    Source(
      "roadmap",
      "experience.seed=333 experience.max_iter=75 optimizer=sop_deit model=deit transform=sop dataset=sop "
      "dataset.sampler.kwargs.batch_size=128 dataset.sampler.kwargs.batches_per_super_pair=10 loss=roadmap",
      readme="SOP, transformer backbone",
    ),
    paper="roadmap",
    table=_TABLE,
    weights=("deit_small_distilled_patch16_224.safetensors",),
    epochs=75,
    seed=333,
    batch_size=128,
    batches_per_super_tuple=10,
    finish=(readme_evaluation,),
    notes=(
      "Its files: `model=deit` is DeiT-S (`vit_deit_distilled`: the distilled checkpoint without its distillation "
      "token, the class token, no projection): `deit_small` here; `optimizer=sop_deit`, one AdamW 1e-5, weight "
      f"decay 5e-4, MultiStepLR at epochs 25 and 50 with gamma 0.3, is SupRank's `sop_deit_sch`; {_ROADMAP_LOSS}"
    ),
  ),
  Experiment(
    "roadmap/sop_suprank",
    "ROADMAP (SupAP + calibration) on SOP with ResNet-50, as the SupRank repository's files compose it",
    dict(dataset="sop", model="resnet_ln", optimizer="sop", loss="roadmap_sop"),
    Source("suprank", "dataset=sop model=resnet_ln optimizer=sop loss=ROADMAP_SOP"),
    paper="roadmap",
    table=_SUPRANK_FILES.format("sop"),
    published="none for this composition",
    notes=_DEFAULTS,
  ),
)
