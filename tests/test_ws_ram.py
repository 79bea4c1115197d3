"""WS-RAM: rollout shapes, log-probs at the drawn actions, gradient routing, configs, variants."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ws_ram
from glimpse_jax import data
from glimpse_jax.nets.context import area_downsample, area_matrix
from glimpse_jax.nets import RetinaSpec, WakeSleepRAM, draw_noise, mode_noise
from glimpse_jax.nets import ws_ram as ws_ram_net

K, B, T, S = 3, 4, 2, 3


def _model(**kwargs):
  fields = dict(retina=RetinaSpec(size=4, num_scales=S, scale_factor=2), low_res_size=5,
                bottom_features=12, top_features=10, glimpse_features=8, what_features=6,
                where_features=4, inference_features=6, location_std=0.3)
  fields.update(kwargs)
  return WakeSleepRAM(**fields)


def _inputs(height=20, width=20, glimpses=T):
  images = jax.random.uniform(jax.random.key(1), (B, height, width, 1))
  labels = jnp.arange(B, dtype=jnp.int32) % 10
  return images, labels, draw_noise(jax.random.key(2), (K, B, glimpses), S)


def _tiny(variant):
  """`variant`'s config on a 32x32 canvas with tiny widths and 2 glimpses."""
  config = ws_ram.get_config(variant)
  with config.unlocked():
    config.dataset.update(name='translated', canvas_size=32)
    config.model.update(num_glimpses=2, glimpse_size=4, low_res_size=4, bottom_features=8,
                        top_features=8, glimpse_features=8, what_features=4, where_features=4,
                        inference_features=4)
    config.loss.num_samples = 3
    config.eval.mc_samples = 2
  return config


def _batch(size=32, n=4):
  rng = np.random.default_rng(0)
  return {'image': rng.uniform(size=(n, size, size, 1)).astype(np.float32),
          'label': rng.integers(0, 10, size=n).astype(np.int32)}


def _init(model, *inputs):
  """`model.init`, jitted, from an 'rbg' key: one compilation, and a far cheaper one than
  threefry's (no check here depends on which random parameters are drawn)."""
  return jax.jit(model.init)(jax.random.key(0, impl='rbg'), *inputs)


@pytest.mark.slow
def test_rollout_shapes():
  model = _model(learn_std=True)
  images, labels, noise = _inputs()
  params = _init(model, images, noise, labels)
  out = jax.jit(lambda p: model.apply(p, images, noise, labels, proposal='q'))(params)
  assert out.class_log_probs.shape == (B, K, 10)
  for name in ('log_prior', 'log_q', 'log_proposal', 'scales'):
    assert getattr(out, name).shape == (B, K, T), name
  assert out.locations.shape == out.prior.loc_mean.shape == out.q.loc_log_std.shape == (B, K, T, 2)
  assert out.prior.scale_logits.shape == (B, K, T, S)
  assert out.baseline.shape == (B,)
  assert out.bottom.shape == (B, K, T, 12) and out.top.shape == (B, K, T, 10)
  assert out.scales.dtype == jnp.int32 and np.all((out.scales >= 0) & (out.scales < S))
  without_labels = model.apply(params, images, noise)
  assert without_labels.log_q is None and without_labels.q is None


def _gaussian(x, mean, std):
  return np.sum(-0.5 * ((x - mean) / std)**2 - np.log(std) - 0.5 * np.log(2 * np.pi), -1)


def _categorical(logits, index):
  log_p = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  return np.take_along_axis(log_p, index[..., None], -1)[..., 0]


