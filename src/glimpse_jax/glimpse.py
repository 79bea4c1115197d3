"""Glimpse kernels: location <-> pixel maps, the multi-scale retina, the DRAW read.

Conventions (see DESIGN.md): images are `[H, W, C]`; a location is `(x, y)` in `[-1, 1]` with x the
column (left to right) and y the row (top to bottom), `(0, 0)` the image center and `(-1, -1)` its
top-left corner. Pixel j spans `[j, j + 1)` in continuous pixel coordinates.

The kernels take one example; callers `jax.vmap` over batch and Monte-Carlo samples and `jax.jit`.
The retina costs O(patch), never O(image): it gathers only the pixels its largest patch covers.
Shapes and dtypes are checked with chex when a kernel is called or traced, never inside the
compiled program; a bad input raises ValueError naming the argument and its shape or dtype.
"""

import chex
import numpy as np
import jax
import jax.numpy as jnp

# Added to each DRAW filter's normaliser so that filters lying wholly off the image stay finite.
DRAW_FILTER_FLOOR = 1e-8


def loc_to_pixel(loc, height, width):
  """Maps locations to continuous pixel coordinates `c = ((x + 1) / 2 * W, (y + 1) / 2 * H)`.

  Plain arithmetic, so it works on NumPy arrays (data code) and JAX arrays alike.

  Args:
    loc: `[..., 2]` locations `(x, y)` in `[-1, 1]`.
    height: image height H in pixels.
    width: image width W in pixels.

  Returns:
    `[..., 2]` pixel coordinates `(column, row)`; `(-1, -1)` maps to `(0, 0)`, `(1, 1)` to `(W, H)`.
  """
  _expect(chex.assert_shape, loc, (..., 2), 'loc must be [..., 2] locations (x, y)')
  return (loc + 1.0) * _per_axis(loc, 0.5 * width, 0.5 * height)


def pixel_to_loc(center, height, width):
  """Inverse of `loc_to_pixel`: `[..., 2]` pixel coordinates `(column, row)` -> `(x, y)`."""
  _expect(chex.assert_shape, center, (..., 2), 'center must be [..., 2] pixels (column, row)')
  return center / _per_axis(center, 0.5 * width, 0.5 * height) - 1.0


def _expect(assertion, value, expected, what):
  """Runs the chex `assertion(value, expected)`; a failure is a ValueError ending in `what`."""
  assertion(value, expected, custom_message=what, exception_type=ValueError)


def _per_axis(like, along_x, along_y):
  """A `[2]` NumPy constant `(along_x, along_y)` in the floating dtype of `like`."""
  dtype = like.dtype if np.issubdtype(like.dtype, np.floating) else np.float32
  return np.asarray([along_x, along_y], dtype=dtype)


