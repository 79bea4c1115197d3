"""WS-RAM's scale against digit size (Ba et al. 2015, Figure 4): the binning, the measurement on a
run's checkpoint and the chapter's section."""

import json
import os
import shutil

import numpy as np
import pytest

from experiments import ws_ram
from glimpse_jax.reports import ws_ram as chapter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_size_bins_close_the_last_bin_and_mark_sizes_outside():
  bins = ws_ram.size_bins([5, 14.9, 15, 30, 4.9, 30.1], [5, 15, 30])
  np.testing.assert_array_equal(bins, [0, 0, 1, 1, -1, -1])
  for edges in ([5], [5, 5], [15, 5]):
    with pytest.raises(ValueError, match='edges'):
      ws_ram.size_bins([10], edges)


def test_scale_by_size_by_hand():
  scales = [[0, 2], [1, 1], [2, 2], [0, 0]]
  ink = [[True, False], [True, True], [False, True], [True, True]]
  sizes = [10, 20, 30, 40]  # bins 0, 1, 1 (the last edge is in) and outside
  result = ws_ram.scale_by_size(scales, ink, sizes, [5, 15, 30], num_scales=3)
  assert result['outside'] == 1 and result['examples'] == 4 and result['glimpses'] == 2
  # On ink: bin 0 holds glimpse (0, 0) at scale 0; bin 1 glimpses (1, 0), (1, 1) at scale 1 and
  # (2, 1) at scale 2.
  assert result['on_ink']['count'] == [1, 3]
  np.testing.assert_allclose(result['on_ink']['fractions'], [[1, 0, 0], [0, 2 / 3, 1 / 3]])
  # All glimpses: bin 0 scales 0, 2; bin 1 scales 1, 1, 2, 2.
  assert result['all']['count'] == [2, 4]
  np.testing.assert_allclose(result['all']['fractions'], [[0.5, 0, 0.5], [0, 0.5, 0.5]])
  np.testing.assert_allclose(result['on_ink_fraction'], [0.5, 0.75])
  json.dumps(result)  # plain values

  empty = ws_ram.scale_by_size(scales, ink, sizes, [5, 15, 31, 35])
  assert empty['on_ink']['count'][2] == 0 and empty['on_ink']['fractions'][2] is None
  assert empty['on_ink_fraction'][2] is None
  with pytest.raises(ValueError, match='scales must lie'):
    ws_ram.scale_by_size([[3]], [[True]], [10], [5, 15], num_scales=3)
  with pytest.raises(ValueError, match=r'\[B, T\]'):
    ws_ram.scale_by_size([[0, 1]], [[True]], [10], [5, 15])


def test_size_edges_span_the_datasets_digit_sides():
  from scripts import ws_ram_scale_by_size as script
  config = ws_ram.get_config('ws_cv')
  edges = script.size_edges(config.dataset, 4)
  np.testing.assert_allclose(edges, [14, 14 * 2**0.5, 28, 28 * 2**0.5, 56])
  np.testing.assert_allclose(script.size_edges(ws_ram.get_config('smoke').dataset, 4), [27.5, 28.5])
  with pytest.raises(ValueError, match='bins'):
    script.size_edges(config.dataset, 0)


@pytest.mark.slow  # about 20 s on 2 busy cores, mostly compilation
def test_a_smoke_runs_scale_by_size(data_dir, tmp_path):
  from glimpse_jax import train
  from scripts import ws_ram_scale_by_size as script
  config = ws_ram.get_config('smoke')
  examples = 24
  with config.unlocked():
    config.dataset.update(name='translated_scaled', canvas_size=60, scale_range=(0.5, 2.0),
                          data_dir=data_dir, download=False, eval_examples=examples,
                          cache_dir=str(tmp_path / 'tfds'))
    config.update(num_steps=3, batch_size=8, log_every=3, eval_every=0, checkpoint_every=0,
                  eval_examples_during_training=examples)
    config.model.update(bottom_features=8, top_features=8, glimpse_features=8, what_features=4,
                        where_features=4, inference_features=4)
    config.loss.num_samples = 2
    config.eval.update(batch_size=examples, mc_samples=2)
  workdir = str(tmp_path / 'run')
  results = train.run(config, workdir, ws_ram.make_experiment(config))
  result = script.measure(workdir, examples=examples, bins=2, batch_size=16)
  with open(os.path.join(workdir, script.OUTPUT)) as f:
    assert json.load(f) == json.loads(json.dumps(result))
  glimpses = config.model.num_glimpses
  assert result['step'] == 3 and result['outside'] == 0
  np.testing.assert_allclose(result['edges'], [14, 28, 56])
  assert sum(result['all']['count']) == examples * glimpses  # the padded rows left out
  # The same greedy glimpses as the run's own evaluation of these canvases.
  on_ink = sum(results[f'test_on_ink_g{t}'] for t in range(1, glimpses + 1)) * examples
  assert sum(result['on_ink']['count']) == round(on_ink)
  for s in range(config.model.num_scales):
    chosen = sum(c * f[s] for c, f in zip(result['all']['count'], result['all']['fractions']) if f)
    assert chosen == pytest.approx(results[f'test_scale_frac_{s}'] * examples * glimpses)


