"""The loss of RAM and its relatives: classification, REINFORCE on the glimpse locations, baselines
and an optional supervised location term (Mnih et al. 2014; per-step rewards as in Brooks et al.,
partial supervision and stopping as in Harvey et al.).

Per-example layout: arrays are batch first, [B, ...] with a trailing time axis T, as the models
return them. A `reward_bonus` (e.g. `reward_shaping`'s) joins the rewards before
the returns-to-go. The defaults are RAM's: reward 1 for a correct final class at the
last step, undiscounted, so every step's return is that reward.
"""

import chex
import jax
import jax.numpy as jnp

from glimpse_jax.objectives.reinforce import (
    baseline_loss, final_rewards, location_supervision_loss, reinforce_loss, returns_to_go)

# 'final': 1 at the last step taken if the final class is right; 'per_step': 1 after every glimpse
# whose class is right; 'improvement': the change in rightness, which sums to 'final' (a
# potential-based shaping of it).
REWARDS = ('final', 'per_step', 'improvement')


def classification_rewards(correct: jax.Array, scheme: str,
                           mask: jax.Array | None = None) -> jax.Array:
  """Rewards [B, T] from `correct` [B, T] (1 where the class after glimpse t is right).

  Steps with `mask` 0 (not taken) get no reward; 'final' rewards the last step taken.
  """
  if scheme not in REWARDS:
    raise ValueError(f'reward must be one of {list(REWARDS)}, got {scheme!r}')
  chex.assert_rank(correct, 2)
  chex.assert_type(correct, float)
  taken = jnp.ones_like(correct) if mask is None else mask.astype(correct.dtype)
  chex.assert_equal_shape([correct, taken])
  if scheme == 'final':
    return correct * final_rewards(jnp.ones_like(correct[:, 0]), correct.shape[1], mask)
  if scheme == 'per_step':
    return correct * taken
  previous = jnp.pad(correct[:, :-1], ((0, 0), (1, 0)))
  return (correct - previous) * taken


def rollout_loss(out, labels: jax.Array, **kwargs) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`ram_loss` of a RAM rollout `out` (`logits` [B, C], `log_probs` and `baselines` [B, T], as
  `nets.RAMOutput` holds them); `kwargs` are `ram_loss`'s options."""
  return ram_loss(out.logits, labels, out.log_probs, out.baselines, **kwargs)


