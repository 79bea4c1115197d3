"""REINFORCE with per-step rewards and learned baselines (Williams 1992; Mnih et al. 2014, eq. 2).

Pure functions of arrays with a trailing time axis `[..., T]`; they return per-episode values and
leave the reduction over the batch to the caller. An optional `mask [..., T]` (1 = the step counts)
drops steps an episode did not take (after it stopped) or whose actions were not drawn from the
policy (teacher-forced examples).
"""

import chex
import jax
import jax.numpy as jnp


def _check_steps(name: str, mask: jax.Array | None, like: jax.Array) -> jax.Array:
  """`mask` as floats of `like`'s shape (all ones when None)."""
  if mask is None:
    return jnp.ones_like(like)
  chex.assert_equal_shape([mask, like], custom_message=f'{name} must match the [..., T] arrays')
  return mask.astype(like.dtype)


def returns_to_go(rewards: jax.Array, discount: float = 1.0) -> jax.Array:
  """G_t = sum_{s >= t} discount^(s - t) r_s: [..., T] -> [..., T]."""
  if not 0.0 <= discount <= 1.0:
    raise ValueError(f'discount must be in [0, 1], got {discount}')
  if rewards.ndim < 1:
    raise ValueError(f'rewards must be [..., T], got shape {rewards.shape}')
  chex.assert_type(rewards, float)

  def step(later, r_t):
    g_t = r_t + discount * later
    return g_t, g_t

  time_major = jnp.moveaxis(rewards, -1, 0)  # [T, ...]
  _, returns = jax.lax.scan(step, jnp.zeros_like(time_major[0]), time_major, reverse=True)
  return jnp.moveaxis(returns, 0, -1)


def final_rewards(reward: jax.Array, num_steps: int, mask: jax.Array | None = None) -> jax.Array:
  """The episode's reward [...] placed at its last taken step: [..., T], zero elsewhere.

  Without a mask the last step is T - 1; an episode that took no step gets no reward.
  """
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}')
  chex.assert_type(reward, float)
  steps = jnp.arange(num_steps)
  if mask is None:
    return jnp.where(steps == num_steps - 1, reward[..., None], 0.0)
  chex.assert_shape(mask, (*reward.shape, num_steps))
  taken = mask > 0
  last = jnp.max(jnp.where(taken, steps, -1), axis=-1)  # [...], -1 when no step was taken
  return jnp.where(steps == last[..., None], reward[..., None], 0.0)


def reinforce_loss(log_probs: jax.Array, returns: jax.Array, baselines: jax.Array,
                   mask: jax.Array | None = None) -> jax.Array:
  """Surrogate whose gradient is -sum_t mask_t grad log pi(a_t) (G_t - b_t).

  Unbiased for the undiscounted return; with discounted G_t it is the usual estimator that drops
  the discount^t factor (discounting as variance reduction, not the discounted objective).

  Args:
    log_probs: [..., T] log pi(a_t | history) of the actions taken.
    returns: [..., T] returns-to-go G_t (see `returns_to_go`); constants here.
    baselines: [..., T] b_t; constants here (see `baseline_loss`).
    mask: [..., T] 1 for the steps whose actions the policy drew.

  Returns:
    [...] the surrogate loss per episode.
  """
  chex.assert_equal_shape([log_probs, returns, baselines])
  chex.assert_type([log_probs, returns, baselines], float)
  mask = _check_steps('mask', mask, log_probs)
  advantage = jax.lax.stop_gradient(returns - baselines)
  return -jnp.sum(mask * log_probs * advantage, axis=-1)


def baseline_loss(baselines: jax.Array, returns: jax.Array,
                  mask: jax.Array | None = None) -> jax.Array:
  """Mean over the masked steps of (b_t - G_t)^2: [..., T], [..., T] -> [...] (0 with no step)."""
  chex.assert_equal_shape([baselines, returns])
  chex.assert_type([baselines, returns], float)
  mask = _check_steps('mask', mask, baselines)
  squared = (baselines - jax.lax.stop_gradient(returns)) ** 2
  return jnp.sum(mask * squared, -1) / jnp.maximum(jnp.sum(mask, -1), 1.0)


def location_supervision_loss(log_probs: jax.Array, chosen: jax.Array,
                              mask: jax.Array | None = None) -> jax.Array:
  """-sum_t mask_t log pi(target_t) on the `chosen` [...] episodes, 0 on the others: -> [...].

  `log_probs` [..., T] are the policy's log-probabilities of the target actions (a teacher-forced
  rollout reports them).
  """
  chex.assert_type(log_probs, float)
  chex.assert_shape(chosen, log_probs.shape[:-1])
  mask = _check_steps('mask', mask, log_probs)
  return -chosen.astype(log_probs.dtype) * jnp.sum(mask * log_probs, axis=-1)
