"""Recurrent cores for glimpse models, as `nn.RNNCellBase` cells."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class ReLURNNCell(nn.RNNCellBase):
  """h_t = relu(Linear(h_{t-1}) + Linear(x_t)) (Mnih et al. 2014), one Dense on [x_t, h_{t-1}]."""

  features: int = 256

  @nn.compact
  def __call__(self, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = nn.relu(nn.Dense(self.features, name='recurrent')(jnp.concatenate([x, carry], -1)))
    return h, h

  @nn.nowrap
  def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> jax.Array:
    del rng
    return jnp.zeros((*input_shape[:-1], self.features))

  @property
  def num_feature_axes(self) -> int:
    return 1


class LSTMCore(nn.RNNCellBase):
  """An LSTM core whose output is its hidden state h (carry is (c, h))."""

  features: int = 256

  @nn.compact
  def __call__(self, carry: Any, x: jax.Array) -> tuple[Any, jax.Array]:
    return nn.OptimizedLSTMCell(self.features, name='lstm')(carry, x)

  @nn.nowrap
  def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Any:
    del rng
    zeros = jnp.zeros((*input_shape[:-1], self.features))
    return zeros, zeros

  @property
  def num_feature_axes(self) -> int:
    return 1


CORES = {'rnn': ReLURNNCell, 'lstm': LSTMCore}


def make_core(name: str, features: int) -> nn.RNNCellBase:
  """Returns the core cell called `name` ('rnn' or 'lstm')."""
  if name not in CORES:
    raise ValueError(f'core must be one of {sorted(CORES)}, got {name!r}')
  return CORES[name](features=features, name='core')


def core_output(carry: Any) -> jax.Array:
  """The hidden state h of a core carry (h itself for the RNN, the second entry for the LSTM)."""
  return carry[1] if isinstance(carry, tuple) else carry
