"""The Recurrent Attention Model of Mnih et al. 2014 as one Flax module, built from swappable parts.

The rollout takes pre-drawn `ActionNoise` with time-major leading axes `[T, B]` (the scan's own
layout, in which the noise is drawn: `ram_noise`), so the same module gives sampled paths
(training, Monte-Carlo evaluation as a `vmap`) and the greedy path (`mode_noise`), and a run is a
pure function of its inputs. At each glimpse the locator (see `policies`) chooses l_t from h_{t-1};
the sample is an action (no gradient flows through it) and the glimpse is read at l_t clipped to
[-1, 1], while log-probabilities use the unclipped action.

Options for RAM's relatives: the classifier after every glimpse (`classify_every_step`); teacher
forcing (`given_locations` taken by the `forced` examples, whose log-probs are those of the given
actions); per-example stopping (`step_mask`: after a 0 the core and locator states are held, so the
final logits are those of the last step taken); a head predicting each glimpse's information gain
from the state before it (`predict_gain`, for adaptive stopping as in Harvey et al.); a halting unit
on the state after each glimpse (`act`, adaptive computation time as in Graves 2016). The stopping
rules and losses that use them are in `objectives.stopping`.

Every other array the model takes or returns is batch first, `[B, T, ...]`: the scan runs time-major
inside and its outputs are transposed once, here, so losses and diagnostics take them as they are.
"""

from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax.distributions import gaussian_log_prob
from glimpse_jax.nets import ram_fused
from glimpse_jax.nets.cores import core_output, make_core
from glimpse_jax.nets.glimpse_net import GlimpseNetwork
from glimpse_jax.nets.noise import ActionNoise, draw_noise, mode_noise
from glimpse_jax.nets.policies import LOCATORS, MEAN_ACTIVATIONS, UNIFORM_LOG_PROB, Locator
from glimpse_jax.nets.retina import RetinaSpec
from glimpse_jax.nets.settings import settings_of


class RAMOutput(NamedTuple):
  """A RAM rollout, batch first (the scan's time-major outputs transposed once)."""

  logits: jax.Array  # [B, C] after the last glimpse taken
  step_logits: jax.Array | None  # [B, T, C] after every glimpse (None unless classify_every_step)
  locations: jax.Array  # [B, T, 2] the locations taken (unclipped; the given ones where forced)
  loc_mean: jax.Array  # [B, T, 2] policy means (the grid's expected cell center)
  log_probs: jax.Array  # [B, T] log pi(l_t | h_{t-1}) of the locations taken
  baselines: jax.Array  # [B, T] predicted reward before each location is chosen
  hidden: jax.Array  # [B, T, D] core outputs after each glimpse (held after a stop)
  gains: jax.Array | None = None  # [B, T] predicted information gain of glimpse t (predict_gain)
  halting: jax.Array | None = None  # [B, T] halting probability after glimpse t (act)


def _batch_first(a: jax.Array | None) -> jax.Array | None:
  """A scan's time-major [T, B, ...] output as [B, T, ...]."""
  return None if a is None else jnp.swapaxes(a, 0, 1)


class _GlimpseSettings(nn.Module):
  """Settings of one glimpse step, shared by `RAMStep` and the model that scans it."""

  retina: RetinaSpec = RetinaSpec()
  core: str = 'rnn'
  core_features: int = 256
  glimpse_features: int = 256
  what_features: int = 128
  where_features: int = 128
  locator: str = 'linear'
  location_std: float = 0.1
  grid_size: int = 4
  locator_features: int = 128
  random_locations: bool = False
  policy_gradient_to_core: bool = True
  mean_activation: str = 'tanh'

  @nn.nowrap
  def locator_module(self, **kwargs) -> Locator:
    """The locator these settings describe (`kwargs`: Flax's `name` / `parent`)."""
    return Locator(self.locator, self.location_std, self.grid_size, self.locator_features,
                   self.random_locations, self.policy_gradient_to_core, self.mean_activation,
                   **kwargs)


