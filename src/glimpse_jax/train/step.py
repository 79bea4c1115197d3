"""Pure, jittable steps: one update, its metric accumulator, evaluation sums, gradient variance.

Randomness for the update with index `t` is `fold_in(rng, t)`, so a run is a function of its seed
and a resumed run repeats an uninterrupted one bit for bit.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train.experiment import Batch, Experiment, Frozen
from glimpse_jax.train.state import TrainState, report_plateau

RESERVED_METRICS = ('loss', 'grad_norm')


# ---------------------------------------------------------------------------------------------
# Update step.
# ---------------------------------------------------------------------------------------------
def _frozen_args(frozen: Frozen | None) -> tuple:
  """The trailing argument of an experiment's loss and evaluate: the frozen models, if any."""
  return (frozen,) if frozen else ()


def train_step(state: TrainState, batch: Batch, rng: jax.Array,
               frozen: Frozen | None = None,
               prepare: Callable[[Batch, jax.Array], Batch] | None = None
               ) -> tuple[TrainState, dict]:
  """One optimizer update on `batch`; returns the new state and scalar metrics.

  Metrics are the experiment's own, plus `loss` (the differentiated scalar) and `grad_norm`
  (global norm of the gradient before clipping). `frozen` (the frozen models' parameters) is
  passed to the loss as its last argument when given; it is an input, never differentiated.
  `prepare(batch, step)` maps the batch as it arrives and the update's index to the
  experiment's batch inside the step (canvas recipes to images, or the digit pool to the canvases
  drawn for this update).
  """
  if prepare is not None:
    batch = prepare(batch, state.step)
  step_rng = jax.random.fold_in(rng, state.step)
  loss_fn = lambda params: state.apply_fn(params, batch, step_rng, state.step,
                                          *_frozen_args(frozen))
  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  _check_metrics(loss, metrics)
  metrics = {**metrics, 'loss': loss, 'grad_norm': optax.tree.norm(grads)}
  return state.apply_gradients(grads=grads), metrics


def _check_metrics(loss: jax.Array, metrics: Mapping[str, jax.Array]) -> None:
  if jnp.shape(loss):
    raise ValueError(f'the experiment loss must be a scalar, got shape {jnp.shape(loss)}')
  for name, value in metrics.items():
    if name in RESERVED_METRICS:
      raise ValueError(f'loss metric {name!r} is reserved for the loop ({RESERVED_METRICS})')
    if jnp.shape(value):
      raise ValueError(f'loss metric {name!r} must be a scalar, got shape {jnp.shape(value)}')


# ---------------------------------------------------------------------------------------------
# Metric accumulator: sums over a log interval and the first update with a non-finite value.
# ---------------------------------------------------------------------------------------------
def init_accumulator(metric_names: list[str]) -> dict[str, Any]:
  """Empty sums; `first_bad_step` is -1 until some metric of some update is NaN or infinite."""
  return {'sum': {name: jnp.zeros((), jnp.float32) for name in metric_names},
          'count': jnp.zeros((), jnp.int32),
          'first_bad_step': jnp.full((), -1, jnp.int32),
          'bad': {name: jnp.zeros((), bool) for name in metric_names}}


def accumulate(acc: dict[str, Any], metrics: Mapping[str, jax.Array],
               step: jax.Array) -> dict[str, Any]:
  """Adds one update's metrics; records `step` and the offending names at the first bad update."""
  finite = {name: jnp.isfinite(value) for name, value in metrics.items()}
  first_bad = (acc['first_bad_step'] < 0) & ~jnp.all(jnp.stack(list(finite.values())))
  return {
      'sum': {name: acc['sum'][name] + value.astype(jnp.float32)
              for name, value in metrics.items()},
      'count': acc['count'] + 1,
      'first_bad_step': jnp.where(first_bad, step.astype(jnp.int32), acc['first_bad_step']),
      'bad': {name: jnp.where(first_bad, ~finite[name], acc['bad'][name]) for name in metrics},
  }


def train_step_and_accumulate(state: TrainState, acc: dict[str, Any], batch: Batch,
                              rng: jax.Array, frozen: Frozen | None = None,
                              prepare: Callable[[Batch, jax.Array], Batch] | None = None
                              ) -> tuple[TrainState, dict[str, Any]]:
  """`train_step` followed by `accumulate`, so the loop dispatches one computation per update."""
  step = state.step
  state, metrics = train_step(state, batch, rng, frozen, prepare)
  return state, accumulate(acc, metrics, step)


