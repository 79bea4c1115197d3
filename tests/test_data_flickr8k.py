"""Flickr8k: the archives' layout, captions, splits, vocabulary, checks and the missing-file message.

Every test writes tiny archives of the real layout itself (a few small JPEGs, a token file and the
three split files); nothing is downloaded.
"""

import hashlib
import io
import zipfile

import numpy as np
from PIL import Image
import pytest

from glimpse_jax.data import captions
from glimpse_jax.data import flickr8k
from glimpse_jax.data import sources

SPLITS = {"train": ["a.jpg", "b.jpg", "c.jpg"], "validation": ["d.jpg"], "test": ["e.jpg"]}
COLOURS = {"a.jpg": (255, 0, 0), "b.jpg": (0, 255, 0), "c.jpg": (0, 0, 255),
           "d.jpg": (255, 255, 0), "e.jpg": (0, 255, 255), "unused.jpg": (0, 0, 0)}
TRAIN_CAPTIONS = [
    "A dog runs .", "A dog jumps!", "The dog runs in the grass .", "A brown dog .", "Dog",
    "A cat sits .", "The cat sleeps", "A cat .", "Cat on a mat", "A small cat",
    "Two dogs play .", "Dogs run", "A dog and a cat .", "Two animals", "A DOG",
]


def _captions(name):
  """Five captions of an image: the train ones above, else words never seen in training."""
  if name in SPLITS["train"]:
    start = 5 * SPLITS["train"].index(name)
    return TRAIN_CAPTIONS[start:start + 5]
  return [f"A zebra number {i} in the snow ." for i in range(5)]


def _jpeg(colour, size=(40, 30)):
  out = io.BytesIO()
  Image.new("RGB", size, colour).save(out, format="JPEG", quality=95)
  return out.getvalue()


def _write_archives(folder, *, drop_image=None, token_lines=None, macosx=True):
  """Both archives of the real layout in `folder`; returns `{archive name: md5}`."""
  folder.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(folder / flickr8k.IMAGE_ARCHIVE, "w") as archive:
    for name, colour in COLOURS.items():
      if name != drop_image:
        archive.writestr(f"Flicker8k_Dataset/{name}", _jpeg(colour))
        if macosx:
          archive.writestr(f"__MACOSX/Flicker8k_Dataset/._{name}", b"\0\5\26\7")
  if token_lines is None:
    token_lines = [f"{name}#{i}\t{caption}" for name in COLOURS
                   for i, caption in enumerate(_captions(name))]
  with zipfile.ZipFile(folder / flickr8k.TEXT_ARCHIVE, "w") as archive:
    archive.writestr(flickr8k.TOKEN_FILE, "\n".join(token_lines) + "\n")
    for split, file in flickr8k.SPLIT_FILES.items():
      archive.writestr(file, "\n".join(SPLITS[split]) + "\n")
    archive.writestr("readme.txt", "Flickr8k, a tiny copy for tests")
  return {name: hashlib.md5((folder / name).read_bytes()).hexdigest()
          for name in (flickr8k.IMAGE_ARCHIVE, flickr8k.TEXT_ARCHIVE)}


@pytest.fixture
def archives(tmp_path):
  """`(data_dir, md5s)` of tiny archives in `<data_dir>/flickr8k/`."""
  flickr8k._load.cache_clear()  # pylint: disable=protected-access
  return str(tmp_path), _write_archives(tmp_path / "flickr8k")


def test_splits_hold_their_images_and_captions(archives):
  data_dir, md5s = archives
  vocab, splits = flickr8k.load_flickr8k(data_dir, image_size=16, min_count=1, checksums=md5s)
  assert list(splits) == ["train", "validation", "test"]
  for split, names in SPLITS.items():
    arrays = splits[split]
    assert list(arrays["name"]) == names
    assert arrays["image"].shape == (len(names), 16, 16, 3) and arrays["image"].dtype == np.uint8
    for i, name in enumerate(names):  # flat colours survive JPEG and resizing closely
      np.testing.assert_allclose(arrays["image"][i].mean(axis=(0, 1)), COLOURS[name], atol=8)
  train = splits["train"]
  longest = 1 + max(len(flickr8k.tokenize(c)) for n in COLOURS for c in _captions(n))
  assert train["caption"].shape == (3, 5, longest) and train["caption"].dtype == np.int32
  assert vocab.to_words(train["caption"][0, 2]) == ["the", "dog", "runs", "in", "the", "grass"]
  assert train["caption_length"][0, 2] == 7 and train["caption_length"][0, 4] == 2
  assert vocab.to_words(train["caption"][1, 0]) == ["a", "cat", "sits"]


