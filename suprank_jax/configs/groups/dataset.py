"""Data set groups: the original's ``suprank/config/dataset/*.yaml`` as ``config.input`` and ``config.evals``.

Each group sets the data set, its sampler (batch 256 of 4 images per class in every original
config; the original's ``MPerClassSampler`` is ``m_per_class_original``, its own epoch), the training
and test transforms, and the evaluation of the original (its test splits and ``recall_for_eval``).
``config.input.data_dir`` stays empty: give the folder on the command line.
"""

from __future__ import annotations

import ml_collections

from suprank_jax.configs import common

__all__ = ["GROUPS", "landmark_evaluations"]


def _imagenet_transforms(
  config, *, size: int = 224, eval_resize: str = "resize_center_crop", eval_size: int = 256, train_resize: int = 0
):
  """RandomResizedCrop(size, scale (0.16, 1), ratio (0.75, 1.33)) + flip for training; Resize + CenterCrop
  for testing; ImageNet normalisation: the transforms of every original data set config."""
  i = config.input
  i.image_size = size
  i.random_resized_crop = True
  i.crop_scale = (0.16, 1.0)
  i.crop_ratio = (0.75, 1.33)
  i.horizontal_flip = True
  i.train_resize_size = train_resize
  i.normalization = "imagenet"
  i.eval_resize = eval_resize
  i.eval_resize_size = eval_size


def _m_per_class(
  config, *, batch_size: int = 256, samples_per_class: int = 4, max_per_class: int = 0, sampler: str = "m_per_class"
):
  """M-per-class batches; ``sampler='m_per_class_original'`` for the original's ``MPerClassSampler``
  (its epoch, whose length varies), the plain ``'m_per_class'`` (a fixed count per epoch) otherwise."""
  i = config.input
  i.sampler = sampler
  i.global_batch_size = batch_size
  i.samples_per_class = samples_per_class
  i.max_per_class = max_per_class


def _test(config, recall_at, **kwargs):
  config.evals = ml_collections.ConfigDict()
  config.evals.test = common.eval_config("test", metrics=dict(recall_at=tuple(recall_at)), **kwargs)


def sop(config):
  """sop.yaml: hierarchical sampler (2 super-classes per batch, 5 batches per pair), Resize(256) before
  the random crop, square Resize([256, 256]) + CenterCrop(224) at test; R@1/10/100/1000."""
  config.input.dataset = "sop"
  i = config.input
  i.sampler = "hierarchical"
  i.global_batch_size = 256
  i.samples_per_class = 4
  i.super_classes_per_batch = 2
  i.batches_per_super_tuple = 5
  i.class_level = 0
  i.super_class_level = 1
  _imagenet_transforms(config, train_resize=256, eval_resize="square_resize_center_crop")
  _test(config, (1, 10, 100, 1000))


def roadmap_repo_sop_big(config):
  """The ROADMAP repository's dataset=sop with its transform=sop_big (roadmap/config/transform/sop_big.yaml):
  as sop, with Resize(288) before 256 crops and square Resize([288, 288]) + CenterCrop(256) at test."""
  sop(config)
  _imagenet_transforms(config, size=256, train_resize=288, eval_resize="square_resize_center_crop", eval_size=288)


def cub(config):
  """cub.yaml: M-per-class 256/4, 224 crops, Resize(256) + CenterCrop(224) at test; R@1/2/4/8."""
  config.input.dataset = "cub"
  _m_per_class(config, sampler="m_per_class_original")
  _imagenet_transforms(config)
  _test(config, (1, 2, 4, 8))


def cub_big(config):
  """cub_big.yaml: as cub with 256 crops and Resize(288) + CenterCrop(256) at test."""
  cub(config)
  _imagenet_transforms(config, size=256, eval_size=288)


def cars(config):
  """cars.yaml: as cub on Cars196."""
  cub(config)
  config.input.dataset = "cars"


def _inat(config, mode):
  config.input.dataset = "inaturalist"
  config.input.dataset_kwargs = ml_collections.ConfigDict({"mode": mode})
  _m_per_class(config, sampler="m_per_class_original")
  _imagenet_transforms(config)
  _test(config, (1, 4, 16, 32))


def inat_base(config):
  """inat_base.yaml: iNaturalist-2018 species and super-category (2 levels); R@1/4/16/32."""
  _inat(config, "base")


def inat_full(config):
  """inat_full.yaml: iNaturalist-2018 with its 7 taxonomy levels."""
  _inat(config, "full")


def _dyml_benchmarks(config):
  """The three benchmarks of DyML-Vehicle/Animal: the queries of ``bmk_<level>`` against its gallery,
  which already holds the queries (the original's ``gallery_distractor``); R@1."""
  config.evals = ml_collections.ConfigDict()
  for level in ("fine", "middle", "coarse"):
    config.evals[f"bmk_{level}"] = common.eval_config(
      f"test_query_{level}", f"test_gallery_{level}", gallery_contains_queries=True, metrics=dict(recall_at=(1,))
    )


