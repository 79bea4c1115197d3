"""The config fields every experiment shares, and their checks.

An experiment's `get_config(arg)` starts from `base_config()`, fills `model` and `loss`, overrides
what it needs and calls `config.lock()` so a mistyped `--config.field=value` fails. A multi-phase
method returns `pipeline_config(...)` of several such configs instead (see `train.pipeline`).
"""

import jax
import ml_collections
from ml_collections import config_dict

from glimpse_jax import data

OPTIMIZERS = ('adam', 'momentum', 'sgd')
SCHEDULES = ('constant', 'cosine', 'exponential')
KINDS = ('train', 'generate')
EVAL_SPLITS = ('validation', 'test')


def base_config() -> ml_collections.ConfigDict:
  """The shared fields with their defaults (unlocked, so the experiment can add its own)."""
  config = ml_collections.ConfigDict()
  config.experiment = ''  # the experiment module's name, e.g. 'ram'
  config.phase = ''  # the phase's name in a pipeline ('' for a single-phase run)
  config.kind = 'train'  # one of KINDS: 'generate' stores per-example outputs instead
  config.seed = 0  # parameters, per-step randomness and the order of training examples
  config.batch_size = 128  # global, split over all devices
  config.num_steps = 10_000
  config.log_every = 100
  config.eval_every = 0  # 0: evaluate only at the end (on the whole test split)
  config.eval_examples_during_training = 1_000  # 0: the whole split
  config.checkpoint_every = 1_000  # 0: only the final state (and on SIGTERM/SIGINT)
  config.keep_checkpoints = 3
  config.checkpoint_at = ()  # steps also saved and never deleted: snapshots for later analysis

  config.optimizer = ml_collections.ConfigDict(dict(
      name='adam',  # one of OPTIMIZERS
      learning_rate=1e-3,
      schedule='constant',  # one of SCHEDULES; cosine decays to 0 at num_steps
      warmup_steps=0,  # linear warm-up before the schedule
      decay_steps=1_000,  # exponential: learning_rate * decay_rate ** (step / decay_steps)
      decay_rate=0.97,
      momentum=0.9,  # 'momentum' only
      grad_clip_norm=0.0,  # 0: no clipping
      weight_decay=0.0,  # 0: off; decoupled for 'adam' (AdamW), L2 for 'sgd' and 'momentum'
      freeze=(),  # parameter paths the optimizer leaves unchanged, e.g. ('params/encoder',)
      # Multiply the updates by `factor` when `metric` (default: the headline; lower is better)
      # on `split` has not improved for `patience` evaluations (optax.contrib.reduce_on_plateau,
      # fed at each evaluation, never at the one that stops training early); patience 0: off.
      # min_delta > 0: a value within min_delta above the best is a tie, which neither improves
      # the best nor counts as an evaluation without improvement.
      plateau=ml_collections.ConfigDict(dict(
          patience=0, factor=0.5, split='validation', metric='', cooldown=0, min_scale=0.0,
          rtol=1e-4, min_delta=0.0)),
  ))
  # The value of `evaluate` reported as the run's result (e.g. 'bce' for a reconstruction phase).
  config.headline = 'error'
  config.eval = ml_collections.ConfigDict(dict(
      batch_size=512, mc_samples=1,
      splits=('test',),  # of EVAL_SPLITS; 'validation' needs dataset.validation_examples > 0
  ))
  # Stop when `metric` (default: the headline) on `split` has not improved for `patience`
  # evaluations (every `eval_every` steps); 0: off.
  config.early_stopping = ml_collections.ConfigDict(dict(
      patience=0, split='validation', metric='', mode='min'))

  # Multi-phase methods start from another run's parameters (a workdir, or an earlier phase's
  # name in a pipeline); the workdir's own checkpoint wins. `init_subtrees` grafts only those
  # parameter paths (e.g. ('params/encoder',)) into fresh parameters; () takes them all.
  config.init_from = config_dict.placeholder(str)
  config.init_subtrees = ()
  # Frozen models: name -> workdir (or earlier phase) whose parameters the loss gets, untrained.
  config.frozen = ml_collections.ConfigDict()
  # A data-producing phase (or its store folder) whose per-example fields join training batches
  # by example index (needs fixed training canvases: dataset.train_on_the_fly=False).
  config.data_from = config_dict.placeholder(str)
  # kind='generate': which examples of which split get stored, in chunks of `chunk_size`.
  config.generate = ml_collections.ConfigDict(dict(split='train', fraction=1.0, chunk_size=1024))
  config.grad_variance_every = 0  # 0: off
  config.grad_variance_draws = 16

  config.dataset = data.default_config()
  config.model = ml_collections.ConfigDict()
  config.loss = ml_collections.ConfigDict()
  return config


def _check_int(config, name: str, minimum: int) -> None:
  value = _field(config, name)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')


def _check_number(config, name: str, low: float, high: float = float('inf')) -> None:
  value = _field(config, name)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
    bounds = f'>= {low}' if high == float('inf') else f'in [{low}, {high}]'
    raise ValueError(f'{name} must be a number {bounds}, got {value!r}')


def _check_choice(config, name: str, allowed: tuple[str, ...]) -> None:
  value = _field(config, name)
  if value not in allowed:
    raise ValueError(f'{name} must be one of {list(allowed)}, got {value!r}')