def loss_metrics(terms: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """The batch means a RAM update logs from `ram_loss`'s terms: nll, reinforce, baseline_mse and
  the training error."""
  return {'nll': terms['nll'].mean(), 'reinforce': terms['reinforce'].mean(),
          'baseline_mse': terms['baseline_mse'].mean(), 'error': 1.0 - terms['correct'].mean()}


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """-log softmax(logits)[label]: [..., C], [...] -> [...]."""
  log_p = jax.nn.log_softmax(logits, -1)
  return -jnp.take_along_axis(log_p, labels[..., None], -1)[..., 0]


def ram_loss(logits: jax.Array, labels: jax.Array, log_probs: jax.Array, baselines: jax.Array,
             *, step_logits: jax.Array | None = None, step_mask: jax.Array | None = None,
             supervised: jax.Array | None = None, reward: str = 'final',
             reward_bonus: jax.Array | None = None, discount: float = 1.0,
             reinforce_weight: float = 1.0, baseline_weight: float = 1.0,
             supervision_weight: float = 0.0,
             reinforce_time_average: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Per-example loss [B] and its terms {name: [B]}.

  loss = nll + reinforce_weight * reinforce + baseline_weight * baseline_mse
         + supervision_weight * supervision.

  Args:
    logits: [B, C] class logits after the last step taken.
    labels: [B] int class labels.
    log_probs: [B, T] log pi(l_t) of the locations taken (the given ones where supervised).
    baselines: [B, T] b_t, fitted to the returns-to-go.
    step_logits: [B, T, C] logits after every glimpse; the nll then averages over the steps
      taken, and the 'per_step' and 'improvement' rewards need them.
    step_mask: [B, T] 1 where the step was taken.
    supervised: [B] bool, examples whose locations were teacher-forced to targets: they get the
      supervised term -sum_t log pi(target_t) and no REINFORCE or baseline term.
    reward: one of REWARDS.
    reward_bonus: [B, T] added to the rewards of the steps taken before the returns-to-go (e.g.
      `reward_shaping.reward_bonuses`); constants here.
    discount: gamma in [0, 1] of the returns-to-go.
    reinforce_weight, baseline_weight, supervision_weight: the terms' weights.
    reinforce_time_average: divide the REINFORCE term by the number of steps the policy drew
      (per example), so its push does not grow with T as the classification gradient does not;
      False sums over the steps (the paper's estimator).

  Returns:
    (loss [B], {'nll', 'reinforce', 'baseline_mse', 'supervision', 'correct', 'task_reward',
    'return': [B]}), 'correct' the final class's 0/1, 'task_reward' the sum of the `reward`
    scheme's rewards (without the bonus) and 'return' G_0.
  """
  chex.assert_rank([logits, labels, log_probs, baselines], [2, 1, 2, 2])
  chex.assert_equal_shape([log_probs, baselines])
  chex.assert_equal_shape_prefix([logits, labels, log_probs], 1)
  chex.assert_type([labels, log_probs, baselines], [int, float, float])
  for name, weight in (('reinforce_weight', reinforce_weight), ('baseline_weight', baseline_weight),
                       ('supervision_weight', supervision_weight)):
    if not weight >= 0:
      raise ValueError(f'{name} must be >= 0, got {weight}')
  if reward != 'final' and step_logits is None:
    raise ValueError(f'reward {reward!r} needs step_logits (a classifier after every glimpse)')
  batch, num_steps = log_probs.shape
  taken = (jnp.ones((batch, num_steps)) if step_mask is None
           else step_mask.astype(log_probs.dtype))
  chex.assert_shape(taken, (batch, num_steps))

  correct = (jnp.argmax(logits, -1) == labels).astype(log_probs.dtype)  # [B]
  if step_logits is None:
    nll = _cross_entropy(logits, labels)
    rewards = final_rewards(correct, num_steps, step_mask)
  else:
    chex.assert_shape(step_logits, (batch, num_steps, logits.shape[-1]))
    step_nll = _cross_entropy(step_logits, labels[:, None])  # [B, T]
    nll = jnp.sum(taken * step_nll, -1) / jnp.maximum(jnp.sum(taken, -1), 1.0)
    step_correct = (jnp.argmax(step_logits, -1) == labels[:, None]).astype(log_probs.dtype)
    rewards = classification_rewards(step_correct, reward, step_mask)
  task_reward = rewards.sum(-1)
  if reward_bonus is not None:
    chex.assert_shape(reward_bonus, (batch, num_steps))
    rewards = rewards + taken * jax.lax.stop_gradient(reward_bonus)
  returns = returns_to_go(rewards, discount)  # [B, T]

  if supervised is None:
    supervised = jnp.zeros((batch,), bool)
  chex.assert_shape(supervised, (batch,))
  acting = taken * (1.0 - supervised.astype(taken.dtype))[:, None]  # the policy drew these
  reinforce = reinforce_loss(log_probs, returns, baselines, acting)  # [B]
  if reinforce_time_average:
    reinforce = reinforce / jnp.maximum(acting.sum(-1), 1.0)
  terms = {
      'nll': nll,
      'reinforce': reinforce,
      'baseline_mse': baseline_loss(baselines, returns, acting),
      'supervision': location_supervision_loss(log_probs, supervised, taken),
      'correct': correct,
      'task_reward': task_reward,
      'return': returns[:, 0],
  }
  loss = (terms['nll'] + reinforce_weight * terms['reinforce']
          + baseline_weight * terms['baseline_mse'] + supervision_weight * terms['supervision'])
  return loss, terms
