"""REINFORCE with a learned baseline (Williams 1992; Mnih et al. 2014, eq. 2).

Pure functions of arrays with a trailing time axis `[..., T]`; they return per-element values and
leave the reduction over the batch to the caller.
"""

import jax
import jax.numpy as jnp


def reinforce_loss(log_probs: jax.Array, reward: jax.Array, baselines: jax.Array) -> jax.Array:
  """Surrogate whose gradient is -sum_t grad log pi(l_t) (R - b_t).

  Args:
    log_probs: [..., T] log pi(l_t | h_{t-1}) of the sampled actions.
    reward: [...] the episode's return R (no discounting: RAM's reward arrives at the end).
    baselines: [..., T] b_t; treated as constants here (see `baseline_loss`).

  Returns:
    [...] the surrogate loss per episode.
  """
  if log_probs.shape != baselines.shape:
    raise ValueError(f'log_probs {log_probs.shape} and baselines {baselines.shape} must match')
  if reward.shape != log_probs.shape[:-1]:
    raise ValueError(f'reward {reward.shape} must be log_probs.shape[:-1] = {log_probs.shape[:-1]}')
  advantage = jax.lax.stop_gradient(reward[..., None] - baselines)
  return -jnp.sum(log_probs * advantage, axis=-1)


def baseline_loss(baselines: jax.Array, reward: jax.Array) -> jax.Array:
  """Mean squared error of b_t against the observed return: [..., T], [...] -> [...]."""
  target = jax.lax.stop_gradient(reward)[..., None]
  return jnp.mean((baselines - target) ** 2, axis=-1)
