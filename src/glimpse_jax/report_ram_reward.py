"""Reward shaping for RAM over seeds (experiments/ram_reward.py): `python -m
glimpse_jax.report_ram_reward RUNS... --out results/ram_reward.md`.

Reads finished runs' results.json and metrics.jsonl (and per_glimpse.json when there), groups them
by method, named from each run's config as `<reward>_<locator>`: the reward `plain`, `change`,
`spread` or `change+spread` from the bonus weights (a weight other than 1 is appended, e.g.
`change0.1`; `logchange` compares log-softmax outputs), the locator `linear` or `lstm`, and
`_lstm_core` for an LSTM core (and the dataset in brackets unless plain MNIST). A method holds one run per seed. Writes the markdown file and, beside
it, `<stem>_accuracy.png` (test accuracy per epoch: the mean over seeds, a band from the lowest to
the highest seed), `<stem>_rewards.png` (each reward component against epochs, the mean over seeds)
and, from per_glimpse.json, `<stem>_output_change.png` and `<stem>_glimpse_loss.png` (per glimpse,
mean +- std over seeds).
"""

import argparse
import collections
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax import report
from glimpse_jax.glimpse_curves import plot_per_glimpse
from glimpse_jax.report import Run, load_run, write_page

EXPERIMENT = 'ram_reward'
PER_GLIMPSE_FILE = 'per_glimpse.json'
# metrics.jsonl training value: its title in the figure of reward components
COMPONENTS = {'reward_task': "RAM's reward (1 for a right final class)",
              'reward_change': 'output-change bonus (weighted, per episode)',
              'reward_spread': 'spread bonus (weighted, per episode)',
              'output_change': r'$\Sigma_t \|O_t - O_{t-1}\|_2$ (unweighted)'}
_REWARD_ORDER = ('plain', 'change', 'logchange', 'spread', 'change+spread', 'logchange+spread')


def _weighted(name: str, weight: float) -> str:
  return name if weight == 1 else f'{name}{weight:g}'


def method_name(config: Mapping[str, Any]) -> str:
  """The run's method, e.g. 'change_lstm', from its config (see the module doc)."""
  loss, model = config['loss'], config['model']
  parts = []
  if loss['output_change_weight'] > 0:
    name = 'logchange' if loss.get('change_space') == 'log_probs' else 'change'
    parts.append(_weighted(name, loss['output_change_weight']))
  if loss['spread_weight'] > 0:
    parts.append(_weighted('spread', loss['spread_weight']))
  name = f"{'+'.join(parts) or 'plain'}_{model['locator']}"
  if model['core'] == 'lstm':
    name += '_lstm_core'
  dataset = config.get('dataset', {})
  images = dataset.get('source', 'mnist')
  if dataset.get('name', 'mnist') != 'mnist':
    images = f"{dataset['name']} {images}"
  return name if images == 'mnist' else f'{name} ({images})'


def _order(name: str) -> tuple:
  reward, _, rest = name.partition('_')
  base = ''.join(c for c in reward if not c.isdigit() and c != '.')
  rank = _REWARD_ORDER.index(base) if base in _REWARD_ORDER else len(_REWARD_ORDER)
  return rank, reward, rest


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
  """Method name -> its runs by seed; raises ValueError for another experiment's run or a seed
  that appears twice in one method."""
  groups = collections.defaultdict(list)
  for run in runs:
    config = run.results.get('config', {})
    if config.get('experiment') != EXPERIMENT:
      raise ValueError(f'run {run.name!r} is of experiment {config.get("experiment")!r}, not '
                       f'{EXPERIMENT!r}')
    groups[method_name(config)].append(run)
  for name, members in groups.items():
    seeds = [run.results['config']['seed'] for run in members]
    if len(set(seeds)) < len(seeds):
      raise ValueError(f'method {name!r} has seed {max(seeds, key=seeds.count)} twice among runs '
                       f'{[run.name for run in members]}')
    members.sort(key=lambda run: run.results['config']['seed'])
  return {name: groups[name] for name in sorted(groups, key=_order)}


def _epochs(run: Run, step: int) -> float:
  every = run.results['config'].get('eval_every') or 1
  return step / every


def accuracy_by_epoch(run: Run) -> dict[float, float]:
  """Epoch -> test accuracy of the run's evaluations (metrics.jsonl 'eval' records, split test)."""
  return {_epochs(run, r['step']): 1.0 - r['error'] for r in run.records
          if r.get('kind') == 'eval' and r.get('split', 'test') == 'test'
          and isinstance(r.get('error'), (int, float))}