def _fake_run(folder, name, seed, fractions, counts):
  """A committed run's results.json with `seed`, and its scale_by_size.json of 2 bins."""
  source = os.path.join(REPO, 'results', 'ws_ram', 'ws_cv-penalty-12k-seed0')
  os.makedirs(folder / name)
  shutil.copy(os.path.join(source, 'results.json'), folder / name / 'results.json')
  with open(folder / name / 'results.json') as f:
    results = json.load(f)
  results['config']['seed'] = seed
  with open(folder / name / 'results.json', 'w') as f:
    json.dump(results, f)
  measured = {'edges': [14.0, 28.0, 56.0], 'num_scales': 3, 'examples': 10, 'glimpses': 4,
              'outside': 0, 'step': 12_000, 'on_ink_fraction': [0.5, 1.0],
              'on_ink': {'count': counts, 'fractions': fractions},
              'all': {'count': [40, 40], 'fractions': fractions}}
  with open(folder / name / chapter.SCALE_FILE, 'w') as f:
    json.dump(measured, f)
  return str(folder / name)


def test_the_chapter_shows_scale_by_size_over_seeds(tmp_path):
  runs = tmp_path / 'ws_ram'
  workdirs = [
      _fake_run(runs, 'row-seed0', 0, [[0.0, 1.0, 0.0], [0.0, 0.2, 0.8]], [20, 40]),
      _fake_run(runs, 'row-seed1', 1, [[0.0, 0.5, 0.5], [0.0, 0.4, 0.6]], [10, 30]),
      _fake_run(runs, 'other-seed0', 0, [[0.0, 1.0, 0.0], None], [5, 0]),
  ]
  plain = tmp_path / 'plain'
  os.makedirs(plain)
  shutil.copytree(runs / 'row-seed0', plain / 'row-seed0')
  os.remove(plain / 'row-seed0' / chapter.SCALE_FILE)
  text = chapter.write_report(workdirs, str(tmp_path / 'ws_ram.md'))
  assert "## Scale against digit size (the paper's Figure 4)" in text
  section = text.split("## Scale against digit size (the paper's Figure 4)")[1]
  row = section.split('**ws_ram-row**')[1].split('**ws_ram-other**')[0]
  assert '(seeds 0, 1;' in row and 'update 12,000' in row
  # mean ± std over the two seeds; glimpses on ink summed
  assert '| 14.0-28.0 | 0.00 ± 0.00 | 0.75 ± 0.35 | 0.25 ± 0.35 | 30 | 50.0 ± 0.0 |' in row
  assert '| 28.0-56.0 | 0.00 ± 0.00 | 0.30 ± 0.14 | 0.70 ± 0.14 | 70 | 100.0 ± 0.0 |' in row
  assert 'fine (12 px) | mid (24 px) | coarse (48 px)' in row
  other = section.split('**ws_ram-other**')[1]
  assert '| 14.0-28.0 | 0.00 | 1.00 | 0.00 | 5 |' in other
  assert '| 28.0-56.0 | - | - | - | 0 |' in other
  assert (tmp_path / chapter.SCALE_FIGURE).stat().st_size > 0
  assert f'({chapter.SCALE_FIGURE})' in section

  without = chapter.write_report([str(plain / 'row-seed0')], str(tmp_path / 'plain.md'))
  assert 'Scale against digit size' not in without
