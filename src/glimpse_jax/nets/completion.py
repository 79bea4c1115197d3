"""A stochastic image-completion model: a conditional VAE over the canvas given the glimpses seen.

The condition is the canvas with only the observed pixels kept and the observation mask
(`[H, W, C + 1]`); a glimpse observes the pixels of its finest retina patch. Three networks:
- prior p(z | c): a strided CNN on the condition (its maps also feed the decoder as skips);
- posterior q(z | x, c): the same CNN on the full image and the condition (training only);
- decoder p(x | z, c): z as a coarse map, upsampled twice with the condition's maps joined in,
  Bernoulli logits per pixel.
A completion is drawn from the model given the condition: a latent from the prior p(z | c), then
either the decoder's mean image given it, or (with `pixel_noise`) pixels drawn from the decoder's
Bernoulli likelihood, so that completions vary pixel by pixel as well as through the latent. The
observed pixels are put back either way, so every sample agrees with the glimpses seen. Trained by
the negative ELBO: binary cross-entropy + KL(q || p).

Choices where Harvey et al. leave freedom (they use a pre-trained image-completion network): a
small convolutional CVAE, a latent of `latent` Gaussians, maps at 1/2 and 1/4 of the canvas side.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax.distributions import gaussian_kl
from glimpse_jax.glimpse import loc_to_pixel


def observed_mask(locations: jax.Array, taken: jax.Array, *, height: int, width: int,
                  size: int) -> jax.Array:
  """[H, W] 1 on the pixels read by the `taken` [N] glimpses' patches at `locations` [N, 2].

  The windows are the retina's finest patches (top-left pixel floor(c - size / 2 + 0.5)). This
  builds the completion model's whole-image condition once per glimpse set; the glimpses
  themselves are read by the retina.
  """
  corner = jnp.floor(loc_to_pixel(locations, height, width) - size / 2 + 0.5)  # [N, 2] (col, row)
  rows = jnp.arange(height, dtype=corner.dtype)
  cols = jnp.arange(width, dtype=corner.dtype)
  in_rows = (rows >= corner[:, 1:2]) & (rows < corner[:, 1:2] + size)  # [N, H]
  in_cols = (cols >= corner[:, 0:1]) & (cols < corner[:, 0:1] + size)  # [N, W]
  seen = in_rows[:, :, None] & in_cols[:, None, :] & (taken[:, None, None] > 0)  # [N, H, W]
  return jnp.any(seen, 0).astype(jnp.float32)


def condition(images: jax.Array, mask: jax.Array) -> jax.Array:
  """The completion model's input: observed pixels and the mask, [B, H, W, C], [B, H, W] ->
  [B, H, W, C + 1]."""
  return jnp.concatenate([images * mask[..., None], mask[..., None]], -1)


class _Encoder(nn.Module):
  """Strided CNN -> (mean, log std) of the latent, and its two maps."""

  latent: int
  channels: tuple[int, int]

  @nn.compact
  def __call__(self, x):
    half = nn.relu(nn.Conv(self.channels[0], (4, 4), strides=2, name='conv0')(x))  # [B, H/2, ..]
    quarter = nn.relu(nn.Conv(self.channels[1], (4, 4), strides=2, name='conv1')(half))
    stats = nn.Dense(2 * self.latent, name='stats')(quarter.reshape(quarter.shape[0], -1))
    mean, log_std = jnp.split(stats, 2, -1)
    return (mean, jnp.clip(log_std, -6.0, 3.0)), (half, quarter)


class CompletionVAE(nn.Module):
  """p(x | observed glimpses) as a conditional VAE (see module doc).

  Attributes:
    channels: image channels C.
    latent: latent dimensions.
    features: channels of the encoders' two maps.
  """

  channels: int = 1
  latent: int = 32
  features: tuple[int, int] = (16, 32)

  def setup(self):
    self.prior = _Encoder(self.latent, self.features)
    self.posterior = _Encoder(self.latent, self.features)
    self.seed = nn.Dense(self.features[1] // 2)
    self.mid = nn.Conv(self.features[1], (3, 3))
    self.up0 = nn.ConvTranspose(self.features[0], (3, 3), strides=(2, 2))
    self.up1 = nn.ConvTranspose(self.features[0] // 2, (3, 3), strides=(2, 2))
    self.out = nn.Conv(self.channels, (3, 3))

  def encode_condition(self, cond: jax.Array):
    """The prior's (mean, log std) and the condition's maps: shared by every sample."""
    return self.prior(cond)

  def decode(self, z: jax.Array, cond: jax.Array, maps) -> jax.Array:
    """Pixel logits [B, H, W, C] from latents [B, Z], the condition and its maps."""
    half, quarter = maps
    height, width = cond.shape[1:3]
    seed = self.seed(z)[:, None, None, :]  # [B, 1, 1, F]
    x = jnp.concatenate([jnp.broadcast_to(seed, (*quarter.shape[:3], seed.shape[-1])), quarter], -1)
    x = nn.relu(self.mid(x))
    x = nn.relu(self.up0(x))[:, :half.shape[1], :half.shape[2]]  # [B, H/2, W/2, F0]
    x = nn.relu(self.up1(jnp.concatenate([x, half], -1)))[:, :height, :width]
    return self.out(jnp.concatenate([x, cond], -1))

  def sample(self, cond: jax.Array, noise: jax.Array,
             pixel_noise: jax.Array | None = None) -> jax.Array:
    """Completions [B, S, H, W, C] in [0, 1] for standard-normal `noise` [B, S, Z]: the
    condition [B, H, W, C + 1] is encoded once per image; observed pixels are the condition's.

    Without `pixel_noise` a completion is the decoder's mean image; with uniform `pixel_noise`
    [B, S, H, W, C] in [0, 1) each pixel is 1 where the noise is below the decoder's Bernoulli
    probability, 0 elsewhere (a draw of the likelihood).
    """
    (mean, log_std), (half, quarter) = self.encode_condition(cond)
    batch, samples = noise.shape[:2]
    z = mean[:, None] + jnp.exp(log_std)[:, None] * noise  # [B, S, Z]
    tile = lambda x: jnp.repeat(x, samples, axis=0)  # [B * S, ...]
    logits = self.decode(z.reshape(batch * samples, -1), tile(cond), (tile(half), tile(quarter)))
    probs = jax.nn.sigmoid(logits).reshape(batch, samples, *logits.shape[1:])
    if pixel_noise is not None:
      probs = (pixel_noise < probs).astype(probs.dtype)
    observed, mask = cond[:, None, ..., :-1], cond[:, None, ..., -1:]
    return mask * observed + (1.0 - mask) * probs

  def __call__(self, images: jax.Array, cond: jax.Array, noise: jax.Array):
    """(pixel logits [B, H, W, C], KL(q || p) [B]) for a reparameterised posterior sample."""
    (p_mean, p_log_std), maps = self.encode_condition(cond)
    (q_mean, q_log_std), _ = self.posterior(jnp.concatenate([images, cond], -1))
    z = q_mean + jnp.exp(q_log_std) * noise
    kl = gaussian_kl(q_mean, q_log_std, p_mean, p_log_std)  # [B]
    return self.decode(z, cond, maps), kl