def _train_series(run: Run, name: str) -> dict[float, float]:
  return {_epochs(run, r['step']): r[name] for r in run.records
          if r.get('kind', 'train') == 'train' and isinstance(r.get(name), (int, float))}


def _over_seeds(series: Sequence[Mapping[float, float]]):
  """(x, mean, low, high) over the x values any seed has, as arrays."""
  xs = sorted({x for s in series for x in s})
  values = [[s[x] for s in series if x in s] for x in xs]
  return (np.asarray(xs), np.asarray([np.mean(v) for v in values]),
          np.asarray([min(v) for v in values]), np.asarray([max(v) for v in values]))


def _mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
  return report.mean_spread(values, digits, scale)


def results_table(groups: Mapping[str, Sequence[Run]]) -> str:
  """Markdown: one line per method, mean ± sample std over its seeds."""
  header = ['method', 'seeds', 'final accuracy %', 'best accuracy %', 'best at epoch',
            'epochs', 'minutes']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for name, runs in groups.items():
    final = [1.0 - run.results['test_error'] for run in runs
             if isinstance(run.results.get('test_error'), (int, float))]
    curves = [accuracy_by_epoch(run) for run in runs]
    best = [max(c.values()) for c in curves if c]
    best_epoch = [max(c, key=c.get) for c in curves if c]
    epochs = [_epochs(run, run.results.get('steps', 0)) for run in runs]
    minutes = [run.results['wall_seconds'] for run in runs
               if isinstance(run.results.get('wall_seconds'), (int, float))]
    cells = [name, ', '.join(str(run.results['config']['seed']) for run in runs),
             _mean_std(final), _mean_std(best), _mean_std(best_epoch, 1.0, 1),
             _mean_std(epochs, 1.0, 1), _mean_std(minutes, 1 / 60, 1)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot_accuracy(groups: Mapping[str, Sequence[Run]], path: str) -> None:
  """Test accuracy against epochs, one line per method (mean over seeds, band min to max)."""
  fig = Figure(figsize=(8, 5))
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  for name, runs in groups.items():
    curves = [c for c in (accuracy_by_epoch(run) for run in runs) if c]
    if not curves:
      continue
    xs, mean, low, high = _over_seeds(curves)
    line, = ax.plot(xs, 100 * mean, 'o-', ms=3, label=f'{name} ({len(curves)} seeds)')
    ax.fill_between(xs, 100 * low, 100 * high, color=line.get_color(), alpha=0.15)
  if not ax.lines:
    raise ValueError('no run has test evaluations (metrics.jsonl eval records) to plot')
  ax.axhline(10, color='grey', lw=0.8, ls=':')  # chance
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.set(xlabel='epoch (50,000 classifications)', ylabel='test accuracy %', ylim=(0, 100),
         title='test accuracy per epoch (mean over seeds; band: lowest to highest seed)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def plot_rewards(groups: Mapping[str, Sequence[Run]], path: str) -> None:
  """Each of COMPONENTS against epochs, one line per method (mean over seeds)."""
  fig = Figure(figsize=(11, 7))
  FigureCanvasAgg(fig)
  axes = fig.subplots(2, 2).ravel()
  for ax, (component, title) in zip(axes, COMPONENTS.items()):
    for name, runs in groups.items():
      series = [s for s in (_train_series(run, component) for run in runs) if s]
      if series:
        xs, mean, _, _ = _over_seeds(series)
        ax.plot(xs, mean, label=name)
    ax.set(xlabel='epoch', title=title)
    ax.grid(alpha=0.3)
  handles, labels = axes[0].get_legend_handles_labels()
  if not handles:
    raise ValueError(f'no run has training records with {list(COMPONENTS)}')
  fig.legend(handles, labels, loc='lower center', ncol=min(len(labels), 4), fontsize=8)
  fig.tight_layout(rect=(0, 0.08, 1, 1))
  fig.savefig(path, dpi=100)


def _per_glimpse(runs: Sequence[Run], workdirs: Mapping[str, str]) -> list[dict[str, Any]]:
  found = []
  for run in runs:
    path = os.path.join(workdirs[run.name], PER_GLIMPSE_FILE)
    if os.path.isfile(path):
      with open(path) as f:
        found.append(json.load(f))
  return found


def _sample_std(values: np.ndarray) -> np.ndarray:
  """The sample std over seeds (axis 0) of `values` [seeds, T]; zeros for one seed."""
  return values.std(0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])


def plot_per_glimpse_curves(groups: Mapping[str, Sequence[Run]], workdirs: Mapping[str, str],
                            change_path: str, loss_path: str) -> list[int]:
  """The output change (greedy policy) and the loss (greedy policy, random glimpses) after each
  glimpse per method, mean +- std over seeds; returns the numbers of images they were measured on
  (empty, and no figures, when no run has per_glimpse.json)."""
  change, loss, change_std, loss_std, images = {}, {}, {}, {}, set()
  for name, runs in groups.items():
    found = _per_glimpse(runs, workdirs)
    if not found:
      continue
    images.update(f['images'] for f in found)
    for path, label in (('policy (greedy)', name), ('random glimpses', f'{name}, random')):
      values = np.asarray([f[path]['loss'] for f in found])  # [seeds, T]
      loss[label], loss_std[label] = values.mean(0), _sample_std(values)
    values = np.asarray([f['policy (greedy)']['output_change'] for f in found])
    change[name], change_std[name] = values.mean(0), _sample_std(values)
  if not change:
    return []
  plot_per_glimpse(change, change_path, ylabel=r'mean $\|O_t - O_{t-1}\|_2$ (greedy)',
                   title='output change per glimpse', spreads=change_std)
  plot_per_glimpse(loss, loss_path, ylabel='classification loss (NLL)',
                   title='loss after each glimpse: policy vs random', spreads=loss_std)
  return sorted(images)


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown file `out` and its figures beside it; returns the markdown.

  `notes`, a markdown file, is appended: the reading of the numbers, kept apart so that
  regenerating the tables never loses it.
  """
  runs = [load_run(workdir) for workdir in workdirs]
  by_name = {}
  for run, workdir in zip(runs, workdirs):
    if run.name in by_name:
      raise ValueError(f'two workdirs share the name {run.name!r}: {by_name[run.name]!r} and '
                       f'{workdir!r}')
    by_name[run.name] = workdir
  groups = group_runs(runs)
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  os.makedirs(folder, exist_ok=True)
  figure = lambda kind: f'{stem}_{kind}.png'
  plot_accuracy(groups, os.path.join(folder, figure('accuracy')))
  plot_rewards(groups, os.path.join(folder, figure('rewards')))
  images = plot_per_glimpse_curves(groups, by_name,
                                        os.path.join(folder, figure('output_change')),
                                        os.path.join(folder, figure('glimpse_loss')))
  during = sorted({run.results['config'].get('eval_examples_during_training') for run in runs},
                  key=str)
  text = [
      '# Reward shaping and an LSTM locator for RAM (Brooks et al.)\n\n',
      f'{len(runs)} run{"s" if len(runs) > 1 else ""} of `experiments/ram_reward.py`, written by '
      '`python -m glimpse_jax.report_ram_reward`. An epoch is 50,000 classifications; accuracy '
      f'follows the greedy glimpses, on the first {" or ".join(map(str, during))} test images '
      'after each epoch (0: all) and on all of them at the end (final). Values are the mean ± '
      "sample std over seeds; best is each seed's best evaluation.\n\n",
      results_table(groups),
      f'\n![test accuracy per epoch]({figure("accuracy")})\n',
      '\nReward components during training (per episode, averaged over each logging interval, '
      'mean over seeds): does a bonus outgrow the 0/1 reward?\n',
      f'\n![reward components]({figure("rewards")})\n',
  ]
  if images:
    text += [f'\nAfter training, on the first {" or ".join(map(str, images))} test images (mean ± '
             'std over seeds):\n',
             f'\n![output change per glimpse]({figure("output_change")})\n',
             f'\n![loss per glimpse]({figure("glimpse_loss")})\n']
  return write_page(text, out, notes)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog='python -m glimpse_jax.report_ram_reward',
      description='Markdown report and figures of ram_reward runs over seeds.')
  parser.add_argument('runs', nargs='+', help='workdirs holding results.json and metrics.jsonl')
  parser.add_argument('--out', default='results/ram_reward.md',
                      help='the markdown file; the figures go beside it')
  parser.add_argument('--notes', default=None,
                      help='a markdown file appended to the report (the reading of the numbers)')
  args = parser.parse_args(argv)
  write_report(args.runs, args.out, args.notes)
  sys.stdout.write(f'wrote {args.out}\n')


if __name__ == '__main__':
  main()
