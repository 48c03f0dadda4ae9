"""Class-aware batch samplers: pure numpy, deterministic in ``(seed, epoch)``.

Each sampler returns the *global* batches of one epoch as indices ``[num_batches, batch_size]``;
:func:`process_slice` cuts process ``p``'s contiguous share out of a global batch, so the global
batch is the same whatever the number of processes. :class:`BatchSampler` maps a training step to
its global batch (``epoch, b = divmod(step, steps_per_epoch)``), so the data position is a pure
function of the step.

M-per-class (:func:`m_per_class_batches`), for ``batch_size = C x M`` (``C`` classes, ``M`` images
each; classes from ``labels[:, level]``):

1. Each class is shuffled and, with a cap ``max_per_class > 0`` (the reference's ``reduce_per_class``,
   8 on GLDv2), only its first ``max_per_class`` images are kept this epoch; the ``n`` kept images
   are cut into ``max(1, n // M)`` chunks of ``M`` distinct images; the ``n mod M`` leftover images
   sit out this epoch (a fresh shuffle next epoch). A class with fewer than ``M`` images gives one
   chunk: all its images plus ``M - n`` draws *with replacement* from them (so it appears with
   repeated images).
2. The epoch has ``num_batches = total_chunks // C`` batches. Each batch takes one chunk from each
   of ``C`` distinct classes, drawn without replacement with probability proportional to the
   chunks each class has left, so every chunk is used about once per epoch. When fewer than ``C``
   classes have chunks left, the missing classes are drawn uniformly among the others and give a
   fresh random chunk of their kept images (so a class never shows more than ``max_per_class``
   distinct images in an epoch).
3. Inside a batch, the ``M`` images of a class are consecutive (block order = draw order).

Unlike the reference's ``MPerClassSampler`` (which skips classes with fewer than ``M`` images),
every class is used; the batch count per epoch is fixed so that steps map to epochs.

The reference's own epoch (:func:`m_per_class_original_batches`, the ``MPerClassSampler`` of
``suprank/datasets/samplers/m_per_class_sampler.py``): each class is shuffled (and cut to its first
``max_per_class`` images, the ``reduce_per_class``), the classes are shuffled once, then each pass
over the class list takes ``M`` unused images from each of the first ``C`` classes, in list order,
that still have ``M`` unused images, and makes one batch of them; the epoch ends at the first pass
that cannot fill a batch. Classes with fewer than ``M`` images are never drawn, leftover images sit
out, each batch is shuffled and so is the list of batches. The number of batches depends on the
class order, so it varies from epoch to epoch: the sampler's :class:`steps.EpochPlan` says where each
epoch starts. The passes are computed by :func:`original_epoch` (the same first ``C`` classes fill
every pass until one of them runs out, so a run of identical passes is one numpy step).

Hierarchical (:func:`hierarchical_batches`, the ``HierarchicalSampler`` of pytorch-metric-learning
used by the reference): for every tuple of ``super_classes_per_batch`` super-classes (all
combinations of the ``outer_level`` labels), ``batches_per_super_tuple`` batches are built; each
batch gives ``batch_size / super_classes_per_batch`` slots to every super-class of its tuple, filled
by ``M`` images (with replacement only if a class has fewer than ``M``) from each of the first
classes of a fresh shuffle of that super-class's ``inner_level`` classes. A super-class with too few
classes cycles through them again (classes repeat, each time with a new draw), so every batch has
exactly ``batch_size`` items. The batch is then shuffled, and so is the list of batches.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import numpy as np

from suprank_jax import steps

__all__ = [
  "MPerClassSettings",
  "HierarchicalSettings",
  "m_per_class_batches",
  "m_per_class_num_batches",
  "original_epoch",
  "m_per_class_original_batches",
  "m_per_class_original_num_batches",
  "m_per_class_original_lengths",
  "hierarchical_batches",
  "hierarchical_num_batches",
  "process_slice",
  "BatchSampler",
  "SAMPLERS",
  "VARYING_LENGTH",
  "make_batch_sampler",
]

# Tags mixed into the seed so that different samplers never share a random stream.
_M_PER_CLASS_TAG = 1
_HIERARCHICAL_TAG = 2
_ORIGINAL_TAG = 3


def _epoch_rng(seed: int, epoch: int, tag: int) -> np.random.Generator:
  if seed < 0 or epoch < 0:
    raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
  return np.random.default_rng([int(seed), int(epoch), tag])


def _check_batch(batch_size: int, samples_per_class: int, groups: int = 1):
  if samples_per_class < 1:
    raise ValueError(f"samples_per_class must be >= 1, got {samples_per_class}")
  if batch_size < 1 or batch_size % (samples_per_class * groups):
    what = "samples_per_class" if groups == 1 else f"samples_per_class x super_classes_per_batch ({groups})"
    raise ValueError(f"batch_size={batch_size} must be a positive multiple of {what} = {samples_per_class * groups}")


def _class_members(class_labels: np.ndarray) -> list[np.ndarray]:
  """Indices of each class ``0..K-1`` (classes are the sorted unique labels)."""
  order = np.argsort(class_labels, kind="stable")
  _, starts = np.unique(class_labels[order], return_index=True)
  return np.split(order, starts[1:])


def _level(labels: np.ndarray, level: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim == 1:
    labels = labels[:, None]
  if labels.ndim != 2 or not -labels.shape[1] <= level < labels.shape[1]:
    raise ValueError(f"labels of shape {labels.shape} have no level {level}")
  return labels[:, level]


def _draw(rng: np.random.Generator, members: np.ndarray, size: int) -> np.ndarray:
  """``size`` members, distinct when there are enough."""
  return rng.choice(members, size=size, replace=len(members) < size)


def _check_cap(max_per_class: int, samples_per_class: int):
  if max_per_class < 0 or 0 < max_per_class < samples_per_class:
    raise ValueError(
      f"max_per_class={max_per_class} must be 0 (no cap) or >= samples_per_class="
      f"{samples_per_class} (a smaller cap would repeat images inside every class block)"
    )


@dataclasses.dataclass(frozen=True)
class MPerClassSettings:
  """The settings of the M-per-class samplers (:func:`m_per_class_batches`, :func:`m_per_class_original_batches`
  and their counts), checked when made.

  Attributes:
    batch_size: global batch size ``C x M``.
    samples_per_class: ``M``.
    level: which column of ``labels`` defines the classes (the reference's ``hierarchy_level``).
    max_per_class: 0, or the most images of a class used in one epoch (a fresh random subset each
      epoch; the reference's ``reduce_per_class``). At least ``samples_per_class``.
  """

  batch_size: int
  samples_per_class: int = 4
  level: int = 0
  max_per_class: int = 0

  def __post_init__(self):
    _check_batch(self.batch_size, self.samples_per_class)
    _check_cap(self.max_per_class, self.samples_per_class)

  @property
  def classes_per_batch(self) -> int:
    return self.batch_size // self.samples_per_class


@dataclasses.dataclass(frozen=True)
class HierarchicalSettings:
  """The settings of the hierarchical sampler (:func:`hierarchical_batches` and its count), checked when made.

  Attributes:
    batch_size: global batch size, a multiple of ``samples_per_class x super_classes_per_batch``.
    samples_per_class: ``M``.
    super_classes_per_batch: super-classes (``outer_level``) per batch.
    batches_per_super_tuple: batches built from each tuple of super-classes.
    inner_level: the level whose classes get ``M`` images each.
    outer_level: the super-class level.
  """

  batch_size: int
  samples_per_class: int = 4
  super_classes_per_batch: int = 2
  batches_per_super_tuple: int = 4
  inner_level: int = 0
  outer_level: int = 1

  def __post_init__(self):
    _check_batch(self.batch_size, self.samples_per_class, self.super_classes_per_batch)
    if self.batches_per_super_tuple < 1:
      raise ValueError(f"batches_per_super_tuple must be >= 1, got {self.batches_per_super_tuple}")


def _m_per_class_count(members: list[np.ndarray], settings: MPerClassSettings) -> int:
  """Batches per epoch of M-per-class sampling over the classes' ``members``."""
  m, classes_per_batch = settings.samples_per_class, settings.classes_per_batch
  counts = np.array([len(idx) for idx in members])
  if classes_per_batch > len(counts):
    raise ValueError(
      f"batch_size={settings.batch_size} with samples_per_class={m} needs "
      f"{classes_per_batch} classes per batch but the labels have only {len(counts)}"
    )
  if settings.max_per_class:
    counts = np.minimum(counts, settings.max_per_class)
  return int(np.maximum(1, counts // m).sum() // classes_per_batch)


def m_per_class_num_batches(labels: np.ndarray, **settings) -> int:
  """Batches per epoch of :func:`m_per_class_batches` (the same for every epoch):
  ``sum_c max(1, min(n_c, max_per_class) // M) // C``; ``settings``: :class:`MPerClassSettings`'s."""
  s = MPerClassSettings(**settings)
  return _m_per_class_count(_class_members(_level(labels, s.level)), s)


def m_per_class_batches(labels: np.ndarray, *, seed: int = 0, epoch: int = 0, **settings) -> np.ndarray:
  """The global batches of one epoch of M-per-class sampling (see the module docstring).

  Args:
    labels: ``[N]`` or ``[N, L]`` integer labels.
    seed: run seed.
    epoch: epoch number (a new shuffle per epoch).
    **settings: the fields of :class:`MPerClassSettings` (``batch_size``, ``samples_per_class``, ``level``,
      ``max_per_class``).

  Returns:
    int64 ``[num_batches, batch_size]`` indices into ``labels``.
  """
  s = MPerClassSettings(**settings)
  classes = _class_members(_level(labels, s.level))
  num_batches = _m_per_class_count(classes, s)
  m, max_per_class, classes_per_batch = s.samples_per_class, s.max_per_class, s.classes_per_batch
  rng = _epoch_rng(seed, epoch, _M_PER_CLASS_TAG)
  members, chunks = [], []
  for idx in classes:
    if max_per_class and len(idx) > max_per_class:
      idx = np.sort(rng.permutation(idx)[:max_per_class])  # this epoch's subset
    members.append(idx)
    if len(idx) >= m:
      chunks.append(rng.permutation(idx)[: len(idx) // m * m].reshape(-1, m))
    else:
      chunks.append(np.concatenate([rng.permutation(idx), rng.choice(idx, m - len(idx))])[None])
  remaining = np.array([len(c) for c in chunks], np.int64)
  used = np.zeros_like(remaining)
  num_classes = len(members)
  out = np.empty((num_batches, s.batch_size), np.int64)
  for b in range(num_batches):
    available = np.flatnonzero(remaining)
    if len(available) >= classes_per_batch:
      chosen = rng.choice(
        available, size=classes_per_batch, replace=False, p=remaining[available] / remaining[available].sum()
      )
      refill = np.zeros(0, np.int64)
    else:
      others = np.setdiff1d(np.arange(num_classes), available)
      chosen = available
      refill = rng.choice(others, size=classes_per_batch - len(available), replace=False)
    row = [chunks[c][used[c]] for c in chosen] + [_draw(rng, members[c], m) for c in refill]
    used[chosen] += 1
    remaining[chosen] -= 1
    out[b] = np.concatenate(row)
  return out


def _original_passes(sizes: np.ndarray, m: int, c: int) -> tuple[np.ndarray, np.ndarray]:
  """The reference's passes over classes of ``sizes`` images (in list order): ``(position, chunk)``,
  each ``[num_batches, C]``: the list positions of each batch's classes and which ``M``-chunk of each.

  Each pass takes the first ``c`` classes (in list order) with an unused chunk. Classes start in
  list order and, once started, are taken at every pass until they run out, so the taken classes
  are the started ones still alive plus the next unstarted ones: the same classes fill every pass
  until the first of them runs out, and such a run of passes is computed at once.
  """
  chunks = sizes // m
  alive = np.flatnonzero(chunks)  # the classes that can give a chunk, in list order
  head, used = np.zeros(0, np.int64), np.zeros(0, np.int64)  # the started classes still alive
  start, positions, numbers = 0, [], []
  while True:
    new = alive[start : start + c - len(head)]
    start += len(new)
    head, used = np.concatenate([head, new]), np.concatenate([used, np.zeros(len(new), np.int64)])
    if len(head) < c:  # this pass cannot fill a batch: the epoch ends
      break
    run = int((chunks[head] - used).min())
    positions.append(np.broadcast_to(head, (run, c)))
    numbers.append(used + np.arange(run)[:, None])
    used = used + run
    alive_after = used < chunks[head]
    head, used = head[alive_after], used[alive_after]
  if not positions:
    return np.zeros((0, c), np.int64), np.zeros((0, c), np.int64)
  return np.concatenate(positions), np.concatenate(numbers)


def original_epoch(order, members, *, samples_per_class: int, classes_per_batch: int) -> np.ndarray:
  """The batches of one epoch of the reference's ``MPerClassSampler``, given its random draws, before
  its shuffles of each batch and of the batch list.

  Args:
    order: ``[K]`` the classes in the order of the shuffled class list.
    members: ``members[c]``: class ``c``'s images in their shuffled order (cut to ``reduce_per_class``).
    samples_per_class: ``M``.
    classes_per_batch: ``C`` (batch size ``C x M``).

  Returns:
    int64 ``[num_batches, C x M]``: batch ``b`` is made at pass ``b``; its ``M``-blocks are its classes
    in list order, each the class's next ``M`` unused images.
  """
  listed = [np.asarray(members[c], np.int64) for c in order]
  sizes = np.array([len(x) for x in listed], np.int64)
  flat = np.concatenate(listed) if listed else np.zeros(0, np.int64)
  return _original_gather(flat, sizes, samples_per_class, classes_per_batch)


def _original_gather(flat: np.ndarray, sizes: np.ndarray, m: int, c: int) -> np.ndarray:
  """:func:`original_epoch` over the members of the classes in list order, concatenated (``flat``)."""
  position, chunk = _original_passes(sizes, m, c)
  first = np.cumsum(sizes) - sizes
  index = first[position][..., None] + chunk[..., None] * m + np.arange(m)
  return flat[index].reshape(len(position), c * m)


def _original_classes(labels, settings: MPerClassSettings):
  """``(class of each item [N], size of each class, capped [K])`` (classes sorted); raises when fewer than ``C``
  classes can be drawn."""
  m, max_per_class, classes_per_batch = settings.samples_per_class, settings.max_per_class, settings.classes_per_batch
  _, inverse, counts = np.unique(_level(labels, settings.level), return_inverse=True, return_counts=True)
  sizes = np.minimum(counts, max_per_class) if max_per_class else counts
  drawable = int(np.sum(sizes >= m))
  if drawable < classes_per_batch:
    raise ValueError(
      f"batch_size={settings.batch_size} with samples_per_class={m} needs {classes_per_batch} "
      f"classes of at least {m} images (max_per_class={max_per_class}) but the labels "
      f"have {drawable}: the original's MPerClassSampler never draws a smaller class"
    )
  return inverse.reshape(-1), sizes


def _original_order(seed: int, epoch: int, num_classes: int):
  """``(rng, the class list)``: the class order is the epoch's first draw, so counting batches needs no other."""
  rng = _epoch_rng(seed, epoch, _ORIGINAL_TAG)
  return rng, rng.permutation(num_classes)


def m_per_class_original_lengths(labels: np.ndarray, *, seed: int = 0, **settings) -> Callable[[int], int]:
  """``epoch -> its number of batches`` in :func:`m_per_class_original_batches` (it varies with the
  epoch's class order; the labels are read once); ``settings``: :class:`MPerClassSettings`'s."""
  s = MPerClassSettings(**settings)
  _, sizes = _original_classes(labels, s)

  def length(epoch: int) -> int:
    _, order = _original_order(seed, epoch, len(sizes))
    return len(_original_passes(sizes[order], s.samples_per_class, s.classes_per_batch)[0])

  return length


def m_per_class_original_num_batches(labels: np.ndarray, *, seed: int = 0, epoch: int = 0, **settings) -> int:
  """Batches in epoch ``epoch`` of :func:`m_per_class_original_batches`: its
  :func:`m_per_class_original_lengths` at ``epoch``."""
  return m_per_class_original_lengths(labels, seed=seed, **settings)(epoch)


def m_per_class_original_batches(labels: np.ndarray, *, seed: int = 0, epoch: int = 0, **settings) -> np.ndarray:
  """The global batches of one epoch of the reference's ``MPerClassSampler`` (module docstring).

  The arguments are :func:`m_per_class_batches`'s; ``level`` is the reference's ``hierarchy_level`` and
  ``max_per_class`` its ``reduce_per_class`` (each class's first ``max_per_class`` images after its shuffle).

  Returns:
    int64 ``[num_batches, batch_size]``; ``num_batches = m_per_class_original_num_batches(...)`` varies
    with the epoch.
  """
  s = MPerClassSettings(**settings)
  inverse, sizes = _original_classes(labels, s)
  rng, order = _original_order(seed, epoch, len(sizes))
  sizes = sizes[order]
  position = np.empty(len(order), np.int64)
  position[order] = np.arange(len(order))
  # Every class's items in a random order, the classes in list order; then each class's first `sizes`.
  flat = np.lexsort((rng.random(len(inverse)), position[inverse]))
  full = np.bincount(position[inverse], minlength=len(order))
  rank = np.arange(len(flat)) - np.repeat(np.cumsum(full) - full, full)
  flat = flat[rank < np.repeat(sizes, full)]
  batches = _original_gather(flat, sizes, s.samples_per_class, s.classes_per_batch)
  return rng.permuted(batches, axis=1)[rng.permutation(len(batches))]


def _nested_groups(labels: np.ndarray, inner_level: int, outer_level: int):
  """``{super_class: [member indices of each (super_class, class) pair]}``."""
  inner, outer = _level(labels, inner_level), _level(labels, outer_level)
  pair = np.stack([outer, inner], axis=1)
  uniq, inverse = np.unique(pair, axis=0, return_inverse=True)
  members = _class_members(inverse.reshape(-1))
  groups: dict[int, list[np.ndarray]] = {}
  for (sup, _), idx in zip(uniq, members):
    groups.setdefault(int(sup), []).append(idx)
  return groups


def _hierarchical_count(labels: np.ndarray, settings: HierarchicalSettings) -> int:
  k, outer_level = settings.super_classes_per_batch, settings.outer_level
  num_super = len(np.unique(_level(labels, outer_level)))
  if k > num_super:
    raise ValueError(f"super_classes_per_batch={k} but level {outer_level} has only {num_super} classes")
  return math.comb(num_super, k) * settings.batches_per_super_tuple


def hierarchical_num_batches(labels: np.ndarray, **settings) -> int:
  """Batches per epoch of :func:`hierarchical_batches`: ``comb(S, k) x batches_per_super_tuple``;
  ``settings``: :class:`HierarchicalSettings`'s."""
  return _hierarchical_count(labels, HierarchicalSettings(**settings))


def hierarchical_batches(labels: np.ndarray, *, seed: int = 0, epoch: int = 0, **settings) -> np.ndarray:
  """The global batches of one epoch of hierarchical sampling (see the module docstring).

  Args:
    labels: ``[N, L]`` integer labels.
    seed: run seed.
    epoch: epoch number.
    **settings: the fields of :class:`HierarchicalSettings` (``batch_size``, ``samples_per_class``,
      ``super_classes_per_batch``, ``batches_per_super_tuple``, ``inner_level``, ``outer_level``).

  Returns:
    int64 ``[comb(S, super_classes_per_batch) * batches_per_super_tuple, batch_size]``.
  """
  s = HierarchicalSettings(**settings)
  num_batches = _hierarchical_count(labels, s)
  samples_per_class, super_classes_per_batch = s.samples_per_class, s.super_classes_per_batch
  groups = _nested_groups(labels, s.inner_level, s.outer_level)
  classes_per_super = s.batch_size // super_classes_per_batch // samples_per_class
  rng = _epoch_rng(seed, epoch, _HIERARCHICAL_TAG)
  out = np.empty((num_batches, s.batch_size), np.int64)
  b = 0
  for combo in itertools.combinations(sorted(groups), super_classes_per_batch):
    for _ in range(s.batches_per_super_tuple):
      row = []
      for sup in combo:
        classes = groups[sup]
        order = np.concatenate([rng.permutation(len(classes)) for _ in range(-(-classes_per_super // len(classes)))])[
          :classes_per_super
        ]
        row.extend(_draw(rng, classes[c], samples_per_class) for c in order)
      out[b] = rng.permutation(np.concatenate(row))
      b += 1
  return out[rng.permutation(num_batches)]


def process_slice(batch: np.ndarray, *, process_index: int = 0, process_count: int = 1) -> np.ndarray:
  """Process ``process_index``'s contiguous share of the last axis of a global batch."""
  size = batch.shape[-1]
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"bad process_index={process_index} for process_count={process_count}")
  if size % process_count:
    raise ValueError(f"global batch size {size} is not divisible by process_count={process_count}")
  local = size // process_count
  return batch[..., process_index * local : (process_index + 1) * local]


# name -> (batches of an epoch, batches per epoch). The samplers of VARYING_LENGTH give, in place of the
# count, ``epoch -> its count`` (their second function takes ``seed``).
SAMPLERS: dict[str, tuple[Callable[..., np.ndarray], Callable[..., int | Callable[[int], int]]]] = {
  "m_per_class": (m_per_class_batches, m_per_class_num_batches),
  "m_per_class_original": (m_per_class_original_batches, m_per_class_original_lengths),
  "hierarchical": (hierarchical_batches, hierarchical_num_batches),
}
VARYING_LENGTH = frozenset({"m_per_class_original"})


class BatchSampler:
  """Maps a training step to its global batch of indices ``[batch_size]``.

  ``epoch, b = plan.epoch_of(step)`` (``divmod(step, steps_per_epoch)`` for a fixed length); the
  epoch's batches are computed once and cached (the last two epochs), so the result depends only on
  the step, never on the history of calls.

  Args:
    epoch_fn: ``epoch -> [plan.length(epoch), batch_size]``.
    plan: batches per epoch (an int), or a :class:`steps.EpochPlan` (epochs of varying length).
  """

  def __init__(self, epoch_fn: Callable[[int], np.ndarray], plan: int | steps.EpochPlan):
    if not isinstance(plan, steps.EpochPlan):
      if plan < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {plan}")
      plan = steps.EpochPlan(int(plan))
    self.epoch_fn = epoch_fn
    self.plan = plan
    self.steps_per_epoch = plan.steps_per_epoch  # None when the epochs vary in length
    self._cache: dict[int, np.ndarray] = {}

  def epoch_batches(self, epoch: int) -> np.ndarray:
    batches = self._cache.get(epoch)
    if batches is None:
      batches = self.epoch_fn(epoch)
      if batches.shape[0] != self.plan.length(epoch):
        raise RuntimeError(
          f"sampler gave {batches.shape[0]} batches in epoch {epoch}, expected {self.plan.length(epoch)}"
        )
      if len(self._cache) >= 2:
        self._cache.pop(min(self._cache))
      self._cache[epoch] = batches
    return batches

  def __call__(self, step: int) -> np.ndarray:
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    epoch, b = self.plan.epoch_of(int(step))
    return self.epoch_batches(epoch)[b]


def make_batch_sampler(
  name: str, labels: np.ndarray, *, batch_size: int, seed: int, plan: steps.EpochPlan | None = None, **kwargs
) -> BatchSampler:
  """A :class:`BatchSampler` for sampler ``name`` in :data:`SAMPLERS` (``kwargs`` go to it); ``plan``: its
  epochs' plan when the caller already has it (the same sampler, labels and seed), else it is made here.

  Raises:
    ValueError: unknown name (lists the valid ones) or bad arguments.
  """
  if name not in SAMPLERS:
    raise ValueError(f"unknown sampler {name!r}; valid: {sorted(SAMPLERS)}")
  batches_fn, count_fn = SAMPLERS[name]
  count_kwargs = {k: v for k, v in kwargs.items() if k != "epoch"}
  labels = np.asarray(labels)
  if plan is not None:
    pass
  elif name in VARYING_LENGTH:
    plan = steps.EpochPlan(
      length_fn=count_fn(labels, batch_size=batch_size, seed=seed, **count_kwargs),
      what=f"config.input.sampler={name!r} gives epochs of varying length",
    )
  else:
    plan = count_fn(labels, batch_size=batch_size, **count_kwargs)

  def epoch_fn(epoch):
    return batches_fn(labels, batch_size=batch_size, seed=seed, epoch=epoch, **kwargs)

  return BatchSampler(epoch_fn, plan)
