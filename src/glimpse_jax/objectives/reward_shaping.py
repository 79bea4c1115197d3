"""Reward bonuses from the classifier's outputs after every glimpse (Brooks et al., "Applying
Active Learning to Recurrent Attentive Models"), added to RAM's reward before the returns-to-go.

Per-example layout as in `objectives.ram`: `step_logits [B, T, C]`, the class logits after glimpse
t = 1..T; bonuses are `[B, T]`, the bonus of step t paid after glimpse t. They are rewards: the
caller treats them as constants (no gradient flows through them into the classifier).

- Output change (their eq. 2): ||O_t - O_{t-1}||_2, O_t the output after glimpse t and O_0 the
  output of `initial_logits` (default zeros: the uniform distribution, what a balanced classifier
  knows before any glimpse). O is the log-softmax (`space='log_probs'`): eq. 2 as written, since
  the paper built on the Torch RAM, whose classifier ends in LogSoftMax, so its O_t is a
  log-probability; the bonus is unbounded and grows as the classifier grows confident. Or O is the
  softmax (`space='probs'`): our reading, each change at most sqrt(2).
- Spread: the standard deviation of O_t (softmax) over the class axis as a fraction of a one-hot
  output's, std_c(O_t) / std_max with std_max = sqrt(C - 1) / C: 0 for the uniform output, 1 for a
  one-hot one (`output_std`). The paper rewards a low spread. Two bonuses (`SPREAD_FORMS`):
  - 'paper': -weight * std_c(O_t) / std_max, in [-weight, 0]: the paper's sign (a low spread, i.e.
    an output near uniform, is rewarded) and centered (0 for the uniform output, no constant);
  - 'confidence': -weight * (1 - std_c(O_t) / std_max) = weight * std_c / std_max - weight, our
    earlier reading: it rewards a high spread (a confident output) and costs a constant -weight
    per glimpse (-weight * T per episode before anything is learnt). `output_spread` is
    1 - std_c / std_max, the quantity it weighs.
`episode_total` moves a per-glimpse bonus to the last glimpse, so that with the 'final' reward and
no discount every step's return is the episode's total reward (the Torch RAM's single reward).
"""

import math

import chex
import jax
import jax.numpy as jnp

OUTPUT_SPACES = ('probs', 'log_probs')
SPREAD_FORMS = ('paper', 'confidence')


def _check(step_logits: jax.Array) -> None:
  chex.assert_rank(step_logits, 3)
  chex.assert_type(step_logits, float)
  if step_logits.shape[-1] < 2:
    raise ValueError(f'step_logits need at least 2 classes [B, T, C], got shape '
                     f'{step_logits.shape}')


def class_outputs(logits: jax.Array, space: str = 'probs') -> jax.Array:
  """The classifier's output O in `space` (one of OUTPUT_SPACES): [..., C] -> [..., C]."""
  if space not in OUTPUT_SPACES:
    raise ValueError(f'space must be one of {list(OUTPUT_SPACES)}, got {space!r}')
  return jax.nn.softmax(logits, -1) if space == 'probs' else jax.nn.log_softmax(logits, -1)


def output_change(step_logits: jax.Array, space: str = 'probs',
                  initial_logits: jax.Array | None = None) -> jax.Array:
  """||O_t - O_{t-1}||_2 for t = 1..T: [B, T, C] -> [B, T].

  Args:
    step_logits: [B, T, C] class logits after every glimpse.
    space: 'probs' or 'log_probs', the output O compared (see the module doc).
    initial_logits: [C] or [B, C] logits of O_0, the output before the first glimpse; None: zeros,
      the uniform distribution.
  """
  _check(step_logits)
  batch, _, num_classes = step_logits.shape
  if initial_logits is None:
    initial_logits = jnp.zeros((num_classes,), step_logits.dtype)
  if initial_logits.shape not in ((num_classes,), (batch, num_classes)):
    raise ValueError(f'initial_logits must be [{num_classes}] or [{batch}, {num_classes}], got '
                     f'shape {initial_logits.shape}')
  initial = jnp.broadcast_to(initial_logits, (batch, num_classes))[:, None]  # [B, 1, C]
  outputs = class_outputs(jnp.concatenate([initial, step_logits], 1), space)  # [B, T + 1, C]
  return jnp.linalg.norm(outputs[:, 1:] - outputs[:, :-1], axis=-1)


def output_std(step_logits: jax.Array) -> jax.Array:
  """std_c(O_t) / std_max in [0, 1], 0 for a uniform output, 1 for a one-hot: [B, T, C] ->
  [B, T]."""
  _check(step_logits)
  num_classes = step_logits.shape[-1]
  std_max = math.sqrt(num_classes - 1) / num_classes
  return jnp.std(jax.nn.softmax(step_logits, -1), axis=-1) / std_max


def output_spread(step_logits: jax.Array) -> jax.Array:
  """1 - std_c(O_t) / std_max in [0, 1], 1 for a uniform output, 0 for a one-hot: [B, T, C] ->
  [B, T]."""
  return 1.0 - output_std(step_logits)


def episode_total(bonus: jax.Array) -> jax.Array:
  """A per-glimpse bonus [B, T] summed into its last glimpse: [B, T] -> [B, T], zero before T."""
  chex.assert_rank(bonus, 2)
  return jnp.zeros_like(bonus).at[:, -1].set(bonus.sum(-1))


def reward_bonuses(step_logits: jax.Array, *, output_change_weight: float = 0.0,
                   spread_weight: float = 0.0, space: str = 'probs',
                   spread_form: str = 'paper') -> dict[str, jax.Array]:
  """The weighted bonuses {'change', 'spread'}, each [B, T], with no gradient.

  change = output_change_weight * ||O_t - O_{t-1}||_2 (O_0 uniform, O in `space`);
  spread = -spread_weight * output_std(O_t) ('paper') or -spread_weight * output_spread(O_t)
  ('confidence'); see the module doc.
  """
  for name, weight in (('output_change_weight', output_change_weight),
                       ('spread_weight', spread_weight)):
    if not weight >= 0:
      raise ValueError(f'{name} must be >= 0, got {weight}')
  if spread_form not in SPREAD_FORMS:
    raise ValueError(f'spread_form must be one of {list(SPREAD_FORMS)}, got {spread_form!r}')
  step_logits = jax.lax.stop_gradient(step_logits)
  spread = output_std(step_logits) if spread_form == 'paper' else output_spread(step_logits)
  return {'change': output_change_weight * output_change(step_logits, space),
          'spread': -spread_weight * spread}
