"""Reward shaping and an LSTM locator for RAM (Brooks et al., "Applying Active Learning to
Recurrent Attentive Models").

Usage (the default variant is `change_linear`):
  make experiment NAME=ram_reward CONFIG=smoke           # change_linear for 3 epochs, decaying
                                                         # rate: 20 s on 2 CPU cores (45 s shared),
                                                         # 83.5% test accuracy (88.4% Monte-Carlo)
                                                         # at seed 0; tested: > 70%
  make experiment NAME=ram_reward CONFIG=<reward>_<locator> WORKDIR=runs/ram_reward/<variant>-seed0
  make experiment NAME=ram_reward CONFIG=cifar10         # change_linear on CIFAR-10 (32x32x3), the
                                                         # paper's second dataset; never run yet
Variants: a reward x a locator, plus `smoke` and `cifar10`. Any variant on CIFAR-10:
ARGS="--config.dataset.source=cifar10 --config.dataset.canvas_size=32" (reads
<data_dir>/cifar10/cifar-10-python.tar.gz, downloaded when missing and online).
  reward   plain   RAM's reward only: 1 at the last glimpse for a right final class (the control);
           change  + loss.output_change_weight * ||O_t - O_{t-1}||_2 after every glimpse (eq. 2);
           spread  - loss.spread_weight * spread(O_t) after every glimpse (a bonus for low spread).
  locator  linear  the public Torch RAM's: location mean tanh(Linear(h_{t-1})), ReLU RNN core;
           lstm    the locator's own LSTM (model.locator_features units) before that Linear;
           lstm_core  an LSTM core in place of the ReLU RNN, linear locator.
The paper replaces "a linear layer" of the Torch RAM with an LSTM without saying which: the
locator's (`*_lstm`) or the core's recurrent one (`*_lstm_core`); both are offered.

Setting: 28x28 MNIST (CIFAR-10: 32x32x3), 6 glimpses of one 8x8 patch, batch 128, Adam at 1e-3 with
a constant rate (the Torch RAM's rate barely decays over 20 epochs; a decaying one would hide a late
collapse). The classifier runs after every glimpse; its NLL averages over the glimpses. One of the
paper's "epochs" is 50,000 classifications: 391 updates of 128 (`eval_every`), after each of which
the test accuracy of the greedy path is measured on the first 2,048 test images
(`eval_examples_during_training`; metrics.jsonl 'eval' records); the run ends after 20 epochs (7,820
updates) with an evaluation on all 10,000. On 2 CPU cores shared with another run, short runs went
at ~65 updates/s for `*_linear` (the fused rollout) and ~33 for the LSTM locator, so expect 2-3 min
per linear run and 4-6 min per LSTM one. When changing batch_size, set eval_every and num_steps to
match (eval_every = round(50_000 / batch_size)). The paper's observation to compare with: the
output-change reward passes 50% test accuracy, then collapses to 10-11% by epoch 10.

Rewards (see `glimpse_jax.objectives.reward_shaping`): O_t is the classifier's softmax after
glimpse t and O_0 the uniform distribution (what a balanced classifier knows before any glimpse).
spread(O) = 1 - std_c(O) / std_max is 1 for a uniform output and 0 for a one-hot (std_max the
std over classes of a one-hot), so the spread bonus, at most 0, is best for a confident output
(-w * std_c(O) itself would reward the uniform one). Per episode the change bonus lies in
[0, 6 sqrt(2) w] and the spread bonus in [-6 w, 0], against RAM's 0/1. Returns-to-go, baselines and
REINFORCE are RAM's (`objectives.ram_loss`). `--config.loss.change_space=log_probs` compares
log-softmax outputs instead (what the Torch RAM's classifier emits): that bonus has no bound and
grows as the classifier grows confident, one hypothesis for the collapse. Other fields:
`loss.reward` (RAM's 'final', or 'per_step' / 'improvement'), `loss.discount`, the weights
`loss.reinforce_weight` and `loss.baseline_weight`, and RAM's model widths.

Training metrics (per example, averaged over a logging interval): `reward_task` (RAM's reward),
`reward_change` and `reward_spread` (the weighted bonuses summed over the glimpses), `return` (G_0),
`output_change` (sum_t ||O_t - O_{t-1}||, unweighted, logged by every variant) and `output_spread`
(mean over glimpses). After training: `output_change.png` (mean ||O_t - O_{t-1}|| per glimpse, the
paper's Figure 2), `glimpse_loss.png` (the classification loss after each glimpse for the trained
policy against random glimpses, Figure 3), their numbers in `per_glimpse.json`, and
`glimpse_paths.png`.

The 3-seed sweep (add plain_lstm_core change_lstm_core spread_lstm_core for the other reading of
the LSTM) and its report (results/ram_reward.md and its figures):
  for v in plain_linear plain_lstm change_linear change_lstm spread_linear spread_lstm; do
    for s in 0 1 2; do
      make experiment NAME=ram_reward CONFIG=$v WORKDIR=runs/ram_reward/$v-seed$s \
        ARGS="--config.seed=$s"
    done
  done
  .venv/bin/python -m glimpse_jax.report_ram_reward runs/ram_reward/* --out results/ram_reward.md
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glimpse_jax import data, diagnostics, train
from glimpse_jax.glimpse_curves import plot_per_glimpse
from glimpse_jax.glimpse_plots import plot_glimpse_paths
from glimpse_jax.nets import (MEAN_ACTIVATIONS, RecurrentAttentionModel, RetinaSpec, draw_noise,
                              evaluate_glimpse_paths, glimpse_predictions, mode_noise)
from glimpse_jax.objectives import (OUTPUT_SPACES, REWARDS, output_change, output_spread, ram_loss,
                                    reward_bonuses)

# reward name: (loss.output_change_weight, loss.spread_weight)
REWARD_VARIANTS = {'plain': (0.0, 0.0), 'change': (1.0, 0.0), 'spread': (0.0, 1.0)}
# locator name: (model.locator, model.core)
LOCATOR_VARIANTS = {'linear': ('linear', 'rnn'), 'lstm': ('lstm', 'rnn'),
                    'lstm_core': ('linear', 'lstm')}
# variants that run change_linear otherwise
_SPECIAL = ('smoke', 'cifar10')
VARIANTS = (*_SPECIAL, *(f'{reward}_{locator}' for reward in REWARD_VARIANTS
                         for locator in LOCATOR_VARIANTS))
PAPER_EPOCH = 50_000  # classifications per epoch
_EPOCHS, _SMOKE_EPOCHS = 20, 3


def epoch_steps(batch_size: int) -> int:
  """Updates in one of the paper's epochs of 50,000 classifications."""
  return round(PAPER_EPOCH / batch_size)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of variant `arg` (one of VARIANTS; default `change_linear`); see module doc."""
  variant = train.pick_variant(arg or 'change_linear', VARIANTS)
  reward, _, locator = ('change_linear' if variant in _SPECIAL else variant).partition('_')
  epochs = _SMOKE_EPOCHS if variant == 'smoke' else _EPOCHS

  config = train.base_config()
  config.experiment = 'ram_reward'
  config.dataset.update(name='mnist', canvas_size=28)
  config.batch_size = 128
  config.eval_every = epoch_steps(config.batch_size)
  config.num_steps = epochs * config.eval_every
  config.eval_examples_during_training = 2_048  # 4 evaluation batches of 512
  config.log_every = 100
  config.checkpoint_every = 5 * config.eval_every
  config.optimizer.update(name='adam', learning_rate=1e-3, schedule='constant')
  config.eval.mc_samples = 10
  model_locator, core = LOCATOR_VARIANTS[locator]
  config.model = ml_collections.ConfigDict(dict(
      num_glimpses=6, glimpse_size=8, num_scales=1, scale_factor=2, core=core,
      core_features=256, glimpse_features=256, what_features=128, where_features=128,
      location_std=0.2, locator=model_locator, locator_features=128,
      fused=(model_locator, core) == ('linear', 'rnn'),
      # The Torch RAM the paper built on passes the locator's gradient into the core.
      policy_gradient_to_core=True, mean_activation='tanh'))
  change_weight, spread_weight = REWARD_VARIANTS[reward]
  config.loss = ml_collections.ConfigDict(dict(
      reward='final', output_change_weight=change_weight, spread_weight=spread_weight,
      change_space='probs', discount=1.0, reinforce_weight=1.0, baseline_weight=1.0,
      reinforce_time_average=False))
  if variant == 'smoke':
    # A short run learns faster with a larger, decaying step (as RAM's smoke variant).
    config.optimizer.update(learning_rate=2e-3, schedule='cosine')
    config.checkpoint_every = 0
  if variant == 'cifar10':
    config.dataset.update(source='cifar10', canvas_size=32)
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of this experiment that cannot work."""
  m, loss = config.model, config.loss
  height, width, _ = data.image_shape(config.dataset)
  for name in ('num_glimpses', 'num_scales', 'scale_factor', 'core_features', 'glimpse_features',
               'what_features', 'where_features', 'locator_features'):
    if isinstance(m[name], bool) or not isinstance(m[name], int) or m[name] < 1:
      raise ValueError(f'model.{name} must be an integer >= 1, got {m[name]!r}')
  if not 1 <= m.glimpse_size <= min(height, width):
    raise ValueError(f'model.glimpse_size must be in [1, {min(height, width)}] for a '
                     f'{height}x{width} canvas, got {m.glimpse_size}')
  for name, allowed in (('core', ('rnn', 'lstm')), ('locator', ('linear', 'lstm'))):
    if m[name] not in allowed:
      raise ValueError(f'model.{name} must be one of {list(allowed)}, got {m[name]!r}')
  if not m.location_std > 0:
    raise ValueError(f'model.location_std must be > 0, got {m.location_std}')
  if m.mean_activation not in MEAN_ACTIVATIONS:
    raise ValueError(f'model.mean_activation must be one of {list(MEAN_ACTIVATIONS)}, got '
                     f'{m.mean_activation!r}')
  if m.fused and (m.core, m.locator) != ('rnn', 'linear'):
    raise ValueError(f'model.fused=True implements only core rnn with the linear locator, got '
                     f'core={m.core!r}, locator={m.locator!r}; set --config.model.fused=False')
  for name in ('output_change_weight', 'spread_weight', 'reinforce_weight', 'baseline_weight'):
    if not loss[name] >= 0:
      raise ValueError(f'loss.{name} must be >= 0, got {loss[name]}')
  if loss.reward not in REWARDS:
    raise ValueError(f'loss.reward must be one of {list(REWARDS)}, got {loss.reward!r}')
  if loss.change_space not in OUTPUT_SPACES:
    raise ValueError(f'loss.change_space must be one of {list(OUTPUT_SPACES)}, got '
                     f'{loss.change_space!r}')
  if not 0 <= loss.discount <= 1:
    raise ValueError(f'loss.discount must be in [0, 1], got {loss.discount}')


