"""The glimpse tester: how much a method's glimpse locations tell a fixed reader about the class.

Lindsey's tester (pretrain_attention.py `tester_<tested>`), generalised to any trained glimpse
run. Two phases per tested run, both on fixed canvases (`dataset.train_on_the_fly=False`), so
stored fields join training batches by example index:
  record  kind='generate': the tested run, frozen (`frozen.run`, its workdir), predicts on every
          fixed training canvas; its greedy `locations [T, 2]` (what `glimpse_jax.predict`
          returns for the run, the random method's one draw per canvas) are stored by index.
  tester  kind='train': RAM's own network (`nets.RecurrentAttentionModel`: retina, glimpse network,
          core, classifier) teacher-forced at every glimpse to the batch's stored `locations`
          (`given_locations`, every example `forced`; `data_from` the record phase), trained on
          the class's negative log-likelihood alone: its locator's and baseline's outputs are
          never used, nothing is reinforced. It is evaluated on the test split at the locations
          the frozen run predicts for each test canvas, computed in the evaluation step (as
          Lindsey's tester reads its frozen model's test reads), so the test split's locations
          are recorded where they are used and never stored.
The tester reads the task's retina at the recorded locations whatever the method read there, so
its error measures where a method looks, not how it reads: a DRAW run enters by the centers of
its reads (`glimpse.draw_center`; the read's stride, sigma and intensity are dropped), a WS-RAM
run by its locations (the tester reads every scale, not the one WS-RAM chose).
`tester.source='center'` records the digit's center (`center`) at every glimpse instead of a
run's predictions, and evaluates at the test canvas's center: the oracle's sequences, which need
no trained run (no `frozen.run`).

It is no experiment of `experiments/`: it builds the tested run's experiment by the name in that
run's `config.json` (as `glimpse_jax.load_run` does), so it sits with `glimpse_bench.py` above the
experiments (floor 5). A phase's config has `experiment='glimpse_tester'`;
`glimpse_bench.make_experiment` builds it with `make_experiment`, and `glimpse_bench` runs both
phases after every glimpse run with the budgets of `glimpse_bench.TESTER_BUDGETS`: at the CPU
budget (2,500 updates of 64 over 60,000 canvases) about 1.5 minutes per tested run on 2 shared
CPU cores (cluttered60, T = 8: recording 21 s, the tester 67 s).
"""

import dataclasses
import functools

import jax.numpy as jnp
import ml_collections
import optax

from glimpse_jax import data, diagnostics, inference, train
from glimpse_jax.nets import RecurrentAttentionModel, RetinaSpec, ram_noise
from glimpse_jax.nets.settings import check_positive_ints

EXPERIMENT = 'glimpse_tester'
TESTED = 'run'  # the frozen model's name: the tested run
SOURCES = ('predict', 'center')  # where the locations come from: the run's predict, the center
RECORD, TESTER = 'tester_record', 'tester'  # the phases' names under a tested run's


@dataclasses.dataclass(frozen=True)
class TesterBudget:
  """What every tester of a benchmark variant trains on and for how long (the same for every
  method): `num_steps` updates of `batch_size` over `train_canvases` fixed training canvases
  (None: the whole source split, 60,000)."""

  num_steps: int
  batch_size: int
  train_canvases: int | None
  checkpoint_every: int
  log_every: int


# The tester's network, one for every method and T: RAM's glimpse network (what and where
# features into a glimpse vector) and a small LSTM core, then the classifier.
MODEL = dict(core='lstm', core_features=128, glimpse_features=256, what_features=128,
             where_features=128)


def _dataset(task_dataset: dict, budget: TesterBudget,
             eval_examples: int | None) -> ml_collections.ConfigDict:
  """The task's canvases, fixed: `budget.train_canvases` training canvases of the task's seed."""
  dataset = data.default_config()
  dataset.update(task_dataset)
  dataset.update(train_on_the_fly=False, train_examples=budget.train_canvases,
                 validation_examples=0, eval_examples=eval_examples)
  return dataset


