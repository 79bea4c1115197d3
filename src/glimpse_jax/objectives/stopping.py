"""When to stop glimpsing: adaptive stopping on predicted information gains (Harvey, Teng & Wood,
"Near-optimal glimpse sequences for improved hard attention neural network training") and adaptive
computation time (Graves 2016, "Adaptive Computation Time for Recurrent Neural Networks").

Per-example layout as in `objectives.ram`: `step_logits [B, T, C]` are the class logits after
glimpse t = 1..T (the models' outputs are batch first); `steps [B]` count the
glimpses taken, 1..T.

- Information gain of glimpse t: H_{t-1} - H_t, H_t the entropy of the classifier's posterior after
  t glimpses and H_0 that of the prior. A head reading the state before glimpse t regresses it;
  adaptive stopping stops before the first glimpse whose predicted gain is below a threshold, and
  sweeping the threshold trades glimpses for error.
- ACT: halting probabilities h_t after glimpse t give N = min{n : sum_{t<=n} h_t >= 1 - epsilon}
  (at most T), the remainder R = 1 - sum_{t<N} h_t and weights p_t = h_t for t < N, R at N, 0
  after (Graves eq. 7-10). The output mixes the class probabilities with these weights, and the
  ponder cost is N + R.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np


def _check_shape(name: str, array: jax.Array, shape: tuple[int | None, ...]) -> None:
  """Raises ValueError unless `array` has `shape` (None matches any size)."""
  if len(array.shape) != len(shape) or any(
      want is not None and got != want for got, want in zip(array.shape, shape)):
    expected = ', '.join('_' if s is None else str(s) for s in shape)
    raise ValueError(f'{name} must have shape [{expected}], got {array.shape}')


def _check_step_logits(step_logits: jax.Array) -> tuple[int, int, int]:
  """(B, T, C) of `step_logits`, which must be float [B, T, C] with T >= 1 and C >= 2."""
  _check_shape('step_logits', step_logits, (None, None, None))
  batch, num_steps, num_classes = step_logits.shape
  if num_steps < 1 or num_classes < 2:
    raise ValueError(f'step_logits must be [B, T, C] with T >= 1 and C >= 2, got shape '
                     f'{step_logits.shape}')
  if not jnp.issubdtype(step_logits.dtype, jnp.floating):
    raise ValueError(f'step_logits must be float, got {step_logits.dtype}')
  return batch, num_steps, num_classes


def _check_thresholds(thresholds) -> None:
  """Raises ValueError for a NaN threshold (a traced one is the caller's to check)."""
  if isinstance(thresholds, jax.core.Tracer):
    return
  values = np.asarray(thresholds, float)
  if np.isnan(values).any():
    raise ValueError(f'threshold must not be NaN, got {values}')


def _weighted_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Mean of `values` [B, ...] over the batch, weighted by `mask` [B] (all ones when None)."""
  if mask is None:
    return jnp.mean(values, 0)
  _check_shape('mask', mask, values.shape[:1])
  weights = mask.astype(values.dtype).reshape(-1, *[1] * (values.ndim - 1))
  return jnp.sum(weights * values, 0) / jnp.maximum(jnp.sum(weights), 1.0)


def posterior_entropy(logits: jax.Array) -> jax.Array:
  """Entropy (nats) of softmax(logits): [..., C] -> [...]."""
  log_p = jax.nn.log_softmax(logits, -1)
  return -jnp.sum(jnp.exp(log_p) * log_p, -1)


def information_gains(step_logits: jax.Array, prior_logits: jax.Array | None = None) -> jax.Array:
  """H_{t-1} - H_t for t = 1..T, with no gradient (regression targets): [B, T, C] -> [B, T].

  Args:
    step_logits: [B, T, C] class logits after every glimpse.
    prior_logits: [C] or [B, C] logits of the posterior before any glimpse, whose entropy is H_0;
      None: the uniform distribution, H_0 = log C.
  """
  batch, _, num_classes = _check_step_logits(step_logits)
  if prior_logits is None:
    prior_entropy = jnp.full((batch,), math.log(num_classes), step_logits.dtype)
  elif prior_logits.shape in ((num_classes,), (batch, num_classes)):
    prior_entropy = jnp.broadcast_to(posterior_entropy(prior_logits), (batch,))
  else:
    raise ValueError(f'prior_logits must be [{num_classes}] or [{batch}, {num_classes}], got '
                     f'shape {prior_logits.shape}')
  entropy = jnp.concatenate([prior_entropy[:, None], posterior_entropy(step_logits)], 1)  # [B, T+1]
  return jax.lax.stop_gradient(entropy[:, :-1] - entropy[:, 1:])


def gain_loss(predicted: jax.Array, targets: jax.Array,
              mask: jax.Array | None = None) -> jax.Array:
  """Mean over the masked steps of (predicted_t - target_t)^2: [B, T], [B, T] -> [B] (0 with no
  step). The targets are constants."""
  _check_shape('predicted', predicted, (None, None))
  _check_shape('targets', targets, predicted.shape)
  taken = jnp.ones_like(predicted) if mask is None else mask.astype(predicted.dtype)
  _check_shape('mask', taken, predicted.shape)
  squared = (predicted - jax.lax.stop_gradient(targets)) ** 2
  return jnp.sum(taken * squared, -1) / jnp.maximum(jnp.sum(taken, -1), 1.0)


def stop_steps(predicted_gains: jax.Array, threshold) -> jax.Array:
  """Glimpses taken [B] int32 when stopping before the first glimpse whose predicted gain is below
  `threshold` (a gain equal to it is taken).

  The first glimpse is always taken (its gain, predicted from the initial state before any glimpse,
  is not consulted), so the count is in 1..T: T when no later gain falls below the threshold.

  Args:
    predicted_gains: [B, T], entry t the predicted gain of glimpse t + 1 from the state before it.
    threshold: a scalar, not NaN.
  """
  _check_shape('predicted_gains', predicted_gains, (None, None))
  if jnp.ndim(threshold) != 0:
    raise ValueError(f'threshold must be a scalar, got shape {jnp.shape(threshold)}')
  _check_thresholds(threshold)
  batch, num_steps = predicted_gains.shape
  if num_steps < 1:
    raise ValueError(f'predicted_gains must have T >= 1 steps, got shape {predicted_gains.shape}')
  if num_steps == 1:
    return jnp.ones((batch,), jnp.int32)
  below = predicted_gains[:, 1:] < threshold  # [B, T - 1]: stop before glimpse t + 2
  first = jnp.argmax(below, -1) + 1  # [B] glimpses taken when some gain is below
  return jnp.where(jnp.any(below, -1), first, num_steps).astype(jnp.int32)


def stopped_outputs(step_logits: jax.Array, steps: jax.Array) -> jax.Array:
  """The logits after the last glimpse taken: [B, T, C], [B] -> [B, C].

  `steps` [B] are in 1..T; a count outside raises, or gives NaN logits where it is traced.
  """
  batch, num_steps, _ = _check_step_logits(step_logits)
  _check_shape('steps', steps, (batch,))
  if not isinstance(steps, jax.core.Tracer):
    values = np.asarray(steps)
    if values.size and (values.min() < 1 or values.max() > num_steps):
      raise ValueError(f'steps must be in 1..{num_steps}, got {values}')
  index = jnp.where((steps >= 1) & (steps <= num_steps), steps - 1, num_steps)  # T: out of range
  return jnp.take_along_axis(step_logits, index[:, None, None], 1, mode='fill')[:, 0]


def act_weights(halting: jax.Array,
                epsilon: float = 0.01) -> tuple[jax.Array, jax.Array, jax.Array]:
  """ACT's halting weights (Graves eq. 7-10) with at most T steps.

  Args:
    halting: [B, T] halting probabilities h_t in [0, 1] after glimpse t.
    epsilon: in (0, 1); halting once the summed probabilities reach 1 - epsilon.

  Returns:
    (weights [B, T], steps N [B] int32, remainder R [B]): N the first step whose cumulative
    halting probability reaches 1 - epsilon, or T when none does (the last step then takes the
    remainder); R = 1 - sum_{t<N} h_t; weights h_t before N, R at N, 0 after, summing to 1.
    Gradients reach h_t for t < N through the weights and R; N is a constant.
  """
  if not 0.0 < epsilon < 1.0:
    raise ValueError(f'epsilon must be in (0, 1), got {epsilon}')
  _check_shape('halting', halting, (None, None))
  num_steps = halting.shape[1]
  if num_steps < 1:
    raise ValueError(f'halting must have T >= 1 steps, got shape {halting.shape}')
  reached = jnp.cumsum(halting, -1) >= 1.0 - epsilon  # [B, T]
  reached = reached.at[:, -1].set(True)
  last = jnp.argmax(reached, -1)  # [B] the index N - 1 of the halting step
  t = jnp.arange(num_steps)
  before = t < last[:, None]  # [B, T]
  remainder = 1.0 - jnp.sum(jnp.where(before, halting, 0.0), -1)  # [B]
  weights = jnp.where(before, halting, jnp.where(t == last[:, None], remainder[:, None], 0.0))
  return weights, (last + 1).astype(jnp.int32), remainder


def act_outputs(step_logits: jax.Array, weights: jax.Array) -> jax.Array:
  """log sum_t w_t softmax(logits_t): the halting-weighted mixture of the class probabilities as
  log-probabilities, [B, T, C], [B, T] -> [B, C].

  Graves mixes the output vectors themselves; mixing probabilities keeps the output a proper
  distribution for a classifier (a mixture of the per-glimpse predictions).
  """
  batch, num_steps, _ = _check_step_logits(step_logits)
  _check_shape('weights', weights, (batch, num_steps))
  log_p = jax.nn.log_softmax(step_logits, -1)  # [B, T, C]
  # `b` keeps zero weights finite in the gradient, where log(0) would not be.
  return jax.nn.logsumexp(log_p, axis=1, b=weights[..., None])


def ponder_cost(steps: jax.Array, remainder: jax.Array) -> jax.Array:
  """N + R [B]; its gradient flows through R only (N is piecewise constant), as in Graves."""
  _check_shape('remainder', remainder, (None,))
  _check_shape('steps', steps, remainder.shape)
  return jax.lax.stop_gradient(steps.astype(remainder.dtype)) + remainder


def fixed_glimpse_errors(step_logits: jax.Array, labels: jax.Array,
                         mask: jax.Array | None = None) -> jax.Array:
  """Error [T] when classifying after t = 1..T glimpses; `mask` [B] weights the examples (0 for
  padding rows)."""
  batch, _, _ = _check_step_logits(step_logits)
  _check_shape('labels', labels, (batch,))
  wrong = (jnp.argmax(step_logits, -1) != labels[:, None]).astype(step_logits.dtype)  # [B, T]
  return _weighted_mean(wrong, mask)


def stopping_curve(step_logits: jax.Array, predicted_gains: jax.Array, labels: jax.Array,
                   thresholds: jax.Array,
                   mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """(mean glimpses [K], error [K]) of adaptive stopping at each of `thresholds` [K].

  Args:
    step_logits: [B, T, C] class logits after every glimpse.
    predicted_gains: [B, T] (see `stop_steps`).
    labels: [B] int class labels.
    thresholds: [K], none NaN.
    mask: [B] weights of the examples (0 for padding rows).
  """
  batch, num_steps, _ = _check_step_logits(step_logits)
  _check_shape('predicted_gains', predicted_gains, (batch, num_steps))
  _check_shape('labels', labels, (batch,))
  _check_thresholds(thresholds)
  thresholds = jnp.asarray(thresholds)
  _check_shape('thresholds', thresholds, (None,))

  def one(threshold):
    steps = stop_steps(predicted_gains, threshold)  # [B]
    logits = stopped_outputs(step_logits, steps)  # [B, C]
    wrong = (jnp.argmax(logits, -1) != labels).astype(step_logits.dtype)
    return _weighted_mean(steps.astype(step_logits.dtype), mask), _weighted_mean(wrong, mask)

  return jax.vmap(one)(thresholds)
