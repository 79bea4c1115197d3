"""Batches for the training loop: endless seeded training streams and finite evaluation passes.

Every batch is a pure function of its arguments and its step, so a run resumed at step k sees
exactly the batches an uninterrupted run would. `batch_size` is always the global batch; process p
of P gets rows `[p * B / P, (p + 1) * B / P)` of it.

Training batches of the derived datasets are drawn fresh from `np.random.default_rng([seed, step])`
when `train_on_the_fly` (as in the papers); otherwise, and for the plain datasets, step s reads
positions `[s * B, (s + 1) * B)` of the endless concatenation of per-epoch permutations of the
fixed train split, the permutation of epoch e seeded with `(seed, e)`.

Batches of a fixed split carry `index` int32 [b], each example's position in its split
(`load_split` order), so per-example data of an earlier phase (an `ExampleStore`) can be joined in
by index; fresh canvases have no such position, so on-the-fly batches carry none. The last
`validation_examples` examples of the train split form the 'validation' split, which keeps the
train split's indices and which training batches never show (see `config.index_range`).
"""

import functools

import numpy as np

from glimpse_jax.data import builders
from glimpse_jax.data import canvas
from glimpse_jax.data import cifar
from glimpse_jax.data import config as config_lib
from glimpse_jax.data import device_canvas
from glimpse_jax.data import device_sampling
from glimpse_jax.data import digit_string_splits
from glimpse_jax.data import digit_strings
from glimpse_jax.data import sources
from glimpse_jax.data import store as store_lib

SPLITS = ("train", "validation", "test")
BATCH_KEYS = ("image", "label", "center", "box_size", "index", "mask", "stored", "caption",
              "caption_length", "digit_center", "digit_size", "digit_index")
_PERMUTATION_TAG = 0xE90C  # keeps epoch permutations apart from other seeded generators


def load_split(cfg, split):
  """A whole fixed split: built and cached through tfds for derived names, the source's else.

  Args:
    cfg: the dataset config.
    split: 'train' (`train_examples` examples, the validation ones included), 'validation' (the
      last `validation_examples` of those) or 'test' (`eval_examples`).

  Returns:
    Read-only arrays in a fixed order: image uint8 [N, H, W, C], label int32 [N],
    center float32 [N, 2], box_size float32 [N]; for 'digit_strings' image and the caption
    fields instead (see `digit_strings.make_examples`).
  """
  config_lib.validate_config(cfg)
  _check_split(cfg, split)
  if cfg.name in config_lib.CAPTION_NAMES:
    rows = (config_lib.index_range(cfg, split) if split == "validation"
            else (0, config_lib.split_size(cfg, split)))
    return digit_string_splits.fixed_rows(cfg, "test" if split == "test" else "train", *rows)
  if split == "validation":
    start, stop = config_lib.index_range(cfg, split)
    if cfg.name in config_lib.DERIVED_NAMES:
      return builders.load_fixed_rows(cfg, "train", start, stop)
    return _plain_arrays(cfg, "train", start, stop)
  if cfg.name in config_lib.DERIVED_NAMES:
    return builders.load_fixed_split(cfg, split)
  return _plain_arrays(cfg, split, 0, config_lib.split_size(cfg, split))


def split_indices(cfg, split):
  """int32 [n] the example indices of a split's batches: for 'train', those training draws from.

  'validation' indices are positions in the train split; `eval_examples` does not shorten them.
  """
  config_lib.validate_config(cfg)
  _check_split(cfg, split)
  return np.arange(*config_lib.index_range(cfg, split), dtype=np.int32)


def _check_split(cfg, split):
  splits = SPLITS if cfg.validation_examples else ("train", "test")
  if split not in splits:
    raise ValueError(
        f"split must be one of {splits}, got {split!r}"
        + ("; set dataset.validation_examples > 0 for a 'validation' split"
           if split == "validation" else ""))


