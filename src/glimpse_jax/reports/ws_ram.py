"""WS-RAM's chapter (experiments/ws_ram.py beside Ba et al. 2015): `python -m
glimpse_jax.reports.ws_ram RUNS... --out results/ws_ram.md`.

Runs are committed under `results/ws_ram/<run>/` and named `ws_ram-<run>` in the tables; the
paper's row of each follows from its config (`experiments.ws_ram.paper_row`, none off the paper's
dataset). Adds the scale use and first-glimpse curves and, for every committed measurement
`results/ws_ram/<run>/estimator_variance.json` (`scripts/ws_ram_variance.py`), the estimators'
gradient variance at that run's snapshots, and for runs holding `scale_by_size.json`
(`scripts/ws_ram_scale_by_size.py`) the scale their greedy policy chooses against the digit's size.
"""

import glob
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from glimpse_jax.experiments import ws_ram as experiment
from glimpse_jax.plots.scale_by_size import plot_scale_by_size
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.overview import plot_training_error, write_seed_chapter
from glimpse_jax.reports.runs import Run, load_run, seed_group
from glimpse_jax.reports.tables import Column, markdown, markdown_table, mean_spread, number

EXPERIMENT = 'ws_ram'
TITLE = 'Learning Wake-Sleep Recurrent Attention Models (Ba et al. 2015)'
HEADING = 'WS-RAM against VAR (Ba et al. 2015)'
VARIANCE_FILE = 'estimator_variance.json'
SCALE_FILE = 'scale_by_size.json'
SCALE_FIGURE = f'{EXPERIMENT}_scale_by_size.png'
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


def _size_bin_rows(measured: Sequence[dict]) -> list[dict]:
  """One item per size bin of one setting's measurements (one per seed, the same edges): its
  edges, the seeds' on-ink scale fractions [seeds][S] (empty bins left out), the glimpses on
  ink summed over seeds and the seeds' fractions of glimpses on ink."""
  edges = measured[0]['edges']
  return [{'low': edges[b], 'high': edges[b + 1],
           'fractions': [m['on_ink']['fractions'][b] for m in measured
                         if m['on_ink']['fractions'][b] is not None],
           'count': sum(m['on_ink']['count'][b] for m in measured),
           'on_ink': [m['on_ink_fraction'][b] for m in measured]}
          for b in range(len(edges) - 1)]


def _scale_names(run: Run, num_scales: int) -> list[str]:
  """'fine (12 px)', 'mid (24 px)', 'coarse (48 px)' from the run's retina."""
  model = run.results['config']['model']
  words = (['fine', 'mid', 'coarse'] if num_scales == 3
           else [f'scale {s}' for s in range(num_scales)])
  return [f"{word} ({model['glimpse_size'] * model['scale_factor'] ** s} px)"
          for s, word in enumerate(words)]


def scale_by_size_section(runs: Sequence[Run], workdirs: Sequence[str], folder: str) -> list[str]:
  """The greedy policy's scale against the digit's size (`scripts/ws_ram_scale_by_size.py`):
  per setting, a table of the on-ink scale fractions per size bin over seeds, and one figure."""
  groups: dict[str, list[tuple[Run, dict]]] = {}
  for run, workdir in zip(runs, workdirs):
    path = os.path.join(workdir, SCALE_FILE)
    if os.path.isfile(path):
      with open(path) as f:
        groups.setdefault(seed_group(run.name), []).append((run, json.load(f)))
  if not groups:
    return []
  parts = [
      "\n## Scale against digit size (the paper's Figure 4)\n\n",
      'The scale the greedy policy (mean locations, most probable scales) chooses for each '
      "glimpse, against the digit's side, at each run's last checkpoint on the first test "
      'canvases, counting only glimpses whose finest patch holds ink (a pixel above 0.5). Size '
      'bins are geometric over the dataset\'s digit sides; each cell is the mean ± std over seeds '
      'of the fraction of that bin\'s on-ink glimpses at the scale '
      '(`python scripts/ws_ram_scale_by_size.py RUN...`).\n']
  panels = {}
  for name, members in groups.items():
    members.sort(key=lambda item: item[0].results['config']['seed'])
    measured = [m for _, m in members]
    if any(m['edges'] != measured[0]['edges'] for m in measured):
      raise ValueError(f'the runs of {name!r} measured different size bins: '
                       f"{[m['edges'] for m in measured]}")
    names = _scale_names(members[0][0], measured[0]['num_scales'])
    columns = [Column('digit side (px)', lambda r: f"{r['low']:.1f}-{r['high']:.1f}"),
               *(Column(scale, lambda r, s=s: mean_spread([f[s] for f in r['fractions']]))
                 for s, scale in enumerate(names)),
               Column('glimpses on ink', lambda r: f"{r['count']:,}"),
               Column('% of glimpses on ink', lambda r: mean_spread(r['on_ink'], 1, 100.0))]
    items = _size_bin_rows(measured)
    seeds = ', '.join(str(run.results['config']['seed']) for run, _ in members)
    steps = ', '.join(f'{step:,}' for step in sorted({m['step'] for m in measured}))
    parts += [f"\n**{name}** (seeds {seeds}; {measured[0]['examples']:,} test canvases x "
              f"{measured[0]['glimpses']} glimpses per seed; update {steps}):\n\n",
              markdown_table(columns, items)]
    panels[name.removeprefix(f'{EXPERIMENT}-')] = (measured[0]['edges'],
                    [np.mean(r['fractions'], 0) if r['fractions'] else [np.nan] * len(names)
                     for r in items])
    scale_names = names
  plot_scale_by_size(panels, scale_names, os.path.join(folder, SCALE_FIGURE))
  parts.append(f'\n![on-ink scale use against digit size, mean over seeds]({SCALE_FIGURE})\n')
  return parts


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes WS-RAM's chapter for the runs in `workdirs` to `out` (figures beside it); returns it."""
  runs = load_runs(workdirs)
  folder = os.path.dirname(out) or '.'
  return write_seed_chapter(HEADING, runs, out, notes, paper_rows(runs),
                            curves_section(runs, folder) + estimator_variance_section(folder)
                            + scale_by_size_section(runs, workdirs, folder))


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.ws_ram', __doc__.splitlines()[0],
              out='results/ws_ram.md', argv=argv)


if __name__ == '__main__':
  main()
