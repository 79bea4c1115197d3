"""Knowledge distillation (Hinton, Vinyals, Dean 2015): match a teacher's softened outputs."""

import chex
import jax
import jax.numpy as jnp


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                      temperature: float = 1.0) -> jax.Array:
  """Per-example `T^2 KL(softmax(teacher / T) || softmax(student / T))`; no gradient to the teacher.

  Args:
    student_logits: [B, C].
    teacher_logits: [B, C].
    temperature: T > 0; the T^2 factor keeps gradient sizes comparable across temperatures.

  Returns:
    [B] losses.
  """
  chex.assert_rank(student_logits, 2)
  chex.assert_equal_shape((student_logits, teacher_logits))
  if temperature <= 0:
    raise ValueError(f'temperature must be > 0, got {temperature}')
  teacher = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / temperature, -1)
  student = jax.nn.log_softmax(student_logits / temperature, -1)
  kl = jnp.sum(jnp.exp(teacher) * (teacher - student), -1)  # [B]
  return temperature ** 2 * kl
