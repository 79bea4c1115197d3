"""Learning curves of a run from its metrics.jsonl records."""

from collections.abc import Iterable, Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.plots.saving import save


def _series(records: Iterable[Mapping[str, Any]], kind: str, name: str, split: str | None = None):
  points = [(r['step'], r[name]) for r in records
            if r['kind'] == kind and isinstance(r.get(name), (int, float))
            and (split is None or r.get('split', 'test') == split)]
  return [s for s, _ in points], [v for _, v in points]


def plot_learning_curves(records: list[Mapping[str, Any]], path: str | None = None,
                         metric: str = 'error') -> Figure:
  """Saves a PNG of the training loss, and `metric` in training and on each evaluation split,
  against step.

  Args:
    records: metrics.jsonl records (`kind` 'train' with `loss` and optionally `metric`; `kind`
      'eval' with `metric` and `split`, 'test' when absent).
    path: where the PNG goes.
    metric: the value plotted beside the loss (the run's headline).
  """
  if not any(r['kind'] == 'train' for r in records):
    raise ValueError(f'no training records to plot among {len(records)} records')
  fig = Figure(figsize=(10, 3.6))
  FigureCanvasAgg(fig)  # renders without pyplot, so a notebook's backend is left alone
  loss_ax, error_ax = fig.subplots(1, 2)
  loss_ax.plot(*_series(records, 'train', 'loss'), label='train loss')
  loss_ax.set(xlabel='step', ylabel='loss', title='training loss')
  splits = sorted({r.get('split', 'test') for r in records if r['kind'] == 'eval'})
  curves = [('train', None, 'train (batch)', '-')] + [('eval', s, s, 'o-') for s in splits]
  for kind, split, label, style in curves:
    steps, values = _series(records, kind, metric, split)
    if steps:
      error_ax.plot(steps, values, style, label=label)
  error_ax.set(xlabel='step', ylabel=metric, title=metric, ylim=(0, None))
  for ax in (loss_ax, error_ax):
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend()
  fig.tight_layout()
  return save(fig, path)
