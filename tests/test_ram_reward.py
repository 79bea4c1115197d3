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

from conftest import assert_trained_as, execute_notebook
from experiments import ram_reward
from glimpse_jax import data, report_ram_reward, train
from glimpse_jax.objectives import output_change, output_spread, ram_loss, reward_bonuses


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


def test_spread_is_one_for_uniform_outputs_zero_for_one_hot_and_the_bonus_prefers_confidence():
  logits = _step_logits()
  probs = _softmax(logits)
  reference = 1 - probs.std(-1) / (math.sqrt(9) / 10)
  np.testing.assert_allclose(output_spread(jnp.asarray(logits)), reference, rtol=1e-5, atol=1e-6)
  uniform, one_hot = np.zeros((1, 1, 10), np.float32), np.full((1, 1, 10), -80.0, np.float32)
  one_hot[..., 3] = 80.0
  np.testing.assert_allclose(output_spread(jnp.asarray(uniform)), [[1.0]], atol=1e-6)
  np.testing.assert_allclose(output_spread(jnp.asarray(one_hot)), [[0.0]], atol=1e-6)
  # The bonus is at most 0, and highest (0) for a confident output: low spread is rewarded.
  bonus = lambda x: float(reward_bonuses(jnp.asarray(x), spread_weight=0.5)['spread'][0, 0])
  assert bonus(uniform) == pytest.approx(-0.5) and bonus(one_hot) == pytest.approx(0.0, abs=1e-6)
  assert np.all(np.asarray(reward_bonuses(jnp.asarray(logits), spread_weight=0.5)['spread']) <= 0)


def test_bonuses_are_weighted_and_zero_without_weight():
  logits = jnp.asarray(_step_logits())
  bonus = reward_bonuses(logits, output_change_weight=0.3, spread_weight=0.7)
  np.testing.assert_allclose(bonus['change'], 0.3 * output_change(logits), rtol=1e-6)
  np.testing.assert_allclose(bonus['spread'], -0.7 * output_spread(logits), rtol=1e-6)
  for value in reward_bonuses(logits).values():
    np.testing.assert_array_equal(value, 0.0)


@pytest.mark.parametrize('call,message', [
    (lambda x: reward_bonuses(x, output_change_weight=-1.0), 'output_change_weight'),
    (lambda x: reward_bonuses(x, spread_weight=-0.1), 'spread_weight'),
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
  assert config.eval_examples_during_training == 2_048
  assert (config.model.num_glimpses, config.model.glimpse_size, config.batch_size) == (6, 8, 128)
  assert ram_reward.get_config('spread_lstm').model.locator == 'lstm'
  lstm_core = ram_reward.get_config('plain_lstm_core').model
  assert (lstm_core.core, lstm_core.locator, lstm_core.fused) == ('lstm', 'linear', False)
  assert data.image_shape(ram_reward.get_config('cifar10').dataset) == (32, 32, 3)


# The variants whose step compiles longest run in the slow tier.
_SLOW_VARIANTS = ('smoke', 'plain_lstm', 'cifar10', 'spread_lstm')


@pytest.mark.parametrize('variant', [pytest.param(v, marks=pytest.mark.slow)
                                     if v in _SLOW_VARIANTS else v for v in ram_reward.VARIANTS])
def test_each_variant_trains_two_steps_and_every_parameter_gets_a_gradient(variant):
  config = _tiny(variant)
  experiment = ram_reward.make_experiment(config)
  batch = _batch(shape=data.image_shape(config.dataset))
  params = experiment.init(jax.random.key(0), batch)
  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda p, step: experiment.loss(p, batch, jax.random.fold_in(jax.random.key(3), step), step),
      has_aux=True))
  (first, metrics), grads = loss_and_grad(params, 0)
  for path, g in jax.tree.leaves_with_path(grads):
    assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
    assert np.abs(g).max() > 0, f'no gradient reaches {jax.tree_util.keystr(path)}'
  params = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
  (second, metrics), _ = loss_and_grad(params, 1)
  assert np.isfinite(first) and np.isfinite(second)
  assert {'reward_task', 'reward_change', 'reward_spread', 'return', 'output_change',
          'output_spread'} <= set(metrics)
  change_weight, spread_weight = ram_reward.REWARD_VARIANTS[
      'change' if variant in ('smoke', 'cifar10') else variant.split('_')[0]]
  assert (float(metrics['reward_change']) > 0) == (change_weight > 0)
  assert (float(metrics['reward_spread']) < 0) == (spread_weight > 0)


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
  evals = [r for r in train.read_metrics(str(run)) if r['kind'] == 'eval']
  assert [r['step'] for r in evals] == [2, 4]


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
              per_glimpse=True, experiment='ram_reward'):
  workdir = root / name
  workdir.mkdir()
  config = {'experiment': experiment, 'seed': seed, 'eval_every': 100,
            'eval_examples_during_training': 2048, 'dataset': {'name': 'mnist'},
            'model': {'locator': locator, 'core': 'rnn'},
            'loss': {'output_change_weight': change, 'spread_weight': 0.0,
                     'change_space': 'probs'}}
  results = {'test_error': 1.0 - accuracies[-1], 'steps': 100 * len(accuracies),
             'wall_seconds': 120.0, 'config': config}
  (workdir / 'results.json').write_text(json.dumps(results))
  lines = []
  for epoch, accuracy in enumerate(accuracies, 1):
    lines.append({'kind': 'train', 'step': 100 * epoch, 'reward_task': accuracy,
                  'reward_change': change * epoch, 'reward_spread': 0.0,
                  'output_change': float(epoch)})
    lines.append({'kind': 'eval', 'step': 100 * epoch, 'split': 'test', 'error': 1 - accuracy})
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
  if per_glimpse:
    curve = {'loss': [2.0, 1.0], 'error': [0.5, 0.2], 'output_change': [0.5, 0.2]}
    (workdir / 'per_glimpse.json').write_text(json.dumps(
        {'images': 512, 'policy (greedy)': curve, 'policy (sampled)': curve,
         'random glimpses': curve}))
  return str(workdir)


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
  assert report_ram_reward.method_name(
      config(output_change_weight=0.1, change_space='log_probs', spread_weight=1.0)
  ) == 'logchange0.1+spread_linear_lstm_core'


def test_per_glimpse_bands_are_the_sample_std_over_seeds():
  values = np.array([[0.1, 1.0], [0.2, 1.0], [0.4, 1.0]])  # [seeds, T]
  np.testing.assert_allclose(report_ram_reward._sample_std(values),
                             [statistics.stdev([0.1, 0.2, 0.4]), 0.0])
  np.testing.assert_array_equal(report_ram_reward._sample_std(values[:1]), [0.0, 0.0])
