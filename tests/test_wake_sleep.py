"""Wake-Sleep objectives on a toy model whose posterior is tractable.

Ten discrete actions, prior p(a) = softmax(theta), inference network q(a) = softmax(phi), fixed
likelihoods p(y | a). Then log p(y) = logsumexp(theta + log p(y|a)) - logsumexp(theta), its
gradient in theta is posterior - prior, and the wake-q target E_posterior[grad_phi log q] is
posterior - q. Gradients are taken with jax.grad through log-probabilities of sampled (constant)
actions, as the model does; Monte-Carlo tolerances are 5 standard errors of the draws.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax.objectives import wake_sleep

NUM_ACTIONS = 10
NUM_SE = 5.0
_rng = np.random.default_rng(0)
THETA = _rng.normal(size=NUM_ACTIONS).astype(np.float32)
PHI = _rng.normal(size=NUM_ACTIONS).astype(np.float32)
LOG_LIKELIHOOD = np.log(_rng.uniform(0.02, 0.98, size=NUM_ACTIONS)).astype(np.float32)


def _softmax(x):
  e = np.exp(np.asarray(x, np.float64) - np.max(x))
  return e / e.sum()


PRIOR, Q = _softmax(THETA), _softmax(PHI)
JOINT = PRIOR * np.exp(LOG_LIKELIHOOD.astype(np.float64))
LOG_PY = np.log(JOINT.sum())
POSTERIOR = JOINT / JOINT.sum()


def _draws(variants, k, num_draws, seed, proposal='prior', temperature=1.0):
  """Estimates from `num_draws` independent sets of k actions, shared by all variants.

  Args:
    variants: {name: fn(log_likelihood, log_prior, log_q, log_proposal) -> (loss, metrics)}, on
      [k] vectors; log_proposal is the log density of the distribution that drew the actions.
    proposal: 'prior' or 'q', the distribution the actions are drawn from, tempered:
      softmax(logits / temperature).

  Returns:
    {name: (estimate of grad_theta [N, A], estimate of grad_phi [N, A], metrics)} in float64,
    estimates being minus the surrogate's gradient.
  """
  logits = jnp.asarray(THETA if proposal == 'prior' else PHI) / temperature

  def one_set(key):
    actions = jax.random.categorical(key, logits, shape=(k,))  # [k]

    def surrogate(theta, phi, fn):
      log_prior = jax.nn.log_softmax(theta)[actions]  # [k]
      log_q = jax.nn.log_softmax(phi)[actions]  # [k]
      log_proposal = jax.nn.log_softmax(logits)[actions]  # [k], constant
      return fn(jnp.asarray(LOG_LIKELIHOOD)[actions], log_prior, log_q, log_proposal)

    out = {}
    for name, fn in variants.items():
      (g_theta, g_phi), metrics = jax.grad(lambda t, p: surrogate(t, p, fn), argnums=(0, 1),
                                           has_aux=True)(jnp.asarray(THETA), jnp.asarray(PHI))
      out[name] = (-g_theta, -g_phi, metrics)
    return out

  keys = jax.random.split(jax.random.key(seed), num_draws)
  out = jax.jit(lambda ks: jax.lax.map(one_set, ks, batch_size=10_000))(keys)
  return jax.tree.map(lambda x: np.asarray(x, np.float64), out)


def _standard_error(draws):
  return draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])


def _assert_mean_close(draws, expected):
  """Each coordinate's sample mean is within NUM_SE standard errors of `expected`."""
  error = np.abs(draws.mean(axis=0) - expected)
  np.testing.assert_array_less(error, NUM_SE * _standard_error(draws) + 1e-7)


def _total_variance(draws):
  return draws.var(axis=0, ddof=1).sum()


def _ws(control_variates, with_q):
  return lambda ll, lp, lq, lr: wake_sleep.wake_sleep_loss(
      ll, lp, lr, log_q=lq if with_q else None, control_variates=control_variates)


