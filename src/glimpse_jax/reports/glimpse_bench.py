"""The cross-method benchmark's chapter: per task, every method's test error at T = 2/4/6/8.

Writes the page from one or more benchmark workdirs (`make bench-methods TASK=<task>`, one
workdir per task):

    .venv/bin/python -m glimpse_jax.reports.glimpse_bench runs/glimpse_bench-cluttered60 \
        runs/glimpse_bench-translated60 --out results/glimpse_bench.md

One table per task (the task named by its runs' dataset fields, `glimpse_bench.TASKS`): a line
per method and T with its seeds, the greedy test error and, where the method reports it, the
error of the sampled paths averaged (`error_mc`; 10 paths at the CPU and paper budgets), mean ±
sample std over seeds in percent; the input values one image's prediction reads (T glimpses of
the retina's scales, one scale of WS-RAM's plus its low-resolution view, T DRAW reads of n x n,
the whole canvas for a CNN); the wall minutes and updates of every phase of the run (DRAW's
pre-training included); the FLOPs of one greedy prediction on one image and the greedy accuracy
per GFLOP (`flops_per_prediction`); and `<stem>_<task>_error_by_glimpses.png`, test error
against T per method, the CNNs as horizontal lines; `<stem>_<task>_paths.png`, the greedy glimpse
paths of every glimpse method on the first 8 test canvases, one row per method, at the largest T
of seed 0 (`plot_paths`: each run loaded by `glimpse_jax.load_run` and run by
`glimpse_jax.predict`; the oracle's predict given the canvases' digit centers). Runs still
training (no results.json in their result phase) are left out and counted. The BOED design that
every ram_boed run of a task reads (`<workdir>/boed/<phase>`, `glimpse_bench.design_phases`) is
no run: its updates, designed canvases and wall minutes get a line of their own under the task's
table (`read_design`), outside the ram_boed rows' wall minutes.
"""

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import glimpse_jax
from glimpse_jax import data
from glimpse_jax import glimpse_bench as bench
from glimpse_jax import glimpse_tester
from glimpse_jax.nets import flops, flops_per_image, ram_flops_per_image
from glimpse_jax.plots.method_paths import MethodPaths, plot_method_paths
from glimpse_jax.plots.saving import save
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.runs import Run, is_number, load_run
from glimpse_jax.reports.tables import Column, markdown_table, mean_spread, minutes_spread


TITLE = 'One benchmark across the glimpse methods (this codebase; each paper\'s method)'


@dataclasses.dataclass(frozen=True)
class BenchRun:
  """One (method, T, seed) of a benchmark: its result phase's run and every phase's run."""

  task: str
  method: str
  glimpses: int | None
  seed: int
  result: Run
  phases: tuple[Run, ...]
  workdir: str = ''  # the result phase's folder (its config.json and checkpoints)
  tester: Run | None = None  # its glimpse tester (`<run>/tester`), once finished

  @property
  def updates(self) -> int:
    return sum(int(p.results.get('steps', 0)) for p in self.phases)

  @property
  def wall_seconds(self) -> float:
    return sum(float(p.results.get('wall_seconds', 0.0)) for p in self.phases)


@dataclasses.dataclass(frozen=True)
class Row:
  """A table line: one method at one T (None for a method without glimpses), over seeds."""

  method: str
  glimpses: int | None
  runs: tuple[BenchRun, ...]


def task_of(config: dict) -> str:
  """The task whose dataset fields a run's config holds; ValueError when none does."""
  dataset = config.get('dataset', {})
  for name, task in bench.TASKS.items():
    if all(dataset.get(k) == task.dataset[k] for k in ('name', 'source', 'canvas_size')):
      if task.dataset['name'] != 'cluttered' or dataset.get('num_clutter') == task.dataset.get(
          'num_clutter'):
        return name
  raise ValueError(f'no benchmark task has the dataset {dataset.get("name")!r} of '
                   f'{dataset.get("source")!r} at {dataset.get("canvas_size")!r} px')


