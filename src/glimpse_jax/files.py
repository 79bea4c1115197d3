"""Atomic file writes, shared by the data stores and the training workdir."""

import os
import pathlib
import tempfile


def write_atomic(path, payload: bytes | str) -> None:
  """Writes `payload` (text is UTF-8 encoded) to `path` through a temporary file beside it, so a
  reader sees the old file or the new one, never half, and a failed write leaves nothing behind."""
  path = pathlib.Path(path)
  if isinstance(payload, str):
    payload = payload.encode()
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
