"""A trained run on the user's own images: `load_run(workdir)`, then `predict(run, images)`.

    import glimpse_jax
    run = glimpse_jax.load_run('runs/ram-smoke')
    out = glimpse_jax.predict(run, images)  # images [B, H, W, C] in [0, 1]
    out['probabilities']  # [B, K]
    out['locations']      # [B, T, 2], (x, y) in [-1, 1]

The run's config comes from the workdir's `config.json`, the experiment module from the package
`glimpse_jax.experiments` by the config's `experiment` name, the parameters from its newest (or
best) orbax checkpoint; a multi-phase workdir gives its last training phase.
"""

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glimpse_jax import cli, data, train

PIPELINE_FILE = 'pipeline.json'


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run ready to predict.

  Attributes:
    workdir: the (phase) workdir the parameters come from.
    config: its config (from `config.json`).
    experiment: the experiment its module builds from `config`.
    params: the restored parameters.
    frozen: the frozen models' parameters by name (empty when the experiment takes none).
    step: the checkpoint's step.
  """
  workdir: str
  config: ml_collections.ConfigDict
  experiment: train.Experiment
  params: Any
  frozen: Mapping[str, Any]
  step: int


def predicting_experiment(config: ml_collections.ConfigDict, where: str) -> train.Experiment:
  """The experiment of a run's `config`, which must define `predict`.

  Raises:
    ValueError: naming `where`, for an experiment the package does not have or one without
      `predict`.
  """
  try:
    module = cli.import_experiment(config.experiment)
  except cli.CommandError as error:
    raise ValueError(f'{where}: experiment={config.experiment!r}: {error}') from None
  experiment = module.make_experiment(config)
  if experiment.predict is None:
    raise ValueError(f'{where}: the {config.experiment!r} experiment (phase '
                     f'{config.get("phase")!r}) defines no predict, so it has no glimpse '
                     f'locations to read')
  return experiment


def _training_phase(workdir: str) -> str:
  """The workdir holding the parameters: `workdir` itself, or a pipeline's last training phase."""
  path = os.path.join(workdir, PIPELINE_FILE)
  if not os.path.isfile(path):
    return workdir
  with open(path) as f:
    names = json.load(f)['pipeline']
  for name in reversed(names):  # a data-producing phase last has no parameters of its own
    phase = os.path.join(workdir, name)
    if os.path.isdir(os.path.join(phase, 'checkpoints')):
      return phase
  raise ValueError(f'{workdir!r} is a pipeline of phases {names} but none has trained: run it '
                   f'first')


def _best_step(workdir: str, config: ml_collections.ConfigDict, steps: list[int]) -> int:
  """The checkpoint step whose evaluation has the best headline (the newest when none has one)."""
  stopping = config.get('early_stopping', {})
  evaluated = tuple(config.get('eval', {}).get('splits') or ('test',))
  split = stopping.get('split') if stopping.get('split') in evaluated else evaluated[0]
  mode = stopping.get('mode') or 'min'
  headline = stopping.get('metric') or config.get('headline') or 'error'
  scored = {}
  for record in train.read_metrics(workdir, kind='eval'):
    value = record.get(f'{split}_{headline}', record.get(headline))
    if record.get('step') in steps and value is not None and record.get('split', split) == split:
      scored[record['step']] = value
  if not scored:
    return steps[-1]
  return (min if mode == 'min' else max)(scored, key=scored.get)


def _frozen_source(source: str, workdir: str) -> str:
  """A frozen model's workdir: as recorded, else the sibling phase of that name."""
  if os.path.isdir(source):
    return source
  sibling = os.path.join(os.path.dirname(os.path.abspath(workdir)), os.path.basename(source))
  return sibling if os.path.isdir(sibling) else source


def load_run(workdir: str, checkpoint: str = 'last') -> Run:
  """The trained run in `workdir`, ready for `predict`.

  Args:
    workdir: a run's workdir (`config.json` and `checkpoints/`), or a multi-phase run's, whose
      last training phase is taken.
    checkpoint: 'last' (the newest checkpoint) or 'best' (the kept checkpoint with the best
      evaluation of the config's headline).

  Raises:
    ValueError: no such run, no checkpoint, or an experiment the package does not have.
  """
  if checkpoint not in ('last', 'best'):
    raise ValueError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
  if not os.path.isdir(workdir):
    raise ValueError(f'no run in {workdir!r}: the folder does not exist')
  phase_dir = _training_phase(workdir)
  config = train.read_config(phase_dir)
  if config is None:
    raise ValueError(f'{phase_dir!r} holds no config.json: is it a run\'s workdir?')
  experiment = predicting_experiment(config, phase_dir)
  checkpointer = train.Checkpointer(phase_dir, keep=None, create=False)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise ValueError(f'{phase_dir!r} holds no checkpoint: train it first')
    step = steps[-1] if checkpoint == 'last' else _best_step(phase_dir, config, steps)
    params = checkpointer.restore_params(step=step)
  finally:
    checkpointer.close()
  frozen = {name: train.load_params(_frozen_source(source, phase_dir))
            for name, source in config.frozen.items()} if experiment.frozen_models else {}
  return Run(phase_dir, config, experiment, params, frozen, step)


def predict(run: Run, images, rng: jax.Array | None = None) -> dict[str, np.ndarray]:
  """Class probabilities and where the model looked, for a batch of the user's images.

  Args:
    run: from `load_run`.
    images: `[B, H, W, C]` floats in [0, 1] (a single `[H, W, C]` image is not a batch), of the
      run's image shape (`data.image_shape(run.config.dataset)`).
    rng: sampling key for stochastic parts (default `jax.random.key(0)`); greedy paths ignore it.

  Returns:
    numpy arrays by name: `probabilities` ([B, K]; [B, L, V] per word for a captioner),
    `locations` ([B, T, 2], (x, y) in [-1, 1]) and, per method, `scales`, `reads`, `words`.

  Raises:
    ValueError: the images' shape or values do not fit the run.
  """
  images = np.asarray(images)
  expected = tuple(data.image_shape(run.config.dataset))
  if images.ndim != 4 or tuple(images.shape[1:]) != expected or images.shape[0] < 1:
    raise ValueError(f'images must be a batch [B, {", ".join(map(str, expected))}] for this run '
                     f'({run.config.experiment}, dataset {run.config.dataset.name}), got shape '
                     f'{tuple(images.shape)}')
  if not np.issubdtype(images.dtype, np.number):
    raise ValueError(f'images must be numbers in [0, 1], got dtype {images.dtype}')
  if np.issubdtype(images.dtype, np.integer) or (images.size and images.max() > 1.0):
    raise ValueError(f'images must be floats in [0, 1] (divide 8-bit images by 255), got values '
                     f'up to {images.max()} of dtype {images.dtype}')
  rng = jax.random.key(0) if rng is None else rng
  args = (run.params, jnp.asarray(images, jnp.float32), rng)
  if run.experiment.frozen_models:
    args += (run.frozen,)
  out = run.experiment.predict(*args)
  return {name: np.asarray(value) for name, value in out.items()}
