"""The splits of the multi-digit MNIST strings (`dataset.name='digit_strings'`).

Every split draws its digits from the matching source split, and only from its own pool of it:
- 'test': `eval_examples` canvases (default 10,000) of the first `min(eval_examples, 10000)`
  test digits;
- 'train': `train_examples` canvases (default 60,000) of the first `m = min(train_examples,
  60000)` train digits; its last `validation_examples` canvases form the 'validation' split and
  take their digits from the last `validation_examples` of those m digits only, the other
  canvases (and the training stream drawn on the fly) from the first `m - validation_examples`.
So no training canvas shows a validation or test digit. Digits are drawn uniformly from a pool,
so a digit may appear on several canvases of one split.

Canvas i of a fixed split comes from a generator seeded with `(seed, split, i // 1000)` that draws
the whole chunk of 1000 canvases, so any range of rows can be generated alone. There is no disk
cache: the splits are generated in memory (about 10,000 canvases a second on one core) and the
last few row ranges read are kept. Training batches drawn on the fly (`pipeline.train_stream`)
come from `np.random.default_rng([seed, step])`, as the other canvases'.
"""

import functools

import numpy as np

from glimpse_jax.data import config as config_lib
from glimpse_jax.data import digit_strings
from glimpse_jax.data import sources

_CHUNK = 1000  # canvases drawn from one generator
_FIXED_SPLIT_TAG = 0xD161  # keeps these generators apart from the other seeded ones


def pools(cfg, split, rows):
  """`(start, stop)`, each `[n]`: the source digits each row of a fixed split draws from.

  Args:
    cfg: a validated 'digit_strings' dataset config.
    split: 'train' or 'test' (validation rows are train rows).
    rows: `[n]` row indices of the split.
  """
  if split not in sources.SPLITS:
    raise ValueError(f"split must be one of {sources.SPLITS}, got {split!r}")
  return _pools(config_lib.split_size(cfg, split), sources.SPLIT_SIZES[split],
                _held(cfg, split), np.asarray(rows))


def _held(cfg, split):
  """Canvases at the end of a split that form the validation split (and own its digit pool)."""
  return cfg.validation_examples if split == "train" else 0


def _pools(n, source_size, held, rows):
  """`pools` of a split of `n` canvases over `source_size` digits, the last `held` validation."""
  digits = min(n, source_size)
  validation = rows >= n - held if held else np.zeros(rows.shape, dtype=bool)
  start = np.where(validation, digits - held, 0)
  stop = np.where(validation, digits, digits - held)
  return start, stop


def fixed_rows(cfg, split, start, stop):
  """Canvases `[start, stop)` of a fixed split of a validated 'digit_strings' config.

  Returns:
    Read-only arrays, as `digit_strings.make_examples` returns them, with `digit_index` the
    digits' indices in the source split (-1 for empty slots).
  """
  config_lib.validate_config(cfg)
  n = config_lib.split_size(cfg, split)
  if not 0 <= start < stop <= n:
    raise ValueError(
        f"rows [{start}, {stop}) must be a non-empty range inside the {n} canvases of the "
        f"{split} split")
  return _fixed_rows(cfg.source, cfg.data_dir, cfg.download, config_lib.digit_string_spec(cfg),
                     cfg.seed, split, n, _held(cfg, split), start, stop)


@functools.lru_cache(maxsize=4)
def _fixed_rows(source, data_dir, download, spec, seed, split, n, held, start, stop):
  """`fixed_rows`, from the config fields that change the rows (so they key the cache)."""
  images, labels = sources.load_digits(source, split, data_dir, download=download)
  split_id = sources.SPLITS.index(split)
  chunks = []
  for first in range(start - start % _CHUNK, stop, _CHUNK):
    rng = np.random.default_rng([_FIXED_SPLIT_TAG, seed, split_id, first // _CHUNK])
    rows = np.arange(first, first + _CHUNK)
    pool_start, pool_stop = _pools(n, sources.SPLIT_SIZES[split], held, rows)
    layout = digit_strings.sample_layout(rng, spec, _CHUNK, pool_start, pool_stop)
    layout = layout.rows(max(start - first, 0), min(stop - first, _CHUNK))
    chunks.append(digit_strings.make_examples(layout, spec, images, labels))
  arrays = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  for value in arrays.values():
    value.setflags(write=False)
  return arrays


def training_digits(cfg):
  """`(images [m, 28, 28], labels [m])`: the source digits training canvases draw from, the
  first m of the train split (see the module docstring)."""
  images, labels = sources.load_digits(cfg.source, "train", cfg.data_dir, download=cfg.download)
  stop = int(pools(cfg, "train", [0])[1][0])
  return images[:stop], labels[:stop]
