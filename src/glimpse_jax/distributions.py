"""Log-densities and entropies of the action distributions used by glimpse policies.

Pure jax.numpy functions of arrays (floor 1: shared by nets/ and objectives/); the trailing axis is the event axis for Gaussians and the class axis for
categoricals.
"""

import math

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: jax.Array, mean: jax.Array, std: jax.Array | float) -> jax.Array:
  """Log-density of a diagonal Gaussian, summed over the last axis: [..., D] -> [...]."""
  std = jnp.asarray(std, dtype=mean.dtype)
  z = (x - mean) / std
  return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
  """Entropy of a diagonal Gaussian with log standard deviations `log_std` [..., D] -> [...]."""
  return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)


def categorical_log_prob(logits: jax.Array, index: jax.Array) -> jax.Array:
  """Log-probability of integer `index` [...] under `logits` [..., N]."""
  log_p = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(log_p, index[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
  """Entropy of the categorical distribution with `logits` [..., N] -> [...]."""
  log_p = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def gaussian_kl(mean_q: jax.Array, log_std_q: jax.Array, mean_p: jax.Array,
                log_std_p: jax.Array) -> jax.Array:
  """KL(q || p) of two diagonal Gaussians, summed over the last axis: [..., D] -> [...]."""
  var_q, var_p = jnp.exp(2 * log_std_q), jnp.exp(2 * log_std_p)
  return jnp.sum(log_std_p - log_std_q + (var_q + (mean_q - mean_p) ** 2) / (2 * var_p) - 0.5,
                 axis=-1)
