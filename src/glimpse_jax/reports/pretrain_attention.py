"""Pre-training attention (experiments/pretrain_attention.py) over seeds beside Lindsey 2017:
`python -m glimpse_jax.reports.pretrain_attention RUNS... --out results/pretrain_attention.md`
(the reading of the numbers, `<out stem>_notes.md` beside it, appended).

Reads finished pipeline workdirs (`pipeline.json`, and per phase `results.json` and
`metrics.jsonl`), names each run's method and dataset from its phases' configs, and writes the
paper's Tables 2 and 4 (test error) and Table 3 (the glimpse-efficiency tester's accuracy) with the
paper's numbers beside the mean ± sample std over seeds. Test error is given twice: by the
paper's rule (`paper_rule_error`: evaluations every 1,000 batches, the mean of the ten after
accuracy stops improving) and the final model's. Each row states its budget (batches per phase)
and wall time. Beside the markdown file go `<stem>_curves.png` (test error against batches,
pre-training batches included, paper Figure 2) and the first seed's read windows of an unguided
and each guided method (`<stem>_<method>_<dataset>_reads.png`), each with its run's reads per
step (log gamma, sigma, stride, centre, in-image mass: the share of the filters' Gaussian mass
on the image). Runs that log these get a per-step section too (mean over seeds, every phase that
trained a read; `<stem>_reads_per_step.png`). `_smoke` variants stay out of these and get a
section of their own (phases, pre-training headline, test error, minutes).
"""

import collections
import dataclasses
import os
import shutil
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from glimpse_jax import papers
from glimpse_jax.plots.read_windows import plot_read_steps
from glimpse_jax.reports.cli import chapter_parser
from glimpse_jax.reports.pretrain_attention_runs import (
    PipelineRun, budget_of, dataset_of, is_smoke, last_trained, load_pipeline_run,
    method_of, phases_of, pretraining_steps, trained_phases, variant_of, widths_of)
from glimpse_jax.reports.tables import (Column, markdown, markdown_table, mean_spread,
                                        minutes_spread, percent_spread, write_page)

READS_FILE = 'read_windows.png'
TEN = 10  # evaluations averaged by the paper's rule
TARGET_ACCURACY = papers.PRETRAIN_ATTENTION_SPEED.accuracy
# Lindsey 2017: test error (Tables 2 and 4) and the tester's accuracy (Table 3), as fractions.
PAPER_ERROR = {(row.method, row.dataset): row.value for row in papers.PRETRAIN_ATTENTION_ERRORS}
PAPER_TESTER_ACCURACY = {(row.method, row.dataset): row.value
                         for row in papers.PRETRAIN_ATTENTION_TESTER_ACCURACY}
TABLE_2 = ('no_guidance', 'heuristic', 'reconstruction')
TABLE_4 = ('mimic', 'bootstrap', 'mimic_alpha05', 'bootstrap_alpha05')
DATASETS = ('translated', 'regular')
LEARNED_ERROR = 0.5  # a smoke run "learns" at this test error or below (chance: 0.9)
SMOKE_MINUTES = 2  # a smoke pipeline's budget, wall minutes on one CPU core
# How a phase's headline value is written (test error goes in %, one decimal).
HEADLINE_FORMAT = {'bce': '.1f', 'distance': '.2g'}
# The per-step read statistics a phase reports (`test_<stat>_g<t>` in results.json; the names of
# nets/draw.py's STATS): (stat, label, scale, format).
READ_STATS = (('in_image_mass', 'in-image mass', 1.0, '.2f'),
              ('off_image', 'mostly off the image %', 100.0, '.0f'),
              ('log_gamma', 'log gamma', 1.0, '.2f'),
              ('sigma', 'sigma px', 1.0, '.3g'),
              ('stride', 'stride px', 1.0, '.3g'),
              ('center_x', 'centre x', 1.0, '.2f'),
              ('center_y', 'centre y', 1.0, '.2f'))
# The rows of the per-step section (all of them beside each read picture).
STEP_TABLE_STATS = ('in_image_mass', 'off_image', 'log_gamma')


