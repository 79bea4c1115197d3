"""Pictures of the experimental design: EPE maps per step, completions, attention frequency."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glimpse_jax.glimpse import loc_to_pixel
from glimpse_jax.nets.completion import observed_mask
from glimpse_jax.plots.saving import save


def _figure(rows: int, cols: int, cell: float = 1.8):
  fig = Figure(figsize=(cols * cell, rows * cell))
  FigureCanvasAgg(fig)  # renders without pyplot, so a notebook's backend is left alone
  axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  return fig, axes


def _box(ax, loc, size, height, width, color):
  col, row = np.asarray(loc_to_pixel(np.asarray(loc, np.float32), height, width))
  corner = np.floor(np.array([col, row]) - size / 2 + 0.5) - 0.5  # pixel j is drawn at j
  ax.add_patch(Rectangle(corner, size, size, fill=False, edgecolor=color, lw=1.2))


def attention_frequency(locations: jax.Array, *, height: int, width: int,
                        size: int) -> np.ndarray:
  """How often each pixel lies in the glimpse of each step: [B, T, 2] locations -> [T, H, W]."""
  mask_one = functools.partial(observed_mask, height=height, width=width, size=size)
  per_step = jax.vmap(jax.vmap(lambda loc: mask_one(loc[None], jnp.ones(1))))(
      jnp.clip(locations, -1.0, 1.0))  # [B, T, H, W]
  return np.asarray(per_step.mean(0))


def plot_attention_frequency(frequency: np.ndarray, path: str | None, *,
                             json_path: str | None = None, title: str = '') -> Figure:
  """One panel per step of `frequency` [T, H, W] (the share of images whose glimpse t covers
  each pixel); with `json_path`, the maps rounded to 3 decimals as JSON too."""
  frequency = np.asarray(frequency)
  steps = frequency.shape[0]
  fig, axes = _figure(1, steps)
  for t, ax in enumerate(axes[0]):
    ax.imshow(frequency[t], cmap='magma', vmin=0.0, vmax=max(frequency.max(), 1e-6))
    ax.set_title(f'glimpse {t + 1}', fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path, dpi=90)
  if json_path:
    os.makedirs(os.path.dirname(json_path) or '.', exist_ok=True)
    with open(json_path, 'w') as f:
      json.dump({'steps': steps, 'frequency': np.round(frequency, 3).tolist()}, f)
  return fig


def plot_completions(images, conditions, samples, path: str | None = None) -> Figure:
  """Rows of: the image, the observed pixels, then the completions ([n, S, H, W, C])."""
  images, conditions, samples = map(np.asarray, (images, conditions, samples))
  rows, count = images.shape[0], samples.shape[1]
  fig, axes = _figure(rows, count + 2, cell=1.4)
  for i in range(rows):
    observed = conditions[i, ..., 0] + 0.25 * (1.0 - conditions[i, ..., -1])  # unseen: grey
    panels = [images[i, ..., 0], observed] + [samples[i, s, ..., 0] for s in range(count)]
    for j, panel in enumerate(panels):
      axes[i, j].imshow(panel, cmap='gray', vmin=0.0, vmax=1.0)
  for j, name in enumerate(['image', 'observed'] + [f'sample {s + 1}' for s in range(count)]):
    axes[0, j].set_title(name, fontsize=8)
  fig.tight_layout()
  return save(fig, path, dpi=90)


def plot_epe_maps(images, locations, epe, *, grid_size: int, glimpse_size: int,
                  path: str | None = None, labels=None) -> Figure:
  """For each image (a row): per step, the EPE map over the candidate grid (dark = low) with the
  chosen cell, then the image with every glimpse taken.

  Args:
    images: [n, H, W, C].
    locations: [n, T, 2] chosen locations.
    epe: [n, T, grid_size**2] expected posterior entropy per candidate (row-major cells).
  """
  images, locations, epe = map(np.asarray, (images, locations, epe))
  n, steps = locations.shape[:2]
  height, width = images.shape[1:3]
  fig, axes = _figure(n, steps + 1)
  extent = (-0.5, width - 0.5, height - 0.5, -0.5)
  for i in range(n):
    for t in range(steps):
      ax = axes[i, t]
      ax.imshow(images[i, ..., 0], cmap='gray', vmin=0.0, vmax=1.0)
      ax.imshow(epe[i, t].reshape(grid_size, grid_size), cmap='viridis', alpha=0.6,
                extent=extent)
      _box(ax, locations[i, t], glimpse_size, height, width, 'red')
      if i == 0:
        ax.set_title(f'EPE, step {t + 1}', fontsize=8)
    ax = axes[i, steps]
    ax.imshow(images[i, ..., 0], cmap='gray', vmin=0.0, vmax=1.0)
    for t in range(steps):
      _box(ax, locations[i, t], glimpse_size, height, width, 'red')
      col, row = np.asarray(loc_to_pixel(locations[i, t].astype(np.float32), height, width))
      ax.text(col - 0.5, row - 0.5, str(t + 1), color='yellow', fontsize=7, ha='center',
              va='center')
    ax.set_title('glimpses' if labels is None else f'label {int(labels[i])}', fontsize=8)
  fig.tight_layout()
  return save(fig, path, dpi=90)
