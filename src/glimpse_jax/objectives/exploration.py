"""Exploration heuristics for glimpse policies (Ba et al. 2015, sec. 4.5), each enabled by config.

Shape contract: scale logits `[..., S]` of a categorical over S glimpse scales, location log-stds
`[..., D]` of a diagonal Gaussian, and for the batch-level coverage regularisers `[N, S]` logits and
`[N, 2]` locations in `[-1, 1]`, N counting every glimpse of every example in the batch.

- Proposal temperature: sample from p^(1/T) (renormalised) instead of p; T > 1 flattens it.
- Entropy bonus: closed-form entropy of the action distribution, added to the objective.
- Coverage: KL(batch-averaged attention || uniform) over scales and over a coarse grid of
  locations; it is zero when the batch's glimpses use every scale and every grid cell equally, so
  minimising it pushes the policy to look everywhere, at every scale, across the batch.
"""

import math

import chex
import jax
import jax.numpy as jnp

from glimpse_jax import distributions


def _check_positive(name: str, value: float | jax.Array) -> None:
  """Raises on a concrete Python number <= 0; traced values are the caller's responsibility."""
  if isinstance(value, (int, float)) and value <= 0:
    raise ValueError(f'{name} must be > 0, got {value}')


def temper_logits(logits: jax.Array, temperature: float | jax.Array) -> jax.Array:
  """Logits of the tempered categorical softmax(logits)^(1/T), renormalised: [..., S] -> [..., S]."""
  _check_positive('temperature', temperature)
  return logits / temperature


def temper_std(std: jax.Array | float, temperature: float | jax.Array) -> jax.Array:
  """Std of the tempered Gaussian N(mean, std^2)^(1/T), renormalised: std * sqrt(T)."""
  _check_positive('temperature', temperature)
  return jnp.asarray(std) * jnp.sqrt(temperature)


def action_entropy(scale_logits: jax.Array | None = None,
                   location_log_std: jax.Array | None = None) -> jax.Array:
  """Entropy of a glimpse action: categorical scale and/or diagonal Gaussian location -> [...].

  The bonus adds `coef * mean(action_entropy(...))` to the objective (subtracts it from the loss).

  Args:
    scale_logits: [..., S] logits over scales, or None when the scale is fixed.
    location_log_std: [..., D] log standard deviations of the location, or None.

  Returns:
    [...] the sum of the given distributions' closed-form entropies (in nats).
  """
  if scale_logits is None and location_log_std is None:
    raise ValueError('action_entropy needs scale_logits, location_log_std or both, got neither')
  entropy = 0.0
  if scale_logits is not None:
    if jnp.ndim(scale_logits) < 1:
      raise ValueError(f'scale_logits must be [..., S], got shape {jnp.shape(scale_logits)}')
    entropy = entropy + distributions.categorical_entropy(scale_logits)
  if location_log_std is not None:
    if jnp.ndim(location_log_std) < 1:
      raise ValueError(f'location_log_std must be [..., D], got shape '
                       f'{jnp.shape(location_log_std)}')
    entropy = entropy + distributions.gaussian_entropy(location_log_std)
  return entropy


def _kl_to_uniform(probs: jax.Array) -> jax.Array:
  """KL(probs || uniform) = log n - H(probs) for one distribution [n] -> []."""
  return jnp.sum(jax.scipy.special.xlogy(probs, probs)) + math.log(probs.shape[-1])


def scale_coverage_loss(scale_logits: jax.Array) -> jax.Array:
  """KL of the batch-averaged scale distribution to uniform: [N, S] -> [], in [0, log S]."""
  if jnp.ndim(scale_logits) != 2:
    raise ValueError(f'scale_logits must be [N, S], got shape {jnp.shape(scale_logits)}')
  chex.assert_type(scale_logits, float)
  return _kl_to_uniform(jnp.mean(jax.nn.softmax(scale_logits, axis=-1), axis=0))


def location_coverage_loss(locations: jax.Array, grid_size: int = 4,
                           bandwidth: float | None = None) -> jax.Array:
  """KL of a soft histogram of locations over a grid_size x grid_size grid to uniform: [N, 2] -> [].

  Each location is shared among the cells in proportion to a Gaussian kernel of width `bandwidth`
  (default: half a cell) around the cell centers, so the loss is smooth in the locations; pass the
  policy's mean locations for the gradient to reach the policy.

  Returns:
    [] in [0, 2 log grid_size].
  """
  if jnp.ndim(locations) != 2 or jnp.shape(locations)[-1] != 2:
    raise ValueError(f'locations must be [N, 2], got shape {jnp.shape(locations)}')
  chex.assert_type(locations, float)
  if grid_size < 1:
    raise ValueError(f'grid_size must be >= 1, got {grid_size}')
  bandwidth = 1.0 / grid_size if bandwidth is None else bandwidth
  _check_positive('bandwidth', bandwidth)
  ticks = (2.0 * jnp.arange(grid_size) + 1.0) / grid_size - 1.0  # [G] cell centers
  centers = jnp.stack(jnp.meshgrid(ticks, ticks, indexing='ij'), axis=-1).reshape(-1, 2)  # [G^2, 2]
  sq_dist = jnp.sum((locations[:, None, :] - centers[None, :, :])**2, axis=-1)  # [N, G^2]
  assignment = jax.nn.softmax(-sq_dist / (2.0 * bandwidth**2), axis=-1)  # [N, G^2]
  return _kl_to_uniform(jnp.mean(assignment, axis=0))


def saturation_penalty(pre_mean: jax.Array, edge: float = 0.95) -> jax.Array:
  """Squared excess of the location means' pre-tanh values beyond artanh(edge): [..., 2] -> [...].

  Zero while |tanh(z)| <= edge, so it leaves unsaturated policies alone; beyond it the gradient
  grows with |z| (where tanh's own gradient vanishes), pulling a mean parked at the canvas edge
  back inside. Summed over the two coordinates.
  """
  if not 0 < edge < 1:
    raise ValueError(f'edge must be in (0, 1), got {edge}')
  excess = jax.nn.relu(jnp.abs(pre_mean) - math.atanh(edge))
  return jnp.sum(excess**2, -1)
