"""Timing the shared loop's jitted update (loss, grads, optimizer, metric sums) for benchmarks.

`Update` holds one config's compiled update with its own state, accumulator, device batch and key,
called as the loop calls it (state and accumulator donated); `time_in_turn` times several of them
window by window, alternating their order, so every one meets the same machine load.
"""

import functools
import time
from collections.abc import Callable, Mapping

import jax
import numpy as np

from glimpse_jax import data, train
from glimpse_jax.train import step as step_lib


class Update:
  """One config's jitted update on one device-resident training batch of `batch_size`.

  With `draw_in_step`, the update instead draws its canvases from the device's digit pool, as
  the loop's update does with `dataset.sample_on_device` (the batch argument is then the pool).
  """

  def __init__(self, config, make_experiment: Callable, batch_size: int,
               draw_in_step: bool = False):
    experiment = make_experiment(config)
    mesh = train.make_data_mesh()
    tx, _ = train.make_optimizer(config.optimizer, config.num_steps)
    self.batch_size = batch_size
    replicated = train.mesh.replicated(mesh)
    batch_sharding = train.mesh.batch_sharding(mesh)
    prepare = None
    if draw_in_step:
      sampler = data.device_sampler(config.dataset, batch_size, seed=0)
      if sampler is None:
        raise ValueError(
            'draw_in_step needs canvases drawn on the device (dataset.sample_on_device=True, '
            f'derived canvases drawn on the fly); got dataset.name={config.dataset.name!r}, '
            f'sample_on_device={config.dataset.get("sample_on_device")!r}, '
            f'train_on_the_fly={config.dataset.get("train_on_the_fly")!r}')
      self.batch = jax.device_put(sampler.pool, replicated)
      prepare = lambda pool, step: jax.lax.with_sharding_constraint(
          sampler.sample(pool, step), batch_sharding)
      host_batch = jax.tree.map(np.asarray, jax.jit(sampler.sample)(self.batch, 0))
    else:
      host_batch = next(data.train_stream(config.dataset, batch_size, seed=0))
      self.batch = jax.device_put(host_batch, batch_sharding)
    self.state = train.create_state(experiment, tx, jax.random.key(0), host_batch, replicated)
    self.steps = train.make_steps(experiment, mesh, grad_variance_draws=2, prepare=prepare)
    self.rng = jax.device_put(jax.random.key(1), replicated)
    names = sorted(jax.eval_shape(functools.partial(step_lib.train_step, prepare=prepare),
                                  self.state, self.batch, self.rng)[1])
    self.acc = jax.device_put(step_lib.init_accumulator(names), replicated)

  def run(self, num_steps: int) -> float:
    """Seconds for `num_steps` updates."""
    start = time.perf_counter()
    for _ in range(num_steps):
      self.state, self.acc = self.steps.update(self.state, self.acc, self.batch, self.rng)
    jax.block_until_ready(self.state)
    return time.perf_counter() - start


def time_in_turn(updates: Mapping[str, Update], windows: int,
                 steps_per_window: int) -> dict[str, float]:
  """{name: images/s}, the median over `windows` timed windows after one warm-up window each.

  Windows alternate the order of the updates, so slow and fast stretches of a loaded machine
  fall on all of them alike.
  """
  for update in updates.values():
    update.run(steps_per_window)  # warm-up, including compilation
  seconds = {name: [] for name in updates}
  for window in range(windows):
    names = list(updates) if window % 2 == 0 else list(reversed(updates))
    for name in names:
      seconds[name].append(updates[name].run(steps_per_window))
  return {name: updates[name].batch_size * steps_per_window / float(np.median(times))
          for name, times in seconds.items()}
