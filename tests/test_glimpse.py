"""Glimpse kernels against NumPy references written from the equations, with explicit loops."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax import glimpse

# Centre, corners, edges, and two locations whose patches lie wholly outside the image.
LOCATIONS = np.array([[0.0, 0.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.93, -0.41],
                      [-0.2, 0.999], [-3.0, 2.5], [5.0, 0.0], [0.37, -0.71]], np.float32)


def retina_reference(image, loc, size, num_scales, scale_factor):
  """Patch s: side size * f**s, top-left floor(c - side / 2 + 0.5), zero outside, block means."""
  height, width, channels = image.shape
  col_center = (loc[0] + 1) / 2 * width
  row_center = (loc[1] + 1) / 2 * height
  out = np.zeros((num_scales, size, size, channels))
  for s in range(num_scales):
    block = scale_factor**s
    side = size * block
    top = math.floor(row_center - side / 2 + 0.5)
    left = math.floor(col_center - side / 2 + 0.5)
    for i in range(size):
      for j in range(size):
        total = np.zeros(channels)
        for di in range(block):
          for dj in range(block):
            row, col = top + i * block + di, left + j * block + dj
            if 0 <= row < height and 0 <= col < width:
              total += image[row, col]
        out[s, i, j] = total / block**2
  return out


def draw_reference(image, params, n, zero_indexed):
  """The DRAW read from eqs. 19-26, one filter weight and one output pixel at a time."""
  height, width, channels = image.shape
  gx_t, gy_t, log_var, log_delta_t, log_gamma = [float(p) for p in params]
  gx = (width + 1) / 2 * (gx_t + 1)
  gy = (height + 1) / 2 * (gy_t + 1)
  delta = (max(width, height) - 1) / (n - 1) * math.exp(log_delta_t)
  var = math.exp(log_var)
  first = 0 if zero_indexed else 1

  def filters(center, length):
    f = np.zeros((n, length))
    for i in range(n):
      mu = center + (i + first - n / 2 - 0.5) * delta
      for a in range(length):
        f[i, a] = math.exp(-((a + first) - mu)**2 / (2 * var))
      f[i] /= f[i].sum() + 1e-8
    return f

  fx, fy = filters(gx, width), filters(gy, height)
  out = np.zeros((n, n, channels))
  for i in range(n):
    for j in range(n):
      for b in range(height):
        for a in range(width):
          out[i, j] += fy[i, b] * image[b, a] * fx[j, a]
  return math.exp(log_gamma) * out


def _image(height, width, channels, seed=0):
  return np.random.default_rng(seed).random((height, width, channels)).astype(np.float32)


def test_loc_to_pixel_conventions_and_inverse():
  loc = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [0.5, -0.5]], np.float32)
  pixel = glimpse.loc_to_pixel(loc, 10, 40)
  np.testing.assert_allclose(pixel, [[0, 0], [40, 10], [20, 5], [30, 2.5]])
  assert isinstance(pixel, np.ndarray) and pixel.dtype == np.float32
  np.testing.assert_allclose(glimpse.pixel_to_loc(pixel, 10, 40), loc, atol=1e-7)
  from_jax = jax.jit(lambda l: glimpse.pixel_to_loc(glimpse.loc_to_pixel(l, 10, 40), 10, 40))
  np.testing.assert_allclose(from_jax(jnp.asarray(loc)), loc, atol=1e-6)


def test_location_maps_reject_bad_shapes():
  with pytest.raises(ValueError, match=r'shape \(4, 3\) but expected \(\.\.\., 2\).*\[loc must'):
    glimpse.loc_to_pixel(np.zeros((4, 3), np.float32), 10, 40)
  with pytest.raises(ValueError, match=r'shape \(3,\) but expected \(\.\.\., 2\).*\[center must'):
    glimpse.pixel_to_loc(np.zeros(3, np.float32), 10, 40)


@pytest.mark.parametrize('height,width,channels,size,num_scales,scale_factor', [
    (13, 21, 3, 4, 3, 2),  # non-square, multi-channel, even size
    (13, 21, 1, 5, 3, 2),  # odd size: the finest scale sits at a location-dependent offset
    (17, 11, 2, 3, 2, 3),
    (9, 14, 1, 3, 3, 1),
    (10, 12, 1, 2, 3, 3),  # 9 x 9 blocks at the coarsest scale
    (28, 28, 1, 8, 1, 2),
    (6, 6, 1, 1, 4, 2),  # the largest patch (8 x 8) is larger than the image
])
def test_retina_matches_reference_under_jit_vmap(height, width, channels, size, num_scales,
                                                 scale_factor):
  image = _image(height, width, channels)
  images = np.stack([image, image[::-1] * 0.5])
  read = jax.jit(jax.vmap(jax.vmap(
      lambda im, loc: glimpse.retina(im, loc, size=size, num_scales=num_scales,
                                     scale_factor=scale_factor),
      in_axes=(None, 0)), in_axes=(0, None)))
  got = read(images, LOCATIONS)  # [2, L, S, size, size, C]
  assert got.shape == (2, len(LOCATIONS), num_scales, size, size, channels)
  for b, im in enumerate(images):
    for k, loc in enumerate(LOCATIONS):
      want = retina_reference(im, loc, size, num_scales, scale_factor)
      np.testing.assert_allclose(got[b, k], want, atol=1e-6, err_msg=f'image {b}, loc {loc}')


def test_retina_random_locations_odd_and_even():
  image = _image(19, 12, 2, seed=1)
  locs = np.random.default_rng(2).uniform(-1.3, 1.3, (40, 2)).astype(np.float32)
  for size in (2, 3):
    read = jax.jit(jax.vmap(lambda loc: glimpse.retina(image, loc, size=size, num_scales=3)))
    got = read(locs)
    for k, loc in enumerate(locs):
      np.testing.assert_allclose(got[k], retina_reference(image, loc, size, 3, 2), atol=1e-6)


def test_retina_location_conventions():
  image = np.zeros((12, 20, 1), np.float32)
  image[0, 0] = 1.0
  image[3, 15] = 2.0
  # (-1, -1) centres the patch on the image's top-left corner: pixel (0, 0) is just below-right.
  corner = glimpse.retina(image, jnp.array([-1.0, -1.0]), size=2, num_scales=1)[0, ..., 0]
  np.testing.assert_array_equal(corner, [[0, 0], [0, 1]])
  # x moves along columns, y along rows: the centre of pixel (row 3, column 15).
  at_pixel = glimpse.pixel_to_loc(np.array([15.5, 3.5], np.float32), 12, 20)
  patch = glimpse.retina(image, jnp.asarray(at_pixel), size=3, num_scales=1)[0, ..., 0]
  np.testing.assert_array_equal(patch, [[0, 0, 0], [0, 2, 0], [0, 0, 0]])
  swapped = glimpse.retina(image, jnp.asarray(at_pixel[::-1].copy()), size=3, num_scales=1)
  assert float(jnp.abs(swapped).sum()) == 0.0


def test_retina_scales_are_concentric_block_means():
  image = np.ones((16, 16, 1), np.float32)
  patches = glimpse.retina(image, jnp.zeros(2), size=4, num_scales=3, scale_factor=2)
  # Sides 4, 8, 16 centred on the middle: all inside, so every block mean is one.
  np.testing.assert_array_equal(patches, np.ones((3, 4, 4, 1)))
  edge = glimpse.retina(image, jnp.array([1.0, 0.0]), size=4, num_scales=2, scale_factor=2)
  # Centred on the right edge: the right half of every patch lies outside.
  np.testing.assert_array_equal(edge[:, :, :2, 0], 1.0)
  np.testing.assert_array_equal(edge[:, :, 2:, 0], 0.0)


def test_retina_never_materialises_the_whole_image():
  image = jnp.zeros((256, 192, 3))
  read = jax.vmap(lambda im, loc: glimpse.retina(im, loc, size=8, num_scales=3))
  jaxpr = jax.make_jaxpr(read)(image[None], jnp.zeros((1, 2))).jaxpr
  image_size = image.size
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      assert np.prod(var.aval.shape) < image_size / 10, (eqn.primitive, var.aval.shape)


def test_retina_at_scale_selects_a_traced_scale():
  image = _image(15, 10, 2, seed=3)
  locs = jnp.asarray(LOCATIONS)
  scales = jnp.arange(len(LOCATIONS)) % 3
  pick = jax.jit(jax.vmap(lambda loc, s: glimpse.retina_at_scale(
      image, loc, s, size=3, num_scales=3)))
  got = pick(locs, scales)
  full = jax.vmap(lambda loc: glimpse.retina(image, loc, size=3, num_scales=3))(locs)
  np.testing.assert_array_equal(got, full[jnp.arange(len(LOCATIONS)), scales])
  with pytest.raises(ValueError, match='scale must be in'):
    glimpse.retina_at_scale(image, locs[0], 3, size=3, num_scales=3)


def test_retina_at_scale_rejects_a_bad_scale():
  image, loc = _image(8, 8, 1), jnp.zeros(2)
  with pytest.raises(ValueError, match=r'rank 1 \(shape \(2,\)\) but expected 0.*\[scale must'):
    glimpse.retina_at_scale(image, loc, jnp.zeros(2, jnp.int32), size=2, num_scales=2)
  with pytest.raises(ValueError, match=r'type float32 but expected .*int.*\[scale must be an int'):
    jax.jit(lambda s: glimpse.retina_at_scale(image, loc, s, size=2, num_scales=2))(1.0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(size=0, num_scales=1), 'size must be an integer >= 1, got 0'),
    (dict(size=4, num_scales=0), 'num_scales must be an integer >= 1, got 0'),
    (dict(size=4, num_scales=2, scale_factor=1.5), 'scale_factor must be an integer >= 1, got 1.5'),
    (dict(size=4, num_scales=2, scale_factor=0), 'scale_factor must be an integer >= 1, got 0'),
])
def test_retina_rejects_bad_settings(kwargs, match):
  with pytest.raises(ValueError, match=match):
    glimpse.retina(jnp.zeros((8, 8, 1)), jnp.zeros(2), **kwargs)


def test_retina_rejects_bad_shapes_and_dtypes():
  with pytest.raises(ValueError, match=r'rank 2 \(shape \(8, 8\)\) but expected 3.*\[image must'):
    glimpse.retina(jnp.zeros((8, 8)), jnp.zeros(2), size=2, num_scales=1)
  with pytest.raises(ValueError, match=r'shape \(3,\) but expected \(2\).*\[loc must'):
    glimpse.retina(jnp.zeros((8, 8, 1)), jnp.zeros(3), size=2, num_scales=1)
  with pytest.raises(ValueError, match=r'type uint8 but expected .*float.*\[image must be float'):
    glimpse.retina(np.zeros((8, 8, 1), np.uint8), jnp.zeros(2), size=2, num_scales=1)
  # The checks run while tracing: a jitted, vmapped call rejects a bad loc before compiling.
  read = jax.jit(jax.vmap(lambda loc: glimpse.retina(jnp.zeros((8, 8, 1)), loc, size=2,
                                                     num_scales=1)))
  with pytest.raises(ValueError, match=r'shape \(1,\) but expected \(2\)'):
    read(jnp.zeros((4, 1)))


DRAW_PARAMS = np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [0.3, -0.6, -0.7, -0.4, 0.2],
                        [-1.2, 0.9, 1.1, 0.5, -0.3], [0.95, 0.1, -2.0, -1.5, 0.0]], np.float32)


@pytest.mark.parametrize('zero_indexed', [False, True])
@pytest.mark.parametrize('height,width,channels,n', [(9, 13, 2, 5), (12, 7, 1, 2), (10, 10, 3, 4)])
def test_draw_read_matches_reference(zero_indexed, height, width, channels, n):
  image = _image(height, width, channels, seed=4)
  read = jax.jit(jax.vmap(lambda p: glimpse.draw_read(image, p, n=n, zero_indexed=zero_indexed)))
  got = read(jnp.asarray(DRAW_PARAMS))
  for k, params in enumerate(DRAW_PARAMS):
    want = draw_reference(image, params, n, zero_indexed)
    np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-6, err_msg=f'params {params}')


def test_draw_filterbank_grid_conventions():
  # Centred, unit stride and n = W = H: the grid lands on the pixel centres, so the read with
  # narrow filters returns the image itself.
  image = _image(6, 6, 2, seed=5)
  params = jnp.array([0.0, 0.0, np.log(0.01), np.log(1 / 5 * 5), 0.0])
  np.testing.assert_allclose(glimpse.draw_read(image, params, n=6), image, atol=1e-5)
  # n = 2 at the default stride reaches the first and last pixel of each axis...
  fx, fy, gamma = glimpse.draw_filterbank(jnp.array([0.0, 0.0, np.log(0.01), 0.0, 0.0]),
                                          n=2, height=9, width=9)
  np.testing.assert_array_equal(jnp.argmax(fx, axis=1), [0, 8])
  np.testing.assert_array_equal(jnp.argmax(fy, axis=1), [0, 8])
  assert fx.shape == (2, 9) and float(gamma) == 1.0
  # ...while the 0-indexed codes put the grid one stride up-left: the first filter (mean -7)
  # lies wholly off the image and reads nothing, the second (mean 1) sits on the second pixel.
  fx0, _, _ = glimpse.draw_filterbank(jnp.array([0.0, 0.0, np.log(0.01), 0.0, 0.0]),
                                      n=2, height=9, width=9, zero_indexed=True)
  np.testing.assert_allclose(fx0.sum(axis=1), [0.0, 1.0], atol=1e-6)
  assert int(jnp.argmax(fx0[1])) == 1


def test_draw_filterbank_non_square_shapes_and_normalisation():
  params = jnp.array([0.3, -0.6, 0.5, -0.4, 0.2])
  fx, fy, _ = glimpse.draw_filterbank(params, n=3, height=5, width=11)
  assert fx.shape == (3, 11) and fy.shape == (3, 5)
  np.testing.assert_allclose(fx.sum(axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(fy.sum(axis=1), 1.0, atol=1e-6)


def test_draw_read_gradient_matches_finite_differences():
  image = _image(7, 9, 2, seed=6).astype(np.float64)
  params = np.array([0.2, -0.3, 0.4, -0.2, 0.1])
  weights = np.random.default_rng(7).normal(size=(3, 3, 2))
  with jax.enable_x64(True):
    objective = lambda p: jnp.sum(glimpse.draw_read(jnp.asarray(image), p, n=3) * weights)
    grad = np.asarray(jax.jit(jax.grad(objective))(jnp.asarray(params)))
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)
    step = 1e-6
    for k in range(5):
      e = np.zeros(5)
      e[k] = step
      numeric = (float(objective(jnp.asarray(params + e)))
                 - float(objective(jnp.asarray(params - e)))) / (2 * step)
      np.testing.assert_allclose(grad[k], numeric, rtol=1e-5, atol=1e-8)


def test_draw_gradient_is_finite_for_filters_off_the_image():
  image = jnp.asarray(_image(8, 8, 1, seed=8))
  far_and_sharp = jnp.array([40.0, -40.0, -6.0, 0.0, 0.0])
  grad = jax.grad(lambda p: glimpse.draw_read(image, p, n=3).sum())(far_and_sharp)
  assert np.all(np.isfinite(grad))


def test_draw_rejects_bad_arguments():
  with pytest.raises(ValueError, match='n must be an integer >= 2, got 1'):
    glimpse.draw_read(jnp.zeros((5, 5, 1)), jnp.zeros(5), n=1)
  with pytest.raises(ValueError, match=r'shape \(4,\) but expected \(5\).*\[params must'):
    glimpse.draw_read(jnp.zeros((5, 5, 1)), jnp.zeros(4), n=3)
  with pytest.raises(ValueError, match=r'rank 2 \(shape \(5, 5\)\) but expected 3.*\[image must'):
    glimpse.draw_read(jnp.zeros((5, 5)), jnp.zeros(5), n=3)
  with pytest.raises(ValueError, match=r'type int32 but expected .*float.*\[image must be float'):
    glimpse.draw_read(jnp.zeros((5, 5, 1), jnp.int32), jnp.zeros(5), n=3)


def test_draw_filterbank_rejects_bad_params():
  with pytest.raises(ValueError, match=r'shape \(2, 5\) but expected \(5\).*\[params must'):
    glimpse.draw_filterbank(jnp.zeros((2, 5)), n=3, height=5, width=5)