def _field(config, dotted: str):
  value = config
  for part in dotted.split('.'):
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first shared field that cannot work, and its allowed values."""
  if not isinstance(config.experiment, str) or not config.experiment:
    raise ValueError(f'experiment must name the experiment module, got {config.experiment!r}')
  _check_int(config, 'seed', 0)
  for name in ('batch_size', 'num_steps', 'log_every', 'keep_checkpoints', 'eval.batch_size',
               'eval.mc_samples'):
    _check_int(config, name, 1)
  for name in ('eval_every', 'eval_examples_during_training', 'checkpoint_every',
               'grad_variance_every', 'optimizer.warmup_steps'):
    _check_int(config, name, 0)
  devices, processes = jax.device_count(), jax.process_count()
  for name in ('batch_size', 'eval.batch_size'):
    if _field(config, name) % devices or _field(config, name) % processes:
      raise ValueError(f'{name} must be divisible by the device count {devices} (and process '
                       f'count {processes}), got {_field(config, name)}')
  if config.grad_variance_every:
    _check_int(config, 'grad_variance_draws', 2)
  at = tuple(config.checkpoint_at)
  if any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= config.num_steps
         for s in at):
    raise ValueError(f'checkpoint_at must hold steps in [1, num_steps={config.num_steps}], '
                     f'got {at}')

  _check_choice(config, 'optimizer.name', OPTIMIZERS)
  _check_choice(config, 'optimizer.schedule', SCHEDULES)
  _check_number(config, 'optimizer.learning_rate', 0.0)
  _check_number(config, 'optimizer.momentum', 0.0, 1.0)
  _check_number(config, 'optimizer.grad_clip_norm', 0.0)
  _check_number(config, 'optimizer.weight_decay', 0.0)
  if config.optimizer.schedule == 'exponential':
    _check_int(config, 'optimizer.decay_steps', 1)
    _check_number(config, 'optimizer.decay_rate', 0.0, 1.0)

  if config.init_from is not None and (not isinstance(config.init_from, str)
                                       or not config.init_from):
    raise ValueError(f'init_from must be a workdir path or None, got {config.init_from!r}')
  for name in ('init_subtrees', 'optimizer.freeze'):
    paths = _field(config, name)
    if not isinstance(paths, (tuple, list)) or not all(isinstance(p, str) for p in paths):
      raise ValueError(f'{name} must be a tuple of parameter paths like \'params/encoder\', got '
                       f'{paths!r}')
  if config.init_subtrees and config.init_from is None:
    raise ValueError(f'init_subtrees={tuple(config.init_subtrees)!r} needs init_from')
  for name, source in config.frozen.items():
    if not isinstance(source, str) or not source:
      raise ValueError(f'frozen.{name} must be a workdir path or phase name, got {source!r}')
  if config.data_from is not None and (not isinstance(config.data_from, str)
                                       or not config.data_from):
    raise ValueError(f'data_from must be a workdir path or None, got {config.data_from!r}')
  _check_choice(config, 'kind', KINDS)
  if not isinstance(config.headline, str) or not config.headline:
    raise ValueError(f'headline must name a value of evaluate, got {config.headline!r}')
  splits = config.eval.splits
  if (not isinstance(splits, (tuple, list)) or not splits
      or any(split not in EVAL_SPLITS for split in splits) or len(set(splits)) < len(splits)):
    raise ValueError(f'eval.splits must be distinct names from {list(EVAL_SPLITS)}, got {splits!r}')
  if 'validation' in splits and not config.dataset.get('validation_examples', 0):
    raise ValueError("eval.splits has 'validation', which needs dataset.validation_examples > 0")
  stopping = config.early_stopping
  _check_int(config, 'early_stopping.patience', 0)
  _check_choice(config, 'early_stopping.mode', ('min', 'max'))
  if stopping.patience:
    if not config.eval_every:
      raise ValueError('early_stopping.patience needs eval_every > 0 (it counts evaluations)')
    if stopping.split not in splits:
      raise ValueError(f'early_stopping.split {stopping.split!r} must be one of eval.splits '
                       f'{tuple(splits)}')
  plateau = config.optimizer.plateau
  _check_int(config, 'optimizer.plateau.patience', 0)
  if plateau.patience:
    _check_number(config, 'optimizer.plateau.factor', 0.0, 1.0)
    if not 0 < plateau.factor < 1:
      raise ValueError(f'optimizer.plateau.factor must be in (0, 1), got {plateau.factor}')
    _check_int(config, 'optimizer.plateau.cooldown', 0)
    _check_number(config, 'optimizer.plateau.min_scale', 0.0, 1.0)
    _check_number(config, 'optimizer.plateau.rtol', 0.0, 1.0)
    if 'min_delta' in plateau:
      _check_number(config, 'optimizer.plateau.min_delta', 0.0)
    if not config.eval_every:
      raise ValueError('optimizer.plateau.patience needs eval_every > 0 (it counts evaluations)')
    if plateau.split not in splits:
      raise ValueError(f'optimizer.plateau.split {plateau.split!r} must be one of eval.splits '
                       f'{tuple(splits)}')
  _check_choice(config, 'generate.split', ('train', *EVAL_SPLITS))
  _check_number(config, 'generate.fraction', 0.0, 1.0)
  if config.generate.fraction <= 0:
    raise ValueError(f'generate.fraction must be in (0, 1], got {config.generate.fraction}')
  _check_int(config, 'generate.chunk_size', 1)
  for name in ('model', 'loss', 'dataset'):
    if not isinstance(config[name], ml_collections.ConfigDict):
      raise ValueError(f'{name} must be a ConfigDict, got {type(config[name]).__name__}')
  data.validate_config(config.dataset)