def test_curve(records: Sequence[Mapping[str, Any]], metric: str = 'error') -> list[tuple]:
  """(step, value) of the test evaluations in metrics.jsonl records, by step (last wins)."""
  points = {r['step']: r[metric] for r in records
            if r.get('kind') == 'eval' and r.get('split', 'test') == 'test'
            and isinstance(r.get(metric), (int, float))}
  return sorted(points.items())


def paper_rule_error(curve: Sequence[tuple[int, float]], count: int = TEN
                     ) -> tuple[float | None, int]:
  """Lindsey's test error: the mean of the `count` evaluations after the best one (the first
  lowest error, where accuracy stops improving); fewer when the run ends sooner.

  Returns:
    (the mean, how many evaluations it averages); (None, 0) when the best is the last evaluation
    (accuracy never stopped improving) or there is none.
  """
  if count < 1:
    raise ValueError(f'count must be >= 1, got {count}')
  values = [value for _, value in curve]
  if not values:
    return None, 0
  best = values.index(min(values))
  after = values[best + 1:best + 1 + count]
  return (float(np.mean(after)), len(after)) if after else (None, 0)


def batches_to(curve: Sequence[tuple[int, float]], accuracy: float = TARGET_ACCURACY
               ) -> int | None:
  """The first evaluated step with test accuracy >= `accuracy`, or None."""
  for step, error in curve:
    if 1.0 - error >= accuracy:
      return step
  return None


def read_steps(results: Mapping[str, Any], split: str = 'test') -> dict[str, list[float]]:
  """`{stat: [value at t = 1, 2, ...]}` of READ_STATS a phase's results hold
  (`<split>_<stat>_g<t>`); empty for runs from before the statistics were logged."""
  steps = {}
  for stat, *_ in READ_STATS:
    values = []
    while isinstance(results.get(f'{split}_{stat}_g{len(values) + 1}'), (int, float)):
      values.append(float(results[f'{split}_{stat}_g{len(values) + 1}']))
    if values:
      steps[stat] = values
  return steps


def read_phases(run: PipelineRun) -> list[str]:
  """The trained phases whose results report their own reads per step (the tester reports its
  frozen model's, which the tested phase already has)."""
  return [p for p in trained_phases(run) if p != 'tester' and read_steps(run.results[p])]


def lowest_in_image_mass(run: PipelineRun) -> float | None:
  """The lowest per-step in-image mass of the reads the row's model classifies from (the last
  trained phase; a tester's frozen model), or None when not logged."""
  mass = read_steps(run.results[last_trained(run)]).get('in_image_mass')
  return min(mass) if mass else None


def _mass_of_seeds(runs: Sequence[PipelineRun]) -> str:
  values = [lowest_in_image_mass(run) for run in runs]
  present = [v for v in values if v is not None]
  if not present:
    return '-'
  text = mean_spread(present, 2)
  return text if len(present) == len(values) else f'{text} ({len(present)}/{len(values)} seeds)'


def _step_cells(values: Sequence[float | None], scale: float, fmt: str, steps: int) -> list[str]:
  cells = ['-' if v is None else format(scale * v, fmt) for v in values]
  return cells + ['-'] * (steps - len(cells))


def steps_table(steps: Mapping[str, Sequence[float]], stats: Sequence[str]) -> str:
  """A markdown table of one run's reads: a row per stat, a column per read step."""
  count = max(len(values) for values in steps.values())
  rows = [[label, *_step_cells(steps[stat], scale, fmt, count)]
          for stat, label, scale, fmt in READ_STATS if stat in stats and stat in steps]
  return markdown(['read step t', *map(str, range(1, count + 1))], rows)


def mean_steps(runs: Sequence[PipelineRun], phase: str) -> dict[str, list[float]]:
  """READ_STATS per step of `phase`, the mean over the runs that report it."""
  per_run = [read_steps(run.results[phase]) for run in runs if phase in run.results]
  out = {}
  for stat, *_ in READ_STATS:
    series = [steps[stat] for steps in per_run if stat in steps]
    if series:
      count = max(map(len, series))
      out[stat] = [float(np.mean([s[t] for s in series if t < len(s)])) for t in range(count)]
  return out


