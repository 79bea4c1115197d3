"""Non-variational DRAW without write attention (Gregor et al. 2015; Lindsey 2017, section 2).

At step t = 1..T the read parameters `g_t` are a linear map of the previous decoder output
`h_dec_{t-1}` (zeros at t = 1, so `g_1` is the read layer's bias, see `read_bias`), `r_t = draw_read(x, g_t)`, the
encoder LSTM takes `[r_t, h_dec_{t-1}]`, a linear layer maps `h_enc_t` to `z_t` and the decoder
LSTM takes `z_t`. The steps run under `nn.scan`; every weight matrix is Xavier-uniform.

Parameters: `params/draw/step/{read, encoder, latent, decoder}` (the recurrent part that
pre-training hands on), then one head: `params/classifier/{hidden, logits}` or
`params/reconstruction`.
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax import glimpse

HEADS = ('classifier', 'reconstruction', 'none')
READ_INITS = ('blur', 'digit', 'zeros')
DIGIT_SIDE = 28  # pixels spanned by the first read under read_init='digit'
READ_PARAMS = 5  # (gx~, gy~, log sigma^2, log delta~, log gamma)
xavier = nn.initializers.xavier_uniform()


class DrawTrace(NamedTuple):
  """What the recurrent part produced at every step."""
  read_params: jax.Array  # [B, T, 5] g_t
  glimpses: jax.Array  # [B, T, n, n, C] r_t
  decoder: jax.Array  # [B, T, hidden] h_dec_t


class _DrawStep(nn.Module):
  """One DRAW step: carry `((c_enc, h_enc), (c_dec, h_dec))` -> the next, and `(g_t, r_t, h_dec_t)`."""
  read_size: int
  hidden: int
  latent: int
  read_init: str

  @nn.compact
  def __call__(self, carry, images):  # images [B, H, W, C]
    encoder_carry, decoder_carry = carry
    h_dec = decoder_carry[1]  # [B, hidden] h_dec_{t-1}
    bias = read_bias(self.read_init, self.read_size, *images.shape[1:3])
    read_params = nn.Dense(READ_PARAMS, kernel_init=xavier, bias_init=lambda *_: bias,
                           name='read')(h_dec)  # [B, 5]
    read = functools.partial(glimpse.draw_read, n=self.read_size)
    glimpses = jax.vmap(read)(images, read_params)  # [B, n, n, C]
    inputs = jnp.concatenate([glimpses.reshape(glimpses.shape[0], -1), h_dec], axis=-1)
    encoder_carry, h_enc = nn.OptimizedLSTMCell(
        self.hidden, kernel_init=xavier, recurrent_kernel_init=xavier, name='encoder')(
            encoder_carry, inputs)
    z = nn.Dense(self.latent, kernel_init=xavier, name='latent')(h_enc)  # [B, latent]
    decoder_carry, h_dec = nn.OptimizedLSTMCell(
        self.hidden, kernel_init=xavier, recurrent_kernel_init=xavier, name='decoder')(
            decoder_carry, z)
    return (encoder_carry, decoder_carry), (read_params, glimpses, h_dec)


def read_bias(read_init: str, n: int, height: int, width: int) -> jax.Array:
  """The read layer's initial bias, hence `g_1`, a grid at the image centre.

  'zeros': the grid spans the image with sigma = 1 pixel, so each filter samples one pixel near
  the border, blank in MNIST, and the read's gradients all but vanish. 'blur': the same grid seen
  through Gaussians of sigma = stride / 2. 'digit': a grid spanning DIGIT_SIDE pixels (the
  image, if smaller), sigma = stride / 2: a view of one digit wherever the read is moved.
  """
  if read_init not in READ_INITS:
    raise ValueError(f'read_init must be one of {list(READ_INITS)}, got {read_init!r}')
  if read_init == 'zeros':
    return jnp.zeros(READ_PARAMS)
  span = max(height, width) - 1  # between the outer filters' means at log delta~ = 0
  covered = span if read_init == 'blur' else min(DIGIT_SIDE - 1, span)  # the first grid's span
  stride = covered / (n - 1)
  return jnp.array([0.0, 0.0, 2 * jnp.log(stride / 2), jnp.log(covered / span), 0.0])


class DrawCore(nn.Module):
  """The T scanned steps over a batch of images `[B, H, W, C]` -> `DrawTrace`; `unroll` steps
  per iteration of the compiled loop (the same values; only speed and compile time differ)."""
  read_size: int = 5
  hidden: int = 256
  latent: int = 10
  steps: int = 10
  read_init: str = 'blur'
  unroll: int = 1

  @nn.compact
  def __call__(self, images: jax.Array) -> DrawTrace:
    scan = nn.scan(_DrawStep, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=nn.broadcast, out_axes=1, length=self.steps, unroll=self.unroll)
    zeros = jnp.zeros((images.shape[0], self.hidden), images.dtype)  # [B, hidden]
    carry = ((zeros, zeros), (zeros, zeros))
    _, (read_params, glimpses, decoder) = scan(
        self.read_size, self.hidden, self.latent, self.read_init, name='step')(carry, images)
    return DrawTrace(read_params, glimpses, decoder)


class DrawModel(nn.Module):
  """`DrawCore` (named `draw`) and a head on `h_dec_T`.

  Heads: 'classifier' (linear + ReLU of `classifier_hidden`, then class logits), 'reconstruction'
  (one logit per pixel of the image, for a sigmoid and binary cross-entropy) or 'none' (`None`).
  Returns `(head output, DrawTrace)`.
  """
  head: str = 'classifier'
  read_size: int = 5
  hidden: int = 256
  latent: int = 10
  steps: int = 10
  read_init: str = 'blur'
  classifier_hidden: int = 256
  num_classes: int = 10
  unroll: int = 1

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array | None, DrawTrace]:
    if self.head not in HEADS:
      raise ValueError(f'head must be one of {list(HEADS)}, got {self.head!r}')
    trace = DrawCore(self.read_size, self.hidden, self.latent, self.steps, self.read_init,
                     self.unroll, name='draw')(images)
    final = trace.decoder[:, -1]  # [B, hidden] h_dec_T
    if self.head == 'classifier':
      return DrawClassifier(self.classifier_hidden, self.num_classes, name='classifier')(final), trace
    if self.head == 'reconstruction':
      pixels = images[0].size
      logits = nn.Dense(pixels, kernel_init=xavier, name='reconstruction')(final)  # [B, H*W*C]
      return logits.reshape(images.shape), trace
    return None, trace


class DrawClassifier(nn.Module):
  """`h_dec_T [B, hidden]` -> linear + ReLU (`features`) -> class logits `[B, num_classes]`."""
  features: int = 256
  num_classes: int = 10

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = nn.relu(nn.Dense(self.features, kernel_init=xavier, name='hidden')(h))
    return nn.Dense(self.num_classes, kernel_init=xavier, name='logits')(h)


class SequenceClassifier(nn.Module):
  """An LSTM without attention over per-step features `[B, T, F]`, then `DrawClassifier` on its
  last output: Lindsey's tester of how much a sequence of reads tells about the class."""
  hidden: int = 256
  classifier_hidden: int = 256
  num_classes: int = 10

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    # The cell is made here, so its parameters sit under this module, named 'lstm'.
    cell = nn.OptimizedLSTMCell(self.hidden, kernel_init=xavier, recurrent_kernel_init=xavier,
                                name='lstm')
    outputs = nn.RNN(cell)(features)  # [B, T, hidden]
    return DrawClassifier(self.classifier_hidden, self.num_classes, name='classifier')(
        outputs[:, -1])