# ---------------------------------------------------------------------------------------------
# Evaluation and the gradient-variance diagnostic.
# ---------------------------------------------------------------------------------------------
def eval_step(evaluate: Callable, params: Any, batch: Batch, rng: jax.Array,
              frozen: Frozen | None = None) -> dict[str, jax.Array]:
  """Mask-weighted sums of `evaluate`'s per-example values, plus `examples` = the mask's sum."""
  mask = batch['mask'].astype(jnp.float32)  # [B]
  values = evaluate(params, batch, rng, *_frozen_args(frozen))
  sums = {}
  for name, value in values.items():
    if jnp.shape(value) != mask.shape:
      raise ValueError(f'evaluate value {name!r} must have shape {mask.shape} (one per '
                       f'example), got {jnp.shape(value)}')
    sums[name] = jnp.sum(value.astype(jnp.float32) * mask)
  if 'examples' in sums:
    raise ValueError("evaluate value 'examples' is reserved for the example count")
  return {**sums, 'examples': jnp.sum(mask)}


def grad_variance(state: TrainState, batch: Batch, rng: jax.Array, num_draws: int,
                  frozen: Frozen | None = None,
                  prepare: Callable[[Batch, jax.Array], Batch] | None = None
                  ) -> dict[str, jax.Array]:
  """Spread of the gradient estimator over `num_draws` rngs on one batch at `state.params`.

  Returns `grad_variance`, the trace of the covariance of the flattened gradient (the sum over
  parameters of the unbiased per-parameter variance across draws), and `grad_norm_mean`.
  """
  if prepare is not None:
    batch = prepare(batch, state.step)
  def grad(draw_rng):
    loss_fn = lambda params: state.apply_fn(params, batch, draw_rng, state.step,
                                            *_frozen_args(frozen))[0]
    return jax.grad(loss_fn)(state.params)
  grads = jax.vmap(grad)(jax.random.split(rng, num_draws))  # leaves [D, ...]
  variance = sum(jnp.sum(jnp.var(g.astype(jnp.float32), axis=0, ddof=1))
                 for g in jax.tree.leaves(grads))
  norms = jax.vmap(optax.tree.norm)(grads)  # [D]
  return {'grad_variance': variance, 'grad_norm_mean': jnp.mean(norms)}


# ---------------------------------------------------------------------------------------------
# The jitted functions the loop calls.
# ---------------------------------------------------------------------------------------------
class Steps(NamedTuple):
  """Jitted steps with the state replicated and the batch sharded over `mesh` (or, when the
  update draws its own canvases, the replicated digit pool it draws them from)."""
  update: Callable  # (state, acc, batch, rng, frozen) -> (state, acc); state and acc donated
  evaluate: Callable  # (params, batch, rng, frozen) -> sums
  grad_variance: Callable  # (state, batch, rng, frozen) -> {'grad_variance', 'grad_norm_mean'}
  report_plateau: Callable | None  # (opt_state, value) -> opt_state, if the optimizer has one


def make_steps(experiment: Experiment, mesh: Mesh, grad_variance_draws: int,
               plateau: optax.GradientTransformationExtraArgs | None = None,
               prepare: Callable[[Batch, jax.Array], Batch] | None = None) -> Steps:
  """Compiles-on-first-call versions of the steps, every output replicated.

  The frozen models' parameters are an argument of each step (device arrays, not constants
  compiled into it); pass None when the experiment has none. `prepare` maps each training batch
  inside the update and the gradient-variance step (see `train_step`).
  """
  replicated = mesh_lib.replicated(mesh)
  update = jax.jit(functools.partial(train_step_and_accumulate, prepare=prepare),
                   donate_argnums=(0, 1), out_shardings=replicated)
  evaluate = jax.jit(
      lambda params, batch, rng, frozen=None: eval_step(experiment.evaluate, params, batch, rng, frozen),
      out_shardings=replicated)
  variance = jax.jit(lambda state, batch, rng, frozen=None: grad_variance(
      state, batch, rng, grad_variance_draws, frozen, prepare), out_shardings=replicated)
  report = None
  if plateau is not None:
    report = jax.jit(lambda opt_state, value: report_plateau(opt_state, value, plateau),
                     out_shardings=replicated)
  return Steps(update=update, evaluate=evaluate, grad_variance=variance, report_plateau=report)
