"""Reads that cannot cheat and the diagnostics that show where reads went: the in-image mass
against NumPy from its definition, the full-mass read, bounded gamma, the digit-sized first read,
per-step read statistics, the LSTM forget bias and per-variable gradient clipping."""

import math
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from glimpse_jax import glimpse
from glimpse_jax.nets import draw
from glimpse_jax.train import state as state_lib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'experiments'))
import pretrain_attention as pa  # pylint: disable=g-import-not-at-top,wrong-import-position

TINY = dict(read_size=2, hidden=8, latent=3, steps=3, classifier_hidden=6)


def _mass_erf(mu, sigma, length):
  """The share of N(mu, sigma^2) inside [0, length], from the normal CDF."""
  cdf = lambda x: 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))
  return cdf(length - mu) - cdf(-mu)


def _mass_dense(mu, sigma, length, points=200_001):
  """The same share as a dense midpoint sum of the Gaussian density over [0, length]."""
  edges = np.linspace(0.0, length, points)
  x = (edges[1:] + edges[:-1]) / 2
  density = np.exp(-(x - mu) ** 2 / (2 * sigma ** 2)) / (math.sqrt(2 * math.pi) * sigma)
  return float(density.sum() * (edges[1] - edges[0]))


@pytest.mark.parametrize('mu, sigma', [(14.0, 5.0), (0.5, 13.5), (27.5, 13.5), (-3.0, 2.0),
                                       (30.0, 1.0), (-56.0, 13.5), (84.0, 13.5), (9.0, 0.3)])
def test_in_image_mass_against_its_definition(mu, sigma):
  expected = _mass_erf(mu, sigma, 28)
  np.testing.assert_allclose(expected, _mass_dense(mu, sigma, 28), atol=1e-6)
  got = draw.in_image_mass(jnp.float32(mu), jnp.float32(sigma), 28)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_in_image_mass_keeps_the_small_share_of_filters_far_off_either_side():
  means = jnp.asarray([-60.0, 88.0, -1e4])
  got = np.asarray(draw.in_image_mass(means, jnp.float32(8.0), 28))
  expected = [_mass_erf(-60.0, 8.0, 28), _mass_erf(88.0, 8.0, 28), 0.0]
  np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-30)  # float32 tails
  assert got[0] > 0 and got[1] > 0  # ~3e-14 each, not 1 - 1 = 0
  grads = jax.grad(lambda m: draw.in_image_mass(m, jnp.float32(8.0), 28).sum())(means)
  assert np.isfinite(np.asarray(grads)).all()


def test_read_geometry_matches_the_filterbank():
  params = jnp.asarray([0.2, 0.0, 2 * np.log(1.5), -1.0, 0.7])  # every filter on the image
  geometry = draw.read_geometry(params, n=5, height=60, width=100)
  fx, fy, gamma = glimpse.draw_filterbank(params, n=5, height=60, width=100)
  for bank, means, length in ((fx, geometry.means_x, 100), (fy, geometry.means_y, 60)):
    centres = np.arange(length) + 0.5  # pixel j spans [j, j + 1)
    np.testing.assert_allclose(np.asarray(bank) @ centres, means, atol=1e-3)
    spread = np.sqrt((np.asarray(bank) * (centres - np.asarray(means)[:, None]) ** 2).sum(-1))
    np.testing.assert_allclose(spread, geometry.sigma, rtol=1e-3)
  np.testing.assert_allclose(np.diff(geometry.means_x), geometry.stride, rtol=1e-5)
  np.testing.assert_allclose(geometry.log_gamma, np.log(gamma), rtol=1e-6)
  np.testing.assert_allclose(geometry.center,
                             glimpse.draw_center(params, height=60, width=100), atol=1e-6)


