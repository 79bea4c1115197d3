"""RAM against the CNN baselines on variant MNIST (experiments/variant_mnist.py) over seeds:
`python -m glimpse_jax.reports.variant_mnist RUNS... --out results/variant_mnist.md`.

Reads finished runs' results.json, metrics.jsonl and cost.json (FLOPs and input values per image,
written by the experiment's plots), groups them by method, named from each run's config (e.g.
`RAM, cluttered, 4 glimpses of 12x12 x 3 scales, Adam 3e-4`, the paper's row names) and by the
paper row the config records (`paper.row`, `paper.accuracy`, `paper.table`), and writes both of
the paper's tables with the paper's accuracy beside the mean ± sample std over seeds, the
parameter count, FLOPs per image and test accuracy per GFLOP, plus, beside the markdown file,
`<stem>_validation.png` (validation accuracy per epoch: the mean over seeds, a band from the lowest
to the highest seed) and the first seed's pictures of each method (`<stem>_<method>_glimpses.png`,
`<stem>_<method>_attention.png`). For the runs that report them (RAM's), where the greedy
glimpses look on the test set, per glimpse (`overview.diagnostics_section`: the share of location
means at the edge, on the digit and on ink, a table per run and `<stem>_per_glimpse.png`).

When the runs include cluttered CNNs that differ in one setting only (placement, layer norm,
dropout, head: the experiment's `ABLATIONS`), a section "What closes the cluttered CNN gap" gives
the change of test accuracy each such step makes.
"""

import collections
import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax.data.config import index_range
from glimpse_jax.nets.cnn import cnn_name
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.overview import diagnostics_section
from glimpse_jax.reports.runs import (Run, check_experiment, load_run, load_runs_by_name,
                                      sort_by_seed)
from glimpse_jax.reports.tables import (Column, markdown_table, mean_spread, minutes_spread,
                                        percent_spread, write_page)

EXPERIMENT = 'variant_mnist'
COST_FILE = 'cost.json'
# picture in a workdir: its kind in the report's file names and its caption
PICTURES = {'glimpse_sequence.png': ('glimpses', 'greedy glimpses in order (first seed)'),
            'attention_maps.png': ('attention', 'attention each block receives (first seed)')}
_MODELS = ('ram', 'simple_cnn', 'attention_cnn')
_TABLES = {1: 'Table 1: RAM', 2: 'Table 2: CNN baselines'}
_OPTIMIZERS = {'adam': 'Adam', 'sgd': 'SGD', 'momentum': 'momentum'}
_PLACEMENTS = {'slope': 'wedge', 'sonderby': 'Sonderby', 'uniform': 'uniform'}
# The cluttered CNN settings the gap section varies, each with its values from our earlier
# setup's to the paper rows' (see `cnn_settings`).
_SETTINGS = ('placement', 'dropout', 'head', 'layer norm')


def _rate(value: float) -> str:
  mantissa, exponent = f'{value:e}'.split('e')
  return f'{float(mantissa):g}e{int(exponent)}'


def dataset_name(dataset: Mapping[str, Any]) -> str:
  """'cluttered' (the paper's 40x40 canvases, placed as Sonderby's script places one digit),
  'cluttered, wedge placement' (our earlier reading: `cluttered_slope`'s own placement, and runs
  that predate the field), either with ', fresh canvases' when training canvases are drawn on the
  fly, 'fashion' (plain Fashion-MNIST), else the fields."""
  name, source = dataset.get('name', 'mnist'), dataset.get('source', 'mnist')
  if name == 'cluttered_slope' and source == 'mnist':
    placement = dataset.get('placement') or 'slope'
    base = ('cluttered' if placement == 'sonderby'
            else f'cluttered, {_PLACEMENTS.get(placement, placement)} placement')
    # The paper's fixed training canvases, or canvases drawn fresh for every batch.
    return f'{base}, fresh canvases' if dataset.get('train_on_the_fly') else base
  if name == 'mnist' and source == 'fashion_mnist':
    return 'fashion'
  return f'{name} {source}'


