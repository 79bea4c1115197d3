"""The `glimpse-jax` command (also `python main.py`): trains one experiment.

    glimpse-jax --config=ram:smoke --workdir=runs/ram-smoke            # an installed experiment
    glimpse-jax --config=experiments/ram.py:smoke --workdir=runs/x     # any config file
    glimpse-jax --config=ram:smoke --workdir=runs/x --config.model.num_glimpses=8

`--config` names an experiment of `glimpse_jax.experiments` (or a config file) and its variant;
any field is overridden with `--config.<field>=<value>` (the config is locked, so a mistyped field
fails). The module's `make_experiment(config)` builds the method and `train.run_pipeline` trains
it, resuming from the workdir's checkpoint when there is one. A config or data error is printed as
one line naming the field, the value and the fix (`--verbose` adds the traceback); a run that fails
before its first step leaves its workdir as it found it.
"""

import difflib
import importlib
import importlib.util
import os
import pkgutil
import shutil
import sys
import types
from collections.abc import Sequence

from absl import app
from absl import flags
from absl import logging

_CONFIG = None  # the flags are defined by `_define_flags`, once, when the command runs
_FLAGS = {}
_PROG = 'glimpse-jax'  # how errors begin, from main.py too


class CommandError(Exception):
  """A mistake in the command line, the config or the data, told in one line."""


# ---------------------------------------------------------------------------------------------
# Experiments by name.
# ---------------------------------------------------------------------------------------------
def experiment_names() -> tuple[str, ...]:
  """The experiments installed with the package (`glimpse_jax.experiments.<name>`), sorted."""
  package = _experiments_package()
  return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                      if not m.name.startswith('_')))


def _experiments_package() -> types.ModuleType:
  try:
    return importlib.import_module('glimpse_jax.experiments')
  except ImportError as error:
    raise CommandError('glimpse_jax is installed without its experiments (glimpse_jax.experiments); '
                       'reinstall it: pip install -e <checkout>') from error


def import_experiment(name: str) -> types.ModuleType:
  """The installed experiment module `name`; CommandError listing the names when there is none."""
  names = experiment_names()
  if name not in names:
    raise CommandError(f'unknown experiment {name!r}; experiments: {", ".join(names)}')
  return importlib.import_module(f'glimpse_jax.experiments.{name}')


def _is_path(value: str) -> bool:
  return value.endswith('.py') or os.sep in value or '/' in value


def load_experiment_module(path: str) -> types.ModuleType:
  """The experiment module of config file `path` (the installed module when it is one)."""
  if not os.path.isfile(path):
    raise CommandError(f'--config file {path!r} does not exist')
  name = os.path.splitext(os.path.basename(path))[0]
  try:
    installed = import_experiment(name)
  except CommandError:
    installed = None
  if installed is not None and os.path.realpath(installed.__file__) == os.path.realpath(path):
    module = installed
  else:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  if not callable(getattr(module, 'make_experiment', None)):
    raise CommandError(f'{path!r} must define make_experiment(config)')
  return module


def _config_values(argv: Sequence[str]) -> list[tuple[int, str]]:
  """(index in argv, value) of every `--config=V` / `--config V`."""
  found = [(i, arg.split('=', 1)[1]) for i, arg in enumerate(argv) if arg.startswith('--config=')]
  found += [(i + 1, argv[i + 1]) for i, arg in enumerate(argv[:-1]) if arg == '--config']
  return sorted(found)


def resolve_config_argument(argv: Sequence[str]) -> tuple[list[str], types.ModuleType | None]:
  """`argv` with `--config=<name>[:variant]` pointing at the installed module's file, and the
  experiment module (None when argv has no --config).

  Raises:
    CommandError: no such experiment or file, or a variant the module lacks.
  """
  argv = list(argv)
  values = _config_values(argv)
  if not values:
    return argv, None
  index, value = values[-1]
  target, colon, variant = value.partition(':')
  if _is_path(target):
    if not os.path.isfile(target):
      folder = os.path.dirname(target) or '.'
      found = sorted(os.path.splitext(f)[0] for f in os.listdir(folder)
                     if f.endswith('.py') and not f.startswith('_')) if os.path.isdir(folder) else []
      name = os.path.splitext(os.path.basename(target))[0]
      raise CommandError(f'unknown experiment {name!r}; experiments in {folder}/: '
                         f'{", ".join(found) or "none"}')
    module = load_experiment_module(target)
  else:
    module = import_experiment(target)
    resolved = module.__file__ + colon + variant
    argv[index] = resolved if argv[index] == value else f'--config={resolved}'
  try:
    config = module.get_config(variant or None)
  except ValueError as error:
    raise CommandError(f'--config={value}: {error}') from None
  check_overrides(config, argv)
  return argv, module


