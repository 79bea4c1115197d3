"""Importance-weighted objectives for stochastic attention (Ba, Grosse, Salakhutdinov, Frey 2015).

Shape contract: every function sees ONE example's K sampled action sequences a_1..a_K and takes
  log_likelihood [K]  log p(y | a_k, x),
  log_prior      [K]  log p(a_k | x), summed over glimpses,
  log_proposal   [K]  log q(a_k | x, y), only when the inference network q proposed the samples,
computed from stop_gradient actions. It returns a scalar surrogate loss, whose gradient with
respect to the parameters behind those log-probabilities is minus the paper's estimator, and a dict
of diagnostics. Callers vmap over the batch and average.

Importance weights: log w_k = log p(y | a_k, x) + log p(a_k | x) - log r(a_k) for the proposal r,
normalised weights w~ = softmax(log w). All weights are constants of the surrogates.
"""

import math

import chex
import jax
import jax.numpy as jnp


def _num_samples(**arrays: jax.Array) -> int:
  """Checks that the named arrays are [K] vectors of one length K >= 1 and returns K."""
  shapes = {name: jnp.shape(value) for name, value in arrays.items()}
  for name, shape in shapes.items():
    if len(shape) != 1 or shape[0] < 1:
      raise ValueError(f'{name} must be a [K] vector with K >= 1, got shape {shape}')
  if len(set(shapes.values())) != 1:
    raise ValueError(f'sample vectors must share one shape [K], got {shapes}')
  chex.assert_type(list(arrays.values()), float)
  return next(iter(shapes.values()))[0]


def importance_diagnostics(log_weights: jax.Array) -> dict[str, jax.Array]:
  """The importance-weighted bound, effective sample size and normalised weights: [K] -> dict.

  Returns:
    `bound` [] = log (1/K) sum_k w_k (eq. 9; <= log p(y | x) in expectation),
    `ess` [] = 1 / sum_k w~_k^2, in [1, K],
    `weights` [K] = w~.
  """
  k = _num_samples(log_weights=log_weights)
  log_weights = jax.lax.stop_gradient(log_weights)
  weights = jax.nn.softmax(log_weights)  # [K]
  return {
      'bound': jax.nn.logsumexp(log_weights) - math.log(k),
      'ess': 1.0 / jnp.sum(weights**2),
      'weights': weights,
  }


