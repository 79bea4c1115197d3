"""Per-glimpse facts about where a glimpse model looks, shared by every glimpse experiment.

Pure functions of arrays (no flax). Each takes per-glimpse arrays batch first (the models'
outputs, `[B, T, ...]`) and returns one value per example and glimpse, so a collapsed policy is
visible at a glance in every run's metrics and `results.json`:
- `saturated`: the policy mean sits at the canvas edge (max(|mu_x|, |mu_y|) > SATURATION), where
  tanh's gradient (1 - mu^2) vanishes and a parked policy stops learning;
- `on_ink`: the finest patch read at the location holds ink (a pixel above INK);
- `on_digit`: the finest patch overlaps the target digit's box (`center`, `box_size`), which tells
  the digit from clutter where the dataset knows it;
- `kl_q_prior`: a proposal's log-density minus the prior's at the proposal's own samples, whose
  mean estimates KL(q || prior) per glimpse (WS-RAM's q).
`per_glimpse` turns a `[B, T]` array into the `{name_g<t>: [B]}` values an evaluation returns (the
loop averages them into `test_<name>_g<t>`) and `per_glimpse_means` into logged scalars.
"""

import chex
import jax
import jax.numpy as jnp

from glimpse_jax import glimpse

SATURATION = 0.95  # |mu| above which a tanh location mean counts as parked at the edge
INK = 0.5  # pixel intensity above which a pixel counts as ink (images in [0, 1])


def saturated(loc_mean: jax.Array) -> jax.Array:
  """1.0 where either coordinate of a location mean has |mu| > SATURATION: [..., 2] -> [...]."""
  chex.assert_axis_dimension(loc_mean, -1, 2)
  return (jnp.max(jnp.abs(loc_mean), -1) > SATURATION).astype(jnp.float32)


def on_ink(images: jax.Array, locations: jax.Array, patch_size: int) -> jax.Array:
  """1.0 where the `patch_size` square read at a location holds a pixel above INK.

  Args:
    images: [B, H, W, C] in [0, 1].
    locations: [B, T, 2] glimpse locations (clipped to [-1, 1] as the retina reads them).
    patch_size: side in pixels of the finest patch.

  Returns:
    [B, T]. Each read costs O(patch), never O(image).
  """
  chex.assert_rank([images, locations], [4, 3])
  chex.assert_equal_shape_prefix([images, locations], 1)

  def read(image, loc):
    patch = glimpse.retina(image, jnp.clip(loc, -1.0, 1.0), size=patch_size, num_scales=1)
    return jnp.max(patch)

  per_example = jax.vmap(read, in_axes=(None, 0))  # over T
  return (jax.vmap(per_example)(images, locations) > INK).astype(jnp.float32)


def on_digit(locations: jax.Array, center: jax.Array, box_size: jax.Array, patch_size: int,
             canvas_hw: tuple[int, int]) -> jax.Array:
  """1.0 where the finest patch at a location overlaps the digit's box.

  Args:
    locations: [B, T, 2] glimpse locations (clipped to [-1, 1] here, as the retina reads them).
    center: [B, 2] the digit's center (location convention).
    box_size: [B] the digit's side in pixels.
    patch_size: side in pixels of the finest patch.
    canvas_hw: (H, W) of the canvas.

  Returns:
    [B, T].
  """
  chex.assert_rank([locations, center, box_size], [3, 2, 1])
  height, width = canvas_hw
  half_extent = jnp.asarray([width / 2.0, height / 2.0])  # pixels per unit of location
  gap = jnp.abs(jnp.clip(locations, -1.0, 1.0) - center[:, None]) * half_extent  # [B, T, 2] pixels
  reach = (patch_size + box_size[:, None, None]) / 2.0  # [B, 1, 1]
  return jnp.all(gap < reach, -1).astype(jnp.float32)


def kl_q_prior(log_q: jax.Array, log_prior: jax.Array) -> jax.Array:
  """log q(a) - log prior(a) at actions a drawn from q; its mean over draws is KL(q || prior)."""
  chex.assert_equal_shape([log_q, log_prior])
  return log_q - log_prior


def per_glimpse(name: str, values: jax.Array) -> dict[str, jax.Array]:
  """`{name_g1: [B], ..., name_gT: [B], name: [B]}` from `values` [B, T] (name: the mean over T)."""
  chex.assert_rank(values, 2)
  out = {f'{name}_g{t + 1}': values[:, t] for t in range(values.shape[1])}
  out[name] = values.mean(1)
  return out


def per_glimpse_means(name: str, values: jax.Array) -> dict[str, jax.Array]:
  """The batch means of `per_glimpse(name, values)`: scalars to log during training."""
  return {key: value.mean() for key, value in per_glimpse(name, values).items()}


def location_diagnostics(images: jax.Array, loc_mean: jax.Array, locations: jax.Array,
                         patch_size: int, center: jax.Array | None = None,
                         box_size: jax.Array | None = None) -> dict[str, jax.Array]:
  """Per-example `saturated`, `on_ink` (and `on_digit` when the box is known), per glimpse.

  Args:
    images: [B, H, W, C].
    loc_mean: [B, T, 2] the policy's location means.
    locations: [B, T, 2] the locations read.
    patch_size: side in pixels of the finest patch.
    center, box_size: [B, 2] and [B], the target digit's box, when the dataset gives it.

  Returns:
    {'saturated_g<t>', 'saturated', 'on_ink_g<t>', 'on_ink'[, 'on_digit_g<t>', 'on_digit']: [B]}.
  """
  out = {**per_glimpse('saturated', saturated(loc_mean)),
         **per_glimpse('on_ink', on_ink(images, locations, patch_size))}
  if center is not None and box_size is not None:
    digit = on_digit(locations, center, box_size, patch_size, images.shape[1:3])
    out.update(per_glimpse('on_digit', digit))
  return out


def location_values(images: jax.Array, rollout, batch, patch_size: int) -> dict[str, jax.Array]:
  """`location_diagnostics` of a rollout with `loc_mean` and `locations` [B, T, 2] (`RAMOutput`)
  on a batch dict, using its digit box when it has one: {name: [B]}, for an evaluation."""
  return location_diagnostics(images, rollout.loc_mean, rollout.locations, patch_size,
                              batch.get('center'), batch.get('box_size'))


def location_metrics(images: jax.Array, rollout, batch, patch_size: int) -> dict[str, jax.Array]:
  """The batch means of `location_values`: scalars for a loss's training metrics."""
  return {key: value.mean() for key, value in
          location_values(images, rollout, batch, patch_size).items()}
