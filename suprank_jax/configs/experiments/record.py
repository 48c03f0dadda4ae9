"""The record of one experiment, and the facts its records share: papers, repositories, data sets, weights.

Each fact has one owner here: a data set's on-disk layout (``DATASETS``), a weights file
(``WEIGHTS``), a paper and its leaderboard (``PAPERS``), a repository (``REPOSITORIES``). A record
names them by key; ``docs/make_experiments.py`` writes them out once each in ``docs/experiments.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import ml_collections

from suprank_jax.configs import common, experiment
from suprank_jax.configs.groups import GROUPS

__all__ = [
  "DATASETS",
  "NOT_READ",
  "PAPERS",
  "REPOSITORIES",
  "WEIGHTS",
  "DataSet",
  "Experiment",
  "Paper",
  "Source",
  "Weights",
  "from_files",
  "leaderboard",
]


class Paper(NamedTuple):
  citation: str
  leaderboard: str = ""  # the papers-with-code page this repository read published figures from


PAPERS = {
  "happier": Paper(
    "HAPPIER, Ramzi et al., 'Hierarchical Average Precision Training for Pertinent Image Retrieval', ECCV 2022",
    "paperswithcode2.com/paper/306400",
  ),
  "roadmap": Paper(
    "ROADMAP, Ramzi et al., 'Robust and Decomposable Average Precision for Image Retrieval', NeurIPS 2021",
    "paperswithcode2.com/paper/244287",
  ),
  "suprank": Paper(
    "SupRank, Ramzi et al., 'Optimization of Rank Losses for Image Retrieval', TPAMI (arXiv 2309.08250)"
  ),
}

# The papers' own tables were not readable here: such figures must be taken from the paper.
NOT_READ = "not read here (see the paper)"


def leaderboard(paper: str, figure: str, *, unread: str = "") -> str:
  """A published figure read from ``paper``'s leaderboard; ``unread``: the metrics it does not give."""
  name = PAPERS[paper].citation.split(",")[0]
  text = f"{figure}, from the papers-with-code leaderboard of {name} ({PAPERS[paper].leaderboard})"
  return f"{text}; {unread} {NOT_READ}" if unread else text


# The original repositories on GitHub.
REPOSITORIES = {
  "suprank": "elias-ramzi/SupRank",
  "roadmap": "elias-ramzi/ROADMAP",
  "happier": "elias-ramzi/HAPPIER",
}


class Source(NamedTuple):
  """The one run an experiment reproduces."""

  repository: str  # a key of REPOSITORIES
  text: str  # the command of its README, or the config-file arguments that compose the run
  readme: str = ""  # which run of its README; '' when no README gives a command (a composition of its files)


class DataSet(NamedTuple):
  """A data set in its original layout under a folder given on the command line."""

  title: str
  groups: tuple[str, ...]  # the dataset groups (configs/groups/dataset.py) that read it
  data_dir: str  # the folder of the commands' examples
  layout: str  # what the folder holds
  flag: str = "config.input.data_dir"
  also_reads: tuple[str, ...] = ()  # the data sets of its evaluations given by their own flag


