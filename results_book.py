"""The results book: every experiment's tables, regenerated from the committed runs.

Usage: `make results` (or `python results_book.py [--results results]`).

Each chapter reads the finished runs committed under `results/` (their results.json,
metrics.jsonl and the files the experiments write beside them), writes `results/<chapter>.md`
with its figures, and appends the hand-written reading of the numbers, `results/<chapter>_notes.md`,
when there is one (kept apart, so regenerating never loses it). `results/README.md` indexes the
chapters: the paper, the runs, their seeds, wall time, and each chapter's headline rows.
"""

import argparse
import dataclasses
import glob
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence

from experiments import ram, ws_ram
from glimpse_jax import report, report_ram_reward, report_variant_mnist, report_ws_ram_captioning
from glimpse_jax import report_near_optimal_glimpses, report_pretrain_attention


@dataclasses.dataclass(frozen=True)
class Chapter:
  """One experiment's page of the book.

  Attributes:
    name: the page's stem (`<results>/<name>.md`) and the experiment module's name.
    title: the paper, as the page's heading.
    runs: glob of the committed workdirs, relative to the results folder.
    write: (workdirs, out markdown path, notes path or None) -> markdown.
    command: how the runs were made.
  """

  name: str
  title: str
  runs: str
  write: Callable[[Sequence[str], str, str | None], str]
  command: str


def _ram_paper(runs: Sequence[report.Run]) -> dict[str, tuple[str, float]]:
  """Run name -> the paper's (row, test error), from each run's config (`ram.paper_row`)."""
  rows = {run.name: ram.paper_row(run.results['config']) for run in runs}
  return {name: row for name, row in rows.items() if row is not None}


def _ws_ram_paper(runs: Sequence[report.Run]) -> dict[str, tuple[str, float] | None]:
  """Run name -> the paper's (row, test error), or None off the paper's dataset
  (`ws_ram.paper_row`)."""
  return {run.name: ws_ram.paper_row(run.results['config']) for run in runs}


def _ws_ram_extras(runs: Sequence[report.Run], folder: str) -> list[str]:
  """WS-RAM's scale use and first-glimpse curves, then its estimator-variance tables."""
  parts = []
  for metric, what in (('scale_frac_2', 'fraction of training glimpses at the coarsest scale'),
                       ('first_on_digit', "fraction of first glimpses on the digit's centre")):
    measured = [run for run in runs if any(metric in r for r in run.records)]
    if measured:
      figure = f'ws_ram_{metric}.png'
      report.plot_training_error(measured, os.path.join(folder, figure), metric=metric)
      parts.append(f'\n![{what}, against updates]({figure})\n')
  return parts + _estimator_variance(folder)


def _estimator_variance(folder: str) -> list[str]:
  """The WS-RAM estimators' gradient variance at one run's snapshots (`ws_ram_variance`), a
  table per committed measurement `<folder>/ws_ram*/estimator_variance.json`."""
  parts = []
  for path in sorted(glob.glob(os.path.join(folder, 'ws_ram*', 'estimator_variance.json'))):
    with open(path) as f:
      measured = json.load(f)
    run = os.path.basename(os.path.dirname(path))
    steps = measured['steps']
    parts += [
        f'\n## Estimator variance at the same parameters ({run})\n\n',
        f'Trace of the gradient covariance of each estimator (prediction network and prior '
        f'policy; no baseline regression or exploration terms) over {measured["draws"]} draws of '
        f'K = {measured["num_samples"]} rollouts on the same {measured["examples"]} test images, '
        f'at the snapshots of one run (`python scripts/ws_ram_variance.py`):\n\n',
        '| estimator | ' + ' | '.join(f'update {step:,}' for step in steps) + ' |\n',
        '|---|' + '---|' * len(steps) + '\n',
        *(f'| {row} | ' + ' | '.join(report.number(v) for v in values) + ' |\n'
          for row, values in measured['rows'].items()),
    ]
    figure = os.path.join(os.path.dirname(path), 'estimator_variance.png')
    if os.path.isfile(figure):
      parts.append(f'\n![estimator variance by snapshot]({os.path.relpath(figure, folder)})\n')
  return parts


def _diagnostics_section(runs: Sequence[report.Run], folder: str, stem: str) -> list[str]:
  """Where the runs that report them look, per glimpse (`report.diagnostics_table` and its
  figure); nothing for runs that predate the diagnostics."""
  table = report.diagnostics_table(runs)
  if not table:
    return []
  figure = f'{stem}_per_glimpse.png'
  report.plot_per_glimpse_diagnostics(runs, os.path.join(folder, figure))
  return ['\n## Where the policy looks (greedy path, test set)\n\n', table,
          f'\n![per-glimpse diagnostics]({figure})\n']


