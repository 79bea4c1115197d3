"""Reward shaping and an LSTM locator for RAM (Brooks et al., "Applying Active Learning to
Recurrent Attentive Models").

Usage (the default variant is `change_linear`):
  make experiment NAME=ram_reward CONFIG=smoke           # change_linear for 3 epochs, decaying
                                                         # rate: 20 s on 2 CPU cores (45 s shared),
                                                         # 83.5% test accuracy (88.4% Monte-Carlo)
                                                         # at seed 0; tested: > 70%
  make experiment NAME=ram_reward CONFIG=<reward>_<locator>[_paper] \
    WORKDIR=runs/ram_reward/<variant>-seed0
  make experiment NAME=ram_reward CONFIG=cifar10         # change_linear on CIFAR-10 (32x32x3), the
                                                         # paper's second dataset; never run yet
Variants: a reward x a locator, in our setting or (`_paper`) the Torch RAM's, plus `smoke` and
`cifar10`. Any variant on CIFAR-10: ARGS="--config.dataset.source=cifar10
--config.dataset.canvas_size=32" (reads <data_dir>/cifar10/cifar-10-python.tar.gz, downloaded when
missing and online).
  reward   plain      RAM's reward only: 1 at the last glimpse for a right final class (control);
           logchange  + loss.output_change_weight * ||O_t - O_{t-1}||_2 after every glimpse, O_t the
                      log-softmax: eq. 2 as written (the Torch RAM's classifier ends in LogSoftMax);
           change     the same on the softmax: our reading of eq. 2 (bounded by sqrt(2) a glimpse);
           spread     - loss.spread_weight * std_c(O_t) / std_max after every glimpse: the paper's
                      sign (a low spread of the output is rewarded), 0 for a uniform output;
           confidence - loss.spread_weight * (1 - std_c(O_t) / std_max): our earlier spread bonus,
                      which rewards a confident output and costs a constant -w a glimpse.
  locator  linear     the public Torch RAM's: location mean tanh(Linear(h_{t-1})), ReLU RNN core;
           lstm       the locator's own LSTM (model.locator_features units) before that Linear;
           mlp        one tanh layer of model.locator_features units before it: the control with
                      the LSTM's extra layer and no memory;
           lstm_core  an LSTM core in place of the ReLU RNN, linear locator.
The paper replaces "a linear layer" of the Torch RAM with an LSTM without saying which: the
locator's (`*_lstm`) or the core's recurrent one (`*_lstm_core`); both are offered. The LSTM
locator also adds a hidden layer; `*_mlp` adds the layer alone, so LSTM against MLP measures the
memory.

Setting (ours): 28x28 MNIST (CIFAR-10: 32x32x3), 6 glimpses of one 8x8 patch, batch 128, Adam at
1e-3 with a constant rate (the Torch RAM's rate barely decays over 20 epochs; a decaying one would
hide a late collapse). The classifier runs after every glimpse; its NLL averages over the glimpses.
The rewards enter returns-to-go against a baseline read from the core state (RAM's). The policy
gradient reaches the core (`model.policy_gradient_to_core`, as in the Torch RAM) and the REINFORCE
term is averaged over the glimpses (`loss.reinforce_time_average`, RAM's default; summed, its push
on the core grows with T and parked the location means at the canvas edge).

Paper setup (`*_paper`, PAPER_SETUP): the Torch RAM's choices the paper built on, as options of
the same parts. SGD at 0.01 with momentum 0.9 damped by 0.9 (dpnn's default: v <- 0.9 v + 0.1 g),
i.e. optax's momentum SGD at 1e-3 (`optimizer.name=momentum`, `optimizer.learning_rate=0.001`;
0.01 there is the undamped reading, 10x larger steps), batch 32, HardTanh on the location mean
(`model.mean_activation=hardtanh`) and on the sample: every variant's glimpse reads the sample
clipped to [-1, 1] while its log-probability is the unclipped sample's, which is what the Torch
RAM's ReinforceNormal followed by HardTanh does. REINFORCE summed over the glimpses
(`loss.reinforce_time_average=False`). One total reward per episode
(`loss.returns=total`: the bonuses are summed into the last glimpse, so with the 'final' reward and
no discount every step's return is the episode's total R) against a single learned scalar
baseline (`loss.baseline=scalar`: the baseline head's bias alone, not a function of the state;
`state` is RAM's per-step baseline), and the NLL of the last glimpse only (`loss.nll_steps=last`;
the classifier still runs after every glimpse, for the bonus). Not changed: the location std (0.2;
the Torch RAM's 0.22), the initialisation (its uniform in +-0.1) and the glimpse scale (its +-1
reaches 12 pixels from the center, ours the canvas edge at 14). Each part is a field, so
ablations are ARGS on a `*_paper` variant, e.g. `--config.model.policy_gradient_to_core=False`.

One of the paper's "epochs" is 50,000 classifications: `eval_every` = 391 updates of 128 (1,563 of
32), recomputed from `batch_size` also when ARGS overrides it, as are `num_steps` (20 epochs) and
`checkpoint_every` (5 epochs). After each epoch the test accuracy of the greedy path is measured
on the first 2,048 test images (`eval_examples_during_training`; metrics.jsonl 'eval' records);
the run ends with an evaluation on all 10,000. On 2 CPU cores shared with another run, short runs
went at ~65 updates/s for `*_linear` (the fused rollout) and ~33 for the LSTM locator, so expect
2-3 min per linear run and 4-6 min per LSTM one in our setting. The paper's observation to compare
with: the output-change reward passes 50% test accuracy, then collapses to 10-11% by epoch 10.

Rewards (see `glimpse_jax.objectives.reward_shaping`): O_0 is the uniform distribution (what a
balanced classifier knows before any glimpse); std_max is the std over classes of a one-hot
output. Per episode the `change` bonus lies in [0, 6 sqrt(2) w], `logchange`'s is unbounded and
grows as the classifier grows confident, and both spread bonuses lie in [-6 w, 0], against RAM's
0/1. Other fields: `loss.reward` (RAM's 'final', or 'per_step' / 'improvement'), `loss.discount`,
the weights `loss.reinforce_weight` and `loss.baseline_weight`, and RAM's model widths.

Training metrics (per example, averaged over a logging interval): `reward_task` (RAM's reward),
`reward_change` and `reward_spread` (the weighted bonuses summed over the glimpses), `return` (G_0),
`baseline` (the mean baseline), `output_change` (sum_t ||O_t - O_{t-1}||, unweighted, logged by
every variant), `output_spread` and `output_std` (means over glimpses). Collapse diagnostics, in
the training metrics and in every evaluation (metrics.jsonl 'eval' records each epoch, and
results.json as `test_<name>` at the end), on the greedy path when evaluating: `at_edge_g<t>` and
`at_edge`, the share of location means with a coordinate at +-1 (|mu| >= 1 - 1e-6; a hardtanh
mean sits there exactly), beside `saturated_g<t>` (|mu| > 0.95); `pred_frac_<c>`, the share of
examples whose final class is c. Training metrics also give `pred_max_frac`, the largest share of
one class in the batch; for an evaluation it is max_c of the `pred_frac_<c>` (the report shows
it). After training: `output_change.png` (mean ||O_t - O_{t-1}|| per glimpse, the paper's Figure 2),
`glimpse_loss.png` (the classification loss after each glimpse for the trained policy against
random glimpses, Figure 3), their numbers in `per_glimpse.json`, and `glimpse_paths.png`.

The 3-seed sweep (add the `*_lstm_core` variants for the other reading of the LSTM) and its
report (results/ram_reward.md and its figures):
  for v in plain_linear plain_lstm plain_mlp change_linear change_lstm change_mlp \
      logchange_linear spread_linear spread_lstm spread_mlp \
      plain_linear_paper logchange_linear_paper logchange_lstm_paper logchange_mlp_paper; do
    for s in 0 1 2; do
      make experiment NAME=ram_reward CONFIG=$v WORKDIR=runs/ram_reward/$v-seed$s \
        ARGS="--config.seed=$s"
    done
  done
  .venv/bin/python -m glimpse_jax.report_ram_reward runs/ram_reward/* --out results/ram_reward.md
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glimpse_jax import data, diagnostics, papers, train
from glimpse_jax.plots.per_glimpse_curves import plot_per_glimpse
from glimpse_jax.plots.glimpse_paths import plot_glimpse_paths
from glimpse_jax.nets import (MEAN_ACTIVATIONS, RecurrentAttentionModel, RetinaSpec,
                              glimpse_predictions, path_values, ram_noise)
from glimpse_jax.objectives import REWARDS, loss_metrics, ram_loss
from glimpse_jax.objectives.reward_shaping import (OUTPUT_SPACES, SPREAD_FORMS, episode_total,
                                                   output_change, output_spread, output_std,
                                                   reward_bonuses)

# reward name: its loss fields (the others keep get_config's values)
REWARD_VARIANTS = {
    'plain': dict(output_change_weight=0.0, spread_weight=0.0),
    'change': dict(output_change_weight=1.0, change_space='probs'),  # our reading of eq. 2
    'logchange': dict(output_change_weight=1.0, change_space='log_probs'),  # eq. 2 as written
    'spread': dict(spread_weight=1.0, spread_form='paper'),
    'confidence': dict(spread_weight=1.0, spread_form='confidence'),  # our earlier spread bonus
}
@dataclasses.dataclass(frozen=True)
class LocatorVariant:
  """A locator variant's `model.locator` and `model.core`."""

  locator: str
  core: str


