"""The context network: a low-resolution view of the whole image, read once per image.

Area downsampling averages each output pixel over the input area it covers (fractional overlaps at
the borders when the sizes do not divide), as two small matrix products per image.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights; row i averages inputs [i * n_in / n_out, (i + 1) * n_in / n_out)."""
  if n_in < 1 or n_out < 1:
    raise ValueError(f'sizes must be >= 1, got n_in={n_in}, n_out={n_out}')
  edges = np.arange(n_out + 1) * (n_in / n_out)  # [n_out + 1] in input pixels
  pixels = np.arange(n_in)  # pixel j spans [j, j + 1)
  overlap = (np.minimum(edges[1:, None], pixels[None, :] + 1)
             - np.maximum(edges[:-1, None], pixels[None, :]))  # [n_out, n_in]
  return (np.clip(overlap, 0.0, None) * (n_out / n_in)).astype(np.float32)


def area_downsample(images: jax.Array, size: int) -> jax.Array:
  """Area-averaged size x size copies of a batch: [B, H, W, C] -> [B, size, size, C]."""
  if jnp.ndim(images) != 4:
    raise ValueError(f'images must be [B, H, W, C], got shape {jnp.shape(images)}')
  batch, height, width, channels = images.shape
  rows = jnp.asarray(area_matrix(height, size), images.dtype)  # [size, H]
  cols = jnp.asarray(area_matrix(width, size), images.dtype)  # [size, W]
  # Columns first, as one matrix product over every image row (no copy of the batch for C = 1).
  x = jnp.moveaxis(images, 3, 1).reshape(batch * channels * height, width) @ cols.T  # [BCH, size]
  x = jnp.einsum('ih,nhj->nij', rows, x.reshape(batch * channels, height, size))  # [BC, size, size]
  return jnp.moveaxis(x.reshape(batch, channels, size, size), 1, 3)


class ContextNetwork(nn.Module):
  """h = relu(Linear(flatten(area_downsample(image, size)))): [B, H, W, C] -> [B, features]."""

  size: int
  features: int

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    low_res = area_downsample(images, self.size)  # [B, size, size, C]
    return nn.relu(nn.Dense(self.features, name='dense')(low_res.reshape(low_res.shape[0], -1)))