class RAMStep(_GlimpseSettings):
  """One glimpse: choose l_t from h_{t-1}, read the retina at l_t, update the core."""

  @nn.compact
  def __call__(self, carry, xs, images: jax.Array, forced: jax.Array | None):
    # carry: (core carry, locator carry); xs: (noise_t [B, ...], given_t [B, 2] or None,
    # mask_t [B] or None); images: [B, H, W, C]; forced: [B] bool or None
    noise_t, given_t, mask_t = xs
    core_carry, locator_carry = carry
    locator = self.locator_module(name='location')
    new_locator_carry, action = locator(locator_carry, core_output(core_carry), noise_t, given_t,
                                        forced)
    seen = jnp.clip(action.location, -1.0, 1.0)
    g = GlimpseNetwork(self.what_features, self.where_features, self.glimpse_features,
                       name='glimpse')(self.retina.read(images, seen), seen)
    new_core_carry, _ = make_core(self.core, self.core_features)(core_carry, g)
    new_carry = (new_core_carry, new_locator_carry)
    if mask_t is not None:
      hold = lambda new, old: jnp.where(mask_t.reshape(-1, *[1] * (new.ndim - 1)), new, old)
      new_carry = jax.tree.map(hold, new_carry, carry)
    return new_carry, (core_output(new_carry[0]), action)


class RecurrentAttentionModel(_GlimpseSettings):
  """RAM: glimpse network, recurrent core, locator, baseline and classifier (see module doc).

  With `fused=True` the rollout runs through `ram_fused`, which computes the same values and
  gradients with batched weight gradients; it implements only core 'rnn' with the 'linear' locator
  and no teacher forcing or step mask, and refuses anything else. The gain and halting heads read
  the rollout's states after it, so both rollouts give them.
  """

  num_classes: int = 10
  classify_every_step: bool = False
  fused: bool = False
  predict_gain: bool = False
  act: bool = False

  def _check_fused(self, given_locations, step_mask) -> None:
    implemented = {'core': (self.core, 'rnn'), 'locator': (self.locator, 'linear')}
    for name, (value, supported) in implemented.items():
      if value != supported:
        raise ValueError(f"fused=True implements only {name}={supported!r}, got {name}="
                         f'{value!r}; use fused=False')
    if given_locations is not None or step_mask is not None:
      raise ValueError('fused=True implements neither given_locations (teacher forcing) nor '
                       'step_mask; use fused=False')

  @nn.compact
  def __call__(self, images: jax.Array, noise: ActionNoise, *,
               given_locations: jax.Array | None = None, forced: jax.Array | None = None,
               step_mask: jax.Array | None = None) -> RAMOutput:
    """Runs T glimpses per image.

    Args:
      images: [B, H, W, C].
      noise: `ActionNoise` of [T, B, ...] arrays (`choice` [T, B, grid_size**2] for the grid).
      given_locations: [B, T, 2] locations the `forced` examples take (teacher forcing).
      forced: [B] bool, with `given_locations`.
      step_mask: [B, T], 1 where the step is taken; 0 holds the example's state.

    Returns:
      `RAMOutput`, batch first.
    """
    if self.locator not in LOCATORS:
      raise ValueError(f'locator must be one of {list(LOCATORS)}, got {self.locator!r}')
    if self.mean_activation not in MEAN_ACTIVATIONS:
      raise ValueError(f'mean_activation must be one of {list(MEAN_ACTIVATIONS)}, got '
                       f'{self.mean_activation!r}')
    num_steps, batch = noise.location.shape[:2]
    chex.assert_shape(noise.location, (num_steps, batch, 2))
    chex.assert_rank(images, 4)
    if images.shape[0] != batch:
      raise ValueError(f'noise is for {batch} images, got {images.shape[0]}')
    if (given_locations is None) != (forced is None):
      raise ValueError('given_locations and forced must be passed together')
    if given_locations is not None:
      chex.assert_shape(given_locations, (batch, num_steps, 2))
      chex.assert_shape(forced, (batch,))
      chex.assert_type(forced, bool)
      given_locations = jnp.swapaxes(given_locations, 0, 1)  # [T, B, 2], the scan's layout
    if step_mask is not None:
      chex.assert_shape(step_mask, (batch, num_steps))
      step_mask = step_mask.astype(bool).T  # [T, B]
    if self.fused:
      self._check_fused(given_locations, step_mask)

    core = make_core(self.core, self.core_features)
    locator = self.locator_module(parent=None)
    carry = (core.initialize_carry(jax.random.key(0), (batch, self.glimpse_features)),
             locator.initialize_carry(batch))
    h0 = core_output(carry[0])  # [B, D]
    if self.fused and not self.is_initializing():
      spec = ram_fused.RolloutSpec(self.retina.read, self.location_std, self.random_locations,
                                   self.mean_activation)
      step_params = self.variables['params']['step']
      hidden, locations = ram_fused.rollout(spec, step_params, images, noise.location)
      h_prev = jnp.concatenate([h0[None], hidden[:-1]], 0)  # [T, B, D]
      read_by_locator = (h_prev if self.policy_gradient_to_core
                         else jax.lax.stop_gradient(h_prev))
      loc_mean = ram_fused.location_mean(step_params, read_by_locator, self.mean_activation)
      log_probs = (jnp.full((num_steps, batch), UNIFORM_LOG_PROB) if self.random_locations
                   else gaussian_log_prob(locations, loc_mean, self.location_std))
    else:
      scan = nn.scan(RAMStep, variable_broadcast='params', split_rngs={'params': False},
                     in_axes=(0, nn.broadcast, nn.broadcast), out_axes=0)(
          name='step', **settings_of(self, _GlimpseSettings))
      xs = (noise, given_locations, step_mask)
      _, (hidden, action) = scan(carry, xs, images, forced)
      h_prev = jnp.concatenate([h0[None], hidden[:-1]], 0)
      locations, loc_mean, log_probs = action

    classifier = nn.Dense(self.num_classes, name='classifier')
    step_logits = classifier(hidden) if self.classify_every_step else None  # [T, B, C]
    logits = step_logits[-1] if self.classify_every_step else classifier(hidden[-1])
    baselines = nn.Dense(1, name='baseline')(jax.lax.stop_gradient(h_prev))[..., 0]
    gains, halting = None, None
    if self.predict_gain:
      # Reads h_{t-1}, as the baseline does, and like it sees no gradient into the core: a critic of
      # the classifier's progress, so adding it leaves every other parameter's gradient unchanged
      # (fixed-T and adaptive stopping are then measured on the same model) and it can be fitted
      # afterwards on a frozen model.
      gains = nn.Dense(1, name='gain')(jax.lax.stop_gradient(h_prev))[..., 0]  # [T, B]
    if self.act:
      # Graves's halting unit on the state after glimpse t; its gradient reaches the core, as the
      # ponder cost and the halting-weighted output are meant to shape the computation.
      halting = jax.nn.sigmoid(nn.Dense(1, name='halting')(hidden)[..., 0])  # [T, B]
    out = RAMOutput(logits, *map(_batch_first, (step_logits, locations, loc_mean, log_probs,
                                                 baselines, hidden, gains, halting)))
    _check_output(out, num_steps, batch, self.num_classes)
    return out


