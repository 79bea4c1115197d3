"""RAM's swappable parts: locators, teacher forcing, per-example stopping, the per-step classifier,
the shared noise, retina and greedy / Monte-Carlo evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax.nets import (ActionNoise, RecurrentAttentionModel, RetinaSpec, draw_noise,
                              grid_cell, grid_centers, mode_noise, path_values)

B, T, G, STD = 4, 3, 3, 0.3


def _model(**kwargs):
  fields = dict(retina=RetinaSpec(size=4, num_scales=2), core_features=12, glimpse_features=10,
                what_features=6, where_features=4, locator_features=5, grid_size=G,
                location_std=STD, num_classes=7)
  fields.update(kwargs)
  return RecurrentAttentionModel(**fields)


def _noise(locator, steps=T):
  return draw_noise(jax.random.key(2), (steps, B), G * G if locator == 'grid' else 0)


def _setup(locator='linear', **kwargs):
  model = _model(locator=locator, **kwargs)
  images = jax.random.uniform(jax.random.key(1), (B, 16, 16, 1))
  noise = _noise(locator)
  # Jitted, from an 'rbg' key: one cheap compilation (no check depends on the draw).
  return model, jax.jit(model.init)(jax.random.key(0, impl='rbg'), images, noise), images, noise


def _time_major(a):
  """A batch-first output [B, T, ...] in the noise's layout [T, B, ...]."""
  return jnp.swapaxes(a, 0, 1)


def _replay_noise(out, locator):
  """Noise under which the unforced policy takes exactly the actions of `out`."""
  if locator == 'grid':
    cells = grid_cell(_time_major(out.locations), G)  # [T, B]
    return ActionNoise(jnp.zeros((T, B, 2)), 1e4 * jax.nn.one_hot(cells, G * G))
  return ActionNoise(_time_major(out.locations - out.loc_mean) / STD, None)


@pytest.mark.slow
@pytest.mark.parametrize('locator', ['linear', 'lstm', 'grid'])
def test_teacher_forcing_reads_the_given_locations_and_reports_their_log_probs(locator):
  model, params, images, noise = _setup(locator)
  given = jax.random.uniform(jax.random.key(4), (B, T, 2), minval=-0.9, maxval=0.9)
  forced = jnp.array([True, False, True, False])
  apply = jax.jit(model.apply)
  out = apply(params, images, noise, given_locations=given, forced=forced)
  free = apply(params, images, noise)
  target = jnp.asarray(grid_centers(G))[grid_cell(given, G)] if locator == 'grid' else given
  np.testing.assert_allclose(out.locations[::2], target[::2], atol=1e-6)
  np.testing.assert_allclose(out.locations[1::2], free.locations[1::2], atol=1e-6)
  # Forcing equals the policy having drawn the given actions: same glimpses, states, log-probs.
  replay = apply(params, images, _replay_noise(out, locator))
  for name in ('locations', 'hidden', 'log_probs', 'logits'):
    np.testing.assert_allclose(getattr(replay, name), getattr(out, name), rtol=1e-4, atol=1e-4,
                               err_msg=name)
  assert not np.allclose(out.hidden[0], free.hidden[0])


