"""Curves of a value after each glimpse (loss, output change), one line per way of glimpsing."""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.plots.saving import save


def plot_per_glimpse(curves: Mapping[str, Sequence[float]], path: str | None, *, ylabel: str,
                     title: str, spreads: Mapping[str, Sequence[float]] | None = None) -> Figure:
  """Saves a PNG of each curve's value against the glimpse index 1..T.

  Args:
    curves: label -> [T] values after glimpse 1..T. Labels 'name, variant' share the colour of
      'name' and are dashed (e.g. 'plain_lstm, random' beside 'plain_lstm').
    path: where the PNG goes.
    ylabel, title: the axis label and the title.
    spreads: optional label -> [T] half-widths drawn as a band around that curve (e.g. the std
      over seeds).
  """
  if not curves:
    raise ValueError('plot_per_glimpse needs at least one curve, got none')
  fig = Figure(figsize=(5.5, 3.8))
  FigureCanvasAgg(fig)  # no pyplot: leaves a notebook's backend alone
  ax = fig.subplots()
  bases = list(dict.fromkeys(label.split(', ')[0] for label in curves))
  for label, values in curves.items():
    values = np.asarray(values, float)
    steps = np.arange(1, len(values) + 1)
    base = label.split(', ')[0]
    style = 'o-' if base == label else 'x--'
    line, = ax.plot(steps, values, style, color=f'C{bases.index(base) % 10}', label=label)
    if spreads is not None and label in spreads:
      half = np.asarray(spreads[label], float)
      ax.fill_between(steps, values - half, values + half, color=line.get_color(), alpha=0.2)
  ax.set(xlabel='glimpse', ylabel=ylabel, title=title, ylim=(0, None))
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return save(fig, path)
