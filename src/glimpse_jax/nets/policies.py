"""Action policies for glimpse models."""

import flax.linen as nn
import jax
import jax.numpy as jnp


class GaussianLocationPolicy(nn.Module):
  """Mean of a fixed-std Gaussian over the next location: mean = tanh(Linear(h)) in (-1, 1)."""

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    return jnp.tanh(nn.Dense(2, name='mean')(h))  # [..., 2]
