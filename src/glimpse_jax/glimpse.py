"""Glimpse kernels: location <-> pixel maps, the multi-scale retina, the DRAW read.

Conventions (see DESIGN.md): images are `[H, W, C]`; a location is `(x, y)` in `[-1, 1]` with x the
column (left to right) and y the row (top to bottom), `(0, 0)` the image centre and `(-1, -1)` its
top-left corner. Pixel j spans `[j, j + 1)` in continuous pixel coordinates.
"""

import numpy as np


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
  return (loc + 1.0) * _per_axis(loc, 0.5 * width, 0.5 * height)


def pixel_to_loc(center, height, width):
  """Inverse of `loc_to_pixel`: `[..., 2]` pixel coordinates `(column, row)` -> locations `(x, y)`."""
  return center / _per_axis(center, 0.5 * width, 0.5 * height) - 1.0


def _per_axis(like, along_x, along_y):
  """A `[2]` NumPy constant `(along_x, along_y)` in the floating dtype of `like`."""
  dtype = like.dtype if np.issubdtype(like.dtype, np.floating) else np.float32
  return np.asarray([along_x, along_y], dtype=dtype)
