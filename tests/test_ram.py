"""RAM: the fused rollout equals the scanned Flax one or refuses, gradients reach every layer of
every core and locator, configs fail early."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ram
from glimpse_jax.nets import RecurrentAttentionModel, RetinaSpec, draw_noise


def _model(**kwargs):
  fields = dict(retina=RetinaSpec(size=6, num_scales=2, scale_factor=2), core_features=32,
                glimpse_features=24, what_features=16, where_features=8, location_std=0.2)
  fields.update(kwargs)
  return RecurrentAttentionModel(**fields)


def _inputs(batch=5, steps=4, height=20, width=17):
  images = jax.random.uniform(jax.random.key(1), (batch, height, width, 1))
  return images, draw_noise(jax.random.key(2), (steps, batch))


def _objective(model, params, images, noise):
  out = model.apply(params, images, noise)
  logits = out.logits if out.step_logits is None else out.step_logits
  return (jnp.sum(jnp.sin(logits)) + jnp.sum(out.loc_mean ** 2) + jnp.sum(out.baselines)
          + jnp.sum(jnp.cos(out.hidden)) + jnp.sum(out.log_probs))


@pytest.mark.parametrize('options', [{}, {'classify_every_step': True},
                                     {'random_locations': True}])
def test_fused_rollout_matches_scanned_module(options):
  images, noise = _inputs()
  fused, scanned = _model(fused=True, **options), _model(fused=False, **options)
  params = jax.jit(scanned.init)(jax.random.key(0, impl='rbg'), images, noise)
  out_f = jax.jit(fused.apply)(params, images, noise)
  out_s = jax.jit(scanned.apply)(params, images, noise)
  for name, a, b in zip(out_f._fields, out_f, out_s):
    assert (a is None) == (b is None), name
    if a is not None:
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
  grads_f = jax.jit(jax.grad(lambda p: _objective(fused, p, images, noise)))(params)
  grads_s = jax.jit(jax.grad(lambda p: _objective(scanned, p, images, noise)))(params)
  flat_f, flat_s = jax.tree.leaves_with_path(grads_f), jax.tree.leaves(grads_s)
  for (path, a), b in zip(flat_f, flat_s):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize('field,value', [('core', 'lstm'), ('locator', 'lstm'),
                                         ('locator', 'grid')])
def test_fused_refuses_what_it_does_not_implement(field, value):
  images, noise = _inputs()
  with pytest.raises(ValueError, match=f"{field}='rnn'|{field}='linear'"):
    jax.eval_shape(_model(fused=True, **{field: value}).init, jax.random.key(0), images, noise)


@pytest.mark.parametrize('inputs', ['teacher', 'mask'])
def test_fused_refuses_teacher_forcing_and_step_masks(inputs):
  images, noise = _inputs()
  params = jax.eval_shape(_model().init, jax.random.key(0), images, noise)
  steps, batch = noise.location.shape[:2]
  extra = ({'given_locations': jnp.zeros((batch, steps, 2)), 'forced': jnp.ones(batch, bool)}
           if inputs == 'teacher' else {'step_mask': jnp.ones((batch, steps))})
  with pytest.raises(ValueError, match='given_locations|step_mask'):
    jax.eval_shape(lambda p: _model(fused=True).apply(p, images, noise, **extra), params)


def _tiny_config(**model):
  config = ram.get_config('smoke')
  with config.unlocked():
    config.model.update(core_features=32, glimpse_features=32, what_features=16,
                        where_features=16, num_glimpses=3, locator_features=8, grid_size=3,
                        **model)
  return config


def _batch(n=8):
  rng = np.random.default_rng(0)
  return {'image': rng.uniform(size=(n, 28, 28, 1)).astype(np.float32),
          'label': rng.integers(0, 10, size=n).astype(np.int32),
          'center': rng.uniform(-0.5, 0.5, size=(n, 2)).astype(np.float32)}


@pytest.mark.slow
@pytest.mark.parametrize('model,loss', [
    (dict(core='rnn', fused=True), {}),
    (dict(core='lstm', fused=False), {}),
    (dict(locator='lstm', fused=False), dict(discount=0.9)),
    (dict(locator='grid', fused=False, classify_every_step=True),
     dict(reward='per_step', supervised_fraction=0.5)),
])
def test_each_structure_trains_a_step_and_every_parameter_gets_a_gradient(model, loss):
  config = _tiny_config(**model)
  with config.unlocked():
    config.loss.update(loss)
  experiment = ram.make_experiment(config)
  batch = _batch()
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda p: experiment.loss(p, batch, jax.random.key(3), 0), has_aux=True))
  (value, metrics), grads = loss_and_grad(params)
  for path, g in jax.tree.leaves_with_path(grads):
    assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
    assert np.abs(g).max() > 0, f'no gradient reaches {jax.tree_util.keystr(path)}'
  stepped = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
  (after, _), _ = loss_and_grad(stepped)
  assert np.isfinite(value) and np.isfinite(after) and after != value
  assert {'nll', 'reinforce', 'baseline_mse', 'error'} <= set(metrics)


def test_a_shrunk_smoke_trains_a_few_steps(data_dir, tmp_path):
  from glimpse_jax import train  # pylint: disable=g-import-not-at-top
  config = _tiny_config()
  with config.unlocked():
    config.dataset.update(data_dir=data_dir, download=False, eval_examples=64)
    config.update(num_steps=4, batch_size=16, log_every=2, eval_every=2, checkpoint_every=0,
                  eval_examples_during_training=64)
    config.eval.update(batch_size=64, mc_samples=2)
  results = train.run(config, str(tmp_path / 'run'), ram.make_experiment(config))
  assert results['steps'] == 4 and 0 <= results['test_error'] <= 1
  assert (tmp_path / 'run' / 'glimpse_paths.png').stat().st_size > 0


def test_location_gradient_comes_from_reinforce():
  config = ram.get_config('smoke')
  with config.unlocked():
    config.loss.reinforce_weight = 0.0
  experiment = ram.make_experiment(config)
  batch = {'image': np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32),
           'label': np.arange(4, dtype=np.int32)}
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  grads = jax.jit(jax.grad(lambda p: experiment.loss(p, batch, jax.random.key(3), 0)[0]))(params)
  # Without the policy term nothing else trains the location network: the samples are actions.
  assert np.abs(grads['params']['step']['location']['mean']['kernel']).max() == 0


def test_evaluate_reports_greedy_and_monte_carlo_errors():
  config = ram.get_config('smoke')
  with config.unlocked():
    config.eval.mc_samples = 3
  experiment = ram.make_experiment(config)
  batch = {'image': np.zeros((6, 28, 28, 1), np.float32), 'label': np.arange(6, dtype=np.int32)}
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  metrics = jax.jit(experiment.evaluate)(params, batch, jax.random.key(1))
  assert set(metrics) >= {'error', 'error_mc', 'nll'}
  for value in metrics.values():
    assert value.shape == (6,)
  assert set(np.unique(metrics['error_mc'])) <= {0.0, 1.0}


@pytest.mark.parametrize('field,value,message', [
    ('model.num_glimpses', 0, 'num_glimpses'),
    ('model.glimpse_size', 40, 'glimpse_size'),
    ('model.location_std', -0.1, 'location_std'),
    ('model.core', 'gru', 'core'),
    ('model.locator', 'spiral', 'model.locator'),
    ('model.grid_size', 0, 'model.grid_size'),
    ('model.locator_features', 0, 'model.locator_features'),
    ('loss.reinforce_weight', -1.0, 'reinforce_weight'),
    ('loss.supervision_weight', -1.0, 'loss.supervision_weight'),
    ('loss.reward', 'bonus', 'loss.reward'),
    ('loss.reward', 'per_step', 'classify_every_step'),
    ('loss.discount', 1.5, 'loss.discount'),
    ('loss.supervised_fraction', -0.1, 'loss.supervised_fraction'),
    ('loss.supervised_fraction', 0.5, 'model.fused'),
    ('model.locator', 'grid', 'model.fused'),
    ('model.core', 'lstm', 'model.fused'),
    ('model.fixed_locations', 'corner', "model.fixed_locations .*'corner'"),
])
def test_bad_config_fails_naming_the_field(field, value, message):
  config = ram.get_config('smoke')
  section, name = field.split('.')
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    ram.make_experiment(config)


def _oracle(**fields):
  """A tiny oracle RAM (model.fixed_locations='center'), a batch of 4 with made-up centers, and
  its initial parameters."""
  config = ram.get_config('smoke')
  with config.unlocked():
    config.model.update(num_glimpses=3, fixed_locations='center', core_features=16,
                        glimpse_features=16, what_features=8, where_features=8,
                        locator_features=8, **fields)
    config.eval.mc_samples = 2
  experiment = ram.make_experiment(config)
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(4, 28, 28, 1)).astype(np.float32),
           'label': np.arange(4, dtype=np.int32),
           'center': rng.uniform(-0.8, 0.8, size=(4, 2)).astype(np.float32),  # [B, 2]
           'box_size': np.full(4, 10.0, np.float32)}
  return experiment, batch, jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)


@pytest.mark.parametrize('fields', [{}, {'locator': 'lstm', 'fused': False}])
def test_the_oracle_glimpses_at_the_batch_centers(fields):
  experiment, batch, params = _oracle(**fields)
  predict = jax.jit(lambda p, images, c: experiment.predict(p, images, jax.random.key(1),
                                                            centers=c))
  out = predict(params, batch['image'], batch['center'])
  np.testing.assert_allclose(out['locations'],
                             np.broadcast_to(batch['center'][:, None], (4, 3, 2)))
  with pytest.raises(ValueError, match="fixed_locations='center'.*center"):
    experiment.predict(params, jnp.asarray(batch['image']), jax.random.key(1))
  if not fields:
    # Evaluation's greedy and sampled paths read the same centers: predict's classes.
    metrics = jax.jit(experiment.evaluate)(params, batch, jax.random.key(2))
    wrong = (np.argmax(out['probabilities'], -1) != batch['label']).astype(np.float32)
    np.testing.assert_array_equal(metrics['error'], wrong)
    np.testing.assert_array_equal(metrics['error_mc'], wrong)


def test_the_oracle_trains_on_the_centers_and_reinforces_nothing():
  experiment, batch, params = _oracle()
  loss = jax.jit(jax.value_and_grad(lambda p, b: experiment.loss(p, b, jax.random.key(3), 0)[0]))
  value, grads = loss(params, batch)
  assert float(value) != float(loss(params, dict(batch, center=-batch['center']))[0])
  locator = grads['params']['step']['location']  # no gradient reaches the locator
  assert jax.tree.leaves(locator) and all(np.abs(g).max() == 0 for g in jax.tree.leaves(locator))


def test_the_oracle_takes_no_other_location_choice():
  for field, value, message in (('model.random_locations', True, 'both choose the locations'),
                                ('loss.supervised_fraction', 0.1, 'no policy to supervise')):
    config = ram.get_config('smoke')
    section, name = field.split('.')
    with config.unlocked():
      config.model.update(fixed_locations='center', fused=False)
      config[section][name] = value
    with pytest.raises(ValueError, match=message):
      ram.make_experiment(config)
  assert ram.paper_row(ram.get_config('cluttered60')) is not None
  config = ram.get_config('cluttered60')
  config.model.fixed_locations = 'center'
  assert ram.paper_row(config) is None  # no paper row glimpses at the center


def test_unknown_variant_lists_the_allowed_ones():
  with pytest.raises(ValueError, match='translated60'):
    ram.get_config('translated61')


def test_mistyped_field_fails():
  config = ram.get_config('smoke')
  with pytest.raises(AttributeError):
    config.model.num_glimpse = 3


def test_paper_row_follows_the_config_the_run_trained_with():
  assert ram.paper_row(ram.get_config('translated60')) == ('translated60, 4 glimpses', 0.0154)
  assert ram.paper_row(ram.get_config('cluttered100_paper')) == ('cluttered100, 4 glimpses',
                                                                  0.0941)
  config = ram.get_config('cluttered60')
  config.model.num_glimpses, config.model.random_locations = 8, True
  assert ram.paper_row(config) == ('cluttered60, 8 random glimpses', 0.284)
  config.model.num_glimpses = 5  # no such row
  assert ram.paper_row(config) is None
  config = ram.get_config('mnist')
  config.model.core = 'lstm'  # not the paper's model
  assert ram.paper_row(config) is None
  assert ram.paper_row(config.to_dict() | {'model': ram.get_config('mnist').model.to_dict()}) == (
      'mnist, 6 glimpses', 0.0112)  # a results.json config is a plain dict