LOCATOR_VARIANTS = {'linear': LocatorVariant('linear', 'rnn'),
                    'lstm': LocatorVariant('lstm', 'rnn'), 'mlp': LocatorVariant('mlp', 'rnn'),
                    'lstm_core': LocatorVariant('linear', 'lstm')}
PAPER_SUFFIX = '_paper'
# The Torch RAM's choices a `*_paper` variant takes: {dotted field: value}. The gradient into the
# core (model.policy_gradient_to_core=True) is every variant's default.
PAPER_SETUP = {
    'batch_size': 32,
    # The Torch RAM's SGD at 0.01 with momentum 0.9 goes through dpnn's updateGradParameters,
    # whose damping defaults to the momentum: v <- 0.9 v + 0.1 g, step 0.01 v. That is optax's
    # momentum (v <- 0.9 v + g) at 0.01 * (1 - 0.9) but for dpnn's first step (v starts at the
    # first gradient, a transient that fades as 0.9^t); at 0.01 it takes steps 10x larger.
    'optimizer.name': 'momentum', 'optimizer.learning_rate': 1e-3,  # 0.01 * (1 - 0.9)
    'optimizer.momentum': 0.9,
    'model.mean_activation': 'hardtanh',
    'loss.returns': 'total', 'loss.baseline': 'scalar', 'loss.nll_steps': 'last',
    'loss.reinforce_time_average': False,  # the Torch RAM sums REINFORCE over the glimpses
}
RETURNS = ('to_go', 'total')
BASELINES = ('state', 'scalar')
NLL_STEPS = ('all', 'last')
# variants that run change_linear otherwise
_SPECIAL = ('smoke', 'cifar10')
VARIANTS = (*_SPECIAL, *(f'{reward}_{locator}{setup}' for setup in ('', PAPER_SUFFIX)
                         for reward in REWARD_VARIANTS for locator in LOCATOR_VARIANTS))
