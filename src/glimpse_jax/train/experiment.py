"""The interface between the shared loop and one paper's method (see DESIGN.md)."""

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax

Batch = Mapping[str, Any]  # image [B, H, W, C], label [B], center [B, 2], box_size [B] (+ mask [B])
Params = Any  # a pytree, typically Flax variables
Frozen = Mapping[str, Params]  # frozen model name -> its parameters (restored, never trained)
Metrics = Mapping[str, jax.Array]  # name -> scalar


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A method as a few functions; the loop owns everything else (data, optimizer, devices, files).

  A training phase needs `init`, `loss` and `evaluate`; a data-producing phase needs `generate`.

  Attributes:
    init: `init(rng, batch) -> params`.
    loss: `loss(params, batch, rng, step) -> (scalar, metrics)`; the scalar's gradient is the
      method's estimator, `metrics` are scalars to log, `step` is the update's index (from 0).
    evaluate: `evaluate(params, batch, rng) -> {name: [B] per-example values}`; the config's
      `headline` names the value reported as the run's result (`error` for classifiers).
    plots: optional `plots(params, batch, rng, workdir)`, run on the host after training.
    predict: optional `predict(params, images, rng) -> {name: [B, ...]}` for a batch of images
      `[B, H, W, C]`: `probabilities [B, K]` (class probabilities; `[B, L, V]` per word for a
      captioner) and where the model looked (`locations [B, T, 2]`, and `scales`, `reads` or
      `words` per method); what `glimpse_jax.predict` returns.
    generate: `generate(batch, rng, frozen) -> {name: [B, ...] per-example arrays}`, what a
      data-producing phase stores for each example (computed by the frozen models).
    frozen_models: names of the frozen models the method takes (the config's `frozen` maps each
      to the workdir it is restored from). When not empty, `loss` and `evaluate` take the frozen
      parameters as a last argument: `loss(params, batch, rng, step, frozen)`,
      `evaluate(params, batch, rng, frozen)`; they are inputs of the jitted step, never trained.
  """
  init: Callable[[jax.Array, Batch], Params] | None = None
  loss: Callable[..., tuple[jax.Array, Metrics]] | None = None
  evaluate: Callable[..., Mapping[str, jax.Array]] | None = None
  plots: Callable[[Params, Batch, jax.Array, str], None] | None = None
  predict: Callable[[Params, jax.Array, jax.Array], Mapping[str, jax.Array]] | None = None
  generate: Callable[[Batch, jax.Array, Frozen], Mapping[str, jax.Array]] | None = None
  frozen_models: tuple[str, ...] = ()

  def __post_init__(self):
    for name in ('init', 'loss', 'evaluate', 'plots', 'predict', 'generate'):
      value = getattr(self, name)
      if value is not None and not callable(value):
        raise ValueError(f'Experiment.{name} must be callable or None, got {value!r}')
    if self.generate is None and None in (self.init, self.loss, self.evaluate):
      raise ValueError('an Experiment needs init, loss and evaluate (a training phase) or '
                       'generate (a data-producing phase)')
    if isinstance(self.frozen_models, str) or not all(
        isinstance(n, str) and n for n in self.frozen_models):
      raise ValueError(f'Experiment.frozen_models must be a tuple of names, got '
                       f'{self.frozen_models!r}')
    if self.plots is not None and not getattr(self.plots, 'makes_workdir', False):
      object.__setattr__(self, 'plots', _making_workdir(self.plots))

  def require(self, *names: str) -> None:
    """Raises ValueError unless the functions `names` are all given."""
    missing = [name for name in names if getattr(self, name) is None]
    if missing:
      raise ValueError(f'this phase calls Experiment.{", ".join(missing)}, which the experiment '
                       f'does not define')


def _making_workdir(plots: Callable[..., None]) -> Callable[..., None]:
  """`plots` that first creates its workdir, so it runs on any folder (a notebook's too)."""
  @functools.wraps(plots)
  def wrapped(params, batch, rng, workdir):
    os.makedirs(workdir, exist_ok=True)
    return plots(params, batch, rng, workdir)
  wrapped.makes_workdir = True
  return wrapped


def pick_variant(arg: str | None, variants: Iterable[str]) -> str:
  """Returns `arg` if it names one of `variants`, else raises ValueError listing them.

  Used by an experiment's `get_config(arg)` so `experiments/ram.py:typo` fails at once.
  """
  variants = tuple(variants)
  if arg not in variants:
    raise ValueError(f'unknown variant {arg!r}; choose one of: {", ".join(variants)}')
  return arg