DATASETS = {
  "sop": DataSet(
    "Stanford Online Products",
    ("sop", "roadmap_repo_sop_big"),
    "/data/Stanford_Online_Products",
    "Ebay_train.txt, Ebay_test.txt and the image folders.",
  ),
  "cub": DataSet(
    "CUB-200-2011",
    ("cub", "cub_big"),
    "/data/CUB_200_2011",
    "images.txt, image_class_labels.txt, images/.",
  ),
  "inat_base": DataSet(
    "iNaturalist-2018, iNat-base (species, super-category)",
    ("inat_base",),
    "/data/Inaturalist",
    "Inat_dataset_splits/Inaturalist_{train,test}_set1.txt (the original's splits), train_val2018/.",
  ),
  "inat_full": DataSet(
    "iNaturalist-2018, iNat-full (the 7 taxonomy levels)",
    ("inat_full",),
    "/data/Inaturalist",
    "Inat_dataset_splits/Inaturalist_{train,test}_set1.txt, train2018.json, train_val2018/.",
  ),
  "dyml_vehicle": DataSet(
    "DyML-Vehicle",
    ("dyml_vehicle",),
    "/data/dyml_vehicle",
    "train/label.csv, train/imgs/, bmk_{fine,middle,coarse}/{query,gallery}.csv and folders.",
  ),
  "dyml_animal": DataSet(
    "DyML-Animal",
    ("dyml_animal",),
    "/data/dyml_animal",
    "train/label.csv, train/imgs/, bmk_{fine,middle,coarse}/{query,gallery}.csv and folders.",
  ),
  "dyml_product": DataSet(
    "DyML-Product",
    ("dyml_product",),
    "/data/dyml_product",
    "train/label.csv, train/imgs/, mini-bmk_all_in_one/label.csv and mini-bmk_all_in_one/imgs/.",
  ),
  "gldv2": DataSet(
    "GLDv2-clean (landmark labels)",
    ("gldv2",),
    "/data/gldv2",
    "train_clean.csv, index_image_to_landmark.csv, retrieval_solution_v2.1.csv, images/train/, index/, test/, "
    "and the H-GLDv2 files {train,index}_label_to_subcategory_with_clusters.csv (read by the H-GLDv2 benchmark).",
    also_reads=("revisited",),
  ),
  "gldv2_hier": DataSet(
    "H-GLDv2 (landmark, cluster, overall cluster)",
    ("gldv2_hier",),
    "/data/gldv2",
    "GLDv2-clean: train_clean.csv, index_image_to_landmark.csv, retrieval_solution_v2.1.csv, images/train/, "
    "index/, test/, and {train,index}_label_to_subcategory_with_clusters.csv.",
    also_reads=("revisited",),
  ),
  "revisited": DataSet(
    "Revisited Oxford and Paris",
    (),
    "/data/revisited",
    "roxford5k/gnd_roxford5k.pkl, roxford5k/jpg/, rparis6k/gnd_rparis6k.pkl, rparis6k/jpg/ (and revisitop1m/ "
    "for the 1M distractors).",
    flag="config.evals.roxf_rpar.data_dir",
  ),
}


class Weights(NamedTuple):
  about: str
  model: str  # the config.model.name it initialises
  flag: str = "config.model.pretrained_path"


# The weights files of the commands (under /weights/); nothing is downloaded.
WEIGHTS = {
  "resnet50.safetensors": Weights("torchvision ResNet-50 ImageNet weights", "resnet50"),
  "resnet34.safetensors": Weights("torchvision ResNet-34 ImageNet weights", "resnet34"),
  "resnet101.safetensors": Weights("torchvision ResNet-101 ImageNet weights", "resnet101"),
  "deit_small_distilled_patch16_224.safetensors": Weights("timm DeiT-S (distilled) ImageNet weights", "deit_small"),
  "deit_base_distilled_patch16_224.safetensors": Weights("timm DeiT-B (distilled) ImageNet weights", "deit_base"),
  "gldv2_resnet101_gem_normalized_d+2048_imssize+1024x1024.trch": Weights(
    "the original's learned whitening, an nn.Linear state dict", "resnet101", flag="config.model.whitening_path"
  ),
}


