"""Seeded NumPy generator of multi-digit MNIST strings: canvases captioned by their digits.

A canvas holds between `min_digits` and `max_digits` digits, each rescaled by a factor drawn
log-uniformly from `scale_range` (as in `canvas`: side `round(28 * f)`) and placed at a random
position fully inside the canvas; digits are combined with a pixelwise max. Its caption is the
digits' labels in reading order followed by the end token (`captions.DIGITS`).

Guarantees, for every pair of digits of a canvas:
- their boxes intersect in at most `max_overlap` of the smaller box's area;
- their centers' columns differ by at least a quarter of the smaller digit's side, so the reading
  order, by center column from left to right, is never a tie and never a judgement call between
  digits stacked one above the other.
Placement draws every canvas's count and digits, then its sizes, then places the digits slot by
slot, each at the first of `_CANDIDATES` uniformly drawn positions that keeps the guarantees.
Canvases where a digit finds none draw their sizes and positions again (count and digits stay),
which slightly favours smaller digits on crowded canvases; a canvas that fails `_MAX_REDRAWS`
times raises, naming the fields that make it too crowded.

As in `canvas`, `sample_layout` draws every random quantity and `render` draws any rows of it.
"""

import dataclasses
import math

import numpy as np

from glimpse_jax import glimpse
from glimpse_jax.data import canvas
from glimpse_jax.data import captions
from glimpse_jax.data import sources

_DIGIT = sources.DIGIT_SIZE
_CANDIDATES = 64  # positions drawn at once for one digit
_MAX_REDRAWS = 100  # redraws of one canvas's sizes and positions before giving up


@dataclasses.dataclass(frozen=True)
class DigitStringSpec:
  """What a canvas holds.

  Attributes:
    canvas_size: side of the square canvas in pixels.
    min_digits: fewest digits on a canvas (>= 1).
    max_digits: most digits on a canvas; captions have `max_digits + 1` tokens.
    scale_range: `(low, high)` digit scale factors, drawn log-uniformly.
    max_overlap: largest fraction of the smaller box two digits' boxes may share, in [0, 1].
  """
  canvas_size: int = 100
  min_digits: int = 2
  max_digits: int = 5
  scale_range: tuple[float, float] = (0.75, 1.25)
  max_overlap: float = 0.1

  def __post_init__(self):
    for name, low in (("canvas_size", 1), ("min_digits", 1), ("max_digits", 1)):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if self.max_digits < self.min_digits:
      raise ValueError(
          f"max_digits must be >= min_digits={self.min_digits}, got {self.max_digits}")
    scale = tuple(self.scale_range)
    if (len(scale) != 2 or not all(isinstance(s, (int, float)) and math.isfinite(s) for s in scale)
        or not 0 < scale[0] <= scale[1]):
      raise ValueError(
          f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range!r}")
    low, high = scale
    if round(_DIGIT * low) < 1:
      raise ValueError(f"scale_range low {low} shrinks a digit below one pixel")
    if round(_DIGIT * high) > self.canvas_size:
      raise ValueError(
          f"canvas_size {self.canvas_size} cannot hold a digit scaled by {high} "
          f"({round(_DIGIT * high)} pixels)")
    if (isinstance(self.max_overlap, bool) or not isinstance(self.max_overlap, (int, float))
        or not 0 <= self.max_overlap <= 1):
      raise ValueError(f"max_overlap must be in [0, 1], got {self.max_overlap!r}")

  @property
  def caption_length(self):
    """Tokens of a stored caption: the most digits plus the end token."""
    return self.max_digits + 1


@dataclasses.dataclass(frozen=True)
class Layout:
  """The random choices behind a batch of canvases; slots are in reading order, D = max_digits."""
  count: np.ndarray  # [B] digits on the canvas
  digit: np.ndarray  # [B, D] index of each digit in the image pool; -1 for empty slots
  size: np.ndarray  # [B, D] digit side in pixels; 0 for empty slots
  top_left: np.ndarray  # [B, D, 2] canvas pixel (row, column) of each digit's top-left corner

  def rows(self, start, stop):
    """The layout of rows `[start, stop)`."""
    return Layout(*(getattr(self, f.name)[start:stop] for f in dataclasses.fields(self)))


def sample_layout(rng, spec, batch, pool_start, pool_stop):
  """Draws the digits, sizes and positions of `batch` canvases.

  Args:
    rng: a `np.random.Generator`; the layout is a pure function of its state.
    spec: the `DigitStringSpec`.
    batch: B, the number of canvases.
    pool_start, pool_stop: `[B]` (or scalar) ranges of image indices each canvas draws its digits
      from, uniformly and independently.

  Returns:
    The `Layout`.
  """
  pool_start = np.broadcast_to(np.asarray(pool_start, dtype=np.int64), (batch,))
  pool_stop = np.broadcast_to(np.asarray(pool_stop, dtype=np.int64), (batch,))
  if np.any(pool_stop <= pool_start):
    raise ValueError("every canvas needs a non-empty digit pool (pool_stop > pool_start)")
  slots = spec.max_digits
  count = rng.integers(spec.min_digits, spec.max_digits + 1, size=batch)  # [B]
  digit = pool_start[:, None] + rng.integers(0, (pool_stop - pool_start)[:, None],
                                             size=(batch, slots))  # [B, D]
  size, top_left = _place(rng, spec, count)
  digit[np.arange(slots)[None, :] >= count[:, None]] = -1
  return Layout(count, digit, size, top_left)


