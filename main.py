"""Trains one experiment: `python main.py --config=experiments/ram.py:smoke --workdir=runs/x`.

`--config` names an experiment module and its variant; any field is overridden with
`--config.<field>=<value>` (the config is locked, so a mistyped field fails). The module's
`make_experiment(config)` builds the method and `glimpse_jax.train.run` trains it, resuming from
the workdir's checkpoint when there is one.
"""

import importlib.util
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from glimpse_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file and variant, e.g. experiments/ram.py:smoke.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics and results.')
_PHASE = flags.DEFINE_string(
    'phase', None, 'Run only this phase of a multi-phase experiment (the earlier phases it takes '
    'from must be finished).')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Call jax.distributed.initialize() first (one process per host of a '
    'multi-host TPU slice or GPU cluster); the flags below are detected when left unset.')
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    'coordinator_address', None, 'With --distributed: host:port of process 0, which serves the '
    'coordination service.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'With --distributed: how many processes train together.', lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'With --distributed: this process\'s index in [0, num_processes).',
    lower_bound=0)
flags.mark_flags_as_required(['config', 'workdir'])


def load_experiment_module(path: str):
  """Imports the experiment module at `path` (the config file) under its file name."""
  if not os.path.isfile(path):
    raise ValueError(f'--config file {path!r} does not exist')
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  if not callable(getattr(module, 'make_experiment', None)):
    raise ValueError(f'{path!r} must define make_experiment(config)')
  return module


def initialize_distributed() -> None:
  """Joins the processes of a multi-host run when --distributed is given.

  On a TPU slice, under SLURM or Open MPI `jax.distributed.initialize` detects the coordinator,
  process count and index itself; --coordinator_address, --num_processes and --process_id set
  them explicitly (e.g. several processes on one machine).
  """
  explicit = {'coordinator_address': _COORDINATOR_ADDRESS.value,
              'num_processes': _NUM_PROCESSES.value, 'process_id': _PROCESS_ID.value}
  if not _DISTRIBUTED.value:
    given = sorted(f'--{name}' for name, value in explicit.items() if value is not None)
    if given:
      raise app.UsageError(f'{", ".join(given)} need --distributed')
    return
  jax.distributed.initialize(**{name: value for name, value in explicit.items()
                                if value is not None})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  initialize_distributed()
  if not flags.FLAGS['verbosity'].present:  # orbax logs every save at INFO; -v 0 shows them
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  if not train.is_pipeline(config):
    train.validate(config)
  phases = tuple(config.pipeline) if train.is_pipeline(config) else ()
  if _PHASE.value is not None and _PHASE.value not in phases:
    raise app.UsageError(f'--phase={_PHASE.value!r} is not a phase of this experiment; phases: '
                         f'{", ".join(phases) or "none (a single-phase experiment)"}')
  # The flag holds 'path.py:variant'; the module is the file before the colon.
  path = config_flags.get_config_filename(flags.FLAGS['config']).split(':', 1)[0]
  module = load_experiment_module(path)
  train.run_pipeline(config, _WORKDIR.value, module.make_experiment, only=_PHASE.value)


def check_config_argument(argv: list[str]) -> None:
  """Exits with one line when --config names no experiment file, or a variant it lacks."""
  values = [arg.split('=', 1)[1] for arg in argv if arg.startswith('--config=')]
  values += [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == '--config']
  if not values:
    return
  path, _, variant = values[-1].partition(':')
  if not os.path.isfile(path):
    folder = os.path.dirname(path) or '.'
    found = sorted(os.path.splitext(f)[0] for f in os.listdir(folder)
                   if f.endswith('.py') and not f.startswith('_')) if os.path.isdir(folder) else []
    name = os.path.splitext(os.path.basename(path))[0]
    sys.exit(f'unknown experiment {name!r}; experiments in {folder}/: {", ".join(found) or "none"}')
  try:
    module = load_experiment_module(path)
    module.get_config(variant or None)
  except ValueError as error:
    sys.exit(f'{path}: {error}')


if __name__ == '__main__':
  check_config_argument(sys.argv)
  app.run(main)
