"""The data sets by name: ``DATASETS`` (name -> reader), :func:`register_dataset` and :func:`get_source`.

Every reader has the signature ``reader(data_dir, split, **kwargs) -> sources.Source`` (``readers/``, one
module per data set or family sharing a layout); :func:`get_source` picks one from ``config.input``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from suprank_jax.input_pipeline.readers import (
  cars,
  cub,
  digits,
  dyml,
  gldv2,
  inaturalist,
  inshop,
  revisited,
  sfm120k,
  sop,
  tfds_format,
)
from suprank_jax.input_pipeline.sources import Source, report_single_image_classes

__all__ = ["DATASETS", "register_dataset", "get_source"]

DATASETS: dict[str, Callable[..., Source]] = {
  "digits": digits.digits,
  "sop": sop.sop,
  "cub": cub.cub,
  "cars": cars.cars,
  "inshop": inshop.inshop,
  "inaturalist": inaturalist.inaturalist,
  "dyml_vehicle": dyml.dyml_vehicle,
  "dyml_animal": dyml.dyml_animal,
  "dyml_product": dyml.dyml_product,
  "gldv2": gldv2.gldv2,
  "gldv2_hierarchical": gldv2.gldv2_hierarchical,
  "sfm120k": sfm120k.sfm120k,
  "roxford5k": revisited.roxford5k,
  "rparis6k": revisited.rparis6k,
  "revisitop1m": revisited.revisitop1m,
}


def register_dataset(name: str, loader: Callable[..., Source], *, overwrite: bool = False):
  """Adds ``loader(data_dir, split, **kwargs) -> Source`` to :data:`DATASETS` under ``name``."""
  if name in DATASETS and not overwrite:
    raise ValueError(f"dataset {name!r} is already registered (pass overwrite=True to replace it)")
  DATASETS[name] = loader


def get_source(input_config: Any, split: str) -> Source:
  """The ``split`` of ``input_config.dataset`` (read from ``input_config.data_dir``).

  Extra loader arguments come from ``input_config.dataset_kwargs`` (a dict / ConfigDict). With
  ``input_config.source_format = 'tfds'`` the split is read from a prepared TFDS data set under
  ``data_dir`` instead (``readers.tfds_format``; ``input_config.tfds_name`` overrides its name).

  Raises:
    ValueError: unknown dataset name (the message lists the valid ones) or split, or an empty split
      (naming the index file).
  """
  name = input_config.dataset
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r} (config.input.dataset); valid: {sorted(DATASETS)}")
  kwargs = dict(getattr(input_config, "dataset_kwargs", None) or {})
  data_dir = os.path.expanduser(getattr(input_config, "data_dir", "") or "")
  source_format = getattr(input_config, "source_format", "raw")
  if source_format == "tfds":
    source = tfds_format.tfds_source(name, data_dir, split, tfds_name=getattr(input_config, "tfds_name", ""), **kwargs)
  elif source_format == "raw":
    source = DATASETS[name](data_dir, split, **kwargs)
  else:
    raise ValueError(f"config.input.source_format={source_format!r}; valid: ['raw', 'tfds']")
  if len(source) == 0:
    where = ", ".join(source.index_files) or data_dir or name
    raise ValueError(f"{source.name}: the split {split!r} is empty: {where} lists no image")
  if split == getattr(input_config, "train_split", "train"):
    report_single_image_classes(source)
  return source
