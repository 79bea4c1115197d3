"""Seconds per image of near-optimal glimpse sequences (experiments/near_optimal_glimpses.py).

Times the sequences phase's jitted `generate` (greedy minimum-EPE sequences: T = 6 steps, each
scoring the 16x16 grid's 256 candidates with the variant's `design.samples` completions of a 60x60
cluttered canvas: 64 drawn completions read by the canvas posterior in `sequences`) on one
device-resident batch, with freshly initialised posterior and completion networks (the cost does
not depend on their weights). Prints seconds per image (median of timed batches after warm-up)
and the minutes the variant's 10% of the training set would take at that rate.

Run: python benchmarks/bench_design.py   (or `make bench`)
"""

import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'experiments'))

import near_optimal_glimpses as nog  # noqa: E402
from glimpse_jax import data  # noqa: E402
from glimpse_jax.train.generate import chosen_indices  # noqa: E402

VARIANT, REPEATS = 'sequences', 3


def measure(variant: str = VARIANT, batch_size: int | None = None) -> dict[str, float]:
  """Seconds per image of the sequences phase of `variant`, and its minutes for the stored
  fraction of the training set."""
  phases = nog.get_config(variant).phases
  config = phases.sequences
  batch_size = batch_size or config.eval.batch_size
  height, width, channels = data.image_shape(config.dataset)
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(batch_size, height, width, channels)).astype(np.float32)
  batch = {'image': images, 'label': np.zeros(batch_size, np.int32)}
  key = jax.random.key(0)
  frozen = {name: nog.make_experiment(phases[name]).init(key, batch)
            for name in ('posterior', 'completion')}
  generate = jax.jit(nog.make_experiment(config).generate)
  jax.block_until_ready(generate(batch, key, frozen))  # compilation
  seconds = []
  for i in range(REPEATS):
    start = time.perf_counter()
    jax.block_until_ready(generate(batch, jax.random.key(i + 1), frozen))
    seconds.append(time.perf_counter() - start)
  per_image = float(np.median(seconds)) / batch_size
  examples = chosen_indices(config).size
  return {'seconds_per_image': per_image, 'stored_examples': float(examples),
          'minutes_for_stored_fraction': per_image * examples / 60}


def main() -> dict[str, float]:
  config = nog.get_config(VARIANT).phases.sequences
  m = config.model
  print(f'near-optimal sequences ({VARIANT}: {config.dataset.canvas_size}px, T = '
        f'{m.num_glimpses}, {m.grid_size}x{m.grid_size} candidates, S = {config.design.samples}), '
        f'batch {config.eval.batch_size}, {jax.devices()[0].device_kind} x {jax.device_count()} '
        f'(median of {REPEATS} batches)')
  result = measure()
  print(f"  {result['seconds_per_image']:.3f} s/image; {result['stored_examples']:,.0f} stored "
        f"examples in {result['minutes_for_stored_fraction']:.1f} min")
  return result


if __name__ == '__main__':
  main()
