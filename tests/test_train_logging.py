"""What a run shows while it trains: TensorBoard event files in the workdir (tags, a resumed run's
purge), the progress display (one bar updated in place in a notebook or on a terminal, plain
lines in a log file), and the long RAM / WS-RAM variants' evaluations during training."""

import importlib
import io
import os
import struct

import pytest
from tensorboardX.proto import event_pb2

from glimpse_jax.train import metrics
from glimpse_jax.train.metrics import ConsoleReporter, MetricsWriter


def read_events(folder) -> list[event_pb2.Event]:
  """Every event of the TensorBoard event files under `folder`, file by file in name order."""
  events = []
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), 'rb') as f:
      payload = f.read()
    offset = 0
    while offset < len(payload):
      (length,) = struct.unpack('<Q', payload[offset:offset + 8])
      start = offset + 12  # length, then its masked crc32c
      events.append(event_pb2.Event.FromString(payload[start:start + length]))
      offset = start + length + 4  # the data's masked crc32c
  return events


def scalars(events) -> list[tuple[str, int, float]]:
  return [(value.tag, event.step, pytest.approx(value.simple_value))
          for event in events for value in event.summary.value]


def test_metrics_writer_writes_tensorboard_events_in_the_workdir(tmp_path):
  writer = MetricsWriter(str(tmp_path))
  writer.write('train', 10, {'loss': 2.0, 'learning_rate': 1e-3})
  writer.write('eval', 10, {'split': 'validation', 'error': 0.5, 'full': False, 'final': False})
  writer.write('eval', 10, {'split': 'test', 'error': 0.25, 'examples': 200})
  writer.write('train', 20, {'loss': float('nan')})  # logged as 'nan' in metrics.jsonl only
  writer.close()
  assert sorted(os.listdir(tmp_path)) == ['metrics.jsonl', 'tensorboard']
  assert scalars(read_events(tmp_path / 'tensorboard')) == [
      ('train/loss', 10, 2.0), ('train/learning_rate', 10, 1e-3),
      ('eval/validation/error', 10, 0.5),  # one curve per split; flags are not curves
      ('eval/test/error', 10, 0.25), ('eval/test/examples', 10, 200)]


def test_a_resumed_run_purges_the_events_past_its_checkpoint(tmp_path):
  writer = MetricsWriter(str(tmp_path))
  for step in (10, 20, 30):
    writer.write('train', step, {'loss': float(step)})
  writer.close()
  # Killed after step 30, resumed from the checkpoint at 20: TensorBoard drops the first file's
  # events from step 20 on, so the kept record at 20 is written again, then the new steps.
  writer = MetricsWriter(str(tmp_path), resume_step=20)
  writer.write('train', 30, {'loss': 3.0})
  writer.close()
  assert len(os.listdir(tmp_path / 'tensorboard')) == 2  # one event file per call
  events = read_events(tmp_path / 'tensorboard')
  starts = [i for i, e in enumerate(events) if e.HasField('session_log')
            and e.session_log.status == event_pb2.SessionLog.START]
  assert [events[i].step for i in starts] == [0, 20]  # each call purges from its start step
  assert scalars(events[starts[1]:]) == [('train/loss', 20, 20.0), ('train/loss', 30, 3.0)]
  assert [(r['step'], r['loss']) for r in metrics.read_metrics(str(tmp_path))] == [
      (10, 10.0), (20, 20.0), (30, 3.0)]


def test_a_notebook_gets_one_bar_not_a_line_per_record(monkeypatch, capsys):
  monkeypatch.setattr(metrics, '_in_notebook', lambda: True)
  console = ConsoleReporter(10_000)  # no stream given: the notebook's stderr
  console.line('ram: 1,000 parameters, 10000 steps of 128')
  console.start(0)
  for step in range(100, 10_001, 100):
    console.train({'kind': 'train', 'step': step, 'loss': 1.0 / step, 'steps_per_second': 50.0,
                   'images_per_second': 6400.0})
    if step == 5_000:
      console.eval({'kind': 'eval', 'step': step, 'split': 'test', 'error': 0.1})
  console.close()
  console.line('test error 0.1000; results.json written')
  printed = capsys.readouterr().err
  # Three messages and the bar's one line, redrawn in place (a notebook renders each '\r').
  assert printed.count('\n') == 4, printed[-500:]
  assert printed.startswith('ram: 1,000 parameters')
  assert printed.splitlines()[-1] == 'test error 0.1000; results.json written'
  assert '100%|' in printed.split('\r')[-1] and '10000/10000' in printed.split('\r')[-1]
  assert 'eval at step 5000: split test error 0.1\n' in printed


def test_a_log_file_gets_plain_lines_and_a_terminal_a_bar(monkeypatch):
  monkeypatch.setattr(metrics, '_in_notebook', lambda: False)
  record = {'kind': 'train', 'step': 20, 'loss': 0.5, 'steps_per_second': 4.0,
            'images_per_second': 128.0}
  log = io.StringIO()
  ConsoleReporter(40, log).train(record)
  assert log.getvalue() == 'step 20/40  50% | 4.0 steps/s 128 img/s | ETA 0:00:05 | loss 0.5\n'

  class Terminal(io.StringIO):
    def isatty(self):
      return True

  terminal = Terminal()
  console = ConsoleReporter(40, terminal)
  console.start(10)  # a run resumed at step 10
  console.train(record)
  console.line('eval at step 20: error 0.5')
  console.train({**record, 'step': 40})
  console.close()
  screen = terminal.getvalue()
  assert screen.count('\n') == 2  # the message, then the finished bar
  assert 'eval at step 20: error 0.5\n' in screen
  assert screen.rstrip('\n').split('\r')[-1].startswith('100%|')


def test_a_process_other_than_the_first_shows_nothing(monkeypatch, capsys):
  monkeypatch.setattr(metrics, '_in_notebook', lambda: True)
  console = ConsoleReporter(100, enabled=False)
  console.start(0)
  console.train({'kind': 'train', 'step': 50, 'loss': 1.0})
  console.line('hello')
  console.close()
  assert capsys.readouterr().err == ''


@pytest.mark.parametrize('module', ['ram', 'ws_ram'])
def test_long_variants_evaluate_while_they_train(module):
  experiment = importlib.import_module(f'experiments.{module}')
  for variant in experiment.VARIANTS:
    config = experiment.get_config(variant)
    if variant == 'smoke':
      assert config.eval_every == 0, variant  # evaluated once, at the end
      continue
    # A point of the learning curve every eval_every updates, on a subset of the test split.
    assert config.eval_every and config.num_steps % config.eval_every == 0, variant
    assert config.num_steps // config.eval_every <= 100, variant
    assert 0 < config.eval_examples_during_training <= 1_000, variant
