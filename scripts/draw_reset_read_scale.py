"""A finished DRAW phase with its read's scale put back to the first read's, for grafting: an
ablation of what pre-training taught the read besides where to look (Lindsey 2017).

Usage:
  .venv/bin/python scripts/draw_reset_read_scale.py \
      runs/pretrain_attention/heuristic_translated-seed0/pretrain \
      runs/pretrain_attention/heuristic_translated_scalereset-seed0/pretrain
  make experiment NAME=pretrain_attention CONFIG=heuristic_translated \
      WORKDIR=runs/pretrain_attention/heuristic_translated_scalereset-seed0 \
      ARGS="--config.seed=0 --config.phases.classify.num_steps=1500"

Copies the phase folder SRC to DEST (which must not exist) and, in DEST's newest checkpoint, sets
the read layer's outputs (log sigma^2, log stride, log gamma by default; `--outputs 2,3,4`, indices
into `nets.draw.READ_PARAMS`) to their `model.read_init` values at every step: those kernel
columns zeroed, those biases set to `nets.draw.read_bias`. The center's outputs stay as trained.
The copied phase keeps its config, so the pipeline skips it and grafts the edited parameters.
"""

import argparse
import json
import os
import shutil
from collections.abc import Sequence

import numpy as np
import orbax.checkpoint as ocp

from glimpse_jax.nets.draw import READ_PARAMS, read_bias
from glimpse_jax.train import checkpoint


def _read_layers(tree, trail=()):
  """(path, layer) of every `read` Dense layer in a parameter tree."""
  for key, value in tree.items():
    if key == 'read' and 'kernel' in value:
      yield trail + (key,), value
    elif isinstance(value, dict):
      yield from _read_layers(value, trail + (key,))


def reset_read_scale(source: str, dest: str, outputs: Sequence[int] = (2, 3, 4)) -> None:
  """Copies the phase folder `source` to `dest` with read outputs `outputs` reset (module doc)."""
  if not outputs or any(i < 0 or i >= READ_PARAMS for i in outputs):
    raise ValueError(f'outputs must be indices in 0..{READ_PARAMS - 1}, got {list(outputs)}')
  if os.path.exists(dest):
    raise ValueError(f'{dest} exists')
  with open(os.path.join(source, 'config.json')) as f:
    config = json.load(f)
  side = config['dataset']['canvas_size']  # 28 on regular MNIST
  reader = checkpoint.Checkpointer(source, keep=None, create=False)
  try:
    step = reader.latest_step()
  finally:
    reader.close()
  if step is None:
    raise ValueError(f'{source} holds no checkpoint')
  shutil.copytree(source, dest)
  path = os.path.join(checkpoint.checkpoint_dir(dest), str(step), 'params')
  checkpointer = ocp.StandardCheckpointer()
  params = checkpointer.restore(path)
  layers = list(_read_layers(params))
  if len(layers) != 1:
    raise ValueError(f'expected one read layer in {source}, found {[p for p, _ in layers]}')
  (where, layer), = layers
  initial = np.asarray(read_bias(config['model']['read_init'], config['model']['read_size'],
                                 side, side))  # [5]
  kernel, bias = np.array(layer['kernel']), np.array(layer['bias'])  # [hidden, 5], [5]
  print(f'{"/".join(where)} at step {step}: bias {np.round(bias, 3)} -> ', end='')
  kernel[:, list(outputs)] = 0.0
  bias[list(outputs)] = initial[list(outputs)]
  print(np.round(bias, 3))
  layer['kernel'], layer['bias'] = kernel, bias
  shutil.rmtree(path)
  checkpointer.save(path, params)
  checkpointer.wait_until_finished()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('source', help='a finished DRAW phase folder (config.json, checkpoints/)')
  parser.add_argument('dest', help='the new phase folder')
  parser.add_argument('--outputs', default='2,3,4', help='read outputs to reset, e.g. 2,3')
  args = parser.parse_args()
  try:
    reset_read_scale(args.source, args.dest, [int(i) for i in args.outputs.split(',')])
  except ValueError as error:
    raise SystemExit(str(error)) from error


if __name__ == '__main__':
  main()
