"""Parts of the experimental design (Harvey et al.): the observation mask, the attentional
posterior, the completion model and the EPE search, against NumPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glimpse_jax import distributions, glimpse
from glimpse_jax.experimental_design import expected_posterior_entropy, greedy_sequences
from glimpse_jax.nets.completion import CompletionVAE, condition, observed_mask
from glimpse_jax.nets.glimpse_posterior import AttentionalPosterior


def test_observed_mask_covers_exactly_the_pixels_the_retina_reads():
  height, width, size = 13, 17, 4
  # Each pixel holds 1 + its flat index, so a patch names the pixels it read.
  image = (1.0 + np.arange(height * width, dtype=np.float32)).reshape(height, width, 1)
  locs = np.array([[-0.3, 0.2], [0.9, -0.95], [0.0, 0.0]], np.float32)
  taken = np.array([1.0, 1.0, 0.0], np.float32)
  mask = np.asarray(observed_mask(jnp.asarray(locs), jnp.asarray(taken), height=height,
                                  width=width, size=size))
  expected = np.zeros((height, width), np.float32)
  for loc, take in zip(locs, taken):
    if take:
      patch = np.asarray(glimpse.retina(image, loc, size=size, num_scales=1))[0, ..., 0]
      read = patch[patch > 0].astype(int) - 1  # zeros are outside the image
      expected.flat[read] = 1.0
  np.testing.assert_array_equal(mask, expected)


def test_distributions_gaussian_kl_matches_a_monte_carlo_estimate():
  rng = np.random.default_rng(0)
  mq, lq, mp, lp = (rng.normal(size=3).astype(np.float32) * 0.5 for _ in range(4))
  kl = float(distributions.gaussian_kl(mq, lq, mp, lp))
  z = mq + np.exp(lq) * rng.normal(size=(200_000, 3))
  log_q = -0.5 * ((z - mq) / np.exp(lq)) ** 2 - lq
  log_p = -0.5 * ((z - mp) / np.exp(lp)) ** 2 - lp
  assert kl == pytest.approx(float(np.mean((log_q - log_p).sum(-1))), abs=0.02)
  assert float(distributions.gaussian_kl(mq, lq, mq, lq)) == pytest.approx(0.0, abs=1e-6)


def _posterior(rng):
  model = AttentionalPosterior(num_classes=4, features=16, channels=(4, 8))
  patches = jax.random.uniform(rng, (2, 5, 1, 8, 8, 1))
  locs = jax.random.uniform(jax.random.fold_in(rng, 1), (2, 5, 2), minval=-1, maxval=1)
  params = jax.jit(model.init)(rng, patches, locs, jnp.ones((2, 5)))
  return model, params, patches, locs


@pytest.mark.slow
def test_posterior_is_order_invariant_and_ignores_masked_glimpses():
  model, params, patches, locs = _posterior(jax.random.key(0))
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
  apply = jax.jit(model.apply)
  logits = apply(params, patches, locs, mask)
  order = jnp.array([2, 0, 1, 4, 3])
  permuted = apply(params, patches[:, order], locs[:, order], mask[:, order])
  np.testing.assert_allclose(permuted, logits, atol=1e-5)
  garbage = patches.at[0, 3:].set(7.0)  # masked glimpses of example 0 change nothing
  np.testing.assert_allclose(apply(params, garbage, locs, mask)[0], logits[0], atol=1e-6)
  # classify(sum, count) of the embeddings is the same posterior
  embedded = jax.jit(functools.partial(model.apply, method='embed'))(params, patches, locs)
  pooled = jax.jit(functools.partial(model.apply, method='classify'))(
      params, (embedded * mask[..., None]).sum(1), mask.sum(1))
  np.testing.assert_allclose(pooled, logits, atol=1e-5)


@pytest.mark.slow
def test_completions_keep_the_observed_pixels_and_vary_elsewhere():
  model = CompletionVAE(channels=1, latent=4, features=(4, 8))
  rng = jax.random.key(0)
  images = jax.random.uniform(rng, (2, 20, 20, 1))
  mask = jnp.zeros((2, 20, 20)).at[:, 4:10, 6:12].set(1.0)
  cond = condition(images, mask)
  params = jax.jit(model.init)(rng, images, cond, jnp.zeros((2, 4)))
  sample = jax.jit(functools.partial(model.apply, method='sample'))
  samples = sample(params, cond, jax.random.normal(rng, (2, 3, 4)) * 3.0)
  assert samples.shape == (2, 3, 20, 20, 1)
  np.testing.assert_allclose(samples[:, :, 4:10, 6:12], jnp.broadcast_to(
      images[:, None, 4:10, 6:12], (2, 3, 6, 6, 1)), atol=1e-6)
  unseen = samples[:, :, 12:, 12:]
  assert float(jnp.abs(unseen[:, 0] - unseen[:, 1]).max()) > 1e-4  # the latent matters
  logits, kl = jax.jit(model.apply)(params, images, cond, jnp.zeros((2, 4)))
  assert logits.shape == images.shape and kl.shape == (2,) and bool(jnp.all(kl >= -1e-5))


def _toy_design(num_classes=3, features=4):
  """A linear 'posterior' and a 2x2 single-scale read, simple enough to recompute in NumPy."""
  rng = np.random.default_rng(1)
  w_patch = rng.normal(size=(4, features)).astype(np.float32)
  w_loc = rng.normal(size=(2, features)).astype(np.float32)
  w_out = rng.normal(size=(features, num_classes)).astype(np.float32)
  read = functools.partial(glimpse.retina, size=2, num_scales=1)
  embed = lambda p, l: jnp.tanh(p.reshape(*p.shape[:-4], 4) @ w_patch + l @ w_loc)
  classify = lambda s, c: (s / jnp.maximum(c, 1.0)[..., None]) @ w_out
  return read, embed, classify, (w_patch, w_loc, w_out)


def _entropy(logits):
  p = np.exp(logits - logits.max())
  p /= p.sum()
  return float(-(p * np.log(p)).sum())


def test_expected_posterior_entropy_matches_a_loop_over_candidates_and_samples():
  read, embed, classify, (w_patch, w_loc, w_out) = _toy_design()
  rng = np.random.default_rng(2)
  completions = rng.uniform(size=(3, 6, 6, 1)).astype(np.float32)
  candidates = rng.uniform(-1, 1, size=(5, 2)).astype(np.float32)
  pooled, count = rng.normal(size=4).astype(np.float32), np.float32(2.0)
  epe_of = jax.jit(functools.partial(expected_posterior_entropy, read, embed, classify))
  epe = np.asarray(epe_of(pooled, count, completions, candidates))
  expected = np.zeros(5)
  read_all = jax.jit(jax.vmap(jax.vmap(read, (None, 0)), (0, None)))
  patches = np.asarray(read_all(completions, candidates)).reshape(3, 5, 4)  # [S, N, 4]
  for n, loc in enumerate(candidates):
    for s, image in enumerate(completions):
      patch = patches[s, n]
      e = np.tanh(patch @ w_patch + loc @ w_loc)
      expected[n] += _entropy((pooled + e) / (count + 1) @ w_out) / len(completions)
  np.testing.assert_allclose(epe, expected, rtol=1e-4, atol=1e-5)


def test_greedy_sequences_take_the_lowest_epe_among_candidates_not_taken():
  read, embed, classify, _ = _toy_design()
  rng = np.random.default_rng(3)
  images = jnp.asarray(rng.uniform(size=(2, 6, 6, 1)).astype(np.float32))
  candidates = jnp.asarray(rng.uniform(-1, 1, size=(4, 2)).astype(np.float32))
  # The oracle completion model: the image itself, twice.
  complete = lambda images, locs, taken, rng: jnp.repeat(images[:, None], 2, axis=1)
  design = functools.partial(greedy_sequences, read=read, embed=embed, classify=classify,
                             complete=complete)
  out = jax.jit(design, static_argnums=3)(images, jax.random.key(0), candidates, 3)
  assert out.locations.shape == (2, 3, 2) and out.epe.shape == (2, 3, 4)
  for b in range(2):
    cells = list(np.asarray(out.cells[b]))
    assert len(set(cells)) == 3  # no candidate twice
    for t, cell in enumerate(cells):
      allowed = [n for n in range(4) if n not in cells[:t]]
      assert cell == min(allowed, key=lambda n: float(out.epe[b, t, n]))
    np.testing.assert_allclose(out.locations[b], candidates[np.array(cells)])
  with pytest.raises(ValueError, match='num_steps=5'):
    greedy_sequences(images, jax.random.key(0), candidates, 5, read=read, embed=embed,
                     classify=classify, complete=complete)


def test_steps_to_near_best_leave_out_the_final_evaluation():
  from glimpse_jax.reports import overview as report  # pylint: disable=g-import-not-at-top
  from glimpse_jax.reports import near_optimal_glimpses as rn  # pylint: disable=g-import-not-at-top
  periodic = [{'kind': 'eval', 'split': 'validation', 'step': s, 'error': e, 'full': False}
              for s, e in ((1000, 0.30), (2000, 0.21), (3000, 0.20))]
  final = {'kind': 'eval', 'split': 'validation', 'step': 4000, 'error': 0.10, 'full': True}
  marked = report.Run('marked', {}, periodic + [{**final, 'final': True}])
  unmarked = report.Run('unmarked', {}, periodic + [final])  # written before `final` existed
  for run in (marked, unmarked):
    # On the whole split the final error is not comparable with the periodic ones.
    assert rn.evaluations_to_near_best(run, margin=0.02) == 2000, run.name
  whole = [{**r, 'full': True} for r in periodic]  # every evaluation on the whole split
  assert rn.evaluations_to_near_best(report.Run('whole', {}, whole + [final]), 0.02) == 4000


def test_expected_gains_are_the_entropy_before_less_the_chosen_epe():
  read, embed, classify, _ = _toy_design()
  rng = np.random.default_rng(4)
  images = jnp.asarray(rng.uniform(size=(2, 6, 6, 1)).astype(np.float32))
  candidates = jnp.asarray(rng.uniform(-1, 1, size=(5, 2)).astype(np.float32))
  complete = lambda images, locs, taken, rng: jnp.repeat(images[:, None], 2, axis=1)
  out = greedy_sequences(images, jax.random.key(0), candidates, 3, read=read, embed=embed,
                         classify=classify, complete=complete)
  prior = _entropy(np.asarray(classify(jnp.zeros(4), jnp.float32(0.0))))  # H_0, no glimpse
  for b in range(2):
    before = [prior, *np.asarray(out.entropy[b, :-1])]
    chosen = [float(out.epe[b, t, out.cells[b, t]]) for t in range(3)]
    np.testing.assert_allclose(out.expected_gain[b], np.subtract(before, chosen), atol=1e-5)
    entropies = [_entropy(np.asarray(out.step_logits[b, t])) for t in range(3)]
    np.testing.assert_allclose(entropies, out.entropy[b], atol=1e-5)
  np.testing.assert_allclose(out.step_logits[:, -1], out.logits, atol=1e-6)


def test_design_stopping_stops_before_the_first_gain_below_the_threshold():
  from glimpse_jax.experimental_design import design_stopping  # pylint: disable=g-import-not-at-top
  gains = np.array([[0.9, 0.5, 0.05, 0.4], [0.9, 0.02, 0.3, 0.3], [0.9, 0.3, 0.3, 0.3]])
  correct = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1]], np.float32)
  points = design_stopping(gains, correct, (0.0, 0.1, 1.0))
  # 0: every glimpse (4, 4, 4): correct 1, 1, 1. 0.1: 2, 1, 4 glimpses: 1, 0, 1. 1.0: first only.
  np.testing.assert_allclose(points, [(0.0, 4.0, 0.0), (0.1, 7 / 3, 1 / 3), (1.0, 1.0, 2 / 3)],
                             atol=1e-6)