def group_runs(runs: Sequence[PipelineRun]) -> dict[tuple[str, str, str, str], list[PipelineRun]]:
  """(method, dataset, budget, widths) -> runs by seed; raises ValueError for a seed twice."""
  groups = collections.defaultdict(list)
  for run in runs:
    groups[(method_of(run), dataset_of(run), budget_of(run), widths_of(run))].append(run)
  for key, members in groups.items():
    seeds = [run.seed for run in members]
    if len(set(seeds)) < len(seeds):
      raise ValueError(f'{key[0]} on {key[1]} ({key[2]}) has seed {max(seeds, key=seeds.count)} '
                       f'twice among runs {[run.name for run in members]}')
    members.sort(key=lambda run: run.seed)
  order = {m: i for i, m in enumerate(TABLE_2 + TABLE_4)}
  return {key: groups[key] for key in sorted(
      groups, key=lambda k: (DATASETS.index(k[1]) if k[1] in DATASETS else 9,
                             order.get(k[0], 99), k))}


def _final_error(run: PipelineRun) -> float:
  """The last trained phase's final test error (infinite when it has none or it is NaN)."""
  value = run.results[last_trained(run)].get('test_error')
  return value if isinstance(value, (int, float)) and value == value else float('inf')


def _reads_of(run: PipelineRun) -> str:
  """The read-window picture of the run's last trained phase."""
  return os.path.join(run.workdir, last_trained(run), READS_FILE)


def _mean_of_seeds(values: Sequence[float | None]) -> str:
  """Mean ± std (%) of the seeds that have a value, saying how many when some do not."""
  present = [v for v in values if v is not None]
  text = percent_spread(present)
  if len(present) in (0, len(values)):
    return text
  return f'{text} ({len(present)}/{len(values)} seeds)'


def _steps(values: Sequence[int | None]) -> str:
  reached = [v for v in values if v is not None]
  if not reached:
    return 'not reached'
  text = f'{statistics.mean(reached):,.0f}'
  return text if len(reached) == len(values) else f'{text} ({len(reached)}/{len(values)} seeds)'


@dataclasses.dataclass(frozen=True)
class Setting:
  """One row's runs: a method on a dataset at one budget and model, over seeds."""

  method: str
  dataset: str
  budget: str
  widths: str
  runs: Sequence[PipelineRun]

  @property
  def curves(self) -> list[list[tuple]]:
    """The test curve of each seed's last trained phase."""
    return [test_curve(run.records[last_trained(run)]) for run in self.runs]


def _paper_cell(value: float | None) -> str:
  return '-' if value is None else f'{100 * value:.1f}'


def _paper_rule_cells(setting: Setting) -> tuple[str, str]:
  """(the paper-rule error over seeds, the evaluations it averaged)."""
  rule = [paper_rule_error(curve) for curve in setting.curves]
  counts = sorted({n for _, n in rule})
  return _mean_of_seeds([value for value, _ in rule]), ', '.join(str(n or '-') for n in counts)


def _with_pretraining(setting: Setting) -> str:
  to_95 = [batches_to(curve) for curve in setting.curves]
  return _steps([None if s is None else s + pretraining_steps(run)
                 for s, run in zip(to_95, setting.runs)])


_SETTING_COLUMNS = (
    Column('dataset', lambda row: row.dataset),
    Column('seeds', lambda row: ', '.join(str(run.seed) for run in row.runs)),
    Column('budget (batches)', lambda row: row.budget),
    Column('model', lambda row: row.widths))
_MINUTES = Column('minutes', lambda row: minutes_spread([run.wall_seconds for run in row.runs]))
# Tables 2 and 4: a line per method and setting.
ERROR_COLUMNS = (
    Column('method', lambda row: row.method),
    *_SETTING_COLUMNS,
    Column('test error % (paper rule)', lambda row: _paper_rule_cells(row)[0]),
    Column('evals averaged', lambda row: _paper_rule_cells(row)[1]),
    Column('final test error %', lambda row: percent_spread(
        [run.results[last_trained(run)].get('test_error') for run in row.runs])),
    Column('paper %', lambda row: _paper_cell(PAPER_ERROR.get((row.method, row.dataset)))),
    Column('classify batches to 95%', lambda row: _steps([batches_to(c) for c in row.curves])),
    Column('with pre-training', _with_pretraining),
    Column('lowest in-image mass', lambda row: _mass_of_seeds(row.runs)),
    _MINUTES)
