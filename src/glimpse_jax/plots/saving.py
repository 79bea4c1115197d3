"""Writing a figure to a PNG file."""

import os

from matplotlib.figure import Figure


def save(fig: Figure, path: str | None, dpi: int = 100) -> Figure:
  """Writes `fig` as a PNG at `path` (making its folder) unless `path` is None; returns `fig`."""
  if path is not None:
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    fig.savefig(path, dpi=dpi)
  return fig