def values_read(config: dict) -> int | None:
  """Input values one image's prediction reads, from a run's config (None: unknown model)."""
  experiment, model, dataset = config['experiment'], config['model'], config['dataset']
  channels = 1  # every benchmark task is grayscale
  if experiment == 'ws_ram':
    return model['num_glimpses'] * model['glimpse_size']**2 + model['low_res_size']**2
  if experiment == 'pretrain_attention':
    return model['glimpses'] * model['read_size']**2 * channels
  if experiment == 'variant_mnist' and model.get('name') != 'ram':
    return dataset['canvas_size']**2 * channels
  if 'num_glimpses' in model and 'num_scales' in model:
    return model['num_glimpses'] * model['num_scales'] * model['glimpse_size']**2 * channels
  return None


# How each experiment's FLOPs are counted: by a hand counter of its network, or traced from its
# `predict` (the matrix products and convolutions of its jaxpr, `nets.flops.multiply_adds`).
FLOP_COUNTS = {
    'ram': 'RAM and its relatives (ram.py) by hand from the layer widths '
           '(`nets.ram_flops_per_image`, the baseline, which only training uses, left out)',
    'near_optimal_glimpses': 'RAM with BOED supervision (near_optimal_glimpses.py) likewise '
                             '(its sequence design, a training cost, left out)',
    'variant_mnist': 'the CNNs traced over one forward pass (`nets.flops_per_image`)',
    'ws_ram': 'WS-RAM traced over its greedy `predict`',
    'pretrain_attention': 'DRAW traced over its greedy `predict` (its filterbank reads are '
                          'matrix products)',
}


