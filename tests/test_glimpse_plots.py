"""Glimpse pictures: one box per scale read, where the retina read it."""

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from glimpse_jax.plots import glimpse_paths


class _Axes:
  """Collects the boxes `_draw_retina` adds."""

  def __init__(self):
    self.boxes = []

  def add_patch(self, patch):
    assert isinstance(patch, Rectangle)
    self.boxes.append((patch.get_x(), patch.get_y(), patch.get_width()))


@pytest.mark.parametrize('only, sides', [(None, (4, 8, 16)), (1, (8,)), (2, (16,))])
def test_retina_boxes_are_every_scale_or_the_chosen_one(only, sides):
  ax = _Axes()
  glimpse_paths._draw_retina(ax, 10.0, 12.0, glimpse_size=4, num_scales=3, scale_factor=2,
                             alpha=1.0, only=only)
  assert tuple(side for _, _, side in ax.boxes) == sides
  for x, y, side in ax.boxes:  # whole pixels (j spans [j - 0.5, j + 0.5)) around (10, 12)
    assert (x + 0.5) % 1 == 0 and (y + 0.5) % 1 == 0
    assert abs(x + side / 2 - 10.0) <= 0.5 and abs(y + side / 2 - 12.0) <= 0.5


def test_glimpse_paths_with_chosen_scales_are_saved(tmp_path):
  images = np.zeros((2, 28, 28, 1), np.float32)
  locations = np.zeros((2, 3, 2), np.float32)  # [N, T, 2]
  scales = np.array([[0, 2, 1], [1, 0, 1]])  # [N, T]
  path = tmp_path / 'paths.png'
  glimpse_paths.plot_glimpse_paths(images, locations, glimpse_size=4, num_scales=3,
                                   scales=scales, labels=[1, 2], path=str(path))
  assert path.stat().st_size > 0
