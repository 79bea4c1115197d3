"""RAM: the fused rollout equals the scanned Flax one, gradients reach every layer, configs fail early."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ram
from glimpse_jax.nets.ram import RetinaSpec, RecurrentAttentionModel


def _model(**kwargs):
  fields = dict(retina=RetinaSpec(size=6, num_scales=2, scale_factor=2), core_features=32,
                glimpse_features=24, what_features=16, where_features=8, location_std=0.2)
  fields.update(kwargs)
  return RecurrentAttentionModel(**fields)


def _inputs(batch=5, steps=4, height=20, width=17):
  images = jax.random.uniform(jax.random.key(1), (batch, height, width, 1))
  noise = jax.random.normal(jax.random.key(2), (steps, batch, 2))
  return images, noise


def _objective(model, params, images, noise):
  out = model.apply(params, images, noise)
  return (jnp.sum(jnp.sin(out.logits)) + jnp.sum(out.means ** 2) + jnp.sum(out.baselines)
          + jnp.sum(jnp.cos(out.hidden)))


def test_fused_rollout_matches_scanned_module():
  images, noise = _inputs()
  fused, scanned = _model(fused=True), _model(fused=False)
  params = scanned.init(jax.random.key(0), images, noise)
  out_f, out_s = fused.apply(params, images, noise), scanned.apply(params, images, noise)
  for a, b in zip(out_f, out_s):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  grads_f = jax.grad(lambda p: _objective(fused, p, images, noise))(params)
  grads_s = jax.grad(lambda p: _objective(scanned, p, images, noise))(params)
  flat_f, flat_s = jax.tree.leaves_with_path(grads_f), jax.tree.leaves(grads_s)
  for (path, a), b in zip(flat_f, flat_s):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize('core,fused', [('rnn', True), ('rnn', False), ('lstm', False)])
def test_ram_loss_gives_every_parameter_a_gradient(core, fused):
  config = ram.get_config('smoke')
  with config.unlocked():
    config.model.update(core=core, fused=fused, core_features=32, glimpse_features=32,
                        what_features=16, where_features=16, num_glimpses=3)
  experiment = ram.make_experiment(config)
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(8, 28, 28, 1)).astype(np.float32),
           'label': rng.integers(0, 10, size=8).astype(np.int32)}
  params = experiment.init(jax.random.key(0), batch)
  grads = jax.grad(lambda p: experiment.loss(p, batch, jax.random.key(3), 0)[0])(params)
  for path, g in jax.tree.leaves_with_path(grads):
    assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
    assert np.abs(g).max() > 0, f'no gradient reaches {jax.tree_util.keystr(path)}'
  location = grads['params']['step']['location']['mean']['kernel']
  assert np.abs(location).max() > 1e-6


def test_location_gradient_comes_from_reinforce():
  config = ram.get_config('smoke')
  with config.unlocked():
    config.loss.reinforce_weight = 0.0
  experiment = ram.make_experiment(config)
  batch = {'image': np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32),
           'label': np.arange(4, dtype=np.int32)}
  params = experiment.init(jax.random.key(0), batch)
  grads = jax.grad(lambda p: experiment.loss(p, batch, jax.random.key(3), 0)[0])(params)
  # Without the policy term nothing else trains the location network: the samples are actions.
  assert np.abs(grads['params']['step']['location']['mean']['kernel']).max() == 0


def test_evaluate_reports_greedy_and_monte_carlo_errors():
  config = ram.get_config('smoke')
  with config.unlocked():
    config.eval.mc_samples = 3
  experiment = ram.make_experiment(config)
  batch = {'image': np.zeros((6, 28, 28, 1), np.float32), 'label': np.arange(6, dtype=np.int32)}
  params = experiment.init(jax.random.key(0), batch)
  metrics = experiment.evaluate(params, batch, jax.random.key(1))
  assert set(metrics) >= {'error', 'error_mc', 'nll'}
  for value in metrics.values():
    assert value.shape == (6,)
  assert set(np.unique(metrics['error_mc'])) <= {0.0, 1.0}


@pytest.mark.parametrize('field,value,message', [
    ('model.num_glimpses', 0, 'num_glimpses'),
    ('model.glimpse_size', 40, 'glimpse_size'),
    ('model.location_std', -0.1, 'location_std'),
    ('model.core', 'gru', 'core'),
    ('loss.reinforce_weight', -1.0, 'reinforce_weight'),
])
def test_bad_config_fails_naming_the_field(field, value, message):
  config = ram.get_config('smoke')
  section, name = field.split('.')
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    ram.make_experiment(config)


def test_unknown_variant_lists_the_allowed_ones():
  with pytest.raises(ValueError, match='translated60'):
    ram.get_config('translated61')


def test_mistyped_field_fails():
  config = ram.get_config('smoke')
  with pytest.raises(AttributeError):
    config.model.num_glimpse = 3