@pytest.mark.slow
@pytest.mark.parametrize('proposal,temperature', [('q', 1.0), ('q', 2.0), ('prior', 1.5)])
def test_log_probs_are_evaluated_at_the_proposals_sample(proposal, temperature):
  model = _model()
  images, labels, noise = _inputs()
  params = _init(model, images, noise, labels)
  out = jax.tree.map(np.asarray, model.apply(params, images, noise, labels, proposal=proposal,
                                             temperature=temperature))
  p = params['params']
  # The first glimpse's prior, from the context network by hand (5 divides 20: block means).
  low_res = np.asarray(images).reshape(B, 5, 4, 5, 4).mean((2, 4)).reshape(B, -1)
  top = np.maximum(low_res @ p['context']['dense']['kernel'] + p['context']['dense']['bias'], 0)
  policy = p['step']['policy']
  prior_mean = np.tanh(top @ policy['mean']['kernel'] + policy['mean']['bias'])  # [B, 2]
  prior_logits = top @ policy['scale']['kernel'] + policy['scale']['bias']  # [B, S]
  np.testing.assert_allclose(out.prior.loc_mean[:, 0, 0], prior_mean, rtol=1e-5, atol=1e-6)

  acting = out.q if proposal == 'q' else out.prior
  mean, logits = acting.loc_mean[:, :, 0], acting.scale_logits[:, :, 0]  # [B, K, 2], [B, K, S]
  std = 0.3 * np.sqrt(temperature)
  # The noise is drawn [K, B, T, ...]: its first glimpse, example first.
  loc = mean + std * np.swapaxes(np.asarray(noise.location[:, :, 0]), 0, 1)
  scale = np.argmax(logits / temperature + np.swapaxes(np.asarray(noise.choice[:, :, 0]), 0, 1),
                    -1)
  np.testing.assert_allclose(out.locations[:, :, 0], loc, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out.scales[:, :, 0], scale)
  expected_prior = (_gaussian(loc, prior_mean[:, None], 0.3)
                    + _categorical(np.broadcast_to(prior_logits[:, None], (B, K, S)), scale))
  q_mean, q_logits = out.q.loc_mean[:, :, 0], out.q.scale_logits[:, :, 0]
  expected_q = _gaussian(loc, q_mean, 0.3) + _categorical(q_logits, scale)
  expected_proposal = (_gaussian(loc, mean, std) + _categorical(logits / temperature, scale))
  np.testing.assert_allclose(out.log_prior[:, :, 0], expected_prior, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out.log_q[:, :, 0], expected_q, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out.log_proposal[:, :, 0], expected_proposal, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('proposal,temperature,learn_std,initial_location,to_bottom',
                         [('prior', 1.0, False, 'policy', True), ('q', 2.0, True, 'policy', True),
                          ('q', 1.0, False, 'centroid', True), ('prior', 1.0, True, 'policy', False)])
def test_fused_rollout_gives_the_scanned_values_and_gradients(proposal, temperature, learn_std,
                                                              initial_location, to_bottom):
  images, labels, noise = _inputs(glimpses=3)
  scanned, fused = (_model(learn_std=learn_std, initial_location=initial_location, fused=f,
                           policy_gradient_to_bottom=to_bottom)
                    for f in (False, True))
  params = _init(scanned, images, noise, labels)

  def loss(model, p):
    out = model.apply(p, images, noise, labels, proposal=proposal, temperature=temperature)
    # Every differentiable output, weighted differently per glimpse.
    weights = jnp.arange(1.0, 4.0)  # [T]
    total = (out.class_log_probs[..., 0].sum() + (out.log_prior * weights).sum()
             + 0.3 * (out.log_q * weights).sum() + 0.1 * out.log_proposal.sum()
             + (out.prior.scale_logits**2).sum() + out.q.loc_mean.sum() + out.baseline.sum()
             + 0.01 * (out.top.sum() + out.bottom.sum()))
    return total, out

  (value, out), grads = jax.jit(jax.value_and_grad(lambda p: loss(scanned, p), has_aux=True))(
      params)
  (fused_value, fused_out), fused_grads = jax.jit(jax.value_and_grad(
      lambda p: loss(fused, p), has_aux=True))(params)
  np.testing.assert_allclose(fused_value, value, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), fused_out, out)
  for path, g in jax.tree.leaves_with_path(grads):
    fused_g = fused_grads
    for key in path:
      fused_g = fused_g[key.key]
    np.testing.assert_allclose(fused_g, g, rtol=1e-4, atol=1e-5 * np.abs(g).max() + 1e-7,
                               err_msg=jax.tree_util.keystr(path))


def test_mode_noise_takes_the_mean_location_and_the_most_probable_scale():
  model = _model()
  images, labels, noise = _inputs()
  params = _init(model, images, noise, labels)
  out = model.apply(params, images, mode_noise((1, B, T), S))
  np.testing.assert_allclose(out.locations, out.prior.loc_mean, atol=1e-6)
  np.testing.assert_array_equal(out.scales, np.argmax(out.prior.scale_logits, -1))