def _plain_arrays(cfg, split, start, stop):
  """Plain source images `[start, stop)` of a split: centered (location (0, 0)), box_size = side."""
  if cfg.source == cifar.SOURCE:
    images, labels = cifar.load_cifar10(split, cfg.data_dir, download=cfg.download)
  else:
    images, labels = sources.load_digits(cfg.source, split, cfg.data_dir, download=cfg.download)
    images = images[..., None]  # [N, 28, 28, 1]
  if labels.shape[0] < stop:
    raise ValueError(
        f"the {cfg.source} {split} split holds {labels.shape[0]} examples, fewer than the "
        f"{stop} the dataset config asks for")
  n = stop - start
  arrays = {
      "image": images[start:stop],
      "label": labels[start:stop].astype(np.int32),
      "center": np.zeros((n, 2), dtype=np.float32),
      "box_size": np.full(n, images.shape[1], dtype=np.float32),
  }
  for value in arrays.values():
    value.setflags(write=False)
  return arrays


def train_stream(cfg, batch_size, *, seed, start_step=0, process_index=0, process_count=1,
                 join=None, recipes=False):
  """An endless iterator over this process's slice of the global training batches.

  Training never shows the 'validation' examples: the fixed train split's permutations cover only
  the examples before them, and on the fly the base digits are drawn from the digits before them.

  Args:
    cfg: the dataset config.
    batch_size: the global batch size; a multiple of `process_count`.
    seed: the run's data seed (the fixed splits use `cfg.seed`).
    start_step: the step of the first batch yielded.
    process_index: this process's index in `[0, process_count)`.
    process_count: the number of processes sharing the global batch.
    join: a `StoredFields` whose fields each batch gains by its `index` (see `eval_batches`);
      needs a fixed train split (`dataset.train_on_the_fly=False` for derived names).
    recipes: canvases drawn on the fly (derived names) come as `device_canvas` recipes, to be
      composed by `device_canvas.compose` (see `composer`), when `cfg.compose_on_device`.

  Returns:
    An iterator of dicts: image float32 [b, H, W, C] in [0, 1], label int32 [b],
    center float32 [b, 2], box_size float32 [b] ('digit_strings': the caption fields instead),
    with b = batch_size / process_count; from a fixed train split (not on the fly) also
    index int32 [b].
  """
  config_lib.validate_config(cfg)
  rows = _process_rows(batch_size, process_index, process_count)
  _check_non_negative("seed", seed)
  _check_non_negative("start_step", start_step)
  on_the_fly = cfg.name in config_lib.GENERATED_NAMES and cfg.train_on_the_fly
  if join is not None and on_the_fly:
    raise ValueError(
        "join needs training batches with an index naming a fixed image: set "
        "dataset.train_on_the_fly=False (canvases drawn on the fly are new images every step)")
  _check_join(join)
  n = config_lib.index_range(cfg, "train")[1]
  if on_the_fly and cfg.name in config_lib.CAPTION_NAMES:
    batch_at = functools.partial(
        _fresh_digit_strings, config_lib.digit_string_spec(cfg),
        *digit_string_splits.training_digits(cfg), batch_size, seed, rows)
  elif on_the_fly:
    images, labels = sources.load_digits(cfg.source, "train", cfg.data_dir, download=cfg.download)
    batch_at = functools.partial(
        _fresh_recipe if recipes and _composes(cfg) else _fresh_batch,
        config_lib.canvas_spec(cfg), images[:n], labels[:n], batch_size, seed, rows)
  else:
    batch_at = functools.partial(
        _permuted_batch, load_split(cfg, "train"), n, batch_size, seed, rows)
  return _count_from(start_step, batch_at, join)


def _count_from(start_step, batch_at, join):
  step = start_step
  while True:
    yield _joined(batch_at(step), join)
    step += 1


def _fresh_batch(spec, images, labels, batch_size, seed, rows, step):
  """Rows of a global batch of new canvases drawn from `(seed, step)`."""
  rng = np.random.default_rng([seed, step])
  digit = rng.integers(0, images.shape[0], size=batch_size)
  layout = canvas.sample_layout(rng, spec, digit, images.shape[0]).rows(*rows)
  return _to_float(canvas.make_examples(layout, spec, images, labels))


def _fresh_recipe(spec, images, labels, batch_size, seed, rows, step):
  """`_fresh_batch`'s canvases as a recipe, composed later by `device_canvas.compose`."""
  rng = np.random.default_rng([seed, step])
  digit = rng.integers(0, images.shape[0], size=batch_size)
  layout = canvas.sample_layout(rng, spec, digit, images.shape[0]).rows(*rows)
  return device_canvas.recipe_examples(layout, spec, images, labels)


