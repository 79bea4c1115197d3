"""WS-RAM's chapter (experiments/ws_ram.py beside Ba et al. 2015): `python -m
glimpse_jax.reports.ws_ram RUNS... --out results/ws_ram.md`.

Runs are committed under `results/ws_ram/<run>/` and named `ws_ram-<run>` in the tables; the
paper's row of each follows from its config (`experiments.ws_ram.paper_row`, none off the paper's
dataset). Adds the scale use and first-glimpse curves and, for every committed measurement
`results/ws_ram/<run>/estimator_variance.json` (`scripts/ws_ram_variance.py`), the estimators'
gradient variance at that run's snapshots.
"""

import glob
import json
import os
import sys
from collections.abc import Sequence

from glimpse_jax.experiments import ws_ram as experiment
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.overview import plot_training_error, write_seed_chapter
from glimpse_jax.reports.runs import Run, load_run
from glimpse_jax.reports.tables import markdown, number

EXPERIMENT = 'ws_ram'
TITLE = 'Learning Wake-Sleep Recurrent Attention Models (Ba et al. 2015)'
HEADING = 'WS-RAM against VAR (Ba et al. 2015)'
VARIANCE_FILE = 'estimator_variance.json'
# training metric: what its figure shows against updates
CURVES = {'scale_frac_2': 'fraction of training glimpses at the coarsest scale',
          'first_on_digit': "fraction of first glimpses on the digit's centre"}


def load_runs(workdirs: Sequence[str]) -> list[Run]:
  """The runs, each named `ws_ram-<its folder>`."""
  return [load_run(w, prefix=f'{EXPERIMENT}-') for w in workdirs]


def paper_rows(runs: Sequence[Run]) -> dict[str, tuple[str, float] | None]:
  """Run name -> the paper's (row, test error), or None off the paper's dataset
  (`ws_ram.paper_row`)."""
  return {run.name: experiment.paper_row(run.results['config']) for run in runs}


def curves_section(runs: Sequence[Run], folder: str) -> list[str]:
  """The figures of CURVES' metrics against updates, for the runs that log them."""
  parts = []
  for metric, what in CURVES.items():
    measured = [run for run in runs if any(metric in r for r in run.records)]
    if measured:
      figure = f'{EXPERIMENT}_{metric}.png'
      plot_training_error(measured, os.path.join(folder, figure), metric=metric)
      parts.append(f'\n![{what}, against updates]({figure})\n')
  return parts


def estimator_variance_section(folder: str) -> list[str]:
  """The WS-RAM estimators' gradient variance at one run's snapshots (`ws_ram_variance`), a
  table per committed measurement `<folder>/ws_ram/<run>/estimator_variance.json`."""
  parts = []
  for path in sorted(glob.glob(os.path.join(folder, EXPERIMENT, '*', VARIANCE_FILE))):
    with open(path) as f:
      measured = json.load(f)
    run = f'{EXPERIMENT}-' + os.path.basename(os.path.dirname(path))
    steps = measured['steps']
    parts += [
        f'\n## Estimator variance at the same parameters ({run})\n\n',
        f'Trace of the gradient covariance of each estimator (prediction network and prior '
        f'policy; no baseline regression or exploration terms) over {measured["draws"]} draws of '
        f'K = {measured["num_samples"]} rollouts on the same {measured["examples"]} test images, '
        f'at the snapshots of one run (`python scripts/ws_ram_variance.py`):\n\n',
        markdown(['estimator', *(f'update {step:,}' for step in steps)],
                 [[row, *map(number, values)] for row, values in measured['rows'].items()]),
    ]
    figure = os.path.join(os.path.dirname(path), 'estimator_variance.png')
    if os.path.isfile(figure):
      parts.append(f'\n![estimator variance by snapshot]({os.path.relpath(figure, folder)})\n')
  return parts


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes WS-RAM's chapter for the runs in `workdirs` to `out` (figures beside it); returns it."""
  runs = load_runs(workdirs)
  folder = os.path.dirname(out) or '.'
  return write_seed_chapter(HEADING, runs, out, notes, paper_rows(runs),
                            curves_section(runs, folder) + estimator_variance_section(folder))


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.ws_ram', __doc__.splitlines()[0],
              out='results/ws_ram.md', argv=argv)


if __name__ == '__main__':
  main()
