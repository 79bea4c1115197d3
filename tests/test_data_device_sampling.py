"""Canvases drawn inside the step follow the host's distribution, are a pure function of
(seed, step), and train and resume in the shared loop."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import linear_classifier
from glimpse_jax import data, train
from glimpse_jax.data import canvas as canvas_lib
from glimpse_jax.data import config as data_config
from glimpse_jax.data import device_canvas
from glimpse_jax.data import device_sampling
from glimpse_jax.data import sources

SPECS = {
    'translated': canvas_lib.CanvasSpec(60),
    'cluttered': canvas_lib.CanvasSpec(100, num_clutter=8, clutter_size=8),
    'translated_scaled': canvas_lib.CanvasSpec(100, scale_range=(0.5, 2.0)),
    'cluttered_slope': canvas_lib.CanvasSpec(40, num_clutter=5, clutter_size=5,
                                             placement='slope'),
}
DRAWS = 8192
POOL = 1000


def _host_layout(spec, seed):
  rng = np.random.default_rng(seed)
  return canvas_lib.sample_layout(rng, spec, rng.integers(0, POOL, size=DRAWS), POOL)


def _device_layout(spec, seed):
  def fields(key):
    layout = device_sampling.sample_layout(key, spec, POOL, DRAWS)
    return [getattr(layout, field.name) for field in dataclasses.fields(layout)]
  return canvas_lib.Layout(*map(np.asarray, jax.jit(fields)(jax.random.key(seed))))


def _distance(a, b, bins):
  """Total variation distance between the histograms of two samples of integers in [0, bins)."""
  def histogram(values):
    return np.bincount(np.asarray(values).ravel(), minlength=bins)[:bins] / np.size(values)
  return 0.5 * np.abs(histogram(a) - histogram(b)).sum()


@pytest.mark.parametrize('name', sorted(SPECS))
def test_device_layouts_follow_the_host_distribution(name):
  spec = SPECS[name]
  host, device = _host_layout(spec, 0), _device_layout(spec, 0)
  side = spec.canvas_size + 1

  def place(layout):  # the position as a fraction of the free room, in ten bins
    room = spec.canvas_size - layout.size[:, None]
    return np.minimum(10 * layout.top_left / np.maximum(room, 1), 9).astype(int)

  def offset(layout):  # the clutter source's offset from the placed digit, in ten bins
    return (layout.clutter_digit - layout.digit[:, None]) % POOL // 100

  # Marginals compared by total variation; two host samples of this size differ by 0.03-0.06 on
  # these supports, so each distance is held to twice that of a second host sample.
  def distances(a, b):
    found = {'size': _distance(a.size, b.size, side),
             'top_left': _distance(a.top_left, b.top_left, side),
             'place': _distance(place(a), place(b), 10),
             'digit': _distance(a.digit // 100, b.digit // 100, 10)}
    if spec.num_clutter:
      found.update(clutter_digit=_distance(offset(a), offset(b), 10),
                   clutter_origin=_distance(a.clutter_origin, b.clutter_origin, 28),
                   clutter_top_left=_distance(a.clutter_top_left, b.clutter_top_left, side))
    return found

  between = distances(host, device)
  within = distances(host, _host_layout(spec, 1))
  for field, value in between.items():
    assert value < max(2 * within[field], 0.02), (field, value, within[field])
  # Supports: every draw is where the host's may be, and the extremes are reached.
  room = spec.canvas_size - device.size
  assert device.digit.min() >= 0 and device.digit.max() < POOL
  assert (device.top_left >= 0).all() and (device.top_left <= room[:, None]).all()
  assert (device.top_left == room[:, None]).any() and (device.top_left == 0).any()
  if spec.scale_range is None:
    assert (device.size == 28).all()
  else:
    assert device.size.min() == 14 and device.size.max() == 56
    np.testing.assert_allclose(np.log(device.size).mean(), np.log(host.size).mean(), atol=0.02)
  if spec.placement == 'slope':  # on the line through the centre with |slope| <= 1
    row, column = device.top_left[:, 0], device.top_left[:, 1]
    assert (np.abs(2 * column - room) >= np.abs(2 * row - room)).all()
  if spec.num_clutter:
    piece = spec.clutter_size
    assert device.clutter_digit.shape == (DRAWS, spec.num_clutter)
    assert (device.clutter_digit != device.digit[:, None]).all()
    assert device.clutter_origin.min() == 0 and device.clutter_origin.max() == 28 - piece
    assert device.clutter_top_left.min() == 0
    assert device.clutter_top_left.max() == spec.canvas_size - piece


@pytest.mark.parametrize('name', ['cluttered', 'translated_scaled', 'cluttered_slope'])
def test_device_recipes_of_a_layout_equal_the_host_recipes(name):
  spec = SPECS[name]
  images = np.random.default_rng(1).integers(0, 256, (POOL, 28, 28), dtype=np.uint8)
  labels = np.arange(POOL, dtype=np.int32) % 10
  rng = np.random.default_rng(2)
  layout = canvas_lib.sample_layout(rng, spec, rng.integers(0, POOL, size=64), POOL)
  host = device_canvas.recipe_examples(layout, spec, images, labels)
  device = jax.jit(lambda d, l: device_sampling.recipe(layout, spec, d, l))(images, labels)
  assert sorted(device) == sorted(host)
  for key, value in host.items():
    np.testing.assert_allclose(np.asarray(device[key]), value, atol=1e-6, err_msg=key)
    assert np.asarray(device[key]).dtype == value.dtype, key


def _cfg(data_dir, **overrides):
  cfg = data.default_config()
  cfg.update({**dict(name='cluttered', canvas_size=60, num_clutter=4, data_dir=data_dir,
                     download=False, sample_on_device=True), **overrides})
  return cfg


@pytest.mark.slow
def test_sampled_batches_are_a_function_of_seed_and_step(data_dir):
  cfg = _cfg(data_dir, train_examples=600, validation_examples=100)
  sampler = data.device_sampler(cfg, 16, seed=3)
  digits, labels = sources.load_digits('mnist', 'train', data_dir, download=False)
  np.testing.assert_array_equal(sampler.pool['digits'], digits[:500])  # not the validation tail
  np.testing.assert_array_equal(sampler.pool['labels'], labels[:500])
  sample = jax.jit(sampler.sample)
  first = sample(sampler.pool, 5)
  assert first['image'].shape == (16, 60, 60, 1) and first['image'].dtype == jnp.float32
  assert sorted(first) == ['box_size', 'center', 'image', 'label']
  np.testing.assert_array_equal(sample(sampler.pool, 5)['image'], first['image'])
  assert not np.array_equal(sample(sampler.pool, 6)['image'], first['image'])
  other_seed = data.device_sampler(cfg, 16, seed=4)
  assert not np.array_equal(jax.jit(other_seed.sample)(other_seed.pool, 5)['image'],
                            first['image'])
  # The batch is the host's rendering of the layout drawn from the step's key.
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), device_sampling._DATA_TAG), 5)  # pylint: disable=protected-access
  spec = data_config.canvas_spec(cfg)
  layout = canvas_lib.Layout(*(np.asarray(getattr(device_sampling.sample_layout(
      key, spec, 500, 16), field.name)) for field in dataclasses.fields(canvas_lib.Layout)))
  host = canvas_lib.make_examples(layout, spec, digits[:500], labels[:500])
  np.testing.assert_allclose(np.asarray(first['image']) * 255, host['image'], atol=1e-3)
  np.testing.assert_array_equal(first['label'], host['label'])
  np.testing.assert_allclose(first['center'], host['center'], atol=1e-6)


def test_no_sampler_unless_asked_and_drawn_on_the_fly(data_dir):
  assert data.device_sampler(_cfg(data_dir, sample_on_device=False), 8, seed=0) is None
  assert data.device_sampler(_cfg(data_dir, train_on_the_fly=False, train_examples=100), 8,
                             seed=0) is None
  plain = data.default_config()
  plain.update(data_dir=data_dir, download=False, sample_on_device=True)
  assert data.device_sampler(plain, 8, seed=0) is None
  with pytest.raises(ValueError, match='sample_on_device=True .* needs '
                                       'dataset.compose_on_device=True'):
    data.validate_config(_cfg(data_dir, compose_on_device=False))
  bad = ml_collections.ConfigDict(_cfg(data_dir).to_dict())  # as from a config.json, untyped
  del bad['sample_on_device']
  bad.sample_on_device = 1
  with pytest.raises(ValueError, match='dataset.sample_on_device must be True or False, got 1'):
    data.validate_config(bad)


def _train_losses(data_dir, workdir, num_steps):
  config = train.base_config()
  config.experiment = 'linear'
  config.dataset = _cfg(data_dir, name='translated', canvas_size=32, num_clutter=None,
                        eval_examples=200)
  config.optimizer.learning_rate = 1e-2
  config.update(batch_size=32, num_steps=num_steps, log_every=10, checkpoint_every=10,
                grad_variance_every=10)
  train.run(config, str(workdir), linear_classifier())
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return ([r['loss'] for r in records if r['kind'] == 'train'],
          [r['grad_variance'] for r in records if r['kind'] == 'grad_variance'])


@pytest.mark.slow
def test_training_on_sampled_canvases_resumes_bit_for_bit(data_dir, tmp_path):
  straight, variance = _train_losses(data_dir, tmp_path / 'straight', 40)
  _train_losses(data_dir, tmp_path / 'resumed', 20)
  resumed, resumed_variance = _train_losses(data_dir, tmp_path / 'resumed', 40)
  assert len(straight) == 4 and resumed == straight and resumed_variance == variance
  assert straight[-1] < straight[0] - 0.05  # the canvases carry their labels
