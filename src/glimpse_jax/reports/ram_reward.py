"""Reward shaping for RAM over seeds (experiments/ram_reward.py): `python -m
glimpse_jax.reports.ram_reward RUNS... --out results/ram_reward.md`.

Reads finished runs' results.json and metrics.jsonl (and per_glimpse.json when there), groups them
by method, named from each run's config as `<reward>_<locator>`: the reward `plain`, `logchange`
(eq. 2 as written, on log-softmax outputs), `change` (our reading, on the softmax), `spread` (the
paper's sign: -w std_c(O) / std_max), `confidence` (our earlier spread bonus, -w (1 - std_c(O) /
std_max); runs from before the choice existed used it) or a `+` of two, from the bonus weights (a
weight other than 1 is appended, e.g. `change0.1`); the locator `linear`, `lstm` or `mlp`, and
`_lstm_core` for an LSTM core; then the setup in square brackets unless ours (`[paper setup]` for
the Torch RAM's choices, else the ones of them the run takes, see `setup_name`) and the dataset in
round brackets unless plain MNIST. A method holds one run per seed. Writes the markdown file and,
beside it, `<stem>_accuracy.png` (test accuracy per epoch: the mean over seeds, a band from the
lowest to the highest seed), `<stem>_rewards.png` (each reward component against epochs, the mean
over seeds), from per_glimpse.json `<stem>_output_change.png` and `<stem>_glimpse_loss.png` (per
glimpse, mean +- std over seeds), and, for runs that log them, `<stem>_diagnostics.png` (per
epoch: the largest share of one predicted class and the share of location means at the edge). The
page adds a table of those collapse diagnostics and, where a reward and setup have both, the LSTM
locator against its MLP control.
"""

import collections
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax import papers
from glimpse_jax.plots.per_glimpse_curves import plot_per_glimpse
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.overview import diagnostics_section
from glimpse_jax.reports.runs import Run, check_experiment, load_runs_by_name, sort_by_seed
from glimpse_jax.reports.tables import (Column, markdown_table, mean_spread, minutes_spread,
                                        percent_spread, write_page)

EXPERIMENT = 'ram_reward'
PER_GLIMPSE_FILE = 'per_glimpse.json'
# metrics.jsonl training value: its title in the figure of reward components
COMPONENTS = {'reward_task': "RAM's reward (1 for a right final class)",
              'reward_change': 'output-change bonus (weighted, per episode)',
              'reward_spread': 'spread bonus (weighted, per episode)',
              'output_change': r'$\Sigma_t \|O_t - O_{t-1}\|_2$ (unweighted)'}
_REWARD_ORDER = ('plain', 'change', 'logchange', 'spread', 'confidence', 'change+spread',
                 'logchange+spread', 'change+confidence', 'logchange+confidence')
_LOCATOR_ORDER = ('linear', 'mlp', 'lstm')
PAPER_SETUP_NAME = 'paper setup'


def _get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
  node = config
  for key in dotted.split('.'):
    if not isinstance(node, Mapping) or key not in node:
      return default
    node = node[key]
  return node


def _optimizer(config: Mapping[str, Any]) -> tuple[str, float, float]:
  return (_get(config, 'optimizer.name', 'adam'), _get(config, 'optimizer.learning_rate', 1e-3),
          _get(config, 'optimizer.momentum', 0.9))


# The Torch RAM's choices (experiments/ram_reward.py's PAPER_SETUP): (name, does the config take
# it). A missing field is the value runs had before it existed, ours.
TORCH_RAM_CHOICES = (
    # dpnn's momentum 0.9 damped by 0.9 at 0.01: optax's momentum SGD at 1e-3
    ('SGD 0.01 momentum 0.9 (damped)', lambda c: _optimizer(c) == ('momentum', 1e-3, 0.9)),
    ('batch 32', lambda c: _get(c, 'batch_size') == 32),
    ('hardtanh mean', lambda c: _get(c, 'model.mean_activation', 'tanh') == 'hardtanh'),
    ('total R', lambda c: _get(c, 'loss.returns', 'to_go') == 'total'),
    ('scalar baseline', lambda c: _get(c, 'loss.baseline', 'state') == 'scalar'),
    ('last-step NLL', lambda c: _get(c, 'loss.nll_steps', 'all') == 'last'),
)


