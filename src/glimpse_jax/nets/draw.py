"""Non-variational DRAW without write attention (Gregor et al. 2015; Lindsey 2017, section 2).

At step t = 1..T the read parameters `g_t` are a linear map of the previous decoder output
`h_dec_{t-1}` (zeros at t = 1, so `g_1` is the read layer's bias, see `read_bias`), `r_t = draw_read(x, g_t)`, the
encoder LSTM takes `[r_t, h_dec_{t-1}]`, a linear layer maps `h_enc_t` to `z_t` and the decoder
LSTM takes `z_t`. The steps run under `nn.scan`; every weight matrix is Xavier-uniform.

The read is Gregor's (`glimpse.draw_read`, each filter normalised to sum to one over the image:
`read_norm='image'`) or, with `read_norm='full'`, each filter divided by its whole Gaussian mass,
so that a filter off the image reads ~nothing instead of a ramp over the image's nearest part
(`full_mass_read`); `log_gamma_bound > 0` bounds log gamma to that range (`bound_log_gamma`).
`read_stats` says where the reads went: per step, log gamma, sigma, stride, center and the share
of the filters' Gaussian mass inside the image (`in_image_mass`).

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
READ_NORMS = ('image', 'full')  # Gregor's (sum to one over the image), or by the whole Gaussian
DIGIT_SIDE = 28  # pixels spanned by the first read under read_init='digit'
# On an image no wider than DIGIT_SIDE (28x28 MNIST, whose digits are size-normalised into a
# centered 20x20 box) the 'digit' grid's box (n strides, as `read_windows.read_windows` draws it).
DIGIT_BOX = 20
READ_PARAMS = 5  # (gx~, gy~, log sigma^2, log delta~, log gamma)
_SQRT2 = 2 ** 0.5
OFF_IMAGE_MASS = 0.5  # a read is "off the image" when less of its mass than this lies inside
xavier = nn.initializers.xavier_uniform()


class DrawTrace(NamedTuple):
  """What the recurrent part produced at every step."""
  read_params: jax.Array  # [B, T, 5] g_t
  glimpses: jax.Array  # [B, T, n, n, C] r_t
  decoder: jax.Array  # [B, T, hidden] h_dec_t


class _DrawStep(nn.Module):
  """One DRAW step: carry `((c_enc, h_enc), (c_dec, h_dec))` -> the next, and `(g_t, r_t, h_dec_t)`.

  Attributes:
    read_norm: one of READ_NORMS ('image': Gregor's read; 'full': `full_mass_read`).
    log_gamma_bound: > 0 bounds log gamma to (-bound, bound) (`bound_log_gamma`); 0 leaves it.
  """
  read_size: int
  hidden: int
  latent: int
  read_init: str
  read_norm: str = 'image'
  log_gamma_bound: float = 0.0

  @nn.compact
  def __call__(self, carry, images):  # images [B, H, W, C]
    encoder_carry, decoder_carry = carry
    h_dec = decoder_carry[1]  # [B, hidden] h_dec_{t-1}
    bias = read_bias(self.read_init, self.read_size, *images.shape[1:3])
    read_params = nn.Dense(READ_PARAMS, kernel_init=xavier, bias_init=lambda *_: bias,
                           name='read')(h_dec)  # [B, 5]
    read_params = bound_log_gamma(read_params, self.log_gamma_bound)  # [B, 5] the g_t used
    reader = full_mass_read if self.read_norm == 'full' else glimpse.draw_read
    read = functools.partial(reader, n=self.read_size)
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
  """The read layer's initial bias, hence `g_1`, a grid at the image center.

  'zeros': the grid spans the image with sigma = 1 pixel, so each filter samples one pixel near
  the border, blank in MNIST, and the read's gradients all but vanish. 'blur': the same grid seen
  through Gaussians of sigma = stride / 2. 'digit': sigma = stride / 2 with the outer filters'
  means DIGIT_SIDE - 1 pixels apart, a view of one digit wherever the read is moved; on an image
  no wider than that (28x28 MNIST, where such a grid would be 'blur') the grid's box of n strides
  spans the DIGIT_BOX pixels of the digit instead (n = 2: means 10 px apart, sigma 5 px).
  """
  if read_init not in READ_INITS:
    raise ValueError(f'read_init must be one of {list(READ_INITS)}, got {read_init!r}')
  if read_init == 'zeros':
    return jnp.zeros(READ_PARAMS)
  span = max(height, width) - 1  # between the outer filters' means at log delta~ = 0
  if read_init == 'blur':
    covered = span  # the first grid's span between its outer means
  elif span > DIGIT_SIDE - 1:
    covered = DIGIT_SIDE - 1
  else:
    covered = min(DIGIT_BOX, span + 1) * (n - 1) / n
  stride = covered / (n - 1)
  return jnp.array([0.0, 0.0, 2 * jnp.log(stride / 2), jnp.log(covered / span), 0.0])


def bound_log_gamma(read_params: jax.Array, bound: float) -> jax.Array:
  """`[..., 5]` read parameters with log gamma mapped to `bound * tanh(log gamma / bound)`: the
  identity near 0, never beyond +-bound; `bound` 0 returns them unchanged (Gregor's read)."""
  if bound < 0:
    raise ValueError(f'log_gamma_bound must be >= 0, got {bound}')
  if not bound:
    return read_params
  log_gamma = bound * jnp.tanh(read_params[..., 4:] / bound)  # [..., 1]
  return jnp.concatenate([read_params[..., :4], log_gamma], axis=-1)


class ReadGeometry(NamedTuple):
  """Where DRAW read grids lie (`glimpse.draw_filterbank`'s equations), in pixels from the
  image's top-left corner (pixel j spans [j, j + 1)); `[...]` the read parameters' batch shape."""
  center: jax.Array  # [..., 2] the grid center (gX, gY) as a location (x, y)
  means_x: jax.Array  # [..., n] the filters' means along x
  means_y: jax.Array  # [..., n] along y
  stride: jax.Array  # [...] delta, pixels
  sigma: jax.Array  # [...] pixels
  log_gamma: jax.Array  # [...]


def read_geometry(read_params: jax.Array, *, n: int, height: int, width: int) -> ReadGeometry:
  """The filter means, stride, sigma and center of `[..., 5]` read parameters on an image of
  `height` x `width` (1-based pixel centers, as `glimpse.draw_filterbank` counts them)."""
  gx_tilde, gy_tilde, log_variance, log_delta_tilde, log_gamma = jnp.moveaxis(read_params, -1, 0)
  gx = (width + 1) / 2 * (gx_tilde + 1)  # 1-based pixel center index
  gy = (height + 1) / 2 * (gy_tilde + 1)
  stride = (max(width, height) - 1) / (n - 1) * jnp.exp(log_delta_tilde)
  offsets = jnp.arange(1, n + 1, dtype=read_params.dtype) - n / 2 - 0.5  # [n]
  means_x = (gx - 0.5)[..., None] + offsets * stride[..., None]  # [..., n] index a -> a - 0.5
  means_y = (gy - 0.5)[..., None] + offsets * stride[..., None]
  center = glimpse.draw_center(read_params, height=height, width=width)
  return ReadGeometry(center, means_x, means_y, stride, jnp.exp(log_variance / 2), log_gamma)


def in_image_mass(means: jax.Array, sigma: jax.Array, length: int) -> jax.Array:
  """The share of a Gaussian's mass (mean `means`, std `sigma`, pixels) inside `[0, length]`.

  `Phi((length - mu) / sigma) - Phi(-mu / sigma)`, taken from the nearer tail so that filters far
  off either side keep their small share (not 1 - 1). `sigma` broadcasts against `means`.
  """
  low, high = -means / sigma, (length - means) / sigma
  flip = low + high > 0  # the image lies more to the right: the same share by the mirror image
  low, high = jnp.where(flip, -high, low), jnp.where(flip, -low, high)
  # Phi(x) = erfc(-x / sqrt 2) / 2, exact in the lower tail where both ends now lie when far off.
  return 0.5 * (jax.lax.erfc(-high / _SQRT2) - jax.lax.erfc(-low / _SQRT2))


def filter_masses(read_params: jax.Array, *, n: int, height: int,
                  width: int) -> tuple[jax.Array, jax.Array]:
  """`([..., n] along x, [..., n] along y)`: each filter's in-image share of its Gaussian mass;
  filter (i, j) of the 2-D bank keeps `mass_y[i] * mass_x[j]` of its own."""
  geometry = read_geometry(read_params, n=n, height=height, width=width)
  sigma = geometry.sigma[..., None]
  return (in_image_mass(geometry.means_x, sigma, width),
          in_image_mass(geometry.means_y, sigma, height))


def read_in_image_mass(read_params: jax.Array, *, n: int, height: int,
                       width: int) -> jax.Array:
  """`[..., 5]` read parameters -> `[...]` the mean over the n x n filters of each one's in-image
  share of its Gaussian mass (`mass_y[i] * mass_x[j]`, averaged: the product of the means)."""
  mass_x, mass_y = filter_masses(read_params, n=n, height=height, width=width)
  return mass_x.mean(-1) * mass_y.mean(-1)


def full_mass_read(image: jax.Array, params: jax.Array, *, n: int) -> jax.Array:
  """`glimpse.draw_read` with each filter divided by its whole Gaussian mass, not by its mass on
  the image: Gregor's filters times their in-image share of mass, `[H, W, C], [5] -> [n, n, C]`.

  Each filter then sums to its in-image share (`filter_masses`), so a filter off the image reads
  ~0. For sigma >~ 0.5 px it is about `exp(-(a - mu)^2 / 2 sigma^2) / (sqrt(2 pi) sigma)` (up to
  the midpoint rule's error on a filter's cut tail); finer filters keep Gregor's interpolation
  between pixel centers.
  """
  height, width, _ = image.shape
  fx, fy, gamma = glimpse.draw_filterbank(params, n=n, height=height, width=width)
  mass_x, mass_y = filter_masses(params, n=n, height=height, width=width)  # [n], [n]
  fx, fy = fx * mass_x[:, None], fy * mass_y[:, None]  # [n, W], [n, H]
  if image.shape[-1] == 1:
    return (gamma * (fy @ image[..., 0] @ fx.T))[..., None]
  return gamma * jnp.einsum('ib,bac,ja->ijc', fy, image, fx)


STATS = ('log_gamma', 'sigma', 'stride', 'center_x', 'center_y', 'in_image_mass', 'off_image')


def read_stats(read_params: jax.Array, *, n: int, height: int,
               width: int) -> dict[str, jax.Array]:
  """Per-example diagnostics of the reads `[B, T, 5]`: `{f'{stat}_g{t}': [B]}` for t = 1..T and
  each of STATS: log gamma; sigma and stride (pixels); the center (location x, y); the in-image
  mass (the mean over the n x n filters of each one's in-image share of its Gaussian mass); and
  off_image, 1 where that mass is below OFF_IMAGE_MASS (a read mostly off the image)."""
  read_params = jax.lax.stop_gradient(read_params)
  geometry = read_geometry(read_params, n=n, height=height, width=width)
  mass = read_in_image_mass(read_params, n=n, height=height, width=width)  # [B, T]
  values = {'log_gamma': geometry.log_gamma, 'sigma': geometry.sigma, 'stride': geometry.stride,
            'center_x': geometry.center[..., 0], 'center_y': geometry.center[..., 1],
            'in_image_mass': mass, 'off_image': (mass < OFF_IMAGE_MASS).astype(mass.dtype)}
  return {f'{name}_g{t + 1}': values[name][:, t] for name in STATS
          for t in range(read_params.shape[1])}


def with_forget_bias(variables, value: float):
  """`variables` with every LSTM's forget-gate bias (Flax's `.../hf/bias`) set to `value`: Flax
  starts it at 0, TensorFlow's LSTM cells at 1 (the gate starts mostly open)."""
  def set_bias(path, leaf):
    keys = [getattr(key, 'key', None) for key in path]
    return jnp.full_like(leaf, value) if keys[-2:] == ['hf', 'bias'] else leaf
  return jax.tree_util.tree_map_with_path(set_bias, variables)


class DrawCore(nn.Module):
  """The T scanned steps over a batch of images `[B, H, W, C]` -> `DrawTrace`; `unroll` steps
  per iteration of the compiled loop (the same values; only speed and compile time differ);
  `read_norm` and `log_gamma_bound` as in `_DrawStep` (the trace holds the bounded g_t)."""
  read_size: int = 5
  hidden: int = 256
  latent: int = 10
  steps: int = 10
  read_init: str = 'blur'
  unroll: int = 1
  read_norm: str = 'image'
  log_gamma_bound: float = 0.0

  @nn.compact
  def __call__(self, images: jax.Array) -> DrawTrace:
    if self.read_norm not in READ_NORMS:
      raise ValueError(f'read_norm must be one of {list(READ_NORMS)}, got {self.read_norm!r}')
    scan = nn.scan(_DrawStep, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=nn.broadcast, out_axes=1, length=self.steps, unroll=self.unroll)
    zeros = jnp.zeros((images.shape[0], self.hidden), images.dtype)  # [B, hidden]
    carry = ((zeros, zeros), (zeros, zeros))
    _, (read_params, glimpses, decoder) = scan(
        self.read_size, self.hidden, self.latent, self.read_init, self.read_norm,
        self.log_gamma_bound, name='step')(carry, images)
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
  read_norm: str = 'image'
  log_gamma_bound: float = 0.0

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array | None, DrawTrace]:
    if self.head not in HEADS:
      raise ValueError(f'head must be one of {list(HEADS)}, got {self.head!r}')
    trace = DrawCore(self.read_size, self.hidden, self.latent, self.steps, self.read_init,
                     self.unroll, self.read_norm, self.log_gamma_bound, name='draw')(images)
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
