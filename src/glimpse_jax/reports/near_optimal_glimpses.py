"""Near-optimal glimpse sequences (experiments/near_optimal_glimpses.py) beside Harvey et al.:
`python -m glimpse_jax.reports.near_optimal_glimpses RUNS... --out results/near_optimal_glimpses.md`.

Reads finished workdirs: the `sequences` pipeline (posterior, completion, sequences phases) and
RAM runs, each named from its config: `supervised` (it joined stored sequences), `unsupervised`,
`stopping` (an information-gain head) or `act` (a halting unit; the ponder weight appended). Writes:
- sequence generation: examples stored, seconds per image, the posterior's error after T random
  glimpses against its error after the designed sequences, and the EPE maps of a few stored
  canvases (`<stem>_epe_maps.png`, from the store or, once the store is gone, from the
  `epe_examples.json` exported beside it);
- partial supervision over seeds (mean ± sample std), one row per arm (unsupervised, supervised
  and its variants of weight, reduction and targets): evaluations until validation error is
  within `MARGIN` of the run's best, and final test error of the greedy path and of single
  sampled paths (the paper's evaluation), with the paper's claims beside them;
- per-step attention frequency of the first seed of each method (`<stem>_attention.png`);
- adaptive stopping: test error against the mean number of glimpses for the thresholds, fixed
  numbers of glimpses and ACT (`<stem>_stopping.png`), and the design-based rule's points (the
  posterior on the pipeline's `test_sequences`, stopped by the expected gains; exported to
  `design_stopping.json` beside that store).
"""

import collections
import json
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax import data, papers
from glimpse_jax.experimental_design import design_stopping
from glimpse_jax.plots.design_maps import plot_epe_maps
from glimpse_jax.plots.stopping_curves import plot_stopping_curves
from glimpse_jax.reports.cli import chapter_parser
from glimpse_jax.reports.runs import Run, load_run
from glimpse_jax.reports.tables import markdown, mean_spread, percent_spread, write_page

EXPERIMENT = 'near_optimal_glimpses'
MARGIN = 0.005  # "near its best": validation error within half a point of the run's lowest
LEVELS = (0.4, 0.3, 0.25)  # validation errors whose first crossing is counted for every run
EXAMPLES_FILE, ATTENTION_FILE = 'epe_examples.json', 'attention_frequency.json'
DESIGN_STOPPING_FILE = 'design_stopping.json'
# Expected-gain thresholds (nats) of the design-based stopping rule: those of the `stopping` runs.
DESIGN_THRESHOLDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
# The paper's claims on CelebA-HQ: almost 7x fewer iterations, +0.4 points of accuracy.
PAPER = papers.NEAR_OPTIMAL_GLIMPSES


# ---------------------------------------------------------------------------------------------
# The sequences phase.
# ---------------------------------------------------------------------------------------------
def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def export_examples(sequences_dir: str, count: int = 4) -> dict[str, Any]:
  """The first `count` stored canvases with their EPE maps and glimpses, written to (and read
  back from, once the store is gone) `<sequences_dir>/epe_examples.json`."""
  path = os.path.join(sequences_dir, EXAMPLES_FILE)
  if os.path.isdir(os.path.join(sequences_dir, 'store')):
    store = data.ExampleStore.open(os.path.join(sequences_dir, 'store'))
    config = _read_json(os.path.join(sequences_dir, 'config.json'))
    indices = store.indices[:count]
    batch = next(data.index_batches(ml_collections.ConfigDict(config['dataset']), 'train',
                                    indices, len(indices)))
    arrays = {name: value[:count] for name, value in store.arrays.items()}  # rows of `indices`
    examples = {'index': indices.tolist(), 'label': batch['label'][:len(indices)].tolist(),
                'image': np.round(batch['image'][:len(indices), ..., 0], 3).tolist(),
                'locations': np.asarray(arrays['target_location']).tolist(),
                'epe': np.round(np.asarray(arrays['epe']), 4).tolist(),
                'grid_size': config['model']['grid_size'],
                'glimpse_size': config['model']['glimpse_size']}
    with open(path, 'w') as f:
      json.dump(examples, f)
  return _read_json(path)


