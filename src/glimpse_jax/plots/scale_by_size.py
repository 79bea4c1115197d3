"""The glimpse scale a policy chooses against the digit's size (Ba et al. 2015, Figure 4): one
panel per method, each size bin a bar stacked by scale."""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.plots.saving import save


def plot_scale_by_size(panels: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float]]]],
                       scale_names: Sequence[str], path: str | None, *,
                       ylabel: str = 'fraction of glimpses on ink') -> Figure:
  """Saves a PNG of each panel's scale fractions per digit-size bin, stacked.

  Args:
    panels: title -> (edges [N + 1], the size bins' edges in pixels; fractions [N][S] of each
      of S scales in each size bin, a row of NaN for an empty bin).
    scale_names: [S] legend labels of the scales, finest first.
    path: where the PNG goes (None: only return the figure).
    ylabel: the y axis label.
  """
  if not panels:
    raise ValueError('plot_scale_by_size needs at least one panel, got none')
  for title, (edges, values) in panels.items():
    if np.shape(values) != (len(edges) - 1, len(scale_names)):
      raise ValueError(f'panel {title!r} must be [{len(edges) - 1}, {len(scale_names)}] (bins, '
                       f'scales) for {len(edges)} edges, got {np.shape(values)}')
  columns = min(len(panels), 3)
  rows = -(-len(panels) // columns)
  fig = Figure(figsize=(3.4 * columns, 2.9 * rows))
  FigureCanvasAgg(fig)  # no pyplot: leaves a notebook's backend alone
  axes = np.atleast_1d(fig.subplots(rows, columns, sharey=True, squeeze=False)).ravel()
  for ax, (title, (edges, values)) in zip(axes, panels.items()):
    bins = np.arange(len(edges) - 1)
    labels = [f'{edges[b]:.0f}-{edges[b + 1]:.0f}' for b in bins]
    values = np.nan_to_num(np.asarray(values, float))  # [N, S]
    bottom = np.zeros(len(bins))
    for s, name in enumerate(scale_names):
      ax.bar(bins, values[:, s], bottom=bottom, color=f'C{s}', label=name, width=0.8)
      bottom += values[:, s]
    ax.set_xticks(bins, labels, fontsize=8)
    ax.set(title=title, xlabel='digit side (px)', ylim=(0, 1))
    ax.title.set_fontsize(9)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  for ax in axes[::columns]:
    ax.set_ylabel(ylabel, fontsize=8)
  axes[0].legend(fontsize=7, loc='lower left')
  fig.tight_layout()
  return save(fig, path)
