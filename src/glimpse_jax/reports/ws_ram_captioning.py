"""WS-RAM's captioning experiment (experiments/ws_ram_captioning.py) over methods and seeds:
`python -m glimpse_jax.reports.ws_ram_captioning RUNS... --out results/ws_ram_captioning.md`.

Each run is the `caption` phase's workdir (results.json, metrics.jsonl, and `captions.json`, the
sacrebleu BLEU-1..4 of greedy test captions and the layer chosen per word position). Runs are
grouped by `loss.method`; values are the mean ± sample std over seeds. Writes, beside the
markdown file, `<stem>_training_nll.png` (the paper's Figure 6: the training bound's NLL per word
against updates, mean over seeds with a band from the lowest to the highest seed) and the first
seed's window pictures per method.
"""

import collections
import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax import papers
from glimpse_jax.data.sources import DIGIT_SIZE
from glimpse_jax.reports.cli import run_chapter
from glimpse_jax.reports.runs import Run, load_run
from glimpse_jax.reports.tables import Column, markdown, markdown_table, mean_spread, write_page

CAPTIONS_FILE = 'captions.json'
NAMES = {row.method: row.name for row in papers.WS_RAM_CAPTIONING.values()}
# The paper's Flickr8k test BLEU-1..4 (Ba et al. 2015, Table 2), both with control variates.
PAPER_BLEU = {row.method: row.bleu for row in papers.WS_RAM_CAPTIONING.values() if row.bleu}
CURVE_METRIC = 'nll_word'
CHECKPOINTS = (1_000, 2_000, 5_000, 10_000)  # updates at which the training curves are read


def read_scores(workdir: str) -> dict:
  """The run's captions.json; raises ValueError naming the workdir when it is missing."""
  path = os.path.join(workdir, CAPTIONS_FILE)
  if not os.path.isfile(path):
    raise ValueError(f'{workdir!r} holds no {CAPTIONS_FILE}: not a finished caption phase')
  with open(path) as f:
    return json.load(f)


def method_of(run: Run) -> str:
  """The run's estimator: `loss.method`, then what differs from the paper's setting (control
  variates, T = 1, K = 5, no layer-entropy bonus, a decoder blind to the whole canvas), e.g.
  'ws_q' or 'ws_q-nocv-T2-K10-H0.1-view'."""
  loss = run.results['config']['loss']
  parts = [loss['method']]
  if not loss.get('control_variates', True):
    parts.append('nocv')
  if loss.get('temperature', 1.0) != 1.0:
    parts.append(f"T{loss['temperature']:g}")
  if loss.get('num_samples', 5) != 5:
    parts.append(f"K{loss['num_samples']}")
  if loss.get('layer_entropy_weight', 0.0):
    parts.append(f"H{loss['layer_entropy_weight']:g}")
  # Runs from before the switch existed started from the whole-canvas view.
  if run.results['config'].get('model', {}).get('initial_view', True):
    parts.append('view')
  return '-'.join(parts)


def method_name(method: str) -> str:
  """'ws_q' -> 'WS-RAM + q'; 'ws_q-nocv-T2' -> 'WS-RAM + q (nocv, T2)'."""
  base, *rest = method.split('-')
  return NAMES.get(base, base) + (f" ({', '.join(rest)})" if rest else '')


