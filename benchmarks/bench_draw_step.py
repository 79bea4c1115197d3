"""DRAW training throughput (Lindsey 2017's model, experiments/pretrain_attention.py).

Times the shared loop's jitted update (loss, grads, Adam, metric sums) of the classification phase
of `no_guidance_translated` (100x100 translated MNIST, 5x5 read, 256 units, T = 10) on one
device-resident batch of 100. Prints images/s (median of timed windows after warm-up) and the
achieved GFLOP/s, counting 3x the forward pass's matrix-product FLOPs (forward + two backward
products): per step the read `F_y x F_x^T`, the read layer, both LSTMs and the latent layer, then
the classifier. Building the filterbanks (exponentials) is elementwise and left out.

Run: python benchmarks/bench_draw_step.py   (or `make bench`)
"""

import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'experiments'))

import pretrain_attention  # noqa: E402
from glimpse_jax import data, train  # noqa: E402
from glimpse_jax.train import step as step_lib  # noqa: E402

VARIANT, BATCH, WINDOWS, STEPS_PER_WINDOW = 'no_guidance_translated', 100, 5, 10


def matmul_flops_per_image(config) -> float:
  """3 x the forward matrix-product FLOPs of one DRAW pass (2 FLOPs per multiply-add)."""
  m = config.model
  height, width, channels = data.image_shape(config.dataset)
  n, hidden = m.read_size, m.hidden
  read = channels * (n * height * width + n * width * n)  # F_y x, then (F_y x) F_x^T
  per_step = (read + hidden * 5  # the read layer on h_dec_{t-1}
              + (n * n * channels + hidden) * 4 * hidden + hidden * 4 * hidden  # encoder LSTM
              + hidden * m.latent  # latent layer
              + m.latent * 4 * hidden + hidden * 4 * hidden)  # decoder LSTM
  head = hidden * m.classifier_hidden + m.classifier_hidden * data.num_classes(config.dataset)
  return 3 * 2 * (m.glimpses * per_step + head)


def measure() -> dict[str, float]:
  """Images/s and GFLOP/s of the DRAW classification update."""
  config = pretrain_attention.get_config(VARIANT).phases.classify
  experiment = pretrain_attention.make_experiment(config)
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

  def run(num_steps):
    nonlocal state, acc
    start = time.perf_counter()
    for _ in range(num_steps):
      state, acc = steps.update(state, acc, batch, rng)
    jax.block_until_ready(state)
    return time.perf_counter() - start

  run(STEPS_PER_WINDOW)  # warm-up, including compilation
  seconds = [run(STEPS_PER_WINDOW) for _ in range(WINDOWS)]
  images_per_second = BATCH * STEPS_PER_WINDOW / float(np.median(seconds))
  flops = matmul_flops_per_image(config)
  return {'mflop_per_image': flops / 1e6, 'images_per_second': images_per_second,
          'gflops_per_second': flops * images_per_second / 1e9}


def main() -> dict[str, float]:
  print(f'DRAW training step ({VARIANT}: 100x100, 5x5 read, 256 units, T = 10), batch {BATCH}, '
        f'{jax.devices()[0].device_kind} x {jax.device_count()} (median of {WINDOWS} windows of '
        f'{STEPS_PER_WINDOW} updates)')
  result = measure()
  print(f"  {result['images_per_second']:9,.0f} images/s  {result['gflops_per_second']:6.1f} "
        f"GFLOP/s  ({result['mflop_per_image']:.2f} MFLOP per image)")
  return {f'translated_{k}': v for k, v in result.items()}


if __name__ == '__main__':
  main()
