"""Adaptive stopping and ACT: `objectives.stopping` against NumPy loops written from the equations,
RAM's gain and halting heads, and the stopping-curve plot."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax.plots import stopping_curves
from glimpse_jax.nets import RecurrentAttentionModel, RetinaSpec, draw_noise
from glimpse_jax.objectives import (act_outputs, act_weights, fixed_glimpse_errors, gain_loss,
                                    information_gains, ponder_cost, stop_steps, stopped_outputs,
                                    stopping_curve)

B, T, C = 6, 5, 4


def _arrays(seed=0):
  rng = np.random.default_rng(seed)
  return {
      'step_logits': jnp.asarray(2.0 * rng.normal(size=(B, T, C)), jnp.float32),
      'gains': jnp.asarray(rng.normal(size=(B, T)), jnp.float32),
      'labels': jnp.asarray(rng.integers(0, C, size=B), jnp.int32),
      'halting': jnp.asarray(rng.uniform(0.0, 0.6, size=(B, T)), jnp.float32),
      'mask': jnp.asarray([1, 1, 0, 1, 0, 1], jnp.float32),
  }


# NumPy references, one example and one step at a time.

def _softmax(logits):
  e = np.exp(logits - np.max(logits))
  return e / e.sum()


def _entropy(logits):
  return -sum(p * math.log(p) for p in _softmax(np.asarray(logits, float)) if p > 0)


def _gains_reference(step_logits, prior=None):
  step_logits = np.asarray(step_logits, float)
  out = np.zeros(step_logits.shape[:2])
  for b in range(step_logits.shape[0]):
    if prior is None:
      previous = math.log(step_logits.shape[2])
    else:
      previous = _entropy(prior if prior.ndim == 1 else prior[b])
    for t in range(step_logits.shape[1]):
      current = _entropy(step_logits[b, t])
      out[b, t] = previous - current
      previous = current
  return out


def _steps_reference(gains, threshold):
  gains = np.asarray(gains, float)
  steps = np.zeros(gains.shape[0], int)
  for b in range(gains.shape[0]):
    n = 1  # the first glimpse is always taken
    while n < gains.shape[1] and not gains[b, n] < threshold:
      n += 1
    steps[b] = n
  return steps


def _act_reference(halting, epsilon):
  halting = np.asarray(halting, float)
  weights = np.zeros_like(halting)
  steps, remainders = [], []
  for b in range(halting.shape[0]):
    total = 0.0
    for n in range(halting.shape[1]):
      if n == halting.shape[1] - 1 or total + halting[b, n] >= 1.0 - epsilon:
        weights[b, n] = 1.0 - total
        steps.append(n + 1)
        remainders.append(1.0 - total)
        break
      weights[b, n] = halting[b, n]
      total += halting[b, n]
  return weights, np.array(steps), np.array(remainders)


def _error_reference(logits_per_example, labels, mask):
  wrong = [float(np.argmax(l) != y) for l, y in zip(logits_per_example, np.asarray(labels))]
  m = np.ones(len(wrong)) if mask is None else np.asarray(mask, float)
  return sum(w * k for w, k in zip(wrong, m)) / sum(m)


# objectives.stopping

@pytest.mark.parametrize('prior', [None, 'shared', 'per_example'])
def test_information_gains_are_entropy_decreases(prior):
  a = _arrays()
  rng = np.random.default_rng(3)
  prior_logits = {None: None, 'shared': rng.normal(size=C),
                  'per_example': rng.normal(size=(B, C))}[prior]
  got = information_gains(a['step_logits'],
                          None if prior_logits is None else jnp.asarray(prior_logits, jnp.float32))
  np.testing.assert_allclose(got, _gains_reference(a['step_logits'], prior_logits), rtol=1e-5,
                             atol=1e-5)
  # Targets: no gradient reaches the classifier.
  grad = jax.grad(lambda l: jnp.sum(information_gains(l)))(a['step_logits'])
  np.testing.assert_array_equal(grad, 0.0)


def test_gain_loss_is_the_masked_mean_squared_error():
  a = _arrays()
  targets = information_gains(a['step_logits'])
  predicted, target = np.asarray(a['gains'], float), np.asarray(targets, float)
  step_mask = jnp.asarray(np.random.default_rng(1).uniform(size=(B, T)) < 0.6, jnp.float32)
  step_mask = step_mask.at[0].set(0.0)  # an example with no step: loss 0
  for mask in (None, step_mask):
    m = np.ones((B, T)) if mask is None else np.asarray(mask)
    expected = []
    for b in range(B):
      total = sum(m[b, t] * (predicted[b, t] - target[b, t]) ** 2 for t in range(T))
      expected.append(total / m[b].sum() if m[b].sum() else 0.0)
    np.testing.assert_allclose(gain_loss(a['gains'], targets, mask), expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize('threshold', [-0.5, 0.0, 0.3, 1.0])
def test_stop_steps_and_stopped_outputs_match_a_loop(threshold):
  a = _arrays()
  steps = stop_steps(a['gains'], threshold)
  expected = _steps_reference(a['gains'], threshold)
  np.testing.assert_array_equal(steps, expected)
  assert steps.dtype == jnp.int32
  logits = stopped_outputs(a['step_logits'], steps)
  for b in range(B):
    np.testing.assert_array_equal(logits[b], a['step_logits'][b, expected[b] - 1])


def test_stopping_thresholds_at_the_extremes():
  gains = _arrays()['gains']
  for above in (float(jnp.max(gains)) + 1.0, math.inf):  # every gain below: one glimpse
    np.testing.assert_array_equal(stop_steps(gains, above), np.ones(B))
  for below in (float(jnp.min(gains)) - 1.0, -math.inf):  # no gain below: all T glimpses
    np.testing.assert_array_equal(stop_steps(gains, below), np.full(B, T))
  # The first glimpse's gain is never consulted; a gain equal to the threshold is taken.
  flat = jnp.zeros((2, T)).at[0, 0].set(-9.0)
  np.testing.assert_array_equal(stop_steps(flat, 0.0), [T, T])
  np.testing.assert_array_equal(stop_steps(gains[:, :1], math.inf), np.ones(B))  # T = 1


def test_act_weights_match_graves_equations():
  a = _arrays()
  halting = a['halting'].at[0].set(jnp.array([0.5, 0.495, 0.3, 0.1, 0.1]))  # reaches 0.995 at 2
  for epsilon in (0.01, 0.3):
    weights, steps, remainder = act_weights(halting, epsilon)
    w_ref, n_ref, r_ref = _act_reference(halting, epsilon)
    np.testing.assert_allclose(weights, w_ref, atol=1e-6)
    np.testing.assert_array_equal(steps, n_ref)
    np.testing.assert_allclose(remainder, r_ref, atol=1e-6)
    np.testing.assert_allclose(jnp.sum(weights, -1), 1.0, atol=1e-6)
  assert int(act_weights(halting)[1][0]) == 2


def test_act_halting_all_one_or_all_zero():
  weights, steps, remainder = act_weights(jnp.ones((3, T)))
  np.testing.assert_array_equal(steps, 1)
  np.testing.assert_allclose(remainder, 1.0)
  np.testing.assert_allclose(weights, np.eye(T)[[0, 0, 0]])
  weights, steps, remainder = act_weights(jnp.zeros((3, T)))
  np.testing.assert_array_equal(steps, T)
  np.testing.assert_allclose(remainder, 1.0)
  np.testing.assert_allclose(weights, np.eye(T)[[T - 1] * 3])


@pytest.mark.slow
def test_act_outputs_mix_class_probabilities():
  a = _arrays()
  weights, _, _ = act_weights(a['halting'])
  got = act_outputs(a['step_logits'], weights)
  w, logits = np.asarray(weights, float), np.asarray(a['step_logits'], float)
  for b in range(B):
    mixture = sum(w[b, t] * _softmax(logits[b, t]) for t in range(T))
    np.testing.assert_allclose(got[b], np.log(mixture), rtol=1e-5, atol=1e-5)
  # Zero weights (steps after N) keep the gradient finite.
  grad = jax.jit(jax.grad(lambda h: jnp.sum(act_outputs(a['step_logits'], act_weights(h)[0]))))(
      a['halting'])
  assert np.isfinite(grad).all()


def test_ponder_cost_is_n_plus_r_with_gradient_minus_one_before_n():
  a = _arrays()
  halting = a['halting'].at[1].set(1.0)
  _, n_ref, r_ref = _act_reference(halting, 0.01)
  np.testing.assert_allclose(ponder_cost(*act_weights(halting)[1:]), n_ref + r_ref, rtol=1e-6)
  grad = jax.grad(lambda h: jnp.sum(ponder_cost(*act_weights(h)[1:])))(halting)
  # R = 1 - sum_{t<N} h_t: -1 for each halting probability summed into the remainder, 0 after.
  expected = np.array([[-1.0 if t < n - 1 else 0.0 for t in range(T)] for n in n_ref])
  np.testing.assert_array_equal(grad, expected)
  assert (n_ref > 1).any() and n_ref[1] == 1


def test_stopping_curve_and_fixed_glimpse_errors_match_loops():
  a = _arrays()
  thresholds = jnp.array([-math.inf, -0.5, 0.0, 0.4, math.inf])
  for mask in (None, a['mask']):
    glimpses, errors = jax.jit(stopping_curve)(a['step_logits'], a['gains'], a['labels'],
                                               thresholds, mask)
    assert glimpses.shape == errors.shape == (5,)
    m = np.ones(B) if mask is None else np.asarray(mask)
    for k, threshold in enumerate(np.asarray(thresholds)):
      steps = _steps_reference(a['gains'], threshold)
      np.testing.assert_allclose(glimpses[k], np.sum(m * steps) / m.sum(), rtol=1e-6)
      stopped = [np.asarray(a['step_logits'])[b, steps[b] - 1] for b in range(B)]
      np.testing.assert_allclose(errors[k], _error_reference(stopped, a['labels'], mask),
                                 rtol=1e-6)
    fixed = jax.jit(fixed_glimpse_errors)(a['step_logits'], a['labels'], mask)
    for t in range(T):
      np.testing.assert_allclose(
          fixed[t], _error_reference(np.asarray(a['step_logits'][:, t]), a['labels'], mask),
          rtol=1e-6)
    # The extremes of the sweep are one glimpse and all T.
    np.testing.assert_allclose(np.asarray(errors)[[0, -1]], np.asarray(fixed)[[-1, 0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(glimpses)[[0, -1]], [T, 1])


def test_out_of_range_steps_fail_or_give_nan():
  a = _arrays()
  with pytest.raises(ValueError, match='steps must be in 1..5'):
    stopped_outputs(a['step_logits'], jnp.zeros(B, jnp.int32))
  traced = jax.jit(stopped_outputs)(a['step_logits'], jnp.full(B, T + 1, jnp.int32))
  assert np.isnan(traced).all()


@pytest.mark.parametrize('call,message', [
    (lambda a: stop_steps(a['gains'], math.nan), 'threshold must not be NaN'),
    (lambda a: stop_steps(a['gains'], jnp.zeros(B)), 'threshold must be a scalar'),
    (lambda a: stopping_curve(a['step_logits'], a['gains'], a['labels'],
                              jnp.array([0.0, math.nan])), 'threshold must not be NaN'),
    (lambda a: act_weights(a['halting'], 0.0), r'epsilon must be in \(0, 1\), got 0.0'),
    (lambda a: act_weights(a['halting'], 1.0), r'epsilon must be in \(0, 1\), got 1.0'),
    (lambda a: act_weights(a['halting'], -0.1), 'epsilon'),
    (lambda a: act_weights(a['halting'], math.nan), 'epsilon'),
    (lambda a: gain_loss(a['gains'], a['gains'][:, :3]), r'targets must have shape \[6, 5\]'),
    (lambda a: gain_loss(a['gains'], a['gains'], a['mask']), 'mask'),
    (lambda a: act_outputs(a['step_logits'], a['halting'][:4]), 'weights'),
    (lambda a: stopped_outputs(a['step_logits'], jnp.ones(3, jnp.int32)), 'steps'),
    (lambda a: stopping_curve(a['step_logits'], a['gains'][:, :2], a['labels'],
                              jnp.zeros(2)), 'predicted_gains'),
    (lambda a: stopping_curve(a['step_logits'], a['gains'], a['labels'][:2], jnp.zeros(2)),
     'labels'),
    (lambda a: fixed_glimpse_errors(a['step_logits'], a['labels'], a['mask'][:2]), 'mask'),
    (lambda a: information_gains(a['step_logits'], jnp.zeros(C + 1)), 'prior_logits'),
    (lambda a: information_gains(a['step_logits'][0]), 'step_logits'),
    (lambda a: ponder_cost(jnp.ones(3, jnp.int32), jnp.ones(4)), 'steps'),
])
def test_bad_inputs_fail_naming_them(call, message):
  with pytest.raises(ValueError, match=message):
    call(_arrays())


# RAM's heads

def _model(**kwargs):
  fields = dict(retina=RetinaSpec(size=4, num_scales=2), core_features=12, glimpse_features=10,
                what_features=6, where_features=4, location_std=0.3, num_classes=C,
                classify_every_step=True)
  fields.update(kwargs)
  return RecurrentAttentionModel(**fields)


def _inputs():
  images = jax.random.uniform(jax.random.key(1), (B, 16, 16, 1))
  return images, draw_noise(jax.random.key(2), (T, B))


def _fit(model, params, images, noise):
  """The gain head's loss and the model's outputs."""
  out = model.apply(params, images, noise)
  targets = information_gains(out.step_logits)  # [B, T]
  return jnp.mean(gain_loss(out.gains, targets)), out


def _ponder(model, params, images, noise):
  _, steps, remainder = act_weights(model.apply(params, images, noise).halting)
  return jnp.mean(ponder_cost(steps, remainder))


def _evaluate(model, images, noise):
  """params -> (gain loss, outputs, its gradient, the ponder cost's gradient), jitted."""
  def evaluate(params):
    (fit, out), grad_fit = jax.value_and_grad(
        lambda p: _fit(model, p, images, noise), has_aux=True)(params)
    grad_ponder = jax.grad(lambda p: _ponder(model, p, images, noise))(params)
    return fit, out, grad_fit, grad_ponder
  return jax.jit(evaluate)


@pytest.fixture(scope='module')
def heads():
  """A RAM with both heads, its parameters, inputs and jitted `_evaluate`."""
  images, noise = _inputs()
  model = _model(predict_gain=True, act=True)
  params = jax.jit(model.init)(jax.random.key(0), images, noise)
  return model, params, images, noise, _evaluate(model, images, noise)


@pytest.mark.slow
def test_ram_heads_shapes_and_absence(heads):
  model, params, images, noise, evaluate = heads
  _, out, _, _ = evaluate(params)
  assert out.gains.shape == out.halting.shape == (B, T)
  assert ((out.halting > 0) & (out.halting < 1)).all()
  # The gain of the first glimpse is read from the initial state, the same for every image.
  np.testing.assert_allclose(out.gains[:, 0], out.gains[0, 0], rtol=1e-6)
  head = params['params']['halting']
  np.testing.assert_allclose(
      out.halting, jax.nn.sigmoid(out.hidden @ head['kernel'][:, 0] + head['bias'][0]), rtol=1e-5)
  plain = model.clone(predict_gain=False, act=False)
  assert not {'gain', 'halting'} & set(
      jax.eval_shape(plain.init, jax.random.key(0), images, noise)['params'])
  plain_out = jax.jit(plain.apply)(params, images, noise)  # the heads' parameters go unused
  assert plain_out.gains is None and plain_out.halting is None
  # The heads change none of the other outputs.
  for name in ('logits', 'step_logits', 'locations', 'hidden', 'baselines'):
    np.testing.assert_allclose(getattr(out, name), getattr(plain_out, name), rtol=1e-6,
                               err_msg=name)


def test_ram_heads_under_the_fused_rollout_match_the_scanned_one(heads):
  model, params, images, noise, evaluate = heads
  fused = model.clone(fused=True)

  def objective(p):
    fit, out = _fit(fused, p, images, noise)
    return fit + _ponder(fused, p, images, noise), out

  grads_f, out_f = jax.jit(jax.grad(objective, has_aux=True))(params)
  _, out_s, grad_fit, grad_ponder = evaluate(params)
  grads_s = jax.tree.map(jnp.add, grad_fit, grad_ponder)
  for name in ('gains', 'halting'):
    np.testing.assert_allclose(getattr(out_f, name), getattr(out_s, name), rtol=1e-5, atol=1e-6,
                               err_msg=name)
  for (path, g_f), g_s in zip(jax.tree.leaves_with_path(grads_f), jax.tree.leaves(grads_s)):
    np.testing.assert_allclose(g_f, g_s, rtol=2e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_gain_head_alone_learns_while_the_halting_unit_trains_the_core(heads):
  _, params, _, _, evaluate = heads
  loss, _, grads, grad_ponder = evaluate(params)
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grads['params']['gain']))
  for name, subtree in grads['params'].items():
    if name != 'gain':  # no gradient leaves the head: not into the core, not into the targets
      assert all(np.abs(g).max() == 0 for g in jax.tree.leaves(subtree)), name
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grad_ponder['params']['step']))

  losses = [float(loss)]
  for _ in range(5):
    params = jax.tree.map(lambda w, g: w - 0.5 * g, params, grads)
    loss, _, grads, _ = evaluate(params)
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0], losses


# The plot

def test_stopping_curves_are_saved(tmp_path):
  path = tmp_path / 'stopping.png'
  curves = {
      'adaptive': ([1.0, 2.4, 3.1, 5.0], [0.4, 0.2, 0.15, 0.12]),
      'fixed T': (np.arange(1, 6), [0.5, 0.3, 0.2, 0.15, 0.12]),
      'ACT tau=0.01': ([2.2], [0.18]),
  }
  stopping_curves.plot_stopping_curves(curves, str(path), kinds={'adaptive': 'adaptive'})
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert [stopping_curves._kind(k, {}) for k in curves] == ['adaptive', 'fixed', 'act']
  with pytest.raises(ValueError, match="kind of 'adaptive'"):
    stopping_curves.plot_stopping_curves(curves, str(path), kinds={'adaptive': 'line'})
  with pytest.raises(ValueError, match="curve 'bad'"):
    stopping_curves.plot_stopping_curves({'bad': ([1.0, 2.0], [0.1])}, str(path))
