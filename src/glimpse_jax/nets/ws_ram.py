"""The Wake-Sleep Recurrent Attention Model (Ba, Grosse, Salakhutdinov, Frey 2015) as one module.

Prediction network: a two-layer ReLU RNN. A low-resolution view of the whole image sets the top
layer's initial state; each glimpse (read at the chosen location and scale, through the what/where
glimpse network) enters the bottom layer, whose state feeds the top layer. The prior policy
p(a_t | a_<t, x) reads the top layer and the class is predicted from the bottom layer after the
last glimpse, so the image reaches the classifier only through glimpses; the low-resolution view
only steers where they land. The inference network q(a_t | a_<t, x, y) reads the top layer (as a
constant) and the one-hot label and proposes actions during training.

The rollout is a pure function of pre-drawn `ActionNoise` for K samples per image (`choice` is the
scale's Gumbel noise), drawn [K, B, T, ...] (sample, example, glimpse). Every array it returns is
batch first, [B, K, T, ...] (example, sample, glimpse): the scan runs time-major inside and its
outputs are transposed once, here. Sampled actions carry no gradient; both log p and log q are
evaluated at the sample the proposal drew.

With `fused=True` the rollout's recurrence runs through `ws_ram_fused` (batched weight gradients,
the policies applied once over every glimpse after it), which computes the same values and
gradients as the scanned `WSRAMStep`; parameters are created by the scanned module either way.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax import glimpse
from glimpse_jax.nets import ws_ram_fused
from glimpse_jax.nets.actions import ActionDist, ActionHead
from glimpse_jax.nets.context import ContextNetwork
from glimpse_jax.nets.cores import ReLURNNCell
from glimpse_jax.nets.glimpse_net import GlimpseNetwork
from glimpse_jax.nets.noise import ActionNoise
from glimpse_jax.nets.retina import RetinaSpec
from glimpse_jax.nets.settings import settings_of

PROPOSALS = ('prior', 'q')
# The centroid offset is artanh(CENTROID_SHRINK * c): finite for ink at the canvas's edge (c = 1).
CENTROID_SHRINK = 0.95


class WSRAMOutput(NamedTuple):
  """K rollouts per image, batch first (the scan's time-major outputs transposed once)."""

  class_log_probs: jax.Array  # [B, K, C] log p(y | a, x) for every class y
  log_prior: jax.Array  # [B, K, T] log p(a_t | a_<t, x) at the drawn actions
  log_q: jax.Array | None  # [B, K, T] log q(a_t | a_<t, x, y), None without labels
  log_proposal: jax.Array  # [B, K, T] log of the (tempered) density the actions were drawn from
  prior: ActionDist  # [B, K, T, ...] the prior policy at each glimpse
  q: ActionDist | None  # [B, K, T, ...] the inference network, None without labels
  locations: jax.Array  # [B, K, T, 2] drawn, unclipped (the glimpse reads them clipped)
  scales: jax.Array  # [B, K, T] int32 drawn scale indices
  baseline: jax.Array  # [B] b(x) from the initial top-layer state (VAR's control variate)
  bottom: jax.Array  # [B, K, T, D1] bottom-layer states after each glimpse
  top: jax.Array  # [B, K, T, D2] top-layer states after each glimpse


def _batch_first(out: WSRAMOutput) -> WSRAMOutput:
  """The rollout's [K, B, ...] arrays as [B, K, ...] (`baseline` is [B] already)."""
  swap = lambda a: jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), a)
  return WSRAMOutput(*(value if name == 'baseline' else swap(value)
                       for name, value in zip(WSRAMOutput._fields, out)))


def intensity_centroid(images: jax.Array) -> jax.Array:
  """The intensity-weighted mean location (x, y) in [-1, 1] of images [B, H, W, C]: [B, 2];
  the center (0, 0) for a blank image."""
  height, width = images.shape[1:3]
  mass = images.astype(jnp.float32).sum(-1)  # [B, H, W]
  total = mass.sum((1, 2))[:, None]  # [B, 1]
  column = jnp.einsum('bhw,w->b', mass, jnp.arange(width) + 0.5)  # pixel centers
  row = jnp.einsum('bhw,h->b', mass, jnp.arange(height) + 0.5)
  pixel = jnp.stack([column, row], -1) / jnp.maximum(total, 1e-12)  # [B, 2] (column, row)
  pixel = jnp.where(total > 0, pixel, jnp.array([width / 2, height / 2]))
  return glimpse.pixel_to_loc(pixel, height, width)