def test_the_image_reaches_the_classifier_only_through_glimpses():
  """One glimpse near the centre: pixels outside its widest window move the top layer only."""
  model = _model(retina=RetinaSpec(size=4, num_scales=2, scale_factor=2))
  images, labels, noise = _inputs(height=40, width=40, glimpses=1)
  noise = noise._replace(location=jnp.zeros_like(noise.location), choice=noise.choice[..., :2])
  params = _init(model, images, noise, labels)
  # A glimpse at (0, 0) reads at most rows and columns [16, 24); the policy's mean is pinned there.
  policy = params['params']['step']['policy']
  policy['mean'] = jax.tree.map(jnp.zeros_like, policy['mean'])
  apply = lambda image: model.apply(params, image, noise)
  grad_class = jax.jit(jax.grad(lambda x: jnp.sum(apply(x).class_log_probs[..., 0])))(images)
  grad_top = jax.jit(jax.grad(lambda x: jnp.sum(apply(x).top)))(images)
  outside = np.ones((40, 40), bool)
  outside[16:24, 16:24] = False
  assert np.all(np.asarray(grad_class)[:, outside] == 0)
  assert np.abs(np.asarray(grad_class)[:, ~outside]).max() > 0
  assert np.abs(np.asarray(grad_top)[:, outside]).max() > 0


@pytest.mark.slow
@pytest.mark.parametrize('fused', [False, True])
def test_policy_gradient_stops_at_the_top_layer_when_detached_from_the_bottom(fused):
  images, labels, noise = _inputs(glimpses=3)
  models = {to_bottom: _model(fused=fused, policy_gradient_to_bottom=to_bottom)
            for to_bottom in (True, False)}
  params = _init(models[True], images, noise, labels)
  policy_term = lambda model, p: (model.apply(p, images, noise).log_prior
                                  * jnp.linspace(-1.0, 1.0, 3)).sum()  # [K, B, T] weighted
  grads = {k: jax.jit(jax.grad(functools.partial(policy_term, m)))(params)['params']
           for k, m in models.items()}
  norm = lambda tree: float(sum(jnp.abs(leaf).sum() for leaf in jax.tree.leaves(tree)))
  for part in ('bottom', 'glimpse'):
    assert norm(grads[False]['step'][part]) == 0.0, part
    assert norm(grads[True]['step'][part]) > 1e-6, part
  for part in ('top', 'policy'):  # the policy's own layers learn either way
    assert norm(grads[False]['step'][part]) > 1e-6, part
  np.testing.assert_allclose(grads[False]['step']['policy']['mean']['kernel'],
                             grads[True]['step']['policy']['mean']['kernel'], rtol=1e-5,
                             atol=1e-7)
  assert norm(grads[False]['context']) > 1e-6


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['var_cv', 'ws_q_cv'])
def test_policy_time_average_divides_only_the_policies_gradient_by_the_glimpses(variant):
  summed, summed_metrics, config = _grad_leaves(variant)
  averaged, averaged_metrics, _ = _grad_leaves(variant, policy_time_average=True)
  glimpses = config.model.num_glimpses
  for path in summed:
    if "'policy'" in path or "'inference'" in path:  # only the policies' terms reach these
      np.testing.assert_allclose(averaged[path], summed[path] / glimpses, rtol=1e-4,
                                 atol=1e-7, err_msg=path)
    elif "'classifier'" in path or "'baseline'" in path:  # no policy term reaches these
      np.testing.assert_allclose(averaged[path], summed[path], rtol=1e-5, atol=1e-8,
                                 err_msg=path)
  assert not np.allclose(averaged["['params']['step']['bottom']['recurrent']['kernel']"],
                         summed["['params']['step']['bottom']['recurrent']['kernel']"])
  for name in ('bound', 'surrogate', 'nll'):  # the values are unchanged
    np.testing.assert_allclose(averaged_metrics[name], summed_metrics[name], rtol=1e-6)