def setup_name(config: Mapping[str, Any]) -> str:
  """'' for our setting, 'paper setup' for all of TORCH_RAM_CHOICES, 'paper setup without <it>'
  for all but one, else the ones taken; an optimizer other than ours (Adam 1e-3) and the Torch
  RAM's adds its name and rate, a run whose policy gradient stops at the core 'no policy gradient
  into the core'."""
  taken = [name for name, takes in TORCH_RAM_CHOICES if takes(config)]
  missing = [name for name, _ in TORCH_RAM_CHOICES if name not in taken]
  if not missing:
    parts = [PAPER_SETUP_NAME]
  elif len(missing) == 1:
    parts = [f'{PAPER_SETUP_NAME} without {missing[0]}']
  else:
    parts = taken
  name, rate, momentum = _optimizer(config)
  if name != 'adam' and not TORCH_RAM_CHOICES[0][1](config):
    parts.append(f'{name} {rate:g}' + (f' (momentum {momentum:g})' if name == 'momentum' else ''))
  elif name == 'adam' and rate != 1e-3:
    parts.append(f'adam {rate:g}')
  if _get(config, 'model.policy_gradient_to_core', True) is False:
    parts.append('no policy gradient into the core')
  return ', '.join(parts)


def _weighted(name: str, weight: float) -> str:
  return name if weight == 1 else f'{name}{weight:g}'


def _method_parts(config: Mapping[str, Any]) -> tuple[str, str, str, str]:
  """(reward, locator with its core suffix, setup, images) of a run's config."""
  loss, model = config['loss'], config['model']
  parts = []
  if loss['output_change_weight'] > 0:
    name = 'logchange' if loss.get('change_space') == 'log_probs' else 'change'
    parts.append(_weighted(name, loss['output_change_weight']))
  if loss['spread_weight'] > 0:
    # Runs from before the choice existed had the confidence form.
    name = 'spread' if loss.get('spread_form', 'confidence') == 'paper' else 'confidence'
    parts.append(_weighted(name, loss['spread_weight']))
  locator = model['locator'] + ('_lstm_core' if model['core'] == 'lstm' else '')
  dataset = config.get('dataset', {})
  images = dataset.get('source', 'mnist')
  if dataset.get('name', 'mnist') != 'mnist':
    images = f"{dataset['name']} {images}"
  return '+'.join(parts) or 'plain', locator, setup_name(config), images


def _join(reward: str, locator: str, setup: str, images: str) -> str:
  name = f'{reward}_{locator}'
  if setup:
    name += f' [{setup}]'
  return name if images == 'mnist' else f'{name} ({images})'


def method_name(config: Mapping[str, Any]) -> str:
  """The run's method, e.g. 'change_lstm' or 'logchange_linear [paper setup]', from its config
  (see the module doc)."""
  return _join(*_method_parts(config))


def _rank(name: str, order: Sequence[str]) -> int:
  base = ''.join(c for c in name if not c.isdigit() and c != '.')
  return order.index(base) if base in order else len(order)


def _order(name: str) -> tuple:
  rest, _, images = name.partition(' (')
  rest, _, setup = rest.partition(' [')
  reward, _, locator = rest.partition('_')
  return (images, setup, _rank(reward, _REWARD_ORDER), reward,
          _rank(locator, _LOCATOR_ORDER), locator)


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
  """Method name -> its runs by seed; raises ValueError for another experiment's run or a seed
  that appears twice in one method."""
  groups = collections.defaultdict(list)
  for run in runs:
    check_experiment(run, EXPERIMENT)
    config = run.results['config']
    groups[method_name(config)].append(run)
  sort_by_seed(groups, method=lambda name: name)
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


