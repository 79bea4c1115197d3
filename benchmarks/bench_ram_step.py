"""RAM training throughput: the shared loop's jitted update (loss, grads, Adam, metric sums).

Times `train.make_steps(...).update` on one device-resident batch of 128, as the loop calls it
(state and accumulator donated), for the `mnist` variant with 6 glimpses and `translated60` with
4 glimpses of 3 scales. Prints images/s (median of timed windows after warm-up) and the achieved
GFLOP/s, counting 3x the forward pass's matrix-product FLOPs (forward + two backward products;
XLA's own cost analysis counts a scan body once, not once per glimpse).

Run: python benchmarks/bench_ram_step.py   (or `make bench`)
"""

import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))

from experiments import ram  # noqa: E402
from glimpse_jax import data, train  # noqa: E402
from glimpse_jax.train import step as step_lib  # noqa: E402

CASES = (('mnist', {'model.num_glimpses': 6}), ('translated60', {'model.num_glimpses': 4}))
BATCH, WINDOWS, STEPS_PER_WINDOW = 128, 7, 40


def _config(variant, overrides):
  config = ram.get_config(variant)
  with config.unlocked():
    config.batch_size = BATCH
    for field, value in overrides.items():
      section, name = field.split('.')
      config[section][name] = value
  return config


def matmul_flops_per_image(config) -> float:
  """3 x the forward matrix-product FLOPs of one RAM episode (2 FLOPs per multiply-add)."""
  m = config.model
  height, width, channels = data.image_shape(config.dataset)
  patch = m.num_scales * m.glimpse_size**2 * channels
  per_glimpse = (patch * m.what_features + 2 * m.where_features
                 + (m.what_features + m.where_features) * m.glimpse_features
                 + (m.glimpse_features + m.core_features) * m.core_features
                 + m.core_features * (2 + 1))  # location mean and baseline
  forward = m.num_glimpses * per_glimpse + m.core_features * data.num_classes(config.dataset)
  return 3 * 2 * forward


def measure(variant: str, overrides: dict) -> dict[str, float]:
  """Images/s and GFLOP/s of the jitted RAM update for one config."""
  config = _config(variant, overrides)
  experiment = ram.make_experiment(config)
  mesh = train.make_data_mesh()
  tx, _ = train.make_optimizer(config.optimizer, config.num_steps)
  host_batch = next(data.train_stream(config.dataset, BATCH, seed=0))
  batch = jax.device_put(host_batch, train.mesh.batch_sharding(mesh))
  replicated = train.mesh.replicated(mesh)
  state = train.create_state(experiment, tx, jax.random.key(0), host_batch, replicated)
  steps = train.make_steps(experiment, mesh, grad_variance_draws=2)
  rng = jax.device_put(jax.random.key(1), replicated)
  names = sorted(jax.eval_shape(step_lib.train_step, state, batch, rng)[1])
  acc = jax.device_put(step_lib.init_accumulator(names), replicated)
  for _ in range(STEPS_PER_WINDOW):  # warm-up, including compilation
    state, acc = steps.update(state, acc, batch, rng)
  jax.block_until_ready(state)
  rates = []
  for _ in range(WINDOWS):
    start = time.perf_counter()
    for _ in range(STEPS_PER_WINDOW):
      state, acc = steps.update(state, acc, batch, rng)
    jax.block_until_ready(state)
    rates.append(STEPS_PER_WINDOW / (time.perf_counter() - start))
  steps_per_second = float(np.median(rates))
  flops = matmul_flops_per_image(config)
  return {'images_per_second': BATCH * steps_per_second,
          'gflops_per_second': flops * BATCH * steps_per_second / 1e9,
          'mflop_per_image': flops / 1e6}


def main() -> dict[str, float]:
  figures = {}
  print(f'RAM training step, batch {BATCH}, {jax.devices()[0].device_kind} x '
        f'{jax.device_count()} (median of {WINDOWS} windows of {STEPS_PER_WINDOW} updates)')
  for variant, overrides in CASES:
    result = measure(variant, overrides)
    label = f"{variant}_g{overrides['model.num_glimpses']}"
    print(f"  {label:16s} {result['images_per_second']:9,.0f} images/s  "
          f"{result['gflops_per_second']:6.1f} GFLOP/s  ({result['mflop_per_image']:.2f} MFLOP "
          f'per image)')
    figures.update({f'{label}_{k}': v for k, v in result.items()})
  return figures


if __name__ == '__main__':
  main()