def test_an_off_image_read_sees_the_ink_in_gregors_read_and_nothing_with_full_mass():
  images = jax.random.uniform(jax.random.key(0), (16, 28, 28, 1))  # [B, H, W, C]
  # Two image-widths right of the canvas, sigma 13.5 px: Gregor's filters become ramps over
  # the image's right part, so the read follows the ink.
  off = jnp.asarray([4.0, 0.0, 2 * np.log(13.5), 0.0, 0.0])
  gregor = jax.vmap(lambda x: glimpse.draw_read(x, off, n=2))(images)
  full = jax.vmap(lambda x: draw.full_mass_read(x, off, n=2))(images)
  assert float(gregor.mean()) > 0.3  # about the mean ink, 0.5
  assert float(jnp.abs(full).max()) < 0.01  # its filters keep ~1% of their mass on the image
  grads = jax.grad(lambda p: draw.full_mass_read(images[0], p, n=2).sum())(off)
  assert np.isfinite(np.asarray(grads)).all()


def test_full_mass_read_divides_by_the_whole_gaussian():
  image = np.asarray(jax.random.uniform(jax.random.key(1), (20, 30, 1)), np.float64)
  params = np.asarray([0.8, -0.5, 2 * np.log(3.0), -0.2, 0.3])  # filters partly off the image
  got = np.asarray(draw.full_mass_read(jnp.asarray(image, jnp.float32),
                                       jnp.asarray(params, jnp.float32), n=3))
  # NumPy from the equations: Gaussians over 1-based pixel centres / (sqrt(2 pi) sigma).
  n, (height, width) = 3, image.shape[:2]
  gx, gy = (width + 1) / 2 * (params[0] + 1), (height + 1) / 2 * (params[1] + 1)
  delta = (max(width, height) - 1) / (n - 1) * np.exp(params[3])
  sigma = np.exp(params[2] / 2)
  offsets = np.arange(1, n + 1) - n / 2 - 0.5

  def bank(centre, length):
    a = np.arange(1, length + 1)
    means = centre + offsets * delta
    return (np.exp(-(a[None] - means[:, None]) ** 2 / (2 * sigma ** 2))
            / (np.sqrt(2 * np.pi) * sigma))

  expected = np.exp(params[4]) * bank(gy, height) @ image[..., 0] @ bank(gx, width).T
  np.testing.assert_allclose(got[..., 0], expected, atol=2e-3)  # the midpoint rule's error
  # Exactly: each filter sums to its in-image share of mass, so a blank-free image of ones reads
  # gamma * mass_y[i] * mass_x[j].
  ones = draw.full_mass_read(jnp.ones((20, 30, 1)), jnp.asarray(params, jnp.float32), n=3)
  mass_x, mass_y = draw.filter_masses(jnp.asarray(params, jnp.float32), n=3, height=20, width=30)
  np.testing.assert_allclose(ones[..., 0], np.exp(params[4]) * np.outer(mass_y, mass_x),
                             rtol=1e-5)
  assert float(mass_x.min()) < 0.1 < 0.9 < float(mass_x.max())  # off, partly on, on
  # Wholly inside the image, the two reads agree.
  inside = jnp.asarray([0.0, 0.0, 0.0, -1.5, 0.0])  # sigma 1 px, 4 sigma from every border
  np.testing.assert_allclose(draw.full_mass_read(jnp.asarray(image, jnp.float32), inside, n=3),
                             glimpse.draw_read(jnp.asarray(image, jnp.float32), inside, n=3),
                             rtol=1e-3)


