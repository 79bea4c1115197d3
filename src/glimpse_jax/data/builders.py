"""Fixed splits of the derived datasets as tensorflow-datasets builders (array_record, no TF needed).

A split is generated once per builder config and cached under `<cache_dir>/<variant>/<config>/
<version>/`, where `cache_dir` is the config's `cache_dir`, else $GLIMPSE_CACHE_DIR, else
`~/.cache/glimpse_jax/tfds`. The config name spells out every parameter that changes the data,
e.g. `cluttered/fashion_mnist-100px-clutter8x8-seed0-test10000`, so two configs never share files.

Example i of a split places source digit `i mod N` of the same source split (so a split of
`eval_examples` examples translates the first `eval_examples` test digits); its randomness comes
from a generator seeded with `(seed, split, i // 1000)`, so a shorter split is a prefix of a longer
one, and `load_fixed_rows` can generate any range of a split alone (a validation split is the
tail of its train split, so it adds no builder). array_record stores examples in key-hash order:
each example carries its `index` and `load_fixed_split` returns the examples sorted by it.
"""

import collections
import contextlib
import dataclasses
import fcntl
import os
import pathlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from glimpse_jax.data import canvas
from glimpse_jax.data import config as config_lib
from glimpse_jax.data import sources

CACHE_DIR_ENV = "GLIMPSE_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/glimpse_jax/tfds"

_CHUNK = 1000  # examples drawn from one generator
_FIXED_SPLIT_TAG = 0x5EED  # keeps fixed-split generators apart from the training stream's
_MAX_LOADED = 4
_LOADED = collections.OrderedDict()  # (variant, config name, cache dir) -> arrays


def _features(side):
  """Name -> (shape, dtype) of a stored example; `index` is its position in the split."""
  return {"image": ((side, side, 1), np.uint8), "label": ((), np.int32),
          "center": ((2,), np.float32), "box_size": ((), np.float32), "index": ((), np.int32)}


def resolve_cache_dir(cache_dir=None):
  """The tfds cache folder: `cache_dir`, else $GLIMPSE_CACHE_DIR, else the default."""
  chosen = cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
  return pathlib.Path(chosen).expanduser()


@dataclasses.dataclass(eq=False)
class CanvasBuilderConfig(tfds.core.BuilderConfig):
  """Every parameter of a fixed split; `name` is derived from them by `builder_config`."""
  source: str = "mnist"
  split: str = "test"
  num_examples: int = 0
  seed: int = 0
  canvas_size: int = 60
  scale_range: tuple[float, float] | None = None
  num_clutter: int = 0
  clutter_size: int = 8
  placement: str = "uniform"

  @property
  def spec(self):
    return canvas.CanvasSpec(
        self.canvas_size, self.scale_range, self.num_clutter, self.clutter_size, self.placement)


def fixed_split_spec(cfg):
  """The `canvas.CanvasSpec` of a derived config's fixed splits: the name's, with the placement
  of the config's optional `placement` field (one of `canvas.PLACEMENTS`; absent or None: the
  name's own). The field acts on the fixed splits only; canvases drawn on the fly keep the
  name's placement."""
  spec = config_lib.canvas_spec(cfg)
  placement = cfg.get("placement")
  if placement is None or placement == spec.placement:
    return spec
  if placement not in canvas.PLACEMENTS:
    raise ValueError(f"dataset.placement must be one of {canvas.PLACEMENTS} or None, got "
                     f"{placement!r}")
  return dataclasses.replace(spec, placement=placement)