def _seeds(runs: Sequence[Run]) -> str:
  return ', '.join(str(run.results['config']['seed']) for run in runs)


def _final_accuracies(runs: Sequence[Run]) -> list[float]:
  return [1.0 - run.results['test_error'] for run in runs
          if isinstance(run.results.get('test_error'), (int, float))]


def _best(runs: Sequence[Run]) -> list[tuple[float, float]]:
  """(epoch, accuracy) of each seed's best evaluation."""
  curves = [accuracy_by_epoch(run) for run in runs]
  return [(max(c, key=c.get), max(c.values())) for c in curves if c]


# (header, cell of a method's (name, runs))
RESULT_COLUMNS = (
    Column('method', lambda group: group[0]),
    Column('seeds', lambda group: _seeds(group[1])),
    Column('final accuracy %', lambda group: percent_spread(_final_accuracies(group[1]))),
    Column('best accuracy %',
           lambda group: percent_spread([accuracy for _, accuracy in _best(group[1])])),
    Column('best at epoch',
           lambda group: mean_spread([epoch for epoch, _ in _best(group[1])], digits=1)),
    Column('epochs', lambda group: mean_spread(
        [_epochs(run, run.results.get('steps', 0)) for run in group[1]], digits=1)),
    Column('minutes', lambda group: minutes_spread(
        [run.results['wall_seconds'] for run in group[1]
         if isinstance(run.results.get('wall_seconds'), (int, float))])),
)


def results_table(groups: Mapping[str, Sequence[Run]]) -> str:
  """Markdown: one line per method, mean ± sample std over its seeds."""
  return markdown_table(RESULT_COLUMNS, list(groups.items()))


# ---------------------------------------------------------------------------------------------
# Collapse diagnostics: the largest share of one predicted class, location means at the edge.
# ---------------------------------------------------------------------------------------------
PASS_ACCURACY = papers.RAM_REWARD.pass_accuracy  # the paper's collapse passes it first


def largest_class_share(values: Mapping[str, Any], prefix: str = '') -> float | None:
  """max_c of the `<prefix>pred_frac_<c>` values (an eval record, or results.json with prefix
  'test_'); None when the run did not log them."""
  shares = [v for k, v in values.items() if k.startswith(f'{prefix}pred_frac_')
            and k[len(prefix) + len('pred_frac_'):].isdigit() and isinstance(v, (int, float))]
  return max(shares) if shares else None


def _eval_series(run: Run, value) -> dict[float, float]:
  """Epoch -> value(record) of the run's test evaluations, where it is a number."""
  found = {}
  for r in run.records:
    if r.get('kind') == 'eval' and r.get('split', 'test') == 'test':
      v = value(r)
      if isinstance(v, (int, float)):
        found[_epochs(run, r['step'])] = v
  return found


def class_share_by_epoch(run: Run) -> dict[float, float]:
  """Epoch -> the largest share of one predicted class among the test images evaluated."""
  return _eval_series(run, largest_class_share)


def edge_by_epoch(run: Run) -> dict[float, float]:
  """Epoch -> the share of greedy location means with a coordinate at +-1 (`at_edge`)."""
  return _eval_series(run, lambda r: r.get('at_edge'))


def _has_diagnostics(run: Run) -> bool:
  return bool(class_share_by_epoch(run) or edge_by_epoch(run))


def _after_passing(curve: Mapping[float, float]) -> float | None:
  """The lowest accuracy after the first evaluation at or above PASS_ACCURACY (None: never)."""
  passed = [epoch for epoch in sorted(curve) if curve[epoch] >= PASS_ACCURACY]
  if not passed:
    return None
  return min(curve[epoch] for epoch in curve if epoch >= passed[0])


def _never_passed(runs: Sequence[Run]) -> int:
  return sum(_after_passing(accuracy_by_epoch(run)) is None for run in runs)


