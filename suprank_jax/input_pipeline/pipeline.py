"""``config.input`` to per-process batches: training iterator, evaluation batches, resume.

Training: one grain element per step (ECOSYSTEM.md §1)::

  grain.MapDataset.range(total_steps).map(load_batch)[start_step:].to_iter_dataset()

where ``load_batch(step)`` asks the class-aware sampler (``samplers.py``) for the step's *global*
batch of indices, keeps this process's contiguous slice, loads and augments those images. The
augmentation of the item in position ``j`` of the global batch of step ``s`` draws from
``numpy.random.default_rng([seed, s, j])``. So a batch is a pure function of ``(config, seed, step)``,
the same whatever ``num_workers`` and whatever the number of processes (their slices concatenate to
the global batch).

Resume / checkpointable iterator state: the state is the step. A run restored at step ``k`` calls
``make_train_iterator(..., start_step=k)`` and sees exactly the batches ``k, k+1, ...`` of an
uninterrupted run; no grain iterator state needs saving (grain's multiprocess state depends on the
worker count, ECOSYSTEM.md §1, while the step does not).

Images are read as encoded files and decoded when the transform resamples them
(:func:`load_item`, ``transforms.EncodedImage``). With ``uint8_images=True`` batches hold the
resampled uint8 pixels, normalised on the devices by ``parallel.global_batch(...,
normalization=config.input.normalization)``: a quarter of the host work and host-to-device bytes.

Evaluation: ``make_eval_batches`` covers a split once, in order, in fixed-size padded batches with a
``mask`` (1 = real item). Padding rows have zero images, zero labels and ``index = -1``.

Corrupt or missing images raise :class:`sources.ImageLoadError` naming the file. With
``config.input.skip_corrupt_images = True`` they are logged (with a running count per process)
instead: in training, the bad item is replaced by an item of the same batch with the same class
(any loaded item if none), labels included; in evaluation its pixels are zeros (it stays in the
metrics).

Configuration: :func:`default_config` lists every key; :func:`check_input_config` (run by every
entry point here, and best called first by the trainer) rejects bad values and keys set to
non-default values that the chosen options do not read.

Worker processes (``num_workers > 0``) use grain's ``mp_prefetch``; they read absl flags, so outside
``absl.app.run`` (tests, notebooks) this module marks the flags as parsed.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import grain
import ml_collections
import numpy as np

from suprank_jax import steps
from suprank_jax.input_pipeline import datasets, samplers, sources, transforms

__all__ = [
  "default_config",
  "check_input_config",
  "make_batch_sampler",
  "steps_per_epoch",
  "epoch_plan",
  "make_train_iterator",
  "make_eval_batches",
  "sample_images",
  "load_train_batch",
  "load_item",
]

_LOG = logging.getLogger(__name__)


def default_config() -> ml_collections.ConfigDict:
  """Every key the input pipeline reads, with defaults for the embedded digits data set."""
  c = ml_collections.ConfigDict()
  # Data set: a name in datasets.DATASETS, its folder, and extra loader arguments.
  c.dataset = "digits"
  c.data_dir = ""
  c.dataset_kwargs = ml_collections.ConfigDict()
  c.train_split = "train"
  # 'raw': read the original folder layout; 'tfds': a prepared TFDS/ArrayRecord data set under
  # data_dir (official or written by to_array_record.py), named tfds_name ('' = the default for dataset).
  c.source_format = "raw"
  c.tfds_name = ""
  # Sampler (samplers.py): 'm_per_class' (a fixed number of batches per epoch, every class drawn),
  # 'm_per_class_original' (the original's MPerClassSampler epoch: its length varies, classes under
  # samples_per_class images are never drawn) or 'hierarchical'.
  c.sampler = "m_per_class"
  c.global_batch_size = 120
  c.samples_per_class = 12  # digits: 10 classes x 12; the papers use 4 on SOP-scale data
  c.class_level = 0  # the level whose classes get samples_per_class images each
  c.super_class_level = 1  # hierarchical sampler only
  c.super_classes_per_batch = 2  # hierarchical sampler only
  c.batches_per_super_tuple = 4  # hierarchical sampler only
  # m_per_class and m_per_class_original only: 0, or the most images of a class used per epoch, a fresh
  # random subset each epoch (the reference's reduce_per_class; its GLDv2 configs use 8).
  c.max_per_class = 0
  # Preprocessing (transforms.py). image_size = 0 keeps the source size (digits: 8x8x1).
  c.image_size = 0
  c.random_resized_crop = False
  c.crop_scale = (0.16, 1.0)
  c.crop_ratio = (0.75, 1.33)
  # random_resized_crop only: 0, or the shorter side is first resized to this (SOP recipe: 256 -> crop 224).
  c.train_resize_size = 0
  c.horizontal_flip = False
  c.max_shift_px = 0
  c.normalization = "unit"  # 'unit' (x / 255) or 'imagenet'
  # 'none', 'resize_center_crop', 'square_resize_center_crop', 'resize', 'resize_shorter' (transforms.py)
  c.eval_resize = "none"
  # The size before the center crop: the shorter side ('resize_center_crop') or both sides
  # ('square_resize_center_crop'); read only by those two modes.
  c.eval_resize_size = 0
  # Loading: worker processes (0 = in the main process), reader threads, batches prefetched.
  c.num_workers = 0
  c.num_threads = 1
  c.prefetch_batches = 2
  c.skip_corrupt_images = False
  return c


# The samplers of M images from each of C classes per batch (both read class_level and max_per_class).
_M_PER_CLASS = ("m_per_class", "m_per_class_original")

# Keys read only under some settings: key -> (is it read under this config?, what reads it). A key
# set to a non-default value under a config that does not read it is rejected (train_resize_size
# without random_resized_crop is rejected by transforms.check_config).
_READ_WHEN = {
  "tfds_name": (lambda c: c.source_format == "tfds", "source_format='tfds'"),
  "data_dir": (
    lambda c: not (c.dataset == "digits" and c.source_format == "raw"),
    "a data set read from a folder (digits is embedded)",
  ),
  "super_class_level": (lambda c: c.sampler == "hierarchical", "sampler='hierarchical'"),
  "super_classes_per_batch": (lambda c: c.sampler == "hierarchical", "sampler='hierarchical'"),
  "batches_per_super_tuple": (lambda c: c.sampler == "hierarchical", "sampler='hierarchical'"),
  "max_per_class": (lambda c: c.sampler in _M_PER_CLASS, "sampler='m_per_class' or 'm_per_class_original'"),
  "crop_scale": (lambda c: c.random_resized_crop, "random_resized_crop=True"),
  "crop_ratio": (lambda c: c.random_resized_crop, "random_resized_crop=True"),
  "eval_resize_size": (
    lambda c: c.eval_resize in transforms.EVAL_CROP_MODES,
    f"eval_resize in {list(transforms.EVAL_CROP_MODES)}",
  ),
}


def _check_dataset_kwargs(c: Any):
  kwargs = c.dataset_kwargs.to_dict() if hasattr(c.dataset_kwargs, "to_dict") else dict(c.dataset_kwargs or {})
  if c.source_format == "tfds":
    if set(kwargs) - {"cache_dir"}:
      raise ValueError(
        f"config.input.dataset_kwargs={kwargs}: with source_format='tfds' only cache_dir is read (the "
        "reader's arguments were applied at conversion, to_array_record.py --dataset_kwargs); remove "
        "the others"
      )
    return
  loader = datasets.DATASETS[c.dataset]
  signature = inspect.signature(loader)
  try:
    signature.bind(c.data_dir, c.train_split, **kwargs)
  except TypeError as e:
    raise ValueError(
      f"config.input.dataset_kwargs={kwargs} does not fit the {c.dataset!r} reader "
      f"{getattr(loader, '__name__', loader)}{signature}: {e}"
    ) from e


def _same(a, b) -> bool:
  if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
    return tuple(a) == tuple(b)
  return a == b


def check_input_config(input_config: Any):
  """Validates ``config.input`` before any work: every key known and present, every value valid,
  and no key set (to a non-default value) that the chosen options do not read.

  Raises:
    ValueError: naming ``config.input.<key>`` and what to change.
  """
  c = input_config
  defaults = default_config()
  present = set(c.keys()) if hasattr(c, "keys") else set(vars(c))
  unknown, missing = sorted(present - set(defaults.keys())), sorted(set(defaults.keys()) - present)
  if unknown:
    raise ValueError(f"config.input has unknown keys {unknown}; valid: {sorted(defaults.keys())}")
  if missing:
    raise ValueError(f"config.input lacks {missing}: build it from input_pipeline.pipeline.default_config()")
  if c.dataset not in datasets.DATASETS:
    raise ValueError(f"config.input.dataset={c.dataset!r} is unknown; valid: {sorted(datasets.DATASETS)}")
  if c.source_format not in ("raw", "tfds"):
    raise ValueError(f"config.input.source_format={c.source_format!r}; valid: ['raw', 'tfds']")
  if c.sampler not in samplers.SAMPLERS:
    raise ValueError(f"config.input.sampler={c.sampler!r} is unknown; valid: {sorted(samplers.SAMPLERS)}")
  minimum = dict(
    global_batch_size=1,
    samples_per_class=1,
    class_level=0,
    super_class_level=0,
    super_classes_per_batch=1,
    batches_per_super_tuple=1,
    max_per_class=0,
    num_workers=0,
    num_threads=1,
    prefetch_batches=1,
  )
  for key, low in minimum.items():
    if int(getattr(c, key)) < low:
      raise ValueError(f"config.input.{key}={getattr(c, key)} must be >= {low}")
  group = c.samples_per_class * (c.super_classes_per_batch if c.sampler == "hierarchical" else 1)
  if c.global_batch_size % group:
    what = "samples_per_class" + (" x super_classes_per_batch" if c.sampler == "hierarchical" else "")
    raise ValueError(f"config.input.global_batch_size={c.global_batch_size} must be a multiple of {what} = {group}")
  if c.sampler == "hierarchical" and c.super_class_level == c.class_level:
    raise ValueError(f"config.input.super_class_level={c.super_class_level} must differ from class_level")
  if 0 < c.max_per_class < c.samples_per_class:
    raise ValueError(
      f"config.input.max_per_class={c.max_per_class} must be 0 (no cap) or >= samples_per_class={c.samples_per_class}"
    )
  transforms.check_config(c)
  for key, (is_read, reader) in _READ_WHEN.items():
    if not _same(getattr(c, key), defaults[key]) and not is_read(c):
      raise ValueError(
        f"config.input.{key}={getattr(c, key)!r} is not read here (only with {reader}): set it back to "
        f"{defaults[key]!r} or change the options that read it"
      )
  _check_dataset_kwargs(c)


def make_batch_sampler(
  input_config: Any, source: sources.Source, *, seed: int, plan: steps.EpochPlan | None = None
) -> samplers.BatchSampler:
  """The step -> global batch indices map of ``input_config.sampler`` over ``source.labels`` (``plan``: its
  :func:`epoch_plan` when the caller has it, so that its epochs' lengths are not computed again)."""
  check_input_config(input_config)
  name = input_config.sampler
  common = dict(batch_size=int(input_config.global_batch_size), samples_per_class=int(input_config.samples_per_class))
  if name in _M_PER_CLASS:
    kwargs = dict(level=int(input_config.class_level), max_per_class=int(input_config.max_per_class))
  elif name == "hierarchical":
    kwargs = dict(
      inner_level=int(input_config.class_level),
      outer_level=int(input_config.super_class_level),
      super_classes_per_batch=int(input_config.super_classes_per_batch),
      batches_per_super_tuple=int(input_config.batches_per_super_tuple),
    )
  else:
    raise ValueError(f"unknown config.input.sampler {name!r}; valid: {sorted(samplers.SAMPLERS)}")
  return samplers.make_batch_sampler(name, source.labels, seed=seed, plan=plan, **common, **kwargs)


def steps_per_epoch(input_config: Any, source: sources.Source) -> int:
  """Training steps in one epoch of a sampler whose epochs all have the same length (fixed for a data
  set and config).

  Raises:
    ValueError: the sampler's epochs vary in length (use :func:`epoch_plan`).
  """
  plan = make_batch_sampler(input_config, source, seed=0).plan
  if plan.varies:
    raise ValueError(
      f"config.input.sampler={input_config.sampler!r} gives epochs of varying length (they depend on "
      "the seed): use epoch_plan(input_config, source, seed=...)"
    )
  return plan.steps_per_epoch


def epoch_plan(input_config: Any, source: sources.Source, *, seed: int) -> steps.EpochPlan:
  """Where each training epoch starts, in steps (the sampler's; see ``steps.EpochPlan``)."""
  return make_batch_sampler(input_config, source, seed=seed).plan


# Running count of the bad images skipped in this process, for the warnings (each grain worker process
# counts its own); ``next`` on an ``itertools.count`` is atomic, so the loader threads share it safely.
_SKIPPED = itertools.count(1)


def load_item(source: sources.Source, i: int) -> transforms.ImageInput:
  """Item ``i`` for the transforms: in-memory pixels, or the encoded file (a
  :class:`transforms.EncodedImage`, decoded when resampled, at a reduced JPEG scale when the output
  allows). What the training and evaluation batches preprocess; ``source.load_image(i)`` gives the
  same pixels up to that reduced decoding.

  Raises:
    sources.ImageLoadError: the file cannot be read or its header decoded (naming it).
  """
  i = int(i)
  if source.images is not None:
    return source.load_image(i)
  return transforms.EncodedImage(
    sources.read_image_bytes(source, i),
    what=sources.image_name(source, i),
    channels=source.channels,
    box=None if source.boxes is None else source.boxes[i],
  )


def _transformed_or_none(transform, source: sources.Source, i: int, skip: bool, *args):
  """``transform(item i, *args)``, or None for a bad image when ``skip`` (logged with a running count)."""
  try:
    return transform(load_item(source, i), *args)
  except sources.ImageLoadError as e:
    if not skip:
      raise
    _LOG.warning("skipping a bad image (%d so far in this process): %s", next(_SKIPPED), e)
    return None


def _check_shapes(images, where):
  shapes = {x.shape for x in images}
  if len(shapes) > 1:
    raise ValueError(
      f"{where}: images of different shapes {sorted(shapes)} in one batch; set "
      "config.input.image_size (and eval_resize) so that every image gets the same size"
    )


class _TrainBatchLoader:
  """``step -> {'images', 'labels', 'index'}`` for one process (picklable for grain workers)."""

  def __init__(self, input_config, source, *, seed, process_index, process_count, uint8_images=False, plan=None):
    self.source = source
    self.sampler = make_batch_sampler(input_config, source, seed=seed, plan=plan)
    self.transform = transforms.make_train_transform(input_config, normalize_images=False)
    self.normalization = None if uint8_images else input_config.normalization
    self.seed = int(seed)
    self.skip = bool(input_config.skip_corrupt_images)
    self.process_index = process_index
    self.process_count = process_count
    batch = int(input_config.global_batch_size)
    samplers.process_slice(np.zeros(batch), process_index=process_index, process_count=process_count)
    self.offset = batch // process_count * process_index

  def __call__(self, step):
    step = int(step)
    local = samplers.process_slice(
      self.sampler(step), process_index=self.process_index, process_count=self.process_count
    )
    labels = self.source.labels[local]
    index = local.copy()

    def augmented(i, j):
      rng = np.random.default_rng([self.seed, step, self.offset + j])
      return _transformed_or_none(self.transform, self.source, i, self.skip, rng)

    images = [augmented(i, j) for j, i in enumerate(local)]
    bad = [j for j, x in enumerate(images) if x is None]
    if bad:
      good = [j for j, x in enumerate(images) if x is not None]
      if not good:
        raise sources.ImageLoadError(f"{self.source.name}: every image of step {step}'s batch failed to load")
      labels = labels.copy()
      # A bad item takes the image and labels of a good one of its class (any good one if none),
      # with its own augmentation draws.
      for j in bad:
        same = [g for g in good if labels[g, 0] == labels[j, 0]]
        k = (same or good)[0]
        labels[j], index[j] = labels[k], index[k]
        images[j] = augmented(index[k], j)
    _check_shapes(images, f"{self.source.name} step {step}")
    images = np.stack(images)
    if self.normalization is not None:
      images = transforms.normalize(images, self.normalization)
    return {"images": images, "labels": labels.astype(np.int32), "index": index.astype(np.int32)}


def load_train_batch(
  input_config: Any,
  source: sources.Source,
  step: int,
  *,
  seed: int,
  process_index: int = 0,
  process_count: int = 1,
  uint8_images: bool = False,
) -> dict[str, np.ndarray]:
  """The batch of one step, without grain (what the iterator yields at ``step``)."""
  return _TrainBatchLoader(
    input_config, source, seed=seed, process_index=process_index, uint8_images=uint8_images, process_count=process_count
  )(step)


def _ensure_flags_parsed():
  """Marks absl's flags as parsed when no ``absl.app.run`` parsed them (tests, notebooks, a trainer called
  from Python).

  grain's ``mp_prefetch`` reads its own absl flags (e.g. ``grain_enable_multiprocess_worker_profiling``)
  through ``flags.FLAGS``, and absl raises ``UnparsedFlagAccessError`` on any flag read before the command
  line is parsed; once marked, the reads return the flags' defaults. Under ``app.run`` this does nothing.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _to_iterator(ds: grain.MapDataset, input_config: Any):
  read = grain.ReadOptions(
    num_threads=max(1, int(input_config.num_threads)), prefetch_buffer_size=max(1, int(input_config.prefetch_batches))
  )
  it_ds = ds.to_iter_dataset(read)
  if int(input_config.num_workers) > 0:
    _ensure_flags_parsed()
    it_ds = it_ds.mp_prefetch(
      grain.MultiprocessingOptions(
        num_workers=int(input_config.num_workers), per_worker_buffer_size=max(1, int(input_config.prefetch_batches))
      )
    )
  return iter(it_ds)


def make_train_iterator(
  input_config: Any,
  source: sources.Source,
  *,
  seed: int,
  start_step: int,
  total_steps: int,
  process_index: int = 0,
  process_count: int = 1,
  uint8_images: bool = False,
  epochs: steps.EpochPlan | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Training batches for steps ``start_step .. total_steps - 1``.

  Args:
    input_config: ``config.input`` (see :func:`default_config`).
    source: the training split.
    seed: run seed (sampler shuffles and augmentation).
    start_step: first step to yield (the restored step when resuming).
    total_steps: the run's number of steps.
    process_index: this process (``jax.process_index()``).
    process_count: number of processes; ``global_batch_size`` must be divisible by it.
    uint8_images: keep the images uint8, not normalised (4x less host work and host-to-device
      traffic); normalise them on the devices with ``parallel.global_batch(batch, mesh,
      normalization=input_config.normalization)``.
    epochs: the sampler's :func:`epoch_plan` for this seed when the caller has it (not computed again).

  Returns:
    A grain iterator (call ``close()`` when done if ``num_workers > 0``) of dicts with
    ``images`` float32 (uint8 with ``uint8_images``) ``[local_batch, H, W, C]``, ``labels`` int32 ``[local_batch, L]`` and
    ``index`` int32 ``[local_batch]`` (row of ``source``), ``local_batch = global_batch_size /
    process_count``.
  """
  if not 0 <= start_step <= total_steps:
    raise ValueError(f"start_step={start_step} must be in [0, total_steps={total_steps}]")
  load = _TrainBatchLoader(
    input_config,
    source,
    seed=seed,
    process_index=process_index,
    process_count=process_count,
    uint8_images=uint8_images,
    plan=epochs,
  )
  if total_steps:
    load.sampler.plan.epoch_of(total_steps - 1)  # the epochs' starts, computed here once for every worker
  ds = grain.MapDataset.range(total_steps).map(load)[start_step:]
  return _to_iterator(ds, input_config)


class _EvalBatchLoader:
  """``batch number -> padded batch`` for one process."""

  def __init__(self, input_config, source, *, batch_size, process_index, process_count, item_shape, uint8_images):
    self.source = source
    self.transform = transforms.make_eval_transform(input_config, normalize_images=False)
    self.normalization = None if uint8_images else input_config.normalization
    self.skip = bool(input_config.skip_corrupt_images)
    self.batch_size = batch_size
    self.start = batch_size * process_index
    self.global_batch = batch_size * process_count
    self.item_shape = item_shape

  def __call__(self, g):
    positions = int(g) * self.global_batch + self.start + np.arange(self.batch_size)
    mask = positions < len(self.source)
    images = np.zeros((self.batch_size, *self.item_shape), np.float32 if self.normalization else np.uint8)
    labels = np.zeros((self.batch_size, self.source.num_levels), np.int32)
    for j in np.flatnonzero(mask):
      image = _transformed_or_none(self.transform, self.source, positions[j], self.skip)
      if image is not None:
        if self.normalization:
          image = transforms.normalize(image, self.normalization)
        if image.shape != self.item_shape:
          raise ValueError(
            f"{self.source.location(int(positions[j]))}: preprocessed shape {image.shape} differs "
            f"from {self.item_shape}; set config.input.eval_resize so that all images match"
          )
        images[j] = image
      labels[j] = self.source.labels[positions[j]]
    index = np.where(mask, positions, -1).astype(np.int32)
    return {"images": images, "labels": labels, "index": index, "mask": mask.astype(np.int32)}


def make_eval_batches(
  input_config: Any,
  source: sources.Source,
  *,
  batch_size: int,
  process_index: int = 0,
  process_count: int = 1,
  uint8_images: bool = False,
  epochs: steps.EpochPlan | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Padded fixed-size batches covering ``source`` once, in order.

  Global batch ``g`` holds items ``g * G .. (g + 1) * G - 1`` with ``G = batch_size * process_count``;
  process ``p`` gets the ``p``-th contiguous block of ``batch_size``. Every process yields the same
  number of batches, ``ceil(len(source) / G)``.

  Args:
    input_config: ``config.input``.
    source: the split to cover.
    batch_size: per-process batch size.
    process_index: this process.
    process_count: number of processes.
    uint8_images: keep the images uint8, not normalised (as :func:`make_train_iterator`); the
      padding rows are then zeros before normalisation.

  Yields:
    ``images`` float32 (uint8 with ``uint8_images``) ``[batch_size, H, W, C]``, ``labels`` int32 ``[batch_size, L]``, ``index``
    int32 ``[batch_size]`` (``-1`` on padding) and ``mask`` int32 ``[batch_size]`` (1 = real item).
  """
  check_input_config(input_config)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"bad process_index={process_index} for process_count={process_count}")
  if len(source) == 0:
    return
  item_shape = (
    transforms.make_eval_transform(input_config, normalize_images=False)(load_item(source, 0)).shape
    if uint8_images
    else sample_images(input_config, source).shape[1:]
  )
  load = _EvalBatchLoader(
    input_config,
    source,
    batch_size=batch_size,
    process_index=process_index,
    process_count=process_count,
    item_shape=item_shape,
    uint8_images=uint8_images,
  )
  num_batches = -(-len(source) // (batch_size * process_count))
  it = _to_iterator(grain.MapDataset.range(num_batches).map(load), input_config)
  try:
    yield from it
  finally:
    if hasattr(it, "close"):
      it.close()


def sample_images(input_config: Any, source: sources.Source) -> np.ndarray:
  """float32 ``[1, H, W, C]``: the first item after evaluation preprocessing (for model init)."""
  check_input_config(input_config)
  if len(source) == 0:
    raise ValueError(f"{source.name} is empty")
  return transforms.make_eval_transform(input_config)(load_item(source, 0))[None].astype(np.float32)
