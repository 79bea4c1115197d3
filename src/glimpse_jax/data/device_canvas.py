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


def compose(batch, *, canvas_size, max_size):
  """A recipe batch as a rendered one: the recipe fields become image float32 [B, H, W, 1].

  Args:
    batch: a dict with the recipe fields (jax or NumPy arrays; traceable under jit).
    canvas_size: H = W.
    max_size: the largest digit side the canvases can have (`config.max_digit_size`).
  """
  digits = jnp.asarray(batch["recipe_digit"]).astype(jnp.float32)  # [B, 28, 28]
  weights = jnp.asarray(resize_table(max_size))[batch["recipe_size"]]  # [B, S, 28]
  resized = jnp.clip(jnp.rint(weights @ digits @ weights.swapaxes(1, 2)), 0, 255)  # [B, S, S]
  pieces = None
  if "recipe_clutter" in batch:
    pieces = jnp.asarray(batch["recipe_clutter"]).astype(jnp.float32)  # [B, K, P, P]
  # Every square starts inside the canvas but may run past its far edges (a digit's S x S window
  # holds zeros beyond its side): a margin there keeps each paste a plain window.
  margin = max(resized.shape[-1], 0 if pieces is None else pieces.shape[-1])
  pixels = jnp.zeros((digits.shape[0], canvas_size + margin, canvas_size + margin), jnp.float32)
  if pieces is not None:
    for k in range(pieces.shape[1]):
      pixels = _paste_max(pixels, pieces[:, k], batch["recipe_clutter_top_left"][:, k])
  pixels = _paste_max(pixels, resized, batch["recipe_top_left"])
  rendered = {key: value for key, value in batch.items() if key not in RECIPE_KEYS}
  rendered["image"] = (pixels[:, :canvas_size, :canvas_size] / np.float32(255))[..., None]
  return rendered


def _paste_max(pixels, patches, top_left):
  """pixels[b] = max(pixels[b], patches[b]) over the S x S square at top_left[b] (row, col),
  which must lie within pixels: [B, H, W], [B, S, S], [B, 2] -> [B, H, W]. One window read and
  written per image (a windowed gather and scatter), not one index per pixel."""

  def paste(canvas, patch, corner):
    start = (corner[0], corner[1])
    region = jax.lax.dynamic_slice(canvas, start, patch.shape)
    return jax.lax.dynamic_update_slice(canvas, jnp.maximum(region, patch), start)

  return jax.vmap(paste)(pixels, patches, top_left)