def dyml_vehicle(config):
  """dyml_vehicle.yaml: M-per-class 256/4 on the fine level, 224 crops; three benchmarks."""
  config.input.dataset = "dyml_vehicle"
  _m_per_class(config, sampler="m_per_class_original")
  _imagenet_transforms(config)
  _dyml_benchmarks(config)


def dyml_animal(config):
  """dyml_animal.yaml (same layout as DyML-Vehicle)."""
  dyml_vehicle(config)
  config.input.dataset = "dyml_animal"


def dyml_product(config):
  """dyml_product.yaml: one test set (mini-bmk_all_in_one), same-source retrieval; R@1."""
  config.input.dataset = "dyml_product"
  _m_per_class(config, sampler="m_per_class_original")
  _imagenet_transforms(config)
  _test(config, (1,))


def landmark_evaluations(config, *, gldv2_benchmark: bool = True):
  """The evaluations of the original's ``evaluate_landmark.py``: Revisited Oxford and Paris (Medium,
  Hard; here Easy too, with mP@1/5/10, and the 1M distractors when they are on disk) as
  ``config.evals.roxf_rpar`` (give ``config.evals.roxf_rpar.data_dir``, the folder holding
  ``roxford5k/`` and ``rparis6k/``), and with ``gldv2_benchmark`` the H-GLDv2 benchmark as
  ``config.evals.hgldv2``: the hierarchical GLDv2 test queries against the index (``gldv2_hierarchical``
  query/gallery, read from ``config.input.data_dir``) with the original's metrics, mAP@100, P@1, P@100,
  AP, mAP@R of the landmark level and H-AP, ASI, NDCG over the three levels (its ``hap_LM``: 'pop'
  relevances from each query's ranked index, which is the default protocol's H-AP here)."""
  config.evals = ml_collections.ConfigDict()
  config.evals.roxf_rpar = common.revisited_eval_config()
  if gldv2_benchmark:
    config.evals.hgldv2 = common.eval_config(
      "query", "gallery", dataset="gldv2_hierarchical", metrics=dict(recall_at=(), precision_at=(1, 100), map_at=(100,))
    )


def _gldv2(config, dataset):
  config.input.dataset = dataset
  _m_per_class(config, max_per_class=8, sampler="m_per_class_original")
  _imagenet_transforms(config, eval_resize="resize", eval_size=0)
  landmark_evaluations(config)


def gldv2(config):
  """gldv2.yaml: GLDv2-clean landmarks, M-per-class with at most 8 images per class and epoch
  (``reduce_per_class``), 224 crops; Revisited Oxford/Paris and the H-GLDv2 benchmark
  (:func:`landmark_evaluations`)."""
  _gldv2(config, "gldv2")


def gldv2_hier(config):
  """gldv2_hier.yaml: hierarchical GLDv2 (landmark, cluster, overall cluster), as gldv2."""
  _gldv2(config, "gldv2_hierarchical")


def gldv2_bench(config):
  """gldv2_bench.yaml: GLDv2-clean, every image resized to 1024 x 1024 (no random crop) then flipped for
  training; Revisited Oxford/Paris resized the same way, no H-GLDv2 benchmark. Its sampler is
  pytorch-metric-learning's MPerClassSampler with num_iter 1000: 1,000 batches per epoch, each of 64
  classes drawn uniformly. No sampler here draws a fixed number of batches: an epoch is the M-per-class
  sampler's (about 6,000 batches of 256 on GLDv2-clean's 1,580,470 images), and its classes come in
  proportion to their images."""
  config.input.dataset = "gldv2"
  _m_per_class(config)
  i = config.input
  i.image_size = 1024
  i.random_resized_crop = False
  i.horizontal_flip = True
  i.normalization = "imagenet"
  i.eval_resize = "resize"
  landmark_evaluations(config, gldv2_benchmark=False)
  config.evals.roxf_rpar.revisited.square_size = 1024


def sfm120k(config):
  """sfm120k.yaml: retrieval-SfM-120k (``readers/sfm120k.py``), M-per-class 256/4, 224 crops;
  Revisited Oxford/Paris. (The original's file does not parse as YAML: an indented ``test:`` key and
  ``RandomResizedCrop:`` names; its intent is read here.)"""
  config.input.dataset = "sfm120k"
  _m_per_class(config, sampler="m_per_class_original")
  _imagenet_transforms(config, eval_resize="resize", eval_size=0)
  landmark_evaluations(config, gldv2_benchmark=False)


GROUPS = {
  "sop": sop,
  "roadmap_repo_sop_big": roadmap_repo_sop_big,
  "cub": cub,
  "cub_big": cub_big,
  "cars": cars,
  "inat_base": inat_base,
  "inat_full": inat_full,
  "dyml_vehicle": dyml_vehicle,
  "dyml_animal": dyml_animal,
  "dyml_product": dyml_product,
  "gldv2": gldv2,
  "gldv2_hier": gldv2_hier,
  "gldv2_bench": gldv2_bench,
  "sfm120k": sfm120k,
}
