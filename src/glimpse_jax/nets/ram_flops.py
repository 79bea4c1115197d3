"""FLOPs of one RAM rollout, counted by hand from the layer widths (no tracing).

Counts 2 FLOPs per multiply-add of the matrix products one image needs at inference: per glimpse
the glimpse network (what, where, combine), the core and the locator; then the classifier (after
the last glimpse, or after every one with `classify_every_step`). The baseline, used only by the
training loss, and elementwise work (the retina's area-averaging, activations) are left out, as
`flops.multiply_adds` leaves out elementwise work for the CNNs. The count does not depend on the
image's height and width: a glimpse reads the same number of pixels on any canvas.
"""

from collections.abc import Sequence

from glimpse_jax.nets.ram import RecurrentAttentionModel
from glimpse_jax.nets.settings import is_positive_int


def _lstm(inputs: int, features: int) -> int:
  """Multiply-adds of one LSTM cell step: four gates, each reading [input, hidden]."""
  return (inputs + features) * 4 * features


def _core(model: RecurrentAttentionModel) -> int:
  if model.core == 'rnn':
    return (model.glimpse_features + model.core_features) * model.core_features
  if model.core == 'lstm':
    return _lstm(model.glimpse_features, model.core_features)
  raise ValueError(f"core must be one of ['lstm', 'rnn'], got {model.core!r}")


def _locator(model: RecurrentAttentionModel) -> int:
  if model.locator == 'linear':
    return model.core_features * 2
  if model.locator == 'lstm':
    return _lstm(model.core_features, model.locator_features) + model.locator_features * 2
  if model.locator == 'grid':
    cells = model.grid_size**2
    return model.core_features * cells + cells * 2  # the logits, then the expected cell center
  raise ValueError(f"locator must be one of ['grid', 'linear', 'lstm'], got {model.locator!r}")


def ram_multiply_adds(model: RecurrentAttentionModel, channels: int, num_glimpses: int) -> int:
  """Multiply-adds of one rollout (greedy or sampled) of `num_glimpses` glimpses on one image of
  `channels` channels (see the module doc for what is counted)."""
  for name, value in (('channels', channels), ('num_glimpses', num_glimpses)):
    if not is_positive_int(value):
      raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
  patch = model.retina.num_scales * model.retina.size**2 * channels
  glimpse = (patch * model.what_features + 2 * model.where_features
             + (model.what_features + model.where_features) * model.glimpse_features)
  classifier = model.core_features * model.num_classes
  classifications = num_glimpses if model.classify_every_step else 1
  return (num_glimpses * (glimpse + _core(model) + _locator(model))
          + classifications * classifier)


def ram_flops_per_image(model: RecurrentAttentionModel, image_shape: Sequence[int],
                        num_glimpses: int) -> int:
  """FLOPs (2 per multiply-add) of one rollout of `num_glimpses` glimpses on one `[H, W, C]`
  image; a Monte-Carlo prediction over M sampled paths costs M times this."""
  if len(image_shape) != 3:
    raise ValueError(f'image_shape must be (H, W, C), got {tuple(image_shape)!r}')
  return 2 * ram_multiply_adds(model, image_shape[2], num_glimpses)
