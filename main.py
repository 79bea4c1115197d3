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
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Call jax.distributed.initialize() first (one process per host of a '
    'multi-host TPU slice or GPU cluster).')
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  if not flags.FLAGS['verbosity'].present:  # orbax logs every save at INFO; -v 0 shows them
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  train.validate(config)
  # The flag holds 'path.py:variant'; the module is the file before the colon.
  path = config_flags.get_config_filename(flags.FLAGS['config']).split(':', 1)[0]
  module = load_experiment_module(path)
  experiment = module.make_experiment(config)
  train.run(config, _WORKDIR.value, experiment)


if __name__ == '__main__':
  app.run(main)