def _place(rng, spec, count):
  """Sizes `[B, D]` and corners `[B, D, 2]` of `count [B]` digits per canvas, in reading order."""
  batch, slots = count.shape[0], spec.max_digits
  filled = np.arange(slots)[None, :] < count[:, None]  # [B, D]
  low, high = np.log(spec.scale_range)
  size = np.zeros((batch, slots), dtype=np.int64)
  corner = np.zeros((batch, slots, 2), dtype=np.int64)
  todo = np.arange(batch)  # canvases still to place
  for _ in range(_MAX_REDRAWS):
    n = todo.shape[0]
    side = np.rint(_DIGIT * np.exp(rng.uniform(low, high, size=(n, slots)))).astype(np.int64)
    side = np.where(filled[todo], np.clip(side, 1, spec.canvas_size), 0)  # [n, D]
    at = np.zeros((n, slots, 2), dtype=np.int64)
    placed = np.ones(n, dtype=bool)
    for k in range(slots):
      room = spec.canvas_size - side[:, k] + 1  # [n]
      candidates = rng.integers(0, room[:, None, None], size=(n, _CANDIDATES, 2))  # [n, T, 2]
      allowed = _allowed(candidates, side[:, k], at[:, :k], side[:, :k], spec.max_overlap)
      placed &= allowed.any(axis=1) | ~filled[todo, k]
      at[:, k] = candidates[np.arange(n), np.argmax(allowed, axis=1)]
    size[todo[placed]], corner[todo[placed]] = side[placed], at[placed]
    todo = todo[~placed]
    if not todo.size:
      break
  else:
    raise ValueError(
        f"could not place {count[todo[0]]} digits on a {spec.canvas_size}-pixel canvas in "
        f"{_MAX_REDRAWS} tries with max_overlap={spec.max_overlap} and "
        f"scale_range={spec.scale_range}: lower max_digits or scale_range, or raise canvas_size "
        "or max_overlap")
  # Reading order: by twice the center column; empty slots last.
  key = np.where(filled, 2 * corner[..., 1] + size, np.iinfo(np.int64).max)
  order = np.argsort(key, axis=1, kind="stable")  # [B, D]
  return np.take_along_axis(size, order, 1), np.take_along_axis(corner, order[..., None], 1)


def _allowed(candidates, side, corners, sizes, max_overlap):
  """bool [n, T]: which candidate corners `[n, T, 2]` of digits of `side [n]` keep the guarantees.

  `corners [n, m, 2]` and `sizes [n, m]` are the digits already placed (size 0: none).
  """
  start = np.maximum(candidates[:, :, None, :], corners[:, None])  # [n, T, m, 2]
  stop = np.minimum(candidates[:, :, None, :] + side[:, None, None, None],
                    (corners + sizes[..., None])[:, None])
  shared = np.prod(np.clip(stop - start, 0, None), axis=-1)  # [n, T, m] intersection areas
  smaller = np.minimum(side[:, None], sizes)[:, None, :]  # [n, 1, m]
  overlap_ok = shared <= max_overlap * smaller**2
  # Twice the center columns' distance, at least half the smaller side.
  twice_gap = np.abs(2 * candidates[:, :, None, 1] + side[:, None, None]
                     - (2 * corners[..., 1] + sizes)[:, None, :])  # [n, T, m]
  gap_ok = 2 * twice_gap >= smaller
  return np.all(overlap_ok & gap_ok, axis=-1)


def render(layout, spec, images):
  """Draws the canvases of a layout.

  Args:
    layout: a `Layout` of B rows.
    spec: the `DigitStringSpec` it was sampled for.
    images: `[N, 28, 28]` uint8 digit pool the layout indexes.

  Returns:
    `[B, H, W]` uint8 canvases.
  """
  batch = layout.count.shape[0]
  image = np.zeros((batch, spec.canvas_size, spec.canvas_size), dtype=np.uint8)
  # One slot at a time: a canvas appears at most once per paste, so overlapping digits take a max.
  for k in range(spec.max_digits):
    filled = np.flatnonzero(layout.count > k)
    canvas.paste_digits(image, filled, images[layout.digit[filled, k]], layout.size[filled, k],
                        layout.top_left[filled, k])
  return image


def make_examples(layout, spec, images, labels):
  """Canvases with their captions and digit boxes.

  Returns:
    image uint8 [B, H, W, 1]; caption int32 [B, L] and caption_length int32 [B] (digits plus the
    end token; `captions.DIGITS` ids); digit_center float32 [B, D, 2] (each digit's center in the
    location convention, in reading order; 0 for empty slots); digit_size float32 [B, D] (side in
    pixels, 0 for empty slots); digit_index int32 [B, D] (each digit's index in `images`, -1 for
    empty slots). D = max_digits, L = D + 1.
  """
  filled = layout.digit >= 0  # [B, D]
  label = labels[np.maximum(layout.digit, 0)].astype(np.int32)  # [B, D]
  caption, length = captions.pad_captions(
      [row[:n] for row, n in zip(label, layout.count)], spec.caption_length, captions.DIGITS)
  center_pixel = (layout.top_left[..., ::-1] + 0.5 * layout.size[..., None]).astype(np.float32)
  center = glimpse.pixel_to_loc(center_pixel, spec.canvas_size, spec.canvas_size)  # [B, D, 2]
  return {
      "image": render(layout, spec, images)[..., None],
      "caption": caption,
      "caption_length": length,
      "digit_center": np.where(filled[..., None], center, 0).astype(np.float32),
      "digit_size": layout.size.astype(np.float32),
      "digit_index": layout.digit.astype(np.int32),
  }
