"""The per-glimpse diagnostics against NumPy references written from their definitions."""

import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax import diagnostics


def _patch_max_reference(image, loc, size):
  """Max of the `size` x `size` window centred at pixel ((x + 1) W / 2, (y + 1) H / 2), its
  top-left pixel floor(c - size / 2 + 0.5), zeros outside the image (DESIGN.md's convention)."""
  height, width = image.shape[:2]
  cx, cy = (loc[0] + 1) / 2 * width, (loc[1] + 1) / 2 * height
  left, top = int(np.floor(cx - size / 2 + 0.5)), int(np.floor(cy - size / 2 + 0.5))
  best = 0.0
  for r in range(top, top + size):
    for c in range(left, left + size):
      if 0 <= r < height and 0 <= c < width:
        best = max(best, float(image[r, c].max()))
  return best


def test_saturated_marks_means_at_the_edge():
  means = jnp.array([[[0.0, 0.0], [0.96, 0.1]], [[-0.2, -0.99], [0.94, -0.94]]])  # [B=2, T=2, 2]
  np.testing.assert_array_equal(diagnostics.saturated(means), [[0, 1], [1, 0]])


def test_on_ink_matches_a_window_reference():
  rng = np.random.default_rng(0)
  images = np.zeros((3, 20, 20, 1), np.float32)
  for b in range(3):  # one bright 6x6 blob per image
    r, c = rng.integers(0, 14, 2)
    images[b, r:r + 6, c:c + 6] = 1.0
  # [B=3, T=16, 2], some off the canvas
  locations = rng.uniform(-1.2, 1.2, (16, 3, 2)).astype(np.float32).swapaxes(0, 1)
  got = np.asarray(diagnostics.on_ink(jnp.asarray(images), jnp.asarray(locations), 6))
  want = np.array([[_patch_max_reference(images[b], np.clip(locations[b, t], -1, 1), 6) > 0.5
                    for t in range(16)] for b in range(3)], np.float32)
  np.testing.assert_array_equal(got, want)
  assert 0 < want.sum() < want.size  # the draw covers both outcomes


def test_on_digit_is_box_overlap_in_pixels():
  # 40x40 canvas: a unit of location is 20 px; the digit box is 10 px wide at the centre.
  center = jnp.array([[0.0, 0.0]])
  box = jnp.array([10.0])
  # patch 8 px: overlap while the centres are less than (8 + 10) / 2 = 9 px = 0.45 apart per axis
  locations = jnp.array([[[0.44, 0.0], [0.46, 0.0], [0.3, -0.44], [0.3, -0.5],
                          [5.0, 0.0]]])  # [B=1, T=5, 2]
  got = diagnostics.on_digit(locations, center, box, 8, (40, 40))
  np.testing.assert_array_equal(got[0], [1, 0, 1, 0, 0])


def test_per_glimpse_names_and_means():
  values = jnp.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # [B=2, T=3]
  out = diagnostics.per_glimpse('on_ink', values)
  assert sorted(out) == ['on_ink', 'on_ink_g1', 'on_ink_g2', 'on_ink_g3']
  np.testing.assert_allclose(out['on_ink'], [2 / 3, 1 / 3])
  means = diagnostics.per_glimpse_means('on_ink', values)
  assert float(means['on_ink_g2']) == 1.0 and float(means['on_ink_g1']) == 0.5


def test_location_diagnostics_without_a_box_has_no_on_digit():
  images = jnp.zeros((2, 8, 8, 1))
  means = jnp.zeros((2, 3, 2))  # [B, T, 2]
  out = diagnostics.location_diagnostics(images, means, means, 4)
  assert 'on_digit' not in out and out['saturated_g3'].shape == (2,)
  with pytest.raises(AssertionError, match='dimension equal to .2.'):
    diagnostics.saturated(jnp.zeros((3, 2, 3)))