def _optimizer(config: Mapping[str, Any]) -> str:
  """'Adam 3e-4', 'SGD 1e-2' or 'SGD 1e-2, momentum 0.5', with ', batch B' when B is not 128."""
  opt = config['optimizer']
  name = 'SGD' if opt['name'] == 'momentum' else _OPTIMIZERS.get(opt['name'], opt['name'])
  text = f"{name} {_rate(opt['learning_rate'])}"
  if opt['name'] == 'momentum':
    text += f", momentum {opt['momentum']:g}"
  if config.get('batch_size', 128) != 128:
    text += f", batch {config['batch_size']}"
  return text


def method_name(config: Mapping[str, Any]) -> str:
  """The run's method from its config, in the form of the paper's row names (module doc)."""
  model, opt = config['model'], config['optimizer']
  dataset = dataset_name(config['dataset'])
  optimizer = _optimizer(config)
  if model['name'] == 'ram':
    scales = model['num_scales']
    size = model['glimpse_size']
    return (f"RAM, {dataset}, {model['num_glimpses']} glimpses of {size}x{size} x {scales} "
            f"scale{'s' if scales > 1 else ''}, {optimizer}"
            f"{', standardised' if model.get('standardise') else ''}")
  name = cnn_name(model, dataset)
  default = (opt['name'], opt['learning_rate'], config.get('batch_size', 128)) == ('adam', 1e-3, 128)
  return name if default else f'{name}, {optimizer}'


def _paper(run: Run) -> tuple[str, float | None]:
  """The paper's row and accuracy the run's config records ('', None for none)."""
  paper = run.results['config'].get('paper') or {}
  row = paper.get('row') or ''
  return row, paper.get('accuracy') if row else None


def table_of(run: Run) -> int:
  """The paper's table the run belongs to: its recorded one, else 1 for RAM and 2 for a CNN."""
  config = run.results['config']
  recorded = (config.get('paper') or {}).get('table') if _paper(run)[0] else None
  return recorded or (1 if config['model']['name'] == 'ram' else 2)


def _sort_key(run: Run) -> tuple:
  config = run.results['config']
  model, opt = config['model'], config['optimizer']
  return (table_of(run), dataset_name(config['dataset']),
          _MODELS.index(model['name']) if model['name'] in _MODELS else len(_MODELS),
          model.get('num_glimpses', 0), -model.get('glimpse_size', 0), model.get('num_scales', 0),
          opt['name'] != 'adam', -opt['learning_rate'])


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
  """(method, paper row) -> its runs by seed; raises ValueError for another experiment's run or a
  seed that appears twice in one group."""
  groups, keys = collections.defaultdict(list), {}
  for run in runs:
    check_experiment(run, EXPERIMENT)
    config = run.results['config']
    key = (method_name(config), _paper(run)[0])
    groups[key].append(run)
    keys[key] = _sort_key(run)
  sort_by_seed(groups, method=lambda key: key[0])
  return {key: groups[key] for key in sorted(groups, key=lambda k: (keys[k], k))}


def read_cost(workdir: str) -> dict[str, Any]:
  """The run's cost.json; raises ValueError naming the workdir when it is missing."""
  path = os.path.join(workdir, COST_FILE)
  if not os.path.isfile(path):
    raise ValueError(f'{workdir!r} holds no {COST_FILE} (written after training by the '
                     'experiment\'s plots); rerun its `make experiment` command to finish it')
  with open(path) as f:
    return json.load(f)


def _headline(run: Run) -> str:
  return run.results.get('headline') or run.results['config'].get('headline', 'error')


def accuracy_at_best_validation(run: Run) -> float | None:
  """Test accuracy at the evaluation of best validation accuracy (the headline), or None."""
  headline = _headline(run)
  evals = [r for r in run.records if r.get('kind') == 'eval'
           and isinstance(r.get(headline), (int, float))]
  validation = [r for r in evals if r.get('split') == 'validation']
  if not validation:
    return None
  best = min(validation, key=lambda r: r[headline])  # the first of equal values
  test = [r for r in evals if r.get('split') == 'test' and r['step'] == best['step']]
  return 1.0 - test[0][headline] if test else None


def epochs(run: Run, steps: int) -> float:
  """Passes over the training examples (the fixed train split less its validation tail) in
  `steps` updates."""
  config = run.results['config']
  start, stop = index_range(ml_collections.ConfigDict(config['dataset']), 'train')
  return steps * config['batch_size'] / (stop - start)


