"""Runs every `benchmarks/bench_*.py` in one process and prints their figures.

Usage:
  python benchmarks/run_all.py                  # all benchmarks (`make bench`)
  python benchmarks/run_all.py glimpse          # only those whose name contains 'glimpse'
  python benchmarks/run_all.py --json out.json  # also write every figure to a JSON file

Each module's `main()` prints its own report and returns `{figure name: number}`; a failing
benchmark is reported and the others still run (the exit status is then 1).
"""

import argparse
import importlib.util
import json
import pathlib
import sys
import time
import traceback
from collections.abc import Sequence

BENCHMARKS = pathlib.Path(__file__).resolve().parent


def discover(folder: pathlib.Path = BENCHMARKS,
             names: Sequence[str] = ()) -> list[pathlib.Path]:
  """The bench_*.py files of `folder`, sorted, kept if their name contains one of `names`."""
  paths = sorted(folder.glob('bench_*.py'))
  return [p for p in paths if not names or any(n in p.stem for n in names)]


def run_benchmark(path: pathlib.Path) -> dict[str, float]:
  """Imports `path` and returns what its `main()` returns (a dict of figures, maybe empty)."""
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, 'main', None)):
    raise ValueError(f'{path.name} defines no main()')
  figures = module.main()
  if figures is None:
    return {}
  if not isinstance(figures, dict):
    raise ValueError(f'{path.name}: main() must return a dict of figures or None, got '
                     f'{type(figures).__name__}')
  return figures


def main(argv: Sequence[str] | None = None, folder: pathlib.Path = BENCHMARKS) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('names', nargs='*', help='run only benchmarks whose name contains these')
  parser.add_argument('--json', help='write {benchmark: {figure: value}} to this file')
  args = parser.parse_args(argv)
  paths = discover(folder, args.names)
  if not paths:
    print(f'no benchmarks matching {args.names} in {folder}', file=sys.stderr)
    return 1

  results, failed = {}, []
  for path in paths:
    print(f'== {path.stem}', flush=True)
    start = time.perf_counter()
    try:
      results[path.stem] = run_benchmark(path)
    except Exception:  # one broken benchmark must not hide the others' figures
      traceback.print_exc()
      failed.append(path.stem)
    print(f'== {path.stem}: {time.perf_counter() - start:.1f} s', flush=True)

  print('\nsummary')
  for name, figures in results.items():
    for key, value in figures.items():
      shown = f'{value:14.4f}' if isinstance(value, (int, float)) else f'{value!s:>14}'
      print(f'  {name:24s} {key:48s} {shown}')
  for name in failed:
    print(f'  {name:24s} FAILED')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
