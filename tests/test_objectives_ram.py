"""REINFORCE with per-step rewards and RAM's loss: NumPy references and closed-form gradients."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax.distributions import gaussian_log_prob
from glimpse_jax.objectives import (baseline_loss, classification_rewards, final_rewards,
                                    location_supervision_loss, ram_loss, reinforce_loss,
                                    returns_to_go)


def _returns_reference(rewards, discount):
  returns = np.zeros_like(rewards)
  later = np.zeros(rewards.shape[:-1])
  for t in reversed(range(rewards.shape[-1])):
    later = rewards[..., t] + discount * later
    returns[..., t] = later
  return returns


@pytest.mark.parametrize('discount', [0.0, 0.5, 0.9, 1.0])
def test_returns_to_go_match_a_loop(discount):
  rewards = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(returns_to_go(jnp.asarray(rewards), discount),
                             _returns_reference(rewards, discount), rtol=1e-5, atol=1e-6)


def test_final_rewards_sit_at_the_last_taken_step():
  reward = jnp.array([1.0, 0.5, 2.0])
  np.testing.assert_array_equal(final_rewards(reward, 3),
                                [[0, 0, 1], [0, 0, 0.5], [0, 0, 2]])
  mask = jnp.array([[1, 1, 0], [0, 0, 0], [1, 0, 1]])
  np.testing.assert_array_equal(final_rewards(reward, 3, mask),
                                [[0, 1, 0], [0, 0, 0], [0, 0, 2]])


def test_classification_rewards():
  correct = jnp.array([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
  mask = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])  # stops after 4, 2, 3 steps
  held = jnp.array([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
  np.testing.assert_array_equal(classification_rewards(correct, 'final', mask),
                                [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(classification_rewards(correct, 'per_step', mask),
                                correct * mask)
  improvement = classification_rewards(held, 'improvement', mask)
  np.testing.assert_array_equal(improvement, [[0, 1, 0, 0], [1, -1, 0, 0], [1, 0, -1, 0]])
  # Undiscounted, the improvements add up to the final reward of a held state.
  np.testing.assert_array_equal(improvement.sum(-1),
                                classification_rewards(held, 'final', mask).sum(-1))


def _estimator(log_prob_fn, returns, baselines):
  """-grad of the surrogate: the REINFORCE gradient estimate for one episode."""
  return jax.grad(lambda theta: -reinforce_loss(log_prob_fn(theta), returns, baselines)[0])


def test_categorical_bandit_gradient_is_exact_in_expectation():
  theta = jnp.array([0.3, -1.0, 0.8, 0.1])
  payoff = jnp.array([1.0, 0.2, -0.5, 2.0])
  baseline = jnp.array([[0.7]])
  expected = 0.0
  for arm in range(4):
    log_prob = lambda th, a=arm: jax.nn.log_softmax(th)[a][None, None]  # [1, T=1]
    grad = _estimator(log_prob, payoff[arm][None, None], baseline)(theta)
    expected = expected + jax.nn.softmax(theta)[arm] * grad
  exact = jax.grad(lambda th: jnp.sum(jax.nn.softmax(th) * payoff))(theta)
  np.testing.assert_allclose(expected, exact, rtol=1e-5, atol=1e-6)


def test_two_step_returns_to_go_give_the_exact_gradient_in_expectation():
  """Per-step rewards r_1(a_1), r_2(a_1, a_2); the second policy and baseline see a_1."""
  rng = np.random.default_rng(0)
  theta = {'first': jnp.asarray(rng.normal(size=3)), 'second': jnp.asarray(rng.normal(size=(3, 3)))}
  r1, r2 = jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=(3, 3)))
  b2 = jnp.asarray(rng.normal(size=3))

  def log_probs(th, a1, a2):
    return jnp.stack([jax.nn.log_softmax(th['first'])[a1],
                      jax.nn.log_softmax(th['second'][a1])[a2]])[None]  # [1, 2]

  expected = jax.tree.map(jnp.zeros_like, theta)
  for a1, a2 in itertools.product(range(3), range(3)):
    p = jnp.exp(jnp.sum(log_probs(theta, a1, a2)))
    returns = returns_to_go(jnp.array([[r1[a1], r2[a1, a2]]]))
    grad = _estimator(lambda th: log_probs(th, a1, a2), returns,
                      jnp.array([[0.4, b2[a1]]]))(theta)
    expected = jax.tree.map(lambda e, g: e + p * g, expected, grad)

  def objective(th):
    p1 = jax.nn.softmax(th['first'])  # [3]
    p2 = jax.nn.softmax(th['second'], -1)  # [3, 3]
    return jnp.sum(p1 * r1) + jnp.sum(p1[:, None] * p2 * r2)

  exact = jax.grad(objective)(theta)
  for name in theta:
    np.testing.assert_allclose(expected[name], exact[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_gaussian_bandit_gradient_is_exact_in_expectation():
  """a ~ N(mu, s^2 I), r(a) = -|a - c|^2: d E[r] / d mu = -2 (mu - c), by Gauss-Hermite (exact
  for the estimator's cubic integrand)."""
  mu, std, target = jnp.array([0.3, -0.2]), 0.4, jnp.array([-0.1, 0.5])
  nodes, weights = np.polynomial.hermite_e.hermegauss(6)
  weights = weights / np.sqrt(2 * np.pi)
  expected = jnp.zeros(2)
  for (z1, w1), (z2, w2) in itertools.product(zip(nodes, weights), repeat=2):
    action = mu + std * jnp.array([z1, z2])
    reward = -jnp.sum((action - target) ** 2)
    log_prob = lambda m, a=action: gaussian_log_prob(a, m, std)[None, None]
    expected = expected + w1 * w2 * _estimator(log_prob, reward[None, None],
                                               jnp.array([[-0.5]]))(mu)
  np.testing.assert_allclose(expected, -2 * (mu - target), rtol=1e-4, atol=1e-5)


def _arrays(batch=5, steps=3, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  f32 = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  return dict(logits=f32(batch, classes), labels=jnp.asarray(rng.integers(0, classes, batch)),
              log_probs=f32(batch, steps), baselines=f32(batch, steps))


def test_ram_loss_defaults_are_rams_loss():
  a = _arrays()
  loss, terms = ram_loss(a['logits'], a['labels'], a['log_probs'], a['baselines'])
  logits, labels = np.asarray(a['logits']), np.asarray(a['labels'])
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -log_p[np.arange(5), labels]
  reward = (logits.argmax(-1) == labels).astype(np.float32)
  advantage = reward[:, None] - np.asarray(a['baselines'])
  reinforce = -np.sum(np.asarray(a['log_probs']) * advantage, -1)
  fit = np.mean(advantage**2, -1)
  np.testing.assert_allclose(loss, nll + reinforce + fit, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(terms['return'], reward)
  np.testing.assert_array_equal(terms['supervision'], 0.0)
  grad = jax.grad(lambda lp: ram_loss(a['logits'], a['labels'], lp, a['baselines'])[0].sum())(
      a['log_probs'])
  np.testing.assert_allclose(grad, -advantage, rtol=1e-5, atol=1e-6)


def test_ram_loss_masks_stopped_steps_and_supervised_examples():
  a = _arrays(batch=4, steps=3)
  mask = jnp.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]], jnp.float32)
  supervised = jnp.array([False, False, True, True])
  step_logits = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3, 4)), jnp.float32)
  run = lambda lp, b: ram_loss(a['logits'], a['labels'], lp, b, step_logits=step_logits,
                               step_mask=mask, supervised=supervised, reward='per_step',
                               discount=0.9, supervision_weight=0.5)
  loss, terms = run(a['log_probs'], a['baselines'])
  # Nothing changes with the log-probs or baselines of steps not taken.
  untaken = 1.0 - mask
  loss2, _ = run(a['log_probs'] + 5.0 * untaken, a['baselines'] - 3.0 * untaken)
  np.testing.assert_allclose(loss, loss2, rtol=1e-6)
  np.testing.assert_array_equal(terms['reinforce'][2:], 0.0)
  np.testing.assert_array_equal(terms['baseline_mse'][2:], 0.0)
  np.testing.assert_allclose(terms['supervision'],
                             [0, 0, -np.sum(a['log_probs'][2, :2]), -np.sum(a['log_probs'][3])],
                             rtol=1e-6)
  labels, lp = np.asarray(a['labels']), np.asarray(step_logits)
  log_p = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
  step_nll = -np.take_along_axis(log_p, labels[:, None, None], -1)[..., 0]
  np.testing.assert_allclose(terms['nll'], (step_nll * mask).sum(-1) / mask.sum(-1), rtol=1e-5)
  rewards = (lp.argmax(-1) == labels[:, None]) * np.asarray(mask)
  returns = _returns_reference(rewards.astype(np.float32), 0.9)
  advantage = returns[:2] - np.asarray(a['baselines'])[:2]
  np.testing.assert_allclose(
      terms['reinforce'][:2],
      -np.sum(np.asarray(mask)[:2] * np.asarray(a['log_probs'])[:2] * advantage, -1), rtol=1e-5)


