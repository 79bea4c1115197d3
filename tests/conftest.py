"""Shared fixtures: where the real MNIST / Fashion-MNIST IDX files are."""

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
