"""The Makefile's experiment target: one run, or one run per seed."""

import os
import subprocess

import pytest

# A make of its own, not a sub-make of `make test` (which would print its directories).
_ENV = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL')}


def _make(*args):
  return subprocess.run(['make', '--no-print-directory', *args], capture_output=True, text=True,
                        check=False, env=_ENV)


def _dry_run(*variables):
  result = _make('-n', 'experiment', 'NAME=ram', 'CONFIG=smoke', *variables)
  return result.returncode, result.stdout + result.stderr


def _expanded(script: str) -> str:
  """Runs the dry run's seed loop with `echo` in place of python."""
  loop = script[script.index('set -e'):].replace('.venv/bin/python', 'echo')
  return subprocess.run(['bash', '-c', loop], capture_output=True, text=True,
                        check=True).stdout


def test_one_run_without_seeds():
  rc, out = _dry_run()
  assert rc == 0
  assert 'main.py --config=experiments/ram.py:smoke' in out
  assert '--workdir=runs/ram-smoke' in out and '-seed' not in out


def test_seeds_give_one_workdir_per_seed():
  rc, out = _dry_run('SEEDS=3', 'ARGS=--config.num_steps=5')
  assert rc == 0
  lines = _expanded(out).splitlines()
  assert len(lines) == 3
  for seed, line in enumerate(lines):
    assert f'--workdir=runs/ram-smoke-seed{seed} --config.seed={seed}' in line
    assert line.endswith('--config.num_steps=5')


@pytest.mark.parametrize('seeds', ['x', '0', '-1'])
def test_bad_seeds_are_refused(seeds):
  # -o: never (re)install here, the refusal comes before any run.
  result = _make('-o', '.venv/.installed', 'experiment', 'NAME=ram', 'CONFIG=smoke',
                 f'SEEDS={seeds}')
  assert result.returncode != 0
  assert f"SEEDS must be a whole number >= 1, got '{seeds}'" in result.stderr


def test_seeds_refuse_a_seed_in_args():
  result = _make('-o', '.venv/.installed', 'experiment', 'NAME=ram', 'CONFIG=smoke', 'SEEDS=2',
                 'ARGS=--config.seed=7 --config.num_steps=5')
  assert result.returncode != 0
  assert 'SEEDS=2 sets --config.seed per run: leave it out of ARGS' in result.stderr
