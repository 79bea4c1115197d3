"""A class posterior that reads the masked canvas: p(class | the pixels the glimpses observed).

The input is the canvas with the unobserved pixels zeroed and the observation mask as one more
channel (`[H, W, C + 1]`; a glimpse observes the pixels of its finest retina patch, as the
completion model's condition). A `stem` x `stem` convolution of stride `stem` (non-overlapping
blocks: one matrix product, several times faster on a CPU than a 3x3 convolution over the full
canvas, which matters as the design evaluates the network S x N times per step), strided 3x3
convolutions, a ReLU layer and class logits. Unlike the
mean-pooled `AttentionalPosterior`, it sees where the glimpses overlap and how the observed strokes
join, so its entropy keeps falling as glimpses accumulate; the price is one network evaluation of
the whole canvas per (completion, candidate) outcome in the experimental design.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class CanvasPosterior(nn.Module):
  """p(class | observed canvas, mask): a small strided CNN.

  Attributes:
    num_classes: classes of the posterior.
    features: width of the hidden layer.
    channels: the convolutions' channels: the stem's, then one strided 3x3 convolution each.
    stem: side of the stem's blocks (and its stride).
  """

  num_classes: int = 10
  features: int = 128
  channels: tuple[int, ...] = (16, 32, 64)
  stem: int = 4

  @nn.compact
  def __call__(self, canvas: jax.Array, mask: jax.Array) -> jax.Array:
    """Logits [..., num_classes] from canvases [..., H, W, C] and masks [..., H, W].

    The canvas is multiplied by the mask here, so the unobserved pixels never reach the network.
    """
    *lead, height, width, channels = canvas.shape
    x = jnp.concatenate([canvas * mask[..., None], mask[..., None]], -1)
    x = x.reshape(-1, height, width, channels + 1)  # [N, H, W, C + 1]
    x = nn.relu(nn.Conv(self.channels[0], (self.stem, self.stem), strides=self.stem,
                        name='conv0')(x))  # [N, H / stem, W / stem, channels[0]]
    for i, width_i in enumerate(self.channels[1:], 1):
      x = nn.relu(nn.Conv(width_i, (3, 3), strides=2, name=f'conv{i}')(x))
    x = nn.relu(nn.Dense(self.features, name='hidden')(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes, name='out')(x).reshape(*lead, self.num_classes)
