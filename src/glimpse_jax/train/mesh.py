"""Data parallelism: a 1-D device mesh, batches sharded on 'data', everything else replicated.

The same code runs on one CPU, fake CPU devices, a GPU or a TPU host; with several processes each
one feeds its own slice of the global batch.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh over `devices` (default: all devices of all processes) with the single axis 'data'.

  The axis is `Auto`: XLA propagates the batch sharding through the experiment's code, which
  therefore needs no sharding annotations (an `Explicit` axis would reject e.g. a `vmap` over
  a sharded and an unsharded input).
  """
  if devices is not None and not list(devices):
    raise ValueError('devices must not be empty')
  count = jax.device_count() if devices is None else len(list(devices))
  return jax.make_mesh((count,), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=None if devices is None else list(devices))


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of the train state, keys and metrics: a full copy on every device."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """The sharding of batch arrays: the leading (example) axis split over 'data'."""
  return NamedSharding(mesh, P(DATA_AXIS))


def shard_batch(batch: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Puts this process's slice of a batch on its devices as one global array per field."""
  if jax.process_count() == 1:  # one batched transfer: about half the host time per batch
    return jax.device_put(dict(batch), sharding)
  return {name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for name, value in batch.items()}


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Copies a pytree (identical on every process) to every device of `mesh`."""
  return jax.device_put(tree, replicated(mesh))


def fetch(tree: Any) -> Any:
  """Copies a replicated pytree of device arrays to host numpy, reading one local copy each."""
  return jax.device_get(jax.tree.map(lambda x: x.addressable_data(0), tree))