class _StepSettings(nn.Module):
  """Settings of one glimpse step, shared by `WSRAMStep` and `WakeSleepRAM` (see its attributes)."""

  retina: RetinaSpec = RetinaSpec(size=12, num_scales=3)
  bottom_features: int = 256
  top_features: int = 256
  glimpse_features: int = 256
  what_features: int = 128
  where_features: int = 128
  inference_features: int = 256
  location_std: float = 0.1
  learn_std: bool = False
  policy_gradient_to_bottom: bool = True


class WSRAMStep(_StepSettings):
  """One glimpse: the policies read the top layer, the proposal acts, both layers update."""

  proposal: str = 'prior'
  temperature: float = 1.0

  @nn.compact
  def __call__(self, carry, xs, images, label_code):
    # carry: ([K, B, D1], [K, B, D2]); xs: (ActionNoise of [K, B, ...] arrays, the location
    # means' offset [1, B, 2] or None); images: [B, H, W, C]; label_code: [B, C] one-hot or None
    noise_t, offset_t = xs
    bottom, top = carry
    head = lambda name, hidden: ActionHead(self.retina.num_scales, self.location_std,
                                           self.learn_std, hidden, name=name)
    prior = head('policy', 0)(top, offset_t)
    q = None
    if label_code is not None:
      labels = jnp.broadcast_to(label_code, (*top.shape[:-1], label_code.shape[-1]))
      q = head('inference', self.inference_features)(
          jnp.concatenate([jax.lax.stop_gradient(top), labels], -1), offset_t)
    acting = (q if self.proposal == 'q' else prior).temper(self.temperature)
    location, scale = acting.sample(noise_t.location, noise_t.choice)  # [K, B, 2], [K, B]
    seen = jnp.clip(location, -1.0, 1.0)
    where = jnp.concatenate([seen, jax.nn.one_hot(scale, self.retina.num_scales)], -1)
    g = GlimpseNetwork(self.what_features, self.where_features, self.glimpse_features,
                       name='glimpse')(self.retina.read_at_scale(images, seen, scale), where)
    bottom, _ = ReLURNNCell(self.bottom_features, name='bottom')(bottom, g)
    top_input = bottom if self.policy_gradient_to_bottom else jax.lax.stop_gradient(bottom)
    top, _ = ReLURNNCell(self.top_features, name='top')(top, top_input)
    log_q = None if q is None else q.log_prob(location, scale)
    outputs = (prior.log_prob(location, scale), log_q, acting.log_prob(location, scale), prior, q,
               location, scale, bottom, top)
    return (bottom, top), outputs