def validation_by_epoch(run: Run) -> dict[float, float]:
  """Epoch -> validation accuracy (the headline) of the run's evaluations."""
  headline = _headline(run)
  return {epochs(run, r['step']): 1.0 - r[headline] for r in run.records
          if r.get('kind') == 'eval' and r.get('split') == 'validation'
          and isinstance(r.get(headline), (int, float))}


def _single(values: Sequence[Any], what: str, method: str) -> Any:
  distinct = sorted(set(values), key=str)
  if len(distinct) > 1:
    raise ValueError(f'method {method!r} has runs with different {what}: {distinct}')
  return distinct[0]


@dataclasses.dataclass(frozen=True)
class MethodSummary:
  """One method's runs over seeds and what its table row shows of them."""

  name: str
  runs: Sequence[Run]
  accuracy: list[float]  # per seed, the headline (Monte-Carlo for RAM)
  greedy: list[float]
  flops: float  # per pass
  passes: int  # per prediction
  inputs: int  # input values per pass
  params: Any
  paper: float | None  # the paper's accuracy


def _summary(method: str, runs: Sequence[Run],
             costs: Mapping[str, Mapping[str, Any]]) -> MethodSummary:
  cost = [costs[run.name] for run in runs]
  return MethodSummary(
      name=method, runs=runs,
      accuracy=[1.0 - run.results[f'test_{_headline(run)}'] for run in runs],
      greedy=[1.0 - run.results['test_error'] for run in runs],
      flops=_single([c['flops_per_pass'] for c in cost], 'FLOPs per pass', method),
      passes=_single([c['passes_per_prediction'] for c in cost], 'passes per prediction', method),
      inputs=_single([c['inputs_per_pass'] for c in cost], 'inputs per pass', method),
      params=_single([run.results.get('num_params') for run in runs], 'parameter counts', method),
      paper=_paper(runs[0])[1])


COLUMNS = (
    Column('method', lambda m: m.name),
    Column('seeds', lambda m: ', '.join(str(run.results['config']['seed']) for run in m.runs)),
    Column('test accuracy %', lambda m: percent_spread(m.accuracy)),
    Column('paper %', lambda m: '-' if m.paper is None else f'{100 * m.paper:.2f}'),
    Column('greedy %', lambda m: percent_spread(m.greedy)),
    Column('test at best val. %',
           lambda m: percent_spread([accuracy_at_best_validation(run) for run in m.runs])),
    Column('epochs',
           lambda m: mean_spread([epochs(run, run.results['steps']) for run in m.runs], 1)),
    Column('stopped early', lambda m: (
        f"{sum(bool(run.results.get('stopped_early')) for run in m.runs)}/{len(m.runs)}")),
    Column('params', lambda m: f'{m.params:,}' if isinstance(m.params, int) else '-'),
    Column('MFLOP / pass', lambda m: f'{m.flops / 1e6:.2f}'),
    Column('passes', lambda m: str(m.passes)),
    Column('accuracy / GFLOP',
           lambda m: mean_spread([a / (m.passes * m.flops / 1e9) for a in m.accuracy], 1)),
    Column('greedy / GFLOP', lambda m: mean_spread([a / (m.flops / 1e9) for a in m.greedy], 1)),
    Column('input values', lambda m: f'{m.inputs:,}'),
    Column('minutes',
           lambda m: minutes_spread([run.results.get('wall_seconds') for run in m.runs])),
)
HEADER = [column.header for column in COLUMNS]


def summaries(groups: Mapping[tuple[str, str], Sequence[Run]],
              costs: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], MethodSummary]:
  """(method, paper row) -> its summary, a row under COLUMNS; raises ValueError for a method whose
  runs differ in cost or parameter count."""
  return {key: _summary(key[0], runs, costs) for key, runs in groups.items()}


