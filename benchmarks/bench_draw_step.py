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

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'experiments'))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pretrain_attention  # noqa: E402
import step_timing  # noqa: E402
from glimpse_jax import data  # noqa: E402

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
  update = step_timing.Update(config, pretrain_attention.make_experiment, BATCH)
  images_per_second = step_timing.time_in_turn({VARIANT: update}, windows=WINDOWS,
                                               steps_per_window=STEPS_PER_WINDOW)[VARIANT]
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