def test_bounded_log_gamma():
  raw = jnp.asarray([[0.0, 0.0, 0.0, 0.0, v] for v in (-50.0, -0.01, 0.0, 0.01, 3.0, 50.0)])
  bounded = draw.bound_log_gamma(raw, 2.0)
  np.testing.assert_array_equal(bounded[:, :4], raw[:, :4])
  np.testing.assert_allclose(bounded[:, 4], 2.0 * np.tanh(np.asarray(raw[:, 4]) / 2.0), rtol=1e-6)
  assert float(jnp.abs(bounded[:, 4]).max()) <= 2.0
  np.testing.assert_allclose(bounded[1:4, 4], raw[1:4, 4], rtol=1e-4)  # the identity near 0
  assert draw.bound_log_gamma(raw, 0.0) is raw
  with pytest.raises(ValueError, match='log_gamma_bound must be >= 0, got -1'):
    draw.bound_log_gamma(raw, -1)
  # In the model: a read layer driven hard still reads with gamma within the bound.
  images = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
  model = draw.DrawModel('none', **TINY, log_gamma_bound=1.5, read_norm='full')
  params = model.init(jax.random.key(1), images)
  read = params['params']['draw']['step']['read']
  params['params']['draw']['step']['read'] = {**read, 'kernel': read['kernel'] * 1e4}
  _, trace = model.apply(params, images)
  log_gamma = np.asarray(trace.read_params[..., 4])
  assert np.abs(log_gamma).max() <= 1.5 and np.abs(log_gamma).max() > 1.0
  with pytest.raises(ValueError, match="read_norm must be one of .*got 'gregor'"):
    draw.DrawModel('none', **TINY, read_norm='gregor').init(jax.random.key(1), images)


def test_the_digit_first_read_on_28x28_covers_a_digit_not_the_image():
  for read_init, (low, high), sigma in (('digit', (9.0, 19.0), 5.0), ('blur', (0.5, 27.5), 13.5)):
    params = draw.read_bias(read_init, 2, 28, 28)
    fx, _, _ = glimpse.draw_filterbank(params, n=2, height=28, width=28)
    centres = np.arange(28) + 0.5
    geometry = draw.read_geometry(params, n=2, height=28, width=28)
    np.testing.assert_allclose(geometry.means_x, [low, high], atol=1e-4)
    np.testing.assert_allclose(geometry.sigma, sigma, rtol=1e-5)
    # Gregor's renormalised filters lean inwards, a little for 'digit', a lot for 'blur'.
    leaning = np.asarray(fx) @ centres - np.asarray([low, high])
    assert 0 < leaning[0] < (0.5 if read_init == 'digit' else 10)
  # The digit read's box (means +- half a stride) is MNIST's central 20x20 box, and nearly all
  # its mass lies on the image; 'blur' keeps half its mass off it.
  mass_x, _ = draw.filter_masses(draw.read_bias('digit', 2, 28, 28), n=2, height=28, width=28)
  np.testing.assert_allclose(mass_x, _mass_erf(9.0, 5.0, 28), rtol=1e-5)
  assert float(mass_x.min()) > 0.95
  mass_x, _ = draw.filter_masses(draw.read_bias('blur', 2, 28, 28), n=2, height=28, width=28)
  assert float(mass_x.max()) < 0.5
  # On a wider canvas 'digit' is as before: the outer means 27 px apart, sigma = stride / 2.
  np.testing.assert_allclose(draw.read_bias('digit', 5, 100, 100),
                             [0, 0, 2 * np.log(27 / 8), np.log(27 / 99), 0], rtol=1e-6)