def flops_per_prediction(config: dict) -> int | None:
  """FLOPs (2 per multiply-add of the matrix products and convolutions; elementwise work left
  out) of one greedy prediction on one image, from a run's config (None: no count for its
  experiment). RAM's and its relatives' by `nets.ram_flops_per_image` (the training-only
  baseline left out), the CNNs' by `nets.flops_per_image`, WS-RAM's and DRAW's traced from the
  experiment's own `predict`. A prediction averaged over M sampled paths costs M times this."""
  return _flops(json.dumps(config, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _flops(config_json: str) -> int | None:
  config = ml_collections.ConfigDict(json.loads(config_json))
  experiment = config.experiment
  if experiment not in FLOP_COUNTS:
    return None
  shape = tuple(data.image_shape(config.dataset))
  module = bench.experiment_module(experiment)
  if experiment == 'ram':
    return ram_flops_per_image(module.make_model(config), shape, config.model.num_glimpses)
  if experiment == 'near_optimal_glimpses':
    return ram_flops_per_image(module.ram_model(config), shape, config.model.num_glimpses)
  if experiment == 'variant_mnist':
    model = module.make_model(config)
    if config.model.name == 'ram':
      return ram_flops_per_image(model, shape, config.model.num_glimpses)
    return flops_per_image(model, shape)
  with config.unlocked():
    config.frozen = {}  # what the prediction computes needs no frozen parameters' values
  method = module.make_experiment(config)
  images = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  batch = {'image': images, 'label': jax.ShapeDtypeStruct((1,), jnp.int32),
           'center': jax.ShapeDtypeStruct((1, 2), jnp.float32)}
  params = jax.eval_shape(method.init, jax.random.key(0), batch)
  return 2 * flops.multiply_adds(lambda p, x: method.predict(p, x, jax.random.key(0)), params,
                                 images)


def accuracy_per_gflop(run: 'BenchRun') -> float | None:
  """Greedy test accuracy (%) per GFLOP of one greedy prediction (None when either is missing)."""
  error, cost = run.result.results.get('test_error'), flops_per_prediction(
      run.result.results['config'])
  if not is_number(error) or not cost:
    return None
  return 100 * (1 - float(error)) / (cost / 1e9)


def read_bench(workdir: str) -> tuple[list[BenchRun], list[str]]:
  """The finished runs of a benchmark workdir, and the names of the unfinished ones."""
  runs, unfinished = [], []
  for name in sorted(os.listdir(workdir)):
    match = bench.RUN_NAME.match(name)
    folder = os.path.join(workdir, name)
    if match is None or not os.path.isdir(folder) or match['method'] not in bench.METHODS:
      continue
    method = bench.METHODS[match['method']]
    if method.result_phase:
      phase_dirs = sorted(os.path.join(folder, p) for p in os.listdir(folder)
                          if os.path.isdir(os.path.join(folder, p))
                          and p not in bench.TESTER_PHASES)  # the tester's are not the run's
      result_dir = os.path.join(folder, method.result_phase)
    else:
      phase_dirs, result_dir = [folder], folder
    if not all(os.path.isfile(os.path.join(d, 'results.json')) for d in [result_dir, *phase_dirs]):
      unfinished.append(name)
      continue
    phases = tuple(load_run(d, prefix=f'{name}/' if method.result_phase else '')
                   for d in phase_dirs)
    result = load_run(result_dir, prefix=f'{name}/' if method.result_phase else '')
    glimpses = int(match['glimpses']) if match['glimpses'] else None
    tester_dir = os.path.join(folder, glimpse_tester.TESTER)
    tester = (load_run(tester_dir, prefix=f'{name}/')
              if os.path.isfile(os.path.join(tester_dir, 'results.json')) else None)
    runs.append(BenchRun(task_of(result.results['config']), match['method'], glimpses,
                         int(match['seed']), result, phases, result_dir, tester))
  return runs, unfinished


def has_runs(workdir: str) -> bool:
  """Whether a benchmark workdir holds a finished run (the book's test of a chapter folder)."""
  return os.path.isdir(workdir) and bool(read_bench(workdir)[0])


def summary(workdirs: Sequence[str]) -> tuple[int, list[int], float]:
  """The book index's (finished runs, their seeds, wall hours over every phase) of benchmark
  workdirs; the shared BOED design's hours are not a run's."""
  runs = [run for workdir in workdirs for run in read_bench(workdir)[0]]
  return (len(runs), sorted({run.seed for run in runs}),
          sum(run.wall_seconds for run in runs) / 3600)


@dataclasses.dataclass(frozen=True)
class Design:
  """A task's BOED design (`<workdir>/boed/`): its finished phases' results by phase name."""

  task: str
  phases: dict[str, dict]

  def line(self) -> str:
    """The chapter's line on the design: each phase's updates or designed canvases and wall
    minutes."""
    parts = []
    for name in bench.DESIGN_PHASES:
      results = self.phases.get(name)
      if results is None:
        parts.append(f'{name} not finished')
        continue
      minutes = float(results.get('wall_seconds', 0.0)) / 60
      if results.get('kind') == 'generate':
        glimpses = results['config']['model']['num_glimpses']
        parts.append(f'{name}: {int(results["examples"]):,} training canvases designed at '
                     f'T = {glimpses}, {minutes:,.1f} min')
      else:
        parts.append(f'{name}: {int(results.get("steps", 0)):,} updates, {minutes:,.1f} min')
    return ('BOED design shared by every ram_boed run (`boed/`; not in their wall minutes): '
            + '; '.join(parts) + '.\n')


def read_design(workdir: str) -> Design | None:
  """The BOED design of a benchmark workdir (None before its first phase has finished)."""
  phases = {}
  for name in bench.DESIGN_PHASES:
    path = os.path.join(workdir, bench.DESIGN, name, 'results.json')
    if os.path.isfile(path):
      with open(path) as f:
        phases[name] = json.load(f)
  if not phases:
    return None
  return Design(task_of(next(iter(phases.values()))['config']), phases)


def rows_by_task(runs: Sequence[BenchRun]) -> dict[str, list[Row]]:
  """Each task's lines in the registry's method order, then T; ValueError for a seed twice."""
  groups: dict[tuple[str, str, int | None], list[BenchRun]] = {}
  for run in runs:
    groups.setdefault((run.task, run.method, run.glimpses), []).append(run)
  order = list(bench.METHODS)
  tables: dict[str, list[Row]] = {}
  for (task, method, glimpses), members in sorted(
      groups.items(), key=lambda kv: (list(bench.TASKS).index(kv[0][0]), order.index(kv[0][1]),
                                      kv[0][2] or 0)):
    seeds = [m.seed for m in members]
    if len(set(seeds)) < len(seeds):
      raise ValueError(f'{task}: method {method!r} at T={glimpses} has seed '
                       f'{max(seeds, key=seeds.count)} twice')
    members.sort(key=lambda m: m.seed)
    tables.setdefault(task, []).append(Row(method, glimpses, tuple(members)))
  return tables


def _values(row: Row, name: str) -> list[Any]:
  return [r.result.results.get(f'test_{name}') for r in row.runs]


def _same(values: Sequence[Any]) -> str:
  found = sorted({v for v in values if v is not None})
  return ' / '.join(f'{v:,}' for v in found) if found else '-'


def _mflops(row: Row) -> str:
  found = sorted({flops_per_prediction(r.result.results['config']) for r in row.runs} - {None})
  return ' / '.join(f'{f / 1e6:,.2f}' for f in found) if found else '-'


COLUMNS = (
    Column('method', lambda row: bench.METHODS[row.method].label),
    Column('T', lambda row: '-' if row.glimpses is None else str(row.glimpses)),
    Column('seeds', lambda row: ', '.join(str(r.seed) for r in row.runs)),
    Column('test error (%), greedy', lambda row: mean_spread(_values(row, 'error'), scale=100)),
    Column('test error (%), sampled paths averaged',
           lambda row: mean_spread(_values(row, 'error_mc'), scale=100)),
    Column('input values per image',
           lambda row: _same([values_read(r.result.results['config']) for r in row.runs])),
    Column('wall minutes', lambda row: minutes_spread([r.wall_seconds for r in row.runs])),
    Column('updates', lambda row: _same([r.updates for r in row.runs])),
    Column('MFLOPs per prediction', _mflops),
    Column('accuracy (%) per GFLOP',
           lambda row: mean_spread([accuracy_per_gflop(r) for r in row.runs], digits=0)),
    # The glimpse tester (glimpse_bench.py): one network for every method, trained and tested at
    # the run's greedy locations; '-' until a run's tester has finished.
    Column('tester error (%)', lambda row: mean_spread(
        [r.tester.results.get('test_error') if r.tester else None for r in row.runs], scale=100)),
)


def plot_error_by_glimpses(rows: Sequence[Row], task: str, path: str | None) -> Figure:
  """Mean test error (%) against T per glimpse method, seeds' spread as error bars; the methods
  without glimpses as horizontal lines."""
  fig = Figure(figsize=(6.5, 4.5))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  by_method: dict[str, list[Row]] = {}
  for row in rows:
    by_method.setdefault(row.method, []).append(row)
  for method, members in by_method.items():
    label = bench.METHODS[method].label
    errors = [[100 * float(v) for v in _values(r, 'error') if is_number(v)] for r in members]
    if members[0].glimpses is None:
      if errors[0]:
        ax.axhline(np.mean(errors[0]), linestyle='--', linewidth=1, label=label,
                   color=f'C{list(bench.METHODS).index(method)}')
      continue
    ts = [r.glimpses for r in members if r.glimpses is not None]
    ax.errorbar(ts, [np.mean(e) for e in errors],
                yerr=[np.std(e, ddof=1) if len(e) > 1 else 0.0 for e in errors], marker='o',
                capsize=3, label=label, color=f'C{list(bench.METHODS).index(method)}')
  ax.set_xticks(bench.GLIMPSES)
  ax.set_xlabel('glimpses T')
  ax.set_ylabel('test error (%), greedy')
  ax.set_title(task)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return save(fig, path)


PATH_IMAGES = 8  # the first test canvases of the task, the same for every method
PATH_SEED = 0


def path_runs(runs: Sequence[BenchRun], task: str) -> tuple[int | None, list[BenchRun]]:
  """The T of the paths picture (the largest of the task's finished glimpse runs of seed
  PATH_SEED) and those runs at that T in the registry's order, the ones with a checkpoint."""
  chosen = [r for r in runs if r.task == task and r.glimpses is not None and r.seed == PATH_SEED]
  if not chosen:
    return None, []
  glimpses = max(r.glimpses for r in chosen)
  order = list(bench.METHODS)
  found = sorted((r for r in chosen if r.glimpses == glimpses), key=lambda r: order.index(
      r.method))
  return glimpses, [r for r in found if os.path.isdir(os.path.join(r.workdir, 'checkpoints'))]


def method_paths(run: BenchRun, images: np.ndarray, centers: np.ndarray) -> MethodPaths:
  """One method's greedy paths on `images` [N, H, W, C] in [0, 1] through
  `glimpse_jax.load_run` and `glimpse_jax.predict`; the oracle (`model.fixed_locations`) is
  given the digits' `centers` [N, 2], which images alone do not hold."""
  loaded = glimpse_jax.load_run(run.workdir)
  model = loaded.config.model
  if model.get('fixed_locations') is not None:
    out = loaded.experiment.predict(loaded.params, jnp.asarray(images), jax.random.key(0),
                                    centers=jnp.asarray(centers))
    out = {name: np.asarray(value) for name, value in out.items()}
  else:
    out = glimpse_jax.predict(loaded, images)
  predictions = np.argmax(out['probabilities'], -1) if 'probabilities' in out else None
  label = bench.METHODS[run.method].label
  if 'reads' in out:
    return MethodPaths(label, out['locations'], predictions, reads=out['reads'],
                       read_size=model.read_size)
  return MethodPaths(label, out['locations'], predictions, glimpse_size=model.glimpse_size,
                     num_scales=model.num_scales, scale_factor=model.scale_factor,
                     scales=out.get('scales'))


def plot_paths(runs: Sequence[BenchRun], task: str, path: str | None) -> int | None:
  """Draws the greedy paths of every glimpse method at the task's chosen T (`path_runs`) on the
  first PATH_IMAGES test canvases, one row per method; returns that T (None: no picture). Runs
  committed without their checkpoints (the results book's) keep the picture already at `path`,
  drawn where the checkpoints were."""
  glimpses, chosen = path_runs(runs, task)
  if not chosen:
    return glimpses if glimpses is not None and path and os.path.isfile(path) else None
  dataset = ml_collections.ConfigDict(chosen[0].result.results['config']['dataset'])
  test = data.load_split(dataset, 'test')
  images = np.asarray(test['image'][:PATH_IMAGES], np.float32) / 255.0  # [N, H, W, C]
  rows = [method_paths(r, images, np.asarray(test['center'][:PATH_IMAGES])) for r in chosen]
  plot_method_paths(images, rows, labels=np.asarray(test['label'][:PATH_IMAGES]), path=path)
  return glimpses


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown file `out` and its figures beside it; returns the markdown."""
  runs, unfinished, designs = [], [], {}
  for workdir in workdirs:
    found, left = read_bench(workdir)
    runs += found
    unfinished += [os.path.join(workdir, name) for name in left]
    design = read_design(workdir)
    if design is not None:
      designs[design.task] = design
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  os.makedirs(folder, exist_ok=True)
  parts = ['# One benchmark across the glimpse methods\n\n',
           'Every method on the same canvases, retina and budget (`glimpse_jax/glimpse_bench.py`'
           ' says which module and fields make each method, and the budgets). Test error in '
           'percent, mean ± sample std over seeds; wall minutes and updates over every phase '
           'of a run. FLOPs: 2 per multiply-add of the matrix products and convolutions of one '
           'greedy prediction on one image (elementwise work left out; averaging M sampled '
           'paths costs M times as much): ' + '; '.join(FLOP_COUNTS.values())
           + '. A method whose experiment has no count shows -.\n']
  for task, rows in rows_by_task(runs).items():
    figure = f'{stem}_{task}_error_by_glimpses.png'
    plot_error_by_glimpses(rows, task, os.path.join(folder, figure))
    retina = bench.TASKS[task].retina
    parts += [f'\n## {task}\n\n',
              f'Retina: {retina.num_scales} scales of {retina.glimpse_size}x'
              f'{retina.glimpse_size} ({retina.values} values a glimpse); DRAW reads '
              f'{bench.DRAW_READ_SIZE}x{bench.DRAW_READ_SIZE}.\n\n',
              markdown_table(COLUMNS, rows), f'\n![error against T]({figure})\n']
    if task in designs:
      parts.append('\n' + designs[task].line())
    paths = f'{stem}_{task}_paths.png'
    glimpses = plot_paths(runs, task, os.path.join(folder, paths))
    if glimpses is not None:
      parts.append(f'\nGreedy glimpse paths at T = {glimpses}, seed {PATH_SEED}, on the first '
                   f'{PATH_IMAGES} test canvases: one row per method (boxes: the retina\'s '
                   'scales, the one scale WS-RAM chose, DRAW\'s read window; numbered in '
                   f'order).\n\n![greedy glimpse paths]({paths})\n')
  if unfinished:
    parts.append(f'\n{len(unfinished)} runs not finished: '
                 f'{", ".join(os.path.basename(u) for u in unfinished)}.\n')
  text = ''.join(parts)
  if notes is not None:
    with open(notes) as f:
      text += '\n' + f.read()
  with open(out, 'w') as f:
    f.write(text)
  return text


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.glimpse_bench',
              'The cross-method benchmark: test error against glimpses per task.', argv=argv,
              runs_help='benchmark workdirs (make bench-methods TASK=<task>)')


if __name__ == '__main__':
  main()
