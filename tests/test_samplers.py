"""Tests of the class-aware samplers: batch composition, determinism, process slicing."""

import collections
import itertools
import math

import numpy as np
import pytest

from suprank_jax.input_pipeline import samplers


def _balanced_labels(num_classes=10, per_class=20):
  return np.repeat(np.arange(num_classes), per_class)


def _two_level_labels():
  # 4 super-classes with 3, 4, 5 and 6 classes; classes have 3..8 images.
  rows = []
  cls = 0
  for sup, n_classes in enumerate((3, 4, 5, 6)):
    for _ in range(n_classes):
      rows += [(cls, sup)] * (3 + cls % 6)
      cls += 1
  return np.array(rows)


def test_m_per_class_batches_hold_distinct_classes_with_m_images_each():
  labels = np.repeat(np.arange(12), [5, 6, 7, 8, 9, 10, 11, 12, 13, 4, 4, 30])
  batches = samplers.m_per_class_batches(labels, batch_size=24, samples_per_class=4, seed=1, epoch=0)
  for batch in batches:
    counts = collections.Counter(labels[batch].tolist())
    assert len(counts) == 6
    assert set(counts.values()) == {4}
    for c in counts:
      members = batch[labels[batch] == c]
      assert len(set(members.tolist())) == 4  # distinct images when the class has >= M
      # The M images of a class are consecutive in the batch.
    assert all(len(set(labels[batch[i : i + 4]].tolist())) == 1 for i in range(0, 24, 4))


def test_m_per_class_epoch_uses_every_image_once_when_balanced():
  labels = _balanced_labels(num_classes=10, per_class=20)
  batches = samplers.m_per_class_batches(labels, batch_size=20, samples_per_class=4, seed=0, epoch=3)
  # 5 chunks per class, 50 chunks, 5 classes per batch: 10 batches covering each image exactly once.
  assert batches.shape == (10, 20)
  np.testing.assert_array_equal(np.sort(batches.ravel()), np.arange(200))


def test_m_per_class_num_batches_is_total_chunks_over_classes_per_batch():
  labels = np.repeat(np.arange(7), [2, 9, 4, 4, 13, 1, 8])
  # chunks of M=4: max(1, n // 4) = 1, 2, 1, 1, 3, 1, 2 -> 11; 3 classes per batch -> 3 batches.
  assert samplers.m_per_class_num_batches(labels, batch_size=12, samples_per_class=4) == 11 // 3
  batches = samplers.m_per_class_batches(labels, batch_size=12, samples_per_class=4, seed=0, epoch=0)
  assert batches.shape == (3, 12)


def test_m_per_class_small_classes_are_sampled_with_replacement():
  labels = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])  # class 0 has 2 < M = 4 images
  seen_class0 = False
  for epoch in range(10):
    for batch in samplers.m_per_class_batches(labels, batch_size=8, samples_per_class=4, seed=0, epoch=epoch):
      assert all(v == 4 for v in collections.Counter(labels[batch].tolist()).values())
      members = batch[labels[batch] == 0]
      if len(members):
        seen_class0 = True
        assert set(members.tolist()) == {0, 1}  # both images, padded by repeats
  assert seen_class0


def test_m_per_class_is_deterministic_in_seed_and_epoch():
  labels = _balanced_labels(8, 13)
  kw = dict(batch_size=16, samples_per_class=4)
  a = samplers.m_per_class_batches(labels, seed=5, epoch=2, **kw)
  np.testing.assert_array_equal(a, samplers.m_per_class_batches(labels, seed=5, epoch=2, **kw))
  assert not np.array_equal(a, samplers.m_per_class_batches(labels, seed=5, epoch=3, **kw))
  assert not np.array_equal(a, samplers.m_per_class_batches(labels, seed=6, epoch=2, **kw))


def test_m_per_class_rejects_impossible_batches():
  labels = _balanced_labels(3, 10)
  with pytest.raises(ValueError, match="multiple of samples_per_class"):
    samplers.m_per_class_batches(labels, batch_size=10, samples_per_class=4)
  with pytest.raises(ValueError, match="only 3"):
    samplers.m_per_class_batches(labels, batch_size=16, samples_per_class=4)


def test_m_per_class_uses_the_requested_level():
  labels = np.stack([np.arange(40), np.repeat(np.arange(4), 10)], axis=1)  # level 0: singletons
  batches = samplers.m_per_class_batches(labels, batch_size=8, samples_per_class=4, seed=0, level=1)
  for batch in batches:
    assert sorted(collections.Counter(labels[batch, 1].tolist()).values()) == [4, 4]


