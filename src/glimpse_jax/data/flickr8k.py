"""Flickr8k (Hodosh, Young & Hockenmaier 2013): 8,000 photographs with five captions each.

Two archives, never downloaded (the authors hand them out on request), belong in
`<data_dir>/flickr8k/` (`data_dir` resolved as for MNIST, see `sources.resolve_data_dir`):
- `Flickr8k_Dataset.zip`: the JPEGs, `Flicker8k_Dataset/<image>.jpg` (the folder's misspelling
  is the archive's own);
- `Flickr8k_text.zip`: `Flickr8k.token.txt` (lines `<image>#<n>\\t<caption>`, n in 0..4) and the
  standard splits `Flickr_8k.trainImages.txt` (6,000 images), `Flickr_8k.devImages.txt` (1,000,
  the 'validation' split) and `Flickr_8k.testImages.txt` (1,000), one image name a line.
Members are found by file name anywhere in an archive but `__MACOSX/`, so both the original
layout and re-packed copies read alike.

Checks: each archive's md5 against `ARCHIVE_MD5` (the copies re-hosted at
github.com/jbrownlee/Datasets/releases/tag/Flickr8k, whose md5s mlverse/torchvision's Flickr8k
loader verifies; pass `checksums=None` for another copy), then that the text archive holds the
four files, every split image has five captions and the image archive holds every split image.

Captions are lower-cased and split into words of letters and digits (punctuation dropped); the
vocabulary comes from the training captions only (`captions.build_vocabulary`, words seen at
least `min_count` times; others become `<unk>`). Images are decoded with PIL and resized to
`image_size` x `image_size` (bilinear, aspect ratio not kept, so the whole photograph stays in
view). Loaded splits stay in memory, so each process reads the archives once.
"""

import collections
import functools
import hashlib
import io
import pathlib
import re
import zipfile

import numpy as np
from PIL import Image

from glimpse_jax.data import captions as captions_lib
from glimpse_jax.data import sources

FOLDER = "flickr8k"
IMAGE_ARCHIVE = "Flickr8k_Dataset.zip"
TEXT_ARCHIVE = "Flickr8k_text.zip"
ARCHIVE_MD5 = {
    IMAGE_ARCHIVE: "f18a1e2920de5bd84dae7cf08ec78978",
    TEXT_ARCHIVE: "bf6c1abcb8e4a833b7f922104de18627",
}
TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "validation": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
CAPTIONS_PER_IMAGE = 5
URL = "https://github.com/jbrownlee/Datasets/releases/tag/Flickr8k"

_WORD = re.compile(r"[a-z0-9]+")
_MD5_BLOCK = 1 << 24


def folder(data_dir=None):
  """Where the archives belong: `<data_dir>/flickr8k/`."""
  return sources.resolve_data_dir(data_dir) / FOLDER


def tokenize(caption):
  """The words of a caption: lower-cased runs of letters and digits."""
  return _WORD.findall(caption.lower())


def load_flickr8k(data_dir=None, *, image_size=224, min_count=5, max_length=None,
                  checksums=ARCHIVE_MD5):
  """Every split of Flickr8k, its captions as token arrays of a vocabulary of the train split.

  Args:
    data_dir: folder holding `flickr8k/`; None resolves as `sources.resolve_data_dir` says.
    image_size: side S of the square images returned.
    min_count: fewest occurrences in the training captions that put a word in the vocabulary.
    max_length: L, tokens of a stored caption (end token included; longer captions are cut);
      None = the longest caption of any split plus its end token.
    checksums: `{archive name: md5}` to verify, or None to check only the archives' contents.

  Returns:
    `(vocab, splits)`: the `captions.Vocabulary` and `{split: arrays}` for 'train', 'validation'
    and 'test', each with image uint8 [N, S, S, 3], caption int32 [N, 5, L], caption_length
    int32 [N, 5] (end token included) and name [N] (the image file names, in split-file order).
    Arrays are read-only and shared between callers.

  Raises:
    FileNotFoundError: an archive is missing; says which files to put where.
    ChecksumError: an archive's md5 differs from `checksums`.
    ValueError: a bad argument, or archives whose contents are not the Flickr8k layout.
  """
  for name, value, low in (("image_size", image_size, 1), ("min_count", min_count, 1)):
    _check_int(name, value, low)
  if max_length is not None:
    _check_int("max_length", max_length, 2)
  paths = {name: folder(data_dir) / name for name in (IMAGE_ARCHIVE, TEXT_ARCHIVE)}
  missing = [path for path in paths.values() if not path.exists()]
  if missing:
    raise FileNotFoundError(
        f"missing {', '.join(map(str, missing))}. " + _where_to_put(folder(data_dir)))
  keys = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values())
  md5s = None if checksums is None else tuple(checksums[name] for name in paths)
  return _load(keys, md5s, image_size, min_count, max_length)


def _check_int(name, value, low):
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _where_to_put(where):
  return (
      f"Flickr8k is never downloaded: put {IMAGE_ARCHIVE} (the images, md5 "
      f"{ARCHIVE_MD5[IMAGE_ARCHIVE]}) and {TEXT_ARCHIVE} (captions and split files, md5 "
      f"{ARCHIVE_MD5[TEXT_ARCHIVE]}), as released by the dataset's authors or copied from "
      f"{URL}, in {where}, or set data_dir (or ${sources.DATA_DIR_ENV}) to a folder whose "
      f"{FOLDER}/ holds them.")


