"""RAM training throughput: the shared loop's jitted update (loss, grads, Adam, metric sums).

Times `train.make_steps(...).update` on one device-resident batch of 128, as the loop calls it
(state and accumulator donated), for the `mnist` variant with 6 glimpses and `translated60` with
4 glimpses of 3 scales, each with the fused rollout (`nets/ram_fused.py`, `model.fused=True`) and
the scanned Flax module (`model.fused=False`). The two are timed in turn, window by window, so they
meet the same machine load; `fused_speedup` is the ratio of their images/s. Prints images/s
(median of timed windows after warm-up) and the achieved GFLOP/s, counting 3x the forward pass's
matrix-product FLOPs (forward + two backward products; XLA's own cost analysis counts a scan body
once, not once per glimpse).

Run: python benchmarks/bench_ram_step.py   (or `make bench`)
"""

import pathlib
import sys

import jax

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parents[1]),
                str(pathlib.Path(__file__).resolve().parent)]

import step_timing  # noqa: E402
from experiments import ram  # noqa: E402
from glimpse_jax import data  # noqa: E402

CASES = (('mnist', {'model.num_glimpses': 6}), ('translated60', {'model.num_glimpses': 4}))
ROLLOUTS = (('fused', True), ('scanned', False))
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
  """Images/s and GFLOP/s of the fused and the scanned RAM update for one config."""
  configs = {name: _config(variant, {**overrides, 'model.fused': fused})
             for name, fused in ROLLOUTS}
  updates = {name: step_timing.Update(config, ram.make_experiment, BATCH)
             for name, config in configs.items()}
  rates = step_timing.time_in_turn(updates, WINDOWS, STEPS_PER_WINDOW)
  flops = matmul_flops_per_image(configs['fused'])
  result = {'mflop_per_image': flops / 1e6}
  for name, images_per_second in rates.items():
    result[f'{name}_images_per_second'] = images_per_second
    result[f'{name}_gflops_per_second'] = flops * images_per_second / 1e9
  result['fused_speedup'] = result['fused_images_per_second'] / result['scanned_images_per_second']
  return result


def main() -> dict[str, float]:
  figures = {}
  print(f'RAM training step, batch {BATCH}, {jax.devices()[0].device_kind} x '
        f'{jax.device_count()} (median of {WINDOWS} windows of {STEPS_PER_WINDOW} updates, '
        'fused and scanned rollouts timed in turn)')
  for variant, overrides in CASES:
    result = measure(variant, overrides)
    label = f"{variant}_g{overrides['model.num_glimpses']}"
    for name, _ in ROLLOUTS:
      print(f"  {label:16s} {name:8s} {result[f'{name}_images_per_second']:9,.0f} images/s  "
            f"{result[f'{name}_gflops_per_second']:6.1f} GFLOP/s  "
            f"({result['mflop_per_image']:.2f} MFLOP per image)")
    print(f"  {label:16s} fused / scanned {result['fused_speedup']:.2f}x")
    figures.update({f'{label}_{k}': v for k, v in result.items()})
  return figures


if __name__ == '__main__':
  main()
