"""Pictures of a captioning attention model: per generated word, the window it read."""

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from glimpse_jax.glimpse import loc_to_pixel
from glimpse_jax.plots.glimpse_paths import _SCALE_COLOURS, _show
from glimpse_jax.plots.saving import save


def pyramid_window_boxes(locations, layers, *, window, height, width):
  """Image-pixel boxes `(left, top, side_x, side_y)` of the windows read from a pyramid's maps.

  Layer l's map has ceil(H / 2^(l + 1)) x ceil(W / 2^(l + 1)) cells of 2^(l + 1) pixels (2x2
  pooling per layer, 'SAME' padding at the far edges); the read takes the `window` cells from
  `floor(c - window / 2 + 0.5)` on, c the location in cells (as `glimpse.retina`), so the box is
  those cells' pixels.

  Args:
    locations: [..., 2] in [-1, 1] (clipped here, as the read clips them).
    layers: [...] int layer indices.

  Returns:
    [..., 4] float boxes.
  """
  layers = np.asarray(layers)
  cell = 2.0 ** (layers + 1)  # [...] pixels per cell
  cells = np.stack([np.ceil(width / cell), np.ceil(height / cell)], -1)  # [..., 2] (x, y)
  loc = np.clip(np.asarray(locations, np.float64), -1, 1)
  first = np.floor((loc + 1) / 2 * cells - window / 2 + 0.5)  # [..., 2] first cell (x, y)
  side = window * cell
  return np.stack([first[..., 0] * cell, first[..., 1] * cell, side, side], -1)


def plot_caption_windows(images, locations, layers, words, *, window, vocab, path=None):
  """Saves a grid of images, each with its generated caption's windows, one colour per layer.

  Args:
    images: [N, H, W, C].
    locations: [N, T, 2] each word's location; layers: [N, T] its layer; words: [N, T] the
      generated words (drawn up to and including the first end token).
    window: the window's side in cells.
    vocab: the `captions.Vocabulary` naming the words.
  """
  images = np.asarray(images)
  count, height, width = images.shape[:3]
  boxes = pyramid_window_boxes(locations, layers, window=window, height=height, width=width)
  columns = min(count, 4)
  fig = Figure(figsize=(3 * columns, 3.3 * math.ceil(count / columns)))
  FigureCanvasAgg(fig)
  axes = fig.subplots(math.ceil(count / columns), columns, squeeze=False).ravel()
  for n, ax in enumerate(axes):
    if n >= count:
      ax.axis('off')
      continue
    _show(ax, images[n], height, width)
    said = []
    for t, word in enumerate(np.asarray(words[n])):
      left, top, side_x, side_y = boxes[n, t]
      colour = _SCALE_COLOURS[int(layers[n, t]) % len(_SCALE_COLOURS)]
      ax.add_patch(Rectangle((left - 0.5, top - 0.5), side_x, side_y, fill=False, lw=1.5,
                             edgecolor=colour))
      ax.text(left, top - 1, f'{t + 1}', color=colour, fontsize=8, va='bottom')
      said.append(vocab.words[int(word)])
      if word == vocab.end:
        break
    ax.set_title(' '.join(said), fontsize=9)
  fig.suptitle('window read per word (colour: layer; red finest)', fontsize=10)
  return save(fig, path, dpi=80)
