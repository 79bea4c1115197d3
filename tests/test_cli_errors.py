"""Command-line mistakes give one or two lines naming the field, the value and the fix."""

import os
import pathlib
import subprocess
import sys

import pytest

from glimpse_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _main(*args, env=None):
  return subprocess.run([sys.executable, str(REPO / 'main.py'), *args], capture_output=True,
                        text=True, check=False, cwd=REPO, timeout=120,
                        env={**os.environ, **(env or {})})


def _short(result) -> str:
  """stderr of a refused command, which must be at most two lines and no traceback."""
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert len(lines) <= 2 and 'Traceback' not in result.stderr, result.stderr
  return result.stderr


@pytest.mark.parametrize('args,expected', [
    (('--config=ram:smoke', '--config.model.num_glimpse=4'),
     "no field 'model.num_glimpse'; did you mean model.num_glimpses"),
    (('--config=ram:smokey',), "unknown variant 'smokey'; choose one of: smoke"),
    (('--config=nope:smoke',), "unknown experiment 'nope'; experiments: near_optimal_glimpses"),
    (('--config=experiments/nope.py',), "unknown experiment 'nope'; experiments in experiments/"),
])
def test_config_mistakes_are_refused_before_jax_starts(args, expected, tmp_path):
  # In-process: the argument check runs before absl and jax, as the command does.
  with pytest.raises(cli.CommandError, match=expected.replace('(', r'\(')):
    cli.resolve_config_argument(['glimpse-jax', *args, f'--workdir={tmp_path}'])


@pytest.mark.slow  # a python process that imports jax: ~4 s on 2 cores
def test_misspelt_field_from_the_command_line(tmp_path):
  result = _main('--config=ram:smoke', f'--workdir={tmp_path / "w"}',
                 '--config.model.num_glimpse=4')
  assert "did you mean model.num_glimpses" in _short(result)
  assert not (tmp_path / 'w').exists()


@pytest.mark.slow  # a python process that imports jax: ~4 s on 2 cores
def test_bad_dataset_name_leaves_no_workdir(tmp_path):
  workdir = tmp_path / 'w'
  result = _main('--config=ram:smoke', f'--workdir={workdir}', '--config.dataset.name=foo')
  assert "dataset.name must be one of" in _short(result) and "got 'foo'" in result.stderr
  assert not workdir.exists()


def test_missing_data_file_is_one_line_with_the_fix():
  # As data/sources.py raises it (no network here: the message is built, never fetched).
  error = FileNotFoundError('/d/mnist/train-images-idx3-ubyte.gz is missing (published md5 f6) '
                            'and no mirror served it:\n  https://a: URLError\n  https://b: URLError')
  message = cli.describe(error)
  assert '\n' not in message and 'train-images-idx3-ubyte.gz is missing' in message
  assert '--config.dataset.data_dir' in message and '--verbose' in message


@pytest.mark.slow  # a python process that imports jax: ~4 s on 2 cores
def test_verbose_shows_the_traceback(tmp_path):
  result = _main('--config=ram:smoke', f'--workdir={tmp_path / "w"}',
                 '--config.dataset.name=foo', '--verbose')
  assert result.returncode != 0 and 'Traceback' in result.stderr


def test_make_refuses_an_unknown_experiment_before_installing():
  env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL')}
  result = subprocess.run(['make', '--no-print-directory', '-n', 'experiment', 'NAME=foo'],
                          capture_output=True, text=True, check=False, cwd=REPO, env=env)
  assert result.returncode != 0 and 'pip' not in result.stdout
  assert 'unknown experiment NAME=foo; experiments: near_optimal_glimpses' in result.stderr


def test_untrained_workdir_is_restored(tmp_path):
  before = cli.snapshot(str(tmp_path))
  (tmp_path / '.lock').write_text('1')
  (tmp_path / 'checkpoints').mkdir()
  cli.restore_untrained(str(tmp_path), before)
  assert os.listdir(tmp_path) == []
  created = tmp_path / 'new'
  (created / 'checkpoints' / '4').mkdir(parents=True)
  cli.restore_untrained(str(created), None)  # a checkpoint: it trained, keep everything
  assert (created / 'checkpoints' / '4').is_dir()
