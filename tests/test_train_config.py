"""Shared config fields, their checks, variants and the optimizer they build."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glimpse_jax import train


def _config(**overrides):
  config = train.base_config()
  config.experiment = 'toy'
  config.lock()
  config.update_from_flattened_dict(overrides)
  return config


def test_base_config_validates_and_locks():
  config = _config()
  train.validate(config)
  with pytest.raises(AttributeError, match='batch_size'):
    config.batch_sise = 3
  assert config.init_from is None
  config.init_from = 'runs/phase1'  # a placeholder: None by default, a path from the command line
  train.validate(config)


@pytest.mark.parametrize('field,value,message', [
    ('experiment', '', 'experiment'),
    ('batch_size', 0, 'batch_size must be an integer >= 1, got 0'),
    ('num_steps', -5, 'num_steps must be an integer >= 1'),
    ('log_every', 0, 'log_every'),
    ('eval_every', -1, 'eval_every must be an integer >= 0'),
    ('checkpoint_every', -1, 'checkpoint_every'),
    ('keep_checkpoints', 0, 'keep_checkpoints'),
    ('checkpoint_at', (0,), 'checkpoint_at must hold steps in [1, num_steps='),
    ('eval.batch_size', 0, 'eval.batch_size'),
    ('eval.mc_samples', 0, 'eval.mc_samples'),
    ('optimizer.name', 'adamw', "optimizer.name must be one of ['adam', 'momentum', 'sgd'], "
                                "got 'adamw'"),
    ('optimizer.schedule', 'linear', "optimizer.schedule must be one of ['constant', 'cosine', "
                                     "'exponential']"),
    ('optimizer.learning_rate', -1e-3, 'optimizer.learning_rate must be a number >= 0.0'),
    ('optimizer.momentum', 1.5, 'optimizer.momentum must be a number in [0.0, 1.0]'),
    ('optimizer.grad_clip_norm', -1.0, 'optimizer.grad_clip_norm'),
    ('optimizer.weight_decay', -0.1, 'optimizer.weight_decay'),
    ('optimizer.warmup_steps', -1, 'optimizer.warmup_steps'),
    ('init_from', '', 'init_from'),
    ('dataset.name', 'cifar', 'dataset.name'),
])
def test_validate_names_the_offending_field(field, value, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    train.validate(_config(**{field: value}))


def test_validate_checks_dependent_fields():
  with pytest.raises(ValueError, match='grad_variance_draws must be an integer >= 2'):
    train.validate(_config(grad_variance_every=10, grad_variance_draws=1))
  train.validate(_config(grad_variance_every=0, grad_variance_draws=1))
  with pytest.raises(ValueError, match='optimizer.decay_rate'):
    train.validate(_config(**{'optimizer.schedule': 'exponential', 'optimizer.decay_rate': 1.5}))
  if jax.device_count() > 1:
    with pytest.raises(ValueError, match='batch_size must be divisible by the device count'):
      train.validate(_config(batch_size=jax.device_count() + 1))


def test_pick_variant_lists_the_allowed_variants():
  assert train.pick_variant('smoke', ('smoke', 'mnist')) == 'smoke'
  with pytest.raises(ValueError, match="unknown variant 'smok'; choose one of: smoke, mnist"):
    train.pick_variant('smok', ('smoke', 'mnist'))
  with pytest.raises(ValueError, match='unknown variant None'):
    train.pick_variant(None, ('smoke',))


def test_experiment_rejects_non_functions_and_missing_parts():
  with pytest.raises(ValueError, match='Experiment.loss must be callable or None, got 3'):
    train.Experiment(init=lambda r, b: {}, loss=3, evaluate=lambda p, b, r: {})
  with pytest.raises(ValueError, match='needs init, loss and evaluate .* or generate'):
    train.Experiment(init=lambda r, b: {}, loss=None, evaluate=lambda p, b, r: {})
  with pytest.raises(ValueError, match='frozen_models must be a tuple of names'):
    train.Experiment(generate=lambda b, r, f: {}, frozen_models='teacher')
  with pytest.raises(ValueError, match='Experiment.init, loss, evaluate, which the experiment'):
    train.Experiment(generate=lambda b, r, f: {}).require('init', 'loss', 'evaluate')


def _learning_rates(num_steps, **fields):
  config = _config(**{f'optimizer.{k}': v for k, v in fields.items()})
  _, schedule = train.make_optimizer(config.optimizer, num_steps)
  return np.array([float(schedule(step)) for step in range(num_steps + 1)])


def test_schedules():
  np.testing.assert_allclose(_learning_rates(10, learning_rate=0.1), 0.1)
  cosine = _learning_rates(10, learning_rate=0.1, schedule='cosine')
  assert cosine[0] == pytest.approx(0.1) and cosine[5] == pytest.approx(0.05)
  assert cosine[10] == pytest.approx(0.0, abs=1e-9)
  exponential = _learning_rates(20, learning_rate=0.1, schedule='exponential', decay_steps=10,
                                decay_rate=0.5)
  assert exponential[10] == pytest.approx(0.05) and exponential[20] == pytest.approx(0.025)
  warm = _learning_rates(10, learning_rate=0.1, schedule='cosine', warmup_steps=4)
  np.testing.assert_allclose(warm[:5], [0.0, 0.025, 0.05, 0.075, 0.1], atol=1e-7)
  assert warm[10] == pytest.approx(0.0, abs=1e-9)


def _one_update(params, grads, **fields):
  config = _config(**{f'optimizer.{k}': v for k, v in fields.items()})
  tx, _ = train.make_optimizer(config.optimizer, 10)
  updates, _ = tx.update(grads, tx.init(params), params)
  return optax.apply_updates(params, updates)


def test_optimizer_fields_change_the_update():
  params, grads = {'w': jnp.array([1.0, 2.0])}, {'w': jnp.array([3.0, 4.0])}
  sgd = _one_update(params, grads, name='sgd', learning_rate=0.1)
  np.testing.assert_allclose(sgd['w'], [0.7, 1.6], rtol=1e-6)
  clipped = _one_update(params, grads, name='sgd', learning_rate=0.1, grad_clip_norm=1.0)
  np.testing.assert_allclose(clipped['w'], [1.0 - 0.06, 2.0 - 0.08], rtol=1e-6)  # |g| = 5
  decayed = _one_update(params, grads, name='sgd', learning_rate=0.1, weight_decay=0.5)
  np.testing.assert_allclose(decayed['w'], [1.0 - 0.35, 2.0 - 0.5], rtol=1e-6)
  adam = _one_update(params, grads, name='adam', learning_rate=0.1)
  np.testing.assert_allclose(adam['w'], [0.9, 1.9], rtol=1e-5)  # first Adam step: lr * sign(g)
  momentum = _one_update(params, grads, name='momentum', learning_rate=0.1, momentum=0.9)
  np.testing.assert_allclose(momentum['w'], sgd['w'], rtol=1e-6)  # no velocity yet
