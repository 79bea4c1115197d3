"""notebooks/ram_quickstart.ipynb runs headless, start to end, on a short CPU run."""

import os
import pathlib

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / 'notebooks' / 'ram_quickstart.ipynb'


def _ensure_python3_kernel(tmp_path, monkeypatch):
  """Installs a `python3` kernelspec for this interpreter into a temporary folder if none exists."""
  try:
    KernelSpecManager().get_kernel_spec('python3')
  except NoSuchKernel:
    from ipykernel import kernelspec  # pylint: disable=g-import-not-at-top
    prefix = tmp_path / 'jupyter'
    kernelspec.install(kernel_name='python3', prefix=str(prefix))
    monkeypatch.setenv('JUPYTER_PATH', str(prefix / 'share' / 'jupyter'))


def test_notebook_is_saved_without_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, cell.source


@pytest.mark.slow
def test_quickstart_notebook_trains_and_shows_its_results(data_dir, tmp_path, monkeypatch):
  _ensure_python3_kernel(tmp_path, monkeypatch)
  workdir = tmp_path / 'run'
  monkeypatch.setenv('GLIMPSE_NOTEBOOK_STEPS', '30')
  monkeypatch.setenv('GLIMPSE_NOTEBOOK_WORKDIR', str(workdir))
  monkeypatch.setenv('GLIMPSE_DATA_DIR', data_dir)
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('GLIMPSE_CACHE_DIR', str(tmp_path / 'tfds'))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(notebook, kernel_name='python3', timeout=180,
                                   resources={'metadata': {'path': str(NOTEBOOK.parent)}})
  client.execute()  # raises CellExecutionError, naming the cell, on any error

  assert (workdir / 'results.json').is_file()
  assert (workdir / 'glimpse_paths.png').is_file()
  outputs = [output for cell in notebook.cells if cell.cell_type == 'code'
             for output in cell.outputs]
  pictures = [output for output in outputs if 'image/png' in output.get('data', {})]
  assert len(pictures) == 2  # the learning curve and the glimpse paths
  printed = ''.join(output.get('text', '') for output in outputs)
  assert 'test error' in printed and 'devices:' in printed
