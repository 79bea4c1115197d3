"""The train state (step, parameters, optimizer state) and the optimizer named by the config."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import NamedSharding

from glimpse_jax.train.experiment import Batch, Experiment
from glimpse_jax.train.params import freeze_labels


# ---------------------------------------------------------------------------------------------
# Optimizer.
# ---------------------------------------------------------------------------------------------
def make_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """The learning rate as a function of the update count (warm-up, then the named schedule)."""
  decay_steps = max(num_steps - opt.warmup_steps, 1)
  if opt.schedule == 'constant':
    schedule = optax.constant_schedule(opt.learning_rate)
  elif opt.schedule == 'cosine':
    schedule = optax.cosine_decay_schedule(opt.learning_rate, decay_steps)
  elif opt.schedule == 'exponential':
    schedule = optax.exponential_decay(opt.learning_rate, opt.decay_steps, opt.decay_rate)
  else:
    raise ValueError(f"optimizer.schedule must be one of ['constant', 'cosine', 'exponential'], "
                     f'got {opt.schedule!r}')
  if not opt.warmup_steps:
    return schedule
  warmup = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
  return optax.join_schedules([warmup, schedule], [opt.warmup_steps])


def make_optimizer(opt: ml_collections.ConfigDict,
                   num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns the optimizer (clipping, weight decay and frozen subtrees included) and its
  learning-rate schedule. Frozen subtrees (`opt.freeze`) get zero updates and no optimizer state."""
  schedule = make_schedule(opt, num_steps)
  if opt.name == 'adam':
    tx = (optax.adamw(schedule, weight_decay=opt.weight_decay) if opt.weight_decay
          else optax.adam(schedule))
  elif opt.name in ('sgd', 'momentum'):
    momentum = opt.momentum if opt.name == 'momentum' else None
    tx = optax.sgd(schedule, momentum=momentum)
    if opt.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
  else:
    raise ValueError(f"optimizer.name must be one of ['adam', 'momentum', 'sgd'], got {opt.name!r}")
  if opt.grad_clip_norm:
    clip = clip_by_leaf_norm if opt.get('grad_clip_per_leaf') else optax.clip_by_global_norm
    tx = optax.chain(clip(opt.grad_clip_norm), tx)
  if opt.get('freeze'):
    freeze = tuple(opt.freeze)
    tx = optax.multi_transform({'trained': tx, 'frozen': optax.set_to_zero()},
                               lambda params: freeze_labels(params, freeze))
  if opt.plateau.patience:
    tx = optax.chain(tx, scale_by_plateau(plateau_rule(opt.plateau)))
  return tx, schedule


def clip_by_leaf_norm(max_norm: float) -> optax.GradientTransformation:
  """Clips each parameter's gradient (each leaf) to L2 norm `max_norm` on its own, as
  TensorFlow's per-variable `clip_by_norm`: a spike in one leaf leaves the others' steps alone.
  Chosen by `optimizer.grad_clip_per_leaf` (an optional field; absent or False: the global norm)."""
  def clip(g):
    norm = jnp.sqrt(jnp.sum(jnp.square(g)))
    over = norm > max_norm
    return jnp.where(over, g * (max_norm / jnp.where(over, norm, 1.0)), g).astype(g.dtype)

  def update(updates, state, params=None):
    del params
    return jax.tree.map(clip, updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


# ---------------------------------------------------------------------------------------------
# Learning-rate reduction on a plateau of an evaluation metric.
# ---------------------------------------------------------------------------------------------
def plateau_rule(plateau: ml_collections.ConfigDict) -> optax.GradientTransformationExtraArgs:
  """optax's reduce-on-plateau rule, fed one evaluation value per call.

  With `plateau.min_delta` > 0 (absent or 0: optax's rule as it is), a value that does not
  improve on the best but lies within `min_delta` above it is a tie: the count of evaluations
  without improvement restarts, the best and the scale stay (a cooldown still runs down). On
  1,000 validation examples an error of one example more or the same counts as a tie with
  `min_delta` 0.0015.
  """
  rule = optax.contrib.reduce_on_plateau(
      factor=plateau.factor, patience=plateau.patience, rtol=plateau.rtol,
      cooldown=plateau.cooldown, min_scale=plateau.min_scale, accumulation_size=1)
  min_delta = plateau.get('min_delta', 0.0)
  if not min_delta:
    return rule

  def update(updates, state, params=None, *, value, **extra_args):
    updates, reduced = rule.update(updates, state, params, value=value, **extra_args)
    improved = reduced.best_value < state.best_value
    tie = ~improved & (value <= state.best_value + min_delta)
    held = state._replace(  # a tie: only the counters move
        plateau_count=jnp.zeros_like(state.plateau_count),
        cooldown_count=jnp.maximum(state.cooldown_count - 1, 0).astype(jnp.int32),
        count=reduced.count, avg_value=reduced.avg_value)
    return updates, jax.tree.map(lambda h, r: jnp.where(tie, h, r), held, reduced)

  return optax.GradientTransformationExtraArgs(rule.init, update)


def scale_by_plateau(rule: optax.GradientTransformationExtraArgs) -> optax.GradientTransformation:
  """Multiplies updates by the scale in `rule`'s state, which only `report_plateau` changes.

  Training steps read the scale; the loop feeds the rule one evaluation value at a time, so the
  decision follows evaluations rather than training batches.
  """
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: (state.scale * u).astype(u.dtype), updates), state
  return optax.GradientTransformation(rule.init, update)