def test_surrogate_gradients_are_the_papers_weights():
  rng = np.random.default_rng(1)
  ll, lp, lq = (jnp.asarray(rng.normal(size=6), jnp.float32) for _ in range(3))
  k = 6
  w = _softmax(ll + lp - lq)
  v = _softmax(lp - lq)

  def grads(fn, *args):
    return [np.asarray(g) for g in jax.grad(lambda *a: fn(*a)[0], argnums=tuple(
        range(len(args))))(*args)]

  # q proposes: log r = log q; only log_q carries q's gradient.
  ws = lambda ll, lp, lq, **kw: wake_sleep.wake_sleep_loss(ll, lp, lq, log_q=lq, **kw)
  d_ll, d_lp, d_lq = grads(ws, ll, lp, lq)
  np.testing.assert_allclose(d_ll, -w, atol=1e-6)
  np.testing.assert_allclose(d_lp, -(w - v), atol=1e-6)
  np.testing.assert_allclose(d_lq, -(w - 1 / k), atol=1e-6)
  plain = grads(lambda *a: ws(*a, control_variates=False), ll, lp, lq)
  for g in plain:
    np.testing.assert_allclose(g, -w, atol=1e-6)
  # A tempered q proposes: log r != log q, and q's control variate is softmax(log q - log r).
  lr = jnp.asarray(rng.normal(size=6), jnp.float32)
  d_ll, d_lp, d_lq = grads(
      lambda ll, lp, lq: wake_sleep.wake_sleep_loss(ll, lp, lr, log_q=lq), ll, lp, lq)
  w = _softmax(ll + lp - lr)
  np.testing.assert_allclose(d_ll, -w, atol=1e-6)
  np.testing.assert_allclose(d_lp, -(w - _softmax(lp - lr)), atol=1e-6)
  np.testing.assert_allclose(d_lq, -(w - _softmax(lq - lr)), atol=1e-6)
  w = _softmax(ll + lp - lq)

  d_ll, d_lp = grads(lambda *a: wake_sleep.wake_sleep_loss(*a), ll, lp)
  np.testing.assert_allclose(d_ll, -_softmax(ll), atol=1e-6)
  np.testing.assert_allclose(d_lp, -(_softmax(ll) - 1 / k), atol=1e-6)

  _, metrics = wake_sleep.wake_sleep_loss(ll, lp, lq)
  log_w = np.asarray(ll + lp - lq, np.float64)
  np.testing.assert_allclose(metrics['bound'], np.log(np.mean(np.exp(log_w))), rtol=1e-5)
  np.testing.assert_allclose(metrics['ess'], 1 / np.sum(w**2), rtol=1e-5)
  np.testing.assert_allclose(metrics['weights'], w, atol=1e-6)

  b = jnp.float32(0.3)
  d_ll, d_lp, d_b = grads(lambda *a: wake_sleep.var_loss(*a), ll, lp, b)
  np.testing.assert_allclose(d_ll, -np.full(k, 1 / k), atol=1e-6)
  np.testing.assert_allclose(d_lp, -(ll - b) / k, atol=1e-6)
  np.testing.assert_allclose(d_b, -2 * np.mean(ll - b), rtol=1e-5)  # regression only
  d_ll, d_lp, d_b = grads(lambda *a: wake_sleep.var_loss(*a, control_variate=False), ll, lp, b)
  np.testing.assert_allclose(d_lp, -ll / k, atol=1e-6)
  np.testing.assert_allclose(d_b, -2 * np.mean(ll - b), rtol=1e-5)


@pytest.mark.parametrize('proposal', ['prior', 'q'])
def test_control_variates_keep_the_expectation_and_cut_the_variance(proposal):
  # With the prior as proposal the prior term's control variate is 1/K (theta); with q it is the
  # wake-q update's 1/K (phi). Both leave the expectation exactly unchanged.
  with_q = proposal == 'q'
  out = _draws({'plain': _ws(False, with_q), 'cv': _ws(True, with_q)}, k=5, num_draws=200_000,
               seed=1, proposal=proposal)
  index = 1 if with_q else 0
  plain, cv = out['plain'][index], out['cv'][index]
  _assert_mean_close(plain - cv, np.zeros(NUM_ACTIONS))
  assert _total_variance(cv) < 0.75 * _total_variance(plain)


def test_tempered_q_proposal_keeps_the_control_variate_unbiased():
  # Samples from q tempered by T = 3: a plain 1/K control variate for q's update would have mean
  # E_{q_T}[grad log q] = q_T - q; the self-normalised one tends to E_q[grad log q] = 0.
  temperature = 3.0
  shift = _softmax(PHI / temperature) - Q  # the mean a 1/K control variate would add
  out = _draws({'plain': _ws(False, True), 'cv': _ws(True, True)}, k=20, num_draws=100_000,
               seed=5, proposal='q', temperature=temperature)
  cv_shift = out['plain'][1] - out['cv'][1]  # [N, A] the control variate's part of q's estimate
  assert np.linalg.norm(cv_shift.mean(axis=0)) < 0.1 * np.linalg.norm(shift)
  # q's estimate approaches its target, posterior - q, as with an untempered q at this K.
  assert np.linalg.norm(out['cv'][1].mean(axis=0) - (POSTERIOR - Q)) < 0.1 * np.linalg.norm(
      POSTERIOR - Q)


