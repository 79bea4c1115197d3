"""Tables of any experiment's runs: `python -m glimpse_jax.reports.overview RUNS_DIR... > table.md`.

Reads each workdir's results.json (test_error, test_<metric>..., steps, wall_seconds, config) and
metrics.jsonl, and writes a markdown table with the paper's number beside each run and a figure of
training error against updates for all runs. A run's paper number comes from the `paper` mapping
given by the caller (run name -> test error), else from its config's `paper.test_error` and
`paper.row` when the experiment records them.
"""

import argparse
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.reports.runs import (Run, is_number, load_run, median_grad_variance,
                                      per_glimpse_values, seed_group, steps_to_leave_plateau)
from glimpse_jax.reports.tables import (Column, markdown_table, minutes, number, percent,
                                        percent_spread, write_page)


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
  result = lambda key, cell: lambda run: cell(run.results.get(key))
  columns = [
      Column('run', lambda run: run.name),
      Column('paper row', lambda run: _paper(run, paper)[0] or '-'),
      Column('updates', result('steps', number)),
      Column('minutes', result('wall_seconds', minutes)),
      Column('test error %', result('test_error', percent)),
      Column('paper %', lambda run: percent(_paper(run, paper)[1])),
      Column('grad variance (median)', lambda run: number(median_grad_variance(run))),
      *(Column(key.removeprefix('test_') + (' %' if 'error' in key else ''),
               result(key, percent if 'error' in key else number)) for key in others)]
  return markdown_table(columns, runs)


def seed_table(runs: Sequence[Run], paper: Mapping[str, Any] | None = None) -> str:
  """A markdown table, one line per setting (`seed_group`): its seeds, updates, mean minutes,
  and test errors (greedy and Monte-Carlo) as mean ± sample std over seeds, the paper's beside."""
  groups: dict[str, list[Run]] = {}
  for run in runs:
    groups.setdefault(seed_group(run.name), []).append(run)
  column = lambda members, key: [m.results[key] for m in members if is_number(m.results.get(key))]

  def updates(members: Sequence[Run]) -> str:
    steps = sorted({m.results.get('steps') for m in members},
                   key=lambda n: (not is_number(n), n if is_number(n) else 0))
    return '/'.join(map(number, steps))

  def mean_minutes(members: Sequence[Run]) -> str:
    seconds = column(members, 'wall_seconds')
    return minutes(statistics.mean(seconds)) if seconds else '-'

  columns = [
      Column('setting', lambda group: group[0]),
      Column('paper row', lambda group: _paper(group[1][0], paper)[0] or '-'),
      Column('seeds', lambda group: ', '.join(map(str, sorted(
          m.results.get('config', {}).get('seed', 0) for m in group[1])))),
      Column('updates', lambda group: updates(group[1])),
      Column('minutes (mean)', lambda group: mean_minutes(group[1])),
      Column('test error %', lambda group: percent_spread(column(group[1], 'test_error'))),
      Column('error_mc %', lambda group: percent_spread(column(group[1], 'test_error_mc'))),
      Column('paper %', lambda group: percent(_paper(group[1][0], paper)[1]))]
  return markdown_table(columns, list(groups.items()))


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


def _on_ink(run: Run) -> str:
  on_ink = per_glimpse_values(run, 'on_ink')
  return f'{100 * statistics.mean(on_ink):.1f}' if on_ink else '-'


def _plateau(run: Run) -> str:
  plateau = steps_to_leave_plateau(run)
  return number(plateau) if plateau is not None else 'never'


DIAGNOSTIC_COLUMNS = (
    Column('run', lambda run: run.name),
    Column('test error %', lambda run: percent(run.results.get('test_error'))),
    Column('saturated % (worst glimpse)',
           lambda run: f'{100 * max(per_glimpse_values(run, "saturated")):.1f}'),
    Column('on digit % (per glimpse)', lambda run: ' / '.join(
        f'{100 * v:.0f}' for v in per_glimpse_values(run, 'on_digit')) or '-'),
    Column('on ink % (mean)', _on_ink),
    Column('updates to train error < 50%', _plateau))


def diagnostics_table(runs: Sequence[Run]) -> str:
  """A markdown table of each run's per-glimpse diagnostics on the test set's greedy path:
  the largest share of saturated means over glimpses, the mean shares on the digit and on ink,
  the updates until training error first fell below 50%; '' when no run has them."""
  measured = [run for run in runs if per_glimpse_values(run, 'saturated')]
  return markdown_table(DIAGNOSTIC_COLUMNS, measured) if measured else ''


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


def diagnostics_section(runs: Sequence[Run], folder: str, stem: str) -> list[str]:
  """Where the runs that report them look, per glimpse (`diagnostics_table` and its figure
  `<folder>/<stem>_per_glimpse.png`); nothing for runs that predate the diagnostics."""
  table = diagnostics_table(runs)
  if not table:
    return []
  figure = f'{stem}_per_glimpse.png'
  plot_per_glimpse_diagnostics(runs, os.path.join(folder, figure))
  return ['\n## Where the policy looks (greedy path, test set)\n\n', table,
          f'\n![per-glimpse diagnostics]({figure})\n']


def write_seed_chapter(title: str, runs: Sequence[Run], out: str, notes: str | None,
                       paper: Mapping[str, Any] | None, extra: Sequence[str] = ()) -> str:
  """A chapter of one row per setting over seeds and per run (`seed_table`, `results_table`),
  its training-error curves (`<stem>_training_error.png` beside `out`), where the policy looks,
  then the markdown parts `extra`; writes it to `out` with `notes` appended and returns it."""
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  figure = f'{stem}_training_error.png'
  curves = any(record.get('kind', 'train') == 'train' for run in runs for record in run.records)
  if curves:  # runs committed without metrics.jsonl have none
    plot_training_error(runs, os.path.join(folder, figure))
  return write_page([
      f'# {title}\n\n',
      f'{len(runs)} runs; `test error` follows the greedy path (mean locations), '
      '`error_mc` averages class log-probabilities over sampled paths. Minutes are the wall '
      'time of the call that finished the run.\n\n',
      'Over seeds (runs named `<setting>-seed<N>`; mean ± sample std):\n\n',
      seed_table(runs, paper),
      '\nEvery run:\n\n',
      results_table(runs, paper),
      f'\n![training error against updates]({figure})\n' if curves else '',
      *diagnostics_section(runs, folder, stem),
      *extra,
  ], out, notes)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog='python -m glimpse_jax.reports.overview',
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
