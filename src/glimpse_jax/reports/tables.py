"""Markdown tables and their cells: a table is a list of `Column(header, cell)`, rendered by
`markdown_table`; numbers over seeds are 'mean ± sample std' (`mean_spread`)."""

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from glimpse_jax.reports.runs import is_number


@dataclasses.dataclass(frozen=True)
class Column:
  """One column of a table: its header and the cell it shows for an item (a row's subject)."""

  header: str
  cell: Callable[[Any], str]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """The markdown text of a table of `header` and `rows` of cells (ending in a newline)."""
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
  return '\n'.join(lines) + '\n'


def markdown_table(columns: Sequence[Column], items: Sequence[Any]) -> str:
  """A markdown table of one line per item, a cell per column."""
  return markdown([c.header for c in columns], [[c.cell(item) for c in columns] for item in items])


def number(value: Any) -> str:
  """An int as is, a float to 4 significant digits, '-' for anything else."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return '-'
  if isinstance(value, int):
    return str(value)
  return f'{value:.4g}' if math.isfinite(value) else str(value)


def percent(value: Any) -> str:
  """A fraction as a percentage to 2 decimals, '-' for anything but a number."""
  return f'{100 * value:.2f}' if isinstance(value, (int, float)) else '-'


def minutes(seconds: Any) -> str:
  """Seconds as minutes to 1 decimal, '-' for anything but a number."""
  return f'{seconds / 60:.1f}' if isinstance(seconds, (int, float)) else '-'


def mean_spread(values: Sequence[Any], digits: int = 2, scale: float = 1.0,
                empty: str = '-') -> str:
  """'mean ± sample std' of the numbers among `values`, times `scale`; the mean alone for one
  number, `empty` for none."""
  values = [float(v) for v in values if is_number(v)]
  if not values:
    return empty
  mean = f'{scale * statistics.mean(values):.{digits}f}'
  return mean if len(values) < 2 else f'{mean} ± {scale * statistics.stdev(values):.{digits}f}'


def percent_spread(fractions: Sequence[Any], digits: int = 2, empty: str = '-') -> str:
  """`mean_spread` of fractions, in percent."""
  return mean_spread(fractions, digits, 100.0, empty)


def minutes_spread(seconds: Sequence[Any], digits: int = 1) -> str:
  """`mean_spread` of wall times in seconds, in minutes."""
  return mean_spread(seconds, digits, 1 / 60)


def write_page(text: Sequence[str], out: str, notes: str | None = None) -> str:
  """Writes the markdown parts `text`, then the notes file `notes` (if any), to `out`; returns
  the markdown."""
  parts = list(text)
  if notes is not None:
    with open(notes) as f:
      parts += ['\n', f.read()]
  markdown_text = ''.join(parts)
  with open(out, 'w') as f:
    f.write(markdown_text)
  return markdown_text
