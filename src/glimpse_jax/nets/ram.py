"""The Recurrent Attention Model of Mnih et al. 2014 as one Flax module.

The rollout takes pre-drawn standard-normal noise `[T, B, 2]`, so the same module gives sampled
paths (training, Monte-Carlo evaluation) and the greedy path (zero noise), and a run is a pure
function of its inputs. The location l_t is sampled from N(mean(h_{t-1}), std^2) and treated as an
action (no gradient flows through the sample); the glimpse is read at l_t clipped to [-1, 1] while
log-probabilities use the unclipped sample.
"""

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax import glimpse
from glimpse_jax.nets import ram_fused
from glimpse_jax.nets.cores import core_output, make_core
from glimpse_jax.nets.glimpse_net import GlimpseNetwork
from glimpse_jax.nets.policies import GaussianLocationPolicy
from glimpse_jax.nets.settings import settings_of


@dataclasses.dataclass(frozen=True)
class RetinaSpec:
  """Static retina settings: `size` x `size` patches at `num_scales` scales."""

  size: int = 8
  num_scales: int = 1
  scale_factor: int = 2

  def read(self, images: jax.Array, locs: jax.Array) -> jax.Array:
    """Flattened retina patches for a batch: [B, H, W, C], [B, 2] -> [B, num_scales*size*size*C]."""
    read_one = lambda image, loc: glimpse.retina(
        image, loc, size=self.size, num_scales=self.num_scales, scale_factor=self.scale_factor)
    patches = jax.vmap(read_one)(images, locs)  # [B, S, size, size, C]
    return patches.reshape(patches.shape[0], -1)


class RAMOutput(NamedTuple):
  logits: jax.Array  # [B, num_classes] after the last glimpse
  locations: jax.Array  # [T, B, 2] sampled (unclipped) locations
  means: jax.Array  # [T, B, 2] policy means the locations were drawn around
  baselines: jax.Array  # [T, B] predicted reward before each location is chosen
  hidden: jax.Array  # [T, B, D] core outputs after each glimpse


class _GlimpseSettings(nn.Module):
  """Settings of one glimpse step, shared by `RAMStep` and the model that scans it."""

  retina: RetinaSpec = RetinaSpec()
  core: str = 'rnn'
  core_features: int = 256
  glimpse_features: int = 256
  what_features: int = 128
  where_features: int = 128
  location_std: float = 0.1
  random_locations: bool = False


class RAMStep(_GlimpseSettings):
  """One glimpse: choose l_t from h_{t-1}, read the retina at l_t, update the core."""

  @nn.compact
  def __call__(self, carry, noise_t: jax.Array, images: jax.Array):
    # noise_t: [B, 2] standard normal (uniform in [-1, 1] for random locations); images: [B, H, W, C]
    mean = GaussianLocationPolicy(name='location')(core_output(carry))  # [B, 2]
    if self.random_locations:
      loc = noise_t
    else:
      loc = jax.lax.stop_gradient(mean + self.location_std * noise_t)
    seen = jnp.clip(loc, -1.0, 1.0)
    g = GlimpseNetwork(self.what_features, self.where_features, self.glimpse_features,
                       name='glimpse')(self.retina.read(images, seen), seen)
    carry, h = make_core(self.core, self.core_features)(carry, g)
    return carry, (h, loc, mean)


class RecurrentAttentionModel(_GlimpseSettings):
  """RAM: glimpse network, recurrent core, Gaussian location policy, baseline and classifier.

  With `fused=True` and the ReLU RNN core, the rollout runs through `ram_fused`, which computes
  the same values and gradients with batched weight gradients (see that module).
  """

  num_classes: int = 10
  fused: bool = True

  @nn.compact
  def __call__(self, images: jax.Array, noise: jax.Array) -> RAMOutput:
    # images: [B, H, W, C]; noise: [T, B, 2]
    batch = images.shape[0]
    scan = nn.scan(RAMStep, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=(0, nn.broadcast), out_axes=0)(
        name='step', **settings_of(self, _GlimpseSettings))
    carry = make_core(self.core, self.core_features).initialize_carry(
        jax.random.key(0), (batch, self.glimpse_features))
    if self.fused and self.core == 'rnn' and not self.is_initializing():
      spec = ram_fused.RolloutSpec(self.retina.read, self.location_std, self.random_locations)
      step_params = self.variables['params']['step']
      hidden, locations = ram_fused.rollout(spec, step_params, images, noise)
      h_prev = jnp.concatenate([carry[None], hidden[:-1]], 0)  # [T, B, D]
      means = ram_fused.location_mean(step_params, h_prev)
    else:
      _, (hidden, locations, means) = scan(carry, noise, images)
      h_prev = jnp.concatenate([core_output(carry)[None], hidden[:-1]], 0)
    logits = nn.Dense(self.num_classes, name='classifier')(hidden[-1])
    baselines = nn.Dense(1, name='baseline')(jax.lax.stop_gradient(h_prev))[..., 0]
    return RAMOutput(logits, locations, means, baselines, hidden)
