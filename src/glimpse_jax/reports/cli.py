"""The chapters' command line: `python -m glimpse_jax.reports.<experiment> RUNS... --out PAGE`."""

import argparse
import sys
from collections.abc import Callable, Sequence


def chapter_parser(prog: str, description: str, out: str | None = None,
                   runs_help: str = 'workdirs holding results.json and metrics.jsonl',
                   notes_help: str = 'a markdown file appended to the page (the reading of the '
                                     'numbers)') -> argparse.ArgumentParser:
  """A parser of a chapter's runs, `--out` (the page; `out` by default, else required) and
  `--notes`; a chapter adds its own options to it."""
  parser = argparse.ArgumentParser(prog=prog, description=description)
  parser.add_argument('runs', nargs='+', help=runs_help)
  parser.add_argument('--out', default=out, required=out is None,
                      help='the markdown file; the figures go beside it')
  parser.add_argument('--notes', default=None, help=notes_help)
  return parser


def run_chapter(write_report: Callable[[Sequence[str], str, str | None], str], prog: str,
                description: str, out: str | None = None, argv: Sequence[str] | None = None,
                **helps: str) -> None:
  """Parses a chapter's command line (`chapter_parser`) and writes its page."""
  args = chapter_parser(prog, description, out, **helps).parse_args(argv)
  write_report(args.runs, args.out, args.notes)
  sys.stdout.write(f'wrote {args.out}\n')