def canvases_of(run: Run) -> str:
  """The run's data, e.g. '64x64, 1-3 digits, 21-28 px'."""
  d = run.results['config']['dataset']
  text = f"{d['canvas_size']}x{d['canvas_size']}, {d['min_digits']}-{d['max_digits']} digits"
  if 'scale_range' in d:
    low, high = (round(DIGIT_SIZE * s) for s in d['scale_range'])
    text += f', {low}-{high} px'
  return text


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
  """(canvases, method) -> its runs by seed; smaller canvases first, methods in NAMES order."""
  groups = collections.defaultdict(list)
  for run in sorted(runs, key=lambda r: r.results['config']['seed']):
    groups[canvases_of(run), method_of(run)].append(run)
  for key, members in groups.items():
    seeds = [run.results['config']['seed'] for run in members]
    if len(set(seeds)) < len(seeds):
      raise ValueError(f'{key} has seed {max(seeds, key=seeds.count)} twice among runs '
                       f'{[run.name for run in members]}')
    if len({run.results['steps'] for run in members}) > 1:
      raise ValueError(f'{key}: runs {[run.name for run in members]} trained for different '
                       f"numbers of steps {[run.results['steps'] for run in members]}")
  rank = {m: i for i, m in enumerate(NAMES)}
  order = sorted(groups, key=lambda k: (
      groups[k][0].results['config']['dataset']['canvas_size'], k[0], rank.get(k[1], len(rank)),
      k[1]))
  return {key: groups[key] for key in order}


def _max_words(run: Run) -> int:
  """The most words a caption of the run's data has (BLEU-n needs captions of n words)."""
  return run.results['config']['dataset']['max_digits']


def _label(key: tuple[str, str], several_canvases: bool) -> str:
  name = method_name(key[1])
  return f'{name}, {key[0]}' if several_canvases else name


def training_curve(run: Run, metric: str = CURVE_METRIC) -> dict[int, float]:
  """step -> the logged training `metric` (each record averages the updates since the last)."""
  return {r['step']: r[metric] for r in run.records
          if r.get('kind') == 'train' and isinstance(r.get(metric), (int, float))}


def validation_curve(run: Run, metric: str = CURVE_METRIC) -> dict[int, float]:
  """step -> `metric` on the validation split at each evaluation during training."""
  return {r['step']: r[metric] for r in run.records
          if r.get('kind') == 'eval' and r.get('split') == 'validation'
          and isinstance(r.get(metric), (int, float))}


def value_at(curve: Mapping[int, float], step: int, window: int = 5) -> float | None:
  """The mean of the last `window` logged values at or before `step`; None past the curve."""
  steps = sorted(s for s in curve if s <= step)
  if not steps or max(curve) < step:
    return None
  return float(np.mean([curve[s] for s in steps[-window:]]))


def _bleu(n: int):
  """The cell of BLEU-n: 'n/a' where no caption has n words."""
  return lambda m: (mean_spread([x[f'bleu{n}'] for x in m.scores], 1)
                    if n <= _max_words(m.runs[0]) else 'n/a')


def _paper_bleu(method: str) -> str:
  paper = PAPER_BLEU.get(method)
  return '-' if paper is None else ' / '.join(f'{b:.1f}' for b in paper)


@dataclasses.dataclass(frozen=True)
class MethodRuns:
  """One method's caption runs on one kind of canvas, with their captions.json scores."""

  method: str
  canvases: str
  runs: Sequence[Run]
  scores: Sequence[dict]


# The test-caption table: a line per method and canvases, mean ± sample std over seeds.
BLEU_COLUMNS = (
    Column('method', lambda m: method_name(m.method)),
    Column('canvases', lambda m: m.canvases),
    Column('seeds', lambda m: ', '.join(str(run.results['config']['seed']) for run in m.runs)),
    *(Column(f'BLEU-{n}', _bleu(n)) for n in (1, 2, 3, 4)),
    Column('paper BLEU-1/2/3/4 (Flickr8k)', lambda m: _paper_bleu(m.method)),
    Column('exact %', lambda m: mean_spread([100 * x['sequence_accuracy'] for x in m.scores])),
    Column('word error %', lambda m: mean_spread(
        [100 * run.results['test_token_error'] for run in m.runs])),
    Column('test NLL / word', lambda m: mean_spread(
        [run.results['test_nll_word'] for run in m.runs], 3)),
    Column('updates', lambda m: f"{m.runs[0].results['steps']:,}"),
    Column('minutes', lambda m: mean_spread(
        [run.results['wall_seconds'] / 60 for run in m.runs], 1)),
)


