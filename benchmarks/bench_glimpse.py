"""Retina kernel timings: O(patch) cost on large images and the two RAM training cases.

Run on its own (`python benchmarks/bench_glimpse.py`) or through `benchmarks/run_all.py`.
Every figure is the median of timed repeats after a warm-up call, with `block_until_ready`.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from glimpse_jax import glimpse

REPEATS = 50


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_inputs(key, batch, side):
  image_key, loc_key = jax.random.split(key)
  images = jax.random.uniform(image_key, (batch, side, side, 1))  # [B, H, W, 1]
  locs = jax.random.uniform(loc_key, (batch, 2), minval=-1.0, maxval=1.0)  # [B, 2]
  return images, locs


def _median_ms(fn, *args):
  """Median wall time of `fn(*args)` in milliseconds, after one warm-up call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(REPEATS):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def _batched_retina(size, num_scales):
  """The retina jitted and vmapped over a batch: [B, H, W, C], [B, 2] -> [B, S, size, size, C]."""
  read_one = functools.partial(glimpse.retina, size=size, num_scales=num_scales)
  return jax.jit(jax.vmap(read_one))


def _rollout(size, num_scales):
  """A jitted scan of batched reads, each location depending on the last patch as in RAM."""
  read = jax.vmap(functools.partial(glimpse.retina, size=size, num_scales=num_scales))
  to_shift = jnp.full((num_scales * size * size, 2), 1e-4)  # a stand-in for the policy network

  def run(images, loc_t):
    def step(shift, loc):
      patches = read(images, jnp.clip(loc + shift, -1.0, 1.0))  # [B, S, size, size, 1]
      return patches.reshape(patches.shape[0], -1) @ to_shift, None
    return jax.lax.scan(step, jnp.zeros((images.shape[0], 2)), loc_t)[0]

  return jax.jit(run)


def time_image_sizes(batch=256, size=12, num_scales=3, sides=(64, 1024)):
  """Batched retina time on small and large images: O(patch) cost makes the ratio near one."""
  read = _batched_retina(size, num_scales)
  figures = {}
  for side in sides:
    images, locs = _random_inputs(jax.random.key(side), batch, side)
    ms = _median_ms(read, images, locs)
    figures[f'retina_{side}px_ms'] = ms
    figures[f'retina_{side}px_glimpses_per_s'] = batch / ms * 1e3
    del images
  figures[f'retina_ratio_{sides[1]}px_over_{sides[0]}px'] = (
      figures[f'retina_{sides[1]}px_ms'] / figures[f'retina_{sides[0]}px_ms'])
  return figures


def time_training_case(name, side, size, num_scales, num_glimpses, batch=128):
  """One batched read and a scanned rollout of `num_glimpses` reads, as a RAM step pays them."""
  images, locs = _random_inputs(jax.random.key(side), batch, side)
  loc_t = jax.random.uniform(jax.random.key(1), (num_glimpses, batch, 2), minval=-1.0,
                             maxval=1.0)  # [T, B, 2]
  read_ms = _median_ms(_batched_retina(size, num_scales), images, locs)
  rollout_ms = _median_ms(_rollout(size, num_scales), images, loc_t)
  return {f'{name}_read_ms': read_ms,
          f'{name}_glimpses_per_s': batch / read_ms * 1e3,
          f'{name}_rollout_{num_glimpses}_glimpses_ms': rollout_ms}


def main():
  """Prints and returns the retina figures."""
  figures = {}
  figures.update(time_image_sizes())
  figures.update(time_training_case('mnist28_1x8px_b128', side=28, size=8, num_scales=1,
                                    num_glimpses=6))
  figures.update(time_training_case('canvas60_3x12px_b128', side=60, size=12, num_scales=3,
                                    num_glimpses=4))
  print(f'retina benchmark on {jax.devices()[0].device_kind} ({jax.device_count()} device(s)), '
        f'median of {REPEATS} repeats')
  for key, value in figures.items():
    print(f'  {key:48s} {value:12.4f}')
  return figures


if __name__ == '__main__':
  main()
