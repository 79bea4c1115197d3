"""The notebooks run headless, start to end, on short CPU runs.

The notebooks whose default run is an experiment's smoke variant (ram_reward, variant_mnist,
ws_ram_captioning) run at that budget in the experiment's tests, which check both what the notebook
shows and what the run learned: one training for both.
"""

import nbformat
import pytest

from conftest import NOTEBOOKS, execute_notebook


def _execute(name, data_dir, tmp_path, kernel):
  """Runs notebook `name` with a 30-step budget into `tmp_path/run`; returns its outputs."""
  run = execute_notebook(name, tmp_path, data_dir, kernel, steps=30)
  return run.pictures, run.printed


@pytest.mark.parametrize('name', sorted(p.name for p in NOTEBOOKS.glob('*.ipynb')))
def test_notebook_is_saved_without_outputs(name):
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, cell.source


@pytest.mark.parametrize('name', sorted(p.name for p in NOTEBOOKS.glob('*.ipynb')))
def test_notebook_installs_in_one_cell_and_imports_the_installed_experiments(name):
  """The first code cell installs the package unless it is importable; no cell edits sys.path;
  the experiment comes from `glimpse_jax.experiments`; the last cell predicts with load_run."""
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  cells = [cell.source for cell in notebook.cells if cell.cell_type == 'code']
  install = cells[0]
  assert 'except ImportError:' in install and '%pip install' in install, install
  assert 'git+{GLIMPSE_JAX_GIT_URL}' in install, install
  for source in cells:
    assert 'sys.path' not in source and 'from experiments import' not in source, source
  assert any('from glimpse_jax.experiments import ' in source for source in cells)
  assert 'glimpse_jax.load_run(' in cells[-1] and 'glimpse_jax.predict(run, ' in cells[-1]


@pytest.mark.notebook
def test_quickstart_notebook_trains_and_shows_its_results(data_dir, tmp_path, python3_kernel):
  pictures, printed = _execute('ram_quickstart.ipynb', data_dir, tmp_path, python3_kernel)
  for name in ('results.json', 'glimpse_paths.png'):
    assert (tmp_path / 'run' / name).is_file(), name
  # the learning curve, the glimpse paths, the glimpses of `predict` on a test batch
  assert len(pictures) == 3
  assert 'test error' in printed and 'devices:' in printed
  assert 'predicted classes: [' in printed and 'glimpse_jax 0.' in printed


@pytest.mark.notebook
def test_ws_ram_notebook_shows_training_ess_scales_and_glimpses(data_dir, tmp_path, python3_kernel):
  pictures, printed = _execute('ws_ram.ipynb', data_dir, tmp_path, python3_kernel)
  for name in ('results.json', 'glimpse_paths.png'):
    assert (tmp_path / 'run' / name).is_file(), name
  assert len(pictures) == 3  # error, ESS and scales; the glimpses; those of `predict`
  assert 'test error' in printed and 'greedy test glimpses per scale' in printed
  assert 'predicted classes: [' in printed
  assert 'devices:' in printed


@pytest.mark.notebook
def test_pretrain_attention_notebook_shows_curves_reads_and_errors(data_dir, tmp_path,
                                                                   python3_kernel):
  pictures, printed = _execute('pretrain_attention.ipynb', data_dir, tmp_path, python3_kernel)
  for variant, phases in (('no_guidance_translated_smoke', ('classify',)),
                          ('heuristic_translated_smoke', ('pretrain', 'classify'))):
    for phase in phases:
      for name in ('results.json', 'read_windows.png'):
        assert (tmp_path / 'run' / variant / phase / name).is_file(), (variant, phase, name)
  assert len(pictures) == 5  # the learning curves; each model's reads; those of `predict`
  assert 'test error' in printed and 'digit centre' in printed and 'devices:' in printed
