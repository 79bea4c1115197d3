"""Pictures of self-attention over image blocks: how much attention each block receives."""

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.plots.saving import save


def received_attention(weights: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
  """The attention each block receives, averaged over the querying blocks.

  Args:
    weights: [..., T, T] attention weights (rows: queries, each summing to 1).
    grid: (rows, columns) of the blocks, in row-major token order; rows * columns = T.

  Returns:
    [..., rows, columns], summing to 1 over the last two axes.
  """
  weights = np.asarray(weights)
  if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
    raise ValueError(f'weights must be [..., T, T], got shape {weights.shape}')
  if math.prod(grid) != weights.shape[-1]:
    raise ValueError(f'a {grid[0]}x{grid[1]} grid of blocks needs T = {math.prod(grid)} tokens, '
                     f'got T = {weights.shape[-1]}')
  return weights.mean(-2).reshape(*weights.shape[:-2], *grid)


def plot_attention_maps(images, weights, *, token_side, labels=None, predictions=None, path=None):
  """Saves one row per image: the image, then the attention each block receives (mean over the
  querying blocks) for every head and averaged over heads, drawn over the image.

  Args:
    images: [N, H, W, C] in [0, 1].
    weights: [N, heads, T, T] attention weights among T blocks of `token_side` x `token_side`
      pixels in row-major order, tiling the image from its top-left corner (the last row and
      column of blocks may reach past its edge, over padding).
    token_side: side of a block in image pixels.
    labels, predictions: optional [N] integers for the row titles.
    path: where the PNG goes.
  """
  images, weights = np.asarray(images), np.asarray(weights)
  if weights.ndim != 4 or weights.shape[0] != images.shape[0]:
    raise ValueError(f'weights must be [N, heads, T, T] for {images.shape[0]} images, got shape '
                     f'{weights.shape}')
  if isinstance(token_side, bool) or not isinstance(token_side, int) or token_side < 1:
    raise ValueError(f'token_side must be an integer >= 1, got {token_side!r}')
  count, height, width = images.shape[:3]
  grid = (math.ceil(height / token_side), math.ceil(width / token_side))
  maps = received_attention(weights, grid)  # [N, heads, rows, columns]
  maps = np.concatenate([maps, maps.mean(1, keepdims=True)], 1)  # the head average last
  heads = weights.shape[1]
  titles = ['image', *(f'head {h + 1}' for h in range(heads)), 'mean of heads']
  fig = Figure(figsize=(1.7 * len(titles), 1.8 * count))
  FigureCanvasAgg(fig)  # no pyplot: leaves a notebook's backend alone
  axes = fig.subplots(count, len(titles), squeeze=False)
  extent = (-0.5, grid[1] * token_side - 0.5, grid[0] * token_side - 0.5, -0.5)
  for n in range(count):
    gray = images[n, ..., 0] if images.shape[-1] == 1 else images[n].mean(-1)
    for column, ax in enumerate(axes[n]):
      ax.imshow(gray, cmap='gray', vmin=0, vmax=1)
      if column:
        ax.imshow(maps[n, column - 1], cmap='inferno', alpha=0.6, extent=extent,
                  interpolation='nearest', vmin=0, vmax=maps[n].max())
      ax.set_xlim(-0.5, width - 0.5)
      ax.set_ylim(height - 0.5, -0.5)
      ax.axis('off')
      if n == 0:
        ax.set_title(titles[column], fontsize=8)
    title = []
    if labels is not None:
      title.append(f'label {int(labels[n])}')
    if predictions is not None:
      title.append(f'pred {int(predictions[n])}')
    axes[n, 0].text(-0.08, 0.5, ', '.join(title), transform=axes[n, 0].transAxes, rotation=90,
                    fontsize=7, ha='right', va='center')
  fig.tight_layout()
  return save(fig, path)
