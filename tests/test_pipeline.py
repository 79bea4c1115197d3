"""Multi-phase pipelines through `make experiment`: pre-training -> grafted classifier and
teacher -> student, each killed with SIGKILL in its second phase and resumed bit for bit."""

import json
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


def _make(workdir, data_dir, variant, *args):
  """Starts `make experiment NAME=tiny_pipelines` in its own process group."""
  env = subprocess_env()
  overrides = ' '.join([f'--config.phases.{p}.dataset.data_dir={data_dir}'
                        for p in _phases(variant)] + list(args))
  command = ['make', '-s', 'experiment', 'NAME=tiny_pipelines', f'CONFIG={variant}',
             f'WORKDIR={workdir}', f'PYTHON={sys.executable}', f'ARGS={overrides}']
  log = open(f'{workdir}.log', 'a')
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)


def _phases(variant):
  return {'pretrain_classify': ('pretrain', 'classify'), 'distill': ('teacher', 'student')}[variant]


def _run(workdir, data_dir, variant, *args):
  process = _make(workdir, data_dir, variant, *args)
  process.wait(timeout=300)
  log = pathlib.Path(f'{workdir}.log').read_text()
  assert process.returncode == 0, log[-3000:]
  return log


def _checkpoint_steps(workdir):
  folder = os.path.join(workdir, 'checkpoints')
  names = os.listdir(folder) if os.path.isdir(folder) else []
  return sorted(int(name) for name in names if name.isdigit())


def _kill_during(workdir, data_dir, variant, phase, *args):
  """Runs the pipeline and SIGKILLs it once `phase` has saved a checkpoint and is still training."""
  process = _make(workdir, data_dir, variant, *args)
  phase_dir = os.path.join(workdir, phase)
  deadline = time.monotonic() + 240
  while not _checkpoint_steps(phase_dir):
    assert process.poll() is None, pathlib.Path(f'{workdir}.log').read_text()[-3000:]
    assert time.monotonic() < deadline, 'no checkpoint in the second phase'
    time.sleep(0.01)
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  assert not os.path.exists(os.path.join(phase_dir, 'results.json')), 'killed too late'


def _assert_same_params(a, b):
  leaves_a = jax.tree.leaves_with_path(train.load_params(a))
  leaves_b = jax.tree.leaves(train.load_params(b))
  assert len(leaves_a) == len(leaves_b)
  for (path, x), y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
@pytest.mark.parametrize('variant, steps', [
    ('pretrain_classify', ('--config.phases.pretrain.num_steps=60',
                           '--config.phases.classify.num_steps=1500',
                           '--config.phases.classify.checkpoint_every=100',
                           '--config.phases.classify.eval_every=500')),
    ('distill', ('--config.phases.teacher.num_steps=60',
                 '--config.phases.student.num_steps=1500',
                 '--config.phases.student.checkpoint_every=100',
                 '--config.phases.student.eval_every=500')),
])
def test_pipeline_killed_in_second_phase_resumes_bit_identical(tmp_path, data_dir, variant, steps):
  first, second = _phases(variant)
  reference = str(tmp_path / 'reference')
  _run(reference, data_dir, variant, *steps)
  results = json.loads(pathlib.Path(reference, 'results.json').read_text())
  assert results['pipeline'] == [first, second]
  assert results['phases'][second]['headline'] == 'error'
  # Seed 0: 5.8% test error for the grafted classifier, 13.65% for the student (chance 90%).
  most = {'pretrain_classify': 0.08, 'distill': 0.17}[variant]
  assert results['phases'][second]['test_error'] < most, results['phases'][second]
  if variant == 'pretrain_classify':
    assert results['phases'][first]['headline'] == 'bce'
    assert 'validation_error' in results['phases'][second]

  interrupted = str(tmp_path / 'interrupted')
  _kill_during(interrupted, data_dir, variant, second, *steps)
  log = _run(interrupted, data_dir, variant, *steps)
  assert f'tiny_pipelines:{first}: finished earlier, skipped' in log
  assert 'resumed from step' in log
  for phase in (first, second):
    _assert_same_params(os.path.join(reference, phase), os.path.join(interrupted, phase))


