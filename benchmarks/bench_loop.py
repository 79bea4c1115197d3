"""The shared loop against its own step: how much of the step's speed training keeps.

For RAM on translated60 and cluttered100 and WS-RAM + q (control variates) on 100x100
translated-scaled digits, measured in one process, one config after the other:
  step      the jitted update alone on one device-resident batch (`step_timing.Update`);
  drawing   the same update drawing its own canvases from the device's digit pool, as the loop's
            update does: the step the loop runs, timed alone;
  loop      `train.run` for `STEPS` updates, canvases drawn inside the step from its own key
            and the device's digit pool (`dataset.sample_on_device=True`, RAM's and WS-RAM's
            setting): the loop sends nothing per update;
  recipes   the same with canvases composed inside the step from host-drawn recipes
            (`sample_on_device=False`);
  host      the same with canvases rendered in NumPy on the host (`compose_on_device=False`).
Each loop figure is the median of the run's logged training speeds over intervals of
`LOG_EVERY` updates after the first (compilation), like the steps' medians over timed windows
(the two steps timed in turn, window by window): on a shared 2-core machine single intervals now
and then run 20-40% slow, and whole minutes run 15-35% slow. So the steps are timed before the
first loop and after each one, and each ratio divides a loop's speed by the mean of the two
timings around it. Prints images/s and the ratios loop/step (what drawing and the loop cost
together) and loop/drawing (what the loop costs beyond its own step), for each mode, and the
range of each step's timings.
"""

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from experiments import ram, ws_ram  # pylint: disable=g-import-not-at-top,wrong-import-position
from glimpse_jax import train  # pylint: disable=g-import-not-at-top,wrong-import-position
import step_timing  # pylint: disable=g-import-not-at-top,wrong-import-position

STEPS = 1_000
LOG_EVERY = 100
CASES = {  # name: (experiment module, variant)
    'ram_translated60': (ram, 'translated60'),
    'ram_cluttered100': (ram, 'cluttered100'),
    'ws_ram_ws_q_cv': (ws_ram, 'ws_q_cv'),
}


# name: (dataset.compose_on_device, dataset.sample_on_device)
MODES = {'loop': (True, True), 'recipes': (True, False), 'host': (False, False)}


def _config(module, variant, mode: str = 'loop'):
  config = module.get_config(variant)
  with config.unlocked():
    config.dataset.compose_on_device, config.dataset.sample_on_device = MODES[mode]
    config.dataset.eval_examples = 256
    config.update(num_steps=STEPS, log_every=LOG_EVERY, checkpoint_every=0, eval_every=0,
                  grad_variance_every=0)
    config.eval.batch_size = 256
  return config


def _loop_images_per_second(module, variant, mode: str) -> float:
  config = _config(module, variant, mode)
  with tempfile.TemporaryDirectory() as workdir:
    train.run(config, workdir, module.make_experiment(config))
    speeds = [record['images_per_second'] for record in train.read_metrics(workdir, 'train')]
  return float(np.median(speeds[1:]))


def _steps_images_per_second(updates) -> dict[str, float]:
  return step_timing.time_in_turn(updates, windows=5, steps_per_window=LOG_EVERY)


def main() -> dict[str, float]:
  figures = {}
  for name, (module, variant) in CASES.items():
    config = _config(module, variant)
    updates = {
        'step': step_timing.Update(config, module.make_experiment, config.batch_size),
        'drawing': step_timing.Update(config, module.make_experiment, config.batch_size,
                                      draw_in_step=True)}
    before = _steps_images_per_second(updates)
    timings = [before]
    line = f'{name:20s}'
    for mode in MODES:
      speed = _loop_images_per_second(module, variant, mode)
      after = _steps_images_per_second(updates)
      # The steps timed just before and just after this loop.
      step, drawing = (0.5 * (before[k] + after[k]) for k in ('step', 'drawing'))
      prefix = name if mode == 'loop' else f'{name}_{mode}'
      figures.update({f'{prefix}_loop_images_per_s': speed,
                      f'{prefix}_loop_over_step': speed / step,
                      f'{prefix}_loop_over_drawing_step': speed / drawing})
      line += f' | {mode} {speed:6.0f} img/s ({speed / step:.2f}, {speed / drawing:.2f})'
      before = after
      timings.append(after)
    for kind in updates:
      speeds = [t[kind] for t in timings]
      figures[f'{name}_{kind}_images_per_s'] = float(np.median(speeds))
      line += f' | {kind} {min(speeds):.0f}-{max(speeds):.0f} img/s'
    print(line, flush=True)
  return figures


if __name__ == '__main__':
  main()
