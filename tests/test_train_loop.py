"""The shared loop on a toy experiment: outputs, NaN guard, init_from, gradient variance, evaluation
pieces.

This file is also an experiment module (`get_config`, `make_experiment`), so the subprocess tests
can train it through main.py: `main.py --config=tests/test_train_loop.py:tiny`.
"""

import io
import json
import math
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from glimpse_jax import train
from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train.metrics import ConsoleReporter, MetricsWriter

TRACES = {'loss': 0}  # how often the toy loss was traced (each jit compilation traces it once)


# ---------------------------------------------------------------------------------------------
# The toy experiment: a small MLP classifier on an MNIST subset.
# ---------------------------------------------------------------------------------------------
class _MLP(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, images):  # [B, H, W, 1] -> [B, 10]
    x = images.reshape(images.shape[0], -1)
    return nn.Dense(10)(nn.relu(nn.Dense(self.hidden)(x)))


def get_config(arg=None):
  """The toy classifier; `tiny` is a 30-step run with periodic eval and checkpoints."""
  train.pick_variant(arg or 'tiny', ('tiny',))
  config = train.base_config()
  config.experiment = 'toy_mlp'
  config.batch_size = 32
  config.num_steps = 30
  config.log_every = 10
  config.eval_every = 20
  config.eval_examples_during_training = 64
  config.checkpoint_every = 10
  config.keep_checkpoints = 2
  config.optimizer.learning_rate = 3e-3
  config.eval.batch_size = 64
  config.dataset.update(train_examples=1024, eval_examples=200, download=False)
  config.model = ml_collections.ConfigDict(dict(hidden=16, input_noise=0.1))
  # nan_at_step: the loss (and so the update) of that step is NaN; step_delay_ms: a host pause
  # per step that changes no number, so a subprocess can be interrupted mid-run.
  config.loss = ml_collections.ConfigDict(dict(nan_at_step=-1, step_delay_ms=0.0))
  config.lock()
  return config


def make_experiment(config):
  model = _MLP(config.model.hidden)
  delay = config.loss.step_delay_ms / 1000

  def init(rng, batch):
    return model.init(rng, jnp.asarray(batch['image']))

  def loss(params, batch, rng, step):
    TRACES['loss'] += 1
    noise = jax.random.normal(rng, batch['image'].shape)
    logits = model.apply(params, batch['image'] + config.model.input_noise * noise)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    nll = nll * jnp.where(step == config.loss.nan_at_step, jnp.nan, 1.0)
    if delay:
      jax.debug.callback(lambda: time.sleep(delay))
    return nll, {'error': jnp.mean(jnp.argmax(logits, -1) != batch['label'])}

  def evaluate(params, batch, rng):
    del rng
    logits = model.apply(params, batch['image'])
    return {'error': (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32),
            'nll': optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])}

  def plots(params, batch, rng, workdir):
    del rng
    with open(os.path.join(workdir, 'toy_plot.json'), 'w') as f:
      json.dump({'batch': int(batch['image'].shape[0]),
                 'host_params': all(isinstance(x, np.ndarray) for x in jax.tree.leaves(params))},
                f)

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots)


def _config(data_dir, **overrides):
  config = get_config('tiny')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.update_from_flattened_dict(overrides)
  return config


def _checkpoint_steps(workdir):
  return sorted(int(name) for name in os.listdir(os.path.join(workdir, 'checkpoints'))
                if name.isdigit())


