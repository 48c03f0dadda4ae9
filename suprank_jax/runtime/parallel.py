"""Data parallelism with ``jax.jit`` over a one-axis device mesh.

The batch is sharded along the mesh axis ``'data'`` and the state is replicated. Under jit the
loss sees the *global* batch (XLA inserts the gathers), so a rank loss ranks every item of the global
batch against every other, whatever the number of devices or processes. Each process loads only its
slice of the global batch; :func:`global_batch` assembles the global array
(``jax.make_array_from_process_local_data``; ECOSYSTEM.md §6).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from suprank_jax.input_pipeline import transforms

__all__ = ["make_mesh", "data_sharding", "replicated", "global_batch", "check_batch_size"]

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A one-axis mesh ``('data',)`` over all devices (Auto axis type: plain GSPMD)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh, *, name: str = "config.input.global_batch_size"):
  """Raises a ValueError unless the global batch splits evenly over devices and processes."""
  if global_batch_size % mesh.size:
    raise ValueError(f"{name}={global_batch_size} must be divisible by the number of devices ({mesh.size})")
  if global_batch_size % jax.process_count():
    raise ValueError(f"{name}={global_batch_size} must be divisible by the number of processes ({jax.process_count()})")


@functools.partial(jax.jit, static_argnames=("mode",))
def _normalize_on_devices(images, mode):
  return transforms.normalize(images, mode, xp=jnp)


def global_batch(local_batch, mesh: Mesh, *, normalization: str | None = None):
  """Assembles per-process numpy slices into global arrays sharded on ``'data'``.

  With ``normalization`` (``config.input.normalization``), uint8 ``images`` (from an iterator with
  ``uint8_images=True``) are normalised to float32 on the devices, where they are, as the host
  would have (``transforms.normalize``): the host sends a quarter of the bytes.
  """
  sharding = data_sharding(mesh)
  batch = jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)
  if normalization is not None and batch["images"].dtype == jnp.uint8:
    batch = dict(batch, images=_normalize_on_devices(batch["images"], normalization))
  return batch
