"""Losses that guide where a DRAW read looks (Lindsey 2017, sections 3 and 4).

Each works on one example; callers `jax.vmap` over the batch and reduce.
"""

import jax
import jax.numpy as jnp


def safe_norm(x: jax.Array) -> jax.Array:
  """Euclidean norm over the last axis, with a zero (not NaN) gradient at 0."""
  squares = jnp.sum(jnp.square(x), axis=-1)
  positive = squares > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)


def heuristic_loss(center: jax.Array, read_center_t: jax.Array, decoder_t: jax.Array,
                   l1_weight: float = 0.001) -> jax.Array:
  """`sum_t ||x_dig - x_att_t||_2 + l1_weight ||h_dec_t||_1`: look at the digit's center.

  Args:
    center: `[2]` the digit's center `(x, y)` (location convention).
    read_center_t: `[T, 2]` the read grid's center at each step, same convention.
    decoder_t: `[T, hidden]` the decoder outputs `h_dec_t`.
    l1_weight: weight of the L1 penalty on the decoder outputs (0.001 in the paper).

  Returns:
    The scalar loss.
  """
  if center.shape != (2,) or read_center_t.ndim != 2 or read_center_t.shape[-1] != 2:
    raise ValueError(f'center must be [2] and read_center_t [T, 2], got {center.shape} and '
                     f'{read_center_t.shape}')
  if decoder_t.ndim != 2 or decoder_t.shape[0] != read_center_t.shape[0]:
    raise ValueError(f'decoder_t must be [T, hidden] with T={read_center_t.shape[0]}, got '
                     f'{decoder_t.shape}')
  distance = safe_norm(center[None, :] - read_center_t)  # [T]
  return jnp.sum(distance) + l1_weight * jnp.sum(jnp.abs(decoder_t))


def mimic_loss(read_params_t: jax.Array, teacher_params_t: jax.Array) -> jax.Array:
  """`(1/T) sum_t ||g_t - g_t^teacher||_2` over the five read parameters; no teacher gradient.

  Args:
    read_params_t: `[T, 5]` the student's read parameters.
    teacher_params_t: `[T, 5]` the teacher's, on the same image.
  """
  if read_params_t.ndim != 2 or read_params_t.shape != teacher_params_t.shape:
    raise ValueError(f'read_params_t and teacher_params_t must both be [T, 5], got '
                     f'{read_params_t.shape} and {teacher_params_t.shape}')
  return jnp.mean(safe_norm(read_params_t - jax.lax.stop_gradient(teacher_params_t)))


def mimic_weight(step: jax.Array, alpha: float, rate: float = 0.01) -> jax.Array:
  """`alpha ** (rate * i)` at batch index `i`: the mimic term's weight, decaying from 1."""
  if not 0 < alpha <= 1:
    raise ValueError(f'alpha must be in (0, 1], got {alpha}')
  if rate < 0:
    raise ValueError(f'rate must be >= 0, got {rate}')
  return jnp.power(jnp.float32(alpha), rate * jnp.asarray(step, jnp.float32))
