"""The original's M-per-class epoch (``samplers.m_per_class_original_*``): the passes against a
transliteration of the reference's loop, the epoch's properties, its step -> batch map with epochs of
varying length, and its config checks."""

import collections

import numpy as np
import pytest

from suprank_jax.configs import common
from suprank_jax.configs.groups import GROUPS
from suprank_jax.input_pipeline import datasets, pipeline, samplers


def _reference_passes(order, members, samples_per_class, batch_size):
  """``MPerClassSampler.reshuffle`` of elias-ramzi/SupRank (``suprank/datasets/samplers/m_per_class_sampler.py``)
  after its shuffles, line for line: ``order`` is its shuffled ``classes``, ``members`` its shuffled
  ``image_dict`` (without the final shuffles of each batch and of the batch list)."""
  image_dict = {c: list(members[c]) for c in order}
  total_batches, batch, finished = [], [], 0
  while finished == 0:
    for sub_class in order:
      if len(image_dict[sub_class]) >= samples_per_class and len(batch) < batch_size / samples_per_class:
        batch.append(image_dict[sub_class][:samples_per_class])
        image_dict[sub_class] = image_dict[sub_class][samples_per_class:]
    if len(batch) == batch_size / samples_per_class:
      total_batches.append([item for sub in batch for item in sub])
      batch = []
    else:
      finished = 1
  return total_batches


def _random_case(seed):
  rng = np.random.default_rng(seed)
  num_classes, m, c = int(rng.integers(1, 40)), int(rng.integers(1, 6)), int(rng.integers(1, 9))
  sizes = rng.integers(0, 30, num_classes)
  items = rng.permutation(int(sizes.sum()))
  members = np.split(items, np.cumsum(sizes)[:-1])  # each class's images in a shuffled order
  return rng.permutation(num_classes), members, m, c


@pytest.mark.parametrize("seed", range(60))
def test_original_epoch_makes_the_batches_of_the_reference_loop(seed):
  order, members, m, c = _random_case(seed)
  expected = _reference_passes(order, members, m, m * c)
  got = samplers.original_epoch(order, members, samples_per_class=m, classes_per_batch=c)
  assert got.shape == (len(expected), m * c)
  for b, (want, have) in enumerate(zip(expected, got)):
    assert sorted(want) == sorted(have.tolist()), f"batch {b}"
    assert want == have.tolist(), f"batch {b}: the classes in list order, each its next M images"