def plot_training_nll(groups: Mapping[tuple[str, str], Sequence[Run]], path: str,
                      max_step: int = CHECKPOINTS[-1]) -> None:
  """Figure 6: training NLL per word against updates (left) and validation NLL per word under
  prior samples (right), one line per method."""
  fig = Figure(figsize=(13, 4.5))
  FigureCanvasAgg(fig)
  panels = zip(fig.subplots(1, 2), (training_curve, validation_curve), (
      ('training NLL per word (nats)', '-log (1/K) sum_k w_k, each method\'s own proposal'),
      ('validation NLL per word (nats)', '-log (1/K) sum_k p(y | a_k, x), K prior samples')))
  for ax, curve_of, (ylabel, title) in panels:
    several = len({key[0] for key in groups}) > 1
    for key, runs in groups.items():
      curves = [c for c in (curve_of(run) for run in runs) if c]
      if not curves:
        continue
      steps = sorted(set.intersection(*(set(c) for c in curves)))
      steps = [s for s in steps if s <= max_step]
      values = np.asarray([[c[s] for s in steps] for c in curves])  # [seeds, steps]
      line, = ax.plot(steps, values.mean(0), '.-' if curve_of is validation_curve else '-',
                      label=f'{_label(key, several)} ({len(curves)})')
      ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    ax.set(xlabel='update', ylabel=ylabel, yscale='log', title=title)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def write_report(workdirs: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown file `out` and its figures beside it; returns the markdown."""
  runs = [load_run(w) for w in workdirs]
  scores = {run.name: read_scores(w) for run, w in zip(runs, workdirs)}
  folders = {run.name: w for run, w in zip(runs, workdirs)}
  groups = group_runs(runs)
  several = len({key[0] for key in groups}) > 1
  folder, stem = os.path.dirname(out) or '.', os.path.splitext(os.path.basename(out))[0]
  os.makedirs(folder, exist_ok=True)
  figure = f'{stem}_training_nll.png'
  plot_training_nll(groups, os.path.join(folder, figure))

  methods, curve_rows, layer_rows, size_rows = [], [], [], []
  for key, members in groups.items():
    name = method_name(key[1])
    s = [scores[run.name] for run in members]
    methods.append(MethodRuns(key[1], key[0], members, s))
    curves = [training_curve(run) for run in members]
    validation = [validation_curve(run) for run in members]
    curve_rows.append([name, key[0]] + [mean_spread([value_at(c, step) for c in curves], 3)
                                        for step in CHECKPOINTS]
                      + [mean_spread([v.get(step) for v in validation], 3) for step in CHECKPOINTS])
    fractions = np.mean([x['layer_fraction_by_position'] for x in s], axis=0)  # [T, L]
    words = np.asarray(s[0]['words_by_position'])
    for t, row in enumerate(fractions):
      if words[t]:
        layer_rows.append([name, key[0], str(t + 1), f'{int(words[t]):,}',
                           *(f'{100 * f:.1f}' for f in row)])
    size_rows += _size_rows(name, key[0], s)
  num_layers = len(next(iter(scores.values()))['layer_fraction_by_position'][0])
  text = [
      '# WS-RAM captioning: multi-scale attention over a convolutional pyramid '
      '(Ba et al. 2015, sec. 5.2)\n\n',
      f'{len(runs)} runs of `experiments/ws_ram_captioning.py`, written by '
      '`python -m glimpse_jax.reports.ws_ram_captioning`; mean ± sample std over seeds. '
      'Data: canvases of MNIST digits captioned left to right '
      '(a stand-in: the paper\'s numbers are on **Flickr8k, a different dataset**, shown only '
      'for scale). BLEU-n is sacrebleu\'s corpus BLEU with n-grams up to n (digits as words, '
      'one reference), on greedy captions of the whole test split (n/a where no caption has '
      'n words: no n-gram to match); *exact %* counts captions '
      'right to the end token; *test NLL / word* is -log (1/K) sum_k p(y | a_k, x) with K '
      'prior samples, per word (end token included). *Minutes*: wall time of the caption '
      'phase.\n\n',
      '## Test captions\n\n',
      markdown_table(BLEU_COLUMNS, methods),
      '\n## Training speed (the paper\'s Figure 6)\n\n',
      '*Training*: NLL per word, -log (1/K) sum_k w_k over each method\'s own K samples (the '
      'importance-weighted bound: the same quantity for every method, though a better proposal '
      'makes it tighter), averaged over the last five logged intervals before each update '
      'count. *Validation*: -log (1/K) sum_k p(y | a_k, x) per word with K prior samples, the '
      'same estimator for every method, on the first validation captions at that update.\n\n',
      markdown(['method', 'canvases'] + [f'training, {s // 1000}k updates' for s in CHECKPOINTS]
               + [f'validation, {s // 1000}k' for s in CHECKPOINTS], curve_rows),
      f'\n![training NLL per word against updates]({figure})\n',
      '\n## Layer chosen per word position (greedy, test split, mean over seeds)\n\n',
      'Layer 0 is the finest map (after one 2x2 pooling); each deeper layer halves the side.\n\n',
      markdown(['method', 'canvases', 'word', 'words',
                *(f'layer {l} %' for l in range(num_layers))], layer_rows),
  ]
  if size_rows:
    text += [
        '\n## Layer chosen against the digit\'s side (greedy, test split, mean over seeds)\n\n',
        'Each digit word, binned by the side in pixels of the digit it names (whatever word was '
        'decoded); *word error*: how often that word is wrong. On 64x64 canvases the three windows are 6, 12 and 24 px wide (3 cells of 2, '
        '4 and 8 px): a layer that follows size moves right down the table. Runs from before '
        'this readout are not in it.\n\n',
        markdown(['method', 'canvases', 'digit side (px)', 'words',
                  *(f'layer {l} %' for l in range(num_layers)), 'word error %'], size_rows)]
  for key, members in groups.items():
    source = os.path.join(folders[members[0].name], 'caption_windows.png')
    if os.path.isfile(source):
      method = key[1]
      canvases = re.sub(r'[^0-9a-z]+', '-', key[0]).strip('-')  # '64x64-1-3-digits-21-28-px'
      name = f'{stem}_{method}_{canvases}_windows.png'
      shutil.copyfile(source, os.path.join(folder, name))
      text.append(f'\n{method_name(method)}, {key[0]}, seed '
                  f"{members[0].results['config']['seed']}: the window read per generated word "
                  f'(colour: layer)\n\n![{method} windows]({name})\n')
  return write_page(text, out, notes)


def _size_rows(name: str, canvases: str, scores: Sequence[dict]) -> list[list[str]]:
  """The layer-against-digit-size lines of one method's runs; none unless every run has them."""
  if not scores or not all('layer_fraction_by_size' in x for x in scores):
    return []
  fractions = np.mean([x['layer_fraction_by_size'] for x in scores], axis=0)  # [bins, L]
  words = scores[0]['words_by_size']  # [bins] the same test split in every run
  edges = scores[0]['size_bins']
  errors = [x.get('word_error_by_size') for x in scores]
  error = (lambda i: mean_spread([100 * e[i] for e in errors], 1)) if all(errors) else (
      lambda i: '-')
  return [[name, canvases, f'{edges[i]}-{edges[i + 1] - 1}', f'{int(words[i]):,}',
           *(f'{100 * f:.1f}' for f in row), error(i)]
          for i, row in enumerate(fractions) if words[i]]


def main(argv: Sequence[str] | None = None) -> None:
  run_chapter(write_report, 'python -m glimpse_jax.reports.ws_ram_captioning',
              __doc__.splitlines()[0], runs_help='caption-phase workdirs', argv=argv)


if __name__ == '__main__':
  main()