# ---------------------------------------------------------------------------------------------
# A full run and its files.
# ---------------------------------------------------------------------------------------------
def test_run_writes_results_metrics_checkpoints_and_plots(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _config(data_dir)
  TRACES['loss'] = 0
  results = train.run(config, workdir, make_experiment(config))

  # One trace for the metric names, one compilation of the update: no recompiles.
  assert TRACES['loss'] == 2
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f) == json.loads(json.dumps(results))
  assert results['steps'] == 30 and results['start_step'] == 0
  assert results['test_examples'] == 200
  assert 0 <= results['test_error'] < 0.6  # 30 Adam steps on MNIST beat chance (0.9)
  assert results['test_nll'] > 0
  assert results['images_per_second'] == pytest.approx(32 * results['steps_per_second'])
  assert results['wall_seconds'] > 0
  assert results['config']['experiment'] == 'toy_mlp'
  assert results['config']['model']['hidden'] == 16

  records = train.read_metrics(workdir)
  train_lines = [r for r in records if r['kind'] == 'train']
  assert [r['step'] for r in train_lines] == [10, 20, 30]
  for record in train_lines:
    assert {'loss', 'error', 'grad_norm', 'learning_rate', 'steps_per_second',
            'images_per_second', 'wall_seconds'} <= set(record)
    assert record['learning_rate'] == pytest.approx(3e-3)
    assert record['images_per_second'] == pytest.approx(32 * record['steps_per_second'])
  assert train_lines[-1]['loss'] < train_lines[0]['loss']
  evals = [r for r in records if r['kind'] == 'eval']
  assert [(r['step'], r['examples'], r['full'], r['final']) for r in evals] == [
      (20, 64, False, False), (30, 200, True, True)]
  assert evals[-1]['error'] == pytest.approx(results['test_error'])

  assert _checkpoint_steps(workdir) == [20, 30]  # keep_checkpoints=2
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['batch_size'] == 32
  with open(os.path.join(workdir, 'toy_plot.json')) as f:
    assert json.load(f) == {'batch': 64, 'host_params': True}
  assert os.path.getsize(os.path.join(workdir, 'learning_curve.png')) > 1000

  # A second run on the finished workdir resumes at the end: evaluation only, same numbers.
  again = train.run(config, workdir, make_experiment(config))
  assert again['start_step'] == 30 and again['test_error'] == results['test_error']
  assert again['wall_seconds'] > train_lines[-1]['wall_seconds']  # the run's time, carried over
  assert [r['step'] for r in train.read_metrics(workdir, 'train')] == [10, 20, 30]
  assert [(r['step'], r['final']) for r in train.read_metrics(workdir, 'eval')] == [
      (20, False), (30, True)]  # the final evaluation replaced, not repeated


def test_checkpoint_at_keeps_snapshots_for_good(data_dir, tmp_path):
  workdir = str(tmp_path / 'snapshots')
  config = _config(data_dir, checkpoint_at=(5, 15), eval_every=0)
  train.run(config, workdir, make_experiment(config))
  assert _checkpoint_steps(workdir) == [5, 15, 20, 30]  # and the last keep_checkpoints=2
  early, late = (train.load_params(workdir, step=s) for s in (5, 30))
  assert jax.tree.structure(early) == jax.tree.structure(late)
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(early),
                                                       jax.tree.leaves(late)))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
  workdir = str(tmp_path / 'nan')
  # The update from step 9 to 10 is NaN and step 10 is a checkpoint step; metrics are fetched
  # late (log_every=3 does not divide 10), yet state 10 must never be saved.
  config = _config(data_dir, **{'loss.nan_at_step': 9, 'checkpoint_every': 5, 'log_every': 3})
  with pytest.raises(FloatingPointError, match=r'non-finite .*loss.* at step 9 ') as error:
    train.run(config, workdir, make_experiment(config))
  assert 'grad_norm' in str(error.value) and 'checkpoint 5' in str(error.value)
  assert _checkpoint_steps(workdir) == [5]
  params = train.load_params(workdir)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
  assert not os.path.exists(os.path.join(workdir, 'results.json'))


@pytest.mark.slow
def test_init_from_starts_from_another_runs_parameters(data_dir, tmp_path):
  first = str(tmp_path / 'first')
  config = _config(data_dir, num_steps=10, eval_every=0)
  train.run(config, first, make_experiment(config))

  # With a zero learning rate the second run ends where it started: on the first run's params.
  second = str(tmp_path / 'second')
  config = _config(data_dir, num_steps=5, eval_every=0, init_from=first,
                   **{'optimizer.learning_rate': 0.0})
  results = train.run(config, second, make_experiment(config))
  assert results['start_step'] == 0
  for a, b in zip(jax.tree.leaves(train.load_params(first)),
                  jax.tree.leaves(train.load_params(second))):
    np.testing.assert_array_equal(a, b)

  config = _config(data_dir, num_steps=5, init_from=str(tmp_path / 'missing'))
  with pytest.raises(ValueError, match='init_from='):
    train.run(config, str(tmp_path / 'third'), make_experiment(config))


