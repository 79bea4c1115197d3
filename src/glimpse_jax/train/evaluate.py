"""Mask-weighted averages of an experiment's per-example evaluation values over a split."""

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from glimpse_jax.train import mesh as mesh_lib


def evaluate(eval_fn: Callable, params: Any, host_batches: Iterable[Mapping[str, np.ndarray]],
             sharding: NamedSharding, rng: jax.Array, *, max_batches: int = 0,
             frozen: Any = None) -> dict[str, float]:
  """Averages of `eval_fn`'s sums over `host_batches` (the first `max_batches` if > 0).

  Args:
    eval_fn: the jitted `(params, batch, rng, frozen) -> {name: masked sum, 'examples': mask sum}`.
    params: replicated parameters.
    host_batches: numpy batches with a `mask` [B] (0 for padding rows).
    sharding: the batch sharding.
    rng: batch `i` is evaluated with `fold_in(rng, i)`.
    max_batches: evaluate only this many batches (0: all).
    frozen: the frozen models' parameters, or None.

  Returns:
    `{name: mean over real examples}` and `examples`, the number of real examples.
  """
  if max_batches < 0:
    raise ValueError(f'max_batches must be >= 0, got {max_batches}')
  batches = itertools.islice(host_batches, max_batches or None)
  totals = None
  for index, batch in enumerate(batches):
    sums = eval_fn(params, mesh_lib.shard_batch(batch, sharding), jax.random.fold_in(rng, index),
                   *(() if frozen is None else (frozen,)))
    totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
  if totals is None:
    raise ValueError('the evaluation split yielded no batches')
  totals = mesh_lib.fetch(totals)
  examples = float(totals.pop('examples'))
  if examples <= 0:
    raise ValueError('the evaluation batches hold no real examples (all masks are 0)')
  return {**{name: float(value) / examples for name, value in totals.items()},
          'examples': int(examples)}


def batches_for(num_examples: int, batch_size: int) -> int:
  """How many evaluation batches cover `num_examples` (0 stays 0: the whole split)."""
  return math.ceil(num_examples / batch_size) if num_examples else 0
