"""Which glimpse scale a finished WS-RAM run's greedy policy chooses against the digit's size
(Ba et al. 2015, Figure 4), over the glimpses that land on ink and over all glimpses.

Usage:
  .venv/bin/python scripts/ws_ram_scale_by_size.py runs/ws_ram/ws_q_cv-seed0 ... \
      [--examples 2000] [--bins 4]

For each workdir: the newest checkpoint's greedy path (mean locations, most probable scales) on
the first `--examples` test canvases; per glimpse the chosen scale, whether its finest patch holds
ink (`diagnostics.on_ink`) and the digit's side (`box_size`). Sides are binned by `--bins` edges
spaced geometrically over the dataset's digit sizes (28 px times `dataset.scale_range`, drawn
log-uniformly, so the bins hold about equal numbers of digits; a single bin around 28 px for
unscaled digits). Writes `<workdir>/scale_by_size.json` (`ws_ram.scale_by_size`, plus the run's
step and the number of examples measured).
"""

import argparse
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glimpse_jax import data
from glimpse_jax.data.sources import DIGIT_SIZE
from glimpse_jax.diagnostics import on_ink
from glimpse_jax.experiments import ws_ram
from glimpse_jax.nets import mode_noise
from glimpse_jax.train import checkpoint

OUTPUT = 'scale_by_size.json'


def size_edges(dataset: ml_collections.ConfigDict, bins: int) -> np.ndarray:
  """`bins` + 1 geometric edges over the dataset's digit sides in pixels."""
  if bins < 1:
    raise ValueError(f'bins must be >= 1, got {bins}')
  if dataset.name != 'translated_scaled':
    return np.array([DIGIT_SIZE - 0.5, DIGIT_SIZE + 0.5])
  low, high = (DIGIT_SIZE * s for s in dataset.scale_range)
  return np.geomspace(low, high, bins + 1)


def make_greedy_fn(config: ml_collections.ConfigDict):
  """(params, images [B, H, W, C]) -> (scales [B, T] int, on_ink [B, T] bool), jitted."""
  model = ws_ram.make_model(config)
  m = config.model

  @jax.jit
  def greedy(params, images):
    out = model.apply(params, images, mode_noise((1, images.shape[0], m.num_glimpses),
                                                 m.num_scales))
    ink = on_ink(images, out.locations[:, 0], m.glimpse_size) > 0
    return out.scales[:, 0], ink

  return greedy


def measure(workdir: str, examples: int = 2_000, bins: int = 4, batch_size: int = 500) -> dict:
  """The scale-against-size table of the run's newest checkpoint; writes it to OUTPUT."""
  config = _config_of(workdir)
  checkpointer = checkpoint.Checkpointer(workdir, keep=None, create=False)
  try:
    steps = checkpointer.all_steps()
  finally:
    checkpointer.close()
  if not steps:
    raise ValueError(f'{workdir!r} holds no checkpoints to measure')
  params = checkpoint.load_params(workdir, step=max(steps))
  dataset = config.dataset.copy_and_resolve_references()
  with dataset.unlocked():
    dataset.eval_examples = examples
  greedy = make_greedy_fn(config)
  scales, ink, sizes = [], [], []
  for batch in data.eval_batches(dataset, min(batch_size, examples)):
    kept = batch['mask'] > 0
    s, i = greedy(params, jnp.asarray(batch['image']))
    scales.append(np.asarray(s)[kept])
    ink.append(np.asarray(i)[kept])
    sizes.append(batch['box_size'][kept])
  result = ws_ram.scale_by_size(np.concatenate(scales), np.concatenate(ink),
                                np.concatenate(sizes), size_edges(dataset, bins),
                                config.model.num_scales)
  result['step'] = int(max(steps))
  with open(os.path.join(workdir, OUTPUT), 'w') as f:
    json.dump(result, f, indent=1)
  return result


def _config_of(workdir: str) -> ml_collections.ConfigDict:
  with open(os.path.join(workdir, 'config.json')) as f:
    return ml_collections.ConfigDict(json.load(f))


def describe(result: dict) -> str:
  """One line per size bin: its edges, glimpses on ink and their scale fractions."""
  edges, lines = result['edges'], []
  for b, (count, fractions) in enumerate(zip(result['on_ink']['count'],
                                             result['on_ink']['fractions'])):
    use = '-' if fractions is None else ' / '.join(f'{f:.2f}' for f in fractions)
    lines.append(f'  {edges[b]:5.1f}-{edges[b + 1]:5.1f} px: {count:5d} glimpses on ink, '
                 f'scales {use}')
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog='python scripts/ws_ram_scale_by_size.py',
                                   description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+', help='finished ws_ram runs with checkpoints')
  parser.add_argument('--examples', type=int, default=2_000, help='test canvases measured')
  parser.add_argument('--bins', type=int, default=4, help='digit-size bins')
  args = parser.parse_args(argv)
  if args.examples < 1 or args.bins < 1:
    parser.error(f'--examples and --bins must be >= 1, got {args.examples}, {args.bins}')
  for workdir in args.workdirs:
    result = measure(workdir, args.examples, args.bins)
    print(f"{workdir} (update {result['step']:,}): wrote {OUTPUT}\n{describe(result)}")


if __name__ == '__main__':
  main()
