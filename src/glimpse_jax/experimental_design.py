"""Near-optimal glimpse sequences by Bayesian experimental design (Harvey, Teng & Wood).

The next glimpse location is the candidate that minimises the expected posterior entropy

  EPE(l) = E_{y ~ p(y | y_<t, l_<t, l)} H[p(theta | y_<t, y, l_<=t)],

estimated with S completions of the image sampled given the glimpses seen so far (`y` read from
each completion at `l` by the retina) and an attentional posterior whose pooled embedding of the
earlier glimpses is computed once per step, not per candidate. Pure functions of arrays and of the
models' apply functions; every candidate and sample is one batched (vmapped) computation.
"""

from collections.abc import Callable
from typing import NamedTuple

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
  patches = jax.vmap(jax.vmap(read, (None, 0)), (0, None))(completions, candidates)  # [S, N, ...]
  locations = jnp.broadcast_to(candidates, (completions.shape[0], *candidates.shape))  # [S, N, 2]
  embedded = embed(patches, locations)  # [S, N, F]
  logits = classify(pooled_sum + embedded, jnp.broadcast_to(count + 1.0, embedded.shape[:-1]))
  return categorical_entropy(logits).mean(0)  # [N]


def greedy_sequences(images: jax.Array, rng: jax.Array, candidates: jax.Array, num_steps: int, *,
                     read: Read, embed: Embed, classify: Classify,
                     complete: Complete) -> Sequences:
  """Greedy minimum-EPE sequences of `num_steps` glimpses for a batch `images` [B, H, W, C].

  At each step: sample completions given the true glimpses so far, score every candidate by its
  EPE, take the true glimpse at the best candidate not taken before; the entropy before the step
  less the chosen EPE is the design's estimate of the glimpse's gain. (Glimpsing a location again
  tells nothing new about the class; with an approximate, mean-pooled posterior it can still
  lower the EPE, so candidates taken are excluded.) A step's completions use `fold_in(rng, t)`.
  """
  chex.assert_rank([images, candidates], [4, 2])
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}')
  batch = images.shape[0]
  epe_one = lambda pooled, count, completions: expected_posterior_entropy(
      read, embed, classify, pooled, count, completions, candidates)

  def step(carry, t):
    pooled, locations, taken, visited, before = carry  # [B, F], [B, T, 2], [B, T], [B, N], [B]
    count = taken.sum(-1)  # [B]
    completions = complete(images, locations, taken, jax.random.fold_in(rng, t))  # [B, S, H, W, C]
    epe = jax.vmap(epe_one)(pooled, count, completions)  # [B, N]
    cell = jnp.argmin(jnp.where(visited, jnp.inf, epe), -1).astype(jnp.int32)  # [B]
    gain = before - jnp.take_along_axis(epe, cell[:, None], -1)[:, 0]  # [B]
    visited = visited.at[jnp.arange(batch), cell].set(True)
    location = candidates[cell]  # [B, 2]
    pooled = pooled + embed(jax.vmap(read)(images, location), location)  # [B, F]
    locations = locations.at[:, t].set(location)
    taken = taken.at[:, t].set(1.0)
    logits = classify(pooled, count + 1.0)  # [B, K]
    entropy = categorical_entropy(logits)  # [B]
    return ((pooled, locations, taken, visited, entropy),
            (location, cell, epe, entropy, gain, logits))

  # The embedding's width, from shapes alone (nothing is computed).
  width = jax.eval_shape(lambda: embed(jax.vmap(read)(images[:1], candidates[:1]),
                                       candidates[:1])).shape[-1]
  if num_steps > candidates.shape[0]:
    raise ValueError(f'num_steps={num_steps} glimpses need as many distinct candidates, got '
                     f'{candidates.shape[0]}')
  prior = categorical_entropy(classify(jnp.zeros((batch, width)), jnp.zeros((batch,))))  # H_0
  init = (jnp.zeros((batch, width)), jnp.zeros((batch, num_steps, 2)),
          jnp.zeros((batch, num_steps)), jnp.zeros((batch, candidates.shape[0]), bool), prior)
  (pooled, _, taken, _, _), (locations, cells, epe, entropy, gain, step_logits) = jax.lax.scan(
      step, init, jnp.arange(num_steps))
  logits = classify(pooled, taken.sum(-1))
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return Sequences(swap(locations), swap(cells), swap(epe), swap(entropy), logits, swap(gain),
                   swap(step_logits))


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