def _ram_policy_grid(runs: Sequence[report.Run], folder: str) -> list[str]:
  """RAM's location-policy choices at equal budget (`scripts/ram_policy_grid.sh`), from the runs
  under `<folder>/ram/policy_grid/`: a row per setting over seeds, its saturation and where it
  looks, and the training curves of error and saturation."""
  del runs
  grid = [report.load_run(w) for w in _workdirs(folder, 'ram/policy_grid/*')]
  if not grid:
    return []
  groups: dict[str, list[report.Run]] = {}
  for run in grid:
    groups.setdefault(report.seed_group(run.name), []).append(run)
  header = ['task', 'glimpses', 'policy gradient', 'REINFORCE over T', 'updates', 'seeds',
            'test error %', 'error_mc %', 'saturated % (worst glimpse)', 'on digit % (mean)',
            'updates to train error < 50%', 'minutes (mean)']
  lines = ['| ' + ' | '.join(header) + ' |\n', '|' + '---|' * len(header) + '\n']
  for members in groups.values():
    config = members[0].results['config']
    model, loss = config['model'], config['loss']
    column = lambda key: [m.results.get(key) for m in members]
    worst = [max(report.per_glimpse_values(m, 'saturated')) for m in members]
    on_digit = [sum(v) / len(v) for v in (report.per_glimpse_values(m, 'on_digit')
                                          for m in members) if v]
    plateau = [report.steps_to_leave_plateau(m) for m in members]
    cells = [
        f'{config["dataset"]["name"]}{config["dataset"]["canvas_size"]}',
        str(model['num_glimpses']),
        'into the core' if model.get('policy_gradient_to_core', True) else 'locator only',
        'mean' if loss.get('reinforce_time_average') else 'sum',
        report.number(members[0].results.get('steps')),
        ', '.join(str(m.results['config'].get('seed', 0)) for m in members),
        report.mean_spread(column('test_error'), scale=100),
        report.mean_spread(column('test_error_mc'), scale=100),
        report.mean_spread(worst, digits=1, scale=100),
        report.mean_spread(on_digit, digits=1, scale=100),
        ' / '.join('never' if p is None else report.number(p) for p in plateau),
        report.mean_spread([s / 60 for s in column('wall_seconds')], digits=1)]
    lines.append('| ' + ' | '.join(cells) + ' |\n')
  for metric in ('error', 'saturated'):
    report.plot_training_error(grid, os.path.join(folder, f'ram_policy_grid_{metric}.png'),
                               metric=metric)
  report.plot_per_glimpse_diagnostics(grid, os.path.join(folder, 'ram_policy_grid_per_glimpse.png'))
  return ['\n## Location-policy choices at equal budget\n\n',
          'Runs of `scripts/ram_policy_grid.sh` (committed under `ram/policy_grid/`): the same '
          'task, budget and seeds with the policy gradient reaching the core or only the locator '
          '(`model.policy_gradient_to_core`), REINFORCE summed or averaged over the glimpses '
          '(`loss.reinforce_time_average`). Saturated: the share of greedy location means with '
          '|mu| > 0.95 at the worst glimpse; on digit: glimpses whose finest patch overlaps the '
          "digit's box, averaged over glimpses.\n\n",
          *lines,
          '\n![training error](ram_policy_grid_error.png)\n',
          '\n![share of saturated location means during training]'
          '(ram_policy_grid_saturated.png)\n',
          '\n![per-glimpse diagnostics](ram_policy_grid_per_glimpse.png)\n']


def _generic(title: str, paper_of: Callable[[Sequence[report.Run]], dict] | None,
             extra: Callable[[Sequence[report.Run], str], list[str]] | None = None):
  """A chapter of one row per setting over seeds and per run (`report.seed_table`,
  `report.results_table`), its training-error curves, then `extra(runs, folder)`'s markdown."""

  def write(workdirs: Sequence[str], out: str, notes: str | None) -> str:
    runs = [report.load_run(w) for w in workdirs]
    folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
    figure = f'{stem}_training_error.png'
    curves = any(record.get('kind', 'train') == 'train' for run in runs for record in run.records)
    if curves:  # runs committed without metrics.jsonl have none
      report.plot_training_error(runs, os.path.join(folder, figure))
    paper = paper_of(runs) if paper_of else None
    return report.write_page([
        f'# {title}\n\n',
        f'{len(runs)} runs; `test error` follows the greedy path (mean locations), '
        '`error_mc` averages class log-probabilities over sampled paths. Minutes are the wall '
        'time of the call that finished the run.\n\n',
        'Over seeds (runs named `<setting>-seed<N>`; mean ± sample std):\n\n',
        report.seed_table(runs, paper),
        '\nEvery run:\n\n',
        report.results_table(runs, paper),
        f'\n![training error against updates]({figure})\n' if curves else '',
        *_diagnostics_section(runs, folder, stem),
        *(extra(runs, folder) if extra else []),
    ], out, notes)

  return write


