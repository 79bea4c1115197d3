"""Canvases composed in the jitted step from recipes equal the host's, and training on them is
training on the host's canvases."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import linear_classifier
from glimpse_jax import data, train
from glimpse_jax.data import canvas as canvas_lib
from glimpse_jax.data import device_canvas

SETTINGS = {
    'translated': dict(canvas_size=60),
    'cluttered': dict(canvas_size=60, num_clutter=4),
    'translated_scaled': dict(canvas_size=100, scale_range=(0.5, 2.0)),
    'cluttered_slope': dict(canvas_size=40, num_clutter=5, clutter_size=5),
}


def _config(name, data_dir, **overrides):
  cfg = data.default_config()
  cfg.update(name=name, data_dir=data_dir, download=False, **SETTINGS[name], **overrides)
  return cfg


@pytest.mark.parametrize('name', sorted(SETTINGS))
def test_composed_recipes_equal_the_host_canvases(name, data_dir):
  cfg = _config(name, data_dir)
  host = next(data.train_stream(cfg, 64, seed=3, start_step=11))
  recipe = next(data.train_stream(cfg, 64, seed=3, start_step=11, recipes=True))
  assert 'image' not in recipe and recipe['recipe_digit'].shape == (64, 28, 28)
  composed = jax.jit(data.composer(cfg))(recipe)
  assert sorted(composed) == sorted(host)
  for key in ('label', 'center', 'box_size'):
    np.testing.assert_array_equal(composed[key], host[key])
  levels = np.abs(np.asarray(composed['image']) - host['image']) * 255  # [B, H, W, 1]
  assert composed['image'].shape == host['image'].shape
  # Exact up to float32 rounding of x / 255, except where a resize product lands on a rounding
  # boundary (rescaled digits only): then one grey level.
  assert levels.max() <= (1.0001 if name == 'translated_scaled' else 1e-3)
  assert np.mean(levels > 0.5) < 1e-4



def test_composed_squares_at_the_canvas_edges_equal_the_host_canvases():
  # Digits from 14 px to the canvas side, in the far corner and past no edge; pieces in the
  # corners and overlapping the digit.
  spec = canvas_lib.CanvasSpec(40, scale_range=(0.5, 40 / 28), num_clutter=2, clutter_size=8)
  images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
  layout = canvas_lib.Layout(
      digit=np.array([0, 1, 2, 3]), size=np.array([40, 28, 14, 28]),
      top_left=np.array([[0, 0], [12, 12], [26, 0], [5, 7]]),
      clutter_digit=np.array([[1, 2], [3, 4], [0, 1], [2, 3]]),
      clutter_origin=np.array([[[0, 0], [20, 20]], [[3, 5], [0, 20]], [[10, 10], [1, 2]],
                               [[0, 0], [0, 0]]]),
      clutter_top_left=np.array([[[32, 32], [0, 32]], [[32, 0], [0, 0]], [[16, 16], [31, 31]],
                                 [[5, 7], [10, 12]]]))
  recipe = device_canvas.recipe_examples(layout, spec, images, np.arange(5))
  composed = jax.jit(lambda batch: device_canvas.compose(batch, canvas_size=40, max_size=40))(
      recipe)['image'][..., 0]  # [B, 40, 40]
  host = canvas_lib.render(layout, spec, images)  # [B, 40, 40] uint8
  levels = np.abs(np.asarray(composed) * 255 - host)
  assert levels.max() <= 1.0001 and np.mean(levels > 0.5) < 1e-3
  # 28x28 digits need no resize: the same canvases without it.
  same = {key: value[1::2] for key, value in recipe.items()}  # the 28x28 digits
  kept = device_canvas.compose(same, canvas_size=40, max_size=28, resize=False)['image'][..., 0]
  np.testing.assert_allclose(np.asarray(kept) * 255, host[1::2], atol=1e-3)


def test_pieces_past_the_far_edges_are_cut_there():
  pieces = jnp.arange(1, 2 * 2 * 8 * 8 + 1, dtype=jnp.float32).reshape(2, 2, 8, 8)  # [B, K, P, P]
  top_left = jnp.array([[[36, 36], [0, 37]], [[40, 0], [3, 4]]])  # [B, K, 2] (row, col)
  pasted = np.asarray(device_canvas._pieces_canvas(pieces, top_left, 40))  # pylint: disable=protected-access
  expected = np.zeros((2, 40, 40), np.float32)
  expected[0, 36:, 36:] = pieces[0, 0, :4, :4]
  expected[0, :8, 37:] = pieces[0, 1, :, :3]
  expected[1, 3:11, 4:12] = pieces[1, 1]  # the piece at row 40 lies wholly past the edge
  np.testing.assert_array_equal(pasted, expected)


def test_recipes_only_where_canvases_are_drawn_on_the_fly(data_dir):
  plain = data.default_config()
  plain.update(data_dir=data_dir, download=False)
  fixed = _config('translated', data_dir, train_on_the_fly=False, train_examples=200)
  off = _config('translated', data_dir, compose_on_device=False)
  for cfg in (plain, off):
    batch = next(data.train_stream(cfg, 8, seed=0, recipes=True))
    assert 'image' in batch and not device_canvas.is_recipe(batch)
    assert data.composer(cfg)(batch) is batch
  cfg = _config('translated', data_dir)
  assert 'image' in next(data.train_stream(cfg, 8, seed=0))  # recipes only when asked
  batch = next(data.train_stream(fixed, 8, seed=0, recipes=True))  # a fixed split's canvases
  assert 'image' in batch and 'index' in batch
  loaded = ml_collections.ConfigDict(cfg.to_dict())  # as from a config.json, untyped
  del loaded['compose_on_device']
  loaded.compose_on_device = 'yes'
  with pytest.raises(ValueError, match="compose_on_device must be True or False, got 'yes'"):
    data.validate_config(loaded)


def test_training_on_composed_canvases_is_training_on_host_canvases(data_dir, tmp_path):
  losses = {}
  for on_device in (True, False):
    config = train.base_config()
    config.experiment = 'linear'
    config.dataset = _config('cluttered', data_dir, compose_on_device=on_device,
                             eval_examples=200)
    config.update(batch_size=32, num_steps=30, log_every=10, checkpoint_every=0)
    workdir = tmp_path / str(on_device)
    train.run(config, str(workdir), linear_classifier())
    records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
    losses[on_device] = [r['loss'] for r in records if r['kind'] == 'train']
  assert len(losses[True]) == 3
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