def test_vocabulary_comes_from_the_training_captions_only(archives):
  data_dir, md5s = archives
  vocab, splits = flickr8k.load_flickr8k(data_dir, image_size=8, min_count=2, checksums=md5s)
  assert vocab.words[:4] == captions.SPECIAL_WORDS
  assert vocab.words[4:7] == ("a", "dog", "cat")  # 10, 7 and 6 occurrences
  assert "zebra" not in vocab.words and "grass" not in vocab.words  # test-only; seen once
  test = splits["test"]["caption"][0, 0]
  assert vocab.to_words(test) == ["a", "<unk>", "<unk>", "<unk>", "<unk>", "the", "<unk>"]
  assert set(vocab.words[4:]) <= {w for c in TRAIN_CAPTIONS for w in flickr8k.tokenize(c)}


def test_max_length_cuts_long_captions_and_keeps_the_end_token(archives):
  data_dir, md5s = archives
  vocab, splits = flickr8k.load_flickr8k(
      data_dir, image_size=8, min_count=1, max_length=3, checksums=md5s)
  caption = splits["train"]["caption"][0, 2]
  np.testing.assert_array_equal(caption, vocab.ids(["the", "dog"]) + [vocab.end])
  assert splits["train"]["caption_length"].max() == 3


def test_tokenize_lower_cases_and_drops_punctuation():
  assert flickr8k.tokenize("A DOG's ball , 2 kids!") == ["a", "dog", "s", "ball", "2", "kids"]


def test_missing_archives_say_what_to_put_where(tmp_path):
  with pytest.raises(FileNotFoundError) as raised:
    flickr8k.load_flickr8k(str(tmp_path))
  message = str(raised.value)
  for part in (flickr8k.IMAGE_ARCHIVE, flickr8k.TEXT_ARCHIVE, str(tmp_path / "flickr8k"),
               flickr8k.ARCHIVE_MD5[flickr8k.IMAGE_ARCHIVE], "never downloaded"):
    assert part in message


def test_a_changed_archive_fails_its_checksum(archives):
  data_dir, md5s = archives
  with pytest.raises(sources.ChecksumError, match="does not match the expected md5"):
    flickr8k.load_flickr8k(data_dir, checksums={**md5s, flickr8k.TEXT_ARCHIVE: "0" * 32})
  flickr8k.load_flickr8k(data_dir, image_size=4, checksums=None)  # contents only


def test_a_missing_split_image_is_named(tmp_path):
  _write_archives(tmp_path / "flickr8k", drop_image="d.jpg")
  with pytest.raises(ValueError, match=r"lacks 1 of the files it should hold, e.g. \['d.jpg'\]"):
    flickr8k.load_flickr8k(str(tmp_path), checksums=None)


@pytest.mark.parametrize("lines, message", [
    (["a.jpg#0 no tab here"], "line 1: expected '<image>#<n>\\\\t<caption>'"),
    ([f"a.jpg#{i}\tx" for i in range(4)], "does not give 5 captions"),
])
def test_a_malformed_token_file_is_named(lines, message, tmp_path):
  _write_archives(tmp_path / "flickr8k", token_lines=lines)
  with pytest.raises(ValueError, match=message):
    flickr8k.load_flickr8k(str(tmp_path), checksums=None)


def test_a_file_that_is_no_zip_is_named(tmp_path):
  _write_archives(tmp_path / "flickr8k")
  (tmp_path / "flickr8k" / flickr8k.TEXT_ARCHIVE).write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="not a readable zip archive"):
    flickr8k.load_flickr8k(str(tmp_path), checksums=None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=0), "image_size must be an integer >= 1, got 0"),
    (dict(min_count=0), "min_count must be an integer >= 1, got 0"),
    (dict(max_length=1), "max_length must be an integer >= 2, got 1"),
])
def test_bad_arguments_raise_naming_them(kwargs, message, archives):
  with pytest.raises(ValueError, match=message):
    flickr8k.load_flickr8k(archives[0], **kwargs)
