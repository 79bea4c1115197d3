"""Datasets: MNIST / Fashion-MNIST and their translated, scaled and cluttered canvases; CIFAR-10;
captioned canvases: multi-digit MNIST strings, and Flickr8k.

Modules, bottom up: `idx` (the IDX file format), `sources` (checksummed base digits and their
download), `cifar` (CIFAR-10's checksummed python archive: plain 32x32 colour images, chosen by
`dataset.source='cifar10'`), `canvas` (seeded NumPy canvas generators), `config` (the dataset
config), `builders` (fixed splits as cached tfds datasets), `store` (per-example arrays of an
earlier phase, keyed by example index), `pipeline` (training and evaluation batches). Captions:
`captions` (vocabularies, fixed-length token arrays, exact-sequence accuracy), `digit_strings`
(seeded multi-digit canvases, `dataset.name='digit_strings'`, config from
`digit_strings_config()`) and `digit_string_splits` (their splits), `flickr8k` (the Flickr8k
archives: images, captions, split files, vocabulary).

Example, the cluttered 100x100 test set:

    from glimpse_jax import data
    cfg = data.default_config()
    cfg.name, cfg.canvas_size = "cluttered", 100
    test = data.load_split(cfg, "test")  # test["image"]: uint8 [10000, 100, 100, 1]
"""

from glimpse_jax.data.config import default_config
from glimpse_jax.data.config import digit_strings_config
from glimpse_jax.data.config import image_shape
from glimpse_jax.data.config import num_classes
from glimpse_jax.data.config import validate_config
from glimpse_jax.data.pipeline import composer
from glimpse_jax.data.pipeline import device_sampler
from glimpse_jax.data.pipeline import eval_batches
from glimpse_jax.data.pipeline import index_batches
from glimpse_jax.data.pipeline import load_split
from glimpse_jax.data.pipeline import split_indices
from glimpse_jax.data.pipeline import train_stream
from glimpse_jax.data.sources import ChecksumError
from glimpse_jax.data.store import ExampleStore
from glimpse_jax.data.store import StoredFields

__all__ = [
    "ChecksumError",
    "ExampleStore",
    "StoredFields",
    "default_config",
    "device_sampler",
    "digit_strings_config",
    "eval_batches",
    "image_shape",
    "index_batches",
    "load_split",
    "num_classes",
    "split_indices",
    "train_stream",
    "validate_config",
]