def ram_noise(model: RecurrentAttentionModel, num_glimpses: int, batch: int,
              rng: jax.Array | None = None, samples: tuple[int, ...] = ()) -> ActionNoise:
  """The noise a RAM rollout of `num_glimpses` glimpses over `batch` images takes, in the scan's
  layout [*samples, T, B, ...]: drawn from `rng`, or the greedy path's zeros when `rng` is None
  (`choice` over the grid's cells for the grid locator)."""
  shape = (*samples, num_glimpses, batch)
  num_choices = model.grid_size**2 if model.locator == 'grid' else 0
  return mode_noise(shape, num_choices) if rng is None else draw_noise(rng, shape, num_choices)


def _check_output(out: RAMOutput, num_steps: int, batch: int, num_classes: int) -> None:
  chex.assert_shape(out.logits, (batch, num_classes))
  if out.step_logits is not None:
    chex.assert_shape(out.step_logits, (batch, num_steps, num_classes))
  chex.assert_shape([out.locations, out.loc_mean], (batch, num_steps, 2))
  chex.assert_shape([out.log_probs, out.baselines], (batch, num_steps))
  chex.assert_shape(out.hidden, (batch, num_steps, None))
  for head in (out.gains, out.halting):
    if head is not None:
      chex.assert_shape(head, (batch, num_steps))
      chex.assert_type(head, float)
  chex.assert_type([out.logits, out.locations, out.log_probs, out.baselines], float)