@functools.lru_cache(maxsize=None)
def _grad_leaves(variant, entropy_weight=0.0, coverage_weight=0.0, policy_time_average=False):
  """{parameter path: gradient} of one loss on a tiny config, with every metric."""
  config = _tiny(variant)
  with config.unlocked():
    config.model.learn_std = True
    config.loss.update(entropy_weight=entropy_weight, coverage_weight=coverage_weight,
                       policy_time_average=policy_time_average)
  experiment = ws_ram.make_experiment(config)
  batch = _batch()
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  step = jax.jit(jax.value_and_grad(lambda p: experiment.loss(p, batch, jax.random.key(3), 0),
                                    has_aux=True))
  (loss, metrics), grads = step(params)
  assert np.isfinite(loss)
  leaves = {jax.tree_util.keystr(path): np.asarray(g)
            for path, g in jax.tree.leaves_with_path(grads)}
  return leaves, jax.tree.map(float, metrics), config


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['var_cv', 'ws', 'ws_q_cv'])
def test_gradients_reach_the_prediction_network_and_q_only_for_ws_q(variant):
  grads, metrics, config = _grad_leaves(variant)
  for path, g in grads.items():
    assert np.all(np.isfinite(g)), path
    if "'inference'" in path:
      assert (np.abs(g).max() > 0) == (config.loss.method == 'ws_q'), path
    elif "'baseline'" in path:  # regressed in every method (its input's gradient is stopped)
      assert np.abs(g).max() > 0, path
    else:
      assert np.abs(g).max() > 0, f'no gradient reaches {path}'
  assert 1.0 <= metrics['ess'] <= config.loss.num_samples + 1e-4
  fractions = [metrics[f'scale_frac_{s}'] for s in range(config.model.num_scales)]
  np.testing.assert_allclose(sum(fractions), 1.0, rtol=1e-5)
  assert {'error', 'bound', 'surrogate', 'nll', 'entropy', 'coverage'} <= set(metrics)


@pytest.mark.slow
def test_exploration_terms_add_gradient_to_the_policy():
  plain, _, _ = _grad_leaves('ws')
  explored, metrics, _ = _grad_leaves('ws', entropy_weight=1.0, coverage_weight=1.0)
  key = "['params']['step']['policy']['scale']['kernel']"
  assert not np.allclose(plain[key], explored[key])
  assert metrics['coverage'] > 0


@pytest.mark.parametrize('variant', ws_ram.VARIANTS)
def test_every_variant_traces_a_loss_and_gradient_at_full_size(variant):
  """Shapes and dtypes of one update at the variant's own canvas and widths (traced, not run)."""
  config = ws_ram.get_config(variant)
  experiment = ws_ram.make_experiment(config)
  batch = {'image': jax.ShapeDtypeStruct((config.batch_size, *data.image_shape(config.dataset)),
                                         jnp.float32),
           'label': jax.ShapeDtypeStruct((config.batch_size,), jnp.int32)}
  params = jax.eval_shape(experiment.init, jax.random.key(0), batch)
  (loss, metrics), grads = jax.eval_shape(jax.value_and_grad(
      lambda p, b: experiment.loss(p, b, jax.random.key(1), 0), has_aux=True), params, batch)
  assert loss.shape == () and all(m.shape == () for m in metrics.values())
  assert jax.tree.map(lambda g: g.shape, grads) == jax.tree.map(lambda p: p.shape, params)


@pytest.mark.slow
def test_evaluate_gives_per_example_values():
  config = _tiny('ws_q_cv')
  experiment = ws_ram.make_experiment(config)
  batch = _batch(n=6)
  batch['center'] = np.zeros((6, 2), np.float32)
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  values = jax.jit(experiment.evaluate)(params, batch, jax.random.key(1))
  assert {'error', 'error_mc', 'nll', 'bound', 'scale_frac_0', 'scale_frac_2',
          'first_on_digit'} <= set(values)
  for name, value in values.items():
    assert value.shape == (6,), name
  assert set(np.unique(values['error'])) <= {0.0, 1.0}
  assert set(np.unique(values['first_on_digit'])) <= {0.0, 1.0}
  _, metrics = jax.jit(lambda p, b: experiment.loss(p, b, jax.random.key(2), 0))(params, batch)
  assert 0.0 <= metrics['first_on_digit'] <= 1.0
  np.testing.assert_allclose(sum(values[f'scale_frac_{s}'] for s in range(3)), 1.0, rtol=1e-6)


def test_area_downsample_averages_areas():
  images = np.random.default_rng(0).uniform(size=(2, 12, 12, 1)).astype(np.float32)
  np.testing.assert_allclose(area_downsample(images, 4),
                             images.reshape(2, 4, 3, 4, 3, 1).mean((2, 4)), rtol=1e-5)
  weights = area_matrix(10, 3)  # fractional overlaps: every row averages, every pixel counts
  np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(weights.sum(0), 0.3, rtol=1e-6)