@pytest.mark.slow
def test_second_phase_alone_and_unknown_names(tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  steps = ('--config.phases.pretrain.num_steps=20', '--config.phases.classify.num_steps=20')
  process = _make(workdir, data_dir, 'pretrain_classify', '--phase=classify', *steps)
  process.wait(timeout=120)
  log = pathlib.Path(f'{workdir}.log').read_text()
  assert process.returncode != 0
  assert "takes init_from from phase 'pretrain', which has not finished" in log

  _run(workdir, data_dir, 'pretrain_classify', *steps)
  first = train.read_results(os.path.join(workdir, 'classify'))
  _run(workdir, data_dir, 'pretrain_classify', '--phase=classify', *steps[:1],
       '--config.phases.classify.num_steps=30')
  again = train.read_results(os.path.join(workdir, 'classify'))
  assert (first['steps'], again['steps']) == (20, 30)

  # In process, on the finished run: another spelling of its workdir finds both phases done; a
  # changed first phase may not train under the second's old results.
  sys.path.insert(0, str(REPO))
  from experiments import tiny_pipelines  # pylint: disable=g-import-not-at-top
  config = tiny_pipelines.get_config('pretrain_classify')
  with config.unlocked():
    for phase in config.pipeline:
      config.phases[phase].dataset.data_dir = data_dir
    config.phases.pretrain.num_steps, config.phases.classify.num_steps = 20, 30
  built = []
  make = lambda phase: built.append(phase.phase) or tiny_pipelines.make_experiment(phase)
  results = train.run_pipeline(config, f'{os.path.dirname(workdir)}/./run/', make)
  assert results['classify']['steps'] == 30 and not built
  with config.unlocked():
    config.phases.pretrain.num_steps = 40
  with pytest.raises(ValueError, match=r"phase 'pretrain' is about to train .* phase "
                                       r"'classify', which takes init_from from it, finished"):
    train.run_pipeline(config, workdir, make)
  assert not built and train.read_results(os.path.join(workdir, 'pretrain'))['steps'] == 20

  env = subprocess_env()
  for argument, expected in (('experiments/nope.py', "unknown experiment 'nope'; experiments in"),
                             ('experiments/tiny_pipelines.py:typo', "unknown variant 'typo'")):
    done = subprocess.run([sys.executable, 'main.py', f'--config={argument}', '--workdir=x'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip().splitlines()[-1]]
    assert expected in done.stderr


@pytest.mark.parametrize('variant', ['smoke', 'stored_distill'])
def test_a_few_steps_of_each_phase_in_process(variant, tmp_path, data_dir):
  sys.path.insert(0, str(REPO))
  from experiments import tiny_pipelines  # pylint: disable=g-import-not-at-top
  config = tiny_pipelines.get_config(variant)
  with config.unlocked():
    for phase in config.pipeline:
      dataset = config.phases[phase].dataset
      dataset.update(data_dir=data_dir, train_examples=1_000, eval_examples=200,
                     validation_examples=min(dataset.validation_examples, 200))
      config.phases[phase].update(num_steps=3, log_every=1, eval_every=0, checkpoint_every=0)
  results = train.run_pipeline(config, str(tmp_path / 'run'), tiny_pipelines.make_experiment)
  assert list(results) == list(config.pipeline)
  last = results[config.pipeline[-1]]
  assert last['steps'] == 3 and np.isfinite(last['test_error'])


@pytest.mark.learning
def test_smoke_variant_learns(tmp_path, data_dir):
  sys.path.insert(0, str(REPO))
  from experiments import tiny_pipelines  # pylint: disable=g-import-not-at-top
  config = tiny_pipelines.get_config('smoke')
  with config.unlocked():
    for phase in config.pipeline:
      config.phases[phase].dataset.data_dir = data_dir
  start = time.monotonic()
  results = train.run_pipeline(config, str(tmp_path / 'smoke'), tiny_pipelines.make_experiment)
  assert time.monotonic() - start < 120
  assert results['pretrain']['headline'] == 'bce'
  assert results['classify']['test_error'] < 0.12, results  # seed 0: 0.0905; chance: 0.9
