"""Seeded NumPy generators of canvases: translated, scaled and cluttered digits.

A batch is made in two steps. `sample_layout` draws every random quantity of the batch (digit
scale, position, clutter pieces) from a `np.random.Generator`; `render` then draws the canvases of
any rows of that layout. Splitting the two lets each process render only its slice of a global
batch while the batch itself stays independent of the number of processes.

Clutter (Mnih et al. 2014): `num_clutter` square pieces of side `clutter_size`, each cut at a
uniformly random place of another random digit of the same pool and put at a uniformly random place
of the canvas; pieces and digit are combined with a pixelwise max.
Scaling (Ba et al. 2015): the digit's side becomes `round(28 * f)` pixels, with `f` drawn
log-uniformly from `scale_range` (so shrinking and growing by the same factor are equally likely);
shrinking averages source pixels by area, growing interpolates bilinearly.
Placement: 'uniform' puts the digit's top-left corner at a uniformly random pixel where the digit
fits; 'slope' (our reading of Wu, Xu & Lee's text, a wedge) keeps it on a line through the canvas
center with slope within +-45 degrees (see `slope_top_left`); 'sonderby' places it as Sonderby's
`create_mnist_sequence.py` does for one digit, the generator of the widely used 40x40 cluttered
set (see `sonderby_top_left`), and composes that canvas as the script does: clutter pieces
overwrite one another, then the digit is added and the sum saturates (clipped to [0, 1], here 255).
"""

import dataclasses
import functools

import numpy as np

from glimpse_jax import glimpse
from glimpse_jax.data import sources

_DIGIT = sources.DIGIT_SIZE
PLACEMENTS = ("uniform", "slope", "sonderby")


@dataclasses.dataclass(frozen=True)
class CanvasSpec:
  """What a canvas holds.

  Attributes:
    canvas_size: side of the square canvas in pixels.
    scale_range: `(low, high)` scale factors, or None to keep digits at 28x28.
    num_clutter: clutter pieces per canvas.
    clutter_size: side of a clutter piece in pixels.
    placement: where the digit goes, one of `PLACEMENTS`.
  """
  canvas_size: int
  scale_range: tuple[float, float] | None = None
  num_clutter: int = 0
  clutter_size: int = 8
  placement: str = "uniform"

  def __post_init__(self):
    if self.placement not in PLACEMENTS:
      raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
    if self.placement == "sonderby":
      if self.scale_range is not None:
        raise ValueError("placement 'sonderby' places 28x28 digits: scale_range must be None, got "
                         f"{self.scale_range!r}")
      if self.canvas_size < _DIGIT + 2:
        raise ValueError(f"placement 'sonderby' needs canvas_size >= {_DIGIT + 2} (a column "
                         f"range on each side of the centered digit), got {self.canvas_size}")


@dataclasses.dataclass(frozen=True)
class Layout:
  """The random choices behind a batch of canvases (row, column order for pixel positions)."""
  digit: np.ndarray  # [B] index of the digit in the pool
  size: np.ndarray  # [B] digit side in pixels
  top_left: np.ndarray  # [B, 2] canvas pixel of the digit's top-left corner
  clutter_digit: np.ndarray  # [B, K] index in the pool of the digit each piece is cut from
  clutter_origin: np.ndarray  # [B, K, 2] top-left pixel of each piece inside its digit
  clutter_top_left: np.ndarray  # [B, K, 2] canvas pixel of each piece's top-left corner

  def rows(self, start, stop):
    """The layout of rows `[start, stop)`."""
    return Layout(*(getattr(self, f.name)[start:stop] for f in dataclasses.fields(self)))


