"""The retina a glimpse model reads through: `size` x `size` patches at `num_scales` scales.

One spec for every model: RAM reads all the scales at once (`read`), WS-RAM reads the one scale its
policy chose (`read_at_scale`). Both batch `glimpse.retina` over examples.
"""

import dataclasses

import jax

from glimpse_jax import glimpse
from glimpse_jax.nets.settings import is_positive_int


@dataclasses.dataclass(frozen=True)
class RetinaSpec:
  """Static retina settings: patch side `size`, `num_scales` scales, `scale_factor` between them."""

  size: int = 8
  num_scales: int = 1
  scale_factor: int = 2

  def __post_init__(self):
    for name in ('size', 'num_scales', 'scale_factor'):
      value = getattr(self, name)
      if not is_positive_int(value):
        raise ValueError(f'retina {name} must be an integer >= 1, got {value!r}')

  def read(self, images: jax.Array, locations: jax.Array) -> jax.Array:
    """Every scale, flattened: images [B, H, W, C], locations [B, 2] -> [B, P], the
    P = num_scales * size * size * C values read."""
    read_one = lambda image, location: glimpse.retina(
        image, location, size=self.size, num_scales=self.num_scales, scale_factor=self.scale_factor)
    patches = jax.vmap(read_one)(images, locations)  # [B, S, size, size, C]
    return patches.reshape(patches.shape[0], -1)

  def read_at_scale(self, images: jax.Array, locations: jax.Array, scales: jax.Array) -> jax.Array:
    """One chosen scale per glimpse, flattened: [B, H, W, C], [K, B, 2], [K, B] -> [K, B, P].

    Arguments are images, locations and scale indices; K indexes rollouts of the same images and
    P = size*size*C.
    """
    read_one = lambda image, location, scale: glimpse.retina_at_scale(
        image, location, scale, size=self.size, num_scales=self.num_scales,
        scale_factor=self.scale_factor)
    per_example = jax.vmap(read_one)  # over B
    patches = jax.vmap(per_example, in_axes=(None, 0, 0))(images, locations, scales)
    return patches.reshape(*scales.shape, -1)
