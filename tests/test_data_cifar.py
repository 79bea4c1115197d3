"""CIFAR-10: the python archive's pixel layout, its checksum, a missing archive, and its batches.

Every test writes a tiny archive of the official format itself (five train batches and a test
batch of a few images each) and trusts it by patching the published md5; nothing is downloaded.
"""

import hashlib
import io
import itertools
import pickle
import tarfile

import numpy as np
import pytest

from glimpse_jax import data
from glimpse_jax.data import cifar
from glimpse_jax.data import sources

TRAIN_BATCH = 2  # images per data_batch_i: 10 train images
TEST_BATCH = 3


def _write_archive(path, *, seed=0, skip=()):
  """A tiny `cifar-10-python.tar.gz` at `path`; returns its `{split: (data [N, 3072], labels)}`."""
  rng = np.random.default_rng(seed)
  batches = [(f"data_batch_{i}", TRAIN_BATCH) for i in range(1, 6)] + [("test_batch", TEST_BATCH)]
  written = {"train": ([], []), "test": ([], [])}
  path.parent.mkdir(parents=True, exist_ok=True)
  with tarfile.open(path, "w:gz") as archive:
    meta = {b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": TRAIN_BATCH}
    members = [("batches.meta", meta)]
    for name, n in batches:
      rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
      labels = rng.integers(0, 10, size=n).tolist()
      split = "test" if name == "test_batch" else "train"
      written[split][0].append(rows)
      written[split][1].extend(labels)
      members.append((name, {b"batch_label": name.encode(), b"labels": labels, b"data": rows,
                             b"filenames": [b"x.png"] * n}))
    for name, content in members:
      if name in skip:
        continue
      payload = pickle.dumps(content, protocol=2)
      info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
      info.size = len(payload)
      archive.addfile(info, io.BytesIO(payload))
  return {split: (np.concatenate(rows), np.array(labels)) for split, (rows, labels) in
          written.items()}


def _trust(monkeypatch, path):
  """Makes `path` the published archive: its md5, and split sizes of the tiny batches."""
  monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5(path.read_bytes()).hexdigest())
  monkeypatch.setattr(cifar, "SPLIT_SIZES", {"train": 5 * TRAIN_BATCH, "test": TEST_BATCH})


@pytest.fixture
def archive(tmp_path, monkeypatch):
  """`(data_dir, written)` of a trusted tiny archive in `<data_dir>/cifar10/`."""
  data_dir = tmp_path / "data"
  path = data_dir / "cifar10" / cifar.ARCHIVE_NAME
  written = _write_archive(path)
  _trust(monkeypatch, path)
  return data_dir, written


def _config(data_dir, **overrides):
  cfg = data.default_config()
  cfg.update(dict(source="cifar10", canvas_size=32, data_dir=str(data_dir), download=False,
                  cache_dir=str(data_dir / "tfds")))
  cfg.update(overrides)
  return cfg


def test_a_known_pixel_lands_at_its_row_column_and_channel(tmp_path, monkeypatch):
  path = tmp_path / "cifar10" / cifar.ARCHIVE_NAME
  written = _write_archive(path)
  _trust(monkeypatch, path)
  images, _ = cifar.load_cifar10("train", tmp_path, download=False)
  assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
  assert images.flags.c_contiguous
  # Image 7 is the second of data_batch_4; its row holds 1024 red, 1024 green, 1024 blue values.
  row = written["train"][0][7]
  assert images[7, 0, 0, 0] == row[0]
  assert images[7, 0, 1, 0] == row[1]  # next column
  assert images[7, 1, 0, 0] == row[32]  # next row
  assert images[7, 4, 7, 1] == row[1024 + 4 * 32 + 7]  # green
  assert images[7, 31, 30, 2] == row[2 * 1024 + 31 * 32 + 30]  # blue
  with pytest.raises(ValueError):
    images[0, 0, 0, 0] = 1  # read-only, shared between callers


def test_labels_follow_the_batches_in_order(archive):
  data_dir, written = archive
  for split in ("train", "test"):
    images, labels = cifar.load_cifar10(split, data_dir, download=False)
    np.testing.assert_array_equal(labels, written[split][1])
    np.testing.assert_array_equal(images[:, 2, 3, 0], written[split][0][:, 2 * 32 + 3])


