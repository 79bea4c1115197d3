"""The near-optimal glimpses design's choices: the canvas posterior, completions drawn pixel by
pixel, S completions and the config fields that pick them (tiny shapes, random weights)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import near_optimal_glimpses as nog
from glimpse_jax import data, glimpse, train
from glimpse_jax.experimental_design import canvas_posterior, greedy_sequences
from glimpse_jax.nets import grid_centers
from glimpse_jax.nets.canvas_posterior import CanvasPosterior
from glimpse_jax.nets.completion import condition, observed_mask

SIZE, GLIMPSE = 20, 6  # a 20x20 canvas, 6x6 glimpses


def _tiny(config, posterior='canvas', completion='sample'):
  """A phase of the sequences pipeline shrunk to 20x20 canvases and narrow networks."""
  with config.unlocked():
    config.dataset.update(canvas_size=SIZE, num_clutter=1)
    config.model.update(glimpse_size=GLIMPSE, grid_size=3, num_glimpses=2, latent=4,
                        completion_features=(4, 8), posterior_features=16,
                        posterior_channels=(4, 8), canvas_channels=(4, 8), posterior=posterior)
    config.design.update(samples=3, completion=completion, epe_batch_size=1)
  return config


def _frozen(phases, batch):
  key = jax.random.key(0)
  return {name: jax.jit(nog.make_experiment(phases[name]).init)(key, batch)
          for name in ('posterior', 'completion')}


def _batch(count=2):
  rng = np.random.default_rng(0)
  return {'image': rng.uniform(size=(count, SIZE, SIZE, 1)).astype(np.float32),
          'label': rng.integers(0, 10, count).astype(np.int32)}


def _pipeline(posterior='canvas', completion='sample'):
  phases = nog.get_config('sequences').phases
  for name in ('posterior', 'completion', 'sequences'):
    _tiny(phases[name], posterior, completion)
  return phases


def test_the_sequences_variant_takes_the_new_design_and_the_smoke_keeps_todays():
  phases = nog.get_config('sequences').phases
  for name in ('posterior', 'sequences', 'test_sequences'):
    assert phases[name].model.posterior == 'canvas', name
  design = phases.sequences.design
  assert design.samples >= 64 and design.completion == 'sample' and design.epe_batch_size >= 1
  smoke = nog.get_config('smoke').phases
  assert smoke.sequences.design.samples <= 4 and smoke.sequences.design.completion == 'mean'
  assert smoke.posterior.model.posterior == smoke.sequences.model.posterior == 'pooled'


def test_the_canvas_posterior_ignores_unobserved_pixels_and_reads_observed_ones():
  model = CanvasPosterior(num_classes=5, features=16, channels=(4, 8))
  rng = np.random.default_rng(1)
  canvas = jnp.asarray(rng.uniform(size=(2, 12, 12, 1)).astype(np.float32))
  mask = jnp.zeros((2, 12, 12)).at[:, 2:7, 3:9].set(1.0)
  params = model.init(jax.random.key(0), canvas, mask)
  apply = jax.jit(model.apply)
  logits = apply(params, canvas, mask)
  assert logits.shape == (2, 5)
  elsewhere = canvas + 5.0 * (1.0 - mask[..., None]) * rng.normal(size=canvas.shape)
  np.testing.assert_allclose(apply(params, elsewhere, mask), logits, atol=1e-6)
  inside = canvas.at[:, 4, 5].add(3.0)  # an observed pixel changes the posterior
  assert float(jnp.abs(apply(params, inside, mask) - logits).max()) > 1e-4
  # leading axes are any: [S, N, H, W, C] as in the design
  many = apply(params, jnp.stack([canvas, elsewhere]), jnp.stack([mask, mask]))
  np.testing.assert_allclose(many, jnp.stack([logits, logits]), atol=1e-5)


def _canvas_design():
  model = CanvasPosterior(num_classes=4, features=8, channels=(4,))
  params = model.init(jax.random.key(0), jnp.zeros((1, 10, 10, 1)), jnp.zeros((1, 10, 10)))
  classify = lambda canvas, mask: model.apply(params, canvas, mask)
  window = lambda location: observed_mask(location[None], jnp.ones(1), height=10, width=10,
                                          size=4)
  return canvas_posterior(classify, window), classify, window


def test_canvas_outcomes_are_the_posterior_after_glimpsing_the_completion_there():
  posterior, classify, window = _canvas_design()
  rng = np.random.default_rng(2)
  image = jnp.asarray(rng.uniform(size=(1, 10, 10, 1)).astype(np.float32))
  completions = jnp.asarray(rng.uniform(size=(3, 10, 10, 1)).astype(np.float32))
  candidates = jnp.array([[-0.5, -0.5], [0.5, 0.2], [0.0, 0.6]])
  state = posterior.observe(posterior.init(image), image, jnp.array([[0.2, -0.4]]))
  canvas, mask = state
  np.testing.assert_allclose(canvas, image * mask[..., None])
  outcomes = jax.jit(posterior.outcomes)(jax.tree.map(lambda x: x[0], state), completions,
                                         candidates)
  assert outcomes.shape == (3, 3, 4)
  # The reference, canvas by canvas in NumPy: the true pixels where they were seen, the
  # completion's in the new window only.
  seen, canvases = [], []
  for s in range(3):
    for n in range(3):
      seen.append(np.maximum(mask[0], window(candidates[n])))
      canvases.append(np.where(mask[0, ..., None] > 0, image[0], completions[s]) * seen[-1][..., None])
  expected = jax.jit(classify)(np.stack(canvases), np.stack(seen)).reshape(3, 3, 4)
  np.testing.assert_allclose(outcomes, expected, atol=1e-5)
  # A completion that is the image: the outcome is the posterior after the true glimpse.
  truth = posterior.outcomes(jax.tree.map(lambda x: x[0], state), image, candidates[:1])[0, 0]
  after = posterior.logits(posterior.observe(state, image, candidates[:1]))[0]
  np.testing.assert_allclose(truth, after, atol=1e-5)


def test_greedy_sequences_with_the_canvas_posterior_and_a_few_images_at_a_time():
  posterior, _, _ = _canvas_design()
  rng = np.random.default_rng(3)
  images = jnp.asarray(rng.uniform(size=(3, 10, 10, 1)).astype(np.float32))
  candidates = jnp.asarray(grid_centers(3))
  complete = lambda images, locs, taken, rng: jnp.stack(
      [images, jax.random.uniform(rng, images.shape)], 1)  # [B, 2, H, W, C]
  design = functools.partial(greedy_sequences, images, jax.random.key(0), candidates, 3,
                             complete=complete, posterior=posterior)
  whole = design()
  chunked = design(epe_batch_size=2)  # two images, then the third
  np.testing.assert_allclose(chunked.epe, whole.epe, atol=1e-5)
  np.testing.assert_array_equal(chunked.cells, whole.cells)
  for b in range(3):
    cells = list(np.asarray(whole.cells[b]))
    assert len(set(cells)) == 3
    for t, cell in enumerate(cells):
      allowed = [n for n in range(9) if n not in cells[:t]]
      assert cell == min(allowed, key=lambda n: float(whole.epe[b, t, n]))
  with pytest.raises(ValueError, match='epe_batch_size'):
    design(epe_batch_size=-1)


def _completions(completion):
  """The sequences phase's config, its frozen parameters, a batch's images and `complete`."""
  phases = _pipeline(completion=completion)
  config = phases.sequences
  batch = _batch()
  frozen = _frozen(phases, batch)
  complete = nog.design_functions(config, frozen['posterior'], frozen['completion'])[3]
  return config, frozen, jnp.asarray(batch['image']), complete


def test_sampled_completions_vary_pixel_by_pixel_and_keep_the_observed_pixels():
  config, _, images, complete = _completions('sample')
  locations = jnp.array([[[-0.4, -0.4], [0.5, 0.3]]] * 2)  # [B, T, 2]
  taken = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  seen = nog._observed(config, locations, taken)[:, None, ..., None]  # [B, 1, H, W, 1]
  samples = jax.jit(complete)(images, locations, taken, jax.random.key(1))  # [B, S, H, W, C]
  assert samples.shape == (2, 3, SIZE, SIZE, 1)
  np.testing.assert_array_equal(samples * seen, jnp.broadcast_to(images[:, None], samples.shape)
                                * seen)
  unseen = np.asarray(samples)[np.broadcast_to(np.asarray(seen) == 0, samples.shape)]
  assert set(np.unique(unseen)) <= {0.0, 1.0}  # drawn pixels, not probabilities
  assert 0.05 < unseen.mean() < 0.95
  differ = np.mean(np.asarray(samples[:, 0] != samples[:, 1])[np.asarray(seen[:, 0]) == 0])
  assert differ > 0.1, differ  # two draws given the same glimpses differ pixel by pixel
  again = jax.jit(complete)(images, locations, taken, jax.random.key(2))
  assert float(jnp.abs(again - samples).max()) == 1.0


def test_mean_completions_are_the_decoders_mean_image_as_before():
  config, frozen, images, complete = _completions('mean')
  locations = jnp.array([[[-0.4, -0.4], [0.5, 0.3]]] * 2)
  taken = jnp.ones((2, 2))
  rng = jax.random.key(3)
  samples = complete(images, locations, taken, rng)
  # The completion before the choice existed: latent noise from the step's key, the mean image.
  cond = condition(images, nog._observed(config, locations, taken))
  noise = jax.random.normal(rng, (2, config.design.samples, config.model.latent))
  model = nog._completion_model(config)
  before = model.apply(frozen['completion'], cond, noise, method='sample')
  np.testing.assert_allclose(samples, before, atol=1e-6)
  unseen = np.asarray(samples)[np.broadcast_to(np.asarray(cond[:, None, ..., -1:]) == 0,
                                               samples.shape)]
  assert np.mean((unseen > 0.01) & (unseen < 0.99)) > 0.5  # probabilities, not drawn pixels


@pytest.mark.parametrize('posterior', ['canvas', 'pooled'])
def test_the_posterior_phase_trains_the_chosen_posterior(posterior):
  phases = _pipeline(posterior=posterior)
  experiment = nog.make_experiment(phases.posterior)
  batch = _batch(4)
  params = jax.jit(experiment.init)(jax.random.key(0), batch)
  names = set(params['params'])
  assert ('conv0' in names) == (posterior == 'canvas'), names
  (loss, metrics), grads = jax.jit(jax.value_and_grad(
      lambda p: experiment.loss(p, batch, jax.random.key(1), 0), has_aux=True))(params)
  assert np.isfinite(float(loss)) and 0 <= float(metrics['error']) <= 1
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads['params']['out']['kernel']).max()) > 0


def test_the_sequences_phase_designs_with_the_canvas_posterior_and_sampled_completions():
  phases = _pipeline()
  batch = _batch(3)
  frozen = _frozen(phases, batch)
  generate = jax.jit(nog.make_experiment(phases.sequences).generate)
  out = generate(batch, jax.random.key(0), frozen)
  assert out['target_location'].shape == (3, 2, 2) and out['epe'].shape == (3, 2, 9)
  cells = np.asarray(out['target_cell'])
  assert all(len(set(row)) == 2 for row in cells.tolist())
  np.testing.assert_allclose(out['target_location'], grid_centers(3)[cells])
  # The EPE of a step is the mean over completions of entropies: within [0, log 10].
  assert bool(jnp.all((out['epe'] >= 0) & (out['epe'] <= np.log(10) + 1e-5)))
  np.testing.assert_array_equal(out['step_correct'][:, -1], out['posterior_correct'])
  # Another key draws other completions (the pixels are sampled): the EPE maps change.
  other = generate(batch, jax.random.key(1), frozen)
  assert float(jnp.abs(other['epe'] - out['epe']).max()) > 1e-6


@pytest.mark.parametrize('field, value', [
    ('model.posterior', 'mlp'),
    ('model.canvas_channels', ()),
    ('model.canvas_channels', (8, 0)),
    ('design.samples', 0),
    ('design.completion', 'median'),
    ('design.epe_batch_size', -1),
])
def test_bad_design_fields_are_named(field, value):
  config = nog.get_config('sequences').phases.sequences
  with config.unlocked():
    section, name = field.split('.')
    config[section][name] = value
  with pytest.raises(ValueError, match=field.replace('.', r'\.')):
    nog.make_experiment(config)


def test_the_window_is_the_retinas_finest_patch():
  """The canvas posterior's window observes exactly the pixels the pooled posterior's patch reads."""
  config = _tiny(nog.get_config('sequences').phases.sequences)
  read, _, classify, _ = nog.design_functions(config, None, None)
  del classify
  image = (1.0 + np.arange(SIZE * SIZE, dtype=np.float32)).reshape(SIZE, SIZE, 1)
  location = jnp.array([0.3, -0.55])
  posterior = nog.design_posterior(config, read, None, lambda canvas, mask: mask.sum((-1, -2)))
  _, mask = posterior.observe(posterior.init(jnp.asarray(image)[None]), jnp.asarray(image)[None],
                              location[None])
  patch = np.asarray(glimpse.retina(image, location, size=GLIMPSE, num_scales=1))[0, ..., 0]
  expected = np.zeros((SIZE, SIZE), np.float32)
  expected.flat[patch[patch > 0].astype(int) - 1] = 1.0
  np.testing.assert_array_equal(mask[0], expected)


def test_the_completion_phase_pictures_the_completions_the_design_takes(tmp_path, monkeypatch):
  phases = _pipeline(completion='sample')
  experiment = nog.make_experiment(phases.completion)
  batch = _batch(6)
  params = jax.jit(experiment.init)(jax.random.key(0), batch)
  drawn = []
  monkeypatch.setattr(nog, 'plot_completions', lambda images, cond, samples, path: drawn.append(
      (np.asarray(cond), np.asarray(samples))))
  experiment.plots(params, batch, jax.random.key(1), str(tmp_path))
  (cond, samples), = drawn
  assert samples.shape == (6, 4, SIZE, SIZE, 1)
  unseen = samples[np.broadcast_to(cond[:, None, ..., -1:] == 0, samples.shape)]
  assert set(np.unique(unseen)) <= {0.0, 1.0}  # drawn pixels, as the design's


@pytest.mark.slow
def test_a_shrunk_sequences_pipeline_designs_with_the_canvas_posterior(data_dir, tmp_path):
  """The `sequences` variant's design (canvas posterior, sampled completions) through the loop:
  two steps of each training phase on 200 canvases, sequences for a tenth of them."""
  config = nog.get_config('sequences')
  with config.unlocked():
    config.pipeline = ('posterior', 'completion', 'sequences')
    del config.phases['test_sequences']
    for name in config.pipeline:
      phase = _tiny(config.phases[name])
      phase.dataset.update(data_dir=data_dir, download=False, cache_dir=str(tmp_path / 'tfds'),
                           canvas_size=40, train_examples=200, validation_examples=40,
                           eval_examples=40)
      phase.model.glimpse_size = 12
      phase.update(num_steps=2, log_every=1, checkpoint_every=0, eval_every=0)
      phase.eval.batch_size = 20
    config.phases.sequences.generate.chunk_size = 20
  results = train.run_pipeline(config, str(tmp_path / 'run'), nog.make_experiment)
  assert 0 <= results['posterior']['test_error'] <= 1
  count = results['sequences']['examples']  # a tenth of the 160 training canvases
  assert count == 16 and results['sequences']['written_examples'] == count
  stored = data.ExampleStore.open(str(tmp_path / 'run' / 'sequences' / 'store'))
  cells = stored.arrays['target_cell']
  assert cells.shape == (count, 2) and all(len(set(row)) == 2 for row in cells.tolist())
  assert np.all(np.isfinite(stored.arrays['epe']))
