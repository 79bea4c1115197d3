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

# read(image [H, W, C], loc [2]) -> patches [S, h, w, C] (the retina)
Read = Callable[[jax.Array, jax.Array], jax.Array]
# embed(patches [..., S, h, w, C], locs [..., 2]) -> [..., F]
Embed = Callable[[jax.Array, jax.Array], jax.Array]
# classify(pooled sum [..., F], count [...]) -> logits [..., K]
Classify = Callable[[jax.Array, jax.Array], jax.Array]
# complete(images [B, H, W, C], locs [B, T, 2], taken [B, T], rng) -> completions [B, S, H, W, C]
Complete = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


class Sequences(NamedTuple):
  locations: jax.Array  # [B, T, 2] the chosen candidates' locations
  cells: jax.Array  # [B, T] int32 index of each chosen candidate
  epe: jax.Array  # [B, T, N] expected posterior entropy of every candidate at each step
  entropy: jax.Array  # [B, T] posterior entropy after each true glimpse
  logits: jax.Array  # [B, K] the posterior's logits after the last glimpse


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
  locs = jnp.broadcast_to(candidates, (completions.shape[0], *candidates.shape))  # [S, N, 2]
  embedded = embed(patches, locs)  # [S, N, F]
  logits = classify(pooled_sum + embedded, jnp.broadcast_to(count + 1.0, embedded.shape[:-1]))
  return categorical_entropy(logits).mean(0)  # [N]


def greedy_sequences(images: jax.Array, rng: jax.Array, candidates: jax.Array, num_steps: int, *,
                     read: Read, embed: Embed, classify: Classify,
                     complete: Complete) -> Sequences:
  """Greedy minimum-EPE sequences of `num_steps` glimpses for a batch `images` [B, H, W, C].

  At each step: sample completions given the true glimpses so far, score every candidate by its
  EPE, take the true glimpse at the best candidate not taken before. (Glimpsing a location again
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
    pooled, locs, taken, visited = carry  # [B, F], [B, T, 2], [B, T], [B, N]
    count = taken.sum(-1)  # [B]
    completions = complete(images, locs, taken, jax.random.fold_in(rng, t))  # [B, S, H, W, C]
    epe = jax.vmap(epe_one)(pooled, count, completions)  # [B, N]
    cell = jnp.argmin(jnp.where(visited, jnp.inf, epe), -1).astype(jnp.int32)  # [B]
    visited = visited.at[jnp.arange(batch), cell].set(True)
    loc = candidates[cell]  # [B, 2]
    pooled = pooled + embed(jax.vmap(read)(images, loc), loc)  # [B, F]
    locs = locs.at[:, t].set(loc)
    taken = taken.at[:, t].set(1.0)
    entropy = categorical_entropy(classify(pooled, count + 1.0))  # [B]
    return (pooled, locs, taken, visited), (loc, cell, epe, entropy)

  # The embedding's width, from shapes alone (nothing is computed).
  width = jax.eval_shape(lambda: embed(jax.vmap(read)(images[:1], candidates[:1]),
                                       candidates[:1])).shape[-1]
  if num_steps > candidates.shape[0]:
    raise ValueError(f'num_steps={num_steps} glimpses need as many distinct candidates, got '
                     f'{candidates.shape[0]}')
  init = (jnp.zeros((batch, width)), jnp.zeros((batch, num_steps, 2)),
          jnp.zeros((batch, num_steps)), jnp.zeros((batch, candidates.shape[0]), bool))
  (pooled, _, taken, _), (locs, cells, epe, entropy) = jax.lax.scan(
      step, init, jnp.arange(num_steps))
  logits = classify(pooled, taken.sum(-1))
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return Sequences(swap(locs), swap(cells), swap(epe), swap(entropy), logits)