def test_intensity_centroid_against_numpy():
  rng = np.random.default_rng(3)
  images = rng.uniform(size=(3, 6, 8, 2)).astype(np.float32)
  images[1] = 0.0
  images[1, 4, 1] = 1.0  # one lit pixel: row 4, column 1
  expected = []
  for image in images:
    mass = image.sum(-1)
    rows, cols = np.meshgrid(np.arange(6), np.arange(8), indexing='ij')
    x = ((cols + 0.5) / 8 * 2 - 1) * mass
    y = ((rows + 0.5) / 6 * 2 - 1) * mass
    expected.append([x.sum() / mass.sum(), y.sum() / mass.sum()])
  got = np.asarray(ws_ram_net.intensity_centroid(jnp.asarray(images)))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[1], [1.5 / 8 * 2 - 1, 4.5 / 6 * 2 - 1], atol=1e-6)
  np.testing.assert_array_equal(ws_ram_net.intensity_centroid(jnp.zeros((1, 4, 4, 1))), [[0, 0]])


@pytest.mark.slow
def test_centroid_start_offsets_only_the_first_glimpse():
  _, labels, noise = _inputs(glimpses=3)
  # Ink in one corner of each image: centroids far from the centre, so the offset is large.
  images = np.zeros((B, 20, 20, 1), np.float32)
  for b in range(B):
    images[b, 1 + 3 * b:4 + 3 * b, 14:18] = 1.0
  images = jnp.asarray(images)
  policy, centroid = _model(), _model(initial_location='centroid')
  params = _init(policy, images, noise, labels)
  a = policy.apply(params, images, noise, labels, proposal='q')
  b = centroid.apply(params, images, noise, labels, proposal='q')
  c = ws_ram_net.CENTROID_SHRINK * np.asarray(ws_ram_net.intensity_centroid(images))  # [B, 2]
  assert np.all(np.abs(c[:, 0]) > 0.5)
  for dist_a, dist_b in ((a.prior, b.prior), (a.q, b.q)):
    first = np.tanh(np.arctanh(np.asarray(dist_a.loc_mean[:, 0, 0])) + np.arctanh(c))
    np.testing.assert_allclose(dist_b.loc_mean[:, 0, 0], first, rtol=1e-4, atol=1e-5)
  # The first location is drawn around q's shifted mean; later means carry no offset of their own.
  np.testing.assert_allclose(b.locations[:, :, 0],
                             b.q.loc_mean[:, :, 0] + 0.3 * jnp.swapaxes(noise.location[:, :, 0],
                                                                        0, 1),
                             rtol=1e-5, atol=1e-6)
  p = params['params']['step']
  top = np.asarray(b.top[:, :, 0])  # [B, K, D2] the state both policies read at t = 1
  later_prior = np.tanh(top @ p['policy']['mean']['kernel'] + p['policy']['mean']['bias'])
  np.testing.assert_allclose(b.prior.loc_mean[:, :, 1], later_prior, rtol=1e-4, atol=1e-5)
  q = p['inference']
  hidden = np.maximum(np.concatenate([top, np.broadcast_to(np.eye(10)[labels][:, None],
                                                            (B, K, 10))], -1)
                      @ q['hidden']['kernel'] + q['hidden']['bias'], 0)
  later_q = np.tanh(hidden @ q['mean']['kernel'] + q['mean']['bias'])
  np.testing.assert_allclose(b.q.loc_mean[:, :, 1], later_q, rtol=1e-4, atol=1e-5)


def test_patch_holds_center_counts_the_finest_patch():
  # 40x40 canvas, 8 px patch: half a patch is 0.2 in location units.
  center = jnp.array([[0.0, 0.0], [0.5, -0.5]])
  locations = jnp.array([[[0.19, -0.19], [0.21, 0.0], [0.0, 0.0]],
                         [[0.5, -0.5], [0.3, -0.7], [1.5, -0.5]]])  # [B, 3, 2]
  got = ws_ram.patch_holds_center(locations, center, 8, (40, 40))
  np.testing.assert_array_equal(got, [[1, 0, 1], [1, 1, 0]])


@pytest.mark.parametrize('field,value', [
    ('model.num_glimpses', 0),
    ('model.glimpse_size', 40),
    ('model.low_res_size', 0),
    ('model.num_scales', 0),
    ('model.location_std', 0.0),
    ('model.top_features', 0),
    ('loss.method', 'reinforce'),
    ('loss.num_samples', 0),
    ('loss.temperature', 0.0),
    ('loss.entropy_weight', -0.1),
    ('loss.coverage_weight', -1.0),
    ('model.initial_location', 'corner'),
    ('loss.saturation_weight', -1.0),
])
def test_bad_config_fails_naming_the_field(field, value):
  config = _tiny('smoke')
  section, name = field.split('.')
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=f'{section}.{name}'):
    ws_ram.make_experiment(config)


