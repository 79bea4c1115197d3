"""Moves host batches to the devices in a background thread, a few steps ahead of the loop."""

import queue
import threading
from collections.abc import Iterator, Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding

from glimpse_jax.train import mesh as mesh_lib

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
        item = mesh_lib.shard_batch(batch, self._sharding)
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
