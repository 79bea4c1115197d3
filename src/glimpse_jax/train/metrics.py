"""What a run reports: metrics.jsonl, TensorBoard events (`<workdir>/tensorboard/`), a progress
bar or plain lines, and at the end results.json, learning_curve.png and the experiment's plots.

metrics.jsonl holds one JSON object per line with `kind` ('train', 'eval' or 'grad_variance'),
`step` (updates done) and the values; a resumed run first drops lines past its checkpoint.
Every file goes through `files`, so a workdir may be a local folder or an object-store URI
(`gs://bucket/run`).
"""

import datetime
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any, TextIO

import jax
import ml_collections
import tensorboardX
import tqdm.auto
import tqdm.std
from absl import logging

from glimpse_jax import data, files
from glimpse_jax.plots import learning_curves
from glimpse_jax.train.experiment import Experiment

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'
RESULTS_FILE = 'results.json'
LEARNING_CURVE_FILE = 'learning_curve.png'
TENSORBOARD_DIR = 'tensorboard'
# In an object-store workdir, metrics.jsonl and the event files are uploaded at most this often
# while records arrive (and at every checkpoint and at the end).
SYNC_SECONDS = 30.0


def write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON atomically (temporary file, then rename)."""
  files.write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + '\n')


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes the run's `config.json` (sorted, indented) atomically."""
  files.write_atomic(os.path.join(workdir, CONFIG_FILE),
                     config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def read_config(workdir: str) -> ml_collections.ConfigDict | None:
  """The config a run saved in `workdir` (its `config.json`); None when it saved none."""
  path = files.as_path(workdir) / CONFIG_FILE
  if not path.exists():
    return None
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def read_metrics(workdir: str, kind: str | None = None) -> list[dict[str, Any]]:
  """The records of `<workdir>/metrics.jsonl` (only those of `kind` if given).

  A malformed line (a process killed mid-write, two writers interleaved) is skipped with a
  warning naming its line number, wherever it is.
  """
  path = files.as_path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  records, bad = [], []
  with path.open() as f:
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


class MetricsWriter:
  """Appends records to metrics.jsonl and to TensorBoard event files in `<workdir>/tensorboard/`
  (tensorboardX; TensorFlow is never needed); `enabled=False` on every process but the first of a
  multi-host run.

  Scalars are tagged `<kind>/<name>`, or `<kind>/<split>/<name>` for a record with a split; a
  resumed run's events replace the earlier events from its checkpoint's step on (TensorBoard's
  purge), as its lines do in metrics.jsonl. In an object-store workdir both are written in a local
  folder and uploaded whole (one object per file) at most every SYNC_SECONDS while records arrive,
  at every `flush` and at `close`.
  """

  def __init__(self, workdir: str, *, resume_step: int = 0, enabled: bool = True):
    self._workdir = workdir
    self._file = self._tensorboard = self._staging = None
    # The records a run resumed at `resume_step` keeps, on every process (the loop reads them).
    self.kept = [r for r in read_metrics(workdir) if _kept_on_resume(r, resume_step)]
    if not enabled:
      return
    local = workdir
    if not files.is_local(workdir):
      local = self._staging = tempfile.mkdtemp(prefix='glimpse_jax-metrics-')
    self._synced = time.monotonic()
    self._file = open(os.path.join(local, METRICS_FILE), 'w')
    for record in self.kept:
      self._file.write(json.dumps(record) + '\n')
    self._file.flush()
    # Event files are named by the second they were opened: the suffix keeps two calls within a
    # second apart, in order (TensorBoard reads a folder's files in name order).
    self._tensorboard = tensorboardX.SummaryWriter(
        os.path.join(local, TENSORBOARD_DIR), purge_step=resume_step, flush_secs=SYNC_SECONDS,
        filename_suffix=f'.{time.time_ns()}')
    for record in self.kept:  # the purge drops the earlier events at the checkpoint's step too
      if record['step'] >= resume_step:
        self._add_scalars(record)

  def write(self, kind: str, step: int, values: Mapping[str, float]) -> dict[str, Any]:
    """Records `values` of `kind` at `step`; returns the record."""
    record = {'kind': kind, 'step': int(step), **{k: _plain(v) for k, v in values.items()}}
    if self._file is not None:
      self._file.write(json.dumps(record) + '\n')
      self._file.flush()
      self._add_scalars(record)
      if self._staging is not None and time.monotonic() - self._synced >= SYNC_SECONDS:
        self.flush()
    return record

  def _add_scalars(self, record: Mapping[str, Any]) -> None:
    group = f'{record["kind"]}/{record["split"]}' if 'split' in record else record['kind']
    for name, value in record.items():
      if name not in ('kind', 'step', 'split') and _is_scalar(value):
        self._tensorboard.add_scalar(f'{group}/{name}', value, record['step'])

  def flush(self) -> None:
    """Makes every record written so far readable in the workdir (uploads them to an object
    store)."""
    if self._file is None:
      return
    self._file.flush()
    self._tensorboard.flush()
    if self._staging is not None:
      _upload(self._staging, self._workdir)
      self._synced = time.monotonic()

  def close(self) -> None:
    if self._file is None:
      return
    self._tensorboard.close()
    self._file.close()
    if self._staging is not None:
      _upload(self._staging, self._workdir)
      shutil.rmtree(self._staging, ignore_errors=True)
    self._file = None


def _is_scalar(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _upload(local: str, workdir: str) -> None:
  """Copies every file under the folder `local` to the same relative path under `workdir`."""
  for folder, _, names in os.walk(local):
    for name in names:
      relative = os.path.relpath(os.path.join(folder, name), local)
      with open(os.path.join(folder, name), 'rb') as f:
        files.write_atomic(files.as_path(workdir) / relative, f.read())


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


# tqdm's bar without its own rate: the postfix holds the rate measured between logged records.
_BAR_FORMAT = '{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]'


def _in_notebook() -> bool:
  """Whether this process is a Jupyter (or Colab) kernel."""
  ipython = sys.modules.get('IPython')
  try:
    return ipython is not None and 'IPKernelApp' in ipython.get_ipython().config
  except Exception:  # pylint: disable=broad-except
    return False


def _isatty(stream: TextIO) -> bool:
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False


class ConsoleReporter:
  """Progress through `num_steps` units (`unit`: updates, stored chunks): one tqdm bar with its
  ETA, updated in place, in a notebook (a widget where ipywidgets is installed) or on a terminal;
  plain lines, one per record, elsewhere (a log file)."""

  def __init__(self, num_steps: int, stream: TextIO | None = None, *, enabled: bool = True,
               unit: str = 'step'):
    self._num_steps, self._unit = num_steps, unit
    self._notebook = stream is None and _in_notebook()
    self._stream = stream or sys.stderr
    self._enabled = enabled
    self._use_bar = enabled and (self._notebook or _isatty(self._stream))
    self._bar = None

  def start(self, done: int = 0) -> None:
    """Opens the bar at `done` units (where a resumed run starts); its rate and ETA count from
    now. The first update opens it otherwise."""
    if self._use_bar and self._bar is None:
      bar = tqdm.auto.tqdm if self._notebook else tqdm.std.tqdm
      self._bar = bar(total=self._num_steps, initial=done, unit=self._unit, file=self._stream,
                      dynamic_ncols=True, mininterval=0, miniters=1, leave=True,
                      bar_format=_BAR_FORMAT)

  def close(self) -> None:
    """Leaves the bar as it is and prints what follows below it."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None

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
    if self._use_bar:
      self.start()
      self._bar.set_postfix_str(f'{speed}{text}', refresh=False)
      self._bar.update(done - self._bar.n)
      return
    eta = (self._num_steps - done) / rate if rate and rate > 0 else float('nan')
    progress = (f'{done}/{self._num_steps} {100 * done / self._num_steps:3.0f}% | {speed}'
                f'ETA {_duration(eta)} | {text}')
    self._stream.write(f'{prefix}{progress}\n')
    self._stream.flush()

  def line(self, text: str) -> None:
    """Prints a message on its own line (above the bar, which stays at the bottom)."""
    if not self._enabled:
      return
    if self._bar is not None:
      self._bar.write(text, file=self._stream)
      return
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
  return json.loads((files.as_path(workdir) / RESULTS_FILE).read_text())


def write_plots(workdir: str, experiment: Experiment, params: Any,
                config: ml_collections.ConfigDict, rng: jax.Array) -> None:
  """Draws the learning curve, then calls `experiment.plots` with the first test batch.

  Both write local files: for an object-store workdir they write into a local temporary folder,
  whose files are then uploaded to the workdir.
  """
  records = read_metrics(workdir)
  if files.is_local(workdir):
    _draw_plots(workdir, records, experiment, params, config, rng)
    return
  with tempfile.TemporaryDirectory(prefix='glimpse_jax-plots-') as local:
    _draw_plots(local, records, experiment, params, config, rng)
    _upload(local, workdir)


def _draw_plots(folder: str, records: list[dict[str, Any]], experiment: Experiment, params: Any,
                config: ml_collections.ConfigDict, rng: jax.Array) -> None:
  learning_curves.plot_learning_curves(records, os.path.join(folder, LEARNING_CURVE_FILE),
                                config.headline)
  if experiment.plots is None:
    return
  batch = next(data.eval_batches(config.dataset, config.eval.batch_size))
  experiment.plots(params, batch, rng, folder)
