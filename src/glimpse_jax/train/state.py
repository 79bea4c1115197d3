"""The train state: step, parameters and optimizer state, with the experiment's loss as apply_fn."""

from typing import Any

import jax
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import NamedSharding

from glimpse_jax.train.experiment import Batch, Experiment


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

