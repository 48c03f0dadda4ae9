"""Converts a raw-folder data set into ArrayRecord shards with TFDS metadata, without TensorFlow.

Command::

  python -m suprank_jax.input_pipeline.to_array_record --dataset sop --data_dir ~/data/Stanford_Online_Products \
      --output_dir ~/tfds
  python -m suprank_jax.input_pipeline.to_array_record --dataset digits --output_dir ~/tfds   # embedded: no --data_dir

writes ``<output_dir>/suprank_sop/1.0.0/{dataset_info.json, features.json, metadata.json,
suprank_sop-<split>.array_record-*}``, one TFDS split per split of the raw reader. Train with it by
setting ``config.input.source_format = 'tfds'`` and ``config.input.data_dir = <output_dir>``; any
``tfds.data_source('suprank_sop', split=..., data_dir=<output_dir>)`` reads it too.

Features of each record: ``image`` (the original file bytes, or PNG for in-memory images),
``labels`` int64 ``[L]`` (the reader's remapped labels), ``index`` (the row in the raw reader, so
that the reader restores the raw order: TFDS shuffles records at prepare time). ``metadata.json``
holds ``level_names``, ``channels`` and the source data set name.
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Sequence

import numpy as np

from suprank_jax.input_pipeline import datasets, sources
from suprank_jax.input_pipeline.readers import dyml, tfds_format

__all__ = ["SPLITS", "convert", "main"]

# The splits converted by default for each raw reader.
SPLITS = {
  "digits": ("train", "test"),
  "sop": ("train", "test"),
  "cub": ("train", "test"),
  "cars": ("train", "test"),
  "inshop": ("train", "query", "gallery"),
  "inaturalist": ("train", "test"),
  "dyml_vehicle": ("train",) + dyml.TEST_SPLITS,
  "dyml_animal": ("train",) + dyml.TEST_SPLITS,
  "dyml_product": ("train", "test"),
  "gldv2": ("train", "query", "gallery"),
  "gldv2_hierarchical": ("train", "query", "gallery"),
}


def _encoded(source: sources.Source, i: int):
  """What the TFDS ``Image`` feature stores for item ``i``: a path (bytes copied) or a PNG buffer."""
  if source.paths is not None:
    if not os.path.isfile(source.paths[i]):
      raise sources.ImageLoadError(f"cannot read image {source.paths[i]}: no such file")
    return source.paths[i]
  from PIL import Image  # pylint: disable=g-import-not-at-top

  image = source.load_image(i)
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
  buffer.seek(0)
  return buffer


def _builder_class(name: str, splits: dict[str, sources.Source], dataset: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  first = next(iter(splits.values()))
  level_names = list(first.level_names)
  channels = first.channels if first.images is None else first.images.shape[-1]
  for split, src in splits.items():
    if list(src.level_names) != level_names:
      raise ValueError(
        f"{dataset}: split {split!r} has levels {src.level_names}, not {tuple(level_names)}; "
        "convert it separately with --splits and another --name"
      )
    if src.boxes is not None:
      raise ValueError(f"{dataset}/{split}: sources with crop boxes (Revisited queries) are not converted")

  tfds_name = name

  class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Our raw-folder data set as a TFDS data set."""

    # Set in the class body: TFDS otherwise infers the name of a class called ``Builder`` from its
    # package, which fails when this module runs as ``__main__`` (python -m ...to_array_record).
    name = tfds_name
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        description=f"{dataset} converted by suprank_jax.input_pipeline.to_array_record; levels {level_names}.",
        features=tfds.features.FeaturesDict(
          {
            "image": tfds.features.Image(shape=(None, None, channels)),
            "labels": tfds.features.Tensor(shape=(len(level_names),), dtype=np.int64),
            "index": tfds.features.Scalar(dtype=np.int64),
          }
        ),
        metadata=tfds.core.MetadataDict(level_names=level_names, channels=int(channels), dataset=dataset),
      )

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(src) for split, src in splits.items()}

    def _generate_examples(self, src):
      for i in range(len(src)):
        yield i, {"image": _encoded(src, i), "labels": src.labels[i].astype(np.int64), "index": i}

  return Builder


def convert(
  dataset: str,
  data_dir: str,
  output_dir: str,
  *,
  splits: Sequence[str] | None = None,
  name: str = "",
  dataset_kwargs: dict | None = None,
) -> str:
  """Writes ``dataset`` (a name in ``datasets.DATASETS``) as a TFDS/ArrayRecord data set.

  Args:
    dataset: the raw reader's name.
    data_dir: its raw folder.
    output_dir: the TFDS ``data_dir`` to write into.
    splits: which splits (default :data:`SPLITS` of the data set).
    name: TFDS name (default ``suprank_<dataset>``, what ``source_format='tfds'`` looks for).
    dataset_kwargs: extra reader arguments (e.g. ``{'mode': 'full'}`` for iNaturalist).

  Returns:
    The folder written (``<output_dir>/<name>/1.0.0``).

  Raises:
    ValueError: unknown data set or split; FileNotFoundError / ImageLoadError: missing data.
  """
  if dataset not in datasets.DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; valid: {sorted(datasets.DATASETS)}")
  splits = tuple(splits or SPLITS.get(dataset, ("train", "test")))
  loader = datasets.DATASETS[dataset]
  loaded = {s: loader(data_dir, s, **(dataset_kwargs or {})) for s in splits}
  name = name or tfds_format.CONVERTED_PREFIX + dataset
  builder = _builder_class(name, loaded, dataset)(data_dir=output_dir, file_format="array_record")
  builder.download_and_prepare()
  return os.path.join(output_dir, name, "1.0.0")


def _parse_kwargs(items: Sequence[str]) -> dict:
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"--dataset_kwargs expects key=value, got {item!r}")
    try:
      out[key] = int(value)
    except ValueError:
      out[key] = value
  return out


def main(argv: Sequence[str] | None = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True, help=f"one of {sorted(datasets.DATASETS)}")
  parser.add_argument("--data_dir", default="", help="the raw folder (not needed for the embedded digits)")
  parser.add_argument("--output_dir", required=True, help="TFDS data_dir to write into")
  parser.add_argument("--splits", default="", help="comma-separated splits (default: all of the data set)")
  parser.add_argument("--name", default="", help="TFDS name (default suprank_<dataset>)")
  parser.add_argument("--dataset_kwargs", nargs="*", default=[], help="reader arguments key=value")
  args = parser.parse_args(argv)
  path = convert(
    args.dataset,
    os.path.expanduser(args.data_dir),
    os.path.expanduser(args.output_dir),
    splits=[s for s in args.splits.split(",") if s],
    name=args.name,
    dataset_kwargs=_parse_kwargs(args.dataset_kwargs),
  )
  print(f"wrote {path}")
  return path


if __name__ == "__main__":
  main()