def _lowest_after_passing(runs: Sequence[Run]) -> str:
  return percent_spread([_after_passing(accuracy_by_epoch(run)) for run in runs])


# (header, cell of a method's (name, runs that log the diagnostics))
DIAGNOSTIC_COLUMNS = (
    Column('method', lambda group: group[0]),
    Column('seeds past 50%',
           lambda group: f'{len(group[1]) - _never_passed(group[1])} of {len(group[1])}'),
    Column('lowest accuracy after passing %', lambda group: _lowest_after_passing(group[1])),
    Column('largest predicted class % (final)', lambda group: percent_spread(
        [largest_class_share(run.results, 'test_') for run in group[1]])),
    Column('location means at ±1 % (final)', lambda group: percent_spread(
        [run.results.get('test_at_edge') for run in group[1]])),
    Column('largest predicted class % (worst epoch)', lambda group: percent_spread(
        [max(c.values()) for c in map(class_share_by_epoch, group[1]) if c])),
)


def diagnostics_table(groups: Mapping[str, Sequence[Run]]) -> str:
  """Markdown: DIAGNOSTIC_COLUMNS per method that logs the diagnostics (mean ± sample std over its
  seeds that do); empty when no run logs them."""
  logged = [(name, [run for run in runs if _has_diagnostics(run)]) for name, runs in groups.items()]
  logged = [(name, runs) for name, runs in logged if runs]
  return markdown_table(DIAGNOSTIC_COLUMNS, logged) if logged else ''


