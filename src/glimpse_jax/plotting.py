"""Learning curves of a run from its metrics.jsonl records."""

from collections.abc import Iterable, Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _series(records: Iterable[Mapping[str, Any]], kind: str, name: str):
  points = [(r['step'], r[name]) for r in records
            if r['kind'] == kind and isinstance(r.get(name), (int, float))]
  return [s for s, _ in points], [v for _, v in points]


def plot_learning_curves(records: list[Mapping[str, Any]], path: str) -> None:
  """Saves a PNG of the training loss, and the training and evaluation error, against step.

  Args:
    records: metrics.jsonl records (`kind` 'train' with `loss` and optionally `error`; `kind`
      'eval' with `error`).
    path: where the PNG goes.
  """
  if not any(r['kind'] == 'train' for r in records):
    raise ValueError(f'no training records to plot among {len(records)} records')
  fig = Figure(figsize=(10, 3.6))
  FigureCanvasAgg(fig)  # renders without pyplot, so a notebook's backend is left alone
  loss_ax, error_ax = fig.subplots(1, 2)
  loss_ax.plot(*_series(records, 'train', 'loss'), label='train loss')
  loss_ax.set(xlabel='step', ylabel='loss', title='training loss')
  for kind, label, style in (('train', 'train (batch)', '-'), ('eval', 'test', 'o-')):
    steps, errors = _series(records, kind, 'error')
    if steps:
      error_ax.plot(steps, errors, style, label=label)
  error_ax.set(xlabel='step', ylabel='error', title='error', ylim=(0, None))
  for ax in (loss_ax, error_ax):
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