PAPER_EPOCH = papers.RAM_REWARD.epoch_examples  # classifications per epoch
_EPOCHS, _SMOKE_EPOCHS = 20, 3
# |mu| at or above which a location mean counts as at the canvas edge (a hardtanh mean reaches 1)
EDGE = 1.0 - 1e-6


def epoch_steps(batch_size):
  """Updates in one of the paper's epochs of 50,000 classifications, rounded half up (an int, or a
  FieldReference that follows a config's batch size)."""
  return (PAPER_EPOCH + batch_size // 2) // batch_size


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  *path, name = dotted.split('.')
  node = config
  for key in path:
    node = node[key]
  node[name] = value


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of variant `arg` (one of VARIANTS; default `change_linear`); see module doc."""
  variant = train.pick_variant(arg or 'change_linear', VARIANTS)
  name = 'change_linear' if variant in _SPECIAL else variant
  paper = name.endswith(PAPER_SUFFIX)
  reward, _, locator = name.removesuffix(PAPER_SUFFIX).partition('_')
  epochs = _SMOKE_EPOCHS if variant == 'smoke' else _EPOCHS

  config = train.base_config()
  config.experiment = 'ram_reward'
  config.dataset.update(name='mnist', canvas_size=28)
  config.batch_size = 128
  # The epoch's updates follow the batch size, also when --config.batch_size overrides it (one
  # reference per field, so that giving one of them leaves the others following the batch size).
  epoch = lambda: epoch_steps(config.get_ref('batch_size'))
  config.eval_every = epoch()
  config.num_steps = epochs * epoch()
  config.eval_examples_during_training = 2_048  # 4 evaluation batches of 512
  config.log_every = 100
  config.checkpoint_every = 5 * epoch()
  config.optimizer.update(name='adam', learning_rate=1e-3, schedule='constant')
  config.eval.mc_samples = 10
  locator_variant = LOCATOR_VARIANTS[locator]
  config.model = ml_collections.ConfigDict(dict(
      num_glimpses=6, glimpse_size=8, num_scales=1, scale_factor=2, core=locator_variant.core,
      core_features=256, glimpse_features=256, what_features=128, where_features=128,
      location_std=0.2, locator=locator_variant.locator, locator_features=128,
      fused=(locator_variant.locator, locator_variant.core) == ('linear', 'rnn'),
      # The Torch RAM the paper built on passes the locator's gradient into the core.
      policy_gradient_to_core=True, mean_activation='tanh'))
  config.loss = ml_collections.ConfigDict(dict(
      reward='final', output_change_weight=0.0, spread_weight=0.0, change_space='probs',
      spread_form='paper', discount=1.0, reinforce_weight=1.0, baseline_weight=1.0,
      reinforce_time_average=True, returns='to_go', baseline='state', nll_steps='all'))
  config.loss.update(REWARD_VARIANTS[reward])
  if paper:
    for field, value in PAPER_SETUP.items():
      _set(config, field, value)
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
  for name, allowed in (('core', ('rnn', 'lstm')), ('locator', ('linear', 'lstm', 'mlp'))):
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
  for name, allowed in (('reward', REWARDS), ('change_space', OUTPUT_SPACES),
                        ('spread_form', SPREAD_FORMS), ('returns', RETURNS),
                        ('baseline', BASELINES), ('nll_steps', NLL_STEPS)):
    if loss[name] not in allowed:
      raise ValueError(f'loss.{name} must be one of {list(allowed)}, got {loss[name]!r}')
  if not 0 <= loss.discount <= 1:
    raise ValueError(f'loss.discount must be in [0, 1], got {loss.discount}')
  # Both need RAM's single reward at the last glimpse: 'total' to make every step's return the
  # episode's total, 'last' because the other rewards read the classifier at every glimpse.
  for name, value in (('returns', 'total'), ('nll_steps', 'last')):
    if loss[name] == value and loss.reward != 'final':
      raise ValueError(f"loss.{name}={value!r} needs loss.reward='final', got "
                       f'{loss.reward!r}')
  if loss.returns == 'total' and loss.discount != 1:
    raise ValueError(f"loss.returns='total' needs loss.discount=1, got {loss.discount}")


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


def scalar_baseline(params) -> jax.Array:
  """The single learned baseline of `loss.baseline='scalar'`: the baseline head's bias (its kernel
  is then unused, so b depends on nothing), as the Torch RAM's nn.Add(1) on a constant: []."""
  return params['params']['baseline']['bias'][0]


