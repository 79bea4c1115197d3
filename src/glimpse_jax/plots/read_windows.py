"""Pictures of where a DRAW read looked: each step's grid of filters drawn as a box."""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glimpse_jax.plots.saving import save


def read_windows(read_params, *, n, height, width):
  """The boxes `(left, top, side_x, side_y)` of DRAW read grids, in image pixel coordinates.

  A box spans the n filter means (Gregor et al. 2015, eqs. 19-22) plus half a stride on each side,
  with pixel j (from 0) centered on j as matplotlib draws images.

  Args:
    read_params: `[..., 5]` `(gx~, gy~, log sigma^2, log delta~, log gamma)`.
    n: grid side.
    height, width: image size.

  Returns:
    `[..., 4]` boxes.
  """
  read_params = np.asarray(read_params, np.float64)
  gx = (width + 1) / 2 * (read_params[..., 0] + 1) - 1  # 1-based pixel centers -> from 0
  gy = (height + 1) / 2 * (read_params[..., 1] + 1) - 1
  delta = (max(height, width) - 1) / (n - 1) * np.exp(read_params[..., 3])
  half = n / 2 * delta  # from the grid center to a box side: (n - 1) / 2 strides + half of one
  return np.stack([gx - half, gy - half, 2 * half, 2 * half], axis=-1)


def plot_read_windows(images, read_params, *, n, path=None, labels=None, predictions=None):
  """Saves a row of images, each with its T read windows (colour from early to late, numbered).

  Args:
    images: `[N, H, W, C]` in [0, 1].
    read_params: `[N, T, 5]` read parameters per image and step.
    n: the read grid's side.
    path: where the PNG goes.
    labels, predictions: optional `[N]` integers for the titles.
  """
  images, read_params = np.asarray(images), np.asarray(read_params)
  count, steps = read_params.shape[:2]
  height, width = images.shape[1:3]
  boxes = read_windows(read_params, n=n, height=height, width=width)  # [N, T, 4]
  colours = colormaps['plasma'](np.linspace(0.0, 0.85, steps))
  fig = Figure(figsize=(2.2 * count, 2.4))  # no pyplot: leaves a notebook's backend alone
  for i, ax in enumerate(fig.subplots(1, count, squeeze=False)[0]):
    image = images[i, ..., 0] if images.shape[-1] == 1 else np.clip(images[i], 0, 1)
    ax.imshow(image, cmap='gray', vmin=0, vmax=1)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis('off')
    for t, (left, top, side_x, side_y) in enumerate(boxes[i]):
      ax.add_patch(Rectangle((left, top), side_x, side_y, fill=False, lw=1.0,
                             edgecolor=colours[t]))
      ax.text(left + side_x / 2, top + side_y / 2, str(t + 1), color=colours[t], fontsize=7,
              ha='center', va='center')
    title = [f'{name} {int(values[i])}' for name, values in (('label', labels),
                                                             ('pred', predictions))
             if values is not None]
    ax.set_title(', '.join(title), fontsize=8)
  fig.tight_layout()
  return save(fig, path)


def plot_read_steps(lines, path=None, stats=(('in_image_mass', 'in-image mass'),
                                             ('log_gamma', 'log gamma'))):
  """Saves one panel per statistic of DRAW reads against the read step t, one line per label.

  Args:
    lines: `{label: {stat: [value at t = 1, 2, ...]}}`, e.g. a method's mean over seeds.
    path: where the PNG goes.
    stats: `(stat, axis label)` per panel.

  Returns:
    The figure, or None (and no file) when no line holds any of `stats`.
  """
  if not any(stat in steps for steps in lines.values() for stat, _ in stats):
    return None
  fig = Figure(figsize=(6 * len(stats), 4.2 + 0.14 * len(lines)))
  axes = fig.subplots(1, len(stats), squeeze=False)[0]
  for ax, (stat, label) in zip(axes, stats):
    for name, steps in lines.items():
      if stat in steps:
        values = steps[stat]
        ax.plot(np.arange(1, len(values) + 1), values, '.-', label=name)
    ax.set(xlabel='read step t', ylabel=label, title=label)
    ax.grid(alpha=0.3)
  if 'in_image_mass' in dict(stats):
    axes[[s for s, _ in stats].index('in_image_mass')].set_ylim(0, 1.02)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', fontsize=6, ncol=2, frameon=False)
  fig.tight_layout(rect=(0, 0.12 * min(1.0, len(lines) / 6) + 0.02, 1, 1))
  return save(fig, path)
