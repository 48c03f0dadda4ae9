"""Checkpoint save/restore, and the fallback past a damaged latest checkpoint."""

import os
import shutil

import jax.numpy as jnp
import numpy as np

from suprank_jax import checkpoint


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
      checkpoint.abstract_like(_state(0)), log=messages.append)
  assert step == 1 and int(state["step"]) == 1
  assert "step 2" in messages[0] and "unreadable" in messages[0]


def test_saving_an_existing_step_is_a_no_op(tmp_path):
  mngr = checkpoint.CheckpointManager(str(tmp_path))
  assert mngr.save(1, _state(1), {})
  mngr.wait_until_finished()
  assert not mngr.save(1, _state(5), {})
  mngr.close()