def retina(image, loc, *, size, num_scales, scale_factor=2):
  """Reads `num_scales` concentric square patches centered on `loc`, each averaged to size x size.

  Patch s has side `size * scale_factor**s` and is centered on `c = loc_to_pixel(loc, H, W)` in
  continuous pixel coordinates (pixel j spans `[j, j + 1)`): its top-left pixel is
  `floor(c - side / 2 + 0.5)` per axis. Pixels outside the image read as zero. Each patch is then
  area-averaged over `scale_factor**s` x `scale_factor**s` blocks. The cost is that of gathering
  the largest patch, whatever the image size.

  Args:
    image: `[H, W, C]` floating-point image; H and W may differ.
    loc: `[2]` location `(x, y)`.
    size: side of every returned patch in pixels.
    num_scales: number of patches.
    scale_factor: positive integer ratio between the sides of consecutive patches.

  Returns:
    `[num_scales, size, size, C]` patches, finest scale first.
  """
  image, loc = _check_retina_args(image, loc, size, num_scales, scale_factor)
  height, width, _ = image.shape
  center = loc_to_pixel(loc, height, width)  # [2] (column, row)
  sides = [size * scale_factor**s for s in range(num_scales)]
  largest = sides[-1]
  left, top = _top_left(center, largest)
  window = _zero_filled_window(image, top, left, largest)  # [largest, largest, C]
  patches = []
  for side in sides:
    patch = _concentric_crop(window, center, side, top, left)  # [side, side, C]
    patches.append(_area_average(patch, side // size))
  return jnp.stack(patches)


def retina_at_scale(image, loc, scale, *, size, num_scales, scale_factor=2):
  """The patch `retina(image, loc, ...)[scale]` for a possibly traced integer `scale`.

  `scale` is an integer scalar. A traced `scale` outside `[0, num_scales)` is clamped into it; a
  concrete one raises.

  Returns:
    `[size, size, C]` patch.
  """
  _check_int('num_scales', num_scales, 1)
  _expect(chex.assert_rank, scale, 0, 'scale must be a scalar')
  _expect(chex.assert_type, scale, int, 'scale must be an integer')
  if isinstance(scale, (int, np.integer)) and not 0 <= scale < num_scales:
    raise ValueError(f'scale must be in [0, {num_scales}), got {scale}')
  patches = retina(image, loc, size=size, num_scales=num_scales, scale_factor=scale_factor)
  return jax.lax.dynamic_index_in_dim(patches, scale, axis=0, keepdims=False)


def _check_retina_args(image, loc, size, num_scales, scale_factor):
  """Checks the settings and shapes; returns `image` as an array and `loc` as a float array."""
  _check_int('size', size, 1)
  _check_int('num_scales', num_scales, 1)
  _check_int('scale_factor', scale_factor, 1)
  image, loc = _check_image(image), _as_float(loc)
  _expect(chex.assert_shape, loc, (2,), 'loc must be one location (x, y)')
  return image, loc


def _check_image(image):
  """`image` as an array, after checking that it is a floating-point `[H, W, C]` image."""
  image = jnp.asarray(image)
  _expect(chex.assert_rank, image, 3, 'image must be [H, W, C]')
  _expect(chex.assert_type, image, float, 'image must be floating-point')
  return image


def _check_int(name, value, minimum):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')


def _as_float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _top_left(center, side):
  """Integer `(left, top)` pixel of the side x side patch centered on `center` `(column, row)`."""
  corner = jnp.floor(center - side / 2 + 0.5).astype(jnp.int32)  # [2]
  return corner[0], corner[1]


def _zero_filled_window(image, top, left, side):
  """The `[side, side, C]` pixels from `(top, left)` on, zero outside the image (O(side^2))."""
  height, width, _ = image.shape
  rows = top + jnp.arange(side)  # [side]
  cols = left + jnp.arange(side)  # [side]
  inside = (((rows >= 0) & (rows < height))[:, None]
            & ((cols >= 0) & (cols < width))[None, :])  # [side, side]
  pixels = image.at[jnp.clip(rows, 0, height - 1)[:, None],
                    jnp.clip(cols, 0, width - 1)[None, :]].get(mode='promise_in_bounds')
  return jnp.where(inside[..., None], pixels, jnp.zeros((), image.dtype))


def _concentric_crop(window, center, side, top, left):
  """The side x side patch centered on `center`, cut from the larger zero-filled `window`.

  When `window`'s side minus `side` is even the patch sits at a fixed offset; when it is odd (odd
  `size`, even `scale_factor`, finest scale) the offset is one of two values, picked per axis.
  """
  margin = window.shape[0] - side
  if margin % 2 == 0:
    start = margin // 2
    return window[start:start + side, start:start + side]
  start = (margin - 1) // 2
  region = window[start:start + side + 1, start:start + side + 1]  # [side + 1, side + 1, C]
  col, row = _top_left(center, side)
  rows_later = row - top > start  # scalar: the patch starts one row further down
  cols_later = col - left > start
  region = jnp.where(rows_later, region[1:], region[:-1])  # [side, side + 1, C]
  return jnp.where(cols_later, region[:, 1:], region[:, :-1])


def _area_average(patch, factor):
  """Means over factor x factor blocks: `[size * factor, size * factor, C]` -> `[size, size, C]`."""
  if factor == 1:
    return patch
  if factor > 8:  # unrolled strided sums (fastest on CPU) would grow the program: reduce instead
    side = patch.shape[0] // factor
    return patch.reshape(side, factor, side, factor, -1).mean(axis=(1, 3))
  rows = patch[0::factor]
  for i in range(1, factor):
    rows = rows + patch[i::factor]
  cells = rows[:, 0::factor]
  for j in range(1, factor):
    cells = cells + rows[:, j::factor]
  return cells * (1.0 / factor**2)


def draw_filterbank(params, *, n, height, width, zero_indexed=False):
  """The Gaussian filterbank of the DRAW read (Gregor et al. 2015, eqs. 19-25).

  `params = (gx~, gy~, log sigma^2, log delta~, log gamma)`. The grid center is
  `gX = (W + 1) / 2 * (gx~ + 1)`, `gY = (H + 1) / 2 * (gy~ + 1)`, the stride
  `delta = (max(W, H) - 1) / (n - 1) * exp(log delta~)`, the filter means
  `mu_i = g + (i - n / 2 - 0.5) * delta` for `i = 1..n`, and `F[i, a]` is proportional to
  `exp(-(a - mu_i)^2 / (2 sigma^2))` over pixel centers `a = 1..W` (rows `b = 1..H`), each filter
  normalised to sum to one (plus `DRAW_FILTER_FLOOR` in the denominator).

  Args:
    params: `[5]` read parameters.
    n: grid side, >= 2.
    height: image height H.
    width: image width W.
    zero_indexed: count `i` and `a` from 0 as the public DRAW codes do, which puts the grid one
      pixel and one stride off the center the equations define.

  Returns:
    `(fx [n, W], fy [n, H], gamma)`.
  """
  _check_int('n', n, 2)
  params = _as_float(params)
  _expect(chex.assert_shape, params, (5,), 'params must be the 5 DRAW read parameters')
  gx_tilde, gy_tilde, log_variance, log_delta_tilde, log_gamma = params
  gx = (width + 1) / 2 * (gx_tilde + 1)
  gy = (height + 1) / 2 * (gy_tilde + 1)
  delta = (max(width, height) - 1) / (n - 1) * jnp.exp(log_delta_tilde)
  variance = jnp.exp(log_variance)
  first = 0 if zero_indexed else 1
  offsets = jnp.arange(first, first + n, dtype=params.dtype) - n / 2 - 0.5  # [n]
  fx = _gaussian_filters(gx + offsets * delta, first, width, variance)
  fy = _gaussian_filters(gy + offsets * delta, first, height, variance)
  return fx, fy, jnp.exp(log_gamma)


def _gaussian_filters(means, first, length, variance):
  """Rows of `[n, length]` normalised Gaussians over pixel centers `first .. first + length - 1`."""
  pixels = jnp.arange(first, first + length, dtype=means.dtype)  # [length]
  weights = jnp.exp(-jnp.square(pixels[None, :] - means[:, None]) / (2 * variance))  # [n, length]
  return weights / (weights.sum(axis=-1, keepdims=True) + DRAW_FILTER_FLOOR)


def draw_read(image, params, *, n, zero_indexed=False):
  """The DRAW read `gamma * F_Y x image x F_X^T` per channel (Gregor et al. 2015, eqs. 19-26).

  It reads the whole image by design: the filterbank is global. See `draw_filterbank` for the
  meaning of `params` and `zero_indexed`.

  Args:
    image: `[H, W, C]` floating-point image.
    params: `[5]` read parameters `(gx~, gy~, log sigma^2, log delta~, log gamma)`.
    n: grid side, >= 2.
    zero_indexed: the legacy 0-based indexing of the public DRAW codes.

  Returns:
    `[n, n, C]` glimpse.
  """
  image = _check_image(image)
  height, width, _ = image.shape
  fx, fy, gamma = draw_filterbank(params, n=n, height=height, width=width,
                                  zero_indexed=zero_indexed)
  if image.shape[-1] == 1:  # two plain matrix products: the DRAW update ~10% faster on one core
    return (gamma * (fy @ image[..., 0] @ fx.T))[..., None]
  return gamma * jnp.einsum('ib,bac,ja->ijc', fy, image, fx)


def draw_center(params, *, height, width, zero_indexed=False):
  """The center `(gX, gY)` of DRAW read grids as locations `(x, y)` (see `draw_filterbank`).

  `gX` counts pixel centers from 1 (from 0 when `zero_indexed`), so its continuous pixel
  coordinate is `gX - 0.5` (`gX + 0.5`); `gx~ = 0` is the image center `x = 0`.

  Args:
    params: `[..., 5]` read parameters; only `gx~` and `gy~` matter.
    height: image height H.
    width: image width W.
    zero_indexed: as in `draw_filterbank`.

  Returns:
    `[..., 2]` locations `(x, y)`.
  """
  _expect(chex.assert_shape, params, (..., 5), 'params must be [..., 5] DRAW read parameters')
  grid = params[..., :2] + 1.0
  pixels = grid * _per_axis(grid, (width + 1) / 2, (height + 1) / 2)  # [..., 2] (gX, gY)
  return pixel_to_loc(pixels + (0.5 if zero_indexed else -0.5), height, width)
