"""Recurrent Attention Model (Mnih, Heess, Graves, Kavukcuoglu 2014), REINFORCE with a baseline.

Usage (the default variant is `mnist`):
  make experiment NAME=ram CONFIG=smoke        # 28x28 MNIST, 6 glimpses; ~1 min on 2 CPU cores,
                                               # test error ~3% (>= 90% accuracy)
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
(the random-glimpse baseline), "--config.model.core=lstm".
CPU-sized variants take tens of minutes on 2 cores; wall times and numbers are in the README.
"""


import jax
import jax.numpy as jnp
import ml_collections
import optax

from glimpse_jax import data, train
from glimpse_jax.glimpse_plots import plot_glimpse_paths
from glimpse_jax.nets import gaussian_log_prob
from glimpse_jax.nets.ram import RetinaSpec, RecurrentAttentionModel
from glimpse_jax.objectives import baseline_loss, reinforce_loss

# name: (dataset fields, model fields, CPU-sized training steps)
_TASKS = {
    'smoke': (dict(name='mnist', canvas_size=28), dict(glimpse_size=8, num_scales=1), 4_000),
    'mnist': (dict(name='mnist', canvas_size=28), dict(glimpse_size=8, num_scales=1), 60_000),
    'translated60': (dict(name='translated', canvas_size=60),
                     dict(glimpse_size=12, num_scales=3, num_glimpses=4), 60_000),
    'cluttered60': (dict(name='cluttered', canvas_size=60, num_clutter=4),
                    dict(glimpse_size=12, num_scales=3, num_glimpses=4), 60_000),
    'cluttered100': (dict(name='cluttered', canvas_size=100, num_clutter=8),
                     dict(glimpse_size=12, num_scales=4, num_glimpses=4), 60_000),
}
_PAPER_STEPS = 1_000_000
VARIANTS = (*_TASKS, *(f'{name}_paper' for name in _TASKS if name != 'smoke'))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The RAM config for variant `arg` (one of VARIANTS; default `mnist`)."""
  variant = train.pick_variant(arg or 'mnist', VARIANTS)
  task = variant.removesuffix('_paper')
  dataset, model, steps = _TASKS[task]

  config = train.base_config()
  config.experiment = 'ram'
  config.dataset.update(dataset)
  config.batch_size = 128
  config.num_steps = _PAPER_STEPS if variant.endswith('_paper') else steps
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = 'cosine'
  config.eval.mc_samples = 10
  config.model = ml_collections.ConfigDict(dict(
      num_glimpses=6, glimpse_size=8, num_scales=1, scale_factor=2, core='rnn',
      core_features=256, glimpse_features=256, what_features=128, where_features=128,
      location_std=0.2, random_locations=False, fused=True))
  config.model.update(model)
  config.loss = ml_collections.ConfigDict(dict(reinforce_weight=1.0, baseline_weight=1.0))
  if variant == 'smoke':
    config.optimizer.learning_rate = 3e-3  # short cosine run: a larger step learns faster
    config.log_every = 200
    config.checkpoint_every = 2_000
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first RAM-specific field that cannot work."""
  m = config.model
  height, width, _ = data.image_shape(config.dataset)
  if m.num_glimpses < 1:
    raise ValueError(f'model.num_glimpses must be >= 1, got {m.num_glimpses}')
  if not 1 <= m.glimpse_size <= min(height, width):
    raise ValueError(f'model.glimpse_size must be in [1, {min(height, width)}] for a '
                     f'{height}x{width} canvas, got {m.glimpse_size}')
  if m.num_scales < 1 or m.scale_factor < 1:
    raise ValueError(f'model.num_scales and model.scale_factor must be >= 1, got '
                     f'{m.num_scales} and {m.scale_factor}')
  if m.core not in ('rnn', 'lstm'):
    raise ValueError(f"model.core must be one of ['lstm', 'rnn'], got {m.core!r}")
  if m.location_std <= 0:
    raise ValueError(f'model.location_std must be > 0, got {m.location_std}')
  for name in ('reinforce_weight', 'baseline_weight'):
    if config.loss[name] < 0:
      raise ValueError(f'loss.{name} must be >= 0, got {config.loss[name]}')