def test_original_epoch_on_cub_sized_classes_takes_the_first_classes_until_they_run_out():
  # 100 classes of 41..60 images (CUB-200-2011 train), batch 256 = 64 classes x 4: the first 64 classes
  # of the list fill every pass until the smallest of them runs out (10 chunks: 41 // 4).
  sizes = np.array([41 + (7 * k) % 20 for k in range(100)])
  members = np.split(np.arange(sizes.sum()), np.cumsum(sizes)[:-1])
  order = np.arange(100)
  got = samplers.original_epoch(order, members, samples_per_class=4, classes_per_batch=64)
  assert len(got) == len(_reference_passes(order, members, 4, 256))
  first_run = min(sizes[:64] // 4)
  for b in range(first_run):
    np.testing.assert_array_equal(got[b].reshape(64, 4), [members[c][4 * b : 4 * b + 4] for c in range(64)])


def _uneven_labels(seed=0, num_classes=60):
  rng = np.random.default_rng(seed)
  sizes = rng.integers(1, 40, num_classes)  # some classes below M = 4
  return np.repeat(np.arange(num_classes), sizes), sizes


@pytest.mark.parametrize("max_per_class", [0, 8])
def test_every_batch_has_c_classes_of_m_distinct_unused_images_and_small_classes_never_appear(max_per_class):
  labels, sizes = _uneven_labels()
  m, c = 4, 6
  kept = np.minimum(sizes, max_per_class) if max_per_class else sizes
  for epoch in range(3):
    batches = samplers.m_per_class_original_batches(
      labels, batch_size=m * c, samples_per_class=m, seed=5, epoch=epoch, max_per_class=max_per_class
    )
    assert batches.shape == (
      samplers.m_per_class_original_num_batches(
        labels, batch_size=m * c, samples_per_class=m, seed=5, epoch=epoch, max_per_class=max_per_class
      ),
      m * c,
    )
    assert len(np.unique(batches)) == batches.size  # no image twice in an epoch
    for batch in batches:
      counts = collections.Counter(labels[batch].tolist())
      assert len(counts) == c and set(counts.values()) == {m}
    used = collections.Counter(labels[batches.ravel()].tolist())
    assert all(kept[k] >= m and n <= kept[k] for k, n in used.items())  # classes under M never drawn
    # The epoch ends at the first pass that cannot fill a batch: fewer than C classes keep M unused images.
    left = {k: kept[k] - used.get(k, 0) for k in range(len(kept))}
    assert sum(v >= m for v in left.values()) < c


def test_batch_counts_vary_from_epoch_to_epoch_and_each_epoch_is_deterministic():
  labels, _ = _uneven_labels(1)
  kw = dict(batch_size=16, samples_per_class=4, seed=3)
  counts = [samplers.m_per_class_original_num_batches(labels, epoch=e, **kw) for e in range(8)]
  assert len(set(counts)) > 1, counts
  lengths = samplers.m_per_class_original_lengths(labels, **kw)
  assert [lengths(e) for e in reversed(range(8))] == counts[::-1]
  np.testing.assert_array_equal(
    samplers.m_per_class_original_batches(labels, epoch=2, **kw),
    samplers.m_per_class_original_batches(labels, epoch=2, **kw),
  )
  assert not np.array_equal(
    samplers.m_per_class_original_batches(labels, epoch=2, **kw)[:1],
    samplers.m_per_class_original_batches(labels, epoch=3, **kw)[:1],
  )


def test_the_cap_keeps_a_fresh_subset_of_each_class_per_epoch():
  labels = np.repeat(np.arange(6), [30, 20, 12, 9, 8, 5])
  subsets = collections.defaultdict(set)
  for epoch in range(6):
    batches = samplers.m_per_class_original_batches(
      labels, batch_size=8, samples_per_class=4, seed=0, epoch=epoch, max_per_class=8
    )
    used = batches.ravel()
    for k in range(6):
      images = frozenset(used[labels[used] == k].tolist())
      assert len(images) <= 8
      subsets[k].add(images)
  assert len(subsets[0]) > 1


def test_too_few_classes_of_m_images_is_an_error_naming_the_sampler_rule():
  labels = np.repeat(np.arange(5), [4, 4, 3, 2, 9])
  with pytest.raises(
    ValueError,
    match="needs 4 classes of at least 4 images .* have 3: the original's MPerClassSampler never draws a smaller class",
  ):
    samplers.m_per_class_original_num_batches(labels, batch_size=16, samples_per_class=4)
  with pytest.raises(ValueError, match="max_per_class=3 must be 0"):
    samplers.m_per_class_original_batches(labels, batch_size=8, samples_per_class=4, max_per_class=3)


def test_steps_map_to_epochs_of_varying_length_whatever_the_order_of_the_calls():
  labels, _ = _uneven_labels(2)
  kw = dict(batch_size=16, samples_per_class=4)
  epochs = [samplers.m_per_class_original_batches(labels, seed=7, epoch=e, **kw) for e in range(4)]
  expected = np.concatenate(epochs)  # step s is row s of the epochs laid end to end
  assert len({len(e) for e in epochs}) > 1
  sampler = samplers.make_batch_sampler("m_per_class_original", labels, seed=7, **kw)
  assert sampler.steps_per_epoch is None and sampler.plan.varies
  steps = np.random.default_rng(0).permutation(len(expected))  # a resumed run asks for any step first
  for s in steps:
    np.testing.assert_array_equal(sampler(s), expected[s])
  assert [sampler.plan.start(e) for e in range(5)] == [0, *np.cumsum([len(e) for e in epochs])]


def test_input_config_takes_the_original_sampler_and_its_cap():
  config = pipeline.default_config()
  config.sampler = "m_per_class_original"
  config.max_per_class = 24
  pipeline.check_input_config(config)
  config.batches_per_super_tuple = 2
  with pytest.raises(ValueError, match="config.input.batches_per_super_tuple=2 is not read here"):
    pipeline.check_input_config(config)
  config.batches_per_super_tuple = 4
  source = datasets.get_source(config, "train")
  plan = pipeline.epoch_plan(config, source, seed=0)
  assert plan.varies and plan.start(1) == samplers.m_per_class_original_num_batches(
    source.labels, batch_size=120, samples_per_class=12, max_per_class=24, seed=0, epoch=0
  )
  with pytest.raises(ValueError, match="m_per_class_original.*varying length.*epoch_plan"):
    pipeline.steps_per_epoch(config, source)


# The ``sampler._target_`` of SupRank's suprank/config/dataset/<name>.yaml (single process: its
# ``${if:${distributed},DistributedMPerClassSampler,...}`` picks the second); also the resolved
# /work/shared/original_configs/*.txt.
_ORIGINAL_SAMPLERS = {
  "sop": "hierarchical",  # HierarchicalSampler
  **dict.fromkeys(
    (
      "cub",
      "cub_big",
      "cars",
      "inat_base",
      "inat_full",
      "dyml_vehicle",
      "dyml_animal",
      "dyml_product",
      "gldv2",
      "gldv2_hier",
      "sfm120k",
    ),
    "m_per_class_original",
  ),
}


@pytest.mark.parametrize("name,sampler", sorted(_ORIGINAL_SAMPLERS.items()))
def test_each_data_set_group_samples_as_its_original_file(name, sampler):
  config = common.base_config()
  GROUPS["dataset"][name](config)
  assert config.input.sampler == sampler
  assert config.input.max_per_class == (8 if name.startswith("gldv2") else 0)  # reduce_per_class: 8
