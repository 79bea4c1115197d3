"""An attentional variational posterior over classes from any set of glimpses (Harvey et al.).

Each (patch, location) pair is embedded by a small CNN and a location pathway; the embeddings are
averaged over the glimpses taken (order-invariant, any number, a mask for padding) and an MLP
maps the mean to class logits. Pooling is a sum and a count, so the experimental-design search
embeds the glimpses already taken once and adds one candidate's embedding at a time (`classify`).
Averaging loses where the glimpses lie relative to each other; `canvas_posterior.CanvasPosterior`
reads the observed pixels in place instead, at the cost of one whole-canvas evaluation per outcome.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class GlimpseEmbedding(nn.Module):
  """e(patch, location): two strided 3x3 convolutions on the patch, a ReLU layer on the location.

  Attributes:
    features: width of the embedding.
    channels: the two convolutions' channels.
  """

  features: int = 128
  channels: tuple[int, int] = (8, 16)

  @nn.compact
  def __call__(self, patches: jax.Array, locations: jax.Array) -> jax.Array:
    # patches: [..., S, h, w, C] retina output (scales stacked as channels); locations: [..., 2]
    *lead, scales, height, width, channels = patches.shape
    x = jnp.moveaxis(patches, -4, -2).reshape(-1, height, width, scales * channels)  # [N, h, w, SC]
    for i, width_i in enumerate(self.channels):
      x = nn.relu(nn.Conv(width_i, (3, 3), strides=2, name=f'conv{i}')(x))
    what = nn.relu(nn.Dense(self.features, name='what')(x.reshape(x.shape[0], -1)))
    what = what.reshape(*lead, self.features)  # [..., F]
    where = nn.relu(nn.Dense(self.features // 2, name='where')(locations))  # [..., F/2]
    return nn.relu(nn.Dense(self.features, name='combine')(jnp.concatenate([what, where], -1)))


class AttentionalPosterior(nn.Module):
  """p(class | glimpses): mean-pooled glimpse embeddings -> MLP -> logits.

  Attributes:
    num_classes: classes of the posterior.
    features: width of the embedding and of the MLP's hidden layer.
    channels: the embedding CNN's channels.
  """

  num_classes: int = 10
  features: int = 128
  channels: tuple[int, int] = (8, 16)

  def setup(self):
    self.embedding = GlimpseEmbedding(self.features, self.channels)
    self.hidden = nn.Dense(self.features)
    self.out = nn.Dense(self.num_classes)

  def embed(self, patches: jax.Array, locations: jax.Array) -> jax.Array:
    """[..., S, h, w, C], [..., 2] -> [..., F] one embedding per glimpse."""
    return self.embedding(patches, locations)

  def classify(self, pooled_sum: jax.Array, count: jax.Array) -> jax.Array:
    """Logits [..., num_classes] from the sum [..., F] of `count` [...] glimpses' embeddings.

    With no glimpse (count 0) the mean is the zero vector: the posterior's learned prior.
    """
    mean = pooled_sum / jnp.maximum(count, 1.0)[..., None]
    return self.out(nn.relu(self.hidden(mean)))

  def __call__(self, patches: jax.Array, locations: jax.Array, mask: jax.Array) -> jax.Array:
    """Logits [B, num_classes] from glimpses [B, N, S, h, w, C] at [B, N, 2], mask [B, N]."""
    embeddings = self.embed(patches, locations) * mask[..., None]  # [B, N, F]
    return self.classify(embeddings.sum(-2), mask.sum(-1))