def test_read_stats_per_step():
  read_params = jnp.asarray([[[0.0, 0.0, 2 * np.log(5.0), np.log(10 / 27), 0.5],
                              [3.0, 0.0, 2 * np.log(2.0), np.log(10 / 27), 9.0]],
                             [[0.0, 0.2, 2 * np.log(5.0), np.log(10 / 27), -0.5],
                              [0.0, 0.0, 2 * np.log(13.5), 0.0, 1.0]]])  # [B=2, T=2, 5]
  stats = draw.read_stats(read_params, n=2, height=28, width=28)
  assert sorted(stats) == sorted(f'{s}_g{t}' for s in draw.STATS for t in (1, 2))
  assert all(v.shape == (2,) for v in stats.values())
  np.testing.assert_allclose(stats['log_gamma_g2'], [9.0, 1.0])
  np.testing.assert_allclose(stats['sigma_g1'], [5.0, 5.0], rtol=1e-5)
  np.testing.assert_allclose(stats['stride_g2'], [10.0, 27.0], rtol=1e-5)
  np.testing.assert_allclose(stats['center_x_g2'][0], 3.0 * 29 / 28, rtol=1e-5)  # (gX - .5)/14 - 1
  # The 2-D mass: the mean over the 2 x 2 filters of the product of their x and y shares.
  def mass(gx_pixel, gy_pixel, delta, sigma):
    xs = [_mass_erf(gx_pixel + o * delta, sigma, 28) for o in (-0.5, 0.5)]
    ys = [_mass_erf(gy_pixel + o * delta, sigma, 28) for o in (-0.5, 0.5)]
    return np.mean([x * y for x in xs for y in ys])

  centre = 14.0  # gX = 14.5 (1-based) at gx~ = 0, continuous 14
  np.testing.assert_allclose(stats['in_image_mass_g1'],
                             [mass(centre, centre, 10, 5), mass(centre, 14.5 * 1.2 - 0.5, 10, 5)],
                             rtol=1e-4)
  np.testing.assert_allclose(stats['in_image_mass_g2'],
                             [mass(14.5 * 4 - 0.5, centre, 10, 2), mass(centre, centre, 27, 13.5)],
                             rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(stats['off_image_g2'], [1.0, 1.0])  # ~0 and 0.24 of the mass
  np.testing.assert_array_equal(stats['off_image_g1'], [0.0, 0.0])


def test_forget_bias_is_one_after_init_and_hf_is_the_forget_gate():
  images = jnp.zeros((2, 28, 28, 1))
  variables = draw.DrawModel('classifier', **TINY).init(jax.random.key(0), images)
  biased = draw.with_forget_bias(variables, 1.0)
  for cell in ('encoder', 'decoder'):
    params = biased['params']['draw']['step'][cell]
    np.testing.assert_array_equal(params['hf']['bias'], np.ones(8))
    for gate in ('hi', 'hg', 'ho'):
      np.testing.assert_array_equal(params[gate]['bias'], np.zeros(8))
    np.testing.assert_array_equal(variables['params']['draw']['step'][cell]['hf']['bias'], 0.0)
  # Flax's 'hf' is the forget gate: with all kernels zero, a large hf bias keeps the cell state,
  # a very negative one forgets it.
  cell = nn.OptimizedLSTMCell(4)
  carry = (jnp.full((1, 4), 0.7), jnp.zeros((1, 4)))  # (c, h)
  params = cell.init(jax.random.key(0), carry, jnp.zeros((1, 3)))
  zeros = jax.tree.map(jnp.zeros_like, params)
  for value, kept in ((30.0, 0.7), (-30.0, 0.0)):
    (c, _), _ = cell.apply(draw.with_forget_bias(zeros, value), carry, jnp.zeros((1, 3)))
    np.testing.assert_allclose(c, kept, atol=1e-6)


def test_per_variable_clipping_leaves_an_unspiked_leaf_alone():
  grads = {'spiked': jnp.asarray([300.0, 400.0]), 'calm': jnp.asarray([0.3, 0.4])}  # norms 500, .5
  params = jax.tree.map(jnp.zeros_like, grads)

  def step(per_leaf):
    opt = ml_collections.ConfigDict(dict(
        name='sgd', learning_rate=1.0, schedule='constant', warmup_steps=0, momentum=0.0,
        grad_clip_norm=5.0, grad_clip_per_leaf=per_leaf, weight_decay=0.0, freeze=(),
        plateau=dict(patience=0)))
    tx, _ = state_lib.make_optimizer(opt, 10)
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates

  per_leaf, global_clip = step(True), step(False)
  np.testing.assert_allclose(per_leaf['calm'], [-0.3, -0.4], rtol=1e-6)  # unchanged
  np.testing.assert_allclose(per_leaf['spiked'], [-3.0, -4.0], rtol=1e-6)  # norm 5
  scale = 5.0 / np.sqrt(500.0 ** 2 + 0.5 ** 2)
  np.testing.assert_allclose(global_clip['calm'], [-0.3 * scale, -0.4 * scale], rtol=1e-5)
  assert float(jnp.linalg.norm(global_clip['calm'])) < 0.01  # the global clip shrank it 100x


# ---------------------------------------------------------------------------------------------
# The options as config fields of the experiment.
# ---------------------------------------------------------------------------------------------
def test_every_variant_reads_within_bounds_and_gregor_keeps_the_earlier_runs_read():
  contained = pa.get_config('reconstruction_regular')
  gregor = pa.get_config('reconstruction_regular_gregor')
  for name in contained.pipeline:
    model, optimizer = contained.phases[name].model, contained.phases[name].optimizer
    assert (model.read_norm, model.log_gamma_bound, model.read_init, model.forget_bias) == (
        'full', pa.LOG_GAMMA_BOUND, 'digit', 1.0)
    assert optimizer.grad_clip_per_leaf and optimizer.grad_clip_norm == pa.CLIP
    model, optimizer = gregor.phases[name].model, gregor.phases[name].optimizer
    assert (model.read_norm, model.log_gamma_bound, model.read_init, model.forget_bias) == (
        'image', 0.0, 'blur', 0.0)
    assert not optimizer.grad_clip_per_leaf
  assert gregor.phases.pretrain.optimizer.grad_clip_norm == pa.RECONSTRUCTION_CLIP
  assert gregor.phases.classify.optimizer.grad_clip_norm == pa.CLIP
  assert pa.get_config('no_guidance_translated_gregor').phases.classify.model.read_init == 'digit'
  smoke = pa.get_config('tester_reconstruction_translated_smoke')
  assert smoke.pipeline == ('pretrain', 'sequences', 'tester')
  assert {smoke.phases[p].model.read_norm for p in smoke.pipeline} == {'full'}
  assert smoke.phases.pretrain.model.hidden == 64

  def broken(**fields):
    phase = pa.phase_config('classification', 'regular', 10)
    phase.update_from_flattened_dict(fields)
    return phase

  for fields, message in [
      ({'model.read_norm': 'gregor'}, r"model.read_norm must be one of \['image', 'full'\], got "
                                      r"'gregor'"),
      ({'model.log_gamma_bound': -1.0}, r'model.log_gamma_bound must be >= 0 \(0: unbounded\), '
                                        r'got -1.0'),
  ]:
    with pytest.raises(ValueError, match=message):
      pa.make_experiment(broken(**fields))


@pytest.mark.parametrize('objective', ['classification', 'reconstruction'])
def test_the_phase_logs_its_reads_and_starts_with_forget_bias_one(objective):
  config = pa.phase_config(objective, 'regular', 10)
  config.model.update(hidden=8, latent=3, glimpses=2, classifier_hidden=6)
  experiment = pa.make_experiment(config)
  batch = {'image': jax.random.uniform(jax.random.key(0), (4, 28, 28, 1)),
           'label': jnp.arange(4), 'center': jnp.zeros((4, 2))}
  params = experiment.init(jax.random.key(1), batch)
  for cell in ('encoder', 'decoder'):
    np.testing.assert_array_equal(params['params']['draw']['step'][cell]['hf']['bias'], 1.0)
  _, metrics = experiment.loss(params, batch, jax.random.key(2), 0)
  values = experiment.evaluate(params, batch, jax.random.key(2))
  for t in (1, 2):
    for stat in draw.STATS:
      assert metrics[f'{stat}_g{t}'].shape == () and values[f'{stat}_g{t}'].shape == (4,)
  # The first read is the digit-sized grid, on the image; its gamma is 1.
  np.testing.assert_allclose(values['in_image_mass_g1'], _mass_erf(9.0, 5.0, 28) ** 2, rtol=1e-4)
  np.testing.assert_allclose(values['log_gamma_g1'], 0.0, atol=1e-6)
  np.testing.assert_allclose(metrics['stride_g1'], 10.0, rtol=1e-5)


def test_a_frozen_run_that_read_otherwise_is_named(tmp_path):
  saved = pa.phase_config('reconstruction', 'regular', 10)
  saved.model.read_norm = 'image'
  (tmp_path / 'config.json').write_text(saved.to_json())
  here = pa.phase_config('mimic', 'regular', 10)
  with pytest.raises(ValueError, match=r"model.read_norm: 'image' there, 'full' here"):
    pa._check_frozen_run('frozen.teacher', str(tmp_path), here)  # pylint: disable=protected-access
  # A run whose config predates the fields read as Gregor's read does: no complaint from a phase
  # that reads so too.
  saved = pa.phase_config('reconstruction', 'regular', 10, gregor=True)
  here = pa.phase_config('mimic', 'regular', 10, gregor=True)
  del saved.model['read_norm'], saved.model['log_gamma_bound']
  (tmp_path / 'config.json').write_text(saved.to_json())
  pa._check_frozen_run('frozen.teacher', str(tmp_path), here)  # pylint: disable=protected-access


def test_the_in_image_penalty_adds_the_mean_mass_off_the_image():
  batch = {'image': jax.random.uniform(jax.random.key(0), (4, 28, 28, 1)),
           'label': jnp.arange(4), 'center': jnp.zeros((4, 2))}

  def loss_and_metrics(weight):
    config = pa.phase_config('reconstruction', 'regular', 10)
    config.model.update(hidden=8, latent=3, glimpses=2)
    config.loss.in_image_weight = weight
    experiment = pa.make_experiment(config)
    params = experiment.init(jax.random.key(1), batch)
    return experiment.loss(params, batch, jax.random.key(2), 0)

  plain, metrics = loss_and_metrics(0.0)
  penalised, penalised_metrics = loss_and_metrics(3.0)
  mass = np.mean([metrics[f'in_image_mass_g{t}'] for t in (1, 2)])
  np.testing.assert_allclose(penalised_metrics['in_image_penalty'], 1.0 - mass, rtol=1e-5)
  np.testing.assert_allclose(penalised - plain, 3.0 * (1.0 - mass), rtol=1e-4)
  assert 'in_image_penalty' not in metrics
  config = pa.phase_config('classification', 'regular', 10)
  config.loss.in_image_weight = -1.0
  with pytest.raises(ValueError, match='loss.in_image_weight must be >= 0, got -1.0'):
    pa.make_experiment(config)


def test_reconstruction_and_translated_classifiers_penalise_reads_off_the_image_by_default():
  penalised = {('reconstruction', 'regular'), ('reconstruction', 'translated'),
               ('classification', 'translated')}
  for objective in ('reconstruction', 'classification', 'heuristic', 'mimic', 'tester'):
    for dataset in pa.DATASETS:
      weight = pa.phase_config(objective, dataset, 10).loss.in_image_weight
      expected = pa.IN_IMAGE_WEIGHT if (objective, dataset) in penalised else 0.0
      assert weight == expected, (objective, dataset)
      assert pa.phase_config(objective, dataset, 10, gregor=True).loss.in_image_weight == 0.0
  pipeline = pa.get_config('tester_reconstruction_classification_regular')
  assert pipeline.phases.pretrain.loss.in_image_weight == pa.IN_IMAGE_WEIGHT
  assert pipeline.phases.classify.loss.in_image_weight == 0.0
  assert pa.get_config('no_guidance_translated').phases.classify.loss.in_image_weight == 10.0
  for method in ('heuristic', 'reconstruction'):  # grafted from pre-trained reads: unpenalised
    assert pa.get_config(f'{method}_translated').phases.classify.loss.in_image_weight == 0.0
  tester = pa.get_config('tester_reconstruction_classification_translated').phases
  assert (tester.pretrain.loss.in_image_weight, tester.classify.loss.in_image_weight) == (10.0, 0.0)
  assert pa.get_config('bootstrap_translated').phases.teacher.loss.in_image_weight == 10.0
  assert pa.get_config('bootstrap_translated').phases.classify.loss.in_image_weight == 0.0
