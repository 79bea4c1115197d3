"""WS-RAM training throughput per row of the paper's table, beside RAM's, in one run.

Times `train.make_steps(...).update` (loss, grads, Adam, metric sums; state and accumulator
donated) on one device-resident batch, as the loop calls it, for every WS-RAM/VAR row (`var`,
`var_cv`, `ws`, `ws_cv`, `ws_q`, `ws_q_cv`: the experiment's default config, K = 5 samples, batch
64, 100x100 canvases) and for RAM's fused `translated60` step with 4 glimpses (batch 128, as in
`bench_ram_step.py`). All seven are timed in turn, window by window, so they meet the same machine
load and their ratios compare. Prints images/s (median of timed windows after warm-up) and the
achieved GFLOP/s, counted by hand as RAM's: 3x the forward pass's matrix-product FLOPs (forward +
two backward products), here of the K rollouts the estimator differentiates (see
`ws_ram_matmul_flops_per_image`); area averaging and other elementwise work are left out.

Run: python benchmarks/bench_ws_ram_step.py   (or `make bench`)
"""

import pathlib
import sys

import jax

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parents[1]),
                str(pathlib.Path(__file__).resolve().parent)]

import bench_ram_step  # noqa: E402
import step_timing  # noqa: E402
from experiments import ram, ws_ram  # noqa: E402
from glimpse_jax import data  # noqa: E402

ROWS = tuple(ws_ram.ROWS)  # var, var_cv, ws, ws_cv, ws_q, ws_q_cv
RAM_CASE = ('translated60', {'model.num_glimpses': 4, 'model.fused': True})
BATCH, WINDOWS, STEPS_PER_WINDOW = 64, 7, 30


def ws_ram_matmul_flops_per_image(config) -> float:
  """3 x the forward matrix-product FLOPs (2 per multiply-add) of one image's K training rollouts.

  Per rollout and glimpse: the policy head on the top layer, q's head when q proposes ('ws_q'),
  the glimpse network on one patch at the chosen scale, both recurrent layers; per rollout the
  classifier; per image the context network and the baseline.
  """
  m, loss = config.model, config.loss
  channels = data.image_shape(config.dataset)[2]
  num_classes = data.num_classes(config.dataset)
  head_outputs = 2 + (m.num_scales if m.num_scales > 1 else 0) + (2 if m.learn_std else 0)
  per_glimpse = (m.top_features * head_outputs
                 + m.glimpse_size**2 * channels * m.what_features
                 + (2 + m.num_scales) * m.where_features
                 + (m.what_features + m.where_features) * m.glimpse_features
                 + (m.glimpse_features + m.bottom_features) * m.bottom_features
                 + (m.bottom_features + m.top_features) * m.top_features)
  if loss.method == 'ws_q':
    per_glimpse += ((m.top_features + num_classes) * m.inference_features
                    + m.inference_features * head_outputs)
  per_rollout = m.num_glimpses * per_glimpse + m.bottom_features * num_classes
  per_image = m.low_res_size**2 * channels * m.top_features + m.top_features  # context, baseline
  return 3 * 2 * (loss.num_samples * per_rollout + per_image)


def _ws_ram_config(row):
  config = ws_ram.get_config(row)
  with config.unlocked():
    config.batch_size = BATCH
  return config


def main() -> dict[str, float]:
  configs = {row: _ws_ram_config(row) for row in ROWS}
  updates = {row: step_timing.Update(config, ws_ram.make_experiment, BATCH)
             for row, config in configs.items()}
  ram_config = bench_ram_step._config(*RAM_CASE)
  updates['ram'] = step_timing.Update(ram_config, ram.make_experiment, bench_ram_step.BATCH)
  flops = {row: ws_ram_matmul_flops_per_image(config) for row, config in configs.items()}
  flops['ram'] = bench_ram_step.matmul_flops_per_image(ram_config)
  print(f'WS-RAM training step per row (K = {configs["ws"].loss.num_samples}, batch {BATCH}) and '
        f'RAM\'s ({RAM_CASE[0]}, 4 glimpses, fused, batch {bench_ram_step.BATCH}), '
        f'{jax.devices()[0].device_kind} x {jax.device_count()} (median of {WINDOWS} windows of '
        f'{STEPS_PER_WINDOW} updates, all timed in turn)')
  rates = step_timing.time_in_turn(updates, WINDOWS, STEPS_PER_WINDOW)
  figures = {}
  for name, images_per_second in rates.items():
    gflops = flops[name] * images_per_second / 1e9
    print(f'  {name:8s} {images_per_second:9,.0f} images/s  {gflops:6.1f} GFLOP/s  '
          f'({flops[name] / 1e6:.2f} MFLOP per image)')
    figures.update({f'{name}_images_per_second': images_per_second,
                    f'{name}_gflops_per_second': gflops,
                    f'{name}_mflop_per_image': flops[name] / 1e6})
  return figures


if __name__ == '__main__':
  main()