# ---------------------------------------------------------------------------------------------
# Gradient variance: a loss whose gradient is Gaussian noise of known scale.
# ---------------------------------------------------------------------------------------------
_SIGMAS = {'a': 0.5, 'b': 2.0}
_SHAPES = {'a': (3,), 'b': (2, 2)}


def _noisy_linear_experiment():
  """loss = sum_leaf <w_leaf, sigma_leaf * eps_leaf>: gradient sigma * eps, eps ~ N(0, I)."""
  def init(rng, batch):
    del rng, batch
    return {name: jnp.zeros(shape) for name, shape in _SHAPES.items()}

  def loss(params, batch, rng, step):
    del batch, step
    keys = dict(zip(_SHAPES, jax.random.split(rng, len(_SHAPES))))
    value = sum(jnp.sum(params[name] * _SIGMAS[name] * jax.random.normal(keys[name], shape))
                for name, shape in _SHAPES.items())
    return value, {}

  def evaluate(params, batch, rng):
    del params, rng
    return {'error': jnp.zeros(batch['label'].shape)}

  return train.Experiment(init=init, loss=loss, evaluate=evaluate)


@pytest.mark.slow
def test_grad_variance_matches_closed_form(data_dir, tmp_path):
  trace = sum(math.prod(shape) * _SIGMAS[name] ** 2 for name, shape in _SHAPES.items())  # 13
  # E|g| for g = (sigma_a eps_a, sigma_b eps_b), by Monte Carlo with many more draws.
  eps = np.random.default_rng(0).normal(size=(400_000, 7))
  expected_norm = np.linalg.norm(eps * np.repeat([0.5, 2.0], [3, 4]), axis=1).mean()

  config = _config(data_dir, num_steps=10, eval_every=0, log_every=5, grad_variance_every=5,
                   grad_variance_draws=4096)
  train.run(config, str(tmp_path / 'variance'), _noisy_linear_experiment())
  lines = train.read_metrics(str(tmp_path / 'variance'), 'grad_variance')
  assert [r['step'] for r in lines] == [0, 5]
  for record in lines:
    # Relative sampling error of the variance is about sqrt(2 / 4095) per coordinate.
    assert record['grad_variance'] == pytest.approx(trace, rel=0.05)
    assert record['grad_norm_mean'] == pytest.approx(expected_norm, rel=0.03)
  assert lines[0]['grad_variance'] != lines[1]['grad_variance']  # fresh draws at each step


