"""Export a trained run's gallery as a searchable index (the folder format of :mod:`suprank_jax.index.store`).

Commands::

  # a split of the run's data set (config.input), embedded by its latest checkpoint (or --step N)
  python -m suprank_jax.export --workdir runs/digits --split test --out runs/digits/index
  # every image file under a folder (recursively; an image's label is its sub-folder)
  python -m suprank_jax.export --workdir runs/sop --images /photos --out /photos_index

then ``python -m suprank_jax.search --index runs/digits/index query.png``. The searcher is ScaNN: exact
brute force below ``index.EXACT_MAX_ITEMS`` items, tree + asymmetric hashing above (``--searcher``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

import jax
import numpy as np

from suprank_jax.evaluation import retrieval_evaluator
from suprank_jax.index import store as index_lib
from suprank_jax.input_pipeline import datasets, sources, transforms
from suprank_jax.models import build_model
from suprank_jax.runtime import cli, parallel, reporting
from suprank_jax.runtime.run_dir import RunDir
from suprank_jax.training import checkpoint

__all__ = ["Run", "load_run", "IMAGE_EXTENSIONS", "folder_source", "image_channels", "export_index", "main"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass
class Run:
  """A trained run read back: its config, model and the variables of one checkpoint."""

  workdir: str
  config: Any
  model: Any
  step: int
  variables: Any


def load_run(workdir: str, step: int | None = None) -> Run:
  """The config, model and checkpoint variables of the run in ``workdir`` (its newest readable
  checkpoint when ``step`` is None).

  Raises:
    FileNotFoundError: no config.yaml, no checkpoints folder, or no (such) checkpoint.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  run_dir = RunDir(workdir)
  config = run_dir.read_config()
  directory = run_dir.checkpoints
  if not checkpoint.has_checkpoints(directory):
    raise FileNotFoundError(f"{directory} holds no checkpoint: train the run first (python -m suprank_jax.train)")
  step, variables = checkpoint.CheckpointManager(directory).restore_variables(step)
  return Run(workdir=workdir, config=config, model=build_model(config.model), step=int(step), variables=variables)


def folder_source(folder: str, *, channels: int = 3) -> sources.Source:
  """Every image file under ``folder`` (recursively, sorted by path) as a Source with one label level,
  ``folder``: the image's sub-folder relative to ``folder`` (as torchvision's ImageFolder).

  Raises:
    FileNotFoundError: ``folder`` does not exist.
    ValueError: it holds no image file.
  """
  folder = os.path.abspath(os.path.expanduser(folder))
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"--images={folder}: no such folder")
  paths = sorted(
    os.path.join(root, name)
    for root, _, names in os.walk(folder)
    for name in names
    if name.lower().endswith(IMAGE_EXTENSIONS)
  )
  if not paths:
    raise ValueError(f"the gallery is empty: {folder} holds no image file ({', '.join(IMAGE_EXTENSIONS)})")
  parents = np.array([os.path.relpath(os.path.dirname(p), folder) for p in paths])
  return sources.make_source(f"images:{folder}", parents, ("folder",), paths=paths, channels=channels)


def image_channels(model, variables, input_config, image) -> int:
  """How images are decoded for ``model``: 3 (RGB) when the model takes the preprocessed RGB ``image``,
  else 1 (grey, e.g. a digits model).

  Raises:
    ValueError: the model takes neither (the message gives the preprocessed shapes tried).
  """
  transform = transforms.make_eval_transform(input_config)
  tried = []
  # Only the shapes matter here: the first channel stands for a grey decoding.
  for channels, decoded in ((3, image), (1, image[..., :1])):
    shape = (1, *transform(decoded).shape)
    try:
      jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, jax.ShapeDtypeStruct(shape, np.float32))
    except Exception:
      tried.append(shape[1:])
      continue
    return channels
  raise ValueError(
    f"the run's model takes neither RGB nor grey images of this size (preprocessed shapes tried: "
    f"{tried}, config.input.eval_resize={input_config.eval_resize!r}): give images of the size the "
    "model was trained on"
  )


