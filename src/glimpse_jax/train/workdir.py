"""One run per workdir: an exclusive lock held for the life of the run (a `flock` on a local
workdir, a renewed lease on an object store)."""

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid

import jax
from absl import logging

from glimpse_jax import files

LOCK_FILE = '.lock'


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir."""


class WorkdirLock:
  """An exclusive `flock` on `<workdir>/.lock` holding this process's pid.

  The kernel drops the lock when its process ends, however it ends (`kill -9` included), so a
  stale lock never blocks a restart.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: int | None = None

  def acquire(self) -> 'WorkdirLock':
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      holder = os.pread(fd, 64, 0).decode(errors='replace').strip() or 'unknown'
      os.close(fd)
      if error.errno in (errno.EAGAIN, errno.EACCES):
        raise WorkdirBusyError(
            f'{os.path.dirname(self.path)!r} is in use by another run (pid {holder}); wait for '
            f'it to finish or stop it, or choose another workdir') from None
      raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> 'WorkdirLock':
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()


class LeaseLock:
  """A lease in `<workdir>/.lock` on an object store, which has no `flock`: the object names its
  holder (host, pid, a token) and an expiry time, and the holder renews it every
  `lease_seconds / 4` from a background thread.

  A run finds the workdir busy while an unexpired lease of another holder is there; a lease left
  by a dead process expires after `lease_seconds` (at once when it names a process of this host
  that is gone). Best effort: the lease is read back after `settle_seconds`, so of two runs
  starting together the one that wrote last keeps it, but object stores offer no compare-and-swap
  here, so two starts further apart than the store's latency but closer than that could both go.
  """

  lease_seconds = 120.0
  settle_seconds = 1.0

  def __init__(self, workdir: str):
    self.path = files.as_path(workdir) / LOCK_FILE
    self._token = uuid.uuid4().hex
    self._stop = threading.Event()
    self._renewer: threading.Thread | None = None

  def _holder(self) -> dict | None:
    try:
      return json.loads(self.path.read_text())
    except (OSError, ValueError):  # absent, or not a lease
      return None

  def _write(self) -> None:
    files.write_atomic(self.path, json.dumps({
        'host': socket.gethostname(), 'pid': os.getpid(), 'token': self._token,
        'expires': time.time() + self.lease_seconds}) + '\n')

  def acquire(self) -> 'LeaseLock':
    self.path.parent.mkdir(parents=True, exist_ok=True)
    holder = self._holder()
    if holder is not None and _live(holder):
      raise _busy(self.path.parent, holder)
    self._write()
    time.sleep(self.settle_seconds)
    holder = self._holder()
    if holder is None or holder.get('token') != self._token:
      raise _busy(self.path.parent, holder or {})
    self._renewer = threading.Thread(target=self._renew, daemon=True,
                                     name=f'lease on {self.path.parent}')
    self._renewer.start()
    return self

  def _renew(self) -> None:
    while not self._stop.wait(self.lease_seconds / 4):
      try:
        holder = self._holder()
        if holder is not None and holder.get('token') != self._token:
          logging.warning('%s: the lease was taken by pid %s on %s (this run stalled past its '
                          'expiry?); no longer renewing it', self.path, holder.get('pid'),
                          holder.get('host'))
          return
        self._write()
      except Exception:  # pylint: disable=broad-except
        pass  # a transient store error: the next renewal may succeed, the lease is 4 periods

  def release(self) -> None:
    if self._renewer is None:
      return
    self._stop.set()
    self._renewer.join()
    self._renewer = None
    holder = self._holder()
    if holder is not None and holder.get('token') == self._token:
      self.path.unlink(missing_ok=True)

  def __enter__(self) -> 'LeaseLock':
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()


def _live(holder: dict) -> bool:
  """Whether a lease read from a lock object still holds."""
  if holder.get('host') == socket.gethostname() and isinstance(holder.get('pid'), int):
    try:
      os.kill(holder['pid'], 0)
    except ProcessLookupError:
      return False  # its process on this host is gone
    except PermissionError:
      pass
  return float(holder.get('expires', 0)) > time.time()


def _busy(workdir, holder: dict) -> WorkdirBusyError:
  return WorkdirBusyError(
      f'{os.fspath(workdir)!r} is in use by another run (pid {holder.get("pid", "unknown")} on '
      f'{holder.get("host", "an unknown host")}); wait for it to finish or stop it, or choose '
      f'another workdir (a lease left by a process that died expires within '
      f'{LeaseLock.lease_seconds:.0f} s)')


def lock_workdir(workdir: str) -> contextlib.AbstractContextManager:
  """The workdir's lock, held by the first process only (all processes of a run share it)."""
  if jax.process_index() != 0:
    return contextlib.nullcontext()
  if not files.is_local(workdir):
    return LeaseLock(workdir)
  return WorkdirLock(workdir)
