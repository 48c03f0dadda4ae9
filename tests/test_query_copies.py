"""Tests of find_query_copies on generated galleries whose copies of the queries sit under other names."""

import hashlib
import os

import numpy as np
import pytest

from suprank_jax.input_pipeline import query_copies, sources
from tests import miniatures


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return path


def _jpegs(n, seed):
  rng = np.random.default_rng(seed)
  return [miniatures.random_jpeg(rng) for _ in range(n)]


def _source(name, paths=None, records=None, images=None):
  n = len(paths if paths is not None else records if records is not None else images)
  return sources.Source(
    name=name, labels=np.zeros((n, 1), np.int32), level_names=("x",), paths=paths, records=records, images=images
  )


def test_copies_are_found_by_content_under_other_names_and_by_path(tmp_path):
  queries = _jpegs(5, seed=0)
  queries[4] = queries[1]  # two identical queries: each needs its own copy
  query_paths = [_write(str(tmp_path / "query" / f"{q}.jpg"), data) for q, data in enumerate(queries)]
  # Gallery: 6 distractors and the copies, in another order under other names; query 3's own file is
  # in the gallery under another spelling of its path, which wins over an identical file ('same').
  distractors = _jpegs(6, seed=1)
  layout = ["d0", ("copy", 2), "d1", ("same", 3), ("copy", 1), "d2", "d3", ("copy", 0), ("copy", 4), "d4", "d5"]
  gallery_paths, expected = [], {}
  for g, entry in enumerate(layout):
    if isinstance(entry, tuple):
      if entry[0] == "copy":
        expected[entry[1]] = g
      gallery_paths.append(_write(str(tmp_path / "gallery" / f"g{g:03d}.jpg"), queries[entry[1]]))
    else:
      gallery_paths.append(_write(str(tmp_path / "gallery" / f"g{g:03d}.jpg"), distractors[int(entry[1])]))
  gallery_paths.append(str(tmp_path / "gallery" / ".." / "query" / "3.jpg"))
  expected[3] = len(gallery_paths) - 1
  copies = query_copies.find_query_copies(_source("q", paths=query_paths), _source("g", paths=gallery_paths))
  assert copies.dtype == np.int64
  np.testing.assert_array_equal(copies, [expected[q] for q in range(5)])
  # Identical queries 1 and 4 take the two copies in query order: the lower gallery index first.
  assert copies[1] < copies[4]


def test_a_query_without_a_copy_is_reported_with_the_rule(tmp_path):
  queries = _jpegs(4, seed=2)
  query_paths = [_write(str(tmp_path / "q" / f"query_{q}.jpg"), data) for q, data in enumerate(queries)]
  gallery_paths = [_write(str(tmp_path / "g" / f"{g}.jpg"), queries[q]) for g, q in enumerate((3, 0))]
  with pytest.raises(
    ValueError,
    match=r"2 of 4 queries of q have no copy in g \(e.g. .*query_1.jpg, .*query_2.jpg\)"
    r".*must hold a copy of every query",
  ):
    query_copies.find_query_copies(_source("q", paths=query_paths), _source("g", paths=gallery_paths))
  # Each gallery item is the copy of one query only: two identical queries need two copies.
  twice = [query_paths[0], query_paths[0]]
  with pytest.raises(ValueError, match="1 of 2 queries"):
    query_copies.find_query_copies(_source("q", paths=twice), _source("g", paths=gallery_paths))


def test_in_memory_and_record_sources_match_by_content(tmp_path):
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
  gallery = np.concatenate([rng.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8), images[[2, 0, 3, 1]]])
  np.testing.assert_array_equal(
    query_copies.find_query_copies(_source("q", images=images), _source("g", images=gallery)), [4, 6, 3, 5]
  )
  # Same bytes in another shape are not a copy.
  flat = images.reshape(4, 6, 5, 3)
  with pytest.raises(ValueError, match="4 of 4 queries"):
    query_copies.find_query_copies(_source("q", images=flat), _source("g", images=gallery))
  # A record holding a file's bytes is a copy of that file.
  data = _jpegs(3, seed=4)
  paths = [_write(str(tmp_path / f"{k}.jpg"), d) for k, d in enumerate(data)]
  np.testing.assert_array_equal(
    query_copies.find_query_copies(_source("q", paths=paths), _source("g", records=[data[2], b"x", data[0], data[1]])),
    [2, 3, 0],
  )


def test_files_are_hashed_in_chunks_and_progress_is_logged(tmp_path, monkeypatch):
  big = os.urandom(3 * (1 << 20) + 17)  # larger than the 1 MiB read size
  path = _write(str(tmp_path / "big.bin"), big)
  assert query_copies.content_digest(_source("b", paths=[path]), 0) == hashlib.md5(big).hexdigest()
  monkeypatch.setattr(query_copies, "_PROGRESS_EVERY", 2)
  data = _jpegs(4, seed=5)
  paths = [_write(str(tmp_path / "q" / f"{k}.jpg"), d) for k, d in enumerate(data)]
  gallery = [_write(str(tmp_path / "g" / f"{k}.jpg"), d) for k, d in enumerate(data[::-1])]
  messages = []
  copies = query_copies.find_query_copies(_source("q", paths=paths), _source("g", paths=gallery), log=messages.append)
  np.testing.assert_array_equal(copies, [3, 2, 1, 0])
  assert "hashed 2/4 queries of q" in messages[0] and any("gallery items of g" in m for m in messages)


def test_a_missing_file_is_reported_with_its_path(tmp_path):
  path = _write(str(tmp_path / "q.jpg"), b"abc")
  with pytest.raises(sources.ImageLoadError, match="nowhere.jpg"):
    query_copies.find_query_copies(_source("q", paths=[path]), _source("g", paths=[str(tmp_path / "nowhere.jpg")]))
