"""The convolutional baselines of Wu, Xu & Lee: a simple CNN (sec. 3.2) and a CNN with
multi-head self-attention over blocks of its feature map (sec. 2.3).

Both share `ConvTrunk`. Their text fixes the layers but not every width; the free ones are chosen
so the parameter counts on 40x40x1 canvases land on the paper's (1.83M and 0.47M):

  model                              params 40x40x1 (28x28x1)   multiply-adds 40x40x1 (28x28x1)
  SimpleCNN                          1,829,150 (902,174)         5,302,040 (2,599,448)
  SimpleCNN, layer_norm              1,829,718 (902,742)         5,302,040 (2,599,448)
  SelfAttentionCNN                     477,258 (403,530)        10,560,320 (6,162,752)
  SelfAttentionCNN, weighted_sum,      469,943 (469,943)        10,564,840 (6,236,392)
    hidden=740

Their "normalisation layer" is read here as layer normalisation plus dropout (`layer_norm`,
`dropout`; the paper names neither): after the hidden layer's product in `SimpleCNN`, after the
attention's residual sum in `SelfAttentionCNN`, dropout after the hidden ReLU in both. Dropout
acts only when called with `train=True` (and a 'dropout' rng).
"""

import math
from collections.abc import Mapping
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax.nets import flops
from glimpse_jax.nets.settings import is_positive_int


class ConvTrunk(nn.Module):
  """2x2 convolutions ('SAME' padding), each followed by ReLU and 2x2 max-pooling.

  Their text names one ReLU, after the second pooling; this puts one after each convolution, as
  is usual (ReLU commutes with max-pooling, so the second one is theirs).

  Attributes:
    features: filters of each convolution (32 then 64 in the paper).
  """

  features: Sequence[int] = (32, 64)

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    # images: [B, H, W, C] -> [B, ceil(H / 2^L), ceil(W / 2^L), features[-1]], L = len(features)
    x = images
    for i, width in enumerate(self.features):
      x = max_pool_2x2(nn.relu(Conv2x2(width, name=f'conv{i + 1}')(x)))
    return x