def report_plateau(opt_state: Any, value: jax.Array,
                   rule: optax.GradientTransformationExtraArgs) -> Any:
  """`opt_state` (of an optimizer from `make_optimizer` with a plateau) after one evaluation."""
  *rest, plateau = opt_state
  _, plateau = rule.update((), plateau, value=value)
  return (*rest, plateau)


def plateau_scale(opt_state: Any) -> float:
  """The current scale of a plateau optimizer's updates."""
  return float(opt_state[-1].scale)


# ---------------------------------------------------------------------------------------------
# Train state.
# ---------------------------------------------------------------------------------------------
class TrainState(train_state.TrainState):
  """`apply_fn` is the experiment's `loss(params, batch, rng, step)`; `tx` the optax optimizer."""

  def checkpoint_items(self) -> dict[str, Any]:
    """The arrays a checkpoint holds (functions and configs are rebuilt from the config)."""
    return {'params': self.params, 'opt_state': self.opt_state}

  def restored(self, items: dict[str, Any], step: int) -> 'TrainState':
    """This state (possibly abstract) with restored `checkpoint_items()` and update count."""
    sharding = getattr(self.step, 'sharding', None)
    return self.replace(step=jax.device_put(np.asarray(step, self.step.dtype), sharding), **items)


def _init_fn(experiment: Experiment, tx: optax.GradientTransformation):
  def init(rng, batch, params):
    if params is None:
      params = experiment.init(rng, batch)
    return TrainState.create(apply_fn=experiment.loss, params=params, tx=tx)
  return init


def create_state(experiment: Experiment, tx: optax.GradientTransformation, rng: jax.Array,
                 batch: Batch, sharding: NamedSharding, params: Any = None) -> TrainState:
  """A fresh state (step 0) placed with `sharding`.

  Args:
    experiment: provides `init` and the loss (the state's `apply_fn`).
    tx: the optimizer.
    rng, batch: passed to `experiment.init`.
    sharding: where the state lives (replicated).
    params: start from these parameters instead of `experiment.init(rng, batch)`.
  """
  return jax.jit(_init_fn(experiment, tx), out_shardings=sharding)(rng, batch, params)


def abstract_state(experiment: Experiment, tx: optax.GradientTransformation, rng: jax.Array,
                   batch: Batch, sharding: NamedSharding) -> TrainState:
  """The shapes, dtypes and shardings of `create_state`'s result, without computing it."""
  shapes = jax.eval_shape(_init_fn(experiment, tx), rng, batch, None)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def count_params(params: Any) -> int:
  """The number of scalars in a parameter pytree."""
  return sum(int(x.size) for x in jax.tree.leaves(params))

