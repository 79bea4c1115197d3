"""The IDX file format of MNIST and Fashion-MNIST: header parsing and gzip reading.

An IDX file starts with a big-endian magic number `0x0000TTDD` (TT the element type, DD the
number of dimensions), then DD big-endian uint32 sizes, then the elements in row-major order.
MNIST uses unsigned bytes only: magic 2051 (`0x0803`) for images `[N, 28, 28]` and 2049
(`0x0801`) for labels `[N]`.
"""

import gzip
import zlib

import numpy as np

IMAGES_MAGIC = 2051  # uint8, 3 dimensions
LABELS_MAGIC = 2049  # uint8, 1 dimension


def parse_idx(raw, expected_magic, name="<bytes>"):
  """Decodes an uncompressed IDX file into a uint8 array.

  Args:
    raw: the file's bytes.
    expected_magic: `IMAGES_MAGIC` or `LABELS_MAGIC`.
    name: how to name the file in error messages.

  Returns:
    A read-only uint8 array with the header's dimensions.

  Raises:
    ValueError: on a wrong magic number, a header or body shorter than the header announces,
      or trailing bytes.
  """
  if expected_magic not in (IMAGES_MAGIC, LABELS_MAGIC):
    raise ValueError(
        f"expected_magic must be {IMAGES_MAGIC} or {LABELS_MAGIC}, got {expected_magic}")
  if len(raw) < 4:
    raise ValueError(f"{name}: truncated IDX header ({len(raw)} bytes)")
  magic = int.from_bytes(raw[:4], "big")
  if magic != expected_magic:
    raise ValueError(f"{name}: bad IDX magic number {magic}, expected {expected_magic}")
  ndim = magic & 0xFF
  header_bytes = 4 + 4 * ndim
  if len(raw) < header_bytes:
    raise ValueError(
        f"{name}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header_bytes})")
  shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
  body_bytes = int(np.prod(shape, dtype=np.int64))
  if len(raw) - header_bytes < body_bytes:
    raise ValueError(
        f"{name}: truncated IDX body: header says {shape} = {body_bytes} bytes, "
        f"found {len(raw) - header_bytes}")
  if len(raw) - header_bytes > body_bytes:
    raise ValueError(
        f"{name}: {len(raw) - header_bytes - body_bytes} trailing bytes after the IDX body")
  return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(shape)


def parse_idx_gz(compressed, expected_magic, name="<bytes>"):
  """Decodes a gzip-compressed IDX file (see `parse_idx`); a damaged gzip stream raises ValueError."""
  try:
    raw = gzip.decompress(compressed)
  except (EOFError, OSError, zlib.error) as e:
    raise ValueError(f"{name}: not a complete gzip file ({e})") from e
  return parse_idx(raw, expected_magic, name)
