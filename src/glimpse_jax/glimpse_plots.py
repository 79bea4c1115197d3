"""Pictures of where a glimpse model looked: each step's retina patches drawn as boxes."""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glimpse_jax.glimpse import loc_to_pixel

_SCALE_COLOURS = ('tab:red', 'tab:orange', 'tab:green', 'tab:cyan', 'tab:purple')


def plot_glimpse_paths(images, locations, *, glimpse_size, num_scales, scale_factor=2, labels=None,
                       predictions=None, path):
  """Saves a grid of images with each glimpse's patches as boxes (one colour per scale).

  Args:
    images: [N, H, W, C] in [0, 1].
    locations: [T, N, 2] glimpse centres in the (x, y) in [-1, 1] convention.
    glimpse_size, num_scales, scale_factor: the retina that read them.
    labels, predictions: optional [N] integers for the titles.
    path: where the PNG goes.
  """
  images, locations = np.asarray(images), np.asarray(locations)
  num_steps, count = locations.shape[:2]
  height, width = images.shape[1:3]
  fig = Figure(figsize=(2.2 * count, 2.4))  # no pyplot: leaves a notebook's backend alone
  axes = fig.subplots(1, count, squeeze=False)
  for n, ax in enumerate(axes[0]):
    ax.imshow(images[n, ..., 0], cmap='gray', vmin=0, vmax=1)
    centres = loc_to_pixel(locations[:, n], height, width)  # [T, 2] in pixels
    ax.plot(centres[:, 0], centres[:, 1], '-', color='yellow', lw=0.8)
    for t, (cx, cy) in enumerate(centres):
      for s in range(num_scales):
        side = glimpse_size * scale_factor**s
        left, top = np.floor(cx - side / 2 + 0.5), np.floor(cy - side / 2 + 0.5)
        alpha = 0.35 + 0.65 * (t + 1) / num_steps
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, lw=1,
                                   edgecolor=_SCALE_COLOURS[s % len(_SCALE_COLOURS)], alpha=alpha))
      ax.text(cx, cy, str(t + 1), color='yellow', fontsize=7, ha='center', va='center')
    title = []
    if labels is not None:
      title.append(f'label {int(labels[n])}')
    if predictions is not None:
      title.append(f'pred {int(predictions[n])}')
    ax.set_title(', '.join(title), fontsize=8)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
