"""Glimpse actions (a location and a retina scale): their distribution and the head emitting it.

An action is a location `(x, y)`, Gaussian with a diagonal std, and a scale index, categorical over
the retina's S scales. Sampling takes pre-drawn noise (standard normal for the location, Gumbel for
the scale), so zero noise gives the mode: the mean location and the most probable scale.
"""

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax.distributions import categorical_log_prob, gaussian_log_prob

# Bounds on a learned location log-std: std in [0.0067, 1] of the half-width of the image.
MIN_LOG_STD, MAX_LOG_STD = -5.0, 0.0


class ActionDist(NamedTuple):
  """A factorised action distribution; every field shares the leading shape [...]."""

  loc_mean: jax.Array  # [..., 2]
  loc_log_std: jax.Array  # [..., 2]
  scale_logits: jax.Array  # [..., S]
  loc_pre_mean: jax.Array | None = None  # [..., 2] the location mean before its tanh

  def temper(self, temperature: float) -> 'ActionDist':
    """The renormalised p^(1/T): std * sqrt(T) and logits / T (as `objectives.exploration`)."""
    if temperature == 1.0:
      return self
    return ActionDist(self.loc_mean, self.loc_log_std + 0.5 * math.log(temperature),
                      self.scale_logits / temperature, self.loc_pre_mean)

  def sample(self, loc_noise: jax.Array, scale_noise: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reparameterised draw from pre-drawn noise; the draw is an action and carries no gradient.

    Args:
      loc_noise: [..., 2] standard normal.
      scale_noise: [..., S] standard Gumbel (Gumbel-max trick).

    Returns:
      (location [..., 2] unclipped, scale [...] int32).
    """
    location = self.loc_mean + jnp.exp(self.loc_log_std) * loc_noise
    scale = jnp.argmax(self.scale_logits + scale_noise, axis=-1).astype(jnp.int32)
    return jax.lax.stop_gradient(location), scale

  def log_prob(self, location: jax.Array, scale: jax.Array) -> jax.Array:
    """log N(location; mean, std^2) + log Cat(scale; softmax(logits)): [..., 2], [...] -> [...]."""
    return (gaussian_log_prob(location, self.loc_mean, jnp.exp(self.loc_log_std))
            + categorical_log_prob(self.scale_logits, scale))


class ActionHead(nn.Module):
  """Maps a state to an `ActionDist`: mean = tanh(Linear(h)), scale logits = Linear(h).

  Attributes:
    num_scales: S, the retina's scales; with S = 1 the logits are a constant zero.
    location_std: the fixed std, or the initial std when `learn_std`.
    learn_std: emit log std = log(location_std) + Linear(h), clipped to [MIN_LOG_STD, MAX_LOG_STD].
    hidden_features: width of a ReLU layer before the outputs; 0 for none.
  """

  num_scales: int
  location_std: float
  learn_std: bool = False
  hidden_features: int = 0

  @nn.compact
  def __call__(self, h: jax.Array, mean_offset: jax.Array | None = None) -> ActionDist:
    """The action distribution at states h [..., D]; `mean_offset` [..., 2] (broadcast) is
    added to the location mean before its tanh."""
    if self.hidden_features:
      h = nn.relu(nn.Dense(self.hidden_features, name='hidden')(h))
    pre_mean = nn.Dense(2, name='mean')(h)  # [..., 2]
    pre_mean = pre_mean if mean_offset is None else pre_mean + mean_offset
    mean = jnp.tanh(pre_mean)
    log_std = jnp.full_like(mean, math.log(self.location_std))
    if self.learn_std:
      offset = nn.Dense(2, kernel_init=nn.initializers.zeros, name='log_std')(h)
      log_std = jnp.clip(log_std + offset, MIN_LOG_STD, MAX_LOG_STD)
    if self.num_scales > 1:
      logits = nn.Dense(self.num_scales, name='scale')(h)  # [..., S]
    else:
      logits = jnp.zeros((*h.shape[:-1], 1), h.dtype)
    return ActionDist(mean, log_std, logits, pre_mean)