def phase_configs(*, task_dataset: dict, glimpses: int, retina: tuple[int, int, int],
                  budget: TesterBudget, seed: int, run: str | None, source: str = 'predict',
                  eval_examples: int | None = None, eval_batch_size: int = 500
                  ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """The record and tester phases, `[(RECORD, config), (TESTER, config)]`, of one tested run.

  Args:
    task_dataset: the task's dataset fields (over `data.default_config()`'s); the phases fix
      its training canvases.
    glimpses: T, the glimpses the run takes.
    retina: (glimpse_size, num_scales, scale_factor) of the retina the tester reads.
    budget: the tester's budget.
    seed: the tester's seed (parameters, batch order; the stored canvases are the dataset's).
    run: the tested run's workdir or phase name (None with source 'center').
    source: one of SOURCES.
    eval_examples: test canvases (None: the whole split).
    eval_batch_size: batch of the record phase and of evaluation.
  """
  glimpse_size, num_scales, scale_factor = retina
  configs = []
  for name in (RECORD, TESTER):
    config = train.base_config()
    config.experiment = EXPERIMENT
    config.seed = seed
    config.dataset = _dataset(task_dataset, budget, eval_examples)
    config.model = ml_collections.ConfigDict(dict(
        num_glimpses=glimpses, glimpse_size=glimpse_size, num_scales=num_scales,
        scale_factor=scale_factor, **MODEL))
    config.tester = ml_collections.ConfigDict(dict(source=source))
    if run is not None:
      config.frozen[TESTED] = run
    config.eval.update(batch_size=eval_batch_size, mc_samples=1, splits=('test',))
    config.update(batch_size=budget.batch_size, num_steps=budget.num_steps, eval_every=0,
                  checkpoint_every=budget.checkpoint_every, log_every=budget.log_every)
    config.optimizer.update(name='adam', learning_rate=1e-3, schedule='cosine')
    if name == RECORD:
      config.kind = 'generate'
      config.generate.update(split='train', fraction=1.0, chunk_size=2_000)
    configs.append((name, config))
  return configs


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first tester field that cannot work."""
  check_positive_ints('model', config.model, (
      'num_glimpses', 'glimpse_size', 'num_scales', 'scale_factor', 'core_features',
      'glimpse_features', 'what_features', 'where_features'))
  if config.model.core not in ('rnn', 'lstm'):
    raise ValueError(f"model.core must be one of ['lstm', 'rnn'], got {config.model.core!r}")
  source = config.tester.source
  if source not in SOURCES:
    raise ValueError(f'tester.source must be one of {list(SOURCES)}, got {source!r}')
  frozen = set(config.frozen.keys())
  if source == 'predict' and frozen != {TESTED}:
    raise ValueError(f"tester.source='predict' takes the tested run as frozen.{TESTED} (its "
                     f'workdir), got frozen names {sorted(frozen)}')
  if source == 'center' and frozen:
    raise ValueError(f"tester.source='center' takes no frozen run, got frozen names "
                     f'{sorted(frozen)}')
  if config.dataset.train_on_the_fly:
    raise ValueError('the tester stores and joins locations by example index, which needs fixed '
                     'training canvases: set dataset.train_on_the_fly=False')
  if config.kind == 'train' and config.data_from is None:
    raise ValueError('the tester trains on recorded locations: set data_from to the record '
                     "phase (kind='generate') that stored them")


def tested_experiment(workdir: str) -> tuple[ml_collections.ConfigDict, train.Experiment]:
  """The config and experiment of the tested run in `workdir` (read from its `config.json`).

  Raises:
    ValueError: no run there, an experiment without `predict`, or one that takes frozen models.
  """
  config = train.read_config(workdir)
  if config is None:
    raise ValueError(f'frozen.{TESTED}={workdir!r} holds no config.json: no trained run there')
  experiment = inference.predicting_experiment(config, f'frozen.{TESTED}={workdir!r}')
  if experiment.frozen_models:
    raise ValueError(f'frozen.{TESTED}={workdir!r}: the {config.experiment!r} phase predicts '
                     f'with frozen models {list(experiment.frozen_models)}, which the tester '
                     f'does not restore')
  return config, experiment


def location_source(config: ml_collections.ConfigDict):
  """`locate(batch, rng, frozen) -> locations [B, T, 2]` of the config's source (the tested run
  built on first use: at pipeline build time it may not have trained yet)."""
  glimpses, source = config.model.num_glimpses, config.tester.source
  workdir = config.frozen.get(TESTED)

  @functools.cache
  def tested():
    return tested_experiment(workdir)[1]

  def locate(batch, rng, frozen):
    images = batch['image']
    if source == 'center':
      return jnp.broadcast_to(batch['center'][:, None], (images.shape[0], glimpses, 2))
    out = tested().predict(frozen[TESTED], images, rng)
    if 'locations' not in out:
      raise ValueError(f'frozen.{TESTED}={workdir!r}: its predict returns no locations (only '
                       f'{sorted(out)}): a run without glimpses has nothing to test')
    locations = out['locations']
    if locations.shape != (images.shape[0], glimpses, 2):
      raise ValueError(f'frozen.{TESTED}={workdir!r} predicts locations of shape '
                       f'{tuple(locations.shape)}, expected [B, model.num_glimpses={glimpses}, 2]')
    return locations.astype(jnp.float32)  # [B, T, 2]

  return locate


def make_model(config: ml_collections.ConfigDict) -> RecurrentAttentionModel:
  """The tester's network: RAM's, unfused so that its locations can be forced."""
  m = config.model
  return RecurrentAttentionModel(
      num_classes=data.num_classes(config.dataset),
      retina=RetinaSpec(m.glimpse_size, m.num_scales, m.scale_factor), core=m.core,
      core_features=m.core_features, glimpse_features=m.glimpse_features,
      what_features=m.what_features, where_features=m.where_features, fused=False)


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The record phase's `generate`, or the tester's init / loss / evaluate (module doc)."""
  validate(config)
  locate = location_source(config)
  frozen_models = (TESTED,) if config.tester.source == 'predict' else ()
  if config.kind == 'generate':
    def generate(batch, rng, frozen):
      return {'locations': locate(batch, rng, frozen)}  # [B, T, 2]
    return train.Experiment(generate=generate, frozen_models=frozen_models)

  model = make_model(config)
  m = config.model
  height, width, _ = data.image_shape(config.dataset)

  def read(params, images, locations):
    """The tester's logits [B, C] at the given locations [B, T, 2]."""
    batch = images.shape[0]
    out = model.apply(params, images, ram_noise(model, m.num_glimpses, batch),
                      given_locations=locations, forced=jnp.ones((batch,), bool))
    return out.logits

  def classify(params, images, locations, labels):
    logits = read(params, images, locations)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # [B]
    return nll, (jnp.argmax(logits, -1) != labels).astype(jnp.float32)

  def init(rng, batch):
    images = jnp.asarray(batch['image'])
    batch_size = images.shape[0]
    return model.init(rng, images, ram_noise(model, m.num_glimpses, batch_size),
                      given_locations=jnp.zeros((batch_size, m.num_glimpses, 2)),
                      forced=jnp.ones((batch_size,), bool))

  def loss(params, batch, rng, step, *frozen):
    del rng, step, frozen
    nll, error = classify(params, batch['image'], batch['locations'], batch['label'])
    stored = batch['stored'].astype(jnp.float32)  # [B] 0 for examples without stored locations
    count = jnp.maximum(stored.sum(), 1.0)
    return (nll * stored).sum() / count, {'nll': (nll * stored).sum() / count,
                                          'error': (error * stored).sum() / count}

  def evaluate(params, batch, rng, *frozen):
    locations = locate(batch, rng, frozen[0] if frozen else None)  # the test canvas's
    nll, error = classify(params, batch['image'], locations, batch['label'])
    ink = diagnostics.on_ink(batch['image'], locations, m.glimpse_size)
    digit = diagnostics.on_digit(locations, batch['center'], batch['box_size'], m.glimpse_size,
                                 (height, width))
    return {'error': error, 'nll': nll, **diagnostics.per_glimpse('on_ink', ink),
            **diagnostics.per_glimpse('on_digit', digit)}

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, frozen_models=frozen_models)
