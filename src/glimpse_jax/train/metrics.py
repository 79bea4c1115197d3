"""What a run reports: metrics.jsonl, optional TensorBoard events, a progress bar or plain lines,
and at the end results.json, learning_curve.png and the experiment's plots.

metrics.jsonl holds one JSON object per line with `kind` ('train', 'eval' or 'grad_variance'),
`step` (updates done) and the values; a resumed run first drops lines past its checkpoint.
"""

import datetime
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import jax
import ml_collections
from absl import logging

from glimpse_jax import data, files, plotting
from glimpse_jax.train.experiment import Experiment

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'
RESULTS_FILE = 'results.json'
LEARNING_CURVE_FILE = 'learning_curve.png'


def write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON atomically (temporary file, then rename)."""
  files.write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes the run's `config.json` (sorted, indented) atomically."""
  files.write_atomic(os.path.join(workdir, CONFIG_FILE),
                     config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def read_config(workdir: str) -> ml_collections.ConfigDict | None:
  """The config a run saved in `workdir` (its `config.json`); None when it saved none."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def read_metrics(workdir: str, kind: str | None = None) -> list[dict[str, Any]]:
  """The records of `<workdir>/metrics.jsonl` (only those of `kind` if given).

  A malformed line (a process killed mid-write, two writers interleaved) is skipped with a
  warning naming its line number, wherever it is.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  records, bad = [], []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        bad.append(number)
        continue
      if isinstance(record, dict) and 'kind' in record and 'step' in record:
        records.append(record)
      else:
        bad.append(number)
  if bad:
    logging.warning('%s: skipped %d malformed line(s): %s', path, len(bad),
                    ', '.join(map(str, bad[:10])) + (' ...' if len(bad) > 10 else ''))
  return [r for r in records if kind is None or r['kind'] == kind]


def _tensorboard_writer(workdir: str):
  """A tensorboardX writer when that package is installed (TensorFlow is never needed)."""
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return SummaryWriter(os.path.join(workdir, 'tensorboard'))


class MetricsWriter:
  """Appends records to metrics.jsonl (and TensorBoard when available); `enabled=False` on
  every process but the first of a multi-host run."""

  def __init__(self, workdir: str, *, resume_step: int = 0, enabled: bool = True):
    self._enabled = enabled
    self._file = self._tensorboard = None
    # The records a run resumed at `resume_step` keeps, on every process (the loop reads them).
    self.kept = [r for r in read_metrics(workdir) if _kept_on_resume(r, resume_step)]
    if not enabled:
      return
    self._file = open(os.path.join(workdir, METRICS_FILE), 'w')
    for record in self.kept:
      self._file.write(json.dumps(record) + '\n')
    self._file.flush()
    self._tensorboard = _tensorboard_writer(workdir)

  def write(self, kind: str, step: int, values: Mapping[str, float]) -> dict[str, Any]:
    """Records `values` of `kind` at `step`; returns the record."""
    record = {'kind': kind, 'step': int(step), **{k: _plain(v) for k, v in values.items()}}
    if self._file is not None:
      self._file.write(json.dumps(record) + '\n')
      self._file.flush()
    if self._tensorboard is not None:
      for name, value in values.items():
        if isinstance(value, (int, float)):
          self._tensorboard.add_scalar(f'{kind}/{name}', value, step)
    return record

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._tensorboard is not None:
      self._tensorboard.close()


def _kept_on_resume(record: Mapping[str, Any], resume_step: int) -> bool:
  """Whether a run resumed at `resume_step` keeps `record`: not when the resumed run writes it
  again (a step past the checkpoint, the gradient variance at the checkpoint's own step, the
  final evaluation)."""
  if record['kind'] == 'grad_variance':  # measured before the update of its step
    return record['step'] < resume_step
  return record['step'] <= resume_step and not record.get('final')


def _plain(value: Any) -> Any:
  """A JSON-friendly Python number (NaN and infinities become strings)."""
  if hasattr(value, 'item'):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


# ---------------------------------------------------------------------------------------------
# Console.
# ---------------------------------------------------------------------------------------------
_SKIP_ON_CONSOLE = ('kind', 'step', 'wall_seconds', 'steps_per_second', 'images_per_second',
                    'learning_rate')


def _duration(seconds: float) -> str:
  return str(datetime.timedelta(seconds=round(seconds))) if math.isfinite(seconds) else '?'


def _values(record: Mapping[str, Any]) -> str:
  return ' '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}'
                  for k, v in record.items() if k not in _SKIP_ON_CONSOLE)


class ConsoleReporter:
  """A progress bar with ETA on a terminal, plain lines (one per record) otherwise."""

  def __init__(self, num_steps: int, stream: TextIO | None = None, *, enabled: bool = True):
    self._num_steps = num_steps
    self._stream = stream or sys.stderr
    self._enabled = enabled
    self._bar = enabled and self._stream.isatty()
    self._bar_open = False

  def train(self, record: Mapping[str, Any]) -> None:
    step, rate = record['step'], record.get('steps_per_second', float('nan'))
    self._draw(step, rate, f'{rate:.1f} steps/s {record.get("images_per_second", 0):.0f} img/s | ',
               _values(record), prefix='step ')

  def progress(self, done: int, rate: float, text: str = '') -> None:
    """Shows `done` of the `num_steps` units (e.g. stored chunks, `rate` per second) and `text`."""
    self._draw(done, rate, '', text)

  def _draw(self, done: int, rate: float, speed: str, text: str, prefix: str = '') -> None:
    """The bar (or a plain line) for `done` of `num_steps` with an ETA at `rate` units/s."""
    if not self._enabled:
      return
    eta = (self._num_steps - done) / rate if rate and rate > 0 else float('nan')
    progress = (f'{done}/{self._num_steps} {100 * done / self._num_steps:3.0f}% | {speed}'
                f'ETA {_duration(eta)} | {text}')
    if self._bar:
      filled = int(30 * done / self._num_steps)
      self._stream.write(f'\r[{"#" * filled}{"." * (30 - filled)}] {progress}\x1b[K')
      self._bar_open = True
    else:
      self._stream.write(f'{prefix}{progress}\n')
    self._stream.flush()

  def line(self, text: str) -> None:
    """Prints a message on its own line (below the bar, which the next update redraws)."""
    if not self._enabled:
      return
    if self._bar_open:
      self._stream.write('\n')
      self._bar_open = False
    self._stream.write(text + '\n')
    self._stream.flush()

  def eval(self, record: Mapping[str, Any]) -> None:
    self.line(f'{record["kind"]} at step {record["step"]}: {_values(record)}')


# ---------------------------------------------------------------------------------------------
# The end of a run.
# ---------------------------------------------------------------------------------------------
def write_results(workdir: str, results: dict[str, Any]) -> None:
  """Writes results.json (atomically, so a reader never sees half of it)."""
  write_json(os.path.join(workdir, RESULTS_FILE), results)


def read_results(workdir: str) -> dict[str, Any]:
  """The results.json of a finished run."""
  with open(os.path.join(workdir, RESULTS_FILE)) as f:
    return json.load(f)


def write_plots(workdir: str, experiment: Experiment, params: Any,
                config: ml_collections.ConfigDict, rng: jax.Array) -> None:
  """Draws the learning curve, then calls `experiment.plots` with the first test batch."""
  plotting.plot_learning_curves(read_metrics(workdir), os.path.join(workdir, LEARNING_CURVE_FILE),
                                config.headline)
  if experiment.plots is None:
    return
  batch = next(data.eval_batches(config.dataset, config.eval.batch_size))
  experiment.plots(params, batch, rng, workdir)
