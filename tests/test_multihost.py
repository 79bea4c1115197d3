"""main.py --distributed: two processes of 4 CPU devices train RAM as one process of 8 does.

The processes meet through `jax.distributed` on localhost (gloo collectives on CPU), each feeding
its half of every global batch (plain MNIST from the host) or drawing its devices' rows of it
inside the step (translated canvases); the parameters, logged metrics and test numbers must match
those of a single process with 8 fake devices.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from glimpse_jax import train
from glimpse_jax.train import loop, stopping

REPO = pathlib.Path(__file__).resolve().parents[1]
# A few seconds of a small RAM: 6 updates of 16 examples, checkpoints at 3 and 6, 32 test examples.
ARGS = ('--config=experiments/ram.py:smoke', '--config.num_steps=6', '--config.batch_size=16',
        '--config.eval.batch_size=16', '--config.dataset.eval_examples=32',
        '--config.eval.mc_samples=1', '--config.log_every=2', '--config.checkpoint_every=3',
        '--config.model.num_glimpses=2', '--config.model.core_features=32',
        '--config.model.glimpse_features=32', '--config.model.what_features=16',
        '--config.model.where_features=16')
# Where the batches come from: the host stream, or canvases drawn in the step (RAM's
# `dataset.sample_on_device`).
DATASETS = {'host': (),
            'drawn_in_step': ('--config.dataset.name=translated', '--config.dataset.canvas_size=32')}
BIND_FAILURE = 'Failed to add port'  # the coordinator's port was taken after we picked it


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start(workdir, data_dir, devices, *flags, log_name=None):
  """Starts main.py on `devices` fake CPU devices; output goes to a log file beside `workdir`."""
  env = subprocess_env(devices)
  log = open(f'{log_name or workdir}.log', 'w')
  command = [sys.executable, str(REPO / 'main.py'), *ARGS, f'--workdir={workdir}',
             f'--config.dataset.data_dir={data_dir}', *flags]
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(processes, timeout=120) -> list[int]:
  """Exit codes of `processes`; once one fails the others are killed (they would wait for it)."""
  deadline = time.monotonic() + timeout
  while any(p.poll() is None for p in processes):
    failed = any(p.returncode not in (None, 0) for p in processes)
    if failed or time.monotonic() > deadline:
      for p in processes:
        if p.poll() is None:
          p.kill()
      for p in processes:
        p.wait()
      break
    time.sleep(0.05)
  return [p.returncode for p in processes]


def _start_two_processes(workdir, data_dir, port, *flags):
  """Starts main.py as 2 processes x 4 devices on one workdir; logs go to <workdir>-<i>.log."""
  return [_start(workdir, data_dir, 4, '--distributed', f'--coordinator_address=localhost:{port}',
                 '--num_processes=2', f'--process_id={i}', *flags, log_name=f'{workdir}-{i}')
          for i in range(2)]


def _train_two_processes(tmp_path, data_dir, *flags, attempts=3) -> str:
  """Runs main.py as 2 processes x 4 devices; returns the shared workdir."""
  for attempt in range(attempts):
    workdir, port = str(tmp_path / f'two-{attempt}'), _free_port()
    processes = _start_two_processes(workdir, data_dir, port, *flags)
    codes = _wait(processes)
    logs = [pathlib.Path(f'{workdir}-{i}.log').read_text() for i in range(2)]
    if codes == [0, 0]:
      return workdir
    if BIND_FAILURE not in logs[0]:
      pytest.fail(f'exit codes {codes}\n--- process 0:\n{logs[0]}\n--- process 1:\n{logs[1]}')
  pytest.fail(f'port {port} already in use on {attempts} attempts')


@pytest.mark.multihost
@pytest.mark.parametrize('source', sorted(DATASETS))
def test_two_processes_of_four_devices_train_like_one_of_eight(source, data_dir, tmp_path):
  one = str(tmp_path / 'one')
  single = _start(one, data_dir, 8, *DATASETS[source])
  two = _train_two_processes(tmp_path, data_dir, *DATASETS[source])
  (code,) = _wait([single])
  assert code == 0, pathlib.Path(f'{one}.log').read_text()

  results_one, results_two = train.read_results(one), train.read_results(two)
  assert results_one['devices'].startswith('8 x') and results_two['devices'].startswith('8 x')
  assert sorted(os.listdir(os.path.join(two, 'checkpoints'))) == ['3', '6']
  # Only the reduction order of the gradient all-reduce differs: within one process, or across
  # two through gloo. Six Adam updates leave the parameters within ~1e-7 of each other.
  leaves_one = jax.tree.leaves_with_path(train.load_params(one))
  leaves_two = jax.tree.leaves(train.load_params(two))
  assert len(leaves_one) == len(leaves_two)
  for (path, a), b in zip(leaves_one, leaves_two):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  lines_one, lines_two = train.read_metrics(one, 'train'), train.read_metrics(two, 'train')
  assert [r['step'] for r in lines_two] == [2, 4, 6]
  for a, b in zip(lines_one, lines_two):
    for name in ('loss', 'nll', 'grad_norm'):
      assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), (a['step'], name)
  assert results_two['test_examples'] == results_one['test_examples'] == 32
  assert results_two['test_nll'] == pytest.approx(results_one['test_nll'], rel=1e-5)


def test_process_flags_need_distributed(tmp_path):
  workdir = str(tmp_path / 'run')
  (code,) = _wait([_start(workdir, '/nonexistent', 1, '--num_processes=2', '--process_id=1')])
  log = pathlib.Path(f'{workdir}.log').read_text()
  assert code != 0 and '--num_processes, --process_id need --distributed' in log, log
  assert not os.path.exists(workdir)


def _signal_process_1_once_training(processes, workdir) -> list[int | None] | None:
  """Sends SIGTERM to process 1 once the run has logged training; returns the exit codes (None
  for a process still running 60 s later), or None if a process ended before training."""
  deadline = time.monotonic() + 90
  while not (os.path.exists(os.path.join(workdir, 'metrics.jsonl'))
             and train.read_metrics(workdir, 'train')):
    if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
      return None
    time.sleep(0.01)
  processes[1].send_signal(signal.SIGTERM)
  deadline = time.monotonic() + 60
  while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
    time.sleep(0.05)
  return [p.poll() for p in processes]


@pytest.mark.multihost
def test_a_signal_to_one_process_stops_both_at_one_saved_step(data_dir, tmp_path):
  """SIGTERM reaches process 1 only: both save the same step's checkpoint and exit (neither
  waits alone in the next update's all-reduce)."""
  for attempt in range(3):
    workdir = str(tmp_path / f'two-{attempt}')
    processes = _start_two_processes(workdir, data_dir, _free_port(),
                                     '--config.num_steps=100000', '--config.checkpoint_every=0')
    try:
      codes = _signal_process_1_once_training(processes, workdir)
    finally:
      for p in processes:
        p.kill()
        p.wait()
    logs = [pathlib.Path(f'{workdir}-{i}.log').read_text() for i in range(2)]
    if codes is not None or BIND_FAILURE not in logs[0]:
      break
  assert codes == [128 + signal.SIGTERM] * 2, logs
  (saved,) = sorted(int(name) for name in os.listdir(os.path.join(workdir, 'checkpoints'))
                    if name.isdigit())
  assert saved % loop.SIGNAL_CHECK_EVERY == 0 and saved < 100000, saved
  assert f'stopped by signal {int(signal.SIGTERM)} after step {saved}; saved' in logs[0], logs


def test_processes_agree_on_the_largest_signal_received(monkeypatch):
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  sent = []
  def allgather(value):
    sent.append(int(value))
    return np.array([int(value), int(signal.SIGTERM)], np.int32)  # the other one was signalled
  monkeypatch.setattr(stopping.multihost_utils, 'process_allgather', allgather)
  requests = stopping.StopRequests()
  assert requests.agree() == signal.SIGTERM and sent == [0]
  assert not requests.requested  # a peer's signal is not this process's own: a first one here
  requests._handle(signal.SIGINT, None)  # pylint: disable=protected-access  # does not raise
  assert requests.agree() == signal.SIGTERM and sent == [0, int(signal.SIGINT)]
  with pytest.raises(KeyboardInterrupt):  # a second signal here stops at once
    requests._handle(signal.SIGINT, None)  # pylint: disable=protected-access
  with pytest.raises(SystemExit) as exit_info:
    stopping.StopRequests.raise_for_signal(signal.SIGTERM)
  assert exit_info.value.code == 128 + signal.SIGTERM
