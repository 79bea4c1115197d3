"""IDX parsing, checksum verification, missing files and mirror downloads of the base digits."""

import gzip
import http.client
import pathlib
import shutil
import urllib.request

import numpy as np
import pytest

from glimpse_jax.data import idx
from glimpse_jax.data import sources


def _idx_bytes(array, magic):
  header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trips_images_and_labels():
  images = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
  labels = np.array([7, 1, 0], dtype=np.uint8)
  np.testing.assert_array_equal(idx.parse_idx(_idx_bytes(images, 2051), idx.IMAGES_MAGIC), images)
  np.testing.assert_array_equal(idx.parse_idx(_idx_bytes(labels, 2049), idx.LABELS_MAGIC), labels)


@pytest.mark.parametrize("raw, message", [
    (_idx_bytes(np.zeros(3), 2049), "bad IDX magic number 2049, expected 2051"),
    (b"\x00\x00", "truncated IDX header"),
    (_idx_bytes(np.zeros((2, 3, 4)), 2051)[:10], "truncated IDX header"),
    (_idx_bytes(np.zeros((2, 3, 4)), 2051)[:-1], "truncated IDX body"),
    (_idx_bytes(np.zeros((2, 3, 4)), 2051) + b"\x00", "1 trailing bytes"),
])
def test_parse_idx_rejects_malformed_files(raw, message):
  with pytest.raises(ValueError, match=f"broken-file: {message}"):
    idx.parse_idx(raw, idx.IMAGES_MAGIC, "broken-file")


def test_parse_idx_gz_rejects_a_cut_gzip_stream():
  compressed = gzip.compress(_idx_bytes(np.zeros(100), 2049))
  with pytest.raises(ValueError, match="not a complete gzip file"):
    idx.parse_idx_gz(compressed[:-12], idx.LABELS_MAGIC)


def test_real_files_have_the_published_label_counts(data_dir):
  images, labels = sources.load_digits("mnist", "test", data_dir, download=False)
  assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
  np.testing.assert_array_equal(
      np.bincount(labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  _, fashion_labels = sources.load_digits("fashion_mnist", "test", data_dir, download=False)
  np.testing.assert_array_equal(np.bincount(fashion_labels), [1000] * 10)


def test_loaded_arrays_are_cached_and_read_only(data_dir):
  first = sources.load_digits("mnist", "test", data_dir, download=False)
  second = sources.load_digits("mnist", "test", data_dir, download=False)
  assert first[0] is second[0]
  with pytest.raises(ValueError):
    first[0][0, 0, 0] = 1


def _copy_source(data_dir, destination, source="mnist"):
  shutil.copytree(pathlib.Path(data_dir) / source, destination / source)
  return destination / source


def test_corrupt_file_names_the_file_and_the_published_md5(data_dir, tmp_path):
  folder = _copy_source(data_dir, tmp_path)
  path = folder / "t10k-labels-idx1-ubyte.gz"
  raw = bytearray(path.read_bytes())
  raw[100] ^= 0xFF
  path.write_bytes(bytes(raw))
  with pytest.raises(sources.ChecksumError) as error:
    sources.load_digits("mnist", "test", tmp_path, download=False)
  assert "t10k-labels-idx1-ubyte.gz" in str(error.value)
  assert "ec29112dd5afa0611ce80d1b7f02629c" in str(error.value)


def test_missing_file_without_downloads_names_file_and_md5(data_dir, tmp_path):
  folder = _copy_source(data_dir, tmp_path)
  (folder / "t10k-images-idx3-ubyte.gz").unlink()
  with pytest.raises(FileNotFoundError) as error:
    sources.load_digits("mnist", "test", tmp_path, download=False)
  message = str(error.value)
  assert "t10k-images-idx3-ubyte.gz" in message and "9fb629c4189551a2d022fa330f9573f3" in message
  assert "downloads are disabled" in message


def test_missing_file_with_unreachable_mirror_lists_each_failure(data_dir, tmp_path):
  folder = _copy_source(data_dir, tmp_path / "data")
  (folder / "t10k-labels-idx1-ubyte.gz").unlink()
  empty_mirror = (tmp_path / "mirror").as_uri() + "/"
  with pytest.raises(FileNotFoundError, match="no mirror served it") as error:
    sources.load_digits("mnist", "test", tmp_path / "data", mirrors=(empty_mirror,))
  assert empty_mirror + "t10k-labels-idx1-ubyte.gz" in str(error.value)
  assert not (folder / "t10k-labels-idx1-ubyte.gz").exists()


def test_download_verifies_and_skips_a_corrupt_mirror(data_dir, tmp_path):
  good_mirror = _copy_source(data_dir, tmp_path / "good")
  bad_mirror = _copy_source(data_dir, tmp_path / "bad")
  (bad_mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the labels")
  mirrors = (bad_mirror.as_uri() + "/", good_mirror.as_uri() + "/")
  images, labels = sources.load_digits("mnist", "test", tmp_path / "fresh", mirrors=mirrors)
  expected = sources.load_digits("mnist", "test", data_dir, download=False)
  np.testing.assert_array_equal(images, expected[0])
  np.testing.assert_array_equal(labels, expected[1])
  assert sorted(p.name for p in (tmp_path / "fresh" / "mnist").iterdir()) == [
      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_a_truncated_download_falls_through_to_the_next_mirror(data_dir, tmp_path, monkeypatch):
  good_mirror = _copy_source(data_dir, tmp_path / "good")
  truncating = "http://truncating.invalid/"
  opened = []
  real_urlopen = urllib.request.urlopen

  def urlopen(url, timeout):
    opened.append(url)
    if url.startswith(truncating):  # the connection drops mid-body
      raise http.client.IncompleteRead(b"partial", 1000)
    return real_urlopen(url, timeout=timeout)

  monkeypatch.setattr(urllib.request, "urlopen", urlopen)
  mirrors = (truncating, good_mirror.as_uri() + "/")
  _, labels = sources.load_digits("mnist", "test", tmp_path / "fresh", mirrors=mirrors)
  np.testing.assert_array_equal(labels, sources.load_digits("mnist", "test", data_dir,
                                                            download=False)[1])
  assert any(url.startswith(truncating) for url in opened)
  assert not [p for p in (tmp_path / "fresh" / "mnist").iterdir() if p.name.startswith(".")]


def test_data_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv("GLIMPSE_DATA_DIR", str(tmp_path / "from_env"))
  assert sources.resolve_data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"
  assert sources.resolve_data_dir(None) == tmp_path / "from_env"
  monkeypatch.setenv("GLIMPSE_DATA_DIR", "")
  assert sources.resolve_data_dir(None) == pathlib.Path("~/.cache/glimpse_jax/data").expanduser()


@pytest.mark.parametrize("source, split, message", [
    ("kmnist", "test", "source must be one of .*, got 'kmnist'"),
    ("mnist", "validation", "split must be one of .*, got 'validation'"),
])
def test_unknown_source_or_split_is_rejected(source, split, message):
  with pytest.raises(ValueError, match=message):
    sources.load_digits(source, split, download=False)
