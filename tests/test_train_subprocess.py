"""main.py in subprocesses: kill -9 and resume, SIGTERM, 8 fake devices, command-line errors.

The experiment is the toy classifier of test_train_loop.py, trained through main.py.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from glimpse_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = f'--config={REPO / "tests" / "test_train_loop.py"}:tiny'


def _start(workdir, data_dir, *overrides, devices=None, config=CONFIG):
  """Starts main.py on the toy experiment; output goes to files beside the workdir."""
  env = subprocess_env(devices)
  log = open(f'{workdir}.log', 'a')
  command = [sys.executable, str(REPO / 'main.py'), config, f'--workdir={workdir}',
             f'--config.dataset.data_dir={data_dir}', *overrides]
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(process, workdir, timeout=120):
  process.wait(timeout=timeout)
  return process.returncode, pathlib.Path(f'{workdir}.log').read_text()


def _checkpoint_steps(workdir):
  folder = os.path.join(workdir, 'checkpoints')
  names = os.listdir(folder) if os.path.isdir(folder) else []
  return sorted(int(name) for name in names if name.isdigit())


def _wait_for(condition, process, what, timeout=90):
  deadline = time.monotonic() + timeout
  while not condition():
    if process.poll() is not None:
      pytest.fail(f'the run ended (exit {process.returncode}) before {what}')
    if time.monotonic() > deadline:
      process.kill()
      pytest.fail(f'timed out waiting for {what}')
    time.sleep(0.01)


def _assert_same_params(workdir_a, workdir_b):
  leaves_a = jax.tree.leaves_with_path(train.load_params(workdir_a))
  leaves_b = jax.tree.leaves(train.load_params(workdir_b))
  assert len(leaves_a) == len(leaves_b)
  for (path, a), b in zip(leaves_a, leaves_b):
    assert np.array_equal(a, b), f'{jax.tree_util.keystr(path)} differs'


@pytest.mark.slow
def test_kill_9_and_restart_ends_with_the_uninterrupted_parameters(data_dir, tmp_path):
  # A 5 ms host pause per step (no numerical effect) leaves time to kill the run mid-way.
  args = ('--config.num_steps=150', '--config.checkpoint_every=20', '--config.log_every=10',
          '--config.eval_every=0', '--config.loss.step_delay_ms=5')
  reference, killed = str(tmp_path / 'reference'), str(tmp_path / 'killed')
  reference_run = _start(reference, data_dir, *args)
  killed_run = _start(killed, data_dir, *args)
  _wait_for(lambda: _checkpoint_steps(killed), killed_run, 'the first checkpoint')
  killed_run.send_signal(signal.SIGKILL)
  code, log = _finish(killed_run, killed)
  assert code == -signal.SIGKILL, log
  assert not os.path.exists(os.path.join(killed, 'results.json'))
  checkpoint = max(_checkpoint_steps(killed))
  assert 20 <= checkpoint < 150

  code, log = _finish(_start(killed, data_dir, *args), killed)
  assert code == 0, log
  assert train.read_results(killed)['start_step'] == checkpoint
  code, log = _finish(reference_run, reference)
  assert code == 0, log
  _assert_same_params(reference, killed)
  steps = [r['step'] for r in train.read_metrics(killed, 'train')]
  assert steps == list(range(10, 151, 10))  # lines past the checkpoint were dropped, then redone
  assert train.read_results(killed)['test_error'] == train.read_results(reference)['test_error']


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_before_exiting_and_the_run_resumes(data_dir, tmp_path, signum):
  workdir = str(tmp_path / 'signalled')
  args = ('--config.checkpoint_every=0', '--config.log_every=10', '--config.eval_every=0')
  run = _start(workdir, data_dir, '--config.num_steps=5000', '--config.loss.step_delay_ms=5',
               *args)
  _wait_for(lambda: train.read_metrics(workdir, 'train'), run, 'the first log line')
  run.send_signal(signum)
  code, log = _finish(run, workdir, timeout=60)
  # SIGTERM exits with 128 + 15; SIGINT ends as an uncaught KeyboardInterrupt does.
  assert code in ((128 + signum,) if signum == signal.SIGTERM else (-signum, 128 + signum)), log
  assert f'stopped by signal {int(signum)}' in log
  (saved,) = _checkpoint_steps(workdir)
  assert 10 <= saved < 5000

  code, log = _finish(_start(workdir, data_dir, f'--config.num_steps={saved + 5}', *args),
                      workdir)
  assert code == 0, log
  assert train.read_results(workdir)['start_step'] == saved
  assert max(_checkpoint_steps(workdir)) == saved + 5


@pytest.mark.slow
def test_eight_devices_train_like_one(data_dir, tmp_path):
  args = ('--config.num_steps=4', '--config.log_every=1', '--config.eval_every=0',
          '--config.checkpoint_every=0')
  one, eight = str(tmp_path / 'one'), str(tmp_path / 'eight')
  runs = [(_start(one, data_dir, *args), one), (_start(eight, data_dir, *args, devices=8), eight)]
  for process, workdir in runs:
    code, log = _finish(process, workdir)
    assert code == 0, log
  assert train.read_results(one)['devices'].startswith('1 x')
  assert train.read_results(eight)['devices'].startswith('8 x')
  lines_one, lines_eight = train.read_metrics(one, 'train'), train.read_metrics(eight, 'train')
  assert [r['step'] for r in lines_eight] == [1, 2, 3, 4]
  for a, b in zip(lines_one, lines_eight):
    for name in ('loss', 'error', 'grad_norm'):
      assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), (a['step'], name)
  params_one, params_eight = train.load_params(one), train.load_params(eight)
  for a, b in zip(jax.tree.leaves(params_one), jax.tree.leaves(params_eight)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert (train.read_results(eight)['test_nll']
          == pytest.approx(train.read_results(one)['test_nll'], rel=1e-5))
  # Parameters taken from another run (restored on one device) go to all eight.
  grafted = str(tmp_path / 'grafted')
  code, log = _finish(_start(grafted, data_dir, *args, f'--config.init_from={one}', devices=8),
                      grafted)
  assert code == 0 and f'parameters from {one}' in log, log


def test_main_rejects_unknown_variants_and_mistyped_fields(data_dir, tmp_path):
  variant, typo = str(tmp_path / 'variant'), str(tmp_path / 'typo')
  runs = [(_start(variant, data_dir, config=CONFIG.replace(':tiny', ':tiiny')), variant),
          (_start(typo, data_dir, '--config.batch_sise=8'), typo)]
  (code_variant, log_variant), (code_typo, log_typo) = [_finish(p, w) for p, w in runs]
  assert code_variant != 0 and "unknown variant 'tiiny'; choose one of: tiny" in log_variant
  assert code_typo != 0 and 'did you mean batch_size' in log_typo, log_typo
  assert not os.path.exists(variant) and not os.path.exists(typo)
