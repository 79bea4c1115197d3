"""The interface between the shared loop and one paper's method (see DESIGN.md)."""

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax

Batch = Mapping[str, Any]  # image [B, H, W, C], label [B], center [B, 2], box_size [B] (+ mask [B])
Params = Any  # a pytree, typically Flax variables
Metrics = Mapping[str, jax.Array]  # name -> scalar


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A method as four functions; the loop owns everything else (data, optimizer, devices, files).

  Attributes:
    init: `init(rng, batch) -> params`.
    loss: `loss(params, batch, rng, step) -> (scalar, metrics)`; the scalar's gradient is the
      method's estimator, `metrics` are scalars to log, `step` is the update's index (from 0).
    evaluate: `evaluate(params, batch, rng) -> {name: [B] per-example values}`; `error` (0/1 per
      example) is the headline number, reported as `test_error`.
    plots: optional `plots(params, batch, rng, workdir)`, run on the host after training.
  """
  init: Callable[[jax.Array, Batch], Params]
  loss: Callable[[Params, Batch, jax.Array, jax.Array], tuple[jax.Array, Metrics]]
  evaluate: Callable[[Params, Batch, jax.Array], Mapping[str, jax.Array]]
  plots: Callable[[Params, Batch, jax.Array, str], None] | None = None

  def __post_init__(self):
    for name in ('init', 'loss', 'evaluate'):
      if not callable(getattr(self, name)):
        raise ValueError(f'Experiment.{name} must be callable, got {getattr(self, name)!r}')
    if self.plots is not None and not callable(self.plots):
      raise ValueError(f'Experiment.plots must be callable or None, got {self.plots!r}')


def pick_variant(arg: str | None, variants: Iterable[str]) -> str:
  """Returns `arg` if it names one of `variants`, else raises ValueError listing them.

  Used by an experiment's `get_config(arg)` so `experiments/ram.py:typo` fails at once.
  """
  variants = tuple(variants)
  if arg not in variants:
    raise ValueError(f'unknown variant {arg!r}; choose one of: {", ".join(variants)}')
  return arg