def builder_config(cfg, split):
  """The `CanvasBuilderConfig` of a validated dataset config's fixed split."""
  spec = fixed_split_spec(cfg)
  n = config_lib.split_size(cfg, split)
  parts = [cfg.source, f"{spec.canvas_size}px"]
  if spec.scale_range is not None:
    parts.append(f"scale{spec.scale_range[0]!r}-{spec.scale_range[1]!r}")
  if spec.num_clutter:
    parts.append(f"clutter{spec.num_clutter}x{spec.clutter_size}")
  if spec.placement != config_lib.canvas_spec(cfg).placement:  # the name's own adds nothing
    parts.append(spec.placement)
  parts += [f"seed{cfg.seed}", f"{split}{n}"]
  return CanvasBuilderConfig(
      name="-".join(parts), description=f"{cfg.name} {'-'.join(parts)}", source=cfg.source,
      split=split, num_examples=n, seed=cfg.seed, canvas_size=spec.canvas_size,
      scale_range=spec.scale_range, num_clutter=spec.num_clutter,
      clutter_size=spec.clutter_size, placement=spec.placement)


class _CanvasBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A fixed split of canvases; subclasses name the variant."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  # Set rather than derived: tfds derives it through `importlib_resources`, which a TF-free
  # install lacks. There is no checksums file beside it: the base digits are verified by `sources`.
  code_path = epath.Path(__file__)

  def __init__(self, *, config, data_dir, digits_dir=None, download=True):
    """Args: the builder config, the cache folder, and where (and whether) to get base digits."""
    self._digits_dir = digits_dir
    self._download = download
    super().__init__(config=config, data_dir=data_dir, file_format="array_record")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            name: tfds.features.Tensor(
                shape=shape, dtype=dtype,
                encoding=tfds.features.Encoding.ZLIB if name == "image" else "none")
            for name, (shape, dtype) in _features(self.builder_config.canvas_size).items()
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the base digits come from `sources`, which verifies them
    return {self.builder_config.split: self._generate_examples()}

  def _generate_examples(self):
    c = self.builder_config
    images, labels = sources.load_digits(
        c.source, c.split, self._digits_dir, download=self._download)
    for start, examples in fixed_chunks(c.spec, images, labels, c.seed, c.split, c.num_examples):
      for i in range(examples["label"].shape[0]):
        example = {key: value[i] for key, value in examples.items()}
        example["index"] = start + i
        yield start + i, example


class Translated(_CanvasBuilder, skip_registration=True):
  """A 28x28 digit at a uniformly random position fully inside the canvas (Mnih et al. 2014)."""
  name = "translated"


class TranslatedScaled(_CanvasBuilder, skip_registration=True):
  """A digit rescaled by a random factor, then placed fully inside the canvas (Ba et al. 2015)."""
  name = "translated_scaled"


class Cluttered(_CanvasBuilder, skip_registration=True):
  """A translated digit among pieces of other digits, combined by max (Mnih et al. 2014)."""
  name = "cluttered"


class ClutteredSlope(_CanvasBuilder, skip_registration=True):
  """Cluttered, the digit on a line through the center of slope within +-45 degrees (Wu et al.)."""
  name = "cluttered_slope"


BUILDERS = {cls.name: cls for cls in (Translated, TranslatedScaled, Cluttered, ClutteredSlope)}


