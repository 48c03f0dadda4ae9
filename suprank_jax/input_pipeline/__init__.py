"""Input pipeline: data sources, class-aware samplers, transforms and grain iterators."""

from suprank_jax.input_pipeline import pipeline, samplers, sources, transforms
from suprank_jax.input_pipeline.pipeline import (default_config, epoch_plan, make_eval_batches, make_train_iterator,
                                                 sample_images, steps_per_epoch)
from suprank_jax.input_pipeline.sources import DATASETS, Source, get_source, register_dataset

__all__ = [
    "pipeline", "samplers", "sources", "transforms", "default_config", "make_train_iterator",
    "make_eval_batches", "sample_images", "steps_per_epoch", "epoch_plan", "DATASETS", "Source", "get_source",
    "register_dataset",
]
