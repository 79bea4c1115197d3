"""Shared fixtures: where the real MNIST / Fashion-MNIST IDX files are, a Jupyter kernel."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def data_dir() -> str:
  """$GLIMPSE_DATA_DIR, else `<repo>/../shared/data`; skips when no MNIST files are there."""
  folder = pathlib.Path(os.environ.get('GLIMPSE_DATA_DIR') or REPO.parent / 'shared' / 'data')
  if not (folder / 'mnist').is_dir():
    pytest.skip(f'no MNIST IDX files under {folder} (set GLIMPSE_DATA_DIR)')
  return str(folder)


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch) -> str:
  """The name of a Jupyter kernel for this interpreter, installed into a temporary folder when
  none called `python3` exists."""
  # Imported here: only the notebook tests need Jupyter.
  from ipykernel import kernelspec  # pylint: disable=g-import-not-at-top
  from jupyter_client import kernelspec as specs  # pylint: disable=g-import-not-at-top
  try:
    specs.KernelSpecManager().get_kernel_spec('python3')
  except specs.NoSuchKernel:
    prefix = tmp_path / 'jupyter'
    kernelspec.install(kernel_name='python3', prefix=str(prefix))
    monkeypatch.setenv('JUPYTER_PATH', str(prefix / 'share' / 'jupyter'))
  return 'python3'
