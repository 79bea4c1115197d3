"""CIFAR-10 from its official python archive: checksum, download and decoding.

The archive `cifar-10-python.tar.gz` lives in `<data_dir>/cifar10/` (`data_dir` resolved as for
MNIST, see `sources.resolve_data_dir`) and is checked against the md5 its authors published before
anything in it is read. It holds a folder `cifar-10-batches-py/` of pickled dicts: `data_batch_1`
to `data_batch_5` (the train split, in that order) and `test_batch`, each with b"data", uint8
`[10000, 3072]` channel-major (1024 red values, then green, then blue, each 32x32 row-major), and
b"labels", 10000 ints in [0, 10).

Decoded arrays stay in memory, so each process reads, verifies and decodes the archive once
(about 170 MB; both splits come out of one pass over it). There is no decoded copy on disk: it
would need its own checksum, and reading the archive takes seconds, not minutes.
"""

import functools
import io
import pickle
import tarfile
import zlib

import numpy as np

from glimpse_jax.data import sources

SOURCE = "cifar10"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # as published on the CIFAR page
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
IMAGE_SIZE = 32
CHANNELS = 3
NUM_CLASSES = 10

_TOP = "cifar-10-batches-py"
_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def archive_path(data_dir=None):
  """Where the archive belongs: `<data_dir>/cifar10/cifar-10-python.tar.gz`."""
  return sources.resolve_data_dir(data_dir) / SOURCE / ARCHIVE_NAME


def load_cifar10(split, data_dir=None, *, download=True, mirrors=None):
  """Loads one split of CIFAR-10, verified against the archive's published md5 (`ARCHIVE_MD5`).

  Args:
    split: 'train' (50,000 images) or 'test' (10,000).
    data_dir: folder holding `cifar10/`; None resolves as `sources.resolve_data_dir` says.
    download: fetch a missing archive from the mirrors (else a missing archive raises).
    mirrors: base URLs to try instead of `MIRRORS`.

  Returns:
    `(images, labels)`: read-only arrays, uint8 `[N, 32, 32, 3]` (row, column, RGB) and uint8
    `[N]`, shared between callers.

  Raises:
    FileNotFoundError: the archive is missing and could not be downloaded; says what to put where.
    ChecksumError: the archive's md5 differs from the published one.
    ValueError: an unknown split, or an archive whose contents are not the CIFAR-10 layout.
  """
  if split not in _BATCHES:
    raise ValueError(f"split must be one of {tuple(_BATCHES)}, got {split!r}")
  path = archive_path(data_dir)
  if not path.exists():
    if not download:
      raise FileNotFoundError(
          f"{path} is missing and downloads are disabled (dataset.download=False). "
          + _where_to_put(path))
    bases = MIRRORS if mirrors is None else mirrors
    try:
      sources.download_verified([base + ARCHIVE_NAME for base in bases], ARCHIVE_MD5, path)
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{e}\n{_where_to_put(path)}") from e
  stat = path.stat()
  return _load_verified(str(path.resolve()), ARCHIVE_MD5, stat.st_size, stat.st_mtime_ns)[split]


def _where_to_put(path):
  return (
      f"Put the CIFAR-10 python archive {ARCHIVE_NAME} (md5 {ARCHIVE_MD5}, from "
      f"{MIRRORS[0]}{ARCHIVE_NAME}) in {path.parent}, or set dataset.data_dir (or "
      f"${sources.DATA_DIR_ENV}) to a folder whose cifar10/ holds it.")


@functools.lru_cache(maxsize=1)
def _load_verified(path, expected_md5, size, mtime_ns):
  """Both splits of the archive at `path`; the file's size and mtime key the cache."""
  del size, mtime_ns
  return decode_archive(sources.read_verified(path, expected_md5), path)


def decode_archive(raw, name="<bytes>"):
  """Decodes the bytes of a CIFAR-10 python archive.

  Only call it on bytes whose md5 was checked: the batches are pickles, and unpickling runs
  whatever the pickle names. The official archive, verified against its published md5, holds
  plain dicts of bytes, lists and one uint8 array each.

  Returns:
    `{split: (images uint8 [N, 32, 32, 3], labels uint8 [N])}`, read-only, for 'train' and 'test'.
  """
  wanted = {f"{_TOP}/{batch}": batch for batches in _BATCHES.values() for batch in batches}
  found = {}
  try:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
      for member in archive:
        if member.name in wanted and member.isfile():
          # Safe only because the archive's md5 matched the published one (see above).
          found[wanted[member.name]] = pickle.load(
              archive.extractfile(member), encoding="bytes")
  except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError) as e:
    raise ValueError(f"{name}: not a readable CIFAR-10 python archive ({e})") from e
  missing = sorted(member for member, batch in wanted.items() if batch not in found)
  if missing:
    raise ValueError(f"{name}: the archive lacks {missing}")
  return {split: _decode_batches({b: found[b] for b in batches}, name)
          for split, batches in _BATCHES.items()}


def _decode_batches(batches, name):
  """Concatenated `(images [N, 32, 32, 3], labels [N])` of unpickled batch dicts, by batch name."""
  images, labels = [], []  # per batch: [n, 3072], [n]
  for batch_name, batch in batches.items():
    where = f"{name}: {_TOP}/{batch_name}"
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
      raise ValueError(f"{where} is not a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    label = np.asarray(batch[b"labels"])
    columns = CHANNELS * IMAGE_SIZE * IMAGE_SIZE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != columns:
      raise ValueError(
          f"{where}: data is {data.dtype} {data.shape}, expected uint8 [n, {columns}]")
    if label.shape != (data.shape[0],) or label.dtype.kind not in "iu":
      raise ValueError(
          f"{where}: labels are {label.dtype} {label.shape}, expected {data.shape[0]} integers")
    outside = (label < 0) | (label >= NUM_CLASSES)
    if outside.any():
      raise ValueError(
          f"{where}: label {label[outside][0]} is outside [0, {NUM_CLASSES})")
    images.append(data)
    labels.append(label.astype(np.uint8))
  # [N, 3072] channel-major -> [N, C, H, W] -> [N, H, W, C], copied so each image is contiguous
  images = np.concatenate(images).reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
  images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
  labels = np.concatenate(labels)
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels
