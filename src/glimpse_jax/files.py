"""Files of the data stores and the training workdir: one path type for local folders and object
stores (`gs://bucket/...`, through `etils.epath`), and atomic writes."""

import os
import pathlib
import posixpath
import tempfile

from etils import epath


def as_path(where) -> epath.Path:
  """`where` (a local path or an object-store URI such as `gs://bucket/run`) as an `epath.Path`,
  which reads and writes both."""
  return epath.Path(where)


def is_local(where) -> bool:
  """Whether `where` is on a local (or mounted) file system rather than an object store."""
  return '://' not in os.fspath(where)


def normpath(where) -> str:
  """`os.path.normpath` that keeps an object store's `scheme://` prefix ('runs/x/' and './runs/x'
  name one run, as do 'gs://b/x/' and 'gs://b//x')."""
  where = os.fspath(where)
  if is_local(where):
    return os.path.normpath(where)
  scheme, rest = where.split('://', 1)
  return f'{scheme}://{posixpath.normpath(rest).lstrip("/")}'


def write_atomic(path, payload: bytes | str) -> None:
  """Writes `payload` (text is UTF-8 encoded) to `path` so that a reader sees the old file or the
  new one, never half, and a failed write leaves nothing behind.

  A local file is written through a temporary file beside it (flushed to disk, then renamed). An
  object store shows an object only once its upload is complete, so there the object is written
  in one upload (object stores copy rather than rename, and have no fsync).
  """
  if isinstance(payload, str):
    payload = payload.encode()
  if not is_local(path):
    epath.Path(path).write_bytes(payload)
    return
  path = pathlib.Path(path)
  with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
    try:
      os.fchmod(tmp.fileno(), 0o644)  # as a plain open() would leave it, not mkstemp's 0o600
      tmp.write(payload)
      tmp.flush()
      os.fsync(tmp.fileno())
    except BaseException:
      os.unlink(tmp.name)
      raise
  os.replace(tmp.name, path)
