"""Location policies (locators) for glimpse models, acting on pre-drawn `ActionNoise`.

Four locators read the core output h_{t-1} and choose the next glimpse location:
- 'linear': a Gaussian with mean tanh(Linear(h)) (or hardtanh) and a fixed std (Mnih et al.
  2014);
- 'lstm': the same Gaussian head on top of the locator's own LSTM over the core outputs
  (Brooks et al.);
- 'mlp': the same Gaussian head on top of one tanh hidden layer of the same width as the LSTM's,
  with no memory: the control that tells the LSTM's memory from its extra layer;
- 'grid': a categorical over the centers of a grid_size x grid_size grid of cells tiling [-1, 1]^2
  (Harvey et al.), cell index row * grid_size + column, drawn by Gumbel-max from `noise.choice`.
Zero noise gives the greedy action (the mean, the most probable cell). Drawn actions carry no
gradient; their log-probabilities do. A forced example takes a given location instead (for the
grid, the cell that contains it) and reports that action's log-probability. Two choices shape how
the policy learns:
- `gradient_to_core`: whether the policy's gradient (REINFORCE's) flows back through h into the
  core and glimpse network (the Torch RAM passes it on; kevinzakka's PyTorch RAM, where the core
  learns from the classification loss alone, does not);
- `mean_activation`: the Gaussian mean as 'tanh' of the linear map (the paper's) or 'hardtanh'
  (the linear map clipped to [-1, 1], the Torch RAM's HardTanh).
"""

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from glimpse_jax.distributions import categorical_log_prob, gaussian_log_prob
from glimpse_jax.nets.noise import ActionNoise
from glimpse_jax.nets.settings import is_positive_int

LOCATORS = ('linear', 'lstm', 'grid', 'mlp')
MEAN_ACTIVATIONS = ('tanh', 'hardtanh')
# log-density of the uniform distribution on [-1, 1]^2 (the random-locations baseline)
UNIFORM_LOG_PROB = -math.log(4.0)


class LocationAction(NamedTuple):
  location: jax.Array  # [B, 2] the action (unclipped; the glimpse reads it clipped to [-1, 1])
  mean: jax.Array  # [B, 2] the policy mean (for the grid: the expected cell center)
  log_prob: jax.Array  # [B] log pi(location | h) of the action taken


def location_mean(pre_activation: jax.Array, activation: str) -> jax.Array:
  """The Gaussian locators' mean from the linear map's output [..., 2] (`MEAN_ACTIVATIONS`)."""
  if activation == 'tanh':
    return jnp.tanh(pre_activation)
  if activation == 'hardtanh':
    return jnp.clip(pre_activation, -1.0, 1.0)
  raise ValueError(f'mean_activation must be one of {list(MEAN_ACTIVATIONS)}, got {activation!r}')


def grid_centers(grid_size: int) -> np.ndarray:
  """[grid_size**2, 2] cell centers (x, y) in [-1, 1], index row * grid_size + column."""
  if not is_positive_int(grid_size):
    raise ValueError(f'grid_size must be an integer >= 1, got {grid_size!r}')
  ticks = -1.0 + (2.0 * np.arange(grid_size) + 1.0) / grid_size  # [G]
  ys, xs = np.meshgrid(ticks, ticks, indexing='ij')
  return np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)


def grid_cell(location: jax.Array, grid_size: int) -> jax.Array:
  """Index of the grid cell containing each location, clamped to the grid: [..., 2] -> [...] int32."""
  cols_rows = jnp.clip(jnp.floor((location + 1.0) / 2.0 * grid_size), 0, grid_size - 1)
  return (cols_rows[..., 1] * grid_size + cols_rows[..., 0]).astype(jnp.int32)


class Locator(nn.Module):
  """The location policy `kind` (one of LOCATORS); see the module doc.

  Attributes:
    kind: 'linear', 'lstm', 'grid' or 'mlp'.
    location_std: the Gaussian's std ('linear', 'lstm', 'mlp').
    grid_size: cells per side ('grid').
    features: width of the locator's LSTM ('lstm') or hidden layer ('mlp').
    random_locations: ignore the policy and take `noise.location` itself as the location (uniform
      in [-1, 1] as the caller draws it): the random-glimpse baseline.
    gradient_to_core: let the policy's gradient reach h (False: the locator reads
      stop_gradient(h), so only its own parameters learn from it).
    mean_activation: 'tanh' or 'hardtanh' ('linear', 'lstm', 'mlp'; see `location_mean`).
  """

  kind: str = 'linear'
  location_std: float = 0.1
  grid_size: int = 4
  features: int = 128
  random_locations: bool = False
  gradient_to_core: bool = True
  mean_activation: str = 'tanh'

  @nn.nowrap
  def initialize_carry(self, batch: int) -> Any:
    """The locator's own state before the first glimpse (empty unless 'lstm')."""
    if self.kind == 'lstm':
      zeros = jnp.zeros((batch, self.features))
      return zeros, zeros
    return ()

  @nn.compact
  def __call__(self, carry: Any, h: jax.Array, noise_t: ActionNoise,
               given: jax.Array | None = None,
               forced: jax.Array | None = None) -> tuple[Any, LocationAction]:
    # h: [B, D]; noise_t: [B, ...]; given: [B, 2] locations to take where forced [B] is True
    if self.kind not in LOCATORS:
      raise ValueError(f'locator must be one of {list(LOCATORS)}, got {self.kind!r}')
    if not self.gradient_to_core:
      h = jax.lax.stop_gradient(h)
    if self.kind == 'grid':
      action = self._grid(h, noise_t, given, forced)
    else:
      if self.kind == 'lstm':
        carry, h = nn.OptimizedLSTMCell(self.features, name='lstm')(carry, h)
      elif self.kind == 'mlp':
        h = jnp.tanh(nn.Dense(self.features, name='hidden')(h))  # [B, features]
      mean = location_mean(nn.Dense(2, name='mean')(h), self.mean_activation)  # [B, 2]
      drawn = jax.lax.stop_gradient(mean + self.location_std * noise_t.location)
      location = _take(given, forced, drawn)
      action = LocationAction(location, mean, gaussian_log_prob(location, mean, self.location_std))
    if self.random_locations:
      location = _take(given, forced, noise_t.location)
      action = LocationAction(location, action.mean,
                              jnp.full(location.shape[:-1], UNIFORM_LOG_PROB))
    return carry, action

  def _grid(self, h, noise_t, given, forced) -> LocationAction:
    centers = jnp.asarray(grid_centers(self.grid_size))  # [N, 2]
    if noise_t.choice is None or noise_t.choice.shape[-1] != centers.shape[0]:
      shape = None if noise_t.choice is None else noise_t.choice.shape
      raise ValueError(f'the grid locator needs choice noise [..., {centers.shape[0]}], '
                       f'got {shape}')
    logits = nn.Dense(self.grid_size**2, name='logits')(h)  # [B, N]
    cell = jnp.argmax(jax.lax.stop_gradient(logits) + noise_t.choice, -1)  # [B]
    if given is not None:
      cell = jnp.where(forced, grid_cell(given, self.grid_size), cell)
    mean = jax.nn.softmax(logits) @ centers  # [B, 2] the expected cell center
    return LocationAction(centers[cell], mean, categorical_log_prob(logits, cell))


def _take(given: jax.Array | None, forced: jax.Array | None, drawn: jax.Array) -> jax.Array:
  """`given` where `forced` (no gradient either way), else `drawn`: [B, 2]."""
  if given is None:
    return drawn
  return jnp.where(forced[:, None], jax.lax.stop_gradient(given), drawn)