def plot_stored_epe_maps(sequences_dir: str, path: str, count: int = 4) -> None:
  """The EPE maps and glimpses of the first `count` stored canvases (see `export_examples`)."""
  ex = export_examples(sequences_dir, count)
  plot_epe_maps(np.asarray(ex['image'])[..., None], np.asarray(ex['locations']),
                np.asarray(ex['epe']), grid_size=ex['grid_size'],
                glimpse_size=ex['glimpse_size'], path=path, labels=ex['label'])


def sequence_summary(sequences_dir: str) -> dict[str, Any]:
  """Examples stored, glimpses per sequence, generation time and the posterior's accuracy after
  the designed sequences (from results.json and, when present, the store)."""
  results = _read_json(os.path.join(sequences_dir, 'results.json'))
  summary = {'examples': results['examples'], 'wall_seconds': results['wall_seconds'],
             'seconds_per_image': results['wall_seconds'] / max(1, results['written_examples']),
             'glimpses': results['config']['model']['num_glimpses']}
  stats_path = os.path.join(sequences_dir, 'sequence_stats.json')
  if os.path.isdir(os.path.join(sequences_dir, 'store')):
    arrays = data.ExampleStore.open(os.path.join(sequences_dir, 'store')).arrays
    stats = {'posterior_accuracy': float(np.mean(arrays['posterior_correct'])),
             'entropy_per_step': np.mean(arrays['entropy'], 0).round(4).tolist()}
    with open(stats_path, 'w') as f:
      json.dump(stats, f)
  return {**summary, **_read_json(stats_path)}


def design_stopping_points(sequences_dir: str,
                           thresholds: Sequence[float] = DESIGN_THRESHOLDS) -> list | None:
  """[(threshold, mean glimpses, error)] of the design-based stopping rule on a store's canvases
  (see `experimental_design.design_stopping`), written to (and read back from, once the store is
  gone) `<sequences_dir>/design_stopping.json`; None for a store without expected gains."""
  path = os.path.join(sequences_dir, DESIGN_STOPPING_FILE)
  if os.path.isdir(os.path.join(sequences_dir, 'store')):
    arrays = data.ExampleStore.open(os.path.join(sequences_dir, 'store')).arrays
    if 'expected_gain' not in arrays:
      return None
    points = design_stopping(np.asarray(arrays['expected_gain']),
                             np.asarray(arrays['step_correct']), thresholds)
    with open(path, 'w') as f:
      json.dump({'points': points, 'examples': int(len(arrays['expected_gain']))}, f)
  if not os.path.isfile(path):
    return None
  return [tuple(point) for point in _read_json(path)['points']]


# ---------------------------------------------------------------------------------------------
# RAM runs.
# ---------------------------------------------------------------------------------------------
def method_name(config: Mapping[str, Any]) -> str:
  """'unsupervised', 'supervised' (designed targets, w = 1, batch mean) or 'supervised' with what
  differs (`_center` for digit-centre targets, `_sum` for the batch sum, `_w<w>`), 'stopping' or
  'act<ponder weight>', from a RAM run's config."""
  model, loss = config['model'], config['loss']
  if model.get('act'):
    return f"act{loss['ponder_weight']:g}"
  if model.get('predict_gain'):
    return 'stopping'
  if not config.get('data_from'):
    return 'unsupervised'
  name = 'supervised'
  if config.get('supervision', {}).get('targets', 'designed') == 'digit_center':
    name += '_center'
  if loss.get('supervision_reduction', 'mean') == 'sum':
    name += '_sum'
  if loss.get('supervision_weight', 1.0) != 1.0:
    name += f"_w{loss['supervision_weight']:g}"
  return name


def arms(groups: Mapping[str, Any]) -> list[str]:
  """The partial-supervision arms among `groups`: unsupervised, supervised, then the others."""
  extra = sorted(name for name in groups if name.startswith('supervised_'))
  return [name for name in ('unsupervised', 'supervised', *extra) if groups.get(name)]


def sampled_path_error(results: Mapping[str, Any],
                       split: str = 'test') -> tuple[float, float] | None:
  """(mean, std over draws) of a run's single sampled-path error on `split` (the paper's
  evaluation: one sampled path per image, several draws), or None if it was not measured."""
  draws, k = [], 0
  while f'{split}_error_sampled_path_{k}' in results:
    draws.append(results[f'{split}_error_sampled_path_{k}'])
    k += 1
  if not draws:
    return None
  return statistics.mean(draws), statistics.stdev(draws) if len(draws) > 1 else 0.0


