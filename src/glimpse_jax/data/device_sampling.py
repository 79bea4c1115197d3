"""Training canvases drawn inside the jitted step from its own key: no host work per update.

`canvas.sample_layout`'s distribution, drawn with `jax.random` from `fold_in(key(seed), step)`:
uniform digit, log-uniform scale, uniform or 'slope' placement, clutter pieces cut at a uniform
place of another uniform digit and put at a uniform place. The digit pool (the training digits,
uint8 [N, 28, 28], and their labels) lives on the device; a step gathers its digits and clutter
pieces from it and composes them with `device_canvas.compose`. The batch is a pure function of
(seed, step), so a resumed run sees the batches an uninterrupted one would; it is not the host
stream's batch for that step (another generator), only one drawn from the same distribution.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glimpse_jax import glimpse
from glimpse_jax.data import canvas
from glimpse_jax.data import device_canvas
from glimpse_jax.data import sources

_DIGIT = sources.DIGIT_SIZE
_DATA_TAG = 0xDA7A  # keeps the data key apart from the model's keys of the same seed


class Sampler(NamedTuple):
  """What the loop needs to draw training batches on the device.

  Attributes:
    pool: the digit pool, put on the device once: digits uint8 [N, 28, 28], labels int32 [N].
    sample: `(pool, step) -> batch`, traceable: the global training batch of update `step`, as
      `train_stream` yields it (image float32 [B, H, W, 1], label, center, box_size).
  """
  pool: dict[str, np.ndarray]
  sample: Callable[[dict[str, jax.Array], jax.Array], dict[str, jax.Array]]


def sampler(spec, images, labels, batch_size, seed, *, max_size):
  """The `Sampler` of canvases `spec` from a digit pool.

  Args:
    spec: the `canvas.CanvasSpec`.
    images: [N, 28, 28] uint8 digits the canvases place and cut clutter from.
    labels: [N] their labels.
    batch_size: B, canvases per draw (the global batch).
    seed: the run's data seed; draw `step` uses `fold_in(fold_in(key(seed), tag), step)`.
    max_size: the largest digit side the spec can draw (`config.max_digit_size`).
  """
  pool = {"digits": np.asarray(images, np.uint8), "labels": np.asarray(labels, np.int32)}
  compose = functools.partial(device_canvas.compose, canvas_size=spec.canvas_size,
                              max_size=max_size, resize=spec.scale_range is not None)

  def sample(pool, step):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _DATA_TAG), step)
    layout = sample_layout(key, spec, pool["digits"].shape[0], batch_size)
    return compose(recipe(layout, spec, pool["digits"], pool["labels"]))

  return Sampler(pool, sample)


def sample_layout(key, spec, pool_size, batch_size):
  """`canvas.sample_layout` drawn with `jax.random`: a `canvas.Layout` of int32 jax arrays (not a
  pytree: for use inside a trace, or read field by field).

  Args:
    key: a `jax.random.key`; the layout is a pure function of it.
    spec: the `canvas.CanvasSpec`.
    pool_size: digits in the pool (placed digits and clutter sources both index it).
    batch_size: B, the canvases drawn.
  """
  digit_key, size_key, place_key, clutter_key, origin_key, where_key = jax.random.split(key, 6)
  digit = jax.random.randint(digit_key, (batch_size,), 0, pool_size)  # [B]
  if spec.scale_range is None:
    size = jnp.full((batch_size,), _DIGIT, jnp.int32)
  else:
    low, high = np.log(spec.scale_range)
    factor = jnp.exp(jax.random.uniform(size_key, (batch_size,), minval=low, maxval=high))
    size = jnp.clip(jnp.rint(_DIGIT * factor), 1, spec.canvas_size).astype(jnp.int32)  # [B]
  room = spec.canvas_size - size  # [B] free pixels per side
  if spec.placement == "slope":
    top_left = _slope_top_left(place_key, room)
  else:
    top_left = jax.random.randint(place_key, (batch_size, 2), 0, room[:, None] + 1)  # [B, 2]
  k, piece = spec.num_clutter, spec.clutter_size
  # Offsets in [1, pool_size) make every piece come from another digit than the one placed.
  offset = jax.random.randint(clutter_key, (batch_size, k), 1, max(pool_size, 2))
  clutter_digit = (digit[:, None] + offset) % pool_size  # [B, K]
  clutter_origin = jax.random.randint(origin_key, (batch_size, k, 2), 0, _DIGIT - piece + 1)
  clutter_top_left = jax.random.randint(where_key, (batch_size, k, 2), 0,
                                        spec.canvas_size - piece + 1)  # [B, K, 2]
  return canvas.Layout(digit, size, top_left, clutter_digit, clutter_origin, clutter_top_left)


def _slope_top_left(key, room):
  """`canvas.slope_top_left` with `jax.random`: [B] room -> [B, 2] (row, column)."""
  row_key, column_key = jax.random.split(key)
  row = jax.random.randint(row_key, room.shape, 0, room + 1)  # [B]
  low = jnp.minimum(row, room - row)  # [B] last column of the left wedge
  high = jnp.maximum(room - low, low + 1)  # [B] first column of the right wedge outside the left
  count = (low + 1) + (room - high + 1)  # [B] allowed columns
  draw = jax.random.randint(column_key, room.shape, 0, count)
  column = jnp.where(draw <= low, draw, draw + high - low - 1)
  return jnp.stack([row, column], axis=-1)


def recipe(layout, spec, digits, labels):
  """`device_canvas.recipe_examples` on the device: the layout's recipe with its targets.

  Args:
    layout: a `canvas.Layout` (jax or NumPy integer arrays) of B rows.
    spec: the `canvas.CanvasSpec` it was sampled for.
    digits: [N, 28, 28] uint8 pool the layout indexes.
    labels: [N] int32 labels of the pool.
  """
  digits, labels = jnp.asarray(digits), jnp.asarray(labels)
  size = jnp.asarray(layout.size, jnp.int32)  # [B]
  top_left = jnp.asarray(layout.top_left, jnp.int32)  # [B, 2] (row, col)
  center_pixel = top_left[:, ::-1].astype(jnp.float32) + 0.5 * size[:, None]  # [B, 2] (col, row)
  batch = {
      "recipe_digit": digits[layout.digit],  # [B, 28, 28]
      "recipe_size": size,
      "recipe_top_left": top_left,
      "label": labels[layout.digit].astype(jnp.int32),
      "center": glimpse.pixel_to_loc(center_pixel, spec.canvas_size, spec.canvas_size),
      "box_size": size.astype(jnp.float32),
  }
  if spec.num_clutter:
    span = jnp.arange(spec.clutter_size)
    origin = jnp.asarray(layout.clutter_origin)
    rows = origin[..., 0, None, None] + span[:, None]  # [B, K, P, 1]
    cols = origin[..., 1, None, None] + span[None, :]  # [B, K, 1, P]
    batch["recipe_clutter"] = digits[jnp.asarray(layout.clutter_digit)[..., None, None],
                                     rows, cols]  # [B, K, P, P]
    batch["recipe_clutter_top_left"] = jnp.asarray(layout.clutter_top_left, jnp.int32)
  return batch
