"""Results tables across runs: `python -m glimpse_jax.report RUNS_DIR... > table.md`.

Reads each workdir's results.json (test_error, test_<metric>..., steps, wall_seconds, config) and
metrics.jsonl, and writes a markdown table with the paper's number beside each run and a figure of
training error against updates for all runs. A run's paper number comes from the `paper` mapping
given by the caller (run name -> test error), else from its config's `paper.test_error` and
`paper.row` when the experiment records them.
"""

import argparse
import dataclasses
import json
import math
import numbers
import os
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RESULTS_FILE, METRICS_FILE = 'results.json', 'metrics.jsonl'


@dataclasses.dataclass(frozen=True)
class Run:
  """One finished run: its name (the workdir's base name), results.json and metrics.jsonl."""

  name: str
  results: Mapping[str, Any]
  records: Sequence[Mapping[str, Any]]


def load_run(workdir: str) -> Run:
  """Reads a workdir; raises ValueError when it holds no results.json."""
  path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.isfile(path):
    raise ValueError(f'{workdir!r} holds no {RESULTS_FILE} (is the run finished?)')
  with open(path) as f:
    results = json.load(f)
  records = []
  if os.path.isfile(os.path.join(workdir, METRICS_FILE)):
    with open(os.path.join(workdir, METRICS_FILE)) as f:
      records = [json.loads(line) for line in f if line.strip()]
  return Run(os.path.basename(os.path.normpath(workdir)), results, records)


def _paper(run: Run, paper: Mapping[str, Any] | None) -> tuple[str, float | None]:
  """(row name, test error) of the paper's result this run reproduces; a recorded error counts
  only with its row name (a run whose method was changed clears the row). A caller's `paper`
  entry is a test error, a (row name, test error) pair, or None: no row."""
  recorded = run.results.get('config', {}).get('paper') or {}
  row = recorded.get('row') or ''
  if paper is not None and run.name in paper:
    given = paper[run.name]
    if given is None:
      return '', None
    return given if isinstance(given, tuple) else (row, given)
  return row, recorded.get('test_error') if row else None


def _percent(value: Any) -> str:
  return f'{100 * value:.2f}' if isinstance(value, (int, float)) else '-'


def number(value: Any) -> str:
  """An int as is, a float to 4 significant digits, '-' for anything else."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return '-'
  if isinstance(value, int):
    return str(value)
  return f'{value:.4g}' if math.isfinite(value) else str(value)


def _minutes(seconds: Any) -> str:
  return f'{seconds / 60:.1f}' if isinstance(seconds, (int, float)) else '-'


def _median_grad_variance(run: Run) -> float | None:
  values = [r['grad_variance'] for r in run.records if r.get('kind') == 'grad_variance'
            and isinstance(r.get('grad_variance'), (int, float))]
  return statistics.median(values) if values else None


def write_page(text: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown parts `text`, then the notes file `notes` (if any), to `out`; returns
  the markdown."""
  parts = list(text)
  if notes is not None:
    with open(notes) as f:
      parts += ['\n', f.read()]
  markdown = ''.join(parts)
  with open(out, 'w') as f:
    f.write(markdown)
  return markdown


def results_table(runs: Sequence[Run], paper: Mapping[str, Any] | None = None) -> str:
  """A markdown table, one line per run: errors in %, the paper's, then the other test metrics.

  Args:
    runs: the runs, in table order.
    paper: optional run name -> the paper's test error (a fraction), (row name, test error) or
      None (no row), overriding recorded ones.

  Returns:
    The table's markdown text (ending in a newline).
  """
  if not runs:
    raise ValueError('results_table needs at least one run, got none')
  others = sorted({key for run in runs for key in run.results
                   if key.startswith('test_') and key not in ('test_error', 'test_examples')})
  header = ['run', 'paper row', 'updates', 'minutes', 'test error %', 'paper %',
            'grad variance (median)', *(key.removeprefix('test_') + (' %' if 'error' in key else '')
                                        for key in others)]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for run in runs:
    row, paper_error = _paper(run, paper)
    cells = [run.name, row or '-', number(run.results.get('steps')),
             _minutes(run.results.get('wall_seconds')), _percent(run.results.get('test_error')),
             _percent(paper_error), number(_median_grad_variance(run))]
    cells += [_percent(run.results.get(key)) if 'error' in key else number(run.results.get(key))
              for key in others]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _is_number(value: Any) -> bool:
  """True for real numbers (Python or NumPy scalars), False for bools, None and the rest."""
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and type(value).__name__ != 'bool_')


def mean_spread(values: Sequence[Any], digits: int = 2, scale: float = 1.0,
                empty: str = '-') -> str:
  """'mean ± sample std' of the numbers among `values`, times `scale`; the mean alone for one
  number, `empty` for none."""
  values = [float(v) for v in values if _is_number(v)]
  if not values:
    return empty
  mean = f'{scale * statistics.mean(values):.{digits}f}'
  return mean if len(values) < 2 else f'{mean} ± {scale * statistics.stdev(values):.{digits}f}'


def seed_group(name: str) -> str:
  """A run's name without its `-seed<N>` suffix: the runs of one setting over seeds."""
  return re.sub(r'-seed\d+$', '', name)