CHAPTERS = (
    Chapter('ram', 'Recurrent Models of Visual Attention (Mnih et al. 2014)', 'ram-*',
            _generic('Recurrent Models of Visual Attention (Mnih et al. 2014)', _ram_paper,
                     _ram_policy_grid),
            'make experiment NAME=ram CONFIG=<task>'),
    Chapter('ws_ram', 'Learning Wake-Sleep Recurrent Attention Models (Ba et al. 2015)',
            'ws_ram-*',
            _generic('WS-RAM against VAR (Ba et al. 2015)', _ws_ram_paper, _ws_ram_extras),
            'make experiment NAME=ws_ram CONFIG=<method>'),
    Chapter('ram_reward', 'Reward shaping and an LSTM locator for RAM (Brooks et al.)',
            'ram_reward/*', report_ram_reward.write_report,
            'make experiment NAME=ram_reward CONFIG=<method> SEEDS=3'),
    Chapter('variant_mnist',
            'Attention mechanisms for variant MNIST datasets (Wu, Xu & Lee)',
            'variant_mnist/*', report_variant_mnist.write_report,
            'make experiment NAME=variant_mnist CONFIG=<row> SEEDS=3'),
    Chapter('pretrain_attention', 'Pre-training attention mechanisms (Lindsey 2017)',
            'pretrain_attention/*', report_pretrain_attention.write_report,
            'make experiment NAME=pretrain_attention CONFIG=<method>_<dataset> SEEDS=3'),
    Chapter('ws_ram_captioning',
            'Caption generation with multi-scale attention, WS-RAM against VAR (Ba et al. 2015)',
            'ws_ram_captioning/*', report_ws_ram_captioning.write_report,
            'make experiment NAME=ws_ram_captioning CONFIG=<method> SEEDS=3'),
    Chapter('near_optimal_glimpses',
            'Near-optimal glimpse sequences for hard attention (Harvey, Teng & Wood)',
            'near_optimal_glimpses/*', report_near_optimal_glimpses.write_report,
            'make experiment NAME=near_optimal_glimpses CONFIG=<sequences|supervised|...> '
            'SEEDS=3'),
)


def _workdirs(results: str, pattern: str) -> list[str]:
  return sorted(d for d in glob.glob(os.path.join(results, pattern))
                if os.path.isfile(os.path.join(d, report.RESULTS_FILE)))


def _load_run(workdir: str) -> report.Run:
  """A run; a pipeline's (results.json holds its `phases`) with the seed of pipeline.json's config
  (its own, else its phases' lowest) and the wall time of all its phases."""
  run = report.load_run(workdir)
  if 'phases' not in run.results:
    return run
  with open(os.path.join(workdir, 'pipeline.json')) as f:
    config = json.load(f)['config']
  seed = config.get('seed')  # the pipeline's seed, set in every phase when run
  if seed is None:
    seed = min(phase.get('seed', 0) for phase in config['phases'].values())
  seconds = sum(r.get('wall_seconds') or 0.0 for r in run.results['phases'].values())
  return report.Run(run.name, {**run.results, 'config': {'seed': seed},
                               'wall_seconds': seconds}, run.records)


def _seed_count(runs: Sequence[report.Run]) -> str:
  seeds = sorted({run.results['config'].get('seed', 0) for run in runs})
  return ', '.join(map(str, seeds))


def write_book(results: str = 'results', chapters: Sequence[Chapter] = CHAPTERS) -> str:
  """Regenerates every chapter with runs under `results` and `results/README.md`; returns it."""
  index = [
      '# Results\n\n',
      'Every table here is generated from the committed runs by `make results` '
      '(`results_book.py`): ours beside the paper\'s, with budgets, seeds and wall times. Each '
      'chapter ends with a note on where we agree with the paper and where not.\n\n',
      '| chapter | paper | runs | seeds | wall time (h) | made by |\n',
      '|---|---|---|---|---|---|\n',
  ]
  for chapter in chapters:
    workdirs = _workdirs(results, chapter.runs)
    if not workdirs:
      continue
    out = os.path.join(results, f'{chapter.name}.md')
    notes = os.path.join(results, f'{chapter.name}_notes.md')
    chapter.write(workdirs, out, notes if os.path.isfile(notes) else None)
    runs = [_load_run(w) for w in workdirs]
    hours = sum(run.results.get('wall_seconds') or 0.0 for run in runs) / 3600
    index.append(f'| [{chapter.name}]({chapter.name}.md) | {chapter.title} | {len(runs)} | '
                 f'{_seed_count(runs)} | {hours:.1f} | `{chapter.command}` |\n')
  markdown = ''.join(index)
  with open(os.path.join(results, 'README.md'), 'w') as f:
    f.write(markdown)
  return markdown


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog='results_book.py', description=__doc__.splitlines()[0])
  parser.add_argument('--results', default='results', help='the folder of committed runs')
  args = parser.parse_args(argv)
  write_book(args.results)
  sys.stdout.write(f'wrote {os.path.join(args.results, "README.md")}\n')


if __name__ == '__main__':
  main()
