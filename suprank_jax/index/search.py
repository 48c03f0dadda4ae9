"""Search an exported index with image files: the nearest gallery items and their scores.

Commands::

  python -m suprank_jax.search --index runs/digits/index query.png [more.png ...] [--k 10] [--picture out.png]
  # embed the queries with another checkpoint of a run: refused unless it is the index's own model
  python -m suprank_jax.search --index runs/digits/index query.png --workdir runs/digits --step 300

Queries are decoded as the gallery was (grey or RGB), preprocessed with the run's evaluation transform
and embedded by the model stored in the index (``variables.msgpack``). A query whose preprocessed size
differs from the model's input while ``config.input.eval_resize='none'`` (the digits setting) is first
resized to that input size. Scores are cosine similarities, nearest first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from suprank_jax.evaluation import pictures
from suprank_jax.evaluation.embedding_store import weights_fingerprint
from suprank_jax.index import export
from suprank_jax.index import store as index_lib
from suprank_jax.input_pipeline import datasets, sources, transforms
from suprank_jax.models import build_model
from suprank_jax.runtime import cli

__all__ = [
  "SearchResults",
  "preprocess_images",
  "embed_images",
  "search_files",
  "gallery_image_loader",
  "format_results",
  "results_picture",
  "main",
]


@dataclasses.dataclass
class SearchResults:
  """What :func:`search_files` found.

  Attributes:
    paths: the ``Q`` query files.
    images: their decoded uint8 images.
    indices: ``[Q, k]`` int64 gallery indices, nearest first.
    scores: ``[Q, k]`` float32 cosine similarities.
  """

  paths: tuple[str, ...]
  images: list
  indices: np.ndarray
  scores: np.ndarray


def preprocess_images(
  images: Sequence[np.ndarray], input_config, input_shape: Sequence[int], *, names: Sequence[str] | None = None
) -> np.ndarray:
  """float32 ``[Q, *input_shape]``: the evaluation transform of each image.

  With ``eval_resize='none'`` an image of another size is resized to ``input_shape[:2]`` first.

  Raises:
    ValueError: an image still not of ``input_shape`` after preprocessing (naming it).
  """
  transform = transforms.make_eval_transform(input_config)
  input_shape = tuple(int(v) for v in input_shape)
  out = []
  for i, image in enumerate(images):
    x = transform(image)
    if x.shape != input_shape and input_config.eval_resize == "none":
      x = transform(transforms.resize(image, input_shape[0], input_shape[1]))
    if x.shape != input_shape:
      name = names[i] if names is not None else f"image {i}"
      raise ValueError(f"{name}: preprocessed shape {x.shape} differs from the model's input {input_shape}")
    out.append(x)
  return np.stack(out).astype(np.float32)


def embed_images(model, variables, batch: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
  """``[Q, D]`` float32 embeddings of preprocessed images ``[Q, H, W, C]`` (jitted, in batches)."""
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  return np.concatenate(
    [np.asarray(apply(variables, batch[i : i + batch_size]), np.float32) for i in range(0, len(batch), batch_size)]
  )


def search_files(
  index: index_lib.SearchIndex,
  paths: Sequence[str],
  *,
  k: int = 10,
  workdir: str | None = None,
  step: int | None = None,
) -> SearchResults:
  """Embeds image files and searches ``index`` with them.

  Args:
    index: a loaded index (:func:`suprank_jax.index.store.load_index`).
    paths: image files.
    k: neighbours per query.
    workdir, step: embed with this run's checkpoint instead of the index's model (it must be the same
      model: :func:`suprank_jax.index.store.check_model`).

  Raises:
    ValueError: an unreadable image (:class:`~suprank_jax.input_pipeline.sources.ImageLoadError`,
      naming the file), no image, or a model other than the index's.
  """
  if not paths:
    raise ValueError("give at least one query image")
  built = index.manifest["model"]
  images = [sources.decode_image_file(os.path.expanduser(p), channels=int(built["image_channels"])) for p in paths]
  if workdir is not None:
    run = export.load_run(workdir, step)
    config, model, variables = run.config, run.model, run.variables
    where = f"the model of {run.workdir} at step {run.step}"
  else:
    config, variables, where = index.config(), index.variables(), None
    model = build_model(config.model)
  batch = preprocess_images(images, config.input, built["input_shape"], names=list(paths))
  embeddings = embed_images(model, variables, batch)
  if where is not None:
    index_lib.check_model(
      index,
      name=config.model.name,
      embed_dim=embeddings.shape[1],
      weights_sha256=weights_fingerprint(variables),
      where=where,
    )
  indices, scores = index.search(embeddings, k)
  return SearchResults(paths=tuple(paths), images=images, indices=indices, scores=scores)


def gallery_image_loader(index: index_lib.SearchIndex) -> Callable[[int], np.ndarray]:
  """``item -> uint8 image`` for the gallery of ``index`` (its files, or its split re-read).

  Raises:
    ValueError: the split no longer has the size it had at export.
  """
  gallery = index.manifest["gallery"]
  if "images" in gallery:
    channels = int(index.manifest["model"]["image_channels"])
    return lambda i: sources.decode_image_file(index.locations[i], channels=channels)
  source = datasets.get_source(index.config().input, gallery["split"])
  if len(source) != len(index):
    raise ValueError(
      f"split {gallery['split']!r} of {source.name} has {len(source)} items but the index "
      f"{index.directory} was built from {len(index)}: the data set changed; export it again"
    )
  return source.load_image


def _query_labels(index, paths):
  """Labels of the queries that are gallery files themselves (None for the others)."""
  position = {os.path.abspath(location): i for i, location in enumerate(index.locations)}
  return [index.labels[position[os.path.abspath(p)]] if os.path.abspath(p) in position else None for p in paths]


def format_results(index: index_lib.SearchIndex, results: SearchResults) -> str:
  """One block per query: rank, score, location and labels of each neighbour."""
  lines = []
  names = index.level_names
  for q, path in enumerate(results.paths):
    lines.append(path)
    for rank, (g, s) in enumerate(zip(results.indices[q], results.scores[q]), start=1):
      labels = " ".join(f"{n}={v}" for n, v in zip(names, index.labels[g]))
      lines.append(f"  {rank:>3}  {s:7.4f}  {index.locations[g]}  {labels}".rstrip())
  return "\n".join(lines)


def results_picture(index: index_lib.SearchIndex, results: SearchResults, *, cell_size: int = 96) -> np.ndarray:
  """The queries and their neighbours as a picture (:func:`suprank_jax.evaluation.pictures.retrieval_grid`).

  Frames are grey (relevance unknown), except for a query that is itself a gallery file: its results
  are then framed by relevance to it.
  """
  load = gallery_image_loader(index)
  num_levels = len(index.level_names)
  relevance = np.full(results.indices.shape, -1, np.int64)
  for q, labels in enumerate(_query_labels(index, results.paths)):
    if labels is not None and num_levels:
      levels = (index.labels[results.indices[q]] == labels[None, :]).sum(-1)
      relevance[q] = pictures.relevance_kinds(levels, num_levels)
  first = index.level_names[0] if num_levels else ""
  captions = [
    [os.path.basename(path)]
    + [
      (f"{first} {index.labels[g, 0]}  " if num_levels else "") + f"{s:.2f}"
      for g, s in zip(results.indices[q], results.scores[q])
    ]
    for q, path in enumerate(results.paths)
  ]
  return pictures.retrieval_grid(
    results.images,
    [[load(int(g)) for g in row] for row in results.indices],
    relevance,
    captions=captions,
    cell_size=cell_size,
  )


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m suprank_jax.search", description=__doc__.split("\n")[0])
  parser.add_argument("images", nargs="+", metavar="IMAGE", help="query image files")
  parser.add_argument("--index", required=True, help="an index folder written by python -m suprank_jax.export")
  parser.add_argument("--k", type=int, default=10, help="neighbours per query")
  parser.add_argument("--picture", default=None, help="also draw the queries and their neighbours into this PNG")
  parser.add_argument("--workdir", default=None, help="embed the queries with this run (must be the index's model)")
  parser.add_argument("--step", type=int, default=None, help="with --workdir: the checkpoint step")
  return parser


def main(argv=None):
  args = _parser().parse_args(argv)
  with cli.user_errors():
    index = index_lib.load_index(args.index)
    results = search_files(index, args.images, k=args.k, workdir=args.workdir, step=args.step)
    print(format_results(index, results), flush=True)
    if args.picture:
      from PIL import Image  # pylint: disable=g-import-not-at-top

      Image.fromarray(results_picture(index, results)).save(args.picture)
      print(f"wrote {args.picture}")


if __name__ == "__main__":
  main()
