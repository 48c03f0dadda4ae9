"""Shared test setup: eight fake CPU devices, float64 on demand, and the golden vectors."""

import json
import os
import pathlib

# Several CPU devices for the data-parallel tests; must happen before jax is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import numpy as np
import pytest

GOLDEN_DIR = pathlib.Path(
  os.environ.get("SUPRANK_GOLDEN_DIR", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "golden")
)


def _golden_index():
  path = GOLDEN_DIR / "index.json"
  if not path.exists():
    return None
  with open(path) as f:
    return json.load(f)


_INDEX = _golden_index()


def golden_case_names(family_prefix: str = "", name_prefix: str = ""):
  """Names of the golden cases whose family / name start with the given prefixes (for parametrize)."""
  if _INDEX is None:
    return []
  return [
    c["name"] for c in _INDEX["cases"] if c["family"].startswith(family_prefix) and c["name"].startswith(name_prefix)
  ]


@pytest.fixture
def golden():
  """Returns ``load(name) -> (case_meta, arrays)``; skips when ../shared/golden is absent."""
  if _INDEX is None:
    pytest.skip(f"golden vectors not found at {GOLDEN_DIR} (set SUPRANK_GOLDEN_DIR to the shared/golden folder)")
  cases = {c["name"]: c for c in _INDEX["cases"]}

  def load(name):
    case = cases[name]
    with np.load(GOLDEN_DIR / case["file"]) as arrays:
      return case, {k: arrays[k] for k in arrays.files}

  return load


def assert_close_to_reference(actual, expected, *, rtol=1e-4, atol_scale=1e-6, name=""):
  """The golden README's float32 check: |x - ref| <= rtol |ref| + atol_scale max|ref|, per array."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
  atol = atol_scale * (np.max(np.abs(expected)) if expected.size else 0.0)
  bad = np.abs(actual - expected) > rtol * np.abs(expected) + atol
  assert not bad.any(), (
    f"{name}: {bad.sum()} of {bad.size} entries differ; worst |diff| "
    f"{np.max(np.abs(actual - expected)):.3g} (first at {np.argwhere(bad)[0].tolist()})"
  )


@pytest.fixture
def x64():
  """Runs a test with jax_enable_x64 on, restoring the previous value."""
  import jax

  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def fast_compile():
  """Turns XLA's CPU optimisations off for a module: its many small programs compile once each and the
  optimisations cost more than they save. Numerics stay float32. Use with
  ``pytestmark = pytest.mark.usefixtures("fast_compile")``."""
  import jax  # pylint: disable=g-import-not-at-top

  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)