def make_model(config: ml_collections.ConfigDict, **overrides) -> RecurrentAttentionModel:
  """RAM with the classifier after every glimpse; `overrides` replace module fields."""
  m = config.model
  fields = dict(
      num_classes=data.num_classes(config.dataset),
      retina=RetinaSpec(m.glimpse_size, m.num_scales, m.scale_factor), core=m.core,
      core_features=m.core_features, glimpse_features=m.glimpse_features,
      what_features=m.what_features, where_features=m.where_features, locator=m.locator,
      location_std=m.location_std, locator_features=m.locator_features,
      classify_every_step=True, fused=m.fused, policy_gradient_to_core=m.policy_gradient_to_core,
      mean_activation=m.mean_activation)
  return RecurrentAttentionModel(**{**fields, **overrides})


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """RAM with shaped rewards, its greedy / Monte-Carlo evaluation and per-glimpse plots."""
  validate(config)
  model = make_model(config)
  random_model = make_model(config, random_locations=True)
  m, spec = config.model, config.loss
  time_major = lambda batch: (m.num_glimpses, batch)

  def init(rng, batch):
    images = jnp.asarray(batch['image'])
    return model.init(rng, images, draw_noise(rng, time_major(images.shape[0])))

  def loss(params, batch, rng, step):
    del step
    images, labels = batch['image'], batch['label']
    out = model.apply(params, images, draw_noise(rng, time_major(images.shape[0])))
    step_logits = jnp.swapaxes(out.step_logits, 0, 1)  # [B, T, C]
    bonus = reward_bonuses(step_logits, output_change_weight=spec.output_change_weight,
                           spread_weight=spec.spread_weight, space=spec.change_space)
    per_example, terms = ram_loss(
        out.logits, labels, out.log_probs.T, out.baselines.T, step_logits=step_logits,
        reward=spec.reward, reward_bonus=bonus['change'] + bonus['spread'],
        discount=spec.discount, reinforce_weight=spec.reinforce_weight,
        baseline_weight=spec.baseline_weight, reinforce_time_average=spec.reinforce_time_average)
    logits = jax.lax.stop_gradient(step_logits)
    metrics = {
        'nll': terms['nll'].mean(), 'reinforce': terms['reinforce'].mean(),
        'baseline_mse': terms['baseline_mse'].mean(), 'error': 1.0 - terms['correct'].mean(),
        'reward_task': terms['task_reward'].mean(),
        'reward_change': bonus['change'].sum(-1).mean(),
        'reward_spread': bonus['spread'].sum(-1).mean(),
        'return': terms['return'].mean(),
        'output_change': output_change(logits, spec.change_space).sum(-1).mean(),
        'output_spread': output_spread(logits).mean(),
        **diagnostics.location_metrics(images, out, batch, m.glimpse_size),
    }
    return per_example.mean(), metrics

  def evaluate(params, batch, rng):
    images = batch['image']
    batch_size = images.shape[0]
    return evaluate_glimpse_paths(
        lambda noise: model.apply(params, images, noise), mode_noise(time_major(batch_size)),
        draw_noise(rng, (config.eval.mc_samples, *time_major(batch_size))), batch,
        m.glimpse_size)

  def per_glimpse(params, images, labels, rng):
    """{path: {'loss', 'error', 'output_change': [T] means}} for the greedy and sampled policy
    paths and for uniformly random glimpses, all read by the trained networks."""
    shape = time_major(images.shape[0])
    uniform = jax.random.uniform(jax.random.fold_in(rng, 1), (*shape, 2), minval=-1.0, maxval=1.0)
    paths = {'policy (greedy)': (model, mode_noise(shape)),
             'policy (sampled)': (model, draw_noise(rng, shape)),
             'random glimpses': (random_model, mode_noise(shape)._replace(location=uniform))}
    curves = {}
    for name, (net, noise) in paths.items():
      step_logits = jnp.swapaxes(net.apply(params, images, noise).step_logits, 0, 1)  # [B, T, C]
      log_p = jax.nn.log_softmax(step_logits, -1)
      curves[name] = {
          'loss': -jnp.take_along_axis(log_p, labels[:, None, None], -1)[..., 0].mean(0),
          'error': (jnp.argmax(step_logits, -1) != labels[:, None]).mean(0),
          'output_change': output_change(step_logits, spec.change_space).mean(0),
      }
    return curves

  def plots(params, batch, rng, workdir):
    images, labels = jnp.asarray(batch['image']), jnp.asarray(batch['label'])
    curves = jax.tree.map(lambda v: np.asarray(v).tolist(),
                          jax.jit(per_glimpse)(params, images, labels, rng))
    with open(os.path.join(workdir, 'per_glimpse.json'), 'w') as f:
      json.dump({'images': int(images.shape[0]), 'change_space': spec.change_space, **curves}, f,
                indent=1)
    space = 'softmax' if spec.change_space == 'probs' else 'log-softmax'
    plot_per_glimpse({name: c['output_change'] for name, c in curves.items()},
                     os.path.join(workdir, 'output_change.png'),
                     ylabel=rf'mean $\|O_t - O_{{t-1}}\|_2$ ({space})',
                     title='output change per glimpse (O_0 uniform)')
    plot_per_glimpse({name: c['loss'] for name, c in curves.items()},
                     os.path.join(workdir, 'glimpse_loss.png'),
                     ylabel='classification loss (NLL)', title='loss after each glimpse')
    greedy = model.apply(params, images[:8], mode_noise(time_major(8)))
    plot_glimpse_paths(images[:8], jnp.clip(greedy.locations, -1, 1), labels=labels[:8],
                       predictions=jnp.argmax(greedy.logits, -1), glimpse_size=m.glimpse_size,
                       num_scales=m.num_scales, scale_factor=m.scale_factor,
                       path=os.path.join(workdir, 'glimpse_paths.png'))

  def predict(params, images, rng):
    del rng
    return glimpse_predictions(model.apply(params, images,
                                           mode_noise(time_major(images.shape[0]))))

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)