# Table 3: a line per tested model and setting.
TESTER_COLUMNS = (
    Column('tested model', lambda row: row.method.removeprefix('tester_')),
    *_SETTING_COLUMNS,
    Column('tester accuracy %', lambda row: percent_spread(
        [1.0 - run.results['tester']['test_error'] for run in row.runs])),
    Column('paper %', lambda row: _paper_cell(
        PAPER_TESTER_ACCURACY.get((row.method, row.dataset)))),
    Column('lowest in-image mass', lambda row: _mass_of_seeds(row.runs)),
    _MINUTES)


def headline_of(run: PipelineRun, phase: str) -> str:
  """A phase's objective and test headline, e.g. 'heuristic distance 0.075'."""
  results = run.results[phase]
  headline = results.get('headline', 'error')
  value = results.get('headline_value', results.get(f'test_{headline}'))
  if not isinstance(value, (int, float)):
    text = '-'
  elif headline == 'error':
    text = f'{100 * value:.1f}%'
  else:
    text = format(value, HEADLINE_FORMAT.get(headline, '.4g'))
  return f"{run.configs[phase]['loss']['objective']} {headline} {text}"


def _smoke_error(run: PipelineRun) -> float | None:
  error = run.results[trained_phases(run)[-1]].get('test_error')
  return error if isinstance(error, (int, float)) else None


def _learned(run: PipelineRun) -> str:
  error = _smoke_error(run)
  return '-' if error is None else 'yes' if error <= LEARNED_ERROR else 'no'


# The smoke table: a line per run.
SMOKE_COLUMNS = (
    Column('variant', lambda run: f'`{variant_of(run)}`'),
    Column('phases', phases_of),
    Column('pre-training / teacher', lambda run: (
        headline_of(run, trained_phases(run)[0]) if len(trained_phases(run)) > 1 else '-')),
    Column('test error %', lambda run: (
        '-' if _smoke_error(run) is None else f'{100 * _smoke_error(run):.1f}')),
    Column('learned', _learned),
    Column('minutes', lambda run: f'{run.wall_seconds / 60:.1f}'))


def smoke_row(run: PipelineRun) -> list[str]:
  """One row of the smoke table (SMOKE_COLUMNS)."""
  return [column.cell(run) for column in SMOKE_COLUMNS]


def smoke_summary(smokes: Sequence[PipelineRun]) -> str:
  """What the smoke table shows, counted from its runs: how many learned, how many ran within
  SMOKE_MINUTES, the longest."""
  errors = [run.results[trained_phases(run)[-1]].get('test_error') for run in smokes]
  learned = sum(isinstance(e, (int, float)) and e <= LEARNED_ERROR for e in errors)
  quick = sum(run.wall_seconds <= 60 * SMOKE_MINUTES for run in smokes)
  longest = max(run.wall_seconds for run in smokes) / 60
  return ('The `_smoke` variants (64 units, T = 8, 2,000 test images; translated ones on a '
          '60x60 canvas), each run on one core of a 2-core CPU machine (*learned*: the last '
          f'trained phase\'s test error <= {100 * LEARNED_ERROR:.0f}%, chance 90%). '
          f'{learned} of {len(smokes)} learned; {quick} of {len(smokes)} ran within '
          f'{SMOKE_MINUTES:g} minutes (the longest {longest:.1f}).')