_MAX_ITER = 100  # the original's default.yaml


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment: its composition, the run it reproduces, its paper, its data and weights.

  Its config is ``experiment.compose`` of ``groups`` with the run settings, then ``batch_size`` and
  ``batches_per_super_tuple`` when given, then each function of ``finish`` (the code an experiment
  needs beyond the groups).
  """

  name: str  # '<family>/<file>': the config file suprank_jax/configs/<family>/<file>.py
  title: str
  groups: Mapping[str, str]  # dataset, model, optimizer, loss (and memory): group names
  source: Source
  paper: str  # a key of PAPERS
  table: str  # where in the paper
  published: str = NOT_READ
  weights: tuple[str, ...] = ("resnet50.safetensors",)  # keys of WEIGHTS; () trains from scratch
  epochs: int = _MAX_ITER  # the original's max_iter
  freeze_epochs: int = 0  # the original's warmup_step
  hierarchy_levels: tuple[int, ...] = (0,)  # the original's compute_for_hierarchy_levels
  seed: int = 0
  batch_size: int = 0  # 0: the dataset group's
  batches_per_super_tuple: int = 0  # 0: the dataset group's
  finish: tuple[Callable[[ml_collections.ConfigDict], None], ...] = ()
  notes: str = ""  # what the source's files hold and where this composition departs from them

  def config(self) -> ml_collections.ConfigDict:
    config = experiment.compose(
      **self.groups,
      num_epochs=self.epochs,
      freeze_epochs=self.freeze_epochs,
      hierarchy_levels=self.hierarchy_levels,
      seed=self.seed,
    )
    if self.batch_size:
      config.input.global_batch_size = self.batch_size
    if self.batches_per_super_tuple:
      config.input.batches_per_super_tuple = self.batches_per_super_tuple
    for step in self.finish:
      step(config)
    return config

  def get_config(self, arg: str | None = None) -> ml_collections.ConfigDict:
    """The config file's ``get_config``: an experiment takes no argument (any raises)."""
    common.parse_arg(arg)
    return self.config()

  @property
  def family(self) -> str:
    return self.name.split("/")[0]

  @property
  def path(self) -> str:
    return f"suprank_jax/configs/{self.name}.py"

  @property
  def data(self) -> str:
    """The key of DATASETS of the data set it trains on."""
    return next(key for key, d in DATASETS.items() if self.groups["dataset"] in d.groups)

  def command(self) -> str:
    """Its training command, with the example folders of its data and weights."""
    data = DATASETS[self.data]
    folders = [data] + [DATASETS[key] for key in data.also_reads]
    lines = [
      f"python3 -m suprank_jax.train --config {self.path} --workdir runs/{self.name.replace('/', '_')}",
      " ".join(f"--{d.flag}={d.data_dir}" for d in folders),
      *(f"--{WEIGHTS[w].flag}=/weights/{w}" for w in self.weights),
    ]
    return " \\\n  ".join(lines)


# The kinds a SupRank command names first; its other files (memory, evaluation) come after the run settings.
_FIRST_FILES = ("dataset", "model", "optimizer", "loss")


def from_files(name: str, title: str, files: Mapping[str, str], **fields) -> Experiment:
  """The record of a run that composes the SupRank repository's config files, for which no README gives a command.

  Args:
    name, title: the record's.
    files: kind -> the original's file name: dataset, model, optimizer and loss, then any memory or
      evaluation file. The groups are the names of the files of a group kind in lower case.
    **fields: the record's other fields (``paper``, ``table``, run settings, ...).

  Returns:
    The record, whose source names the files and, after the first four, the run settings that differ from
    the original's ``default.yaml`` (``max_iter``, the sampler's batch size and batches per super-tuple,
    ``warmup_step``), in the order of the original's commands.
  """
  groups = {kind: file.lower() for kind, file in files.items() if kind in GROUPS}
  e = Experiment(name, title, groups, Source("suprank", ""), **fields)
  settings = {
    "max_iter": e.epochs if e.epochs != _MAX_ITER else 0,
    "dataset.sampler.batch_size": e.batch_size,
    "dataset.sampler.batches_per_super_tuple": e.batches_per_super_tuple,
    "warmup_step": e.freeze_epochs,
  }
  args = [f"{kind}={files[kind]}" for kind in _FIRST_FILES]
  args += [f"{key}={value}" for key, value in settings.items() if value]
  args += [f"{kind}={file}" for kind, file in files.items() if kind not in _FIRST_FILES]
  return dataclasses.replace(e, source=Source("suprank", " ".join(args)))
