"""The notebooks run headless, start to end, on short CPU runs."""

import pathlib

import nbclient
import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / 'notebooks'


def _execute(name, data_dir, tmp_path, monkeypatch, kernel):
  """Runs notebook `name` with a 30-step budget into `tmp_path/run`; returns its outputs."""
  monkeypatch.setenv('GLIMPSE_NOTEBOOK_STEPS', '30')
  monkeypatch.setenv('GLIMPSE_NOTEBOOK_WORKDIR', str(tmp_path / 'run'))
  monkeypatch.setenv('GLIMPSE_DATA_DIR', data_dir)
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('GLIMPSE_CACHE_DIR', str(tmp_path / 'tfds'))
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  client = nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=180,
                                   resources={'metadata': {'path': str(NOTEBOOKS)}})
  client.execute()  # raises CellExecutionError, naming the cell, on any error
  outputs = [output for cell in notebook.cells if cell.cell_type == 'code'
             for output in cell.outputs]
  pictures = [output for output in outputs if 'image/png' in output.get('data', {})]
  printed = ''.join(output.get('text', '') for output in outputs)
  return pictures, printed


@pytest.mark.parametrize('name', sorted(p.name for p in NOTEBOOKS.glob('*.ipynb')))
def test_notebook_is_saved_without_outputs(name):
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, cell.source


@pytest.mark.slow
def test_quickstart_notebook_trains_and_shows_its_results(data_dir, tmp_path, monkeypatch,
                                                           python3_kernel):
  pictures, printed = _execute('ram_quickstart.ipynb', data_dir, tmp_path, monkeypatch,
                               python3_kernel)
  for name in ('results.json', 'glimpse_paths.png'):
    assert (tmp_path / 'run' / name).is_file(), name
  assert len(pictures) == 2  # the learning curve and the glimpse paths
  assert 'test error' in printed and 'devices:' in printed


@pytest.mark.slow
def test_ram_reward_notebook_shows_accuracy_rewards_and_per_glimpse_figures(
    data_dir, tmp_path, monkeypatch, python3_kernel):
  pictures, printed = _execute('ram_reward.ipynb', data_dir, tmp_path, monkeypatch,
                               python3_kernel)
  for name in ('results.json', 'per_glimpse.json', 'output_change.png', 'glimpse_loss.png',
               'glimpse_paths.png'):
    assert (tmp_path / 'run' / name).is_file(), name
  # accuracy and rewards, output change, loss per glimpse, glimpse paths
  assert len(pictures) == 4
  assert 'test accuracy' in printed and 'devices:' in printed


@pytest.mark.slow
def test_variant_mnist_notebook_shows_accuracy_glimpses_attention_and_cost(
    data_dir, tmp_path, monkeypatch, python3_kernel):
  pictures, printed = _execute('variant_mnist.ipynb', data_dir, tmp_path, monkeypatch,
                               python3_kernel)
  for variant, picture in (('ram_smoke', 'glimpse_sequence.png'),
                           ('attention_cnn_smoke', 'attention_maps.png')):
    for name in ('results.json', 'cost.json', picture):
      assert (tmp_path / 'run' / variant / name).is_file(), (variant, name)
  assert len(pictures) == 3  # accuracy during training, glimpses in order, attention maps
  assert 'test accuracy' in printed and 'MFLOP per pass' in printed and 'devices:' in printed


@pytest.mark.slow
def test_ws_ram_notebook_shows_training_ess_scales_and_glimpses(data_dir, tmp_path, monkeypatch,
                                                                python3_kernel):
  pictures, printed = _execute('ws_ram.ipynb', data_dir, tmp_path, monkeypatch, python3_kernel)
  for name in ('results.json', 'glimpse_paths.png'):
    assert (tmp_path / 'run' / name).is_file(), name
  assert len(pictures) == 2  # error, ESS and scales; the glimpses
  assert 'test error' in printed and 'greedy test glimpses per scale' in printed
  assert 'devices:' in printed


@pytest.mark.slow
def test_ws_ram_captioning_notebook_trains_both_phases_and_scores_captions(
    data_dir, tmp_path, monkeypatch, python3_kernel):
  pictures, printed = _execute('ws_ram_captioning.ipynb', data_dir, tmp_path, monkeypatch,
                               python3_kernel)
  for name in ('results.json', 'captions.json', 'caption_windows.png'):
    assert (tmp_path / 'run' / 'caption' / name).is_file(), name
  assert len(pictures) == 2  # training curves; the windows
  assert 'BLEU-1..4' in printed and 'test caption error' in printed


@pytest.mark.slow
def test_pretrain_attention_notebook_shows_curves_reads_and_errors(data_dir, tmp_path, monkeypatch,
                                                                   python3_kernel):
  pictures, printed = _execute('pretrain_attention.ipynb', data_dir, tmp_path, monkeypatch,
                               python3_kernel)
  for variant, phases in (('no_guidance_regular_smoke', ('classify',)),
                          ('heuristic_regular_smoke', ('pretrain', 'classify'))):
    for phase in phases:
      for name in ('results.json', 'read_windows.png'):
        assert (tmp_path / 'run' / variant / phase / name).is_file(), (variant, phase, name)
  assert len(pictures) == 3  # the learning curves; each model's reads
  assert 'test error' in printed and 'digit centre' in printed and 'devices:' in printed
