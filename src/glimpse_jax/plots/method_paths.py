"""Greedy glimpse paths of several methods on the same images: one row per method."""

import dataclasses

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glimpse_jax.glimpse import loc_to_pixel
from glimpse_jax.plots.glimpse_paths import _draw_retina, _show
from glimpse_jax.plots.read_windows import read_windows
from glimpse_jax.plots.saving import save


@dataclasses.dataclass(frozen=True)
class MethodPaths:
  """One method's greedy glimpses on the row's images.

  Attributes:
    label: the row's name.
    locations: [N, T, 2] glimpse centers, (x, y) in [-1, 1].
    predictions: [N] predicted classes, or None.
    glimpse_size, num_scales, scale_factor: the retina, drawn as one box per scale.
    scales: [N, T] the one scale each glimpse read (WS-RAM), or None: every scale.
    reads: [N, T, 5] DRAW read parameters, drawn as read windows of `read_size` filters
      instead of the retina, or None.
    read_size: the DRAW read grid's side.
  """

  label: str
  locations: np.ndarray
  predictions: np.ndarray | None = None
  glimpse_size: int = 0
  num_scales: int = 1
  scale_factor: int = 2
  scales: np.ndarray | None = None
  reads: np.ndarray | None = None
  read_size: int = 0


def _check(row: MethodPaths, count: int) -> None:
  shape = np.shape(row.locations)
  if len(shape) != 3 or shape[0] != count or shape[2] != 2:
    raise ValueError(f'{row.label}: locations must be [{count}, T, 2] for {count} images, got '
                     f'{shape}')
  if row.reads is None and row.glimpse_size < 1:
    raise ValueError(f'{row.label}: glimpse_size must be >= 1 without reads, got '
                     f'{row.glimpse_size}')
  if row.reads is not None and (np.shape(row.reads) != (*shape[:2], 5) or row.read_size < 2):
    raise ValueError(f'{row.label}: reads must be [{count}, {shape[1]}, 5] with read_size >= 2, '
                     f'got {np.shape(row.reads)} and {row.read_size}')


def plot_method_paths(images, rows, *, labels=None, path=None) -> Figure:
  """Saves a grid: one row per method (`MethodPaths`), one column per image, each glimpse's
  patches (or DRAW read window) as boxes along the path, numbered in order.

  Args:
    images: [N, H, W, C] in [0, 1], the same for every row.
    rows: `MethodPaths`, one per method.
    labels: optional [N] true classes for the column titles.
    path: where the PNG goes.

  Raises:
    ValueError: a row whose arrays do not fit the images, or no rows.
  """
  images = np.asarray(images)
  count, height, width = images.shape[:3]
  if not rows:
    raise ValueError('plot_method_paths needs at least one row')
  for row in rows:
    _check(row, count)
  fig = Figure(figsize=(1.5 * count + 1.2, 1.6 * len(rows)))  # no pyplot
  axes = fig.subplots(len(rows), count, squeeze=False)
  for r, row in enumerate(rows):
    locations = np.asarray(row.locations)
    steps = locations.shape[1]
    colours = colormaps['plasma'](np.linspace(0.0, 0.85, steps))
    boxes = None if row.reads is None else read_windows(row.reads, n=row.read_size,
                                                        height=height, width=width)  # [N, T, 4]
    for n, ax in enumerate(axes[r]):
      _show(ax, images[n], height, width)
      centers = loc_to_pixel(locations[n], height, width)  # [T, 2] in pixels
      ax.plot(centers[:, 0], centers[:, 1], '-', color='yellow', lw=0.8)
      for t, (cx, cy) in enumerate(centers):
        if boxes is None:
          _draw_retina(ax, cx, cy, glimpse_size=row.glimpse_size, num_scales=row.num_scales,
                       scale_factor=row.scale_factor, alpha=0.35 + 0.65 * (t + 1) / steps,
                       only=None if row.scales is None else np.asarray(row.scales)[n, t])
        else:
          left, top, side_x, side_y = boxes[n, t]
          ax.add_patch(Rectangle((left, top), side_x, side_y, fill=False, lw=1.0,
                                 edgecolor=colours[t]))
        ax.text(cx, cy, str(t + 1), color='yellow', fontsize=6, ha='center', va='center')
      title = [] if r or labels is None else [f'label {int(labels[n])}']
      if row.predictions is not None:
        title.append(f'pred {int(row.predictions[n])}')
      ax.set_title(', '.join(title), fontsize=6)
    axes[r, 0].text(-0.08, 0.5, row.label, transform=axes[r, 0].transAxes, rotation=90,
                    fontsize=6, ha='right', va='center')
  fig.tight_layout()
  return save(fig, path)