def test_a_row_variant_keeps_its_method():
  config = ws_ram.get_config('ws_cv')
  config.loss.method = 'var'
  with pytest.raises(ValueError, match='paper.row'):
    ws_ram.make_experiment(config)
  assert ws_ram.get_config().loss.method == 'ws_q' and ws_ram.get_config().loss.control_variates


def test_a_paper_row_needs_the_papers_dataset():
  config = ws_ram.get_config('var_cv')
  assert ws_ram.paper_row(config) == ('VAR + c.v.', 0.0181)
  assert ws_ram.paper_row(config.to_dict()) == ('VAR + c.v.', 0.0181)  # as in results.json
  config.dataset.scale_range = (0.5, 1.0)  # smaller digits: not the paper's table
  assert ws_ram.paper_row(config) is None
  assert ws_ram.paper_row(ws_ram.get_config('smoke')) is None
  with pytest.raises(ValueError, match='ws_q_cv'):
    ws_ram.get_config('ws_q_cvx')


def test_a_shrunk_smoke_trains_a_few_steps(data_dir, tmp_path):
  from glimpse_jax import train  # pylint: disable=g-import-not-at-top
  config = _tiny('smoke')
  with config.unlocked():
    config.dataset.update(data_dir=data_dir, download=False, eval_examples=16)
    config.update(num_steps=4, batch_size=8, log_every=2, eval_every=2, checkpoint_every=0,
                  eval_examples_during_training=16)
    config.eval.batch_size = 16
  results = train.run(config, str(tmp_path / 'run'), ws_ram.make_experiment(config))
  assert results['steps'] == 4 and 0 <= results['test_error'] <= 1
  evals = [r['step'] for r in train.read_metrics(str(tmp_path / 'run')) if r['kind'] == 'eval']
  assert evals == [2, 4]


@pytest.mark.learning
def test_estimator_variance_at_a_runs_snapshots(data_dir, tmp_path):
  from scripts import ws_ram_variance
  from glimpse_jax import train
  config = _tiny('ws_q_cv')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.update(num_steps=6, batch_size=8, log_every=3, eval_every=0, checkpoint_every=0,
                  checkpoint_at=(2,), grad_variance_every=0)
    config.dataset.eval_examples = 16
  workdir = str(tmp_path / 'run')
  train.run(config, workdir, ws_ram.make_experiment(config))
  result = ws_ram_variance.measure(workdir, draws=8, examples=32)
  assert result['steps'] == [2, 6]  # the kept snapshot and the last
  assert set(result['rows']) == set(ws_ram.ROWS)
  rows = result['rows']
  for row, values in rows.items():
    assert len(values) == 2 and all(np.isfinite(v) and v > 0 for v in values), row
  # The control variates cut the wake-sleep estimators' variance by orders of magnitude (seed 0,
  # at steps 2 and 6: ws 5.9 and 5.7 against ws_cv 0.017 and 0.017; ws_q 12.4 and 12.0 against
  # ws_q_cv 0.017 and 0.018) and VAR's by a little (31.8, 30.5 against 28.5, 27.3).
  for plain, with_cv, factor in (('ws', 'ws_cv', 100), ('ws_q', 'ws_q_cv', 100),
                                 ('var', 'var_cv', 1)):
    for a, b in zip(rows[plain], rows[with_cv]):
      assert b * factor < a, (plain, rows[plain], with_cv, rows[with_cv])
  assert (tmp_path / 'run' / 'estimator_variance.png').stat().st_size > 0

  # The compared gradient leaves out the baseline and q, and nothing else.
  params = train.load_params(workdir, step=2)
  kept = ws_ram_variance.prediction_gradient(params)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.leaves_with_path(params)]
  auxiliary = [p for p in paths if "'baseline'" in p or "'inference'" in p]
  assert auxiliary and len(kept) == len(paths) - len(auxiliary)


def test_variance_smoke_keeps_its_snapshots_within_the_smoke_run():
  from scripts import ws_ram_variance
  from glimpse_jax import train
  config = ws_ram_variance.smoke_config()
  train.validate(config)
  ws_ram.validate(config)
  assert tuple(config.checkpoint_at) == ws_ram_variance.SMOKE_SNAPSHOTS
  assert max(config.checkpoint_at) <= config.num_steps
  assert config.loss.method == 'ws_q' and config.loss.control_variates
