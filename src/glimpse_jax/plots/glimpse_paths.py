"""Pictures of where a glimpse model looked: each step's retina patches drawn as boxes."""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glimpse_jax.glimpse import loc_to_pixel
from glimpse_jax.plots.saving import save

_SCALE_COLOURS = ('tab:red', 'tab:orange', 'tab:green', 'tab:cyan', 'tab:purple')


def _show(ax, image, height, width):
  """Draws one [H, W, C] image (grayscale for C = 1) with pixel j spanning [j - 0.5, j + 0.5)."""
  if image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap='gray', vmin=0, vmax=1)
  else:
    ax.imshow(np.clip(image, 0, 1))
  ax.set_xlim(-0.5, width - 0.5)
  ax.set_ylim(height - 0.5, -0.5)
  ax.axis('off')


def _draw_retina(ax, cx, cy, *, glimpse_size, num_scales, scale_factor, alpha, lw=1.0,
                 only=None):
  """The retina's `num_scales` boxes centered on pixel coordinates (cx, cy), one colour per scale;
  `only` the box of that scale (a glimpse that read one chosen scale)."""
  for s in range(num_scales) if only is None else (int(only),):
    side = glimpse_size * scale_factor**s
    left, top = np.floor(cx - side / 2 + 0.5), np.floor(cy - side / 2 + 0.5)
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, lw=lw,
                           edgecolor=_SCALE_COLOURS[s % len(_SCALE_COLOURS)], alpha=alpha))


def _title(n, labels, predictions):
  title = []
  if labels is not None:
    title.append(f'label {int(labels[n])}')
  if predictions is not None:
    title.append(f'pred {int(predictions[n])}')
  return ', '.join(title)


def plot_glimpse_paths(images, locations, *, glimpse_size, num_scales, scale_factor=2, labels=None,
                       predictions=None, scales=None, path=None):
  """Saves a grid of images with each glimpse's patches as boxes (one colour per scale).

  Args:
    images: [N, H, W, C] in [0, 1].
    locations: [N, T, 2] glimpse centers in the (x, y) in [-1, 1] convention.
    glimpse_size, num_scales, scale_factor: the retina that read them.
    labels, predictions: optional [N] integers for the titles.
    scales: optional [N, T] scale each glimpse read (a model that chooses one scale per glimpse);
      None: every scale was read.
    path: where the PNG goes.
  """
  images, locations = np.asarray(images), np.swapaxes(np.asarray(locations), 0, 1)  # [T, N, 2]
  scales = None if scales is None else np.asarray(scales).T  # [T, N]
  num_steps, count = locations.shape[:2]
  height, width = images.shape[1:3]
  fig = Figure(figsize=(2.2 * count, 2.4))  # no pyplot: leaves a notebook's backend alone
  axes = fig.subplots(1, count, squeeze=False)
  for n, ax in enumerate(axes[0]):
    _show(ax, images[n], height, width)
    centers = loc_to_pixel(locations[:, n], height, width)  # [T, 2] in pixels
    ax.plot(centers[:, 0], centers[:, 1], '-', color='yellow', lw=0.8)
    for t, (cx, cy) in enumerate(centers):
      _draw_retina(ax, cx, cy, glimpse_size=glimpse_size, num_scales=num_scales,
                   scale_factor=scale_factor, alpha=0.35 + 0.65 * (t + 1) / num_steps,
                   only=None if scales is None else scales[t, n])
      ax.text(cx, cy, str(t + 1), color='yellow', fontsize=7, ha='center', va='center')
    ax.set_title(_title(n, labels, predictions), fontsize=8)
  fig.tight_layout()
  return save(fig, path)


def plot_glimpse_sequence(images, locations, *, glimpse_size, num_scales, scale_factor=2,
                          labels=None, predictions=None, path=None):
  """Saves one row per image and one column per glimpse, in order: column t shows glimpse t's
  retina boxes (one colour per scale) over the path of the glimpses before it.

  Args are those of `plot_glimpse_paths`: images [N, H, W, C] in [0, 1], locations [N, T, 2] in
  the (x, y) in [-1, 1] convention, the retina, optional [N] labels and predictions, the PNG path.
  """
  images, locations = np.asarray(images), np.swapaxes(np.asarray(locations), 0, 1)  # [T, N, 2]
  num_steps, count = locations.shape[:2]
  if images.shape[0] != count:
    raise ValueError(f'locations are for {count} images, got {images.shape[0]}')
  height, width = images.shape[1:3]
  fig = Figure(figsize=(1.6 * num_steps, 1.7 * count))
  axes = fig.subplots(count, num_steps, squeeze=False)
  for n in range(count):
    centers = loc_to_pixel(locations[:, n], height, width)  # [T, 2] in pixels
    for t, ax in enumerate(axes[n]):
      _show(ax, images[n], height, width)
      ax.plot(centers[:t + 1, 0], centers[:t + 1, 1], '.-', color='yellow', lw=0.6, ms=2)
      _draw_retina(ax, *centers[t], glimpse_size=glimpse_size, num_scales=num_scales,
                   scale_factor=scale_factor, alpha=1.0, lw=1.2)
      if n == 0:
        ax.set_title(f'glimpse {t + 1}', fontsize=8)
    axes[n, 0].text(-0.08, 0.5, _title(n, labels, predictions), transform=axes[n, 0].transAxes,
                    rotation=90, fontsize=7, ha='right', va='center')
  fig.tight_layout()
  return save(fig, path)
