"""notebooks/ram_reward.ipynb runs headless, start to end, on a short CPU run."""

import pathlib

import nbclient
import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / 'notebooks' / 'ram_reward.ipynb'


def test_notebook_is_saved_without_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, cell.source


@pytest.mark.slow
def test_notebook_trains_and_shows_accuracy_rewards_and_per_glimpse_figures(
    data_dir, tmp_path, monkeypatch, python3_kernel):
  workdir = tmp_path / 'run'
  monkeypatch.setenv('GLIMPSE_NOTEBOOK_STEPS', '30')
  monkeypatch.setenv('GLIMPSE_NOTEBOOK_WORKDIR', str(workdir))
  monkeypatch.setenv('GLIMPSE_DATA_DIR', data_dir)
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('GLIMPSE_CACHE_DIR', str(tmp_path / 'tfds'))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(notebook, kernel_name=python3_kernel, timeout=180,
                                   resources={'metadata': {'path': str(NOTEBOOK.parent)}})
  client.execute()  # raises CellExecutionError, naming the cell, on any error

  for name in ('results.json', 'per_glimpse.json', 'output_change.png', 'glimpse_loss.png',
               'glimpse_paths.png'):
    assert (workdir / name).is_file(), name
  outputs = [output for cell in notebook.cells if cell.cell_type == 'code'
             for output in cell.outputs]
  pictures = [output for output in outputs if 'image/png' in output.get('data', {})]
  # accuracy and rewards, output change, loss per glimpse, glimpse paths
  assert len(pictures) == 4
  printed = ''.join(output.get('text', '') for output in outputs)
  assert 'test accuracy' in printed and 'devices:' in printed