def sample_layout(rng, spec, digit, pool_size):
  """Draws the positions, scales and clutter of one canvas per entry of `digit`.

  Args:
    rng: a `np.random.Generator`; the layout is a pure function of its state.
    spec: the `CanvasSpec`.
    digit: `[B]` indices of the digits to place, in a pool of `pool_size` digits.
    pool_size: number of digits clutter is cut from (the same pool).

  Returns:
    The `Layout`.
  """
  digit = np.asarray(digit, dtype=np.int64)
  batch = digit.shape[0]
  if spec.scale_range is None:
    size = np.full(batch, _DIGIT, dtype=np.int64)
  else:
    low, high = np.log(spec.scale_range)
    factor = np.exp(rng.uniform(low, high, size=batch))
    size = np.clip(np.rint(_DIGIT * factor).astype(np.int64), 1, spec.canvas_size)
  if spec.placement == "slope":
    top_left = slope_top_left(rng, spec.canvas_size - size)
  elif spec.placement == "sonderby":
    top_left = sonderby_top_left(rng, batch, spec.canvas_size)
  else:
    top_left = rng.integers(0, spec.canvas_size - size + 1, size=(2, batch)).T
  k, piece = spec.num_clutter, spec.clutter_size
  # Offsets in [1, pool_size) make every piece come from another digit than the one placed.
  clutter_digit = (digit[:, None] + rng.integers(1, max(pool_size, 2), size=(batch, k))) % pool_size
  # Sonderby's script draws the piece's corners with `randint(side - piece)`, one short of the
  # last place a piece fits (its canvases never show clutter in the last row or column).
  last = 0 if spec.placement == "sonderby" else 1
  clutter_origin = rng.integers(0, _DIGIT - piece + last, size=(batch, k, 2))
  clutter_top_left = rng.integers(0, spec.canvas_size - piece + last, size=(batch, k, 2))
  return Layout(digit, size, top_left, clutter_digit, clutter_origin, clutter_top_left)


def slope_top_left(rng, room):
  """Top-left pixels `[B, 2]` (row, column) of digits placed along a slope within +-45 degrees.

  The row is uniform over the `room + 1` rows where the digit fits; the column is then uniform over
  the columns where it fits and the line from the canvas center to the digit's center has a slope
  (rise over run) in [-1, 1]: `|2 * column - room| >= |2 * row - room|`. The allowed columns are
  `[0, low]` and `[room - low, room]` with `low = min(row, room - row)`: two wedges mirrored about
  the center, never empty, the whole row when the digit is vertically centered.

  Args:
    rng: a `np.random.Generator`.
    room: `[B]` free pixels per side, canvas side less digit side.
  """
  room = np.asarray(room, dtype=np.int64)
  row = rng.integers(0, room + 1)  # [B]
  low = np.minimum(row, room - row)  # [B] last column of the left wedge
  high = np.maximum(room - low, low + 1)  # [B] first column of the right wedge outside the left
  count = (low + 1) + (room - high + 1)  # [B] allowed columns
  draw = rng.integers(0, count)  # [B]
  column = np.where(draw <= low, draw, draw + high - low - 1)
  return np.stack([row, column], axis=-1)


def sonderby_top_left(rng, batch, canvas_size):
  """Top-left pixels `[B, 2]` (row, column) of 28x28 digits placed as Sonderby's
  `create_mnist_sequence.py` places one digit.

  The column is `offset + choice(range(-offset, offset))` with `offset = (canvas_size - 28) // 2`:
  uniform in `[0, 2 * offset - 1]` (0-11 on 40x40: the last free column is never used). The row
  is uniform over the whole canvas, `[0, canvas_size - 1]`, then pushed back up to the last row
  where the digit fits, `canvas_size - 28`: `min(uniform, canvas_size - 28)`. On 40x40 canvases
  28 of the 40 draws land on row 12, so 70% of digits share one row and the rows 0-11 take 2.5%
  each.

  Args:
    rng: a `np.random.Generator`.
    batch: number of digits.
    canvas_size: side of the canvas, at least 30.
  """
  offset = (canvas_size - _DIGIT) // 2
  column = rng.integers(0, 2 * offset, size=batch)  # [B]
  row = np.minimum(rng.integers(0, canvas_size, size=batch), canvas_size - _DIGIT)  # [B]
  return np.stack([row, column], axis=-1)


def render(layout, spec, images):
  """Draws the canvases of a layout.

  Args:
    layout: a `Layout` of B rows.
    spec: the `CanvasSpec` it was sampled for.
    images: `[N, 28, 28]` uint8 digit pool the layout indexes.

  Returns:
    `[B, H, W]` uint8 canvases.
  """
  batch = layout.digit.shape[0]
  canvas = np.zeros((batch, spec.canvas_size, spec.canvas_size), dtype=np.uint8)
  additive = spec.placement == "sonderby"  # pieces overwrite, the digit adds and saturates
  if spec.num_clutter:
    pieces = clutter_pieces(layout, spec, images)  # [B, K, P, P]
    for k in range(spec.num_clutter):
      _paste(canvas, np.arange(batch), layout.clutter_top_left[:, k], pieces[:, k],
             "overwrite" if additive else "max")
  if additive:
    _paste(canvas, np.arange(batch), layout.top_left, images[layout.digit], "add")
  else:
    paste_digits(canvas, np.arange(batch), images[layout.digit], layout.size, layout.top_left)
  return canvas


