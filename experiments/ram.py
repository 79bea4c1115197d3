"""Recurrent Attention Model (Mnih, Heess, Graves, Kavukcuoglu 2014), REINFORCE with a baseline.

Usage (the default variant is `mnist`):
  make experiment NAME=ram CONFIG=smoke        # 28x28 MNIST, 6 glimpses; ~1 min on 2 CPU cores,
                                               # test error 5-8% over seeds (>= 90% accuracy)
  make experiment NAME=ram CONFIG=mnist        # 28x28, 8x8 retina, 6 glimpses; paper Table 1a:
                                               # 1.12% (6 glimpses), 1.07% (7); here <= 1.5%
  make experiment NAME=ram CONFIG=translated60 # 60x60 translated, 3 scales of 12x12, 4 glimpses;
                                               # paper Table 1b: 1.54/1.22/1.20% (4/6/8 glimpses)
  make experiment NAME=ram CONFIG=cluttered60  # 60x60, 4 clutter pieces; paper Table 2a:
                                               # 4.96/4.08/4.04% (4/6/8 glimpses)
  make experiment NAME=ram CONFIG=cluttered100 # 100x100, 8 pieces, 4 scales; paper Table 2b:
                                               # 9.41/8.31/8.11% (4/6/8 glimpses)
  make experiment NAME=ram CONFIG=mnist_paper  # any variant + `_paper`: the long budget, for GPU/TPU
Options: ARGS="--config.model.num_glimpses=8" (any table row), "--config.model.random_locations=True"
(the random-glimpse baseline), "--config.model.fixed_locations=center" (the oracle: every glimpse
at the digit's center from the batch). CPU-sized variants take tens of minutes on 2 cores; wall
times and numbers are in the README.

Fields for RAM's relatives (defaults give RAM itself):
  model.core             'rnn' (ReLU RNN, the paper's) or 'lstm'.
  model.locator          'linear' (Gaussian, mean tanh(Linear(h))), 'lstm' (the locator's own LSTM
                         of model.locator_features units before that mean) or 'grid' (categorical
                         over the centers of a model.grid_size x model.grid_size grid).
  model.classify_every_step  the classifier after every glimpse; the nll then averages over them.
  model.fused            the rollout with batched weight gradients (`nets/ram_fused.py`); only for
                         core 'rnn', locator 'linear' and no supervision: set it False otherwise.
  loss.reward            'final' (1 for a right final class, the paper's), 'per_step' (1 after
                         every right glimpse) or 'improvement' (the change in rightness); the
                         last two need model.classify_every_step.
  loss.discount          gamma in [0, 1] of the returns-to-go each step's baseline predicts.
  loss.supervised_fraction  each training example is, with this probability, teacher-forced to
                         glimpse at the digit's center (`center`) at every step and trained on
                         -log pi(center) with loss.supervision_weight, instead of REINFORCE.
  loss.reinforce_weight, loss.baseline_weight  weights of the policy and baseline terms.
  loss.reinforce_time_average  divide the REINFORCE term by the glimpses drawn (the default;
                         False: the sum over T, the paper's estimator, whose push on the core
                         grows with T).
  model.policy_gradient_to_core  whether REINFORCE's gradient reaches the core and glimpse
                         network through the locator's input h (True, the default: the Torch
                         RAM; False: the locator reads stop_gradient(h), the core learns from the
                         classifier alone, as in kevinzakka's PyTorch RAM). The runs in
                         results/ram-* predate both fields: True with REINFORCE summed over T.
  model.mean_activation  'tanh' (the paper's) or 'hardtanh' (the Torch RAM's) location mean.
  model.fixed_locations  None (the policy's locations) or 'center': every glimpse, in training and
                         evaluation, at the digit's center the batch carries (`center`), the
                         oracle path; nothing to reinforce (as for model.random_locations).
                         `predict` then needs the images' `centers` [B, 2].
Every run logs, per glimpse t, the share of location means parked at the edge (`saturated_g<t>`,
|mu| > 0.95), of glimpses whose finest patch holds ink (`on_ink_g<t>`) and overlaps the digit's
box (`on_digit_g<t>`), in training metrics and, on the greedy path, in results.json.
e.g. ARGS="--config.model.locator=grid --config.model.fused=False".
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict

from glimpse_jax import data, diagnostics, papers, train
from glimpse_jax.plots.glimpse_paths import plot_glimpse_paths
from glimpse_jax.nets import (LOCATORS, MEAN_ACTIVATIONS, RecurrentAttentionModel, RetinaSpec,
                              evaluate_glimpse_paths, glimpse_predictions, ram_noise)
from glimpse_jax.nets.settings import check_positive_ints
from glimpse_jax.objectives import REWARDS, loss_metrics, rollout_loss


@dataclasses.dataclass(frozen=True)
class Task:
  """A task variant: its dataset and model fields (over get_config's) and CPU-sized budget."""

  dataset: dict[str, Any]
  model: dict[str, Any]
  steps: int


_TASKS = {
    'smoke': Task(dict(name='mnist', canvas_size=28), dict(glimpse_size=8, num_scales=1), 4_000),
    'mnist': Task(dict(name='mnist', canvas_size=28), dict(glimpse_size=8, num_scales=1), 60_000),
    'translated60': Task(dict(name='translated', canvas_size=60),
                         dict(glimpse_size=12, num_scales=3, num_glimpses=4), 60_000),
    'cluttered60': Task(dict(name='cluttered', canvas_size=60, num_clutter=4),
                        dict(glimpse_size=12, num_scales=3, num_glimpses=4), 60_000),
    'cluttered100': Task(dict(name='cluttered', canvas_size=100, num_clutter=8),
                         dict(glimpse_size=12, num_scales=4, num_glimpses=4), 60_000),
}
VARIANTS = (*_TASKS, *(f'{name}_paper' for name in _TASKS if name != 'smoke'))
FIXED_LOCATIONS = ('center',)  # model.fixed_locations besides None


def paper_row(config) -> tuple[str, float] | None:
  """The paper's row and test error for a run's config (a ConfigDict or its results.json dict),
  None when no row of the paper matches (another task, retina, core or locator).

  Derived from the config the run trained with rather than recorded beside it, so an override
  (`--config.model.num_glimpses=8`) moves the run to its own row.
  """
  dataset, model = config['dataset'], config['model']
  for name, task in _TASKS.items():
    if name == 'smoke':
      continue
    fields = {**dict(num_glimpses=6), **task.model}
    if (all(dataset.get(k) == v for k, v in task.dataset.items())
        and dataset.get('source', 'mnist') == 'mnist'
        and all(model.get(k) == v for k, v in fields.items() if k != 'num_glimpses')
        and model.get('core', 'rnn') == 'rnn' and model.get('locator', 'linear') == 'linear'
        and model.get('fixed_locations') is None):
      glimpses, random = model.get('num_glimpses'), bool(model.get('random_locations'))
      row = papers.lookup(papers.RAM, task=name, glimpses=glimpses, random_locations=random)
      if row is None:
        return None
      kind = 'random glimpses' if random else 'glimpses'
      return f'{name}, {glimpses} {kind}', row.test_error
  return None


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The RAM config for variant `arg` (one of VARIANTS; default `mnist`)."""
  variant = train.pick_variant(arg or 'mnist', VARIANTS)
  task = _TASKS[variant.removesuffix('_paper')]

  config = train.base_config()
  config.experiment = 'ram'
  config.dataset.update(task.dataset)
  config.dataset.sample_on_device = True  # canvases drawn inside the step: no host work
  config.batch_size = 128
  config.num_steps = papers.RAM_STEPS if variant.endswith('_paper') else task.steps
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = 'cosine'
  config.eval.mc_samples = 10
  # A learning curve while it trains: 1,000 test examples (eval_examples_during_training).
  config.eval_every = 0 if variant == 'smoke' else 10_000 if variant.endswith('_paper') else 2_000
  config.model = ml_collections.ConfigDict(dict(
      num_glimpses=6, glimpse_size=8, num_scales=1, scale_factor=2, core='rnn',
      core_features=256, glimpse_features=256, what_features=128, where_features=128,
      location_std=0.2, random_locations=False, locator='linear', grid_size=4,
      locator_features=128, classify_every_step=False, fused=True,
      policy_gradient_to_core=True, mean_activation='tanh'))
  config.model.fixed_locations = config_dict.placeholder(str)  # None, or one of FIXED_LOCATIONS
  config.model.update(task.model)
  config.loss = ml_collections.ConfigDict(dict(
      reinforce_weight=1.0, baseline_weight=1.0, reward='final', discount=1.0,
      supervised_fraction=0.0, supervision_weight=1.0,
      # REINFORCE averaged over the glimpses: summed, its push on the core grows with T, the
      # location means saturate at the edges and more glimpses train worse; averaged, none
      # saturate and it beat detaching the locator at equal budget (results/ram.md, policy grid).
      reinforce_time_average=True))
  if variant == 'smoke':
    # Short cosine run: a larger step learns faster; at 3e-3 some seeds drive the location means
    # into the corners (tanh saturates) and stall at 10-30% error, at 2e-3 five seeds end at 5-8%.
    config.optimizer.learning_rate = 2e-3
    config.log_every = 200
    config.checkpoint_every = 2_000
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first RAM-specific field that cannot work."""
  m, loss = config.model, config.loss
  height, width, _ = data.image_shape(config.dataset)
  check_positive_ints('model', m, (
      'num_glimpses', 'num_scales', 'scale_factor', 'core_features', 'glimpse_features',
      'what_features', 'where_features', 'grid_size', 'locator_features'))
  if not 1 <= m.glimpse_size <= min(height, width):
    raise ValueError(f'model.glimpse_size must be in [1, {min(height, width)}] for a '
                     f'{height}x{width} canvas, got {m.glimpse_size}')
  if m.core not in ('rnn', 'lstm'):
    raise ValueError(f"model.core must be one of ['lstm', 'rnn'], got {m.core!r}")
  if m.locator not in LOCATORS:
    raise ValueError(f'model.locator must be one of {list(LOCATORS)}, got {m.locator!r}')
  if not m.location_std > 0:
    raise ValueError(f'model.location_std must be > 0, got {m.location_std}')
  if m.mean_activation not in MEAN_ACTIVATIONS:
    raise ValueError(f'model.mean_activation must be one of {list(MEAN_ACTIVATIONS)}, got '
                     f'{m.mean_activation!r}')
  fixed = m.get('fixed_locations')
  if fixed is not None:
    if fixed not in FIXED_LOCATIONS:
      raise ValueError(f'model.fixed_locations must be None or one of {list(FIXED_LOCATIONS)}, '
                       f'got {fixed!r}')
    if m.random_locations:
      raise ValueError(f'model.fixed_locations={fixed!r} and model.random_locations=True both '
                       'choose the locations; set one')
    if loss.supervised_fraction > 0:
      raise ValueError(f'model.fixed_locations={fixed!r} has no policy to supervise, got '
                       f'loss.supervised_fraction={loss.supervised_fraction}')
  for name in ('reinforce_weight', 'baseline_weight', 'supervision_weight'):
    if not loss[name] >= 0:
      raise ValueError(f'loss.{name} must be >= 0, got {loss[name]}')
  if loss.reward not in REWARDS:
    raise ValueError(f'loss.reward must be one of {list(REWARDS)}, got {loss.reward!r}')
  if loss.reward != 'final' and not m.classify_every_step:
    raise ValueError(f'loss.reward={loss.reward!r} needs model.classify_every_step=True')
  if not 0 <= loss.discount <= 1:
    raise ValueError(f'loss.discount must be in [0, 1], got {loss.discount}')
  if not 0 <= loss.supervised_fraction <= 1:
    raise ValueError(f'loss.supervised_fraction must be in [0, 1], got {loss.supervised_fraction}')
  if m.fused:
    for name, supported in (('core', 'rnn'), ('locator', 'linear')):
      if m[name] != supported:
        raise ValueError(f'model.fused=True implements only model.{name}={supported!r}, got '
                         f'{m[name]!r}; set --config.model.fused=False')
    if loss.supervised_fraction > 0:
      raise ValueError('model.fused=True implements no teacher forcing, got '
                       f'loss.supervised_fraction={loss.supervised_fraction}; set '
                       '--config.model.fused=False')


def make_model(config: ml_collections.ConfigDict) -> RecurrentAttentionModel:
  m = config.model
  return RecurrentAttentionModel(
      num_classes=data.num_classes(config.dataset),
      retina=RetinaSpec(m.glimpse_size, m.num_scales, m.scale_factor),
      core=m.core, core_features=m.core_features, glimpse_features=m.glimpse_features,
      what_features=m.what_features, where_features=m.where_features, locator=m.locator,
      location_std=m.location_std, grid_size=m.grid_size, locator_features=m.locator_features,
      # Fixed locations ride in the noise, as the random baseline's do.
      random_locations=m.random_locations or m.get('fixed_locations') is not None,
      classify_every_step=m.classify_every_step,
      fused=m.fused, policy_gradient_to_core=m.policy_gradient_to_core,
      mean_activation=m.mean_activation)


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The RAM model, its REINFORCE loss and its greedy / Monte-Carlo evaluation."""
  validate(config)
  model = make_model(config)
  m, spec = config.model, config.loss
  fixed = m.get('fixed_locations')

  def fix(drawn, centers):
    """`drawn` with every location at the digit's center [B, 2] for the oracle."""
    if fixed is None:
      return drawn
    if centers is None:
      raise ValueError(f'model.fixed_locations={fixed!r} glimpses at the digit\'s center: the '
                       'batch must carry `center` [B, 2] (predict: pass centers=)')
    centers = jnp.asarray(centers, drawn.location.dtype)  # [B, 2]
    return drawn._replace(location=jnp.broadcast_to(centers, drawn.location.shape))

  def batch_centers(batch):
    return batch.get('center') if fixed is not None else None

  def noise(rng, batch, samples=(), centers=None):
    """Sampling noise [*samples, T, B, ...]; uniform locations for the random baseline, the
    digit's `centers` [B, 2] for the oracle."""
    drawn = ram_noise(model, m.num_glimpses, batch, rng, samples)
    if m.random_locations:
      uniform = jax.random.uniform(jax.random.fold_in(rng, 1), drawn.location.shape, minval=-1.0,
                                   maxval=1.0)
      drawn = drawn._replace(location=uniform)
    return fix(drawn, centers)

  def greedy_noise(rng, batch, centers=None):
    # The random baseline has no greedy path: it glimpses at one random draw.
    if m.random_locations:
      return noise(jax.random.fold_in(rng, 1), batch)
    return fix(ram_noise(model, m.num_glimpses, batch), centers)

  def init(rng, batch):
    images = jnp.asarray(batch['image'])
    centers = None if fixed is None else jnp.zeros((images.shape[0], 2))  # shapes only
    return model.init(rng, images, noise(rng, images.shape[0], centers=centers))

  def loss(params, batch, rng, step):
    del step
    images, labels = batch['image'], batch['label']
    batch_size = images.shape[0]
    noise_rng, forced_rng = jax.random.split(rng)
    teacher = {}
    if spec.supervised_fraction > 0:
      # Supervised examples glimpse at the digit's center at every step.
      forced = jax.random.bernoulli(forced_rng, spec.supervised_fraction, (batch_size,))
      given = jnp.broadcast_to(batch['center'][:, None], (batch_size, m.num_glimpses, 2))
      teacher = dict(given_locations=given, forced=forced)
    out = model.apply(params, images, noise(noise_rng, batch_size, centers=batch_centers(batch)),
                      **teacher)
    per_example, terms = rollout_loss(
        out, labels, step_logits=out.step_logits, supervised=teacher.get('forced'),
        reward=spec.reward, discount=spec.discount,
        # The random and oracle locations are not the policy's: nothing to reinforce.
        reinforce_weight=0.0 if m.random_locations or fixed else spec.reinforce_weight,
        baseline_weight=spec.baseline_weight, supervision_weight=spec.supervision_weight,
        reinforce_time_average=spec.reinforce_time_average)
    metrics = {**loss_metrics(terms),
               **diagnostics.location_metrics(images, out, batch, m.glimpse_size)}
    if spec.supervised_fraction > 0:
      metrics['supervision'] = terms['supervision'].mean()
    return per_example.mean(), metrics

  def evaluate(params, batch, rng):
    images = batch['image']
    batch_size, centers = images.shape[0], batch_centers(batch)
    return evaluate_glimpse_paths(lambda n: model.apply(params, images, n),
                                  greedy_noise(rng, batch_size, centers),
                                  noise(rng, batch_size, (config.eval.mc_samples,), centers),
                                  batch, m.glimpse_size)

  def plots(params, batch, rng, workdir):
    images = jnp.asarray(batch['image'][:8])
    centers = None if fixed is None else batch['center'][:8]
    out = model.apply(params, images, greedy_noise(rng, images.shape[0], centers))
    plot_glimpse_paths(images, jnp.clip(out.locations, -1, 1), labels=batch['label'][:8],
                       predictions=jnp.argmax(out.logits, -1), glimpse_size=m.glimpse_size,
                       num_scales=m.num_scales, scale_factor=m.scale_factor,
                       path=f'{workdir}/glimpse_paths.png')

  def predict(params, images, rng, centers=None):
    # centers [B, 2]: the digits' centers, which the oracle (model.fixed_locations) glimpses at.
    return glimpse_predictions(model.apply(params, images,
                                           greedy_noise(rng, images.shape[0], centers)))

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)