def test_location_supervision_and_baseline_losses():
  log_probs = jnp.array([[-1.0, -2.0], [-0.5, -0.25]])
  np.testing.assert_allclose(location_supervision_loss(log_probs, jnp.array([True, False])),
                             [3.0, 0.0])
  np.testing.assert_allclose(
      baseline_loss(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])),
      [1.0])
  np.testing.assert_allclose(baseline_loss(jnp.ones((1, 2)), jnp.zeros((1, 2)),
                                           jnp.zeros((1, 2))), [0.0])


@pytest.mark.parametrize('kwargs,message', [
    (dict(reward='bonus'), 'reward'),
    (dict(reward='per_step'), 'step_logits'),
    (dict(discount=1.5), 'discount'),
    (dict(baseline_weight=-1.0), 'baseline_weight'),
])
def test_bad_values_fail_naming_them(kwargs, message):
  a = _arrays()
  with pytest.raises(ValueError, match=message):
    ram_loss(a['logits'], a['labels'], a['log_probs'], a['baselines'], **kwargs)


def test_mismatched_shapes_fail():
  a = _arrays()
  with pytest.raises(AssertionError):
    reinforce_loss(a['log_probs'], a['log_probs'][:, :2], a['baselines'])
  with pytest.raises(AssertionError):
    ram_loss(a['logits'], a['labels'][:3], a['log_probs'], a['baselines'])
