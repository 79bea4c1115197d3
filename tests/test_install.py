"""The checkout installs (no network, dependencies reused) with its experiments and command."""

import os
import pathlib
import subprocess
import sys

import pytest
import setuptools

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_setup_cfg_lists_every_package():
  listed = (REPO / 'setup.cfg').read_text().split('packages =', 1)[1].split('python_requires')[0]
  packages = {line.strip() for line in listed.splitlines() if line.strip()}
  assert set(setuptools.find_packages(str(REPO / 'src'))) | {'glimpse_jax.experiments'} == packages


@pytest.mark.slow  # builds a wheel and trains a few steps in a fresh process: ~40 s on 2 cores
def test_installed_command_trains_and_predicts(data_dir, tmp_path):
  target = tmp_path / 'site'
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index',
                  '--no-build-isolation', '--target', str(target), str(REPO)], check=True,
                  cwd=tmp_path, timeout=300)
  assert (target / 'glimpse_jax' / 'experiments' / 'ram.py').is_file()
  assert not (target / 'glimpse_jax' / 'experiments' / 'ws_ram_variance.py').exists()
  env = {**os.environ, 'PYTHONPATH': str(target), 'GLIMPSE_DATA_DIR': data_dir}
  workdir = tmp_path / 'run'
  subprocess.run([str(target / 'bin' / 'glimpse-jax'), '--config=ram:smoke',
                  f'--workdir={workdir}', '--config.num_steps=2', '--config.batch_size=8',
                  '--config.eval.batch_size=8', '--config.dataset.eval_examples=16'],
                 check=True, cwd=tmp_path, env=env, timeout=300)
  script = ('import numpy as np, glimpse_jax; run = glimpse_jax.load_run("run"); '
            'out = glimpse_jax.predict(run, np.zeros((2, 28, 28, 1), np.float32)); '
            'assert glimpse_jax.__file__.startswith(%r), glimpse_jax.__file__; '
            'print(out["probabilities"].shape, out["locations"].shape)' % str(target))
  done = subprocess.run([sys.executable, '-c', script], check=True, cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.stdout.strip() == '(2, 10) (2, 6, 2)'
