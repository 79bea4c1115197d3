"""Near-optimal glimpses' RAM phase: the supervised term's strength and batch reduction, the
digit-centre targets and the single sampled-path evaluation, against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import near_optimal_glimpses as nog
from glimpse_jax.nets import draw_noise, grid_centers
from glimpse_jax.nets.policies import grid_cell

T, B, GRID = 3, 8, 4


def _config(variant='supervised', **loss):
  config = nog.get_config(variant)
  with config.unlocked():
    config.dataset.update(name='cluttered', canvas_size=40, num_clutter=2)
    config.model.update(glimpse_size=12, grid_size=GRID, num_glimpses=T, core_features=16,
                        glimpse_features=16, what_features=8, where_features=8)
    config.loss.update(**loss)
  return config


def _batch():
  rng = np.random.default_rng(0)
  return {'image': rng.uniform(size=(B, 40, 40, 1)).astype(np.float32),
          'label': rng.integers(0, 10, B).astype(np.int32),
          'target_location': grid_centers(GRID)[rng.integers(0, GRID**2, (B, T))],
          'center': rng.uniform(-0.6, 0.6, (B, 2)).astype(np.float32),
          'stored': np.array([1, 0, 1, 1, 0, 0, 1, 0], np.float32)}


def _loss(config, params, batch):
  return float(nog.make_experiment(config).loss(params, batch, jax.random.key(2), 0)[0])


def test_the_supervised_term_is_a_batch_mean_or_the_authors_batch_sum():
  batch = _batch()
  config = _config(supervision_weight=0.0)
  params = nog.make_experiment(config).init(jax.random.key(0), batch)
  # By hand: -sum_t log pi(target_t) of the stored examples, from the teacher-forced rollout the
  # loss makes (same noise: the loss draws it from its rng as it is).
  out = nog.ram_model(config).apply(
      params, batch['image'], draw_noise(jax.random.key(2), (T, B), GRID**2),
      given_locations=jnp.asarray(batch['target_location']),
      forced=jnp.asarray(batch['stored'] > 0))
  per_example = -np.asarray(out.log_probs).sum(1) * batch['stored']  # [B]
  assert per_example[batch['stored'] == 0].max() == 0 and per_example.min() >= 0
  without = _loss(config, params, batch)  # classification, REINFORCE and baseline: batch means
  mean = _loss(_config(supervision_weight=3.0), params, batch)
  summed = _loss(_config(supervision_weight=3.0, supervision_reduction='sum'), params, batch)
  np.testing.assert_allclose(mean - without, 3.0 * per_example.mean(), rtol=1e-4)
  np.testing.assert_allclose(summed - without, 3.0 * per_example.sum(), rtol=1e-4)


def test_the_sweep_variants_set_the_weight_reduction_and_targets():
  expected = {'supervised': ('mean', 1.0, 'designed'), 'supervised_w8': ('mean', 8.0, 'designed'),
              'supervised_sum': ('sum', 1.0, 'designed'),
              'supervised_center': ('sum', 1.0, 'digit_center')}
  for variant, (reduction, weight, targets) in expected.items():
    config = nog.get_config(variant)
    assert (config.loss.supervision_reduction, config.loss.supervision_weight,
            config.supervision.targets) == (reduction, weight, targets), variant
    assert config.data_from is not None
  assert nog.get_config('unsupervised').data_from is None


def test_digit_centre_targets_are_the_centres_and_the_forced_rollout_takes_their_cells():
  batch = _batch()
  config = _config('supervised_center')
  targets = np.asarray(nog.supervision_targets(config, batch))
  np.testing.assert_array_equal(targets, np.repeat(batch['center'][:, None], T, axis=1))
  designed = nog.supervision_targets(_config(), batch)
  np.testing.assert_array_equal(np.asarray(designed), batch['target_location'])
  params = nog.make_experiment(config).init(jax.random.key(0), batch)
  out = nog.ram_model(config).apply(
      params, batch['image'], draw_noise(jax.random.key(2), (T, B), GRID**2),
      given_locations=jnp.asarray(targets),
      forced=jnp.asarray(batch['stored'] > 0))
  cells = np.asarray(grid_cell(jnp.asarray(batch['center']), GRID))  # [B]
  taken = np.asarray(out.locations)[batch['stored'] > 0]  # [stored, T, 2]
  np.testing.assert_allclose(taken, np.broadcast_to(
      grid_centers(GRID)[cells[batch['stored'] > 0]][:, None], taken.shape), atol=1e-6)


@pytest.mark.parametrize('field, value', [('supervision.targets', 'oracle'),
                                          ('loss.supervision_reduction', 'max'),
                                          ('eval.sampled_path_duplicates', -1)])
def test_bad_supervision_and_evaluation_fields_are_named(field, value):
  config = _config()
  with config.unlocked():
    section, name = field.split('.')
    config[section][name] = value
  with pytest.raises(ValueError, match=f'{field}.*{value}'):
    nog.make_experiment(config)
  config = _config('supervised_center')
  with config.unlocked():
    config.dataset.name = 'mnist'
  with pytest.raises(ValueError, match='supervision.targets'):
    nog.make_experiment(config)


@pytest.mark.parametrize('duplicates', [3, 6])
def test_single_sampled_paths_are_scored_one_by_one(duplicates):
  batch = _batch()
  config = _config('unsupervised')
  with config.unlocked():
    config.eval.update(mc_samples=4, sampled_path_duplicates=duplicates)
  experiment = nog.make_experiment(config)
  params = experiment.init(jax.random.key(0), batch)
  rng = jax.random.key(5)
  values = {k: np.asarray(v) for k, v in experiment.evaluate(params, batch, rng).items()}
  # By hand: path k is the rollout driven by the k-th of max(M, D) noise draws.
  noise = draw_noise(rng, (max(4, duplicates), T, B), GRID**2)
  model = nog.ram_model(config)
  wrong = []
  for k in range(duplicates):
    out = model.apply(params, batch['image'], jax.tree.map(lambda n, k=k: n[k], noise))
    wrong.append(np.argmax(np.asarray(out.logits), -1) != batch['label'])
    np.testing.assert_array_equal(values[f'error_sampled_path_{k}'], wrong[-1])
  assert f'error_sampled_path_{duplicates}' not in values
  np.testing.assert_allclose(values['error_sampled_path'], np.mean(wrong, 0))
  assert values['error_mc'].shape == values['error'].shape == (B,)
  with config.unlocked():
    config.eval.sampled_path_duplicates = 0
  assert 'error_sampled_path' not in nog.make_experiment(config).evaluate(params, batch, rng)