def export_index(
  workdir: str,
  out_dir: str,
  *,
  split: str | None = None,
  images: str | None = None,
  step: int | None = None,
  batch_size: int = 256,
  searcher: str = "auto",
  log=reporting.log,
) -> dict:
  """Embeds a gallery with a trained run's model and writes an index folder (:mod:`suprank_jax.index.store`).

  Args:
    workdir: the run's folder (config.yaml, checkpoints/).
    out_dir: the index folder to write.
    split: a split of the run's data set (``config.input``), e.g. ``'test'``; or
    images: a folder of image files (exactly one of ``split`` and ``images``).
    step: the checkpoint (None: the newest readable one).
    batch_size: embedding batch size (a multiple of the number of devices).
    searcher: ``'auto'``, ``'exact'`` or ``'scann'`` (:func:`suprank_jax.index.store.write_index`).
    log: progress printer.

  Returns:
    The index's manifest.

  Raises:
    ValueError / FileNotFoundError: no run, no checkpoint, an empty gallery, an unreadable image file
    (:class:`~suprank_jax.input_pipeline.sources.ImageLoadError`, naming it), ...
  """
  if (split is None) == (images is None):
    raise ValueError("give exactly one gallery: a split of the run's data set (--split) or a folder (--images)")
  run = load_run(workdir, step)
  input_config = run.config.input
  if images is not None:
    source = folder_source(images)
    channels = image_channels(run.model, run.variables, input_config, source.load_image(0))
    if channels != 3:
      source = folder_source(images, channels=channels)
    gallery = {"images": os.path.abspath(os.path.expanduser(images))}
  else:
    source = datasets.get_source(input_config, split)
    if len(source) == 0:
      raise ValueError(f"the gallery is empty: split {split!r} of {source.name} has no item")
    channels = source.images.shape[-1] if source.images is not None else source.channels
    gallery = {"dataset": input_config.dataset, "split": split}
  log(f"embedding {len(source)} items of {source.name} with the model of {run.workdir} at step {run.step}")
  mesh = parallel.make_mesh()
  variables = jax.device_put(run.variables, parallel.replicated(mesh))
  embeddings, labels = retrieval_evaluator.embed_source(
    retrieval_evaluator.make_embed_fn(run.model, mesh),
    variables,
    input_config,
    source,
    batch_size=batch_size,
    mesh=mesh,
    log=log,
  )
  input_shape = list(transforms.make_eval_transform(input_config)(source.load_image(0)).shape)
  model = {
    "name": run.config.model.name,
    "checkpoint_step": run.step,
    "workdir": run.workdir,
    "input_shape": input_shape,
    "image_channels": int(channels),
  }
  manifest = index_lib.write_index(
    out_dir,
    embeddings,
    locations=[source.location(i) for i in range(len(source))],
    labels=labels,
    level_names=source.level_names,
    variables=run.variables,
    model=model,
    gallery=gallery,
    config=run.config.to_dict(),
    searcher=searcher,
  )
  log(f"wrote {out_dir}: {manifest['num_items']} items, {manifest['embed_dim']}-d, {manifest['searcher']} search")
  return manifest


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m suprank_jax.export", description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="the trained run's folder (config.yaml, checkpoints/)")
  gallery = parser.add_mutually_exclusive_group(required=True)
  gallery.add_argument("--split", help="a split of the run's data set, e.g. test")
  gallery.add_argument("--images", help="a folder of image files (searched recursively)")
  parser.add_argument("--out", required=True, help="the index folder to write")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
  parser.add_argument("--batch_size", type=int, default=256, help="embedding batch size")
  parser.add_argument(
    "--searcher",
    choices=index_lib.SEARCHERS,
    default="auto",
    help=f"auto: exact below {index_lib.EXACT_MAX_ITEMS} items, else ScaNN tree + AH",
  )
  return parser


def main(argv=None):
  args = _parser().parse_args(argv)
  with cli.user_errors():
    export_index(
      args.workdir,
      args.out,
      split=args.split,
      images=args.images,
      step=args.step,
      batch_size=args.batch_size,
      searcher=args.searcher,
    )


if __name__ == "__main__":
  main()