def seed_table(runs: Sequence[Run], paper: Mapping[str, Any] | None = None) -> str:
  """A markdown table, one line per setting (`seed_group`): its seeds, updates, mean minutes,
  and test errors (greedy and Monte-Carlo) as mean ± sample std over seeds, the paper's beside."""
  groups: dict[str, list[Run]] = {}
  for run in runs:
    groups.setdefault(seed_group(run.name), []).append(run)
  header = ['setting', 'paper row', 'seeds', 'updates', 'minutes (mean)', 'test error %',
            'error_mc %', 'paper %']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for name, members in groups.items():
    row, paper_error = _paper(members[0], paper)
    seeds = sorted(m.results.get('config', {}).get('seed', 0) for m in members)
    steps = sorted({m.results.get('steps') for m in members},
                   key=lambda n: (not _is_number(n), n if _is_number(n) else 0))
    column = lambda key: [m.results[key] for m in members if _is_number(m.results.get(key))]
    minutes = column('wall_seconds')
    cells = [name, row or '-', ', '.join(map(str, seeds)), '/'.join(map(number, steps)),
             _minutes(statistics.mean(minutes)) if minutes else '-',
             mean_spread(column('test_error'), scale=100),
             mean_spread(column('test_error_mc'), scale=100),
             _percent(paper_error)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot_training_error(runs: Sequence[Run], path: str, metric: str = 'error') -> None:
  """Saves one figure of each run's training `metric` (metrics.jsonl 'train' lines) by update."""
  fig = Figure(figsize=(7, 4.5))
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  plotted = 0
  for run in runs:
    points = [(r['step'], r[metric]) for r in run.records
              if r.get('kind', 'train') == 'train' and isinstance(r.get(metric), (int, float))]
    if points:
      ax.plot(*zip(*points), label=run.name)
      plotted += 1
  if not plotted:
    raise ValueError(f'no run has training records with {metric!r} to plot')
  ax.set(xlabel='updates', ylabel=f'training {metric}', ylim=(0, None),
         title=f'training {metric} against updates')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


# Per-glimpse location diagnostics (`glimpse_jax.diagnostics`) a run's results.json may hold.
GLIMPSE_DIAGNOSTICS = (('saturated', 'location means at the edge (|mu| > 0.95)'),
                       ('on_digit', "glimpses overlapping the digit's box"),
                       ('on_ink', 'glimpses whose finest patch holds ink'),
                       ('kl_q_prior', 'KL(q || prior), nats'))


def per_glimpse_values(run: Run, name: str) -> list[float]:
  """The test values `test_<name>_g1, _g2, ...` of a run, in glimpse order ([] when absent)."""
  values, t = [], 1
  while _is_number(run.results.get(f'test_{name}_g{t}')):
    values.append(float(run.results[f'test_{name}_g{t}']))
    t += 1
  return values


def steps_to_leave_plateau(run: Run, level: float = 0.5) -> int | None:
  """The first logged update whose training error is below `level` (None: never)."""
  for record in run.records:
    if record.get('kind', 'train') == 'train' and _is_number(record.get('error')):
      if record['error'] < level:
        return int(record['step'])
  return None


def diagnostics_table(runs: Sequence[Run]) -> str:
  """A markdown table of each run's per-glimpse diagnostics on the test set's greedy path:
  the largest share of saturated means over glimpses, the mean shares on the digit and on ink,
  the updates until training error first fell below 50%; '' when no run has them."""
  measured = [run for run in runs if per_glimpse_values(run, 'saturated')]
  if not measured:
    return ''
  header = ['run', 'test error %', 'saturated % (worst glimpse)', 'on digit % (per glimpse)',
            'on ink % (mean)', 'updates to train error < 50%']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for run in measured:
    on_digit = per_glimpse_values(run, 'on_digit')
    on_ink = per_glimpse_values(run, 'on_ink')
    plateau = steps_to_leave_plateau(run)
    cells = [run.name, _percent(run.results.get('test_error')),
             f'{100 * max(per_glimpse_values(run, "saturated")):.1f}',
             ' / '.join(f'{100 * v:.0f}' for v in on_digit) or '-',
             f'{100 * statistics.mean(on_ink):.1f}' if on_ink else '-',
             number(plateau) if plateau is not None else 'never']
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot_per_glimpse_diagnostics(runs: Sequence[Run], path: str) -> bool:
  """Saves one panel per diagnostic in GLIMPSE_DIAGNOSTICS that some run has, its value against
  the glimpse index, a line per run; returns False (and saves nothing) when no run has any."""
  panels = [(name, what) for name, what in GLIMPSE_DIAGNOSTICS
            if any(per_glimpse_values(run, name) for run in runs)]
  if not panels:
    return False
  fig = Figure(figsize=(4.2 * len(panels), 3.8))
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (name, what) in zip(axes, panels):
    for run in runs:
      values = per_glimpse_values(run, name)
      if values:
        ax.plot(range(1, len(values) + 1), values, marker='o', markersize=3, label=run.name)
    ax.set(xlabel='glimpse', title=what)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return True


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog='python -m glimpse_jax.report',
      description='Markdown table of finished runs (stdout) and their training-error curves.')
  parser.add_argument('runs', nargs='+', help='workdirs holding results.json and metrics.jsonl')
  parser.add_argument('--plot', default='training_error.png',
                      help='where the training-error figure goes ("" for none)')
  args = parser.parse_args(argv)
  runs = [load_run(workdir) for workdir in args.runs]
  sys.stdout.write(results_table(runs))
  if args.plot:
    plot_training_error(runs, args.plot)
    sys.stdout.write(f'\n![training error against updates]({args.plot})\n')


if __name__ == '__main__':
  main()