def test_config_gives_colour_images_and_refuses_canvases():
  cfg = data.default_config()
  cfg.update(dict(source="cifar10", canvas_size=32))
  data.validate_config(cfg)
  assert data.image_shape(cfg) == (32, 32, 3) and data.num_classes(cfg) == 10
  for overrides, message in [
      (dict(canvas_size=28), "dataset.canvas_size must be 32 for name='mnist'"),
      (dict(name="cluttered", canvas_size=60), "dataset.name='cluttered' draws canvases"),
      (dict(train_examples=50_001), "dataset.train_examples must be <= 50000"),
  ]:
    bad = data.default_config()
    bad.update(dict(source="cifar10", canvas_size=32))
    bad.update(overrides)
    with pytest.raises(ValueError, match=message):
      data.validate_config(bad)


def test_train_and_eval_batches_have_the_batch_contract(archive):
  data_dir, written = archive
  cfg = _config(data_dir, validation_examples=2)
  batches = list(itertools.islice(data.train_stream(cfg, 4, seed=0), 2))
  for batch in batches:
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["label"].dtype == np.int32 and batch["index"].dtype == np.int32
    np.testing.assert_array_equal(batch["center"], np.zeros((4, 2)))
    np.testing.assert_array_equal(batch["box_size"], np.full(4, 32.0))
    np.testing.assert_array_equal(batch["label"], written["train"][1][batch["index"]])
  seen = np.concatenate([b["index"] for b in batches])
  assert sorted(seen) == list(range(8))  # one epoch of the 8 examples before validation's

  test = list(data.eval_batches(cfg, 2))
  assert [b["mask"].tolist() for b in test] == [[1, 1], [1, 0]]
  image = test[0]["image"][1]  # [32, 32, 3] test image 1
  np.testing.assert_allclose(image[5, 6, 2] * 255, written["test"][0][1, 2048 + 5 * 32 + 6],
                             atol=1e-3)
  validation = np.concatenate([b["index"] for b in data.eval_batches(cfg, 2, split="validation")])
  assert validation.tolist() == [8, 9]


def test_corrupt_archive_names_the_file_and_the_published_md5(tmp_path):
  path = tmp_path / "cifar10" / cifar.ARCHIVE_NAME
  _write_archive(path)  # not the official bytes: its md5 differs from the published one
  with pytest.raises(sources.ChecksumError) as error:
    cifar.load_cifar10("test", tmp_path, download=False)
  assert str(path) in str(error.value)
  assert "c58f30108f718f92721af3b95e74349a" in str(error.value)


def test_missing_archive_says_what_to_put_where(tmp_path):
  cfg = _config(tmp_path)
  with pytest.raises(FileNotFoundError) as error:
    data.load_split(cfg, "test")
  message = str(error.value)
  assert "downloads are disabled" in message
  for part in (cifar.ARCHIVE_NAME, str(tmp_path / "cifar10"), "c58f30108f718f92721af3b95e74349a",
               "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"):
    assert part in message


def test_archive_missing_a_batch_names_it(tmp_path, monkeypatch):
  path = tmp_path / "cifar10" / cifar.ARCHIVE_NAME
  _write_archive(path, skip=("data_batch_3",))
  _trust(monkeypatch, path)
  with pytest.raises(ValueError, match="lacks.*cifar-10-batches-py/data_batch_3"):
    cifar.load_cifar10("train", tmp_path, download=False)


def test_download_verifies_and_skips_a_corrupt_mirror(tmp_path, monkeypatch):
  good = tmp_path / "good"
  written = _write_archive(good / cifar.ARCHIVE_NAME)
  _trust(monkeypatch, good / cifar.ARCHIVE_NAME)
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / cifar.ARCHIVE_NAME).write_bytes(b"not the archive")
  mirrors = (bad.as_uri() + "/", good.as_uri() + "/")
  _, labels = cifar.load_cifar10("test", tmp_path / "fresh", mirrors=mirrors)
  np.testing.assert_array_equal(labels, written["test"][1])
  assert [p.name for p in (tmp_path / "fresh" / "cifar10").iterdir()] == [cifar.ARCHIVE_NAME]


def test_unreachable_mirror_lists_the_failure_and_where_to_put_the_archive(tmp_path):
  empty = (tmp_path / "mirror").as_uri() + "/"
  with pytest.raises(FileNotFoundError, match="no mirror served it") as error:
    cifar.load_cifar10("train", tmp_path / "data", mirrors=(empty,))
  assert empty + cifar.ARCHIVE_NAME in str(error.value)
  assert "Put the CIFAR-10 python archive" in str(error.value)
  assert not (tmp_path / "data" / "cifar10" / cifar.ARCHIVE_NAME).exists()


def test_archive_path_follows_the_data_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv("GLIMPSE_DATA_DIR", str(tmp_path))
  assert cifar.archive_path() == tmp_path / "cifar10" / "cifar-10-python.tar.gz"
  explicit = tmp_path / "explicit"
  assert cifar.archive_path(explicit) == explicit / "cifar10" / "cifar-10-python.tar.gz"