def clutter_pieces(layout, spec, images):
  """`[B, K, P, P]` uint8: the clutter pieces of a layout, cut from their digits."""
  span = np.arange(spec.clutter_size)
  rows = layout.clutter_origin[..., 0, None, None] + span[:, None]  # [B, K, P, 1]
  cols = layout.clutter_origin[..., 1, None, None] + span[None, :]  # [B, K, 1, P]
  return images[layout.clutter_digit[..., None, None], rows, cols]


def paste_digits(canvas, batch_rows, digits, sizes, top_left):
  """`canvas[batch_rows[i]]` = max(itself, `digits[i]` resized to `sizes[i]` at `top_left[i]`),
  in place; one resize per distinct size.

  Args:
    canvas: `[B, H, W]` uint8.
    batch_rows: `[n]` canvas row of each digit (each row at most once).
    digits: `[n, 28, 28]` uint8.
    sizes: `[n]` sides in pixels.
    top_left: `[n, 2]` (row, col) of each digit's square.
  """
  for size in np.unique(sizes):
    chosen = np.flatnonzero(sizes == size)
    resized = digits[chosen] if size == _DIGIT else resize_digits(digits[chosen], int(size))
    _paste_max(canvas, batch_rows[chosen], top_left[chosen], resized)


def _paste_max(canvas, batch_rows, top_left, patches):
  """`canvas[b]` = max(canvas[b], patch) over each patch's square, in place."""
  _paste(canvas, batch_rows, top_left, patches, "max")


def _paste(canvas, batch_rows, top_left, patches, how):
  """Combines each patch with its square of `canvas[b]` in place: 'max', 'overwrite', or 'add'
  (saturating at 255, as clipping a float canvas to [0, 1])."""
  side = patches.shape[-1]
  span = np.arange(side)
  b = batch_rows[:, None, None]
  rows = top_left[:, 0, None, None] + span[:, None]  # [n, S, 1]
  cols = top_left[:, 1, None, None] + span[None, :]  # [n, 1, S]
  if how == "max":
    canvas[b, rows, cols] = np.maximum(canvas[b, rows, cols], patches)
  elif how == "overwrite":
    canvas[b, rows, cols] = patches
  else:
    total = canvas[b, rows, cols].astype(np.int32) + patches
    canvas[b, rows, cols] = np.minimum(total, 255).astype(np.uint8)


def targets(layout, spec):
  """The digit's center `[B, 2]` (x, y) in the location convention and its side `[B]` (float32)."""
  half = 0.5 * layout.size[:, None]
  center_pixel = (layout.top_left[:, ::-1] + half).astype(np.float32)  # [B, 2] (column, row)
  center = glimpse.pixel_to_loc(center_pixel, spec.canvas_size, spec.canvas_size)
  return center.astype(np.float32), layout.size.astype(np.float32)


def make_examples(layout, spec, images, labels):
  """Canvases with their targets: image uint8 [B, H, W, 1], label int32, center, box_size."""
  center, box_size = targets(layout, spec)
  return {
      "image": render(layout, spec, images)[..., None],
      "label": labels[layout.digit].astype(np.int32),
      "center": center,
      "box_size": box_size,
  }


def resize_digits(digits, size):
  """Resamples `[n, 28, 28]` uint8 digits to `[n, size, size]` (area when shrinking, else bilinear)."""
  if size < 1:
    raise ValueError(f"size must be >= 1, got {size}")
  weights = _resize_matrix(digits.shape[-1], size)  # [size, 28]
  resized = weights @ digits.astype(np.float32) @ weights.T
  return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _resize_matrix(in_size, out_size):
  """`[out, in]` float32 weights of a 1-D resampling; rows sum to one."""
  if out_size == in_size:
    return np.eye(in_size, dtype=np.float32)
  out = np.arange(out_size, dtype=np.float64)[:, None]
  src = np.arange(in_size, dtype=np.float64)[None, :]
  step = in_size / out_size
  if out_size < in_size:
    # Output pixel i covers source span [i * step, (i + 1) * step): weight = overlap / step.
    overlap = np.minimum((out + 1) * step, src + 1) - np.maximum(out * step, src)
    weights = np.clip(overlap, 0.0, None) / step
  else:
    # Bilinear between the two source pixel centers nearest to the output pixel center.
    position = np.clip((out + 0.5) * step - 0.5, 0.0, in_size - 1.0)
    weights = np.clip(1.0 - np.abs(position - src), 0.0, None)
  weights = weights.astype(np.float32)
  weights.setflags(write=False)
  return weights
