"""Test error against the mean number of glimpses, one series per way of choosing when to stop."""

import re
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.plots.saving import save

# How each kind of method is drawn: a threshold sweep as a line with small markers, fixed numbers
# of glimpses as points joined by a dashed line, ACT runs (one point per ponder weight) as points.
STYLES = {
    'adaptive': dict(linestyle='-', marker='o', markersize=3),
    'fixed': dict(linestyle='--', marker='s', markersize=5),
    'act': dict(linestyle='none', marker='D', markersize=7),
}


def _kind(label: str, kinds: Mapping[str, str]) -> str:
  """The kind of `label`: from `kinds`, else its first word when that names a kind, else
  'adaptive'."""
  if label in kinds:
    if kinds[label] not in STYLES:
      raise ValueError(f'kind of {label!r} must be one of {list(STYLES)}, got {kinds[label]!r}')
    return kinds[label]
  first = re.split(r'[^a-z]', label.lower())[0]
  return first if first in STYLES else 'adaptive'


def plot_stopping_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | None,
                         *, kinds: Mapping[str, str] | None = None, ylabel: str = 'test error',
                         title: str = 'error against glimpses') -> Figure:
  """Saves a PNG of each method's error against its mean number of glimpses.

  Args:
    curves: label -> (mean_glimpses [K], error [K]), e.g. `objectives.stopping_curve`'s output,
      `fixed_glimpse_errors` against 1..T, or ACT runs' (mean N, error).
    path: where the PNG goes.
    kinds: label -> one of STYLES ('adaptive', 'fixed', 'act'); a label not given takes its first
      word when that names a kind ('fixed T', 'ACT tau=0.01', 'act-0.01'), else 'adaptive'.
    ylabel, title: the y-axis label and the title.
  """
  if not curves:
    raise ValueError('plot_stopping_curves needs at least one curve, got none')
  kinds = dict(kinds or {})
  unknown = sorted(set(kinds) - set(curves))
  if unknown:
    raise ValueError(f'kinds names labels that are not curves: {unknown}')
  fig = Figure(figsize=(5.5, 3.8))
  FigureCanvasAgg(fig)  # no pyplot: leaves a notebook's backend alone
  ax = fig.subplots()
  for i, (label, (glimpses, errors)) in enumerate(curves.items()):
    glimpses, errors = np.asarray(glimpses, float).ravel(), np.asarray(errors, float).ravel()
    if glimpses.shape != errors.shape or not glimpses.size:
      raise ValueError(f'curve {label!r} needs as many errors as glimpse counts (at least one), '
                       f'got {glimpses.size} and {errors.size}')
    order = np.argsort(glimpses, kind='stable')  # lines run left to right
    ax.plot(glimpses[order], errors[order], color=f'C{i % 10}', label=label,
            **STYLES[_kind(label, kinds)])
  ax.set(xlabel='mean number of glimpses', ylabel=ylabel, title=title, ylim=(0, None))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return save(fig, path)