def _validation_errors(run: Run, split: str = 'validation') -> list[tuple[int, float]]:
  """(step, error) of the evaluations during training: the final one, on the whole split while
  the periodic ones may see part of it, is left out (unmarked in runs that predate `final`: the
  last record, whole where the others are not)."""
  evals = [r for r in run.records if r.get('kind') == 'eval' and r.get('split') == split
           and 'error' in r and not r.get('final')]
  if (evals and 'final' not in evals[-1] and evals[-1].get('full')
      and not all(r.get('full') for r in evals[:-1])):
    evals = evals[:-1]
  return [(r['step'], r['error']) for r in evals]


def evaluations_to_near_best(run: Run, margin: float = MARGIN,
                             split: str = 'validation') -> int | None:
  """The first training step whose `split` error is within `margin` of the run's lowest."""
  points = _validation_errors(run, split)
  if not points:
    return None
  best = min(error for _, error in points)
  return min(step for step, error in points if error <= best + margin)


def steps_to_error(run: Run, target: float, split: str = 'validation') -> int | None:
  """The first training step whose `split` error is at most `target` (None if never)."""
  return min((step for step, error in _validation_errors(run, split) if error <= target),
             default=None)


def stopping_points(results: Mapping[str, Any], thresholds: Sequence[float],
                    split: str = 'test') -> dict[str, list]:
  """{'adaptive': [(threshold, mean glimpses, error)], 'fixed': [(glimpses, error)],
  'act': [(mean glimpses, error)]} from a run's results.json values."""
  adaptive = [(float(t), results[f'{split}_glimpses_at_{k}'], results[f'{split}_error_at_{k}'])
              for k, t in enumerate(thresholds) if f'{split}_glimpses_at_{k}' in results]
  fixed, t = [], 1
  while f'{split}_error_after_{t}' in results:
    fixed.append((t, results[f'{split}_error_after_{t}']))
    t += 1
  act = ([(results[f'{split}_act_glimpses'], results[f'{split}_act_error'])]
         if f'{split}_act_glimpses' in results else [])
  return {'adaptive': adaptive, 'fixed': fixed, 'act': act}


def _supervision_table(groups: Mapping[str, list[Run]],
                       margin: float) -> tuple[str, dict[str, float]]:
  """The table, and the means the text compares: steps to each run's own near-best, and steps to
  a common target (the unsupervised runs' mean lowest validation error plus `margin`)."""
  plain = groups.get('unsupervised', [])
  target = None
  if plain:
    target = statistics.mean(min(e for _, e in _validation_errors(r)) for r in plain) + margin
  header = ['method', 'seeds', 'updates',
            f'steps to within {100 * margin:g} pt of its best val. error',
            'steps to the common target', 'final test error, greedy path (%)',
            'single sampled path (%)', 'minutes per run']
  rows = []
  means = {'target': target}
  for name in arms(groups):
    runs = groups[name]
    near = [evaluations_to_near_best(run, margin) for run in runs]
    reach = [steps_to_error(run, target) for run in runs] if target is not None else []
    errors = [run.results['test_error'] for run in runs]
    minutes = [run.results['wall_seconds'] / 60 for run in runs]
    means[name + '_near'] = statistics.mean([n for n in near if n is not None] or [float('nan')])
    means[name + '_reach'] = (statistics.mean(reach) if reach and None not in reach
                              else float('nan'))
    means[name + '_error'] = statistics.mean(errors)
    seeds = ', '.join(str(run.results['config']['seed']) for run in runs)
    reached = mean_spread(reach, 0, empty='n/a') if reach and None not in reach else (
        f"{sum(r is not None for r in reach)}/{len(reach)} runs reach it")
    rows.append([name, seeds, f"{runs[0].results['steps']:,}", mean_spread(near, 0, empty='n/a'),
                 reached, percent_spread(errors, empty='n/a'), _sampled_cell(runs),
                 mean_spread(minutes, 1, empty='n/a')])
  return markdown(header, rows), means


def _sampled_cell(runs: Sequence[Run]) -> str:
  """Single sampled-path test error: mean ± std over seeds, and the mean std over draws."""
  errors = [sampled_path_error(run.results) for run in runs]
  if None in errors:
    return 'n/a'
  spread = statistics.mean(std for _, std in errors)
  return f'{percent_spread([m for m, _ in errors], empty="n/a")} (draws ± {100 * spread:.2f})'


