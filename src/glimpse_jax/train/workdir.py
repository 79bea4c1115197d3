"""One run per workdir: an exclusive lock held for the life of the run."""

import contextlib
import errno
import fcntl
import os

import jax

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


def lock_workdir(workdir: str) -> contextlib.AbstractContextManager:
  """The workdir's lock, held by the first process only (all processes of a run share it)."""
  if jax.process_index() != 0:
    return contextlib.nullcontext()
  return WorkdirLock(workdir)
