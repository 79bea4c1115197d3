"""RAM's chapter (experiments/ram.py beside Mnih et al. 2014): `python -m glimpse_jax.reports.ram
RUNS... --out results/ram.md`.

Runs are committed under `results/ram/<run>/` and named `ram-<run>` in the tables; the paper's row
of each follows from its config (`experiments.ram.paper_row`). Adds the location-policy choices
at equal budget, from the runs under `results/ram/policy_grid/` (`scripts/ram_policy_grid.sh`).
"""

import os
import sys
from collections.abc import Sequence

from glimpse_jax.experiments import ram as experiment
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.overview import (plot_per_glimpse_diagnostics, plot_training_error,
                                          write_seed_chapter)
from glimpse_jax.reports.runs import (Run, load_run, per_glimpse_values, seed_group,
                                      steps_to_leave_plateau, workdirs)
from glimpse_jax.reports.tables import Column, markdown_table, mean_spread, number, percent_spread

EXPERIMENT = 'ram'
TITLE = 'Recurrent Models of Visual Attention (Mnih et al. 2014)'
POLICY_GRID = 'policy_grid'  # the grid's runs, under the experiment's folder


def load_runs(workdirs_: Sequence[str]) -> list[Run]:
  """The runs, each named `ram-<its folder>`."""
  return [load_run(w, prefix=f'{EXPERIMENT}-') for w in workdirs_]


def paper_rows(runs: Sequence[Run]) -> dict[str, tuple[str, float]]:
  """Run name -> the paper's (row, test error), from each run's config (`ram.paper_row`)."""
  rows = {run.name: experiment.paper_row(run.results['config']) for run in runs}
  return {name: row for name, row in rows.items() if row is not None}


def _on_digit(members: Sequence[Run]) -> list[float]:
  return [sum(v) / len(v) for v in (per_glimpse_values(m, 'on_digit') for m in members) if v]


def _config(members: Sequence[Run]) -> dict:
  return members[0].results['config']


def _results(members: Sequence[Run], key: str) -> list:
  return [m.results.get(key) for m in members]


# The policy grid's table: a line per setting, over its seeds.
POLICY_GRID_COLUMNS = (
    Column('task', lambda m: '{name}{canvas_size}'.format(**_config(m)['dataset'])),
    Column('glimpses', lambda m: str(_config(m)['model']['num_glimpses'])),
    Column('policy gradient', lambda m: (
        'into the core' if _config(m)['model'].get('policy_gradient_to_core', True)
        else 'locator only')),
    Column('REINFORCE over T', lambda m: (
        'mean' if _config(m)['loss'].get('reinforce_time_average') else 'sum')),
    Column('updates', lambda m: number(m[0].results.get('steps'))),
    Column('seeds', lambda m: ', '.join(str(r.results['config'].get('seed', 0)) for r in m)),
    Column('test error %', lambda m: percent_spread(_results(m, 'test_error'))),
    Column('error_mc %', lambda m: percent_spread(_results(m, 'test_error_mc'))),
    Column('saturated % (worst glimpse)', lambda m: percent_spread(
        [max(per_glimpse_values(r, 'saturated')) for r in m], digits=1)),
    Column('on digit % (mean)', lambda m: percent_spread(_on_digit(m), digits=1)),
    Column('updates to train error < 50%', lambda m: ' / '.join(
        'never' if p is None else number(p) for p in map(steps_to_leave_plateau, m))),
    Column('minutes (mean)', lambda m: mean_spread(
        [s / 60 for s in _results(m, 'wall_seconds')], digits=1)),
)


def policy_grid_section(folder: str) -> list[str]:
  """RAM's location-policy choices at equal budget (`scripts/ram_policy_grid.sh`), from the runs
  under `<folder>/ram/policy_grid/`: a row per setting over seeds, its saturation and where it
  looks, and the training curves of error and saturation."""
  grid = [load_run(w) for w in workdirs(folder, f'{EXPERIMENT}/{POLICY_GRID}/*')]
  if not grid:
    return []
  groups: dict[str, list[Run]] = {}
  for run in grid:
    groups.setdefault(seed_group(run.name), []).append(run)
  figure = lambda kind: f'{EXPERIMENT}_{POLICY_GRID}_{kind}.png'
  for metric in ('error', 'saturated'):
    plot_training_error(grid, os.path.join(folder, figure(metric)), metric=metric)
  plot_per_glimpse_diagnostics(grid, os.path.join(folder, figure('per_glimpse')))
  return ['\n## Location-policy choices at equal budget\n\n',
          'Runs of `scripts/ram_policy_grid.sh` (committed under `ram/policy_grid/`): the same '
          'task, budget and seeds with the policy gradient reaching the core or only the locator '
          '(`model.policy_gradient_to_core`), REINFORCE summed or averaged over the glimpses '
          '(`loss.reinforce_time_average`). Saturated: the share of greedy location means with '
          '|mu| > 0.95 at the worst glimpse; on digit: glimpses whose finest patch overlaps the '
          "digit's box, averaged over glimpses.\n\n",
          markdown_table(POLICY_GRID_COLUMNS, list(groups.values())),
          f'\n![training error]({figure("error")})\n',
          '\n![share of saturated location means during training]'
          f'({figure("saturated")})\n',
          f'\n![per-glimpse diagnostics]({figure("per_glimpse")})\n']


def write_report(workdirs_: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes RAM's chapter for the runs in `workdirs_` to `out` (figures beside it); returns it."""
  runs = load_runs(workdirs_)
  return write_seed_chapter(TITLE, runs, out, notes, paper_rows(runs),
                            policy_grid_section(os.path.dirname(out) or '.'))


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.ram', __doc__.splitlines()[0],
              out='results/ram.md', argv=argv)


if __name__ == '__main__':
  main()