def _levels_table(groups: Mapping[str, list[Run]]) -> str:
  """Steps until the validation error first reaches each of LEVELS, and the speed-up."""
  rows, reached = [], {}
  for name in arms(groups):
    runs = groups[name]
    cells = []
    for level in LEVELS:
      steps = [steps_to_error(run, level) for run in runs]
      if None in steps:
        cells.append(f'{sum(s is not None for s in steps)}/{len(steps)} runs reach it')
      else:
        reached[name, level] = statistics.mean(steps)
        cells.append(mean_spread(steps, 0, empty='n/a'))
    rows.append([name, *cells])
  lines = [markdown(['method', *(f'to {100 * level:g}%' for level in LEVELS)], rows)]
  for name in arms(groups)[1:]:
    ratios = [f'{reached["unsupervised", level] / reached[name, level]:.1f}x to '
              f'{100 * level:g}%' for level in LEVELS
              if ('unsupervised', level) in reached and (name, level) in reached]
    if ratios:
      which = 'supervision' if name == 'supervised' else name
      lines.append(f"\nSpeed-up of {which}: {', '.join(ratios)}.\n")
  return ''.join(lines)


def _plot_attention(groups: Mapping[str, list[Run]], workdirs: Mapping[str, str],
                    path: str) -> bool:
  maps = {}
  for name in (*arms(groups), 'stopping'):
    for run in groups.get(name, [])[:1]:
      file = os.path.join(workdirs[run.name], ATTENTION_FILE)
      if os.path.isfile(file):
        maps[name] = np.asarray(_read_json(file)['frequency'])
  if not maps:
    return False
  steps = max(m.shape[0] for m in maps.values())
  fig = Figure(figsize=(1.8 * steps, 1.9 * len(maps)))
  FigureCanvasAgg(fig)
  axes = np.asarray(fig.subplots(len(maps), steps, squeeze=False))
  for row, (name, frequency) in enumerate(maps.items()):
    for t in range(steps):
      ax = axes[row, t]
      ax.set_xticks([])
      ax.set_yticks([])
      if t < frequency.shape[0]:
        ax.imshow(frequency[t], cmap='magma', vmin=0.0, vmax=1.0)
      if row == 0:
        ax.set_title(f'glimpse {t + 1}', fontsize=9)
    axes[row, 0].set_ylabel(name, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  return True


def _plot_stopping(curves: Mapping[str, list], path: str) -> None:
  series = {}
  if curves['adaptive']:
    series['adaptive stopping (threshold sweep)'] = (
        [g for _, g, _ in curves['adaptive']], [100 * e for _, _, e in curves['adaptive']])
  if curves['fixed']:
    series['fixed T'] = ([g for g, _ in curves['fixed']], [100 * e for _, e in curves['fixed']])
  if curves.get('design'):
    series['design-based stopping (posterior, expected gain)'] = (
        [g for _, g, _ in curves['design']], [100 * e for _, _, e in curves['design']])
  for name, (glimpses, error) in curves['act']:
    series[name] = ([glimpses], [100 * error])
  plot_stopping_curves(series, path, ylabel='test error (%)')


def _cadence(groups) -> str:
  """How often and on how many canvases the arms' runs validated, from the first run's config."""
  config = groups[arms(groups)[0]][0].results['config']
  every, count = config.get('eval_every', 1_000), config.get('eval_examples_during_training', 0)
  return (f'every {every:,} updates, on '
          + (f'{count:,} validation canvases' if count else 'the whole validation split'))


def _supervision_section(groups, paths, source: str, folder: str, stem: str,
                         margin: float) -> list[str]:
  """The partial-supervision tables and the attention figure of one dataset's RAM runs."""
  parts = []
  tag = '' if source == 'mnist' else f'_{source}'
  if arms(groups):
    table, means = _supervision_table(groups, margin)
    parts += [f'## Partial supervision ({source.replace("_", "-")})\n\n',
              'RAM with a softmax policy over the candidate grid; `supervised` follows the stored '
              'sequence on the canvases that have one and adds -w log pi(target) there (w = 1, a '
              'batch mean; `_w<w>` another w, `_sum` the authors\' batch sum, B times stronger; '
              '`_center` the digit\'s centre as every target). Test error of the greedy path '
              'and, as the paper scores, of one sampled path per image (mean ± std over seeds; in '
              'brackets the std over draws of a run, averaged over seeds). Steps to '
              f'near-best: the first evaluation ({_cadence(groups)}) whose validation error is '
              f'within {100 * margin:g} points of the run\'s lowest; steps to the common target: '
              'the first evaluation whose validation error is at most the unsupervised runs\' '
              f'mean lowest validation error plus {100 * margin:g} points'
              + (f" ({100 * means['target']:.2f}%)" if means['target'] is not None else '')
              + '.\n\n', table, '\n']
    for name in arms(groups)[1:] if 'unsupervised_error' in means else ():
      near = means['unsupervised_near'] / max(means[f'{name}_near'], 1)
      reach = means['unsupervised_reach'] / max(means[f'{name}_reach'], 1)
      reach = 'n/a (not every run reaches it)' if reach != reach else f'{reach:.1f}x'
      gain = means['unsupervised_error'] - means[f'{name}_error']
      which = '' if name == 'supervised' else f' of {name}'
      parts.append(f'Speed-up{which}: {near:.1f}x in steps to each run\'s near-best, {reach} in '
                   f'steps to the common target (paper: almost {PAPER.speedup:.0f}x); test '
                   f'accuracy gain {100 * gain:+.2f} points (paper: '
                   f'+{100 * PAPER.accuracy_gain:.1f}).\n\n')
    parts += ['Steps until the validation error first reaches a level (mean ± std over '
              'seeds):\n\n', _levels_table(groups), '\n']
  figure = f'{stem}_attention{tag}.png'
  if _plot_attention(groups, paths, os.path.join(folder, figure)):
    parts += ['How often each pixel lies in glimpse t over test canvases (greedy policy, first '
              'seed):\n\n', f'![attention frequency per glimpse]({figure})\n\n']
  return parts


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None,
                 margin: float = MARGIN) -> str:
  """Writes the page (and its figures beside it) for the runs in `workdirs`; returns the text.
  `margin`: how close to its lowest validation error a run counts as near its best."""
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  parts = ['# Near-optimal glimpse sequences (Harvey, Teng & Wood)\n\n',
           'Cluttered MNIST stands in for CelebA-HQ, which cannot be downloaded here; the paper '
           'gives its claims as ratios, so those are what we compare.\n\n']
  sequence_dirs = [w for w in workdirs if os.path.isdir(os.path.join(w, 'sequences'))]
  design_curves = {}  # source -> the design-based stopping rule's points on test canvases
  for workdir in sequence_dirs:
    seq_dir = os.path.join(workdir, 'sequences')
    summary = sequence_summary(seq_dir)
    posterior = _read_json(os.path.join(workdir, 'posterior', 'results.json'))
    completion = _read_json(os.path.join(workdir, 'completion', 'results.json'))
    config = posterior['config']
    name = os.path.basename(workdir.rstrip('/'))
    figure = f'{stem}_{name}_epe_maps.png'
    plot_stored_epe_maps(seq_dir, os.path.join(folder, figure))
    m, d = config['model'], config['dataset']
    parts += [
        f'## Sequences by experimental design ({name})\n\n',
        f"{d['canvas_size']}x{d['canvas_size']} {d['name']} {d.get('source', 'mnist')}, "
        f"T = {m['num_glimpses']} glimpses of {m['glimpse_size']}x{m['glimpse_size']} px, "
        f"{m['grid_size']}x{m['grid_size']} candidates, S = "
        f"{summary.get('samples', config.get('design', {}).get('samples'))} completions.\n\n",
        markdown(['quantity', 'value'], [
            ['canvases with a sequence', f"{summary['examples']:,}"],
            ['generation wall time', f"{summary['wall_seconds'] / 60:.1f} min "
                                     f"({summary['seconds_per_image']:.3f} s per image)"],
            [f"posterior test error, T random glimpses ({posterior['steps']:,} updates)",
             f"{100 * posterior['test_error']:.1f}%"],
            ['posterior error after the designed sequences (stored canvases)',
             f"{100 * (1 - summary['posterior_accuracy']):.1f}%"],
            ['posterior entropy after each designed glimpse (nats)',
             ', '.join(f'{h:.2f}' for h in summary['entropy_per_step'])],
            [f"completion model test NELBO ({completion['steps']:,} updates)",
             f"{completion['test_nelbo']:.1f} nats per canvas"]]),
        '\n',
        f'![EPE maps per step and the glimpses chosen]({figure})\n\n']
    points = design_stopping_points(os.path.join(workdir, 'test_sequences'))
    if points:
      design_curves[config['dataset'].get('source', 'mnist')] = points

  # RAM runs: single-phase workdirs, and the `ram` phase of a pipeline (the smoke variant).
  ram_dirs = [w for w in workdirs if w not in sequence_dirs]
  ram_dirs += [os.path.join(w, 'ram') for w in sequence_dirs
               if os.path.isfile(os.path.join(w, 'ram', 'results.json'))]
  rams = [(w, load_run(w)) for w in ram_dirs]
  by_source = collections.defaultdict(lambda: collections.defaultdict(list))
  paths = {}
  for workdir, run in rams:
    config = run.results['config']
    source = config.get('dataset', {}).get('source', 'mnist')
    by_source[source][method_name(config)].append(run)
    paths[run.name] = workdir
  for groups in by_source.values():
    for runs in groups.values():
      runs.sort(key=lambda r: r.results['config']['seed'])
  for source in sorted(by_source, key=lambda s: s != 'mnist'):  # MNIST first
    parts += _supervision_section(by_source[source], paths, source, folder, stem, margin)
  for source in sorted({*by_source, *design_curves}, key=lambda s: s != 'mnist'):
    parts += _stopping_section(by_source.get(source, {}), source, folder, stem,
                               design_curves.get(source, []))
  return write_page(parts, out, notes)


