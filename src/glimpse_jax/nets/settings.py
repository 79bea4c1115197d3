"""Settings shared between a model and the per-glimpse step module it scans."""

import dataclasses

import flax.linen as nn


def settings_of(module: nn.Module, settings: type[nn.Module]) -> dict:
  """`module`'s values of the fields `settings` declares, as keyword arguments for a sibling.

  `settings` is a Linen module class holding only fields; the model and its step both subclass it,
  so the model builds its step with `Step(**settings_of(self, Settings))`.
  """
  return {f.name: getattr(module, f.name) for f in dataclasses.fields(settings)
          if f.init and f.name not in ('parent', 'name')}
