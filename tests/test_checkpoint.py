"""Checkpoint save/restore, integrity records, and the fallback past a damaged latest checkpoint."""

import json
import os
import shutil
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from suprank_jax.training import checkpoint


def _state(value):
  return {"step": jnp.asarray(value, jnp.int32), "params": {"w": jnp.full((3, 2), float(value))}}


def test_restores_the_latest_state_and_meta(tmp_path):
  mngr = checkpoint.CheckpointManager(str(tmp_path), max_to_keep=3)
  for step in (1, 2):
    mngr.save(step, _state(step), {"step": step})
  mngr.wait_until_finished()
  step, state, meta = mngr.restore_latest(checkpoint.abstract_like(_state(0)))
  assert step == 2 and meta == {"step": 2}
  np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 2.0))
  mngr.close()


def test_empty_directory_restores_nothing(tmp_path):
  assert checkpoint.CheckpointManager(str(tmp_path)).restore_latest(checkpoint.abstract_like(_state(0))) is None


def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path):
  mngr = checkpoint.CheckpointManager(str(tmp_path), max_to_keep=3)
  for step in (1, 2):
    mngr.save(step, _state(step), {"step": step})
  mngr.close()
  shutil.rmtree(os.path.join(str(tmp_path), "2", "state"))
  messages = []
  step, state, _ = checkpoint.CheckpointManager(str(tmp_path)).restore_latest(
    checkpoint.abstract_like(_state(0)), log=messages.append
  )
  assert step == 1 and int(state["step"]) == 1
  assert "step 2" in messages[0] and "unreadable" in messages[0]


def test_saving_an_existing_step_is_a_no_op(tmp_path):
  mngr = checkpoint.CheckpointManager(str(tmp_path))
  assert mngr.save(1, _state(1), {})
  mngr.wait_until_finished()
  assert not mngr.save(1, _state(5), {})
  mngr.close()


# ----------------------------------------------------------------------------------------------
# Integrity: a record per step, verified on restore; damaged steps moved aside; nothing non-finite saved.


def _random_state(value):
  key = jax.random.PRNGKey(value)
  return {
    "step": jnp.asarray(value, jnp.int32),
    "params": {"w": jax.random.normal(key, (256, 64)), "b": jnp.full((3,), float(value))},
  }


def _save_steps(directory, steps, state_fn=_random_state, **kwargs):
  mngr = checkpoint.CheckpointManager(str(directory), max_to_keep=5, **kwargs)
  for step in steps:
    mngr.save(step, state_fn(step), {"step": step})
  mngr.close()