def _stopping_section(groups, source: str, folder: str, stem: str,
                      design: Sequence[tuple] = ()) -> list[str]:
  """The adaptive-stopping table and figure of one dataset's runs (each method's first seed),
  with the design-based rule's points (the posterior on designed test sequences) beside them."""
  curves, shown = {'adaptive': [], 'fixed': [], 'act': [], 'design': list(design)}, []
  for run in groups.get('stopping', [])[:1]:
    points = stopping_points(run.results, run.results['config']['stopping']['thresholds'])
    curves['adaptive'], curves['fixed'] = points['adaptive'], points['fixed']
    shown.append(run)
  for name, runs in sorted(groups.items()):
    if name.startswith('act'):
      for run in runs[:1]:
        curves['act'] += [(f'ACT, ponder weight {name[3:]}', p)
                          for p in stopping_points(run.results, ())['act']]
        shown.append(run)
  if not (curves['adaptive'] or curves['act'] or curves['design']):
    return []
  tag = '' if source == 'mnist' else f'_{source}'
  figure = f'{stem}_stopping{tag}.png'
  _plot_stopping(curves, os.path.join(folder, figure))
  rows = [[f'stop below predicted gain {t:g}', f'{g:.2f}', f'{100 * e:.2f}']
          for t, g, e in curves['adaptive']]
  rows += [[f'fixed {g} glimpses', f'{g}', f'{100 * e:.2f}'] for g, e in curves['fixed']]
  rows += [[name, f'{g:.2f}', f'{100 * e:.2f}'] for name, (g, e) in curves['act']]
  rows += [[f'design: posterior stops below expected gain {t:g}', f'{g:.2f}', f'{100 * e:.2f}']
           for t, g, e in curves['design']]
  runs = ', '.join(f"{run.name} (seed {run.results['config']['seed']})" for run in shown)
  text = [f'## Adaptive stopping ({source.replace("_", "-")})\n\n', f'Runs: {runs or "none"}.']
  if curves['design']:
    text.append(' The design-based rule: the attentional posterior on the designed sequences of '
                'a tenth of the test canvases, stopping before the first glimpse whose expected '
                'gain (the entropy before it less the chosen candidate\'s EPE, from the '
                'completions) is below the threshold; the learned rule thresholds the gain head '
                'of the `stopping` RAM.')
  return [*text, '\n\n', markdown(['rule', 'mean glimpses', 'test error (%)'], rows),
          f'\n![test error against glimpses]({figure})\n\n']


def main(argv: Sequence[str] | None = None) -> None:
  parser = chapter_parser('python -m glimpse_jax.reports.near_optimal_glimpses',
                          __doc__.splitlines()[0], runs_help='finished workdirs')
  parser.add_argument('--margin', type=float, default=MARGIN,
                      help='validation error within this of its lowest counts as near-best')
  args = parser.parse_args(argv)
  sys.stdout.write(write_report(args.runs, args.out, args.notes, args.margin))


if __name__ == '__main__':
  main()
