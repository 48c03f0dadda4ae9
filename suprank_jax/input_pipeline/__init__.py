"""Input pipeline: data sources, class-aware samplers, transforms and grain iterators."""

from suprank_jax.input_pipeline import datasets, pipeline, samplers, sources, transforms
from suprank_jax.input_pipeline.datasets import DATASETS, get_source, register_dataset
from suprank_jax.input_pipeline.pipeline import (
  default_config,
  epoch_plan,
  make_eval_batches,
  make_train_iterator,
  sample_images,
  steps_per_epoch,
)
from suprank_jax.input_pipeline.sources import Source

__all__ = [
  "datasets",
  "pipeline",
  "samplers",
  "sources",
  "transforms",
  "default_config",
  "make_train_iterator",
  "make_eval_batches",
  "sample_images",
  "steps_per_epoch",
  "epoch_plan",
  "DATASETS",
  "Source",
  "get_source",
  "register_dataset",
]
