"""Exploration heuristics: tempering matches p^(1/T), entropies match NumPy, coverage rewards spread."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax.objectives import exploration


def test_temper_logits_gives_the_renormalised_power():
  logits = jnp.array([0.3, -1.2, 2.0, 0.0])
  p = np.asarray(jax.nn.softmax(logits), np.float64)
  for temperature in (0.5, 1.0, 3.0):
    expected = p**(1 / temperature) / np.sum(p**(1 / temperature))
    tempered = jax.nn.softmax(exploration.temper_logits(logits, temperature))
    np.testing.assert_allclose(tempered, expected, rtol=1e-5)
  with pytest.raises(ValueError, match='temperature must be > 0, got 0'):
    exploration.temper_logits(logits, 0)


def test_temper_std_gives_the_renormalised_power():
  x = np.linspace(-2.0, 2.0, 9)
  mean, std, temperature = 0.4, 0.3, 2.5

  def log_normal(s):
    return -0.5 * ((x - mean) / s)**2 - np.log(s)

  tempered = float(exploration.temper_std(std, temperature))
  difference = log_normal(tempered) - log_normal(std) / temperature  # constant in x
  np.testing.assert_allclose(difference - difference[0], 0.0, atol=1e-5)
  with pytest.raises(ValueError, match='temperature must be > 0'):
    exploration.temper_std(std, -1.0)


def test_action_entropy_matches_numpy_and_sampling():
  logits = jnp.array([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0]])  # [2, 3]
  p = np.asarray(jax.nn.softmax(logits), np.float64)
  np.testing.assert_allclose(exploration.action_entropy(logits), -np.sum(p * np.log(p), -1),
                             rtol=1e-5)
  log_std = jnp.log(jnp.array([[0.2, 0.5], [1.0, 1.0]]))  # [2, 2]
  z = jax.random.normal(jax.random.key(0), (200_000, 2, 2))
  log_density = np.asarray(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), np.float64)
  samples = -log_density.sum(-1)  # [N, 2] draws of -log density
  error = np.abs(samples.mean(0) - np.asarray(exploration.action_entropy(None, log_std)))
  np.testing.assert_array_less(error, 5 * samples.std(0) / np.sqrt(samples.shape[0]))
  np.testing.assert_allclose(
      exploration.action_entropy(logits, log_std),
      exploration.action_entropy(logits) + exploration.action_entropy(None, log_std), rtol=1e-6)
  with pytest.raises(ValueError, match='got neither'):
    exploration.action_entropy()


def test_scale_coverage_is_zero_for_a_balanced_batch_and_log_s_for_a_collapsed_one():
  peaked = 20.0 * jnp.eye(3)  # [3, 3]: each glimpse sure of its scale, all scales used
  assert float(exploration.scale_coverage_loss(peaked)) < 1e-6
  collapsed = jnp.tile(peaked[:1], (4, 1))  # [4, 3]: every glimpse at scale 0
  np.testing.assert_allclose(exploration.scale_coverage_loss(collapsed), math.log(3), atol=1e-5)
  grad = jax.grad(exploration.scale_coverage_loss)(jnp.tile(jnp.array([[1.0, 0.0, 0.0]]), (4, 1)))
  assert np.all(grad[:, 0] > 0) and np.all(grad[:, 1:] < 0)  # descent moves mass off scale 0
  with pytest.raises(ValueError, match=r'scale_logits must be \[N, S\]'):
    exploration.scale_coverage_loss(jnp.zeros(3))


def test_location_coverage_rewards_spread_locations():
  grid_size = 4
  ticks = (2 * np.arange(grid_size) + 1) / grid_size - 1
  spread = jnp.asarray(np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 2), jnp.float32)
  clustered = 0.05 * jax.random.normal(jax.random.key(1), (16, 2))
  spread_loss = float(exploration.location_coverage_loss(spread, grid_size))
  clustered_loss = float(exploration.location_coverage_loss(clustered, grid_size))
  assert 0.0 <= spread_loss < 0.05
  assert 1.0 < clustered_loss <= 2 * math.log(grid_size)
  step = clustered - 0.1 * jax.grad(exploration.location_coverage_loss)(clustered, grid_size)
  assert float(exploration.location_coverage_loss(step, grid_size)) < clustered_loss
  with pytest.raises(ValueError, match=r'locations must be \[N, 2\]'):
    exploration.location_coverage_loss(jnp.zeros((5, 3)))
  with pytest.raises(ValueError, match='grid_size must be >= 1'):
    exploration.location_coverage_loss(spread, 0)
  with pytest.raises(ValueError, match='bandwidth must be > 0'):
    exploration.location_coverage_loss(spread, 4, bandwidth=0.0)


def test_saturation_penalty_against_numpy_and_its_gradient_at_a_parked_mean():
  pre_mean = np.array([[0.0, 1.0], [1.9, -0.5], [4.0, -6.0]], np.float32)  # [N, 2]
  edge = math.atanh(0.95)  # 1.8318
  expected = np.sum(np.maximum(np.abs(pre_mean) - edge, 0.0)**2, -1)
  np.testing.assert_allclose(exploration.saturation_penalty(jnp.asarray(pre_mean)), expected,
                             rtol=1e-6)
  assert expected[0] == 0.0  # an unsaturated mean is left alone
  # Where tanh is flat (z = 4, 6 in float32) the penalty still pulls the mean back inside.
  grad = jax.grad(lambda z: exploration.saturation_penalty(z).sum())(jnp.asarray(pre_mean))
  np.testing.assert_allclose(grad, 2 * np.sign(pre_mean) * np.maximum(np.abs(pre_mean) - edge, 0),
                             rtol=1e-5)
  assert grad[2, 0] > 0 and grad[2, 1] < 0
  with pytest.raises(ValueError, match='edge'):
    exploration.saturation_penalty(jnp.zeros(2), edge=1.0)