def var_loss(log_likelihood: jax.Array, log_prior: jax.Array, baseline: jax.Array, *,
             control_variate: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """VAR (Ba, Mnih, Kavukcuoglu 2015): maximise E_p(a|x)[log p(y | a, x)], samples from the prior.

  The policy part of the surrogate has gradient
    -(1/K) sum_k [grad log p(y | a_k, x) + (log p(y | a_k, x) - b) grad log p(a_k | x)];
  the learned baseline b gets gradient only from its own regression loss
  (1/K) sum_k (log p(y | a_k, x) - b)^2, which is added to the surrogate.

  Args:
    log_likelihood: [K] log p(y | a_k, x).
    log_prior: [K] log p(a_k | x).
    baseline: [] b(x), the input-dependent baseline.
    control_variate: subtract b from the reward; with False the policy term uses b = 0 (b is
      still regressed, so its loss stays comparable across runs).

  Returns:
    The surrogate scalar and diagnostics: `objective` (mean log-likelihood), `baseline_loss`,
    and `importance_diagnostics` of the prior-proposal weights w_k = p(y | a_k, x).
  """
  _num_samples(log_likelihood=log_likelihood, log_prior=log_prior)
  if jnp.shape(baseline) != ():
    raise ValueError(f'baseline must be a scalar per example, got shape {jnp.shape(baseline)}')
  reward = jax.lax.stop_gradient(log_likelihood)  # [K]
  offset = jax.lax.stop_gradient(baseline) if control_variate else 0.0
  policy_loss = -jnp.mean(log_likelihood + (reward - offset) * log_prior)
  baseline_loss = jnp.mean((reward - baseline)**2)
  metrics = importance_diagnostics(log_likelihood)
  metrics.update(objective=jnp.mean(reward), baseline_loss=baseline_loss)
  return policy_loss + baseline_loss, metrics


def wake_sleep_loss(log_likelihood: jax.Array, log_prior: jax.Array,
                    log_proposal: jax.Array | None = None, *, log_q: jax.Array | None = None,
                    control_variates: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """WS-RAM: the prediction network's eq. 8 update and, with an inference network q, eq. 14.

  The samples a_k come from a proposal r: the prior, q, or either tempered (sec. 4.5).
  Prediction network (classifier and prior policy), eq. 8, with the prior term's control variate:
    -sum_k [w~_k grad log p(y | a_k, x) + (w~_k - v~_k) grad log p(a_k | x)],
  where v~ = softmax(log p(a_k | x) - log r(a_k)) are the self-normalised weights of the prior
  itself (eqs. 15-19, our reading): a self-normalised estimate of E_p[grad log p] = 0. With the
  prior as proposal v~_k = 1/K and the expectation is unchanged; with another proposal it moves
  by the O(1/K) self-normalisation bias the paper accepts.
  Inference network, eq. 14, with the same kind of control variate:
    -sum_k (w~_k - u~_k) grad log q(a_k | x, y),  u~ = softmax(log q(a_k | x, y) - log r(a_k)).
  With q itself as proposal u~_k = 1/K, the paper's; under a tempered q a plain 1/K would not
  have mean zero (E_{q_T}[grad log q] != 0) and would bias q's update.

  Args:
    log_likelihood: [K] log p(y | a_k, x).
    log_prior: [K] log p(a_k | x).
    log_proposal: [K] log r(a_k) of the density that drew the samples (a constant: q learns
      through `log_q` only); None when the untempered prior drew them.
    log_q: [K] log q(a_k | x, y) of the inference network to train; None: no eq. 14 term.
    control_variates: subtract v~ and u~ as above; with False the weights are plain w~.

  Returns:
    The surrogate scalar and `importance_diagnostics` of log w (`bound`, `ess`, `weights`).
  """
  vectors = dict(log_likelihood=log_likelihood, log_prior=log_prior)
  if log_proposal is not None:
    vectors['log_proposal'] = log_proposal
  if log_q is not None:
    vectors['log_q'] = log_q
  k = _num_samples(**vectors)
  if log_proposal is None:
    log_proposal = jax.lax.stop_gradient(log_prior)  # [K]; the prior cancels in log w
  log_proposal = jax.lax.stop_gradient(log_proposal)
  self_normalised = lambda log_density: jax.nn.softmax(
      jax.lax.stop_gradient(log_density) - log_proposal)  # [K]
  metrics = importance_diagnostics(log_likelihood + log_prior - log_proposal)
  weights = metrics['weights']  # [K] w~, constant
  prior_term = weights - self_normalised(log_prior) if control_variates else weights  # [K]
  loss = -jnp.sum(weights * log_likelihood) - jnp.sum(prior_term * log_prior)
  if log_q is not None:
    proposal_term = weights - self_normalised(log_q) if control_variates else weights  # [K]
    loss = loss - jnp.sum(proposal_term * log_q)
  return loss, metrics


METHODS = ('var', 'ws', 'ws_q')


def method_surrogate(method: str, log_likelihood: jax.Array, log_prior: jax.Array,
                     log_proposal: jax.Array | None = None, log_q: jax.Array | None = None,
                     baseline: jax.Array | None = None, *, control_variates: bool = True
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Per-example surrogates [B] of a batch for one of `METHODS`, and per-example diagnostics.

  Every array is [B, K] (`baseline` [B]): K samples per example, summed over their glimpses.
    'var':  `var_loss` (samples from the prior; needs `baseline`);
    'ws':   `wake_sleep_loss` without q, samples from the prior or, with `log_proposal`, from
            the tempered prior that density describes;
    'ws_q': `wake_sleep_loss` with q (`log_q`) trained by eq. 14, samples from the (tempered) q
            whose density is `log_proposal`.
  """
  if method not in METHODS:
    raise ValueError(f'method must be one of {METHODS}, got {method!r}')
  if method == 'var':
    if baseline is None:
      raise ValueError("method 'var' needs a baseline")
    fn = lambda ll, lp, b: var_loss(ll, lp, b, control_variate=control_variates)
    return jax.vmap(fn)(log_likelihood, log_prior, baseline)
  if method == 'ws_q' and (log_q is None or log_proposal is None):
    raise ValueError("method 'ws_q' needs log_q and the log_proposal of the q that drew samples")
  if method == 'ws':
    log_q = None
  fn = lambda ll, lp, r, q: wake_sleep_loss(ll, lp, r, log_q=q, control_variates=control_variates)
  return jax.vmap(fn)(log_likelihood, log_prior, log_proposal, log_q)