def _composes(cfg):
  """Whether training batches of `cfg` can come as recipes (derived canvases on the fly)."""
  return (cfg.get("compose_on_device", False) and cfg.train_on_the_fly
          and cfg.name in config_lib.DERIVED_NAMES)


def composer(cfg):
  """`batch -> batch`, traceable: composes a recipe batch of `cfg`'s canvases (see
  `train_stream(recipes=True)`); any other batch passes unchanged."""
  if not _composes(cfg):
    return lambda batch: batch
  compose = functools.partial(device_canvas.compose, canvas_size=cfg.canvas_size,
                              max_size=config_lib.max_digit_size(cfg),
                              resize=config_lib.canvas_spec(cfg).scale_range is not None)
  return lambda batch: compose(batch) if device_canvas.is_recipe(batch) else batch


def device_sampler(cfg, batch_size, *, seed):
  """A `device_sampling.Sampler` of the training canvases of `cfg` when they are drawn on the
  device (`cfg.sample_on_device`, derived canvases on the fly), else None.

  Its batches are global (`batch_size` rows) and follow `train_stream`'s distribution from
  another generator: a pure function of (seed, step). The pool holds the same training digits
  (never the 'validation' tail).
  """
  config_lib.validate_config(cfg)
  if not (cfg.get("sample_on_device", False) and _composes(cfg)):
    return None
  _check_non_negative("seed", seed)
  n = config_lib.index_range(cfg, "train")[1]
  images, labels = sources.load_digits(cfg.source, "train", cfg.data_dir, download=cfg.download)
  return device_sampling.sampler(config_lib.canvas_spec(cfg), images[:n], labels[:n],
                                 batch_size, seed, max_size=config_lib.max_digit_size(cfg))


def _fresh_digit_strings(spec, images, labels, batch_size, seed, rows, step):
  """Rows of a global batch of new digit strings drawn from `(seed, step)`."""
  rng = np.random.default_rng([seed, step])
  layout = digit_strings.sample_layout(rng, spec, batch_size, 0, images.shape[0]).rows(*rows)
  return _to_float(digit_strings.make_examples(layout, spec, images, labels))


def _permuted_batch(arrays, n, batch_size, seed, rows, step):
  """Rows of global batch `step` of the per-epoch permutations of a split's first `n` examples."""
  position = step * batch_size + np.arange(*rows)  # [b] positions in the endless stream
  epoch, offset = np.divmod(position, n)
  index = np.empty_like(position)
  for e in np.unique(epoch):
    here = epoch == e
    index[here] = _permutation(seed, int(e), n)[offset[here]]
  batch = _to_float({key: value[index] for key, value in arrays.items()})
  batch["index"] = index.astype(np.int32)
  return batch


@functools.lru_cache(maxsize=4)
def _permutation(seed, epoch, n):
  order = np.random.default_rng([_PERMUTATION_TAG, seed, epoch]).permutation(n)
  order.setflags(write=False)
  return order


def eval_batches(cfg, batch_size, *, split="test", process_index=0, process_count=1,
                 join=None):
  """One pass in fixed order over the first `eval_examples` examples of a fixed split.

  The last global batch is padded to `batch_size` with zero rows; every process gets the same
  number of batches.

  Args:
    cfg: the dataset config.
    batch_size: the global batch size; a multiple of `process_count`.
    split: 'test', 'validation' or 'train'.
    process_index: this process's index in `[0, process_count)`.
    process_count: the number of processes sharing the global batch.
    join: a `StoredFields` keyed by this split's indices (a 'validation' pass uses the train
      split's); each batch gains its fields (zeros where `stored` is 0) and stored float32 [b],
      1 where the example has a record, like `mask` a weight a loss can multiply by.

  Returns:
    An iterator of this process's slices, as in `train_stream`, plus index int32 [b] (the
    example's position in its split; 0 for padding) and mask float32 [b] (1 for real examples,
    0 for padding).
  """
  config_lib.validate_config(cfg)
  rows = _process_rows(batch_size, process_index, process_count)
  _check_join(join)
  arrays = load_split(cfg, split)
  n = arrays["image"].shape[0]
  if cfg.eval_examples is not None:
    n = min(n, cfg.eval_examples)
  first = config_lib.index_range(cfg, split)[0] if split == "validation" else 0
  return _padded_batches(arrays, np.arange(n), first, batch_size, rows, join)