def test_hierarchical_batches_take_k_super_classes_and_m_per_class():
  labels = _two_level_labels()
  kw = dict(batch_size=24, samples_per_class=3, super_classes_per_batch=2, batches_per_super_tuple=3)
  batches = samplers.hierarchical_batches(labels, seed=0, epoch=0, **kw)
  assert batches.shape == (math.comb(4, 2) * 3, 24)
  assert samplers.hierarchical_num_batches(labels, **kw) == len(batches)
  tuples = collections.Counter()
  for batch in batches:
    sup_counts = collections.Counter(labels[batch, 1].tolist())
    assert sorted(sup_counts.values()) == [12, 12]
    tuples[tuple(sorted(sup_counts))] += 1
    class_counts = collections.Counter(labels[batch, 0].tolist())
    # 12 slots per super-class = 4 classes x 3; super-class 0 has only 3 classes, so one repeats.
    assert all(v % 3 == 0 for v in class_counts.values())
    for sup in sup_counts:
      classes = {c for c in class_counts if labels[labels[:, 0] == c, 1][0] == sup}
      assert len(classes) == min(4, [3, 4, 5, 6][sup])
  assert tuples == dict.fromkeys(itertools.combinations(range(4), 2), 3)


def test_hierarchical_is_deterministic_and_changes_with_epoch():
  labels = _two_level_labels()
  kw = dict(batch_size=12, samples_per_class=3, super_classes_per_batch=2, batches_per_super_tuple=2)
  a = samplers.hierarchical_batches(labels, seed=1, epoch=0, **kw)
  np.testing.assert_array_equal(a, samplers.hierarchical_batches(labels, seed=1, epoch=0, **kw))
  assert not np.array_equal(a, samplers.hierarchical_batches(labels, seed=1, epoch=1, **kw))


def test_hierarchical_rejects_bad_arguments():
  labels = _two_level_labels()
  with pytest.raises(ValueError, match="multiple"):
    samplers.hierarchical_batches(labels, batch_size=10, samples_per_class=3)
  with pytest.raises(ValueError, match="only 4"):
    samplers.hierarchical_batches(labels, batch_size=30, samples_per_class=3, super_classes_per_batch=5)


@pytest.mark.parametrize("process_count", [1, 2, 3, 6])
def test_process_slices_concatenate_to_the_global_batch(process_count):
  batch = np.arange(100, 112)
  parts = [samplers.process_slice(batch, process_index=p, process_count=process_count) for p in range(process_count)]
  assert all(len(p) == 12 // process_count for p in parts)
  np.testing.assert_array_equal(np.concatenate(parts), batch)


def test_process_slice_rejects_an_indivisible_batch():
  with pytest.raises(ValueError, match="divisible"):
    samplers.process_slice(np.arange(10), process_index=0, process_count=3)


def test_batch_sampler_maps_steps_to_epoch_batches_in_any_call_order():
  labels = _balanced_labels(6, 9)
  sampler = samplers.make_batch_sampler("m_per_class", labels, batch_size=12, seed=4, samples_per_class=3)
  steps = sampler.steps_per_epoch
  assert steps == 6 * 3 // 4
  expected = {
    s: samplers.m_per_class_batches(labels, batch_size=12, samples_per_class=3, seed=4, epoch=s // steps)[s % steps]
    for s in range(3 * steps)
  }
  for s in [2 * steps + 1, 0, steps, 3 * steps - 1, 1, steps + 2]:
    np.testing.assert_array_equal(sampler(s), expected[s])


def test_make_batch_sampler_lists_valid_names():
  with pytest.raises(ValueError, match="hierarchical.*m_per_class"):
    samplers.make_batch_sampler("nope", np.zeros(4, int), batch_size=4, seed=0)


def test_m_per_class_cap_uses_a_fresh_subset_of_each_class_per_epoch():
  counts = [30, 12, 9, 8, 8, 5, 4, 3, 20]
  labels = np.repeat(np.arange(len(counts)), counts)
  cap, m, classes_per_batch = 8, 4, 3
  # The reference's reduce_per_class keeps the first `cap` images of each shuffled class: chunks of M
  # from min(n, cap) images (a class with fewer than M gives one chunk), C classes per batch.
  steps = sum(max(1, min(n, cap) // m) for n in counts) // classes_per_batch
  kw = dict(batch_size=m * classes_per_batch, samples_per_class=m, max_per_class=cap)
  assert samplers.m_per_class_num_batches(labels, **kw) == steps == 5
  uncapped = sum(max(1, n // m) for n in counts) // classes_per_batch
  assert samplers.m_per_class_num_batches(labels, batch_size=12, samples_per_class=4) == uncapped == 8
  subsets = collections.defaultdict(set)
  for epoch in range(6):
    batches = samplers.m_per_class_batches(labels, seed=2, epoch=epoch, **kw)
    assert batches.shape == (steps, 12)
    for batch in batches:
      assert all(len(set(labels[batch[i : i + m]].tolist())) == 1 for i in range(0, 12, m))
    used = batches.ravel()
    for c in range(len(counts)):
      images = frozenset(used[labels[used] == c].tolist())
      assert len(images) <= cap, (epoch, c)
      subsets[c].add(images)
  assert len(subsets[0]) > 1 and len(subsets[8]) > 1  # another subset of the large classes each epoch
  sampler = samplers.make_batch_sampler("m_per_class", labels, seed=2, **kw)
  assert sampler.steps_per_epoch == steps


def test_m_per_class_cap_below_m_is_rejected():
  labels = _balanced_labels(4, 10)
  with pytest.raises(ValueError, match="max_per_class=3 must be 0 .* or >= samples_per_class=4"):
    samplers.m_per_class_num_batches(labels, batch_size=8, samples_per_class=4, max_per_class=3)
