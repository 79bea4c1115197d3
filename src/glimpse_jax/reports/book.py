"""The results book: every experiment's tables, regenerated from the committed runs.

Usage: `make results` (or `python -m glimpse_jax.reports.book [--results results]`).

Each chapter reads the finished runs committed under `results/<experiment>/` (their results.json,
metrics.jsonl and the files the experiments write beside them), writes `results/<chapter>.md`
with its figures, and appends the hand-written reading of the numbers, `results/<chapter>_notes.md`,
when there is one (kept apart, so regenerating never loses it). `results/README.md` indexes the
chapters: the paper, the runs, their seeds, wall time, and each chapter's headline rows.
"""

import argparse
import dataclasses
import glob
import json
import os
import sys
from collections.abc import Callable, Sequence

from glimpse_jax.reports import (glimpse_bench, near_optimal_glimpses, pretrain_attention, ram,
                                 ram_reward, variant_mnist, ws_ram, ws_ram_captioning)
from glimpse_jax.reports.runs import Run, has_results, load_run


@dataclasses.dataclass(frozen=True)
class Chapter:
  """One experiment's page of the book.

  Attributes:
    name: the page's stem (`<results>/<name>.md`) and the experiment module's name.
    title: the paper, as the page's heading.
    runs: glob of the committed workdirs, relative to the results folder.
    write: (workdirs, out markdown path, notes path or None) -> markdown.
    command: how the runs were made.
    finished: whether a workdir matching `runs` holds finished runs (default: its results.json).
    summary: the index line's (runs, seeds, wall hours) of the chapter's workdirs (default: one
      run per workdir, `_summary`).
  """

  name: str
  title: str
  runs: str
  write: Callable[[Sequence[str], str, str | None], str]
  command: str
  finished: Callable[[str], bool] = has_results
  summary: Callable[[Sequence[str]], tuple[int, list[int], float]] | None = None

  def workdirs(self, results: str) -> list[str]:
    """The chapter's finished workdirs under `results`, sorted."""
    return sorted(d for d in glob.glob(os.path.join(results, self.runs))
                  if os.path.isdir(d) and self.finished(d))


CHAPTERS = (
    Chapter('ram', ram.TITLE, 'ram/*', ram.write_report,
            'make experiment NAME=ram CONFIG=<task>'),
    Chapter('ws_ram', ws_ram.TITLE, 'ws_ram/*', ws_ram.write_report,
            'make experiment NAME=ws_ram CONFIG=<method>'),
    Chapter('ram_reward', 'Reward shaping and an LSTM locator for RAM (Brooks et al.)',
            'ram_reward/*', ram_reward.write_report,
            'make experiment NAME=ram_reward CONFIG=<method> SEEDS=3'),
    Chapter('variant_mnist',
            'Attention mechanisms for variant MNIST datasets (Wu, Xu & Lee)',
            'variant_mnist/*', variant_mnist.write_report,
            'make experiment NAME=variant_mnist CONFIG=<row> SEEDS=3'),
    Chapter('pretrain_attention', 'Pre-training attention mechanisms (Lindsey 2017)',
            'pretrain_attention/*', pretrain_attention.write_report,
            'make experiment NAME=pretrain_attention CONFIG=<method>_<dataset> SEEDS=3'),
    Chapter('ws_ram_captioning',
            'Caption generation with multi-scale attention, WS-RAM against VAR (Ba et al. 2015)',
            'ws_ram_captioning/*', ws_ram_captioning.write_report,
            'make experiment NAME=ws_ram_captioning CONFIG=<method> SEEDS=3'),
    Chapter('near_optimal_glimpses',
            'Near-optimal glimpse sequences for hard attention (Harvey, Teng & Wood)',
            'near_optimal_glimpses/*', near_optimal_glimpses.write_report,
            'make experiment NAME=near_optimal_glimpses CONFIG=<sequences|supervised|...> '
            'SEEDS=3'),
    Chapter('glimpse_bench', glimpse_bench.TITLE, 'glimpse_bench/*', glimpse_bench.write_report,
            'make bench-methods TASK=<task>', finished=glimpse_bench.has_runs,
            summary=glimpse_bench.summary),
)


def _load_run(workdir: str) -> Run:
  """A run; a pipeline's (results.json holds its `phases`) with the seed of pipeline.json's config
  (its own, else its phases' lowest) and the wall time of all its phases."""
  run = load_run(workdir)
  if 'phases' not in run.results:
    return run
  with open(os.path.join(workdir, 'pipeline.json')) as f:
    config = json.load(f)['config']
  seed = config.get('seed')  # the pipeline's seed, set in every phase when run
  if seed is None:
    seed = min(phase.get('seed', 0) for phase in config['phases'].values())
  seconds = sum(r.get('wall_seconds') or 0.0 for r in run.results['phases'].values())
  return Run(run.name, {**run.results, 'config': {'seed': seed},
                               'wall_seconds': seconds}, run.records)


def _summary(workdirs: Sequence[str]) -> tuple[int, list[int], float]:
  """(runs, their seeds, wall hours) of workdirs that are one run each."""
  runs = [_load_run(w) for w in workdirs]
  seeds = sorted({run.results['config'].get('seed', 0) for run in runs})
  return len(runs), seeds, sum(run.results.get('wall_seconds') or 0.0 for run in runs) / 3600


def write_book(results: str = 'results', chapters: Sequence[Chapter] = CHAPTERS) -> str:
  """Regenerates every chapter with runs under `results` and `results/README.md`; returns it."""
  index = [
      '# Results\n\n',
      'Every table here is generated from the committed runs by `make results` '
      '(`glimpse_jax/reports/book.py`): ours beside the paper\'s, with budgets, seeds and wall '
      'times. Each '
      'chapter ends with a note on where we agree with the paper and where not.\n\n',
      '| chapter | paper | runs | seeds | wall time (h) | made by |\n',
      '|---|---|---|---|---|---|\n',
  ]
  for chapter in chapters:
    workdirs = chapter.workdirs(results)
    if not workdirs:
      continue
    out = os.path.join(results, f'{chapter.name}.md')
    notes = os.path.join(results, f'{chapter.name}_notes.md')
    chapter.write(workdirs, out, notes if os.path.isfile(notes) else None)
    count, seeds, hours = (chapter.summary or _summary)(workdirs)
    index.append(f'| [{chapter.name}]({chapter.name}.md) | {chapter.title} | {count} | '
                 f'{", ".join(map(str, seeds))} | {hours:.1f} | `{chapter.command}` |\n')
  markdown = ''.join(index)
  with open(os.path.join(results, 'README.md'), 'w') as f:
    f.write(markdown)
  return markdown


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog='python -m glimpse_jax.reports.book',
                                   description=__doc__.splitlines()[0])
  parser.add_argument('--results', default='results', help='the folder of committed runs')
  args = parser.parse_args(argv)
  write_book(args.results)
  sys.stdout.write(f'wrote {os.path.join(args.results, "README.md")}\n')


if __name__ == '__main__':
  main()
