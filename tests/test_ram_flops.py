"""RAM's hand-counted FLOPs against the matrix products traced from the model itself."""

import jax
import jax.numpy as jnp
import pytest

from glimpse_jax.nets import RecurrentAttentionModel, RetinaSpec, flops, mode_noise
from glimpse_jax.nets import ram_flops_per_image, ram_multiply_adds

_WIDTHS = dict(what_features=16, where_features=8, glimpse_features=32, core_features=24,
               locator_features=8, grid_size=3)


@pytest.mark.parametrize('parts', [
    dict(), dict(core='lstm'), dict(locator='lstm'), dict(locator='grid'),
    dict(classify_every_step=True),
])
@pytest.mark.parametrize('shape, retina', [((40, 40, 1), RetinaSpec(12, 3)),
                                           ((32, 32, 3), RetinaSpec(8, 1))])
def test_hand_count_is_the_traced_count_less_the_baseline(parts, shape, retina):
  model = RecurrentAttentionModel(retina=retina, **_WIDTHS, **parts)
  glimpses = 5
  images = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  noise = mode_noise((glimpses, 1), 9 if parts.get('locator') == 'grid' else 0)
  variables = jax.eval_shape(model.init, jax.random.key(0), images, noise)
  traced = flops.multiply_adds(lambda v, x: model.apply(v, x, noise).logits, variables, images)
  baseline = glimpses * _WIDTHS['core_features']  # Dense(1) on h_{t-1}: training only
  assert ram_multiply_adds(model, shape[2], glimpses) == traced - baseline
  assert ram_flops_per_image(model, shape, glimpses) == 2 * (traced - baseline)


def test_paper_sized_count_by_hand():
  # 4 glimpses of 3 scales of 12x12 with RAM's widths (128, 128, 256, 256).
  model = RecurrentAttentionModel(retina=RetinaSpec(12, 3), what_features=128,
                                  where_features=128, glimpse_features=256, core_features=256)
  per_glimpse = 432 * 128 + 2 * 128 + 256 * 256 + 512 * 256 + 256 * 2
  assert ram_flops_per_image(model, (40, 40, 1), 4) == 2 * (4 * per_glimpse + 256 * 10)
  # The count does not depend on the canvas: a glimpse reads the same pixels on any image.
  assert ram_flops_per_image(model, (100, 100, 1), 4) == ram_flops_per_image(model, (40, 40, 1), 4)


@pytest.mark.parametrize('call, message', [
    (lambda m: ram_multiply_adds(m, 0, 4), 'channels must be an integer >= 1, got 0'),
    (lambda m: ram_multiply_adds(m, 1, 0), 'num_glimpses must be an integer >= 1, got 0'),
    (lambda m: ram_flops_per_image(m, (40, 40), 4), r'image_shape must be \(H, W, C\)'),
    (lambda m: ram_multiply_adds(m.clone(core='gru'), 1, 4), "core must be one of"),
    (lambda m: ram_multiply_adds(m.clone(locator='fixed'), 1, 4), "locator must be one of"),
])
def test_bad_arguments_fail_naming_them(call, message):
  with pytest.raises(ValueError, match=message):
    call(RecurrentAttentionModel())