def index_batches(cfg, split, indices, batch_size, *, process_index=0, process_count=1,
                  join=None):
  """One pass over chosen examples of a fixed split, in the given order, padded as `eval_batches`.

  Args:
    cfg: the dataset config.
    split: 'train' (any position of the train split, validation tail included), 'validation'
      (positions of the train split's tail, as its batches' `index`) or 'test'.
    indices: [n] example indices; each batch's `index` holds them.
    batch_size: the global batch size; a multiple of `process_count`.
    process_index: this process's index in `[0, process_count)`.
    process_count: the number of processes sharing the global batch.
    join: a `StoredFields`, as in `eval_batches`.

  Returns:
    An iterator of this process's slices of `ceil(n / batch_size)` batches, as `eval_batches`'.
  """
  config_lib.validate_config(cfg)
  rows = _process_rows(batch_size, process_index, process_count)
  _check_split(cfg, split)
  _check_join(join)
  indices = np.asarray(indices)
  if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
    raise ValueError(
        f"indices must be a 1-D integer array, got {indices.dtype} {indices.shape}")
  first, stop = config_lib.index_range(cfg, split)
  if split == "train":
    stop = config_lib.split_size(cfg, "train")
  outside = (indices < first) | (indices >= stop)
  if outside.any():
    i = int(np.argmax(outside))
    raise ValueError(
        f"indices of split {split!r} must lie in [{first}, {stop}), got {indices[i]} at "
        f"position {i}")
  return _padded_batches(load_split(cfg, split), indices.astype(np.int64) - first, first,
                         batch_size, rows, join)


def _padded_batches(arrays, positions, first, batch_size, rows, join):
  """Batches of `arrays[positions]` in order, the last padded; `index` = position + first."""
  n = positions.shape[0]
  for start in range(0, n, batch_size):
    slot = start + np.arange(*rows)  # [b] places in the pass
    real = slot < n
    position = positions[np.minimum(slot, n - 1)]
    batch = {key: value[position] for key, value in arrays.items()}
    for value in batch.values():
      value[~real] = 0
    batch = _to_float(batch)
    batch["index"] = np.where(real, position + first, 0).astype(np.int32)
    batch["mask"] = real.astype(np.float32)
    yield _joined(batch, join)


def _check_join(join):
  if join is None:
    return
  if not isinstance(join, store_lib.StoredFields):
    raise ValueError(
        f"join must be a StoredFields (from ExampleStore.open), got {type(join).__name__}")
  clash = sorted(set(join.fields) & set(BATCH_KEYS))
  if clash:
    raise ValueError(
        f"join fields {clash} clash with the batch's own keys {BATCH_KEYS}; store them under "
        "other names")


def _joined(batch, join):
  """The batch with `join`'s fields of its examples and `stored` (0 on padding rows)."""
  if join is None:
    return batch
  found = join.lookup(batch["index"])
  stored = found.pop("stored")
  if "mask" in batch:
    stored &= batch["mask"] > 0
    for value in found.values():
      value[~stored] = 0
  batch.update(found)
  batch["stored"] = stored.astype(np.float32)
  return batch


def _to_float(examples):
  """Split arrays -> a batch: the uint8 images become float32 in [0, 1]."""
  batch = dict(examples)
  batch["image"] = examples["image"].astype(np.float32) / np.float32(255)
  return batch


def _process_rows(batch_size, process_index, process_count):
  """`(start, stop)` of this process's rows of the global batch."""
  if isinstance(process_count, bool) or not isinstance(process_count, int) or process_count < 1:
    raise ValueError(f"process_count must be an integer >= 1, got {process_count!r}")
  if not isinstance(process_index, int) or not 0 <= process_index < process_count:
    raise ValueError(
        f"process_index must be in [0, {process_count}), got {process_index!r}")
  if (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
      or batch_size % process_count):
    raise ValueError(
        f"batch_size must be a positive multiple of process_count={process_count}, "
        f"got {batch_size!r}")
  local = batch_size // process_count
  return process_index * local, (process_index + 1) * local


def _check_non_negative(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