@pytest.mark.slow
def test_q_proposal_bias_shrinks_with_num_samples():
  distances = {'theta': [], 'phi': []}
  for k in (2, 5, 20):
    g_theta, g_phi, _ = _draws({'ws': _ws(True, True)}, k=k, num_draws=100_000, seed=2,
                               proposal='q')['ws']
    for name, draws, target in (('theta', g_theta, POSTERIOR - PRIOR),
                                ('phi', g_phi, POSTERIOR - Q)):
      distance = np.linalg.norm(draws.mean(axis=0) - target)
      distances[name].append((distance, np.linalg.norm(_standard_error(draws))))
  for name, rows in distances.items():
    for (far, far_se), (near, near_se) in zip(rows, rows[1:]):
      assert near + NUM_SE * near_se < far - NUM_SE * far_se, (name, rows)


def test_var_matches_the_closed_form_gradient():
  # grad_theta E_p[log p(y|a)] = p * (log p(y|a) - E_p[log p(y|a)]).
  mean_reward = PRIOR @ LOG_LIKELIHOOD
  target = PRIOR * (LOG_LIKELIHOOD - mean_reward)
  baseline = jnp.float32(mean_reward)
  variants = {
      name: (lambda ll, lp, lq, lr, cv=cv: wake_sleep.var_loss(ll, lp, baseline,
                                                               control_variate=cv))
      for name, cv in (('plain', False), ('cv', True))}
  out = _draws(variants, k=5, num_draws=200_000, seed=3)
  for name in variants:
    _assert_mean_close(out[name][0], target)
    np.testing.assert_array_equal(out[name][1], 0.0)
  assert _total_variance(out['cv'][0]) < 0.75 * _total_variance(out['plain'][0])


@pytest.mark.parametrize('proposal', ['prior', 'q'])
def test_importance_weighted_bound_approaches_log_marginal(proposal):
  with_q = proposal == 'q'
  gaps = []
  for k in (1, 5, 20):
    metrics = _draws({'ws': _ws(True, with_q)}, k=k, num_draws=50_000, seed=4,
                     proposal=proposal)['ws'][2]
    bound, ess = metrics['bound'], metrics['ess']
    se = _standard_error(bound)
    assert bound.mean() <= LOG_PY + NUM_SE * se
    gaps.append((LOG_PY - bound.mean(), se))
    assert ess.min() >= 1 - 1e-5 and ess.max() <= k + 1e-4
  for (far, far_se), (near, near_se) in zip(gaps, gaps[1:]):
    assert near + NUM_SE * near_se < far - NUM_SE * far_se, gaps
  if not with_q:  # K = 1 with the prior: the bound is E_p[log p(y|a)].
    assert abs(gaps[0][0] - (LOG_PY - PRIOR @ LOG_LIKELIHOOD)) < NUM_SE * gaps[0][1]


def test_exact_posterior_proposal_gives_equal_weights_and_the_exact_bound():
  actions = jnp.array([0, 3, 3, 7, 9])
  log_posterior = jnp.log(jnp.asarray(POSTERIOR, jnp.float32))[actions]
  _, metrics = wake_sleep.wake_sleep_loss(
      jnp.asarray(LOG_LIKELIHOOD)[actions], jax.nn.log_softmax(jnp.asarray(THETA))[actions],
      log_posterior)
  np.testing.assert_allclose(metrics['bound'], LOG_PY, atol=1e-5)
  np.testing.assert_allclose(metrics['ess'], 5.0, rtol=1e-5)
  np.testing.assert_allclose(metrics['weights'], np.full(5, 0.2), atol=1e-6)


@pytest.mark.parametrize('args,kwargs,match', [
    ((jnp.zeros(4), jnp.zeros(5)), {}, 'share one shape'),
    ((jnp.zeros((2, 4)), jnp.zeros((2, 4))), {}, 'log_likelihood must be a'),
    ((jnp.zeros(0), jnp.zeros(0)), {}, 'K >= 1'),
    ((jnp.zeros(4), jnp.zeros(4), jnp.zeros(3)), {}, 'share one shape'),
])
def test_wake_sleep_loss_rejects_bad_shapes(args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    wake_sleep.wake_sleep_loss(*args, **kwargs)


def test_var_loss_rejects_bad_shapes():
  with pytest.raises(ValueError, match='baseline must be a scalar'):
    wake_sleep.var_loss(jnp.zeros(4), jnp.zeros(4), jnp.zeros(4))
  with pytest.raises(ValueError, match='log_prior must be a'):
    wake_sleep.var_loss(jnp.zeros(4), jnp.zeros(()), jnp.zeros(()))
