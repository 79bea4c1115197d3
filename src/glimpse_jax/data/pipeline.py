"""Batches for the training loop: endless seeded training streams and finite evaluation passes.

Every batch is a pure function of its arguments and its step, so a run resumed at step k sees
exactly the batches an uninterrupted run would. `batch_size` is always the global batch; process p
of P gets rows `[p * B / P, (p + 1) * B / P)` of it.

Training batches of the derived datasets are drawn fresh from `np.random.default_rng([seed, step])`
when `train_on_the_fly` (as in the papers); otherwise, and for the plain datasets, step s reads
positions `[s * B, (s + 1) * B)` of the endless concatenation of per-epoch permutations of the
fixed train split, the permutation of epoch e seeded with `(seed, e)`.
"""

import functools

import numpy as np

from glimpse_jax.data import builders
from glimpse_jax.data import canvas
from glimpse_jax.data import config as config_lib
from glimpse_jax.data import sources

_PERMUTATION_TAG = 0xE90C  # keeps epoch permutations apart from other seeded generators


def load_split(cfg, split):
  """A whole fixed split: built and cached through tfds for derived names, the IDX files else.

  Args:
    cfg: the dataset config.
    split: 'train' (`train_examples` examples) or 'test' (`eval_examples`).

  Returns:
    Read-only arrays in a fixed order: image uint8 [N, H, W, 1], label int32 [N],
    center float32 [N, 2], box_size float32 [N].
  """
  config_lib.validate_config(cfg)
  if split not in sources.SPLITS:
    raise ValueError(f"split must be one of {sources.SPLITS}, got {split!r}")
  if cfg.name in config_lib.DERIVED_NAMES:
    return builders.load_fixed_split(cfg, split)
  images, labels = sources.load_digits(cfg.source, split, cfg.data_dir, download=cfg.download)
  n = config_lib.split_size(cfg, split)
  return _plain_arrays(images[:n], labels[:n])


def _plain_arrays(images, labels):
  """The plain 28x28 digits as split arrays: centred (location (0, 0)), box_size 28."""
  n = labels.shape[0]
  arrays = {
      "image": images[..., None],
      "label": labels.astype(np.int32),
      "center": np.zeros((n, 2), dtype=np.float32),
      "box_size": np.full(n, sources.DIGIT_SIZE, dtype=np.float32),
  }
  for value in arrays.values():
    value.setflags(write=False)
  return arrays


def train_stream(cfg, batch_size, *, seed, start_step=0, process_index=0, process_count=1):
  """An endless iterator over this process's slice of the global training batches.

  Args:
    cfg: the dataset config.
    batch_size: the global batch size; a multiple of `process_count`.
    seed: the run's data seed (the fixed splits use `cfg.seed`).
    start_step: the step of the first batch yielded.
    process_index: this process's index in `[0, process_count)`.
    process_count: the number of processes sharing the global batch.

  Returns:
    An iterator of dicts: image float32 [b, H, W, 1] in [0, 1], label int32 [b],
    center float32 [b, 2], box_size float32 [b], with b = batch_size / process_count.
  """
  config_lib.validate_config(cfg)
  rows = _process_rows(batch_size, process_index, process_count)
  _check_non_negative("seed", seed)
  _check_non_negative("start_step", start_step)
  if cfg.name in config_lib.DERIVED_NAMES and cfg.train_on_the_fly:
    images, labels = sources.load_digits(cfg.source, "train", cfg.data_dir, download=cfg.download)
    n = config_lib.split_size(cfg, "train")
    batch_at = functools.partial(
        _fresh_batch, config_lib.canvas_spec(cfg), images[:n], labels[:n], batch_size, seed, rows)
  else:
    batch_at = functools.partial(
        _permuted_batch, load_split(cfg, "train"), batch_size, seed, rows)
  return _count_from(start_step, batch_at)


def _count_from(start_step, batch_at):
  step = start_step
  while True:
    yield batch_at(step)
    step += 1


def _fresh_batch(spec, images, labels, batch_size, seed, rows, step):
  """Rows of a global batch of new canvases drawn from `(seed, step)`."""
  rng = np.random.default_rng([seed, step])
  digit = rng.integers(0, images.shape[0], size=batch_size)
  layout = canvas.sample_layout(rng, spec, digit, images.shape[0]).rows(*rows)
  return _to_float(canvas.make_examples(layout, spec, images, labels))


def _permuted_batch(arrays, batch_size, seed, rows, step):
  """Rows of global batch `step` of the per-epoch permutations of a fixed split."""
  n = arrays["label"].shape[0]
  position = step * batch_size + np.arange(*rows)  # [b] positions in the endless stream
  epoch, offset = np.divmod(position, n)
  index = np.empty_like(position)
  for e in np.unique(epoch):
    here = epoch == e
    index[here] = _permutation(seed, int(e), n)[offset[here]]
  return _to_float({key: value[index] for key, value in arrays.items()})


@functools.lru_cache(maxsize=4)
def _permutation(seed, epoch, n):
  order = np.random.default_rng([_PERMUTATION_TAG, seed, epoch]).permutation(n)
  order.setflags(write=False)
  return order


def eval_batches(cfg, batch_size, *, split="test", process_index=0, process_count=1):
  """One pass in fixed order over the first `eval_examples` examples of a fixed split.

  The last global batch is padded to `batch_size` with zero rows; every process gets the same
  number of batches.

  Returns:
    An iterator of this process's slices, as in `train_stream`, plus mask float32 [b]
    (1 for real examples, 0 for padding).
  """
  config_lib.validate_config(cfg)
  rows = _process_rows(batch_size, process_index, process_count)
  arrays = load_split(cfg, split)
  n = arrays["label"].shape[0]
  if cfg.eval_examples is not None:
    n = min(n, cfg.eval_examples)
  return _padded_batches(arrays, n, batch_size, rows)


def _padded_batches(arrays, n, batch_size, rows):
  for start in range(0, n, batch_size):
    index = start + np.arange(*rows)  # [b]
    real = index < n
    batch = {key: value[np.minimum(index, n - 1)] for key, value in arrays.items()}
    for value in batch.values():
      value[~real] = 0
    batch = _to_float(batch)
    batch["mask"] = real.astype(np.float32)
    yield batch


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
