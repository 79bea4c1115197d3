"""Data parallelism: a 1-D device mesh, batches sharded on 'data', everything else replicated,
and a background thread that puts batches on the devices ahead of the loop.

The same code runs on one CPU, fake CPU devices, a GPU or a TPU host; with several processes each
one feeds its own slice of the global batch.
"""

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
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
  devices = jax.devices() if devices is None else list(devices)
  if not devices:
    raise ValueError('devices must not be empty')
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=devices)


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
  """Copies a pytree (identical on every process) to every device of `mesh`.

  Leaves are host values or arrays on this process's devices, e.g. PRNG keys. With several
  processes each one copies its own value to its own devices, with no cross-process transfer or
  check: equal values are the caller's promise (jax's `device_put` would compare them across
  processes with a collective, and rejects arrays already committed to one local device).
  """
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda leaf: _replicate_across_processes(leaf, sharding), tree)


def _replicate_across_processes(leaf: Any, sharding: NamedSharding) -> jax.Array:
  """One global replicated array from this process's copy of `leaf`."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    return jax.device_put(leaf, sharding)  # already global: a reshard over the same devices
  if not isinstance(leaf, jax.Array):
    leaf = np.asarray(leaf)
  local = [d for d in sharding.mesh.devices.flat if d.process_index == jax.process_index()]
  copies = [jax.device_put(leaf, device) for device in local]  # in mesh order, as keys need
  return jax.make_array_from_single_device_arrays(leaf.shape, sharding, copies)


def fetch(tree: Any) -> Any:
  """Copies a replicated pytree of device arrays to host numpy, reading one local copy each."""
  return jax.device_get(jax.tree.map(lambda x: x.addressable_data(0), tree))


# ---------------------------------------------------------------------------------------------
# Prefetching to the devices.
# ---------------------------------------------------------------------------------------------
_DONE = object()


class DevicePrefetcher:
  """Iterates over sharded device batches made from `host_batches` by a daemon thread.

  Exceptions raised while producing a batch are raised again by `next()` in the caller's thread.
  Use as a context manager (or call `close()`) to stop the thread.
  """

  def __init__(self, host_batches: Iterator[Mapping[str, np.ndarray]],
               sharding: NamedSharding, size: int = 2):
    if size < 1:
      raise ValueError(f'size must be >= 1, got {size}')
    self._batches = host_batches
    self._sharding = sharding
    self._queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, name='device-prefetch', daemon=True)
    self._thread.start()

  def _produce(self) -> None:
    try:
      for batch in self._batches:
        item = shard_batch(batch, self._sharding)
        if not self._put(item):
          return
    except Exception as error:  # handed over to the consumer, which raises it
      self._put(error)
      return
    self._put(_DONE)

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def __iter__(self) -> 'DevicePrefetcher':
    return self

  def __next__(self) -> dict[str, jax.Array]:
    while True:
      try:
        item = self._queue.get(timeout=0.1)  # a timeout keeps signal handlers responsive
        break
      except queue.Empty:
        if not self._thread.is_alive() and self._queue.empty():
          raise RuntimeError('the batch producer thread stopped without a result') from None
    if item is _DONE:
      raise StopIteration
    if isinstance(item, Exception):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5)

  def __enter__(self) -> 'DevicePrefetcher':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
