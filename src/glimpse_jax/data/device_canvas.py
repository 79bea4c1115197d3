"""Canvases composed inside the jitted training step from host-drawn recipes.

The host draws a batch's `canvas.Layout` as before and sends its *recipe*: the chosen 28x28
digits, their sides and positions, and the clutter pieces already cut (P x P each) with their
positions. `compose` then renders the canvases on the device with the same arithmetic as
`canvas.render` (area / bilinear resize matrices applied as float32 products, rounded and clipped
to [0, 255], pixelwise max pastes), so the images equal the host's, up to a rare one-level
rounding difference of the float32 products, and the batch stays a pure function of
(seed, step). The host then moves 28x28 digits instead of whole canvases and never renders; the
device spends O(canvas) per image, which it would spend reading a host canvas anyway.

Recipe fields (each [B, ...], beside label, center and box_size as in a rendered batch):
  recipe_digit uint8 [B, 28, 28], recipe_size int32 [B], recipe_top_left int32 [B, 2] (row, col),
  and with clutter recipe_clutter uint8 [B, K, P, P], recipe_clutter_top_left int32 [B, K, 2].
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from glimpse_jax.data import canvas
from glimpse_jax.data import sources

RECIPE_KEYS = ("recipe_digit", "recipe_size", "recipe_top_left", "recipe_clutter",
               "recipe_clutter_top_left")


@functools.lru_cache(maxsize=8)
def resize_table(max_size):
  """float32 [max_size + 1, max_size, 28]: entry s holds `canvas._resize_matrix(28, s)` in its
  first s rows and zeros below (entry 0 is all zeros)."""
  table = np.zeros((max_size + 1, max_size, sources.DIGIT_SIZE), np.float32)
  for size in range(1, max_size + 1):
    table[size, :size] = canvas._resize_matrix(sources.DIGIT_SIZE, size)  # pylint: disable=protected-access
  table.setflags(write=False)
  return table


def recipe_examples(layout, spec, images, labels):
  """The recipe of a layout's canvases, with their label, center and box_size (host, NumPy).

  Args:
    layout: a `canvas.Layout` of B rows.
    spec: the `canvas.CanvasSpec` it was sampled for.
    images: [N, 28, 28] uint8 digit pool the layout indexes.
    labels: [N] labels of the pool.
  """
  center, box_size = canvas.targets(layout, spec)
  recipe = {
      "recipe_digit": images[layout.digit],
      "recipe_size": layout.size.astype(np.int32),
      "recipe_top_left": layout.top_left.astype(np.int32),
      "label": labels[layout.digit].astype(np.int32),
      "center": center,
      "box_size": box_size,
  }
  if spec.num_clutter:
    recipe["recipe_clutter"] = canvas.clutter_pieces(layout, spec, images)
    recipe["recipe_clutter_top_left"] = layout.clutter_top_left.astype(np.int32)
  return recipe


def is_recipe(batch):
  return "recipe_digit" in batch


def compose(batch, *, canvas_size, max_size, resize=True):
  """A recipe batch as a rendered one: the recipe fields become image float32 [B, H, W, 1].

  Args:
    batch: a dict with the recipe fields (jax or NumPy arrays; traceable under jit).
    canvas_size: H = W.
    max_size: the largest digit side the canvases can have (`config.max_digit_size`).
    resize: False when every digit keeps its 28x28 side (the resize would be the identity).
  """
  digits = jnp.asarray(batch["recipe_digit"]).astype(jnp.float32)  # [B, 28, 28]
  if resize:
    weights = jnp.asarray(resize_table(max_size))[batch["recipe_size"]]  # [B, S, 28]
    # Full float32 products: a GPU's default (TF32 inputs) moves ~0.6% of pixels by a level.
    resized = jnp.matmul(jnp.matmul(weights, digits, precision='highest'),
                         weights.swapaxes(1, 2), precision='highest')  # [B, S, S]
    digits = jnp.clip(jnp.rint(resized), 0, 255)
  pixels = _place(digits, batch["recipe_top_left"], canvas_size)  # [B, H, W]
  if "recipe_clutter" in batch:  # pixelwise max pastes, so the digit's order does not matter
    pieces = jnp.asarray(batch["recipe_clutter"]).astype(jnp.float32)  # [B, K, P, P]
    pixels = jnp.maximum(pixels, _pieces_canvas(pieces, batch["recipe_clutter_top_left"],
                                                canvas_size))
  rendered = {key: value for key, value in batch.items() if key not in RECIPE_KEYS}
  rendered["image"] = (pixels / np.float32(255))[..., None]
  return rendered


def _place(squares, top_left, canvas_size):
  """Each square on its own zero canvas, its top-left pixel at top_left[b] (row, col), cut at the
  canvas's far edges: [B, S, S], [B, 2] -> [B, H, W]. A canvas-sized window read from the square
  padded with zeros (one gather per image)."""
  side = squares.shape[-1]
  pad = (canvas_size, max(canvas_size - side, 0))  # window start C - corner stays in [0, C]
  padded = jnp.pad(squares, ((0, 0), pad, pad))  # [B, L, L], L = C + S + max(C - S, 0)

  def window(square, corner):
    return jax.lax.dynamic_slice(square, (canvas_size - corner[0], canvas_size - corner[1]),
                                 (canvas_size, canvas_size))

  return jax.vmap(window)(padded, top_left)


def _pieces_canvas(pieces, top_left, canvas_size):
  """Zero canvases with each image's pieces pasted by pixelwise max, each piece's top-left pixel
  at top_left[b, k] (row, col), pixels past the canvas's far edges dropped:
  [B, K, P, P], [B, K, 2] -> [B, H, W]. One scatter-max of B * K windows into zero canvases grown
  by P on their far edges. (Scattering onto the placed digits instead, whose placement XLA fuses,
  costs about 5 times as much on CPU.)"""
  batch, count, side, _ = pieces.shape
  grown = jnp.zeros((batch, canvas_size + side, canvas_size + side), jnp.float32)
  image = jnp.repeat(jnp.arange(batch), count)[:, None]  # [B * K, 1]
  starts = jnp.concatenate([image, jnp.reshape(top_left, (batch * count, 2))], axis=1)
  numbers = jax.lax.ScatterDimensionNumbers(
      update_window_dims=(1, 2), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0, 1, 2))
  grown = jax.lax.scatter_max(grown, starts, jnp.reshape(pieces, (batch * count, side, side)),
                              numbers, mode=jax.lax.GatherScatterMode.CLIP)
  return grown[:, :canvas_size, :canvas_size]