def plot_curves(groups: Mapping[tuple, Sequence[PipelineRun]], path: str) -> bool:
  """Test error against batches, pre-training batches included (the classification curve starts
  where pre-training ended), one panel per dataset, one line per group (mean over seeds).
  Returns False (and writes nothing) when no run has test evaluations."""
  by_dataset = collections.defaultdict(dict)
  for key, runs in groups.items():
    if key[0].startswith('tester_'):
      continue
    curves = []
    for run in runs:
      offset = pretraining_steps(run)
      curves.append({offset + step: value
                     for step, value in test_curve(run.records[last_trained(run)])})
    if any(curves):
      label = f'{key[0]} ({key[2]}; {len(runs)} seed{"s" if len(runs) > 1 else ""})'
      by_dataset[key[1]][label] = (curves, pretraining_steps(runs[0]))
  if not by_dataset:
    return False
  fig = Figure(figsize=(7 * len(by_dataset), 4.8))
  FigureCanvasAgg(fig)
  for ax, (dataset, lines) in zip(fig.subplots(1, len(by_dataset), squeeze=False)[0],
                                  sorted(by_dataset.items())):
    for label, (curves, offset) in lines.items():
      xs = sorted({x for c in curves for x in c})
      means = [100 * np.mean([c[x] for c in curves if x in c]) for x in xs]
      line, = ax.plot(xs, means, '.-', label=label)
      if offset:
        ax.axvline(offset, color=line.get_color(), ls=':', lw=1)
    ax.axhline(100 * (1 - TARGET_ACCURACY), color='gray', ls='--', lw=0.8)
    ax.set(xlabel='batches (pre-training included; dotted: classification starts)',
           ylabel='test error %', title=f'{dataset} MNIST', yscale='log')
    for set_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
      set_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return True


