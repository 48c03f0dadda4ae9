"""TFDS data sets (``config.input.source_format = 'tfds'``): official ones and those written by
``to_array_record.py``, read as ArrayRecord without TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from suprank_jax.input_pipeline import sources
from suprank_jax.input_pipeline.readers import cars, cub

__all__ = ["tfds_source", "TFDS_OFFICIAL", "CONVERTED_PREFIX"]

# Official TFDS data sets we can read: TFDS name, label features, and how to re-split by class.
TFDS_OFFICIAL = {
  "sop": "stanford_online_products",
  "cub": "caltech_birds2011",
  "cars": "cars196",
}
CONVERTED_PREFIX = "suprank_"


class _TfdsImages:
  """Random access to the encoded image of item ``i`` = record ``(part, row)`` (picklable)."""

  def __init__(self, data_sources, parts: np.ndarray, rows: np.ndarray, name: str):
    self.data_sources, self.parts, self.rows, self.name = data_sources, parts, rows, name

  def __len__(self):
    return len(self.rows)

  def __getitem__(self, i):
    return self.data_sources[self.parts[i]][int(self.rows[i])]["image"]

  def describe(self, i):
    return f"{self.name} record {int(self.rows[i])} of split part {int(self.parts[i])}"


def _tfds_dir(name: str, data_dir: str) -> str:
  folder = os.path.join(data_dir, name)
  versions = sorted(d for d in os.listdir(folder)) if os.path.isdir(folder) else []
  if not any(os.path.isfile(os.path.join(folder, v, "dataset_info.json")) for v in versions):
    raise FileNotFoundError(
      f"TFDS data set {name!r} is not prepared under {folder} (expected {folder}/<version>/dataset_info.json "
      "and *.array_record-* shards). Prepare it by converting the raw folder, `python -m "
      "suprank_jax.input_pipeline.to_array_record --dataset <name> --data_dir <raw folder> --output_dir "
      "<data_dir>` (or with the official TFDS builder, which needs TensorFlow), and set config.input.data_dir "
      "to the folder that holds it."
    )
  return folder


def _tfds_labels(data_source, keys: Sequence[str], cache_path: str) -> np.ndarray:
  """int64 ``[N, k]``: the label features ``keys`` of every record, concatenated. Reading them costs
  ~0.5 ms per record, so they are cached as ``.npy`` at ``cache_path``."""
  if cache_path and os.path.isfile(cache_path):
    labels = np.load(cache_path)
    if len(labels) == len(data_source):
      return labels
  rows = []
  for start in range(0, len(data_source), 1024):
    indices = list(range(start, min(start + 1024, len(data_source))))
    try:
      records = data_source.__getitems__(indices)
    except (AttributeError, TypeError):
      records = [data_source[i] for i in indices]
    rows.extend(np.concatenate([np.asarray(r[k], np.int64).reshape(-1) for k in keys]) for r in records)
  out = np.stack(rows) if rows else np.zeros((0, len(keys)), np.int64)
  if cache_path:
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    np.save(cache_path, out)
  return out


def _class_split_source(name, dataset, split, folder, open_split, cache_dir):
  """CUB-200-2011 or Cars196 from the official TFDS data sets, re-split by class as the papers do
  (the first 100 / 98 classes train, the others test), with the taxonomy levels of the raw readers."""
  if split not in ("train", "test"):
    raise ValueError(f"{name}: unknown split {split!r}; valid: ['train', 'test'] (re-split by class)")
  parts, rows, labels, sources_ = [], [], [], []
  for p, s in enumerate(("train", "test")):
    ds, key = open_split(s)
    lab = _tfds_labels(ds, ("label",), os.path.join(cache_dir, key))[:, 0]
    sources_.append(ds)
    parts.append(np.full(len(lab), p))
    rows.append(np.arange(len(lab)))
    labels.append(lab)
  parts, rows, labels = np.concatenate(parts), np.concatenate(rows), np.concatenate(labels)
  half = 100 if name == "caltech_birds2011" else 98
  keep = np.flatnonzero((labels < half) == (split == "train"))
  # Restore a deterministic order (TFDS shuffles at prepare time): by class, then by record.
  keep = keep[np.lexsort((rows[keep], parts[keep], labels[keep]))]
  cls = labels[keep].astype(np.int32) + 1
  if name == "caltech_birds2011":
    raw, names = np.concatenate([cls[:, None], cub.FAMILY_ORDER[cls - 1]], axis=1), ("species", "family", "order")
  else:
    raw, names = np.stack([cls, cars.BODY_TYPE[cls - 1]], axis=1), ("model", "type")
  images = _TfdsImages(sources_, parts[keep], rows[keep], name)
  return sources.make_source(
    f"{dataset}/{split}", raw, names, records=images, describe=images.describe, index_files=(folder,)
  )


def tfds_source(
  dataset: str, data_dir: str, split: str, *, tfds_name: str = "", cache_dir: str | None = None, **kwargs
) -> sources.Source:
  """A split read through ``tfds.data_source(..., download=False)`` (images decoded by PIL on demand).

  ``kwargs`` (``config.input.dataset_kwargs``) must be empty: the raw reader's arguments were applied
  at conversion. ``tfds_name`` defaults to the converted ``suprank_<dataset>`` (``to_array_record.py``)
  when it exists under ``data_dir``, else to the official TFDS name for ``sop``/``cub``/``cars``.
  Official CUB and Cars are re-split by class for the retrieval protocol (``train`` = first half of the
  classes, over the official train+test), and get the same extra levels as the raw readers. Labels are
  read once and cached under ``cache_dir`` (default ``~/.cache/suprank_jax/tfds_labels``).
  """
  if kwargs:
    raise ValueError(
      f"config.input.dataset_kwargs {sorted(kwargs)} are not read with source_format='tfds' (only "
      "cache_dir is): a converted data set keeps the reader arguments given at conversion "
      "(to_array_record.py --dataset_kwargs); clear config.input.dataset_kwargs"
    )
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  candidates = (
    [tfds_name]
    if tfds_name
    else [CONVERTED_PREFIX + dataset] + ([TFDS_OFFICIAL[dataset]] if dataset in TFDS_OFFICIAL else [])
  )
  if not data_dir:
    raise ValueError(f"config.input.data_dir is empty: set it to the TFDS data_dir that holds {candidates}")
  for name in candidates[:-1]:
    if os.path.isdir(os.path.join(data_dir, name)):
      break
  else:
    name = candidates[-1]
  folder = _tfds_dir(name, data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  available = list(builder.info.splits.keys())
  cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "suprank_jax", "tfds_labels")
  version = str(builder.info.version)

  def open_split(s):
    if s not in available:
      raise ValueError(f"{name}: unknown split {s!r}; valid: {available}")
    ds = tfds.data_source(
      name, split=s, data_dir=data_dir, download=False, decoders={"image": tfds.decode.SkipDecoding()}
    )
    digest = hashlib.md5(os.path.abspath(folder).encode()).hexdigest()[:10]
    key = f"{name}-{version}-{s}-{digest}.npy"
    return ds, key

  if name == "stanford_online_products":
    ds, key = open_split(split)
    raw = _tfds_labels(ds, ("class_id", "super_class_id"), os.path.join(cache_dir, key))
    images = _TfdsImages([ds], np.zeros(len(raw), np.int64), np.arange(len(raw)), name)
    return sources.make_source(
      f"{dataset}/{split}",
      raw,
      ("product", "category"),
      records=images,
      describe=images.describe,
      index_files=(folder,),
    )
  if name in ("caltech_birds2011", "cars196"):
    return _class_split_source(name, dataset, split, folder, open_split, cache_dir)
  # A data set written by to_array_record.py: features image, labels [L], index (row in the raw reader).
  ds, key = open_split(split)
  metadata = dict(builder.info.metadata or {})
  level_names = tuple(metadata.get("level_names", ()))
  if not level_names:
    raise ValueError(f"{folder}: metadata.json has no 'level_names' (not written by to_array_record.py?)")
  table = _tfds_labels(ds, ("labels", "index"), os.path.join(cache_dir, key))
  raw, index = table[:, :-1], table[:, -1]
  order = np.argsort(index, kind="stable")
  images = _TfdsImages([ds], np.zeros(len(order), np.int64), order, name)
  channels = int(metadata.get("channels", 3))
  return sources.Source(
    name=f"{dataset}/{split}",
    labels=raw[order].astype(np.int32),
    level_names=level_names,
    records=images,
    describe=images.describe,
    channels=channels,
    index_files=(folder,),
  )
