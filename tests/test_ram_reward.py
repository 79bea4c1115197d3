"""Reward shaping for RAM (Brooks et al.): the bonuses against NumPy, their way into the returns and
the REINFORCE gradient, every variant training, the smoke run learning, and the report."""

import json
import math
import statistics

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest
from ml_collections.config_flags import config_path

from conftest import assert_trained_as, execute_notebook
from experiments import ram_reward
from glimpse_jax import data, train
from glimpse_jax.reports import ram_reward as report_ram_reward
from glimpse_jax.nets import Locator, draw_noise, location_mean, mode_noise
from glimpse_jax.objectives import ram_loss
from glimpse_jax.objectives.reward_shaping import (episode_total, output_change, output_spread,
                                                   output_std, reward_bonuses)


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _step_logits(batch=4, steps=5, classes=10, seed=0, scale=3.0):
  rng = np.random.default_rng(seed)
  return (scale * rng.normal(size=(batch, steps, classes))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The bonuses.
# ---------------------------------------------------------------------------------------------
def _change_reference(logits, initial, log):
  outputs = [np.broadcast_to(initial, logits[:, 0].shape)] + list(np.moveaxis(logits, 1, 0))
  outputs = np.stack([_softmax(o) for o in outputs], 1)  # [B, T + 1, C]
  if log:
    outputs = np.log(outputs)
  return np.sqrt(((outputs[:, 1:] - outputs[:, :-1]) ** 2).sum(-1))


@pytest.mark.parametrize('space', ['probs', 'log_probs'])
def test_output_change_matches_numpy_with_a_uniform_first_output(space):
  logits = _step_logits()
  expected = _change_reference(logits, np.zeros(10), space == 'log_probs')
  np.testing.assert_allclose(output_change(jnp.asarray(logits), space), expected, rtol=1e-5,
                             atol=1e-6)
  # The first change is measured from the uniform distribution 1 / C.
  first = np.linalg.norm(_softmax(logits[:, 0]) - 0.1, axis=-1) if space == 'probs' else None
  if first is not None:
    np.testing.assert_allclose(output_change(jnp.asarray(logits))[:, 0], first, rtol=1e-5)


def test_output_change_from_given_initial_logits_and_its_bound():
  logits = _step_logits(scale=30.0)  # near one-hot outputs
  initial = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
  np.testing.assert_allclose(output_change(jnp.asarray(logits), 'probs', jnp.asarray(initial)),
                             _change_reference(logits, initial, False), rtol=1e-5, atol=1e-6)
  assert float(output_change(jnp.asarray(logits)).max()) <= math.sqrt(2) + 1e-6
  # A flip between two confident classes is the largest change, sqrt(2).
  flip = np.full((1, 2, 3), -50.0, np.float32)
  flip[0, 0, 0] = flip[0, 1, 2] = 50.0
  np.testing.assert_allclose(output_change(jnp.asarray(flip))[0, 1], math.sqrt(2), rtol=1e-6)


def _uniform_and_one_hot(classes=10):
  uniform, one_hot = np.zeros((1, 1, classes), np.float32), np.full((1, 1, classes), -80.0,
                                                                   np.float32)
  one_hot[..., 3] = 80.0
  return jnp.asarray(uniform), jnp.asarray(one_hot)


def test_spread_is_one_for_uniform_outputs_zero_for_one_hot_and_std_its_complement():
  logits = _step_logits()
  probs = _softmax(logits)
  reference = 1 - probs.std(-1) / (math.sqrt(9) / 10)
  np.testing.assert_allclose(output_spread(jnp.asarray(logits)), reference, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(output_std(jnp.asarray(logits)), 1 - reference, rtol=1e-5, atol=1e-6)
  uniform, one_hot = _uniform_and_one_hot()
  np.testing.assert_allclose(output_spread(uniform), [[1.0]], atol=1e-6)
  np.testing.assert_allclose(output_spread(one_hot), [[0.0]], atol=1e-6)


def _spread_bonus(logits, form, weight=0.5):
  return np.asarray(reward_bonuses(logits, spread_weight=weight, spread_form=form)['spread'])


def test_the_papers_spread_bonus_rewards_low_spread_and_has_no_constant():
  uniform, one_hot = _uniform_and_one_hot()
  # Low spread (a uniform output) is worth more than a confident one: the paper's sign.
  assert _spread_bonus(uniform, 'paper')[0, 0] > _spread_bonus(one_hot, 'paper')[0, 0]
  # Centred: nothing for an output that does not spread, -w for a one-hot one.
  np.testing.assert_allclose(_spread_bonus(uniform, 'paper'), [[0.0]], atol=1e-6)
  np.testing.assert_allclose(_spread_bonus(one_hot, 'paper'), [[-0.5]], atol=1e-6)
  logits = jnp.asarray(_step_logits())
  np.testing.assert_allclose(_spread_bonus(logits, 'paper'), -0.5 * output_std(logits), rtol=1e-6)
  assert np.all(_spread_bonus(logits, 'paper') <= 0)


def test_the_confidence_spread_bonus_rewards_confident_outputs_and_costs_a_constant():
  uniform, one_hot = _uniform_and_one_hot()
  assert _spread_bonus(one_hot, 'confidence')[0, 0] > _spread_bonus(uniform, 'confidence')[0, 0]
  np.testing.assert_allclose(_spread_bonus(uniform, 'confidence'), [[-0.5]], atol=1e-6)
  np.testing.assert_allclose(_spread_bonus(one_hot, 'confidence'), [[0.0]], atol=1e-6)
  # It is the paper's bonus with the sign flipped, less the constant w per glimpse.
  logits = jnp.asarray(_step_logits())
  np.testing.assert_allclose(_spread_bonus(logits, 'confidence'),
                             -_spread_bonus(logits, 'paper') - 0.5, rtol=1e-5, atol=1e-6)


def test_bonuses_are_weighted_and_zero_without_weight():
  logits = jnp.asarray(_step_logits())
  for form, spread in (('paper', output_std), ('confidence', output_spread)):
    bonus = reward_bonuses(logits, output_change_weight=0.3, spread_weight=0.7, spread_form=form)
    np.testing.assert_allclose(bonus['change'], 0.3 * output_change(logits), rtol=1e-6)
    np.testing.assert_allclose(bonus['spread'], -0.7 * spread(logits), rtol=1e-6)
  for value in reward_bonuses(logits).values():
    np.testing.assert_array_equal(value, 0.0)


def test_episode_total_moves_the_bonus_to_the_last_glimpse():
  bonus = jnp.asarray(np.random.default_rng(3).normal(size=(4, 5)), jnp.float32)
  moved = np.asarray(episode_total(bonus))
  np.testing.assert_array_equal(moved[:, :-1], 0.0)
  np.testing.assert_allclose(moved[:, -1], np.asarray(bonus).sum(-1), rtol=1e-6)


@pytest.mark.parametrize('call,message', [
    (lambda x: reward_bonuses(x, output_change_weight=-1.0), 'output_change_weight'),
    (lambda x: reward_bonuses(x, spread_weight=-0.1), 'spread_weight'),
    (lambda x: reward_bonuses(x, spread_weight=1.0, spread_form='low'), 'spread_form'),
    (lambda x: output_change(x, 'logits'), 'space'),
    (lambda x: output_change(x, 'probs', jnp.zeros(3)), 'initial_logits'),
    (lambda x: output_spread(x[..., :1]), 'at least 2 classes'),
])
def test_bad_values_fail_naming_them(call, message):
  with pytest.raises(ValueError, match=message):
    call(jnp.asarray(_step_logits()))


# ---------------------------------------------------------------------------------------------
# The bonus in the returns and the REINFORCE gradient.
# ---------------------------------------------------------------------------------------------
def _loss_inputs(batch=4, steps=5, classes=10):
  rng = np.random.default_rng(2)
  step_logits = jnp.asarray(_step_logits(batch, steps, classes))
  return dict(logits=step_logits[:, -1], labels=jnp.asarray(rng.integers(0, classes, batch)),
              log_probs=jnp.asarray(rng.normal(size=(batch, steps)), jnp.float32),
              baselines=jnp.asarray(rng.normal(size=(batch, steps)), jnp.float32),
              step_logits=step_logits)


def _run_loss(a, log_probs=None, bonus=None, step_logits=None):
  return ram_loss(a['logits'], a['labels'], a['log_probs'] if log_probs is None else log_probs,
                  a['baselines'], step_logits=a['step_logits'] if step_logits is None
                  else step_logits, reward_bonus=bonus)


def test_bonus_enters_the_returns_and_the_reinforce_gradient():
  a = _loss_inputs()
  bonus = reward_bonuses(a['step_logits'], output_change_weight=1.0, spread_weight=0.5)
  total = bonus['change'] + bonus['spread']
  _, terms = _run_loss(a, bonus=total)
  correct = (np.argmax(a['logits'], -1) == np.asarray(a['labels'])).astype(np.float32)
  rewards = np.asarray(total).copy()
  rewards[:, -1] += correct  # RAM's reward at the last glimpse
  returns = np.cumsum(rewards[:, ::-1], -1)[:, ::-1]  # undiscounted returns-to-go
  np.testing.assert_allclose(terms['return'], returns[:, 0], rtol=1e-5)
  np.testing.assert_allclose(terms['task_reward'], correct)
  grad = jax.grad(lambda lp: _run_loss(a, lp, total)[0].sum())(a['log_probs'])
  np.testing.assert_allclose(grad, -(returns - np.asarray(a['baselines'])), rtol=1e-5, atol=1e-5)


def test_zero_weights_give_the_plain_loss_and_no_gradient_flows_through_the_bonus():
  a = _loss_inputs()
  plain, plain_terms = _run_loss(a)
  zero = reward_bonuses(a['step_logits'])
  shaped, shaped_terms = _run_loss(a, bonus=zero['change'] + zero['spread'])
  np.testing.assert_array_equal(plain, shaped)
  for name in plain_terms:
    np.testing.assert_array_equal(plain_terms[name], shaped_terms[name], err_msg=name)

  def loss_of_logits(step_logits, weight):
    bonus = reward_bonuses(step_logits, output_change_weight=weight, spread_weight=weight)
    return _run_loss(a, bonus=bonus['change'] + bonus['spread'],
                     step_logits=step_logits)[0].sum()

  # The classifier learns from the NLL only: the bonus is a reward, a constant of the loss.
  np.testing.assert_allclose(jax.grad(loss_of_logits)(a['step_logits'], 2.0),
                             jax.grad(loss_of_logits)(a['step_logits'], 0.0), rtol=1e-6)


def test_total_returns_give_every_step_the_episodes_reward_against_one_baseline():
  a = _loss_inputs()
  bonus = reward_bonuses(a['step_logits'], output_change_weight=1.0, space='log_probs')['change']
  baseline = jnp.full(a['log_probs'].shape, 0.3)
  loss_of = lambda lp: ram_loss(a['logits'], a['labels'], lp, baseline,
                                reward_bonus=episode_total(bonus))
  _, terms = loss_of(a['log_probs'])
  correct = (np.argmax(a['logits'], -1) == np.asarray(a['labels'])).astype(np.float32)
  total = correct + np.asarray(bonus).sum(-1)  # [B] the episode's reward R
  np.testing.assert_allclose(terms['return'], total, rtol=1e-5)
  grad = jax.grad(lambda lp: loss_of(lp)[0].sum())(a['log_probs'])
  np.testing.assert_allclose(grad, -(total[:, None] - 0.3) * np.ones((1, 5)), rtol=1e-5,
                             atol=1e-5)
  # Without step_logits the NLL is the last step's alone.
  log_p = jax.nn.log_softmax(a['logits'], -1)
  np.testing.assert_allclose(terms['nll'], -log_p[np.arange(4), a['labels']], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# The experiment.
# ---------------------------------------------------------------------------------------------
def _tiny(variant, **loss):
  config = ram_reward.get_config(variant)
  with config.unlocked():
    config.model.update(core_features=16, glimpse_features=16, what_features=8, where_features=8,
                        locator_features=8, num_glimpses=3)
    config.loss.update(loss)
  return config


def _batch(n=8, shape=(28, 28, 1)):
  rng = np.random.default_rng(0)
  return {'image': rng.uniform(size=(n, *shape)).astype(np.float32),
          'label': rng.integers(0, 10, size=n).astype(np.int32)}


def test_config_counts_the_papers_epochs():
  config = ram_reward.get_config()
  assert config.eval_every == round(50_000 / config.batch_size) == 391
  assert config.num_steps == 20 * config.eval_every
  assert config.checkpoint_every == 5 * config.eval_every
  assert config.eval_examples_during_training == 2_048
  assert (config.model.num_glimpses, config.model.glimpse_size, config.batch_size) == (6, 8, 128)
  assert ram_reward.get_config('spread_lstm').model.locator == 'lstm'
  assert ram_reward.get_config('plain_mlp').model.locator == 'mlp'
  lstm_core = ram_reward.get_config('plain_lstm_core').model
  assert (lstm_core.core, lstm_core.locator, lstm_core.fused) == ('lstm', 'linear', False)
  assert data.image_shape(ram_reward.get_config('cifar10').dataset) == (32, 32, 3)
  assert ram_reward.get_config('logchange_lstm').loss.change_space == 'log_probs'
  assert ram_reward.get_config('change_lstm').loss.change_space == 'probs'
  assert ram_reward.get_config('spread_linear').loss.spread_form == 'paper'
  assert ram_reward.get_config('confidence_linear').loss.spread_form == 'confidence'


def test_the_epoch_follows_a_batch_size_given_on_the_command_line():
  config = ram_reward.get_config('plain_lstm')
  config_path.set_value('batch_size', config, 32)  # what --config.batch_size=32 does
  assert (config.eval_every, config.num_steps, config.checkpoint_every) == (1563, 31_260, 7815)
  # A field given explicitly keeps its value.
  config_path.set_value('eval_every', config, 100)
  assert (config.eval_every, config.num_steps) == (100, 31_260)


def test_paper_variants_take_the_torch_rams_choices_and_nothing_else():
  paper, ours = ram_reward.get_config('logchange_linear_paper'), ram_reward.get_config(
      'logchange_linear')
  assert (paper.batch_size, paper.eval_every, paper.num_steps) == (32, 1563, 31_260)
  # The Torch RAM's 0.01 with momentum 0.9 damped by 0.9 (dpnn's default): v <- 0.9 v + 0.1 g.
  assert (paper.optimizer.name, paper.optimizer.learning_rate, paper.optimizer.momentum,
          paper.optimizer.schedule) == ('momentum', 0.01 * 0.1, 0.9, 'constant')
  assert paper.model.mean_activation == 'hardtanh' and paper.model.policy_gradient_to_core
  assert (paper.loss.returns, paper.loss.baseline, paper.loss.nll_steps) == (
      'total', 'scalar', 'last')
  assert (ours.loss.returns, ours.loss.baseline, ours.loss.nll_steps) == ('to_go', 'state', 'all')
  assert ours.optimizer.name == 'adam' and ours.model.mean_activation == 'tanh'
  paper_fields, our_fields = _flat(paper.to_dict()), _flat(ours.to_dict())
  assert all(paper_fields[key] == value for key, value in ram_reward.PAPER_SETUP.items())
  changed = {key for key, value in paper_fields.items() if our_fields[key] != value}
  expected = {key for key, value in ram_reward.PAPER_SETUP.items() if our_fields[key] != value}
  assert changed == expected | {'eval_every', 'num_steps', 'checkpoint_every'}
  assert report_ram_reward.setup_name(paper.to_dict()) == 'paper setup'
  assert report_ram_reward.setup_name(ours.to_dict()) == ''


def _flat(tree, prefix=''):
  if not isinstance(tree, dict):
    return {prefix: tree}
  return {k: v for name, child in tree.items()
          for k, v in _flat(child, f'{prefix}.{name}' if prefix else name).items()}


# The variants trained in the fast tier: each new code path once (the other variants only combine
# them, and train in the slow tier).
_FAST_VARIANTS = ('change_linear', 'plain_lstm_core', 'logchange_linear_paper', 'spread_mlp')


@pytest.mark.parametrize('variant', [v if v in _FAST_VARIANTS else
                                     pytest.param(v, marks=pytest.mark.slow)
                                     for v in ram_reward.VARIANTS])
def test_each_variant_trains_two_steps_and_every_parameter_gets_a_gradient(variant):
  config = _tiny(variant)
  experiment = ram_reward.make_experiment(config)
  batch = _batch(shape=data.image_shape(config.dataset))
  params = experiment.init(jax.random.key(0), batch)
  scalar = config.loss.baseline == 'scalar'
  if scalar:  # b = 0.5 differs from any batch's mean 0/1 return, so its regression moves it
    params = jax.tree.map(lambda x: x, params)
    params['params']['baseline']['bias'] = jnp.full_like(params['params']['baseline']['bias'], 0.5)
  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda p, step: experiment.loss(p, batch, jax.random.fold_in(jax.random.key(3), step), step),
      has_aux=True))
  (first, metrics), grads = loss_and_grad(params, 0)
  for path, g in jax.tree.leaves_with_path(grads):
    name = jax.tree_util.keystr(path)
    assert np.all(np.isfinite(g)), name
    if scalar and "'baseline'" in name and "'kernel'" in name:
      # The scalar baseline is the head's bias alone: its kernel reads nothing.
      np.testing.assert_array_equal(g, 0.0)
    else:
      assert np.abs(g).max() > 0, f'no gradient reaches {name}'
  params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
  (second, metrics), _ = loss_and_grad(params, 1)
  assert np.isfinite(first) and np.isfinite(second)
  assert {'reward_task', 'reward_change', 'reward_spread', 'return', 'output_change',
          'output_spread', 'output_std', 'baseline', 'at_edge', 'at_edge_g3', 'pred_frac_0',
          'pred_frac_9', 'pred_max_frac'} <= set(metrics)
  reward = variant.removesuffix('_paper').split('_')[0]
  fields = ram_reward.REWARD_VARIANTS['change' if variant in ('smoke', 'cifar10') else reward]
  assert (float(metrics['reward_change']) > 0) == (fields.get('output_change_weight', 0) > 0)
  assert (float(metrics['reward_spread']) < 0) == (fields.get('spread_weight', 0) > 0)
  fractions = [float(metrics[f'pred_frac_{c}']) for c in range(10)]
  assert sum(fractions) == pytest.approx(1.0) and max(fractions) == float(metrics['pred_max_frac'])


def test_paper_setup_loss_reads_the_last_nll_the_total_reward_and_a_scalar_baseline():
  config = _tiny('logchange_linear_paper')
  experiment = ram_reward.make_experiment(config)
  model = ram_reward.make_model(config)
  batch = _batch()
  params = experiment.init(jax.random.key(0), batch)
  params['params']['baseline']['bias'] = jnp.asarray([0.25])
  rng = jax.random.key(1)
  (_, metrics), grad = jax.jit(jax.value_and_grad(
      lambda p: experiment.loss(p, batch, rng, 0), has_aux=True))(params)
  out = jax.jit(model.apply)(params, batch['image'], draw_noise(rng, (3, 8)))
  log_p = jax.nn.log_softmax(out.logits, -1)
  nll = -log_p[np.arange(8), batch['label']]
  np.testing.assert_allclose(metrics['nll'], nll.mean(), rtol=1e-5)
  assert float(metrics['baseline']) == pytest.approx(0.25)
  # The return of every step is the episode's total: RAM's reward plus every glimpse's bonus.
  np.testing.assert_allclose(metrics['return'],
                             metrics['reward_task'] + metrics['reward_change'], rtol=1e-5)
  # The baseline learns by its MSE to R alone: d/db mean_B mean_T (b - R)^2 = 2 (b - mean R).
  np.testing.assert_allclose(grad['params']['baseline']['bias'][0],
                             2 * (0.25 - float(metrics['return'])), rtol=1e-4)


@pytest.mark.parametrize('variant', ['plain_linear_paper', 'plain_lstm_paper'])
def test_the_glimpse_reads_the_clipped_sample_and_the_log_prob_the_unclipped_one(variant):
  # HardTanh on the sample, as the Torch RAM's locator: two samples beyond the edge read the same
  # glimpses (the rollout's class outputs agree) but have different log-probabilities.
  config = _tiny(variant)
  model = ram_reward.make_model(config)
  images = jnp.asarray(_batch(2)['image'])
  noise = mode_noise((3, 2))
  params = model.init(jax.random.key(0), images, noise)
  far, farther = (noise._replace(location=jnp.full((3, 2, 2), k / config.model.location_std))
                  for k in (3.0, 5.0))
  a, b = model.apply(params, images, far), model.apply(params, images, farther)
  np.testing.assert_allclose(a.step_logits, b.step_logits, rtol=1e-6, atol=1e-6)
  assert np.all(np.asarray(a.locations) > 1.5) and np.all(np.asarray(b.locations) > 3.5)
  assert np.all(np.asarray(a.log_probs) > np.asarray(b.log_probs))


def test_the_mlp_locator_is_one_tanh_layer_with_no_memory():
  locator = Locator('mlp', location_std=0.2, features=6, mean_activation='hardtanh')
  h = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)), jnp.float32)
  noise_t = mode_noise((3,))
  carry = locator.initialize_carry(3)
  params = locator.init(jax.random.key(0), carry, h, noise_t)
  assert carry == ()
  assert params['params']['hidden']['kernel'].shape == (5, 6)
  p = params['params']
  hidden = np.tanh(np.asarray(h) @ p['hidden']['kernel'] + p['hidden']['bias'])
  expected = np.clip(hidden @ p['mean']['kernel'] + p['mean']['bias'], -1, 1)
  _, action = locator.apply(params, carry, h, noise_t)
  np.testing.assert_allclose(action.mean, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(action.mean, location_mean(
      jnp.asarray(hidden @ p['mean']['kernel'] + p['mean']['bias']), 'hardtanh'), rtol=1e-5)


def test_edge_and_class_share_diagnostics():
  means = jnp.asarray([[1.0, 0.2], [0.3, -1.0], [0.999, 0.0], [0.5, 0.5]])
  np.testing.assert_array_equal(ram_reward.at_edge(means), [1.0, 1.0, 0.0, 0.0])
  assert float(ram_reward.at_edge(jnp.tanh(jnp.asarray([[9.0, 0.0]])))[0]) == 1.0
  logits = jax.nn.one_hot(jnp.asarray([2, 2, 2, 7]), 10)
  np.testing.assert_allclose(ram_reward.predicted_fractions(logits, 10),
                             [0, 0, 0.75, 0, 0, 0, 0, 0.25, 0, 0])


def test_evaluation_gives_the_class_shares_and_the_edge_per_glimpse():
  config = _tiny('logchange_linear_paper')
  with config.unlocked():
    config.eval.mc_samples = 2
  experiment = ram_reward.make_experiment(config)
  batch = _batch()
  params = experiment.init(jax.random.key(0), batch)
  values = experiment.evaluate(params, batch, jax.random.key(1))
  shares = np.stack([np.asarray(values[f'pred_frac_{c}']) for c in range(10)], -1)  # [B, C]
  np.testing.assert_array_equal(shares.sum(-1), 1.0)
  predicted = np.argmax(shares, -1)
  np.testing.assert_array_equal(values['error'], (predicted != batch['label']).astype(np.float32))
  for name in ('at_edge', 'at_edge_g1', 'at_edge_g3', 'saturated_g1', 'error_mc'):
    assert np.asarray(values[name]).shape == (8,), name


@pytest.mark.slow
def test_a_bonus_changes_only_the_policy_terms():
  batch = _batch()
  plain = ram_reward.make_experiment(_tiny('plain_linear'))
  shaped = ram_reward.make_experiment(_tiny('plain_linear', output_change_weight=2.0))
  params = plain.init(jax.random.key(0), batch)
  _, plain_metrics = plain.loss(params, batch, jax.random.key(1), 0)
  _, shaped_metrics = shaped.loss(params, batch, jax.random.key(1), 0)
  assert plain_metrics['nll'] == shaped_metrics['nll']
  assert plain_metrics['reward_task'] == shaped_metrics['reward_task']
  np.testing.assert_allclose(shaped_metrics['reward_change'],
                             2.0 * plain_metrics['output_change'], rtol=1e-6)
  np.testing.assert_allclose(shaped_metrics['return'],
                             plain_metrics['return'] + shaped_metrics['reward_change'], rtol=1e-5)


@pytest.mark.parametrize('field,value,message', [
    ('model.locator', 'grid', 'model.locator'),
    ('model.core', 'gru', 'model.core'),
    ('model.fused', True, 'model.fused'),
    ('loss.output_change_weight', -1.0, 'loss.output_change_weight'),
    ('loss.spread_weight', -1.0, 'loss.spread_weight'),
    ('loss.change_space', 'logits', 'loss.change_space'),
    ('loss.spread_form', 'low', 'loss.spread_form'),
    ('loss.returns', 'episode', 'loss.returns'),
    ('loss.baseline', 'constant', 'loss.baseline'),
    ('loss.nll_steps', 'first', 'loss.nll_steps'),
    ('model.locator', 'gru', 'model.locator'),
    ('loss.reward', 'bonus', 'loss.reward'),
    ('model.glimpse_size', 40, 'model.glimpse_size'),
])
def test_bad_config_fails_naming_the_field(field, value, message):
  config = ram_reward.get_config('change_lstm')
  section, name = field.split('.')
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    ram_reward.make_experiment(config)


@pytest.mark.parametrize('field,value', [('reward', 'per_step'), ('discount', 0.9)])
def test_the_papers_total_reward_and_last_nll_refuse_what_they_cannot_mean(field, value):
  config = ram_reward.get_config('plain_linear_paper')
  with config.unlocked():
    config.loss[field] = value
  with pytest.raises(ValueError, match=f'loss.{field}'):
    ram_reward.make_experiment(config)


def test_unknown_variant_lists_the_allowed_ones():
  with pytest.raises(ValueError, match='change_lstm'):
    ram_reward.get_config('change_gru')


def test_a_short_run_writes_the_per_glimpse_figures(data_dir, tmp_path):
  config = _tiny('change_linear')
  with config.unlocked():
    config.update(num_steps=4, eval_every=2, eval_examples_during_training=64, log_every=2,
                  checkpoint_every=0)
    config.eval.update(batch_size=64, mc_samples=2)
    config.dataset.update(data_dir=data_dir, eval_examples=128, cache_dir=str(tmp_path / 'tfds'))
  train.run(config, str(tmp_path / 'run'), ram_reward.make_experiment(config))
  run = tmp_path / 'run'
  for name in ('output_change.png', 'glimpse_loss.png', 'glimpse_paths.png'):
    assert matplotlib.image.imread(str(run / name)).ndim == 3, name
  curves = json.loads((run / 'per_glimpse.json').read_text())
  assert curves['images'] == 64
  for path in ('policy (greedy)', 'policy (sampled)', 'random glimpses'):
    assert {len(values) for values in curves[path].values()} == {3}
  records = train.read_metrics(str(run))
  evals = [r for r in records if r['kind'] == 'eval']
  assert [r['step'] for r in evals] == [2, 4]
  # The collapse diagnostics each epoch and at the end.
  results = train.read_results(str(run))
  for values, prefix in [(r, '') for r in evals] + [(results, 'test_')]:
    shares = [values[f'{prefix}pred_frac_{c}'] for c in range(10)]
    assert sum(shares) == pytest.approx(1.0), prefix
    assert 0 <= values[f'{prefix}at_edge_g3'] <= 1
  assert all('pred_max_frac' in r for r in records if r['kind'] == 'train')


@pytest.mark.notebook
@pytest.mark.learning
def test_notebook_trains_the_smoke_variant_well_above_chance_and_shows_its_figures(
    data_dir, tmp_path, python3_kernel):
  # The notebook's default run is the smoke variant: one training checks both what the notebook
  # shows and what the run learned.
  run = execute_notebook('ram_reward.ipynb', tmp_path, data_dir, python3_kernel, steps=None)
  for name in ('results.json', 'per_glimpse.json', 'output_change.png', 'glimpse_loss.png',
               'glimpse_paths.png'):
    assert (run.workdir / name).is_file(), name
  # accuracy and rewards, output change, loss per glimpse, glimpse paths
  assert len(run.pictures) == 5  # and the glimpses of `predict` on a test batch
  assert 'predicted classes: [' in run.printed
  assert 'test accuracy' in run.printed and 'devices:' in run.printed

  results = train.read_results(str(run.workdir))
  assert_trained_as(results['config'], ram_reward.get_config('smoke'))
  # Three epochs: 83.5% test accuracy at seed 0 (test error 0.1653; chance is 0.9).
  assert results['test_error'] < 0.2, results['test_error']
  evals = [r for r in train.read_metrics(str(run.workdir)) if r['kind'] == 'eval']
  assert [r['step'] for r in evals] == [391, 782, 1173]


# ---------------------------------------------------------------------------------------------
# The report, on fake workdirs.
# ---------------------------------------------------------------------------------------------
def _fake_run(root, name, seed, *, change=0.0, locator='linear', accuracies=(0.5, 0.7, 0.8),
              per_glimpse=True, experiment='ram_reward', config_name=None, shares=None,
              edges=None):
  """A finished run's files; `config_name`: take that variant's config; `shares` [epochs] the
  largest predicted-class share and `edges` the edge share of each evaluation, logged when given."""
  workdir = root / name
  workdir.mkdir()
  config = {'experiment': experiment, 'seed': seed, 'eval_every': 100,
            'eval_examples_during_training': 2048, 'dataset': {'name': 'mnist'},
            'model': {'locator': locator, 'core': 'rnn'},
            'loss': {'output_change_weight': change, 'spread_weight': 0.0,
                     'change_space': 'probs'}}
  if config_name is not None:
    config = {**ram_reward.get_config(config_name).to_dict(), 'seed': seed, 'eval_every': 100}
  results = {'test_error': 1.0 - accuracies[-1], 'steps': 100 * len(accuracies),
             'wall_seconds': 120.0, 'config': config}
  diagnostics = lambda epoch, prefix: {
      **({} if shares is None else _shares(shares[epoch], prefix)),
      **({} if edges is None else {f'{prefix}at_edge': edges[epoch]})}
  results.update(diagnostics(-1, 'test_'))
  (workdir / 'results.json').write_text(json.dumps(results))
  lines = []
  for epoch, accuracy in enumerate(accuracies, 1):
    lines.append({'kind': 'train', 'step': 100 * epoch, 'reward_task': accuracy,
                  'reward_change': change * epoch, 'reward_spread': 0.0,
                  'output_change': float(epoch)})
    lines.append({'kind': 'eval', 'step': 100 * epoch, 'split': 'test', 'error': 1 - accuracy,
                  **diagnostics(epoch - 1, '')})
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
  if per_glimpse:
    curve = {'loss': [2.0, 1.0], 'error': [0.5, 0.2], 'output_change': [0.5, 0.2]}
    (workdir / 'per_glimpse.json').write_text(json.dumps(
        {'images': 512, 'policy (greedy)': curve, 'policy (sampled)': curve,
         'random glimpses': curve}))
  return str(workdir)


def _shares(largest, prefix):
  """pred_frac_<c> values with `largest` on class 3 and the rest spread evenly."""
  return {f'{prefix}pred_frac_{c}': largest if c == 3 else (1 - largest) / 9 for c in range(10)}


def _rows(markdown):
  return [[cell.strip() for cell in line.strip('|').split('|')]
          for line in markdown.splitlines() if line.startswith('|')]


def test_report_averages_seeds_per_method_and_draws_its_figures(tmp_path):
  runs = [_fake_run(tmp_path, f'change_linear-seed{s}', s, change=1.0,
                    accuracies=(0.5, 0.6 + 0.1 * s, 0.6)) for s in range(3)]
  runs += [_fake_run(tmp_path, f'plain_lstm-seed{s}', s, locator='lstm', per_glimpse=s == 0)
           for s in range(2)]
  out = tmp_path / 'results' / 'ram_reward.md'
  notes = tmp_path / 'notes.md'
  notes.write_text('## What reproduces\nThe collapse does not.\n')
  report_ram_reward.main([*runs, '--out', str(out), '--notes', str(notes)])
  assert out.read_text().endswith('## What reproduces\nThe collapse does not.\n')
  rows = _rows(out.read_text())
  assert rows[0] == ['method', 'seeds', 'final accuracy %', 'best accuracy %', 'best at epoch',
                     'epochs', 'minutes']
  # Methods in order plain, change; final accuracy from results.json, best from the evaluations.
  assert rows[2] == ['plain_lstm', '0, 1', '80.00 ± 0.00', '80.00 ± 0.00', '3.0 ± 0.0',
                     '3.0 ± 0.0', '2.0 ± 0.0']
  assert rows[3][:5] == ['change_linear', '0, 1, 2', '60.00 ± 0.00', '70.00 ± 10.00',
                         '2.0 ± 0.0']
  for kind in ('accuracy', 'rewards', 'output_change', 'glimpse_loss'):
    figure = out.parent / f'ram_reward_{kind}.png'
    assert matplotlib.image.imread(str(figure)).ndim == 3, kind
    assert f'({figure.name})' in out.read_text()


def test_report_refuses_other_experiments_and_repeated_seeds(tmp_path):
  other = _fake_run(tmp_path, 'ram-smoke', 0, experiment='ram')
  with pytest.raises(ValueError, match="'ram'"):
    report_ram_reward.write_report([other], str(tmp_path / 'out.md'))
  twice = [_fake_run(tmp_path, f'plain-{n}', 0) for n in range(2)]
  with pytest.raises(ValueError, match='seed 0 twice'):
    report_ram_reward.write_report(twice, str(tmp_path / 'out.md'))


def test_method_names_come_from_the_config():
  config = lambda **loss: {'model': {'locator': 'linear', 'core': 'lstm'},
                           'loss': {'output_change_weight': 0.0, 'spread_weight': 0.0, **loss}}
  assert report_ram_reward.method_name(config()) == 'plain_linear_lstm_core'
  cifar = {**config(), 'dataset': {'name': 'mnist', 'source': 'cifar10'}}
  assert report_ram_reward.method_name(cifar) == 'plain_linear_lstm_core (cifar10)'
  # Runs from before the spread form was a field had the confidence form.
  assert report_ram_reward.method_name(
      config(output_change_weight=0.1, change_space='log_probs', spread_weight=1.0)
  ) == 'logchange0.1+confidence_linear_lstm_core'
  assert report_ram_reward.method_name(config(spread_weight=2.0, spread_form='paper')) == (
      'spread2_linear_lstm_core')
  for variant in ('logchange_mlp_paper', 'confidence_lstm', 'spread_linear_paper'):
    reward, _, locator = variant.removesuffix('_paper').partition('_')
    setup = ' [paper setup]' if variant.endswith('_paper') else ''
    assert report_ram_reward.method_name(ram_reward.get_config(variant).to_dict()) == (
        f'{reward}_{locator}{setup}')


def test_setup_names_list_the_torch_rams_choices_a_run_takes():
  config = ram_reward.get_config('plain_linear_paper')
  with config.unlocked():
    config.model.policy_gradient_to_core = False
  assert report_ram_reward.setup_name(config.to_dict()) == (
      'paper setup, no policy gradient into the core')
  with config.unlocked():
    config.optimizer.update(name='adam', learning_rate=1e-3)
    config.model.policy_gradient_to_core = True
  assert report_ram_reward.setup_name(config.to_dict()) == (
      'paper setup without SGD 0.01 momentum 0.9 (damped)')
  with config.unlocked():
    config.batch_size = 128
  assert report_ram_reward.setup_name(config.to_dict()) == (
      'hardtanh mean, total R, scalar baseline, last-step NLL')
  tanh = ram_reward.get_config('logchange_linear_paper')
  with tanh.unlocked():
    tanh.model.mean_activation = 'tanh'
  assert report_ram_reward.setup_name(tanh.to_dict()) == 'paper setup without hardtanh mean'


def test_report_shows_paper_rows_their_diagnostics_and_the_locator_control(tmp_path):
  collapse = dict(accuracies=(0.3, 0.55, 0.2, 0.11), shares=(0.2, 0.3, 0.8, 0.97),
                  edges=(0.0, 0.1, 0.6, 1.0))
  runs = [_fake_run(tmp_path, f'logchange_linear_paper-seed{s}', s,
                    config_name='logchange_linear_paper', **collapse) for s in range(2)]
  runs += [_fake_run(tmp_path, f'plain_{locator}-seed{s}', s, config_name=f'plain_{locator}',
                     accuracies=(0.5, base + 0.01 * s), shares=(0.1, 0.12), edges=(0.0, 0.0))
           for locator, base in (('linear', 0.90), ('mlp', 0.92), ('lstm', 0.95))
           for s in range(2)]
  runs.append(_fake_run(tmp_path, 'change_linear-old', 5, change=1.0))  # logs no diagnostics
  out = tmp_path / 'ram_reward.md'
  text = report_ram_reward.write_report(runs, str(out))
  assert '[paper setup] take the Torch RAM' in text
  rows = _rows(text)
  methods = [row[0] for row in rows[2:] if len(row) == 7]  # the results table
  # Our setting first, linear before the MLP control before the LSTM; then the paper setup.
  assert methods == ['plain_linear', 'plain_mlp', 'plain_lstm', 'change_linear',
                     'logchange_linear [paper setup]']
  diagnostics = {row[0]: row[1:] for row in rows if len(row) == 6 and row[1].endswith('of 2')}
  # Both seeds pass 50% at epoch 2, then fall to 11%: a class takes 97% and every mean sits at ±1.
  assert diagnostics['logchange_linear [paper setup]'] == [
      '2 of 2', '11.00 ± 0.00', '97.00 ± 0.00', '100.00 ± 0.00', '97.00 ± 0.00']
  assert diagnostics['plain_linear'][2:4] == ['12.00 ± 0.00', '0.00 ± 0.00']
  assert '| change_linear | 5 |' in text and '1 of 1' not in text  # no diagnostics row
  locators = [row for row in rows if row[0] == 'plain']
  assert locators == [['plain', '90.50 ± 0.71', '92.50 ± 0.71', '95.50 ± 0.71', '+3.00 ± 0.71',
                       '+5.00 ± 0.71']]
  figure = tmp_path / 'ram_reward_diagnostics.png'
  assert matplotlib.image.imread(str(figure)).ndim == 3
  assert '(ram_reward_diagnostics.png)' in text


def test_the_report_agrees_with_the_experiments_paper_setup():
  for variant in ram_reward.VARIANTS:
    setup = report_ram_reward.setup_name(ram_reward.get_config(variant).to_dict())
    expected = ('paper setup' if variant.endswith('_paper') else
                'adam 0.002' if variant == 'smoke' else '')
    assert setup == expected, variant
  undamped = ram_reward.get_config('logchange_linear_paper')
  with undamped.unlocked():
    undamped.optimizer.learning_rate = 0.01
  assert report_ram_reward.setup_name(undamped.to_dict()) == (
      'paper setup without SGD 0.01 momentum 0.9 (damped), momentum 0.01 (momentum 0.9)')


def test_per_glimpse_bands_are_the_sample_std_over_seeds():
  values = np.array([[0.1, 1.0], [0.2, 1.0], [0.4, 1.0]])  # [seeds, T]
  np.testing.assert_allclose(report_ram_reward._sample_std(values),
                             [statistics.stdev([0.1, 0.2, 0.4]), 0.0])
  np.testing.assert_array_equal(report_ram_reward._sample_std(values[:1]), [0.0, 0.0])
