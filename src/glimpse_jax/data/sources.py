"""The base digits: MNIST and Fashion-MNIST IDX files, their checksums, mirrors and loading.

Files live in `<data_dir>/<source>/` under their standard names. `data_dir` is the config's
`data_dir`, else the `GLIMPSE_DATA_DIR` environment variable, else `~/.cache/glimpse_jax/data`.
Every file is checked against the md5 its authors published before it is decoded; a missing file
is downloaded from `MIRRORS` only when the caller allows it. Decoded arrays are kept in memory, so
each file is read and verified once per process.
"""

import functools
import hashlib
import http.client
import os
import pathlib
import urllib.request

from glimpse_jax import files
from glimpse_jax.data import idx

SOURCES = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
NUM_CLASSES = 10
DIGIT_SIZE = 28  # every source image is [28, 28]

DATA_DIR_ENV = "GLIMPSE_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/glimpse_jax/data"

FILE_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}

# md5 of the gzip files as published by the datasets' authors.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# Base URLs tried in order; a file's URL is the base followed by its name.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

_DOWNLOAD_TIMEOUT_S = 60


class ChecksumError(ValueError):
  """A data file whose md5 differs from the published one."""


def resolve_data_dir(data_dir=None):
  """The folder holding `<source>/` IDX folders: `data_dir`, else $GLIMPSE_DATA_DIR, else default."""
  chosen = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
  return pathlib.Path(chosen).expanduser()


def load_digits(source, split, data_dir=None, *, download=True, mirrors=None):
  """Loads one split of a base dataset, verified against the published checksums.

  Args:
    source: 'mnist' or 'fashion_mnist'.
    split: 'train' or 'test'.
    data_dir: folder holding `<source>/`; None resolves as `resolve_data_dir` says.
    download: fetch missing files from the mirrors (else a missing file raises).
    mirrors: base URLs to try instead of `MIRRORS[source]`.

  Returns:
    `(images, labels)`: read-only uint8 arrays `[N, 28, 28]` and `[N]`, shared between callers.

  Raises:
    FileNotFoundError: a file is missing and could not be downloaded.
    ChecksumError: a file's md5 differs from the published one.
    ValueError: an unknown source or split, or a malformed IDX file.
  """
  if source not in SOURCES:
    raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  folder = resolve_data_dir(data_dir) / source
  arrays = []
  for kind, magic in (("images", idx.IMAGES_MAGIC), ("labels", idx.LABELS_MAGIC)):
    name = FILE_NAMES[(split, kind)]
    path = folder / name
    if not path.exists():
      if not download:
        raise FileNotFoundError(
            f"{path} is missing (published md5 {CHECKSUMS[source][name]}) and downloads are "
            f"disabled: put the {source} IDX files in {folder} or allow downloads")
      fetch(source, name, path, mirrors=mirrors)
    arrays.append(_load_verified(str(path.resolve()), CHECKSUMS[source][name], magic))
  images, labels = arrays
  if images.shape[0] != labels.shape[0] or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
    raise ValueError(
        f"{folder}: {split} images {images.shape} do not match labels {labels.shape}")
  return images, labels


@functools.lru_cache(maxsize=None)
def _load_verified(path, expected_md5, magic):
  """Reads, verifies and decodes one IDX gzip file (once per process per path)."""
  return idx.parse_idx_gz(read_verified(path, expected_md5), magic, path)


def read_verified(path, expected_md5):
  """The bytes of the file at `path`; raises ChecksumError, naming both md5s, if they differ."""
  with open(path, "rb") as f:
    raw = f.read()
  actual = hashlib.md5(raw).hexdigest()
  if actual != expected_md5:
    raise ChecksumError(
        f"{path}: md5 {actual} does not match the published md5 {expected_md5}; the file is "
        "corrupt or incomplete: delete it so it is downloaded again, or replace it")
  return raw


def fetch(source, name, path, *, mirrors=None):
  """Downloads one file to `path` from the first mirror that serves it with the published md5.

  Args:
    source: 'mnist' or 'fashion_mnist'.
    name: the file's standard name (a key of `CHECKSUMS[source]`).
    path: where to write it; written atomically, so a failed download leaves nothing behind.
    mirrors: base URLs to try instead of `MIRRORS[source]`.

  Raises:
    FileNotFoundError: no mirror served the file with the published md5 (lists each failure).
  """
  bases = MIRRORS[source] if mirrors is None else mirrors
  download_verified([base + name for base in bases], CHECKSUMS[source][name], path)


def download_verified(urls, expected_md5, path):
  """Writes to `path` the payload of the first of `urls` whose md5 is `expected_md5`.

  The file is written atomically, so a failed download leaves nothing behind.

  Raises:
    FileNotFoundError: no URL served the file with that md5 (lists each failure).
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  failures = []
  for url in urls:
    try:
      with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        payload = response.read()
    except (OSError, ValueError, http.client.HTTPException) as e:  # e.g. a truncated read
      failures.append(f"{url}: {type(e).__name__}: {e}")
      continue
    actual = hashlib.md5(payload).hexdigest()
    if actual != expected_md5:
      failures.append(f"{url}: md5 {actual} instead of {expected_md5}")
      continue
    files.write_atomic(path, payload)
    return
  raise FileNotFoundError(
      f"{path} is missing (published md5 {expected_md5}) and no mirror served it:\n  "
      + "\n  ".join(failures or ["no mirrors given"]))