@functools.lru_cache(maxsize=1)
def _load(keys, md5s, image_size, min_count, max_length):
  """`load_flickr8k` of archives named by `(path, size, mtime)` keys (which key the cache)."""
  (image_path, *_), (text_path, *_) = keys
  if md5s is not None:
    for path, expected in zip((image_path, text_path), md5s):
      verify_md5(path, expected)
  text = read_text_archive(text_path)
  words = {name: [tokenize(c) for c in text["captions"][name]] for name in text["captions"]}
  vocab = captions_lib.build_vocabulary(
      (caption for name in text["splits"]["train"] for caption in words[name]), min_count)
  if max_length is None:
    max_length = 1 + max(len(c) for names in text["splits"].values() for n in names
                         for c in words[n])
  splits = {}
  for split, names in text["splits"].items():
    flat = [vocab.ids(caption) for name in names for caption in words[name]]
    tokens, lengths = captions_lib.pad_captions(flat, max_length, vocab, truncate=True)
    arrays = {
        "image": read_images(image_path, names, image_size),
        "caption": tokens.reshape(len(names), CAPTIONS_PER_IMAGE, max_length),
        "caption_length": lengths.reshape(len(names), CAPTIONS_PER_IMAGE),
        "name": np.array(names),
    }
    for value in arrays.values():
      value.setflags(write=False)
    splits[split] = arrays
  return vocab, splits


def verify_md5(path, expected_md5):
  """Raises ChecksumError, naming both md5s, if the file's md5 is not `expected_md5`."""
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(_MD5_BLOCK), b""):
      digest.update(block)
  if digest.hexdigest() != expected_md5:
    raise sources.ChecksumError(
        f"{path}: md5 {digest.hexdigest()} does not match the expected md5 {expected_md5}; the "
        "file is corrupt, incomplete or another copy: replace it, or pass checksums=None to "
        "check only its contents")


def read_text_archive(path):
  """The captions and splits of a `Flickr8k_text.zip`.

  Returns:
    `{"captions": {image: [5 captions, in their order n]}, "splits": {split: [images]}}`, the
    captions of the split images only.
  """
  with _open_zip(path) as archive:
    members = _members(archive, path, [TOKEN_FILE, *SPLIT_FILES.values()])
    read = lambda name: archive.read(members[name]).decode("utf-8")
    splits = {split: _split_names(read(file), file) for split, file in SPLIT_FILES.items()}
    token_text = read(TOKEN_FILE)
  seen = collections.Counter(n for names in splits.values() for n in names)
  repeated = sorted(n for n, count in seen.items() if count > 1)
  if repeated:
    raise ValueError(f"{path}: images in more than one split entry: {repeated[:5]}")
  found = _parse_tokens(token_text, set(seen), f"{path}:{TOKEN_FILE}")
  short = sorted(n for n in seen if set(found.get(n, ())) != set(range(CAPTIONS_PER_IMAGE)))
  if short:
    raise ValueError(
        f"{path}: {TOKEN_FILE} does not give {CAPTIONS_PER_IMAGE} captions (#0 to "
        f"#{CAPTIONS_PER_IMAGE - 1}) to {len(short)} split images, e.g. {short[:5]}")
  captions = {n: [found[n][i] for i in range(CAPTIONS_PER_IMAGE)] for n in seen}
  return {"captions": captions, "splits": splits}


def _split_names(text, file):
  names = [line.strip() for line in text.splitlines() if line.strip()]
  if not names:
    raise ValueError(f"{file} names no images")
  return names


def _parse_tokens(text, wanted, where):
  """`{image: {n: caption}}` of the token file's lines for the `wanted` images."""
  found = collections.defaultdict(dict)
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    key, tab, caption = line.partition("\t")
    name, hash_sign, n = key.partition("#")
    if not tab or not hash_sign or not n.isdigit() or not caption.strip():
      raise ValueError(f"{where} line {number}: expected '<image>#<n>\\t<caption>', got {line!r}")
    if name in wanted:
      if int(n) in found[name]:
        raise ValueError(f"{where} line {number}: a second caption #{n} of {name}")
      found[name][int(n)] = caption.strip()
  return found


def read_images(path, names, image_size):
  """uint8 [N, S, S, 3]: the named images of a `Flickr8k_Dataset.zip`, resized, in that order."""
  images = np.empty((len(names), image_size, image_size, 3), dtype=np.uint8)
  with _open_zip(path) as archive:
    members = _members(archive, path, names)
    for i, name in enumerate(names):
      try:
        with Image.open(io.BytesIO(archive.read(members[name]))) as image:
          image.draft("RGB", (image_size, image_size))  # JPEG: decode at a reduced scale
          image = image.convert("RGB").resize((image_size, image_size),
                                              Image.Resampling.BILINEAR)
          images[i] = np.asarray(image, dtype=np.uint8)
      except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: {members[name]} is not a readable image ({e})") from e
  return images


def _open_zip(path):
  try:
    return zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as e:
    raise ValueError(f"{path}: not a readable zip archive ({e})") from e


def _members(archive, path, names):
  """`{file name: member}` of the wanted names; raises ValueError naming those missing."""
  by_name = collections.defaultdict(list)
  for member in archive.namelist():
    if not member.startswith("__MACOSX/") and not member.endswith("/"):
      by_name[pathlib.PurePosixPath(member).name].append(member)
  missing = sorted(set(n for n in names if n not in by_name))
  if missing:
    raise ValueError(
        f"{path} lacks {len(missing)} of the files it should hold, e.g. {missing[:5]}")
  doubled = sorted(n for n in set(names) if len(by_name[n]) > 1)
  if doubled:
    raise ValueError(f"{path} holds several files named {doubled[0]}: {by_name[doubled[0]]}")
  return {n: by_name[n][0] for n in names}