def cnn_settings(config: Mapping[str, Any]) -> tuple[dict[str, Any], tuple] | None:
  """(the settings the gap section varies, the rest that must match) of a CNN on the fixed
  cluttered canvases; None for any other run. Settings: placement ('wedge' < 'Sonderby'), dropout
  (its rate), head ('flatten' < 'weighted sum', with the hidden width), layer norm (False < True)."""
  model, dataset = config['model'], config['dataset']
  if (model['name'] == 'ram' or dataset.get('name') != 'cluttered_slope'
      or dataset.get('train_on_the_fly')):
    return None
  placement = dataset.get('placement') or 'slope'
  head = model.get('head', 'flatten')
  settings = {'placement': (placement == 'sonderby', _PLACEMENTS.get(placement, placement)),
              'dropout': (model.get('dropout', 0.0), f"{model.get('dropout', 0.0):g}"),
              'head': (head == 'weighted_sum',
                       f"{head.replace('_', ' ')} of {model['hidden']}"),
              'layer norm': (bool(model.get('layer_norm')),
                             'yes' if model.get('layer_norm') else 'no')}
  rest = (model['name'], config['optimizer']['name'], config['optimizer']['learning_rate'],
          config.get('batch_size'))
  return settings, rest


@dataclasses.dataclass(frozen=True)
class GapStep:
  """Two cluttered CNN methods that differ in one setting: its values and their accuracies."""

  model: str  # 'simple CNN' or 'self-attention CNN'
  setting: str  # one of _SETTINGS
  before: str
  after: str
  accuracy_before: list[float]
  accuracy_after: list[float]


GAP_COLUMNS = (
    Column('model', lambda step: step.model),
    Column('change', lambda step: step.setting),
    Column('from', lambda step: step.before),
    Column('to', lambda step: step.after),
    Column('from: test accuracy %', lambda step: percent_spread(step.accuracy_before)),
    Column('to: test accuracy %', lambda step: percent_spread(step.accuracy_after)),
    Column('change (points)', lambda step: (
        f'{100 * (np.mean(step.accuracy_after) - np.mean(step.accuracy_before)):+.2f}')),
)
GAP_HEADER = [column.header for column in GAP_COLUMNS]


def gap_steps(groups: Mapping[tuple[str, str], Sequence[Run]]) -> list[GapStep]:
  """One step per pair of cluttered CNN methods that differ in exactly one of `_SETTINGS`: the
  test accuracy (over seeds) before and after."""
  found = []
  for key, runs in groups.items():
    described = cnn_settings(runs[0].results['config'])
    if described is not None:
      accuracy = [1.0 - run.results[f'test_{_headline(run)}'] for run in runs]
      found.append((key, *described, accuracy))
  steps = []
  for (_, a, rest_a, acc_a), (_, b, rest_b, acc_b) in ((x, y) for x in found for y in found):
    changed = [name for name in _SETTINGS if a[name] != b[name]]
    if rest_a != rest_b or len(changed) != 1 or not a[changed[0]][0] < b[changed[0]][0]:
      continue
    name = changed[0]
    kind = 'simple CNN' if rest_a[0] == 'simple_cnn' else 'self-attention CNN'
    steps.append((_SETTINGS.index(name), kind,
                  GapStep(kind, name, a[name][1], b[name][1], acc_a, acc_b)))
  return [step for *_, step in sorted(steps, key=lambda r: (r[1], r[0], _gap_key(r[2])))]


def _gap_key(step: GapStep) -> list[str]:
  """The order of two steps of one model and setting: their cells, as the table shows them."""
  return [column.cell(step) for column in GAP_COLUMNS]