def plot_diagnostics(groups: Mapping[str, Sequence[Run]], path: str) -> bool:
  """The largest predicted-class share and the location means at the edge per epoch, one line
  per method that logs them (mean over seeds); False, and no figure, when none does."""
  fig = Figure(figsize=(11, 4.5))
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, 2)
  titles = ('largest share of one predicted class %', 'location means at ±1 % (greedy)')
  for ax, series_of, title in zip(axes, (class_share_by_epoch, edge_by_epoch), titles):
    for name, runs in groups.items():
      series = [s for s in (series_of(run) for run in runs) if s]
      if series:
        xs, mean, _, _ = _over_seeds(series)
        ax.plot(xs, 100 * mean, 'o-', ms=3, label=name)
    ax.set(xlabel='epoch (50,000 classifications)', title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
  axes[0].axhline(10, color='grey', lw=0.8, ls=':')  # balanced predictions
  handles, labels = axes[0].get_legend_handles_labels()
  if not handles:
    handles, labels = axes[1].get_legend_handles_labels()
  if not handles:
    return False
  fig.legend(handles, labels, loc='lower center', ncol=min(len(labels), 3), fontsize=8)
  fig.tight_layout(rect=(0, 0.12, 1, 1))
  fig.savefig(path, dpi=100)
  return True


# ---------------------------------------------------------------------------------------------
# The LSTM locator against its MLP control (the same hidden width, no memory).
# ---------------------------------------------------------------------------------------------
def _difference(a: Sequence[float], b: Sequence[float]) -> str:
  """'mean(a) - mean(b) ± its standard error' in points (the error needs 2 values of each)."""
  if not a or not b:
    return '-'
  diff = 100 * (np.mean(a) - np.mean(b))
  if min(len(a), len(b)) < 2:
    return f'{diff:+.2f}'
  error = 100 * np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
  return f'{diff:+.2f} ± {error:.2f}'


def locator_table(groups: Mapping[str, Sequence[Run]]) -> str:
  """Markdown: per reward and setup that has both the `lstm` and the `mlp` locator, the final
  accuracy of the linear, MLP and LSTM locators and the LSTM's gain over each (difference of the
  means ± its standard error over seeds); empty when no such pair exists."""
  by_key = collections.defaultdict(dict)
  for runs in groups.values():
    reward, locator, setup, images = _method_parts(runs[0].results['config'])
    by_key[(reward, setup, images)][locator] = runs
  pairs = []  # (label, locator -> final accuracies)
  for (reward, setup, images), locators in by_key.items():
    if 'lstm' in locators and 'mlp' in locators:
      pairs.append((_join(reward, '*', setup, images).replace('_*', ''),
                    {name: _final_accuracies(locators.get(name, ())) for name in _LOCATOR_ORDER}))
  columns = [Column('reward', lambda pair: pair[0]),
             *(Column(f'{name} %', lambda pair, name=name: percent_spread(pair[1][name]))
               for name in _LOCATOR_ORDER),
             Column('lstm - mlp (points)',
                    lambda pair: _difference(pair[1]['lstm'], pair[1]['mlp'])),
             Column('lstm - linear (points)',
                    lambda pair: _difference(pair[1]['lstm'], pair[1]['linear']))]
  return markdown_table(columns, pairs) if pairs else ''


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
  runs, by_name = load_runs_by_name(workdirs)
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
      '`python -m glimpse_jax.reports.ram_reward`. An epoch is 50,000 classifications; accuracy '
      f'follows the greedy glimpses, on the first {" or ".join(map(str, during))} test images '
      'after each epoch (0: all) and on all of them at the end (final). Values are the mean ± '
      "sample std over seeds; best is each seed's best evaluation.\n\n",
      *([f'Methods marked [{PAPER_SETUP_NAME}] take the Torch RAM\'s choices the paper built on: '
         'SGD at 0.01 with momentum 0.9 damped by 0.9 (optax momentum at 1e-3), batch 32, a '
         'hardtanh location mean (and, as in every '
         'run, the glimpse read at the sample clipped to ±1), one total reward per episode '
         'against a single learned scalar baseline, and the NLL of the last glimpse only; the '
         'others Adam at 1e-3, batch 128, a tanh mean, returns-to-go against a baseline read '
         'from the core state, and the NLL averaged over the glimpses. Both pass the policy '
         'gradient into the core unless marked otherwise.\n\n']
        if any(f'[{PAPER_SETUP_NAME}' in name for name in groups) else []),
      results_table(groups),
      f'\n![test accuracy per epoch]({figure("accuracy")})\n',
      '\nReward components during training (per episode, averaged over each logging interval, '
      'mean over seeds): does a bonus outgrow the 0/1 reward?\n',
      f'\n![reward components]({figure("rewards")})\n',
  ]
  diagnostics = diagnostics_table(groups)
  if diagnostics:
    text += ['\nCollapse diagnostics, for runs that log them: how many seeds passed 50% test '
             'accuracy and the lowest accuracy after passing; the largest share of one predicted '
             'class among the test images (10% when balanced, 100% for a constant class) and the '
             'share of greedy location means with a coordinate at ±1 (|mu| >= 1 - 1e-6), at the '
             'end on all test images and per epoch on the first ones.\n\n', diagnostics]
    if plot_diagnostics(groups, os.path.join(folder, figure('diagnostics'))):
      text.append(f'\n![collapse diagnostics per epoch]({figure("diagnostics")})\n')
  text += diagnostics_section(runs, folder, stem)  # per glimpse: saturated means, ink, digit
  locators = locator_table(groups)
  if locators:
    text += ['\nThe LSTM locator against its control, an MLP locator with one tanh layer of the '
             "same width and no memory: final accuracy; the LSTM's gain as the difference of the "
             'means ± its standard error over seeds.\n\n', locators]
  if images:
    text += [f'\nAfter training, on the first {" or ".join(map(str, images))} test images (mean ± '
             'std over seeds):\n',
             f'\n![output change per glimpse]({figure("output_change")})\n',
             f'\n![loss per glimpse]({figure("glimpse_loss")})\n']
  return write_page(text, out, notes)


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.ram_reward',
              'Markdown report and figures of ram_reward runs over seeds.',
              out='results/ram_reward.md', argv=argv)


if __name__ == '__main__':
  main()