def make_model(config: ml_collections.ConfigDict) -> RecurrentAttentionModel:
  m = config.model
  return RecurrentAttentionModel(
      num_classes=data.num_classes(config.dataset),
      retina=RetinaSpec(m.glimpse_size, m.num_scales, m.scale_factor),
      core=m.core, core_features=m.core_features, glimpse_features=m.glimpse_features,
      what_features=m.what_features, where_features=m.where_features,
      location_std=m.location_std, random_locations=m.random_locations, fused=m.fused)


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The RAM model, its REINFORCE loss and its greedy / Monte-Carlo evaluation."""
  validate(config)
  model = make_model(config)
  num_glimpses, std = config.model.num_glimpses, config.model.location_std

  def draw_noise(rng, batch, samples=()):
    shape = (*samples, num_glimpses, batch, 2)
    if config.model.random_locations:
      return jax.random.uniform(rng, shape, minval=-1.0, maxval=1.0)
    return jax.random.normal(rng, shape)

  def init(rng, batch):
    images = jnp.asarray(batch['image'])
    return model.init(rng, images, draw_noise(rng, images.shape[0]))

  def loss(params, batch, rng, step):
    del step
    images, labels = batch['image'], batch['label']
    out = model.apply(params, images, draw_noise(rng, images.shape[0]))
    nll = optax.softmax_cross_entropy_with_integer_labels(out.logits, labels).mean()
    reward = (jnp.argmax(out.logits, -1) == labels).astype(jnp.float32)  # [B]
    log_probs = gaussian_log_prob(out.locations, out.means, std).T  # [B, T]
    baselines = out.baselines.T  # [B, T]
    policy = reinforce_loss(log_probs, reward, baselines).mean()
    if config.model.random_locations:
      policy = jnp.zeros_like(policy)
    fit = baseline_loss(baselines, reward).mean()
    total = nll + config.loss.reinforce_weight * policy + config.loss.baseline_weight * fit
    return total, {'nll': nll, 'reinforce': policy, 'baseline_mse': fit,
                   'error': 1.0 - reward.mean()}

  def evaluate(params, batch, rng):
    images, labels = batch['image'], batch['label']
    batch_size = images.shape[0]
    if config.model.random_locations:
      greedy_noise = draw_noise(jax.random.fold_in(rng, 1), batch_size)
    else:
      greedy_noise = jnp.zeros((num_glimpses, batch_size, 2))
    greedy = model.apply(params, images, greedy_noise).logits
    apply_logits = lambda noise: model.apply(params, images, noise).logits
    mc = jax.vmap(apply_logits)(draw_noise(rng, batch_size, (config.eval.mc_samples,)))
    mc_log_probs = jax.nn.log_softmax(mc, -1).mean(0)  # [B, C]
    # The headline error follows one path of mean locations, as the papers' tables do;
    # error_mc averages class log-probabilities over M sampled paths.
    return {
        'error': (jnp.argmax(greedy, -1) != labels).astype(jnp.float32),
        'error_mc': (jnp.argmax(mc_log_probs, -1) != labels).astype(jnp.float32),
        'nll': optax.softmax_cross_entropy_with_integer_labels(greedy, labels),
    }

  def plots(params, batch, rng, workdir):
    del rng
    images = jnp.asarray(batch['image'][:8])
    out = model.apply(params, images, jnp.zeros((num_glimpses, images.shape[0], 2)))
    m = config.model
    plot_glimpse_paths(images, jnp.clip(out.locations, -1, 1), labels=batch['label'][:8],
                       predictions=jnp.argmax(out.logits, -1), glimpse_size=m.glimpse_size,
                       num_scales=m.num_scales, scale_factor=m.scale_factor,
                       path=f'{workdir}/glimpse_paths.png')

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots)