def at_edge(loc_mean: jax.Array) -> jax.Array:
  """1.0 where either coordinate of a location mean has |mu| >= EDGE: [..., 2] -> [...]."""
  return (jnp.max(jnp.abs(loc_mean), -1) >= EDGE).astype(jnp.float32)


def predicted_fractions(logits: jax.Array, num_classes: int) -> jax.Array:
  """The share of examples predicted as each class (argmax): [B, C] -> [C]."""
  return jax.nn.one_hot(jnp.argmax(logits, -1), num_classes).mean(0)


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """RAM with shaped rewards, its greedy / Monte-Carlo evaluation and per-glimpse plots."""
  validate(config)
  model = make_model(config)
  random_model = make_model(config, random_locations=True)
  m, spec = config.model, config.loss
  num_classes = data.num_classes(config.dataset)
  noise = lambda batch, rng=None, samples=(): ram_noise(model, m.num_glimpses, batch, rng, samples)

  def init(rng, batch):
    images = jnp.asarray(batch['image'])
    return model.init(rng, images, noise(images.shape[0], rng))

  def loss(params, batch, rng, step):
    del step
    images, labels = batch['image'], batch['label']
    out = model.apply(params, images, noise(images.shape[0], rng))
    step_logits = out.step_logits  # [B, T, C]
    bonus = reward_bonuses(step_logits, output_change_weight=spec.output_change_weight,
                           spread_weight=spec.spread_weight, space=spec.change_space,
                           spread_form=spec.spread_form)
    shaped = bonus['change'] + bonus['spread']  # [B, T]
    if spec.returns == 'total':
      shaped = episode_total(shaped)  # every step's return: the episode's total reward
    baselines = out.baselines  # [B, T]
    if spec.baseline == 'scalar':
      baselines = jnp.broadcast_to(scalar_baseline(params), baselines.shape)
    per_example, terms = ram_loss(
        out.logits, labels, out.log_probs, baselines,
        step_logits=step_logits if spec.nll_steps == 'all' else None,
        reward=spec.reward, reward_bonus=shaped, discount=spec.discount,
        reinforce_weight=spec.reinforce_weight, baseline_weight=spec.baseline_weight,
        reinforce_time_average=spec.reinforce_time_average)
    logits = jax.lax.stop_gradient(step_logits)
    predicted = predicted_fractions(out.logits, num_classes)  # [C]
    metrics = {
        **loss_metrics(terms),
        'reward_task': terms['task_reward'].mean(),
        'reward_change': bonus['change'].sum(-1).mean(),
        'reward_spread': bonus['spread'].sum(-1).mean(),
        'return': terms['return'].mean(),
        'output_change': output_change(logits, spec.change_space).sum(-1).mean(),
        'output_spread': output_spread(logits).mean(),
        'output_std': output_std(logits).mean(),
        'baseline': baselines.mean(),
        **diagnostics.location_metrics(images, out, batch, m.glimpse_size),
        **diagnostics.per_glimpse_means('at_edge', at_edge(out.loc_mean)),
        **{f'pred_frac_{c}': predicted[c] for c in range(num_classes)},
        'pred_max_frac': predicted.max(),
    }
    return per_example.mean(), metrics

  def evaluate(params, batch, rng):
    """`evaluate_glimpse_paths`' values plus, on the greedy path, `at_edge_g<t>` and the one-hot
    `pred_frac_<c>` of the predicted class (their means: the share of location means at the edge
    and of each predicted class)."""
    images = batch['image']
    batch_size = images.shape[0]
    apply = lambda noise: model.apply(params, images, noise)
    greedy = apply(noise(batch_size))
    sampled = jax.vmap(lambda drawn: apply(drawn).logits, out_axes=1)(
        noise(batch_size, rng, (config.eval.mc_samples,)))  # [B, M, C]
    predicted = jax.nn.one_hot(jnp.argmax(greedy.logits, -1), num_classes)  # [B, C]
    return {**path_values(greedy.logits, sampled, batch['label']),
            **diagnostics.location_values(images, greedy, batch, m.glimpse_size),
            **diagnostics.per_glimpse('at_edge', at_edge(greedy.loc_mean)),
            **{f'pred_frac_{c}': predicted[:, c] for c in range(num_classes)}}

  def per_glimpse(params, images, labels, rng):
    """{path: {'loss', 'error', 'output_change': [T] means}} for the greedy and sampled policy
    paths and for uniformly random glimpses, all read by the trained networks."""
    greedy = noise(images.shape[0])
    uniform = jax.random.uniform(jax.random.fold_in(rng, 1), greedy.location.shape, minval=-1.0,
                                 maxval=1.0)
    paths = {'policy (greedy)': (model, greedy),
             'policy (sampled)': (model, noise(images.shape[0], rng)),
             'random glimpses': (random_model, greedy._replace(location=uniform))}
    curves = {}
    for name, (net, drawn) in paths.items():
      step_logits = net.apply(params, images, drawn).step_logits  # [B, T, C]
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
    greedy = model.apply(params, images[:8], noise(8))
    plot_glimpse_paths(images[:8], jnp.clip(greedy.locations, -1, 1), labels=labels[:8],
                       predictions=jnp.argmax(greedy.logits, -1), glimpse_size=m.glimpse_size,
                       num_scales=m.num_scales, scale_factor=m.scale_factor,
                       path=os.path.join(workdir, 'glimpse_paths.png'))

  def predict(params, images, rng):
    del rng
    return glimpse_predictions(model.apply(params, images, noise(images.shape[0])))

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)