def reads_section(groups: Mapping[tuple, Sequence[PipelineRun]], folder: str,
                  stem: str) -> list[str]:
  """Markdown (and `<stem>_reads_per_step.png`) of where each row's reads went per step, for
  every phase that trained a read and logged it (mean over seeds); empty when none did."""
  rows, lines = [], {}
  count = 0
  for (method, dataset, budget, widths), runs in groups.items():
    phases = [p for p in runs[0].pipeline if any(p in read_phases(run) for run in runs)]
    for phase in phases:
      steps = mean_steps(runs, phase)
      count = max([count, *map(len, steps.values())])
      lines[f'{method} {dataset}, {phase} ({budget}; {widths})'] = steps
      for stat, label, scale, fmt in READ_STATS:
        if stat in STEP_TABLE_STATS and stat in steps:
          rows.append([method, dataset, budget, widths, phase, str(len(runs)), label,
                       *[format(scale * v, fmt) for v in steps[stat]]])
  if not rows:
    return []
  rows = [row + ['-'] * (7 + count - len(row)) for row in rows]
  header = ['method', 'dataset', 'budget (batches)', 'model', 'phase', 'seeds', 'per read step t',
            *map(str, range(1, count + 1))]
  text = ['\n## Where the reads went, per read step\n\n',
          'On the test images, the mean over seeds of: the *in-image mass* (per read, the mean '
          'over its n x n filters of the share of each filter\'s Gaussian mass on the image; '
          'Gregor\'s read renormalises each filter on the image, so a read with little mass there '
          'still sees the ink of the image\'s nearest part), the share of test images whose read '
          'has less than half its mass on the image (*mostly off the image*), and log gamma (the '
          'read\'s intensity). Every phase that trained a read and logged these; beside each read picture '
          'below, that run\'s sigma, stride and centre too.\n\n',
          markdown(header, rows)]
  name = f'{stem}_reads_per_step.png'
  if plot_read_steps(lines, os.path.join(folder, name)):
    text.append(f'\n![in-image mass and log gamma per read step]({name})\n')
  return text


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown file `out` and its figures beside it; returns the markdown.

  `notes`, a markdown file, is appended (the reading of the numbers, kept apart).
  """
  runs = [load_pipeline_run(workdir) for workdir in workdirs]
  smokes = sorted((run for run in runs if is_smoke(run)), key=lambda run: run.name)
  groups = group_runs([run for run in runs if not is_smoke(run)])
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  os.makedirs(folder, exist_ok=True)
  settings = [Setting(*key, runs) for key, runs in groups.items()]
  errors = [row for row in settings if not row.method.startswith('tester_')]
  testers = [row for row in settings if row.method.startswith('tester_')]
  text = [
      '# Pre-training attention mechanisms (Lindsey 2017)\n\n',
      f'{len(runs)} run{"s" if len(runs) > 1 else ""} of `experiments/pretrain_attention.py`, '
      'written by `python -m glimpse_jax.reports.pretrain_attention`. Values are the mean ± '
      'sample std over seeds. *Test error (paper rule)*: the classifier is evaluated on the whole '
      'test split every 1,000 batches and, as the paper does, the error is the mean of the ten '
      'evaluations after the best one (where accuracy stops improving); *evals averaged* says '
      'how many there were when the budget ended sooner ("-" when accuracy was still improving '
      'at the last evaluation). *Final test error*: the model at the end of the budget. *Budget*: '
      'batches of 100 per phase, ours, not the paper\'s unless stated. *Batches to 95%*: the '
      'first evaluation with test accuracy >= 95%, counted from the start of classification and '
      f'with pre-training (or the teacher) included; the paper\'s Figure 2 reports '
      f'{papers.PRETRAIN_ATTENTION_SPEED.guided:,} guided against '
      f'{papers.PRETRAIN_ATTENTION_SPEED.unguided:,} '
      'unguided on translated MNIST. *Lowest in-image mass*: of the reads the row classifies '
      'from (a tester: its tested model\'s), the lowest over read steps of the mean share of the '
      'read filters\' Gaussian mass that lies on the test image ("-": not logged by that run). '
      '*Minutes*: wall time of all phases on a shared 2-core CPU machine (one core per run).\n',
  ]
  tables = (('Table 2: guidance by pre-training', ERROR_COLUMNS,
             [row for row in errors if row.method in TABLE_2]),
            ('Table 3: the glimpse-efficiency tester', TESTER_COLUMNS, testers),
            ('Table 4: mimicking and bootstrapping', ERROR_COLUMNS,
             [row for row in errors if row.method not in TABLE_2]))
  for title, columns, rows in tables:
    if rows:
      text += [f'\n## {title}\n\n', markdown_table(columns, rows)]
  curves = f'{stem}_curves.png'
  if plot_curves(groups, os.path.join(folder, curves)):
    text.append(f'\n![test error against batches, pre-training included]({curves})\n')
  text += reads_section(groups, folder, stem)
  # One picture per (method, dataset), in table order: the run with the lowest final test error.
  best = {}
  for (method, dataset, *_), members in groups.items():
    if not method.startswith('tester_'):
      for run in members:
        lowest = best.get((method, dataset))
        if os.path.isfile(_reads_of(run)) and (
            lowest is None or _final_error(run) < _final_error(lowest)):
          best[method, dataset] = run
  for (method, dataset), run in best.items():
    name = f'{stem}_{method}_{dataset}_reads.png'
    shutil.copyfile(_reads_of(run), os.path.join(folder, name))
    text.append(f'\nRead windows of {method} on {dataset} MNIST test images ({variant_of(run)}, '
                f'seed {run.seed}, the lowest final test error of its method; numbered, from '
                f'dark (first read) to bright (last)):\n\n'
                f'![{method}, {dataset}, read windows]({name})\n')
    steps = read_steps(run.results[last_trained(run)])
    if steps:
      text += [f'\nIts reads of the test images per step (mean over the images):\n\n',
               steps_table(steps, [stat for stat, *_ in READ_STATS])]
  if smokes:
    text += ['\n## Smoke variants\n\n', smoke_summary(smokes), '\n\n',
             markdown_table(SMOKE_COLUMNS, smokes)]
  return write_page(text, out, notes)


def main(argv: Sequence[str] | None = None) -> None:
  parser = chapter_parser(
      'python -m glimpse_jax.reports.pretrain_attention',
      'Lindsey 2017 Tables 2-4 from pretrain_attention runs over seeds.',
      out='results/pretrain_attention.md',
      runs_help='pipeline workdirs (pipeline.json, phase folders)',
      notes_help='markdown appended as the reading of the numbers (default: <out stem>_notes.md '
                 'beside --out, when it exists)')
  args = parser.parse_args(argv)
  notes = args.notes or os.path.splitext(args.out)[0] + '_notes.md'
  if args.notes and not os.path.isfile(notes):
    parser.error(f'--notes={notes!r} is not a file')
  write_report(args.runs, args.out, notes if os.path.isfile(notes) else None)
  sys.stdout.write(f'wrote {args.out}\n')


if __name__ == '__main__':
  main()
