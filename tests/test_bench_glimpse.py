"""benchmarks/bench_glimpse.py: its bare-slice floor cuts the retina's window, and it runs small."""

import importlib.util
import pathlib

import jax
import numpy as np

from glimpse_jax import glimpse

REPO = pathlib.Path(__file__).resolve().parents[1]


def _bench():
  spec = importlib.util.spec_from_file_location('bench_glimpse',
                                                REPO / 'benchmarks' / 'bench_glimpse.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_bare_slice_is_the_retina_window_away_from_borders():
  bench = _bench()
  images = np.random.default_rng(0).random((3, 40, 40, 1), dtype=np.float32)
  locs = np.array([[0.0, 0.0], [-0.3, 0.2], [0.35, -0.35]], np.float32)
  windows = np.asarray(bench._batched_bare_slice(16)(images, locs))  # [3, 16, 16, 1]
  coarse = windows.reshape(3, 4, 4, 4, 4, 1).mean(axis=(2, 4))  # [3, 4, 4, 1]
  retina = jax.vmap(lambda im, loc: glimpse.retina(im, loc, size=4, num_scales=3))(images, locs)
  np.testing.assert_allclose(coarse, retina[:, -1], rtol=1e-6)


def test_image_size_figures_at_a_tiny_scale(monkeypatch):
  bench = _bench()
  monkeypatch.setattr(bench, 'SIZE_REPEATS', 3)
  figures = bench.time_image_sizes(batch=4, size=4, num_scales=2, sides=(16, 32))
  assert set(figures) == {
      'retina_16px_ms', 'retina_32px_ms', 'retina_16px_glimpses_per_s',
      'retina_32px_glimpses_per_s', 'retina_ratio_32px_over_16px',
      'bare_slice_ratio_32px_over_16px', 'huge_page_gib'}
  assert all(np.isfinite(v) and v >= 0 for v in figures.values())
  assert figures['retina_ratio_32px_over_16px'] > 0
