"""Settings shared between a model and the per-glimpse step module it scans."""

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn


def settings_of(module: nn.Module, settings: type[nn.Module]) -> dict:
  """`module`'s values of the fields `settings` declares, as keyword arguments for a sibling.

  `settings` is a Linen module class holding only fields; the model and its step both subclass it,
  so the model builds its step with `Step(**settings_of(self, Settings))`.
  """
  return {f.name: getattr(module, f.name) for f in dataclasses.fields(settings)
          if f.init and f.name not in ('parent', 'name')}


def is_positive_int(value: Any) -> bool:
  """True for an integer >= 1 (a bool is not an integer here)."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_positive_ints(section: str, fields: Mapping[str, Any], names: Iterable[str]) -> None:
  """Raises ValueError naming the first of `names` whose value in `fields` (a config section
  called `section`) is not an integer >= 1."""
  for name in names:
    if not is_positive_int(fields[name]):
      raise ValueError(f'{section}.{name} must be an integer >= 1, got {fields[name]!r}')