# ---------------------------------------------------------------------------------------------
# Overrides: `--config.<field>=<value>` must name a field of the config.
# ---------------------------------------------------------------------------------------------
def check_overrides(config, argv: Sequence[str]) -> None:
  """Raises CommandError naming the first `--config.<field>` that is not a field of `config`,
  with the closest field names."""
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    field = arg[len('--config.'):].split('=', 1)[0]
    node, walked = config, []
    for key in field.split('.'):
      keys = list(node.keys()) if hasattr(node, 'keys') else []
      if key not in keys:
        where = '.'.join(walked)
        close = difflib.get_close_matches(key, keys, n=3)
        hint = (f'did you mean {" or ".join(".".join([*walked, c]) for c in close)}?' if close
                else f'fields{" of " + where if where else ""}: {", ".join(sorted(keys))}'
                if keys else f'{where} has no fields')
        raise CommandError(f'{arg}: the config has no field {field!r}; {hint}')
      node, walked = node[key], [*walked, key]


# ---------------------------------------------------------------------------------------------
# The workdir as it was before a run that fails before its first step.
# ---------------------------------------------------------------------------------------------
def snapshot(workdir: str) -> dict[str, int] | None:
  """{path relative to `workdir`: size (-1 for folders)}, or None when it does not exist."""
  if not os.path.isdir(workdir):
    return None
  found = {}
  for root, dirs, files in os.walk(workdir):
    for name in dirs:
      found[os.path.relpath(os.path.join(root, name), workdir)] = -1
    for name in files:
      path = os.path.join(root, name)
      found[os.path.relpath(path, workdir)] = os.path.getsize(path) if os.path.isfile(path) else 0
  return found


def _trained(before: dict[str, int], after: dict[str, int]) -> bool:
  """Whether the files show work done: a new checkpoint, metrics or results written, or a new
  chunk of a data-producing phase's store."""
  for path, size in after.items():
    parts = path.split(os.sep)
    if 'store' in parts[:-1] and path not in before:
      return True
    if 'checkpoints' in parts[:-1] and parts[parts.index('checkpoints') + 1].isdigit():
      if path not in before:
        return True
    if parts[-1] in ('metrics.jsonl', 'results.json') and size > before.get(path, 0):
      return True
  return False


def restore_untrained(workdir: str, before: dict[str, int] | None) -> None:
  """Removes what a run that took no step added to `workdir` (its lock, empty checkpoints/,
  config.json), and the workdir itself when the run created it."""
  after = snapshot(workdir)
  if after is None or _trained(before or {}, after):
    return
  if before is None:
    shutil.rmtree(workdir, ignore_errors=True)
    return
  for path in sorted(set(after) - set(before), key=lambda p: p.count(os.sep), reverse=True):
    full = os.path.join(workdir, path)
    if os.path.isdir(full) and not os.path.islink(full):
      shutil.rmtree(full, ignore_errors=True)
    elif os.path.lexists(full):
      os.remove(full)


# ---------------------------------------------------------------------------------------------
# Errors in one line.
# ---------------------------------------------------------------------------------------------
_DATA_HINT = ('; fix: put the files there, or point --config.dataset.data_dir (or '
              '$GLIMPSE_DATA_DIR) at a folder that holds them')


def describe(error: BaseException) -> str:
  """One or two lines for a config or data error: its message's first line, and the fix."""
  lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
  message = lines[0]
  if isinstance(error, FileNotFoundError) or 'md5' in message or 'checksum' in message:
    if 'data_dir' not in message and 'GLIMPSE_DATA_DIR' not in message:
      message += _DATA_HINT
  if len(lines) > 1:
    message += f' ({len(lines) - 1} more lines with --verbose)'
  return message


# Errors of a config, a data file or a busy workdir; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (CommandError, ValueError, OSError, KeyError)


