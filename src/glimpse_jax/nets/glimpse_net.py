"""The glimpse network of Mnih et al. 2014: what (retina) and where (location) pathways."""

import flax.linen as nn
import jax
import jax.numpy as jnp


class GlimpseNetwork(nn.Module):
  """g = relu(Linear(h_what) + Linear(h_where)) with h_what = relu(Linear(patch)), h_where =
  relu(Linear(location)) (Mnih et al. 2014, sec. 4). The two outer Linears are one Dense on the
  concatenation, which is the same map with one bias.

  Attributes:
    what_features: width of the retina pathway (128 in the paper).
    where_features: width of the location pathway (128 in the paper).
    features: width of the glimpse feature g (256 in the paper).
  """

  what_features: int = 128
  where_features: int = 128
  features: int = 256

  @nn.compact
  def __call__(self, patch: jax.Array, location: jax.Array) -> jax.Array:
    # patch: [..., P] flattened retina output; location: [..., 2]
    h_what = nn.relu(nn.Dense(self.what_features, name='what')(patch))
    h_where = nn.relu(nn.Dense(self.where_features, name='where')(location))
    return nn.relu(nn.Dense(self.features, name='combine')(jnp.concatenate([h_what, h_where], -1)))