def damage_bytes(step_dir, seed=0, *, every_file=False):
  """Overwrites 16 bytes in the middle of the largest array data file of a step (size unchanged), or
  of every data file with ``every_file`` (OCDBT data files may also hold superseded index nodes, so a
  single file's middle is not always live data when a save was flushed in several parts)."""
  files = [
    os.path.join(root, f)
    for root, _, names in os.walk(os.path.join(step_dir, "state"))
    for f in names
    if os.path.basename(root) == "d"
  ]
  rng = np.random.default_rng(seed)
  for path in files if every_file else [max(files, key=os.path.getsize)]:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
      f.seek(size // 2)
      f.write(rng.integers(0, 256, min(16, size - size // 2), dtype=np.uint8).tobytes())
    assert os.path.getsize(path) == size


def test_every_step_holds_an_integrity_record_of_its_arrays(tmp_path):
  _save_steps(tmp_path, (1,))
  with open(tmp_path / "1" / "integrity" / checkpoint.INTEGRITY_FILE) as f:
    record = json.load(f)
  assert record["step"] == 1 and sorted(record["arrays"]) == ["params/b", "params/w", "step"]
  w = np.asarray(_random_state(1)["params"]["w"])
  assert record["arrays"]["params/w"] == {
    "shape": [256, 64],
    "dtype": "float32",
    "crc32": f"{zlib.crc32(w.tobytes()):08x}",
  }


def test_changed_bytes_are_detected_and_the_step_is_moved_aside(tmp_path):
  _save_steps(tmp_path, (1, 2))
  damage_bytes(str(tmp_path / "2"))
  messages = []
  mngr = checkpoint.CheckpointManager(str(tmp_path))
  step, state, meta = mngr.restore_latest(checkpoint.abstract_like(_random_state(0)), log=messages.append)
  assert step == 1 and meta == {"step": 1}
  np.testing.assert_array_equal(state["params"]["w"], _random_state(1)["params"]["w"])
  assert "step 2" in messages[0] and "damaged" in messages[0] and "params/w" in messages[0]
  # Kept for inspection, out of the way of the next save of step 2.
  assert os.path.isdir(tmp_path / "damaged" / "2") and mngr.all_steps() == [1]
  assert mngr.save(2, _random_state(2), {"step": 2})
  mngr.close()
  assert (
    checkpoint.CheckpointManager(str(tmp_path)).restore_latest(
      checkpoint.abstract_like(_random_state(0)), log=messages.append
    )[0]
    == 2
  )


def test_evaluation_reads_verified_variables_only(tmp_path):
  _save_steps(tmp_path, (1, 2))
  damage_bytes(str(tmp_path / "2"))
  messages = []
  mngr = checkpoint.CheckpointManager(str(tmp_path))
  step, variables = mngr.restore_variables(log=messages.append)
  assert step == 1 and "step 2" in messages[0]
  np.testing.assert_array_equal(variables["params"]["w"], _random_state(1)["params"]["w"])
  with pytest.raises(checkpoint.NoUsableCheckpointError, match="step 2: .*params/w"):
    mngr.restore_variables(2)
  assert mngr.all_steps() == [1, 2]  # a reader moves nothing


def test_no_restorable_step_stops_listing_the_steps_and_moves_nothing(tmp_path):
  _save_steps(tmp_path, (1, 2))
  for step in (1, 2):
    damage_bytes(str(tmp_path / str(step)), seed=step)
  with pytest.raises(checkpoint.NoUsableCheckpointError, match=r"step folders \[1, 2\].*start afresh"):
    checkpoint.CheckpointManager(str(tmp_path)).restore_latest(
      checkpoint.abstract_like(_random_state(0)), log=lambda *_: None
    )
  assert sorted(os.listdir(tmp_path)) == ["1", "2"]


def test_a_state_of_another_structure_is_refused_not_moved(tmp_path):
  _save_steps(tmp_path, (1,))
  other = {"step": jnp.int32(0), "params": {"w": jnp.zeros((256, 32)), "b": jnp.zeros((3,))}}
  with pytest.raises(checkpoint.IncompatibleCheckpointError, match=r"params/w: float32\[256, 64\] in the checkpoint"):
    checkpoint.CheckpointManager(str(tmp_path)).restore_latest(checkpoint.abstract_like(other))
  assert sorted(os.listdir(tmp_path)) == ["1"]


def test_a_state_with_nan_is_never_saved(tmp_path):
  mngr = checkpoint.CheckpointManager(str(tmp_path))
  bad = _random_state(1)
  bad["params"]["b"] = bad["params"]["b"].at[1].set(jnp.nan)
  with pytest.raises(checkpoint.NonFiniteStateError, match=r"step 1 .*params/b \(1 values\).*not saved"):
    mngr.save(1, bad, {})
  mngr.close()
  assert os.listdir(tmp_path) == []


def test_a_step_without_a_record_restores_after_a_finiteness_check(tmp_path):
  # Written before integrity records existed.
  _save_steps(tmp_path, (1,))
  shutil.rmtree(tmp_path / "1" / "integrity")
  messages = []
  step, _, _ = checkpoint.CheckpointManager(str(tmp_path)).restore_latest(
    checkpoint.abstract_like(_random_state(0)), log=messages.append
  )
  assert step == 1 and "no integrity record" in messages[0]


def test_the_device_and_host_finiteness_checks_agree():
  # Accelerator arrays are checked by one jitted program, CPU arrays on their host view.
  leaves = [
    jnp.ones((3, 4)),
    jnp.asarray([1.0, jnp.nan]),
    jnp.asarray([-jnp.inf, 2.0]),
    jnp.zeros((0,)),
    jnp.asarray([1, 2], jnp.int32),
    jnp.asarray([True, False]),
    jnp.asarray([jnp.inf], jnp.bfloat16),
  ]
  on_device = [bool(v) for v in np.asarray(checkpoint._finite_flags(leaves))]
  on_host = [checkpoint._finite_on_host(np.asarray(x)) for x in leaves]
  assert on_device == on_host == [True, False, False, True, True, True, False]