def _define_flags() -> None:
  global _CONFIG
  if _CONFIG is not None:
    return
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  _CONFIG = config_flags.DEFINE_config_file(
      'config', None, 'Experiment and variant: an installed experiment (ram:smoke) or a config '
      'file (experiments/ram.py:smoke).', lock_config=True)
  _FLAGS['workdir'] = flags.DEFINE_string(
      'workdir', None, 'Folder for checkpoints, metrics and results.')
  _FLAGS['phase'] = flags.DEFINE_string(
      'phase', None, 'Run only this phase of a multi-phase experiment (the earlier phases it '
      'takes from must be finished).')
  _FLAGS['verbose'] = flags.DEFINE_bool(
      'verbose', False, 'Show the traceback of a config or data error.')
  _FLAGS['distributed'] = flags.DEFINE_bool(
      'distributed', False, 'Call jax.distributed.initialize() first (one process per host of a '
      'multi-host TPU slice or GPU cluster); the flags below are detected when left unset.')
  _FLAGS['coordinator_address'] = flags.DEFINE_string(
      'coordinator_address', None, 'With --distributed: host:port of process 0, which serves '
      'the coordination service.')
  _FLAGS['num_processes'] = flags.DEFINE_integer(
      'num_processes', None, 'With --distributed: how many processes train together.',
      lower_bound=1)
  _FLAGS['process_id'] = flags.DEFINE_integer(
      'process_id', None, 'With --distributed: this process\'s index in [0, num_processes).',
      lower_bound=0)
  flags.mark_flags_as_required(['config', 'workdir'])


def initialize_distributed() -> None:
  """Joins the processes of a multi-host run when --distributed is given.

  On a TPU slice, under SLURM or Open MPI `jax.distributed.initialize` detects the coordinator,
  process count and index itself; --coordinator_address, --num_processes and --process_id set
  them explicitly (e.g. several processes on one machine).
  """
  import jax  # pylint: disable=g-import-not-at-top
  explicit = {name: _FLAGS[name].value
              for name in ('coordinator_address', 'num_processes', 'process_id')}
  if not _FLAGS['distributed'].value:
    given = sorted(f'--{name}' for name, value in explicit.items() if value is not None)
    if given:
      raise app.UsageError(f'{", ".join(given)} need --distributed')
    return
  jax.distributed.initialize(**{name: value for name, value in explicit.items()
                                if value is not None})


def _main(argv, module: types.ModuleType) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  initialize_distributed()
  if not flags.FLAGS['verbosity'].present:  # orbax logs every save at INFO; -v 0 shows them
    logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  from glimpse_jax import train  # pylint: disable=g-import-not-at-top
  config, workdir, only = _CONFIG.value, _FLAGS['workdir'].value, _FLAGS['phase'].value
  verbose = _FLAGS['verbose'].value
  before = snapshot(workdir)
  try:
    if not train.is_pipeline(config):
      train.validate(config)
    phases = tuple(config.pipeline) if train.is_pipeline(config) else ()
    if only is not None and only not in phases:
      raise CommandError(f'--phase={only!r} is not a phase of this experiment; phases: '
                         f'{", ".join(phases) or "none (a single-phase experiment)"}')
    train.run_pipeline(config, workdir, module.make_experiment, only=only)
  except BaseException as error:
    # Not after an interruption (the run stopped where it can resume) or a refused start on a
    # busy workdir (its files are the other run's).
    keep = isinstance(error, (KeyboardInterrupt, SystemExit, train.WorkdirBusyError))
    if jax.process_count() == 1 and not keep:
      restore_untrained(workdir, before)
    if verbose or not isinstance(error, (*EXPECTED_ERRORS, train.WorkdirBusyError)):
      raise
    sys.exit(f'{_PROG}: error: {describe(error)}')


def run(argv: Sequence[str] | None = None) -> None:
  """The console entry point: `glimpse-jax --config=<experiment>[:<variant>] --workdir=<dir>`."""
  argv = list(sys.argv if argv is None else argv)
  verbose = '--verbose' in argv
  try:
    argv, module = resolve_config_argument(argv)
  except CommandError as error:
    if verbose:
      raise
    sys.exit(f'{_PROG}: error: {error}')
  _define_flags()
  app.run(lambda args: _main(args, module), argv=argv)
