"""Near-optimal glimpse sequences by Bayesian experimental design (Harvey, Teng & Wood).

The next glimpse location is the candidate that minimises the expected posterior entropy

  EPE(l) = E_{y ~ p(y | y_<t, l_<t, l)} H[p(theta | y_<t, y, l_<=t)],

estimated with S completions of the image sampled given the glimpses seen so far (`y` read from
each completion at `l`) and an attentional posterior. The posterior is a `Posterior`: a state per
image (what has been seen) that takes one glimpse at a time, and the logits of every (completion,
candidate) outcome from one state. Two are built here:
- `pooled_posterior`: mean-pooled glimpse embeddings, whose sum over the earlier glimpses is
  computed once per step and one candidate's embedding added at a time;
- `canvas_posterior`: a classifier of the whole canvas with the unobserved pixels zeroed and the
  observation mask, the candidate's window filled from the completion.
The S completions are ancestral samples of the completion model given the glimpses, so the EPE is
their plain mean (self-normalised importance weights would all be equal). Pure functions of
arrays and of the models' apply functions; every candidate and sample is one batched (vmapped)
computation, the images of a batch all at once or `epe_batch_size` at a time.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from glimpse_jax.distributions import categorical_entropy
from glimpse_jax.objectives import stop_steps

# read(image [H, W, C], location [2]) -> patches [S, h, w, C] (the retina)
Read = Callable[[jax.Array, jax.Array], jax.Array]
# embed(patches [..., S, h, w, C], locations [..., 2]) -> [..., F]
Embed = Callable[[jax.Array, jax.Array], jax.Array]
# classify(pooled sum [..., F], count [...]) -> logits [..., K]
Classify = Callable[[jax.Array, jax.Array], jax.Array]
# complete(images [B, H, W, C], locations [B, T, 2], taken [B, T], rng) -> [B, S, H, W, C]
Complete = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
# classify_canvas(canvas [..., H, W, C] unobserved pixels zeroed, mask [..., H, W]) -> [..., K]
ClassifyCanvas = Callable[[jax.Array, jax.Array], jax.Array]
# window(location [2]) -> [H, W] 1 on the pixels a glimpse at `location` observes
Window = Callable[[jax.Array], jax.Array]
State = Any  # a Posterior's pytree of arrays, leading axis B (one image's: no leading axis)


class Posterior(NamedTuple):
  """A class posterior that takes glimpses one at a time.

  Attributes:
    init: `init(images [B, H, W, C]) -> state` before any glimpse.
    observe: `observe(state, images [B, H, W, C], location [B, 2]) -> state` with one more
      glimpse of each image.
    logits: `logits(state) -> [B, K]`.
    outcomes: `outcomes(state, completions [S, H, W, C], candidates [N, 2]) -> [S, N, K]`, for
      one image's state: the logits after one more glimpse at each candidate of each completion.
  """
  init: Callable[[jax.Array], State]
  observe: Callable[[State, jax.Array, jax.Array], State]
  logits: Callable[[State], jax.Array]
  outcomes: Callable[[State, jax.Array, jax.Array], jax.Array]


class Sequences(NamedTuple):
  locations: jax.Array  # [B, T, 2] the chosen candidates' locations
  cells: jax.Array  # [B, T] int32 index of each chosen candidate
  epe: jax.Array  # [B, T, N] expected posterior entropy of every candidate at each step
  entropy: jax.Array  # [B, T] posterior entropy after each true glimpse
  logits: jax.Array  # [B, K] the posterior's logits after the last glimpse
  # [B, T] the design's estimate of each glimpse's information gain before it is taken:
  # H_{t-1} - EPE_t(chosen), the expected drop of the posterior entropy (H_0: the posterior with
  # no glimpse), the quantity a design-based stopping rule thresholds
  expected_gain: jax.Array
  step_logits: jax.Array  # [B, T, K] the posterior's logits after each true glimpse


def expected_posterior_entropy(read: Read, embed: Embed, classify: Classify,
                               pooled_sum: jax.Array, count: jax.Array,
                               completions: jax.Array, candidates: jax.Array) -> jax.Array:
  """EPE of each candidate for one image: -> [N].

  Args:
    read, embed, classify: the retina and the posterior's two halves (see the type aliases).
    pooled_sum: [F] the sum of the embeddings of the glimpses taken so far.
    count: [] how many there are.
    completions: [S, H, W, C] images sampled given those glimpses.
    candidates: [N, 2] candidate locations.
  """
  chex.assert_rank([pooled_sum, count, completions, candidates], [1, 0, 4, 2])
  logits = _pooled_outcomes(read, embed, classify, pooled_sum, count, completions, candidates)
  return categorical_entropy(logits).mean(0)  # [N]


def _pooled_outcomes(read: Read, embed: Embed, classify: Classify, pooled_sum: jax.Array,
                     count: jax.Array, completions: jax.Array, candidates: jax.Array) -> jax.Array:
  """[S, N, K] logits of the pooled posterior after one more glimpse (see `Posterior.outcomes`)."""
  patches = jax.vmap(jax.vmap(read, (None, 0)), (0, None))(completions, candidates)  # [S, N, ...]
  locations = jnp.broadcast_to(candidates, (completions.shape[0], *candidates.shape))  # [S, N, 2]
  embedded = embed(patches, locations)  # [S, N, F]
  return classify(pooled_sum + embedded, jnp.broadcast_to(count + 1.0, embedded.shape[:-1]))


def pooled_posterior(read: Read, embed: Embed, classify: Classify) -> Posterior:
  """The mean-pooled posterior: state (sum of the embeddings [B, F], count [B])."""

  def init(images):
    # The embedding's width, from shapes alone (nothing is computed).
    width = jax.eval_shape(lambda: embed(jax.vmap(read)(images[:1], jnp.zeros((1, 2))),
                                         jnp.zeros((1, 2)))).shape[-1]
    return jnp.zeros((images.shape[0], width)), jnp.zeros((images.shape[0],))

  def observe(state, images, location):
    pooled, count = state
    return pooled + embed(jax.vmap(read)(images, location), location), count + 1.0

  def outcomes(state, completions, candidates):
    return _pooled_outcomes(read, embed, classify, *state, completions, candidates)

  return Posterior(init, observe, lambda state: classify(*state), outcomes)


def canvas_posterior(classify_canvas: ClassifyCanvas, window: Window) -> Posterior:
  """The canvas posterior: state (canvas [B, H, W, C] with the unobserved pixels zeroed, mask
  [B, H, W]); a candidate's outcome keeps the observed pixels and fills its window from the
  completion."""

  def init(images):
    return jnp.zeros_like(images), jnp.zeros(images.shape[:3])

  def observe(state, images, location):
    _, mask = state
    mask = jnp.maximum(mask, jax.vmap(window)(location))  # [B, H, W]
    return images * mask[..., None], mask

  def outcomes(state, completions, candidates):
    canvas, mask = state  # [H, W, C], [H, W]
    masks = jnp.maximum(mask, jax.vmap(window)(candidates))  # [N, H, W]
    seen = jnp.where(mask[None, ..., None] > 0, canvas, completions)  # [S, H, W, C]
    canvases = seen[:, None] * masks[None, ..., None]  # [S, N, H, W, C]
    return classify_canvas(canvases, jnp.broadcast_to(masks, canvases.shape[:-1]))

  return Posterior(init, observe, lambda state: classify_canvas(*state), outcomes)


def greedy_sequences(images: jax.Array, rng: jax.Array, candidates: jax.Array, num_steps: int, *,
                     complete: Complete, read: Read | None = None, embed: Embed | None = None,
                     classify: Classify | None = None, posterior: Posterior | None = None,
                     epe_batch_size: int = 0) -> Sequences:
  """Greedy minimum-EPE sequences of `num_steps` glimpses for a batch `images` [B, H, W, C].

  At each step: sample completions given the true glimpses so far, score every candidate by its
  EPE, take the true glimpse at the best candidate not taken before; the entropy before the step
  less the chosen EPE is the design's estimate of the glimpse's gain. (Glimpsing a location again
  tells nothing new about the class; with an approximate posterior it can still lower the EPE, so
  candidates taken are excluded.) A step's completions use `fold_in(rng, t)`.

  The posterior is `posterior`, or the pooled one of `read`, `embed` and `classify`.
  `epe_batch_size` images have their EPE maps computed at once (0: the whole batch), which bounds
  the memory of the S x N outcomes of a canvas posterior.
  """
  chex.assert_rank([images, candidates], [4, 2])
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}')
  if num_steps > candidates.shape[0]:
    raise ValueError(f'num_steps={num_steps} glimpses need as many distinct candidates, got '
                     f'{candidates.shape[0]}')
  if epe_batch_size < 0:
    raise ValueError(f'epe_batch_size must be >= 0, got {epe_batch_size}')
  if posterior is None:
    if None in (read, embed, classify):
      raise ValueError('greedy_sequences needs a posterior, or read, embed and classify')
    posterior = pooled_posterior(read, embed, classify)
  batch = images.shape[0]

  def epe_one(state, completions):  # one image: -> [N]
    return categorical_entropy(posterior.outcomes(state, completions, candidates)).mean(0)

  def epe_all(state, completions):  # [B, N]
    if not epe_batch_size or epe_batch_size >= batch:
      return jax.vmap(epe_one)(state, completions)
    return jax.lax.map(lambda args: epe_one(*args), (state, completions),
                       batch_size=epe_batch_size)

  def step(carry, t):
    state, locations, taken, visited, before = carry  # state, [B, T, 2], [B, T], [B, N], [B]
    completions = complete(images, locations, taken, jax.random.fold_in(rng, t))  # [B, S, H, W, C]
    epe = epe_all(state, completions)  # [B, N]
    cell = jnp.argmin(jnp.where(visited, jnp.inf, epe), -1).astype(jnp.int32)  # [B]
    gain = before - jnp.take_along_axis(epe, cell[:, None], -1)[:, 0]  # [B]
    visited = visited.at[jnp.arange(batch), cell].set(True)
    location = candidates[cell]  # [B, 2]
    state = posterior.observe(state, images, location)
    locations = locations.at[:, t].set(location)
    taken = taken.at[:, t].set(1.0)
    logits = posterior.logits(state)  # [B, K]
    entropy = categorical_entropy(logits)  # [B]
    return ((state, locations, taken, visited, entropy),
            (location, cell, epe, entropy, gain, logits))

  state = posterior.init(images)
  prior = categorical_entropy(posterior.logits(state))  # H_0
  init = (state, jnp.zeros((batch, num_steps, 2)), jnp.zeros((batch, num_steps)),
          jnp.zeros((batch, candidates.shape[0]), bool), prior)
  _, (locations, cells, epe, entropy, gain, step_logits) = jax.lax.scan(
      step, init, jnp.arange(num_steps))
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return Sequences(swap(locations), swap(cells), swap(epe), swap(entropy), step_logits[-1],
                   swap(gain), swap(step_logits))


def design_stopping(expected_gain: jax.Array, step_correct: jax.Array,
                    thresholds) -> list[tuple[float, float, float]]:
  """(threshold, mean glimpses, error) of the design-based stopping rule for each threshold: the
  posterior stops before the first designed glimpse whose expected gain (`Sequences.expected_gain`
  [B, T]) is below it, the rule `stop_steps` applies to a learned gain head, and is scored by
  `step_correct` [B, T] (1 where its class after glimpse t is right)."""
  chex.assert_rank([expected_gain, step_correct], [2, 2])
  chex.assert_equal_shape([expected_gain, step_correct])
  points = []
  for threshold in thresholds:
    steps = stop_steps(jnp.asarray(expected_gain), float(threshold))  # [B] in 1..T
    correct = jnp.take_along_axis(jnp.asarray(step_correct), steps[:, None] - 1, -1)[:, 0]
    points.append((float(threshold), float(steps.mean()), float(1.0 - correct.mean())))
  return points