def test_grad_variance_is_the_sum_of_unbiased_per_parameter_variances():
  experiment = _noisy_linear_experiment()
  tx, _ = train.make_optimizer(train.base_config().optimizer, 10)
  state = train.TrainState.create(apply_fn=experiment.loss, params=experiment.init(None, None),
                                  tx=tx)
  rng = jax.random.key(3)
  out = jax.jit(lambda s: train.grad_variance(s, {}, rng, 5))(state)
  grads = [jax.grad(lambda p: experiment.loss(p, {}, r, 0)[0])(state.params)
           for r in jax.random.split(rng, 5)]
  flat = np.stack([np.concatenate([np.ravel(g[n]) for n in _SHAPES]) for g in grads])  # [5, 7]
  np.testing.assert_allclose(out['grad_variance'], flat.var(axis=0, ddof=1).sum(), rtol=1e-5)
  np.testing.assert_allclose(out['grad_norm_mean'], np.linalg.norm(flat, axis=1).mean(),
                             rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Pieces: masked evaluation, the step's metrics, metrics.jsonl on resume.
# ---------------------------------------------------------------------------------------------
def test_evaluate_averages_over_real_examples_only():
  mesh = train.make_data_mesh()
  evaluate = lambda params, batch, rng: {'error': batch['value'], 'twice': 2 * batch['value']}
  eval_fn = jax.jit(lambda p, b, r: train.eval_step(evaluate, p, b, r))
  values = np.arange(10, dtype=np.float32)
  batches = [{'value': values[:4], 'mask': np.ones(4, np.float32)},
             {'value': values[4:8], 'mask': np.ones(4, np.float32)},
             {'value': np.array([8, 9, 100, 100], np.float32),
              'mask': np.array([1, 1, 0, 0], np.float32)}]
  sharding = mesh_lib.batch_sharding(mesh)
  means = train.evaluate(eval_fn, {}, batches, sharding, jax.random.key(0))
  assert means == {'error': pytest.approx(4.5), 'twice': pytest.approx(9.0), 'examples': 10}
  first = train.evaluate(eval_fn, {}, batches, sharding, jax.random.key(0), max_batches=1)
  assert first == {'error': pytest.approx(1.5), 'twice': pytest.approx(3.0), 'examples': 4}


def test_train_step_reports_loss_terms_and_gradient_norm():
  def loss(params, batch, rng, step):
    del rng, step
    residual = params['w'] * batch['x'] - batch['y']
    return jnp.mean(residual ** 2), {'residual_max': jnp.max(jnp.abs(residual))}

  tx = optax.sgd(0.1)
  state = train.TrainState.create(apply_fn=loss, params={'w': jnp.array(2.0)}, tx=tx)
  batch = {'x': jnp.array([1.0, 2.0]), 'y': jnp.array([1.0, 1.0])}
  new_state, metrics = jax.jit(train.train_step)(state, batch, jax.random.key(0))
  # residual = (1, 3): loss 5, d loss / dw = mean(2 * residual * x) = 7.
  assert float(metrics['loss']) == pytest.approx(5.0)
  assert float(metrics['grad_norm']) == pytest.approx(7.0)
  assert float(metrics['residual_max']) == pytest.approx(3.0)
  assert float(new_state.params['w']) == pytest.approx(2.0 - 0.1 * 7.0)
  assert int(new_state.step) == 1

  bad = train.TrainState.create(apply_fn=lambda p, b, r, s: (loss(p, b, r, s)[0], {'loss': 0.0}),
                                params={'w': jnp.array(2.0)}, tx=tx)
  with pytest.raises(ValueError, match="'loss' is reserved"):
    train.train_step(bad, batch, jax.random.key(0))


def test_metrics_file_drops_lines_past_the_resumed_step(tmp_path):
  writer = MetricsWriter(str(tmp_path))
  for step in (10, 20, 30):
    writer.write('train', step, {'loss': float(step)})
  writer.write('grad_variance', 10, {'loss': 1.5})
  writer.write('grad_variance', 20, {'loss': 2.5})  # measured at step 20, before its update
  writer.write('eval', 30, {'error': 0.5})
  writer.close()
  # A run killed after step 30 but resumed from checkpoint 20 repeats steps 21..30 and the
  # gradient variance at 20.
  writer = MetricsWriter(str(tmp_path), resume_step=20)
  writer.write('train', 30, {'loss': 3.0, 'bad': float('nan')})
  writer.close()
  assert [(r['kind'], r['step'], r['loss']) for r in train.read_metrics(str(tmp_path))] == [
      ('train', 10, 10.0), ('train', 20, 20.0), ('grad_variance', 10, 1.5), ('train', 30, 3.0)]
  assert train.read_metrics(str(tmp_path))[-1]['bad'] == 'nan'


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_console_draws_a_bar_on_a_terminal_and_lines_elsewhere():
  record = {'kind': 'train', 'step': 50, 'loss': 0.25, 'steps_per_second': 10.0,
            'images_per_second': 320.0}
  terminal, pipe = _Terminal(), io.StringIO()
  bar = ConsoleReporter(100, terminal)
  bar.train(record)
  ConsoleReporter(100, pipe).train(record)
  drawn = terminal.getvalue().split('\r')[-1]  # tqdm redraws its one line in place
  assert drawn.startswith(' 50%|') and '| 50/100 [' in drawn, drawn
  assert '10.0 steps/s 320 img/s | loss 0.25' in drawn and '\n' not in terminal.getvalue()
  bar.close()
  assert pipe.getvalue() == ('step 50/100  50% | 10.0 steps/s 320 img/s | ETA 0:00:05 | '
                             'loss 0.25\n')


def test_metrics_file_ignores_a_partial_last_line(tmp_path):
  (tmp_path / 'metrics.jsonl').write_text('{"kind": "train", "step": 10, "loss": 1.0}\n'
                                          '{"kind": "train", "st')
  assert train.read_metrics(str(tmp_path)) == [{'kind': 'train', 'step': 10, 'loss': 1.0}]
  MetricsWriter(str(tmp_path), resume_step=10).close()
  assert (tmp_path / 'metrics.jsonl').read_text() == (
      '{"kind": "train", "step": 10, "loss": 1.0}\n')
