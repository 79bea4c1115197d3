"""Where the location policy's gradients go: each routing choice is pinned, so removing a
`stop_gradient` (the locator's input, REINFORCE's advantage, the baseline's or gain head's input)
fails a test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax.nets import RecurrentAttentionModel, RetinaSpec, draw_noise, location_mean
from glimpse_jax.objectives import ram_loss
from glimpse_jax.objectives.reinforce import baseline_loss, reinforce_loss

T, B = 3, 4


def _model(**kwargs):
  return RecurrentAttentionModel(
      num_classes=3, retina=RetinaSpec(4, 2), core_features=8, glimpse_features=8,
      what_features=4, where_features=4, **kwargs)


def _inputs():
  images = jax.random.uniform(jax.random.key(0), (B, 12, 12, 1))
  return images, draw_noise(jax.random.key(1), (T, B))


def _grads(model, head):
  """Gradients of `head(output)` (a scalar) with respect to every parameter."""
  images, noise = _inputs()
  params = model.init(jax.random.key(2), images, noise)
  return jax.jit(jax.grad(lambda p: head(model.apply(p, images, noise))))(params)['params']


def _norm(tree):
  return float(sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)))


def _core_and_glimpse(step_grads):
  return {name: value for name, value in step_grads.items() if name != 'location'}


def _policy_gradient_head(out):
  # REINFORCE's surrogate with fixed advantages: its gradient is the policy gradient.
  return -jnp.sum(out.log_probs * jnp.linspace(-1.0, 1.0, T * B).reshape(T, B).T)  # [B, T]


@pytest.mark.parametrize('fused, activation', [(False, 'tanh'), (True, 'hardtanh')])
def test_detached_locator_sends_no_policy_gradient_into_core_or_glimpse_net(fused, activation):
  detached = _grads(_model(fused=fused, policy_gradient_to_core=False,
                           mean_activation=activation), _policy_gradient_head)
  attached = _grads(_model(fused=fused, policy_gradient_to_core=True,
                           mean_activation=activation), _policy_gradient_head)
  assert _norm(_core_and_glimpse(detached['step'])) == 0.0
  assert _norm(_core_and_glimpse(attached['step'])) > 1e-6
  # The locator itself learns either way, and by the same gradient.
  np.testing.assert_allclose(detached['step']['location']['mean']['kernel'],
                             attached['step']['location']['mean']['kernel'], rtol=1e-5,
                             atol=1e-7)
  assert _norm(detached['step']['location']) > 1e-6


def test_detached_locator_lstm_trains_its_own_lstm_but_not_the_core():
  grads = _grads(_model(locator='lstm', locator_features=5, policy_gradient_to_core=False),
                 _policy_gradient_head)
  assert _norm(_core_and_glimpse(grads['step'])) == 0.0
  assert _norm(grads['step']['location']['lstm']) > 1e-6


@pytest.mark.parametrize('detached', [False, True])
def test_fused_and_scanned_rollouts_route_the_same_gradients(detached):
  def loss(out):
    return _policy_gradient_head(out) + jnp.sum(jax.nn.log_softmax(out.logits)[:, 0])

  fused = _grads(_model(fused=True, policy_gradient_to_core=not detached), loss)
  scanned = _grads(_model(fused=False, policy_gradient_to_core=not detached), loss)
  for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(scanned)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize('head', ['baselines', 'gains'])
def test_baseline_and_gain_heads_leave_the_core_untouched(head):
  grads = _grads(_model(fused=False, predict_gain=True), lambda out: getattr(out, head).sum())
  assert _norm(grads['step']) == 0.0
  assert _norm(grads['classifier']) == 0.0
  assert _norm(grads['baseline' if head == 'baselines' else 'gain']) > 1e-6


def test_reinforce_advantage_is_a_constant():
  log_probs = jnp.array([[-1.0, -2.0, -0.5]])
  returns = jnp.array([[1.0, 1.0, 1.0]])
  baselines = jnp.array([[0.25, 0.5, 2.0]])
  d_log_probs, d_baselines = jax.grad(
      lambda lp, b: reinforce_loss(lp, returns, b).sum(), argnums=(0, 1))(log_probs, baselines)
  np.testing.assert_allclose(d_log_probs, -(returns - baselines))
  np.testing.assert_array_equal(d_baselines, 0.0)
  # The baseline's regression does not move the returns it is fitted to.
  d_returns = jax.grad(lambda g: baseline_loss(baselines, g).sum())(returns)
  np.testing.assert_array_equal(d_returns, 0.0)


def test_reinforce_time_average_divides_by_the_glimpses_drawn():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
  labels = jnp.array([0, 2])
  log_probs = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  baselines = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  mask = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0]], jnp.float32)
  _, summed = ram_loss(logits, labels, log_probs, baselines, step_mask=mask)
  _, averaged = ram_loss(logits, labels, log_probs, baselines, step_mask=mask,
                         reinforce_time_average=True)
  np.testing.assert_allclose(averaged['reinforce'], summed['reinforce'] / jnp.array([4.0, 2.0]),
                             rtol=1e-6)
  np.testing.assert_allclose(averaged['nll'], summed['nll'])


def test_location_mean_activations():
  x = jnp.array([-3.0, -0.5, 0.0, 0.5, 3.0])
  np.testing.assert_allclose(location_mean(x, 'tanh'), np.tanh(np.asarray(x)), rtol=1e-6)
  np.testing.assert_allclose(location_mean(x, 'hardtanh'), [-1.0, -0.5, 0.0, 0.5, 1.0])
  slope = jax.vmap(jax.grad(lambda v: location_mean(v, 'hardtanh')))(x)
  np.testing.assert_allclose(slope, [0.0, 1.0, 1.0, 1.0, 0.0])
  with pytest.raises(ValueError, match="got 'relu'"):
    location_mean(x, 'relu')
  with pytest.raises(ValueError, match="mean_activation.*'sigmoid'"):
    images, noise = _inputs()
    _model(mean_activation='sigmoid').init(jax.random.key(0), images, noise)