def fixed_chunks(spec, images, labels, seed, split, num_examples, *, first=0):
  """Yields `(start, examples)` of a fixed split in order, `_CHUNK` examples at a time.

  Generation starts at the chunk holding example `first`; every chunk has its own generator, so
  the chunks yielded do not depend on `first`.
  """
  split_id = sources.SPLITS.index(split)
  for start in range(first - first % _CHUNK, num_examples, _CHUNK):
    rng = np.random.default_rng([_FIXED_SPLIT_TAG, seed, split_id, start // _CHUNK])
    digit = np.arange(start, start + _CHUNK) % images.shape[0]
    layout = canvas.sample_layout(rng, spec, digit, images.shape[0])
    layout = layout.rows(0, min(_CHUNK, num_examples - start))
    yield start, canvas.make_examples(layout, spec, images, labels)


def make_builder(cfg, split):
  """The tfds builder of a validated dataset config's fixed split (not yet prepared)."""
  return BUILDERS[cfg.name](
      config=builder_config(cfg, split), data_dir=os.fspath(resolve_cache_dir(cfg.cache_dir)),
      digits_dir=cfg.data_dir, download=cfg.download)


def load_fixed_split(cfg, split):
  """Generates (the first time only) and reads a fixed split of a validated derived config.

  Processes sharing a cache folder take turns: one generates the split, the others then read it.

  Returns:
    Read-only arrays in example order: image uint8 [N, H, W, 1], label int32 [N],
    center float32 [N, 2], box_size float32 [N]. The last few splits read stay in memory.
  """
  cache_dir = resolve_cache_dir(cfg.cache_dir)
  bc = builder_config(cfg, split)
  key = (cfg.name, bc.name, os.fspath(cache_dir))
  if key in _LOADED:
    _LOADED.move_to_end(key)
    return _LOADED[key]
  with _exclusive(cache_dir / ".locks" / f"{cfg.name}-{bc.name}.lock"):
    builder = make_builder(cfg, split)  # made inside the lock, so it sees a split just written
    builder.download_and_prepare()
  arrays = _read_in_order(builder.as_data_source(split=split), bc)
  _LOADED[key] = arrays
  if len(_LOADED) > _MAX_LOADED:
    _LOADED.popitem(last=False)
  return arrays


def load_fixed_rows(cfg, split, start, stop):
  """Examples `[start, stop)` of a fixed split of a validated derived config, generated directly.

  Equal to `load_fixed_split(cfg, split)` sliced, without building or reading the whole split:
  the validation tail of a config trained on the fly needs only its own rows.

  Returns:
    Read-only arrays as `load_fixed_split`'s, of `stop - start` examples. The last few row
    ranges read stay in memory.
  """
  bc = builder_config(cfg, split)
  if not 0 <= start < stop <= bc.num_examples:
    raise ValueError(
        f"rows [{start}, {stop}) must be a non-empty range inside the {bc.num_examples} "
        f"examples of {bc.name}")
  key = (cfg.name, bc.name, start, stop)
  if key in _LOADED:
    _LOADED.move_to_end(key)
    return _LOADED[key]
  images, labels = sources.load_digits(bc.source, split, cfg.data_dir, download=cfg.download)
  chunks = [examples for _, examples in fixed_chunks(
      bc.spec, images, labels, bc.seed, split, stop, first=start)]
  skip = start % _CHUNK
  arrays = {k: np.concatenate([c[k] for c in chunks])[skip:skip + stop - start]
            for k in chunks[0]}
  for value in arrays.values():
    value.setflags(write=False)
  _LOADED[key] = arrays
  if len(_LOADED) > _MAX_LOADED:
    _LOADED.popitem(last=False)
  return arrays


def _read_in_order(records, bc):
  """All records of a split, placed at their stored `index`."""
  features = _features(bc.canvas_size)
  n = bc.num_examples
  arrays = {k: np.empty((n, *shape), dtype) for k, (shape, dtype) in features.items()
            if k != "index"}
  seen = np.zeros(n, dtype=bool)
  for start in range(0, len(records), _CHUNK):
    for record in records.__getitems__(range(start, min(start + _CHUNK, len(records)))):
      i = record["index"]
      seen[i] = True
      for k, value in arrays.items():
        value[i] = record[k]
  if len(records) != n or not seen.all():
    raise ValueError(
        f"cached split {bc.name} holds {len(records)} records covering {seen.sum()} of the "
        f"indices 0..{n - 1}; delete its folder to generate it again")
  for value in arrays.values():
    value.setflags(write=False)
  return arrays


@contextlib.contextmanager
def _exclusive(lock_path):
  """Holds an exclusive lock on `lock_path` (created if needed) across processes."""
  lock_path.parent.mkdir(parents=True, exist_ok=True)
  with open(lock_path, "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def forget_loaded_splits():
  """Drops the in-memory copies of fixed splits (the cached files stay)."""
  _LOADED.clear()
