"""Greedy and Monte-Carlo evaluation of a stochastic glimpse classifier, shared by every model.

The headline error follows one path of greedy actions (mode noise), as the papers' tables do;
`error_mc` averages class log-probabilities over M sampled paths, and `bound` is the
importance-weighted bound log (1/M) sum_m p(y | a_m, x), a_m ~ p(a | x), on log p(y | x).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp

from glimpse_jax import diagnostics


def path_values(greedy_logits: jax.Array, sampled_logits: jax.Array,
                labels: jax.Array) -> dict[str, jax.Array]:
  """Per-example `error`, `error_mc`, `nll` (greedy) and `bound`, each [B].

  Args:
    greedy_logits: [B, C] class logits (or log-probabilities) of the greedy path.
    sampled_logits: [B, M, C] those of M sampled paths per example.
    labels: [B] int class labels.
  """
  chex.assert_rank([greedy_logits, sampled_logits, labels], [2, 3, 1])
  chex.assert_equal_shape([greedy_logits, sampled_logits[:, 0]])
  chex.assert_equal_shape_prefix([greedy_logits, labels], 1)
  chex.assert_type(labels, int)
  greedy = jax.nn.log_softmax(greedy_logits, -1)  # [B, C]
  sampled = jax.nn.log_softmax(sampled_logits, -1)  # [B, M, C]
  label_ll = jnp.take_along_axis(sampled, labels[:, None, None], -1)[..., 0]  # [B, M]
  return {
      'error': (jnp.argmax(greedy, -1) != labels).astype(jnp.float32),
      'error_mc': (jnp.argmax(sampled.mean(1), -1) != labels).astype(jnp.float32),
      'nll': -jnp.take_along_axis(greedy, labels[:, None], -1)[:, 0],
      'bound': jax.nn.logsumexp(label_ll, 1) - math.log(sampled.shape[1]),
  }


def evaluate_paths(apply_logits: Callable[[Any], jax.Array], greedy_noise: Any,
                   sampled_noise: Any, labels: jax.Array) -> dict[str, jax.Array]:
  """`path_values` of a model given as `apply_logits(noise) -> [B, C]`.

  Args:
    apply_logits: the model's class logits for one batch of rollouts driven by `noise`.
    greedy_noise: the noise of the greedy path (typically `mode_noise`).
    sampled_noise: a pytree of noise with a leading sample axis M; `apply_logits` is vmapped
      over it.
    labels: [B] int class labels.
  """
  greedy = apply_logits(greedy_noise)  # [B, C]
  sampled = jax.vmap(apply_logits, out_axes=1)(sampled_noise)  # [B, M, C]
  return path_values(greedy, sampled, labels)


def evaluate_glimpse_paths(apply: Callable[[Any], Any], greedy_noise: Any, sampled_noise: Any,
                           batch: Mapping[str, jax.Array],
                           patch_size: int) -> dict[str, jax.Array]:
  """`path_values` plus the greedy path's per-glimpse location diagnostics, each [B].

  Args:
    apply: the model's rollout for one batch of noise, an output with `logits` [B, C], `loc_mean`
      and `locations` [B, T, 2] (e.g. `RAMOutput`).
    greedy_noise, sampled_noise: as in `evaluate_paths`.
    batch: with `image` [B, H, W, C] and `label` [B] (and the digit's `center`, `box_size` when
      the dataset gives them).
    patch_size: side in pixels of the retina's finest patch.
  """
  greedy = apply(greedy_noise)
  sampled = jax.vmap(lambda noise: apply(noise).logits, out_axes=1)(sampled_noise)  # [B, M, C]
  return {**path_values(greedy.logits, sampled, batch['label']),
          **diagnostics.location_values(batch['image'], greedy, batch, patch_size)}


def glimpse_predictions(rollout: Any) -> dict[str, jax.Array]:
  """What `predict` returns for a RAM-like rollout (`logits` [B, C], `locations` [B, T, 2]):
  class `probabilities` [B, C] and the `locations` read, clipped, [B, T, 2]."""
  return {'probabilities': jax.nn.softmax(rollout.logits, -1),
          'locations': jnp.clip(rollout.locations, -1, 1)}