class Conv2x2(nn.Module):
  """A 2x2 convolution with 'SAME' padding, stride 1, as one matrix product of each cell's 2x2
  neighbourhood: the parameters and outputs of `nn.Conv(features, (2, 2), padding='SAME')`, and
  on CPU a training step of `SimpleCNN` 1.2-1.3x faster than XLA's convolution (few channels)."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # x: [B, H, W, C] -> [B, H, W, features]
    _, h, w, c = x.shape
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (2, 2, c, self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    padded = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # 'SAME' for 2x2: after, not before
    taps = [padded[:, i:i + h, j:j + w] for i in range(2) for j in range(2)]
    neighbourhoods = jnp.concatenate(taps, axis=-1)  # [B, H, W, 4C], kernel's (row, col, C) order
    return neighbourhoods @ kernel.reshape(4 * c, self.features) + bias


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 and 'SAME' padding (`nn.max_pool(x, (2, 2), (2, 2), 'SAME')`),
  as a max over a reshape: its gradient avoids XLA's select-and-scatter, which makes a CPU
  training step of `SimpleCNN` 1.5-1.75x slower."""
  # x: [B, H, W, C] -> [B, ceil(H / 2), ceil(W / 2), C]
  batch, h, w, c = x.shape
  x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
  return x.reshape(batch, (h + 1) // 2, 2, (w + 1) // 2, 2, c).max(axis=(2, 4))


class SimpleCNN(nn.Module):
  """`ConvTrunk`, flatten, a hidden ReLU layer, logits (Wu, Xu & Lee sec. 3.2).

  Attributes:
    num_classes: number of logits.
    hidden: width of the hidden dense layer; the paper gives none, 284 makes its 1.83M
      parameters on 40x40x1 inputs (nearly all in the dense layer, 6400 x 284).
    layer_norm: normalise the hidden layer's pre-activations (2 x hidden parameters).
    dropout: rate of dropout on the hidden ReLUs while training; 0: none.
  """

  num_classes: int = 10
  hidden: int = 284
  layer_norm: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    # images: [B, H, W, C] -> logits [B, num_classes]
    x = ConvTrunk(name='trunk')(images)  # [B, h, w, 64]
    x = x.reshape(x.shape[0], -1)  # [B, h * w * 64]
    x = nn.Dense(self.hidden, name='hidden')(x)  # [B, hidden]
    if self.layer_norm:
      x = nn.LayerNorm(name='norm')(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
    return nn.Dense(self.num_classes, name='logits')(x)


class SelfAttentionCNN(nn.Module):
  """`ConvTrunk`, then self-attention among blocks of its feature map, then a small classifier
  (Wu, Xu & Lee sec. 2.3).

  The feature map (zero-padded to a multiple of `block_size`) is cut into `block_size` x
  `block_size` blocks, each flattened into one token: on 40x40 inputs, 25 tokens of 2 * 2 * 64 =
  256 features. Multi-head dot-product attention among the tokens (queries, keys and values of
  the token width) is added back to them and layer-normalised (see `layer_norm`). The `head`
  then classifies the tokens: 'flatten' (no position embedding needed) feeds all of them to a
  hidden ReLU layer and the logits; 'weighted_sum' scores each token (a dense layer to one
  value), feeds the softmax-weighted sum of the tokens, one token-wide vector, to the hidden
  layer: the paper's weighted sum that "increases the operation but not parameters" (our
  reading), and a head whose input no longer scales with the tokens. The attention weights are
  sown as `intermediates/attention/attention_weights` (see `attention_weights`), the head's as
  `intermediates/pool_weights` [B, T].

  Attributes:
    num_classes: number of logits.
    block_size: side of a block in feature-map cells; 2 gives 256-wide tokens, whose attention
      (263K parameters) with the classifier makes the paper's 0.47M.
    num_heads: attention heads; 4 heads of 64 features (the count does not change the
      parameters).
    hidden: width of the classifier's hidden layer; 32 lands the total at 0.477M with the
      'flatten' head (its 6400 x 32 product holds 205K of them), 740 at 0.470M with the
      'weighted_sum' head (256 x 740), on 40x40 and 28x28 inputs alike.
    layer_norm: normalise the sum of tokens and attention (512 parameters). Without it the sum
      goes to the classifier as it is. With it and the 'flatten' head, Adam at 1e-3 silences
      nearly all 32 hidden ReLUs within the first updates on cluttered canvases (1 or 2 of 32
      left after 40 updates, at two seeds), since the normalised background blocks, alike in
      every image, move every unit's input together; the loss then stays at chance. The
      'weighted_sum' head trains with it.
    dropout: rate of dropout on the hidden ReLUs while training; 0: none.
    head: 'flatten' or 'weighted_sum' (see above).
  """

  num_classes: int = 10
  block_size: int = 2
  num_heads: int = 4
  hidden: int = 32
  layer_norm: bool = True
  dropout: float = 0.0
  head: str = 'flatten'

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    # images: [B, H, W, C] -> logits [B, num_classes]
    tokens = blocks(ConvTrunk(name='trunk')(images), self.block_size)  # [B, T, D]
    width = tokens.shape[-1]
    if width % self.num_heads:
      raise ValueError(
          f'num_heads must divide the token width {width} (block_size^2 x 64), got '
          f'{self.num_heads}')
    attended = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, qkv_features=width, out_features=width, name='attention')(
            tokens, deterministic=True, sow_weights=True)  # [B, T, D]
    x = tokens + attended
    if self.layer_norm:
      x = nn.LayerNorm(name='norm')(x)
    if self.head == 'weighted_sum':
      scores = nn.Dense(1, name='pool')(x)[..., 0]  # [B, T]
      weights = jax.nn.softmax(scores, axis=-1)
      self.sow('intermediates', 'pool_weights', weights)
      x = jnp.einsum('bt,btd->bd', weights, x)  # [B, D]
    elif self.head == 'flatten':
      x = x.reshape(x.shape[0], -1)  # [B, T * D]
    else:
      raise ValueError(f"head must be 'flatten' or 'weighted_sum', got {self.head!r}")
    x = nn.Dropout(self.dropout, deterministic=not train)(
        nn.relu(nn.Dense(self.hidden, name='hidden')(x)))
    return nn.Dense(self.num_classes, name='logits')(x)


def blocks(features: jax.Array, block_size: int) -> jax.Array:
  """Non-overlapping square blocks of a feature map as tokens, in row-major block order.

  Args:
    features: `[B, h, w, C]`; zero-padded at the bottom and right to multiples of `block_size`.
    block_size: side of a block in cells.

  Returns:
    `[B, ceil(h / b) * ceil(w / b), b * b * C]` with `b = block_size`.
  """
  if not is_positive_int(block_size):
    raise ValueError(f'block_size must be an integer >= 1, got {block_size!r}')
  b = block_size
  batch, h, w, c = features.shape
  rows, cols = math.ceil(h / b), math.ceil(w / b)
  x = jnp.pad(features, ((0, 0), (0, rows * b - h), (0, cols * b - w), (0, 0)))
  x = x.reshape(batch, rows, b, cols, b, c).transpose(0, 1, 3, 2, 4, 5)  # [B, r, c, b, b, C]
  return x.reshape(batch, rows * cols, b * b * c)


def attention_weights(model: SelfAttentionCNN, variables, images: jax.Array) -> jax.Array:
  """The attention weights `[B, heads, T, T]` (rows: querying blocks; each row sums to 1)."""
  _, state = model.apply(variables, images, mutable=['intermediates'])
  return state['intermediates']['attention']['attention_weights'][0]


def flops_per_image(model: nn.Module, image_shape: Sequence[int]) -> int:
  """FLOPs of one forward pass on one `[H, W, C]` image: 2 x the multiply-adds of its
  convolutions (taps on 'SAME' padding included) and matrix products, attention's among them
  (`flops.multiply_adds`; elementwise work left out)."""
  image = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), image)
  return 2 * flops.multiply_adds(model.apply, variables, image)


def cnn_name(model: Mapping[str, Any], dataset: str) -> str:
  """A CNN's name from its model fields (`name`, and `head`, `hidden`, `layer_norm`, `dropout`
  where set) on the dataset named `dataset`."""
  name = 'simple CNN' if model['name'] == 'simple_cnn' else 'self-attention CNN'
  name = f'{name}, {dataset}'
  if model.get('head') == 'weighted_sum':
    name += f", weighted-sum head of {model['hidden']}"
  if model.get('layer_norm'):
    name += ', layer norm'
  if model.get('dropout'):
    name += f", dropout {model['dropout']:g}"
  return name