def plot_validation(groups: Mapping[tuple[str, str], Sequence[Run]], path: str) -> None:
  """Validation accuracy against epochs, one panel per dataset, one line per method (mean over
  seeds, band from the lowest to the highest seed)."""
  by_dataset = collections.defaultdict(dict)
  for key, runs in groups.items():
    curves = [c for c in (validation_by_epoch(run) for run in runs) if c]
    if curves:
      by_dataset[dataset_name(runs[0].results['config']['dataset'])][key[0]] = curves
  if not by_dataset:
    raise ValueError('no run has validation evaluations (metrics.jsonl eval records) to plot')
  fig = Figure(figsize=(7 * len(by_dataset), 4.8))
  FigureCanvasAgg(fig)
  for ax, (dataset, methods) in zip(fig.subplots(1, len(by_dataset), squeeze=False)[0],
                                    sorted(by_dataset.items())):
    for method, curves in methods.items():
      xs = sorted({x for c in curves for x in c})
      values = [[c[x] for c in curves if x in c] for x in xs]
      line, = ax.plot(xs, [100 * np.mean(v) for v in values], '.-',
                      label=f'{method} ({len(curves)})')
      ax.fill_between(xs, [100 * min(v) for v in values], [100 * max(v) for v in values],
                      color=line.get_color(), alpha=0.15)
    ax.set(xlabel='epoch', ylabel='validation accuracy %', title=dataset)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def _slug(method: str) -> str:
  return re.sub(r'[^a-z0-9]+', '_', method.lower()).strip('_')


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown file `out` and its figures beside it; returns the markdown.

  `notes`, a markdown file, is appended: the reading of the numbers, kept apart so that
  regenerating the tables never loses it.
  """
  runs, by_name = load_runs_by_name(workdirs)
  groups = group_runs(runs)
  costs = {run.name: read_cost(by_name[run.name]) for run in runs}
  rows = summaries(groups, costs)
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  os.makedirs(folder, exist_ok=True)
  plot_validation(groups, os.path.join(folder, f'{stem}_validation.png'))
  text = [
      '# Attention on variant MNIST datasets (Wu, Xu & Lee)\n\n',
      f'{len(runs)} run{"s" if len(runs) > 1 else ""} of `experiments/variant_mnist.py`, written '
      'by `python -m glimpse_jax.reports.variant_mnist`. Values are the mean ± sample std over '
      'seeds. *Test accuracy* is the final model\'s on the whole test split: for RAM the '
      'class log-probabilities averaged over `passes` sampled glimpse paths (as the paper '
      'evaluates), *greedy* one pass along the mean locations (the same as test accuracy for a '
      'CNN). *Test at best val.* is the test accuracy at the evaluation of best validation '
      'accuracy (on the first `eval_examples_during_training` test images until the last '
      'evaluation); *stopped early* counts the seeds that early stopping ended before the '
      'budget. FLOPs are 2 per multiply-add of the matrix products and convolutions of one pass '
      'on one image (elementwise work left out); *accuracy / GFLOP* divides test accuracy by the '
      'GFLOPs of one prediction (`passes` passes), *greedy / GFLOP* greedy accuracy by one '
      'pass. *Input values*: the values one pass feeds the network (a glimpse: scales x '
      'size^2, the coarser scales area-averaged from patches up to (size x factor^(scales-1))^2 '
      'pixels; a CNN: the whole image). *Minutes*: wall time of the last call that trained the run.\n',
  ]
  for table, title in _TABLES.items():
    members = [row for key, row in rows.items() if table_of(groups[key][0]) == table]
    if members:
      text += [f'\n## {title}\n\n', markdown_table(COLUMNS, members)]
  steps = gap_steps(groups)
  if steps:
    text += ['\n## What closes the cluttered CNN gap\n\n',
             'Pairs of the cluttered CNN methods above that differ in one setting only: '
             '*placement* (the wedge of our earlier reading, or Sonderby\'s placement of the '
             'paper\'s dataset), *dropout* on the hidden ReLUs, the self-attention CNN\'s '
             '*head* (flattened tokens, or their weighted sum) and *layer norm* (with dropout, '
             'our reading of the paper\'s normalisation layer). *Change* is the difference of '
             'the mean test accuracies.\n\n', markdown_table(GAP_COLUMNS, steps)]
  text += diagnostics_section(runs, folder, stem)  # RAM's per glimpse: saturated means, ink
  text.append('\n![validation accuracy per epoch](' + f'{stem}_validation.png)\n')
  for key, runs in groups.items():
    for picture, (kind, caption) in PICTURES.items():
      source = os.path.join(by_name[runs[0].name], picture)
      if os.path.isfile(source):
        name = f'{stem}_{_slug(key[0])}_{kind}.png'
        shutil.copyfile(source, os.path.join(folder, name))
        text.append(f'\n{key[0]}: {caption}\n\n![{key[0]}, {kind}]({name})\n')
  return write_page(text, out, notes)


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.variant_mnist',
              'Markdown tables and figures of variant_mnist runs over seeds.',
              out='results/variant_mnist.md',
              runs_help='workdirs holding results.json, metrics.jsonl and cost.json',
              argv=argv)


if __name__ == '__main__':
  main()
