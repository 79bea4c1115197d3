"""Retina kernel timings: O(patch) cost on large images and the two RAM training cases.

Run on its own (`python benchmarks/bench_glimpse.py`) or through `benchmarks/run_all.py`.
Every figure is a median over timed repeats after a warm-up call, with `block_until_ready`.

The 64 px vs 1024 px comparison reads the same 48x48 window per image in both cases, so the
kernel does identical work and only memory differs: on a 1 GiB batch each window row sits on its
own page, far from the last. The two sizes are timed in turn within one loop, so both meet the same
machine load and cache state (timed back to back instead, the small case keeps its whole 4 MiB
batch in cache between calls, which a training step reading a fresh batch never does). A bare
`dynamic_slice` of the same windows is timed alongside: the memory system's own ratio for this
access pattern, which no kernel can beat.

`make bench` runs with transparent huge pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, the 2 MiB
pages NumPy already requests for its own large arrays; JAX's host allocator does not), so the
48 rows of a 1024 px window share one or two pages; `huge_page_gib` reports how much memory
they backed. With 4 KiB pages the 1024 px case pays one address translation per window row
(256 x 48 of them).
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from glimpse_jax import glimpse

REPEATS = 50
SIZE_REPEATS = 200  # the image-size pairs are sub-millisecond: more repeats for a steady median


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_inputs(key, batch, side):
  image_key, loc_key = jax.random.split(key)
  images = jax.random.uniform(image_key, (batch, side, side, 1))  # [B, H, W, 1]
  locs = jax.random.uniform(loc_key, (batch, 2), minval=-1.0, maxval=1.0)  # [B, 2]
  return images, locs


def _median_ms(calls, repeats):
  """Median ms of each `(fn, args)` in `calls` over `repeats`, after one warm-up call each.

  The calls are timed in turn (order alternating) per repeat, so several cases meet the same
  machine load and cache state and their ratios are not skewed by drift between timing loops.
  """
  for fn, args in calls:
    jax.block_until_ready(fn(*args))
  times = [[] for _ in calls]
  for r in range(repeats):
    order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
    for i in order:
      fn, args = calls[i]
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[i].append(time.perf_counter() - start)
  return [1e3 * float(np.median(t)) for t in times]


def _batched_retina(size, num_scales):
  """The retina jitted and vmapped over a batch: [B, H, W, C], [B, 2] -> [B, S, size, size, C]."""
  read_one = functools.partial(glimpse.retina, size=size, num_scales=num_scales)
  return jax.jit(jax.vmap(read_one))


def _batched_bare_slice(side):
  """The largest retina window cut with a clamped `dynamic_slice`, no masking or averaging."""
  def cut(image, loc):
    height, width, channels = image.shape
    center = glimpse.loc_to_pixel(loc, height, width)  # [2] (column, row)
    left, top = jnp.floor(center - side / 2 + 0.5).astype(jnp.int32)
    return jax.lax.dynamic_slice(image, (top, left, 0), (side, side, channels))
  return jax.jit(jax.vmap(cut))


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


def _huge_page_gib():
  """GiB of this process's memory on transparent huge pages (0.0 where the OS does not say)."""
  try:
    with open('/proc/self/smaps_rollup') as f:
      for line in f:
        if line.startswith('AnonHugePages:'):
          return int(line.split()[1]) / 2**20
  except OSError:
    pass
  return 0.0


def time_image_sizes(batch=256, size=12, num_scales=3, sides=(64, 1024)):
  """Retina and bare-slice times on small and large images, interleaved; ratios near one."""
  small, large = sides
  largest = size * 2**(num_scales - 1)
  read, cut = _batched_retina(size, num_scales), _batched_bare_slice(largest)
  inputs = {side: _random_inputs(jax.random.key(side), batch, side) for side in sides}
  retina_small, retina_large = _median_ms([(read, inputs[side]) for side in sides], SIZE_REPEATS)
  slice_small, slice_large = _median_ms([(cut, inputs[side]) for side in sides], SIZE_REPEATS)
  return {
      f'retina_{small}px_ms': retina_small,
      f'retina_{large}px_ms': retina_large,
      f'retina_{small}px_glimpses_per_s': batch / retina_small * 1e3,
      f'retina_{large}px_glimpses_per_s': batch / retina_large * 1e3,
      f'retina_ratio_{large}px_over_{small}px': retina_large / retina_small,
      f'bare_slice_ratio_{large}px_over_{small}px': slice_large / slice_small,
      'huge_page_gib': _huge_page_gib(),
  }


def time_training_case(name, side, size, num_scales, num_glimpses, batch=128):
  """One batched read and a scanned rollout of `num_glimpses` reads, as a RAM step pays them."""
  images, locs = _random_inputs(jax.random.key(side), batch, side)
  loc_t = jax.random.uniform(jax.random.key(1), (num_glimpses, batch, 2), minval=-1.0,
                             maxval=1.0)  # [T, B, 2]
  read_ms, rollout_ms = _median_ms([(_batched_retina(size, num_scales), (images, locs)),
                                    (_rollout(size, num_scales), (images, loc_t))], REPEATS)
  return {f'{name}_read_ms': read_ms,
          f'{name}_glimpses_per_s': batch / read_ms * 1e3,
          f'{name}_rollout_{num_glimpses}_glimpses_ms': rollout_ms}


def main():
  """Prints and returns the retina figures."""
  figures = time_image_sizes()
  figures.update(time_training_case('mnist28_1x8px_b128', side=28, size=8, num_scales=1,
                                    num_glimpses=6))
  figures.update(time_training_case('canvas60_3x12px_b128', side=60, size=12, num_scales=3,
                                    num_glimpses=4))
  print(f'retina benchmark on {jax.devices()[0].device_kind} ({jax.device_count()} device(s)); '
        f'image sizes: median of {SIZE_REPEATS} interleaved repeats, '
        f'training cases: median of {REPEATS}')
  for key, value in figures.items():
    print(f'  {key:48s} {value:12.4f}')
  return figures


if __name__ == '__main__':
  main()