def test_gaussian_log_probs_follow_the_density():
  model, params, images, noise = _setup('linear')
  out = jax.jit(model.apply)(params, images, noise)
  np.testing.assert_allclose(out.locations, out.loc_mean + STD * _time_major(noise.location),
                             atol=1e-6)
  z = (np.asarray(out.locations) - np.asarray(out.loc_mean)) / STD
  expected = np.sum(-0.5 * z**2 - np.log(STD) - 0.5 * np.log(2 * np.pi), -1)
  np.testing.assert_allclose(out.log_probs, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('locator', ['linear', 'grid'])
def test_mode_noise_gives_the_greedy_path(locator):
  model, params, images, _ = _setup(locator)
  apply = jax.jit(model.apply)
  out = apply(params, images, mode_noise((T, B), G * G if locator == 'grid' else 0))
  if locator == 'linear':
    np.testing.assert_allclose(out.locations, out.loc_mean, atol=1e-6)
  else:  # the most probable cell: its log-prob is the largest of all cells'
    cells = np.asarray(grid_cell(out.locations, G))
    np.testing.assert_allclose(out.locations, grid_centers(G)[cells], atol=1e-6)
    for cell in range(G * G):
      one_hot = 1e4 * jax.nn.one_hot(jnp.full((T, B), cell), G * G)
      other = apply(params, images, ActionNoise(jnp.zeros((T, B, 2)), one_hot))
      assert np.all(other.log_probs[:, 0] <= out.log_probs[:, 0] + 1e-5)


@pytest.mark.slow
def test_step_mask_holds_the_state_and_keeps_the_last_taken_steps_logits():
  model, params, images, noise = _setup('lstm', core='lstm', classify_every_step=True)
  lengths = np.array([3, 1, 2, 3])
  mask = jnp.asarray(lengths[:, None] > np.arange(T)[None, :], jnp.float32)  # [B, T]
  apply = jax.jit(model.apply)
  out = apply(params, images, noise, step_mask=mask)
  for b, length in enumerate(lengths):
    for t in range(length, T):
      np.testing.assert_array_equal(out.hidden[b, t], out.hidden[b, length - 1])
  for length in set(lengths.tolist()):
    short = apply(params, images, jax.tree.map(lambda a: a[:length], noise))
    rows = lengths == length
    np.testing.assert_allclose(out.logits[rows], short.logits[rows], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.step_logits[rows, length - 1], short.logits[rows], rtol=1e-5,
                               atol=1e-6)


def test_per_step_classifier_outputs_every_steps_logits():
  model, params, images, noise = _setup('linear', classify_every_step=True)
  out = jax.jit(model.apply)(params, images, noise)
  assert out.step_logits.shape == (B, T, 7) and out.logits.shape == (B, 7)
  np.testing.assert_array_equal(out.logits, out.step_logits[:, -1])
  final_only = jax.jit(_model(locator='linear').apply)(params, images, noise)
  assert final_only.step_logits is None
  np.testing.assert_allclose(final_only.logits, out.logits, rtol=1e-6)


def test_rollout_inputs_fail_early():
  model, params, images, noise = _setup('grid')
  with pytest.raises(ValueError, match='together'):
    model.apply(params, images, noise, given_locations=jnp.zeros((B, T, 2)))
  with pytest.raises(ValueError, match='choice noise'):
    model.apply(params, images, _noise('linear'))
  with pytest.raises(ValueError, match='locator'):
    _model(locator='spiral').init(jax.random.key(0), images, noise)


def test_grid_centers_and_cells():
  centres = grid_centers(3)
  ticks = np.array([-2 / 3, 0.0, 2 / 3])
  np.testing.assert_allclose(centres, [(x, y) for y in ticks for x in ticks], atol=1e-6)
  np.testing.assert_array_equal(grid_cell(jnp.asarray(centres), 3), np.arange(9))
  corners = jnp.array([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-0.3, 0.34]])
  np.testing.assert_array_equal(grid_cell(corners, 3), [0, 8, 2, 7])
  with pytest.raises(ValueError, match='grid_size'):
    grid_centers(0)


@pytest.mark.slow
def test_noise_layout_and_retina_spec():
  noise = draw_noise(jax.random.key(0), (5, T, B), 4)
  assert noise.location.shape == (5, T, B, 2) and noise.choice.shape == (5, T, B, 4)
  assert draw_noise(jax.random.key(0), (T, B)).choice is None
  assert not np.any(mode_noise((T, B), 4).choice)
  with pytest.raises(ValueError, match='num_choices'):
    mode_noise((T, B), -1)
  with pytest.raises(ValueError, match='num_scales'):
    RetinaSpec(size=8, num_scales=0)
  images = jax.random.uniform(jax.random.key(1), (B, 16, 16, 1))
  locs = jax.random.uniform(jax.random.key(2), (2, B, 2), minval=-1, maxval=1)
  retina = RetinaSpec(size=4, num_scales=3)
  every = jax.vmap(lambda l: retina.read(images, l))(locs).reshape(2, B, 3, 16)
  scales = jnp.array([[0, 1, 2, 1], [2, 0, 0, 1]])
  np.testing.assert_allclose(retina.read_at_scale(images, locs, scales),
                             np.take_along_axis(every, scales[..., None, None], 2)[:, :, 0])


def test_path_values_match_numpy():
  rng = np.random.default_rng(0)
  greedy, sampled = rng.normal(size=(B, 5)), rng.normal(size=(6, B, 5)).swapaxes(0, 1)  # [B, M, C]
  labels = np.array([0, 1, 2, 3])
  values = path_values(jnp.asarray(greedy, jnp.float32), jnp.asarray(sampled, jnp.float32),
                       jnp.asarray(labels))
  log_softmax = lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))
  g, s = log_softmax(greedy), log_softmax(sampled)
  np.testing.assert_array_equal(values['error'], g.argmax(-1) != labels)
  np.testing.assert_array_equal(values['error_mc'], s.mean(1).argmax(-1) != labels)
  np.testing.assert_allclose(values['nll'], -g[np.arange(B), labels], rtol=1e-5)
  label_ll = s[np.arange(B), :, labels]  # [B, M]
  np.testing.assert_allclose(values['bound'], np.log(np.exp(label_ll).mean(1)), rtol=1e-5)