class WakeSleepRAM(_StepSettings):
  """Prediction network, prior policy, inference network q and VAR's baseline; see module doc.

  Attributes:
    num_classes: C.
    retina: the glimpse's patch size and scales.
    low_res_size: side of the low-resolution view fed to the top layer.
    bottom_features, top_features: widths of the two recurrent layers.
    glimpse_features, what_features, where_features: the glimpse network's widths.
    inference_features: width of q's hidden layer.
    location_std: the location policies' std (their initial std when `learn_std`).
    learn_std: the policies emit a state-dependent location std.
    policy_gradient_to_bottom: let the policies' gradient (eq. 8's prior term, VAR's REINFORCE
      term) pass from the top layer into the bottom layer and the glimpse network (the paper's:
      one prediction network, every parameter trained by eq. 8). False: the top layer reads the
      bottom state through a stop_gradient, so the classifier alone trains the bottom layer and
      the glimpse network, and the policy alone trains the top layer and the context network.
    fused: run the rollout through `ws_ram_fused` (same values and gradients, faster updates).
    initial_location: where the policies' first glimpse starts: 'policy' (the paper's: the mean
      is tanh(Linear(h_0)), near the center for every image at initialisation) or 'centroid'
      (the image's intensity centroid c(x) enters the first mean of the prior and of q as an
      offset, tanh(Linear(h_0) + artanh(CENTROID_SHRINK * c(x))): at initialisation, where
      Linear(h_0) is small, the first glimpse starts near the ink; the policies still learn to
      move it).
  """

  num_classes: int = 10
  low_res_size: int = 10
  fused: bool = False
  initial_location: str = 'policy'

  @nn.compact
  def __call__(self, images: jax.Array, noise: ActionNoise, labels: jax.Array | None = None, *,
               proposal: str = 'prior', temperature: float = 1.0) -> WSRAMOutput:
    """Runs K rollouts per image with actions drawn from `proposal` tempered by `temperature`.

    Args:
      images: [B, H, W, C].
      noise: `ActionNoise` of [K, B, T, ...] arrays, `choice` [K, B, T, num_scales].
      labels: [B] int class labels; q runs only when they are given (and `init` needs them).
      proposal: 'prior' (p proposes) or 'q' (the inference network proposes; needs labels).
      temperature: sample from the proposal's p^(1/T); 1 for the proposal itself.

    Returns:
      `WSRAMOutput`, batch first: [B, K, T, ...].
    """
    if proposal not in PROPOSALS:
      raise ValueError(f'proposal must be one of {PROPOSALS}, got {proposal!r}')
    if proposal == 'q' and labels is None:
      raise ValueError("proposal 'q' needs labels")
    if temperature <= 0:
      raise ValueError(f'temperature must be > 0, got {temperature}')
    num_samples, batch = noise.location.shape[:2]
    if noise.choice is None or noise.choice.shape[-1] != self.retina.num_scales:
      shape = None if noise.choice is None else noise.choice.shape
      raise ValueError(f'noise.choice must be [K, B, T, {self.retina.num_scales}] Gumbel noise '
                       f'for the scales, got {shape}')
    if images.shape[0] != batch:
      raise ValueError(f'noise is for {batch} images, got {images.shape[0]}')

    initial_top = ContextNetwork(self.low_res_size, self.top_features, name='context')(images)
    baseline = nn.Dense(1, name='baseline')(jax.lax.stop_gradient(initial_top))[:, 0]  # [B]
    carry = (jnp.zeros((num_samples, batch, self.bottom_features), images.dtype),
             jnp.broadcast_to(initial_top, (num_samples, *initial_top.shape)))
    label_code = None if labels is None else jax.nn.one_hot(labels, self.num_classes)  # [B, C]
    time_major = jax.tree.map(lambda a: jnp.moveaxis(a, 2, 0), noise)  # [T, K, B, ...]
    offsets = self._mean_offsets(images, noise.location.shape[2])  # [T, 1, B, 2] or None
    if self.fused and not self.is_initializing():
      outputs = self._fused_rollout(images, carry[1], time_major, offsets, label_code, proposal,
                                    temperature)
    else:
      step = nn.scan(WSRAMStep, variable_broadcast='params', split_rngs={'params': False},
                     in_axes=(0, nn.broadcast, nn.broadcast), out_axes=0)(
          proposal=proposal, temperature=temperature, name='step',
          **settings_of(self, _StepSettings))
      _, outputs = step(carry, (time_major, offsets), images, label_code)
    outputs = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 2), outputs)  # [K, B, T, ...]
    log_prior, log_q, log_proposal, prior, q, locations, scales, bottoms, tops = outputs
    logits = nn.Dense(self.num_classes, name='classifier')(bottoms[:, :, -1])  # [K, B, C]
    return _batch_first(WSRAMOutput(jax.nn.log_softmax(logits, -1), log_prior, log_q,
                                    log_proposal, prior, q, locations, scales, baseline, bottoms,
                                    tops))

  def _mean_offsets(self, images, num_glimpses):
    """The location means' pre-tanh offsets per glimpse [T, 1, B, 2] (`initial_location`)."""
    if self.initial_location == 'policy':
      return None
    if self.initial_location != 'centroid':
      raise ValueError(f"initial_location must be 'policy' or 'centroid', "
                       f'got {self.initial_location!r}')
    first = jnp.arctanh(CENTROID_SHRINK * intensity_centroid(images))  # [B, 2]
    offsets = jnp.zeros((num_glimpses, 1, *first.shape), first.dtype)
    return offsets.at[0, 0].set(first)

  def _fused_rollout(self, images, top0, noise, offsets, label_code, proposal, temperature):
    """`WSRAMStep`'s scanned outputs, time-major [T, K, B, ...], through `ws_ram_fused`."""
    spec = ws_ram_fused.RolloutSpec(
        self.retina.read_at_scale, self.retina.num_scales, self.location_std, self.learn_std,
        self.inference_features, proposal, temperature, self.policy_gradient_to_bottom)
    step_params = self.variables['params']['step']
    bottoms, tops, locations, scales = ws_ram_fused.rollout(spec, step_params, images, top0,
                                                            noise, label_code, offsets)
    tops_prev = jnp.concatenate([top0[None], tops[:-1]], 0)  # [T, K, B, D2] the policies read
    prior = spec.policy(step_params, tops_prev, offsets)
    q = (None if label_code is None
         else spec.inference(step_params, tops_prev, label_code, offsets))
    acting = (q if proposal == 'q' else prior).temper(temperature)
    log_q = None if q is None else q.log_prob(locations, scales)
    return (prior.log_prob(locations, scales), log_q, acting.log_prob(locations, scales), prior,
            q, locations, scales, bottoms, tops)

