"""Pre-drawn action noise, shared by every glimpse model.

A model's rollout is a pure function of this noise, so one module gives sampled paths (training,
Monte Carlo: `vmap` over a leading sample axis) and the greedy path (`mode_noise`: all zeros).
Layout: `location` is standard normal `[..., 2]` (a Gaussian location is mean + std * noise);
`choice` is standard Gumbel `[..., N]` for a categorical part of the action over N options (the
retina scale in WS-RAM, the grid cell of RAM's grid locator), taken by the Gumbel-max trick
argmax(logits + noise), so zero noise picks the most probable option. The leading axes are the
layout each model's scan draws it in, kept so that a seed draws the same actions: RAM's are
time-major `[T, B]`, WS-RAM's `[K, B, T]` (rollout, example, glimpse). The models' outputs are
batch first (`[B, T, ...]`, `[B, K, T, ...]`) whatever the noise's layout.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ActionNoise(NamedTuple):
  """Noise of a batch of rollouts; `choice` is None when the actions have no categorical part."""

  location: jax.Array  # [..., 2] standard normal
  choice: jax.Array | None  # [..., N] standard Gumbel


def _check(shape: tuple[int, ...], num_choices: int) -> None:
  if any(n < 1 for n in shape):
    raise ValueError(f'noise shape must have positive sizes, got {shape}')
  if num_choices < 0:
    raise ValueError(f'num_choices must be >= 0, got {num_choices}')


def draw_noise(rng: jax.Array, shape: tuple[int, ...], num_choices: int = 0) -> ActionNoise:
  """Sampling noise with leading shape `shape`; `choice` over `num_choices` options (0: None)."""
  shape = tuple(shape)
  _check(shape, num_choices)
  loc_rng, choice_rng = jax.random.split(rng)
  choice = jax.random.gumbel(choice_rng, (*shape, num_choices)) if num_choices else None
  return ActionNoise(jax.random.normal(loc_rng, (*shape, 2)), choice)


def mode_noise(shape: tuple[int, ...], num_choices: int = 0) -> ActionNoise:
  """Zero noise: the mean location and the most probable choice at every step (greedy path)."""
  shape = tuple(shape)
  _check(shape, num_choices)
  return ActionNoise(jnp.zeros((*shape, 2)),
                     jnp.zeros((*shape, num_choices)) if num_choices else None)
