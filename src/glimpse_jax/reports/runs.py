"""Finished runs as the chapters read them: a workdir's results.json and metrics.jsonl."""

import dataclasses
import glob
import json
import numbers
import os
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

RESULTS_FILE, METRICS_FILE = 'results.json', 'metrics.jsonl'


@dataclasses.dataclass(frozen=True)
class Run:
  """One finished run: its name (the workdir's base name), results.json and metrics.jsonl."""

  name: str
  results: Mapping[str, Any]
  records: Sequence[Mapping[str, Any]]


def load_run(workdir: str, prefix: str = '') -> Run:
  """Reads a workdir, named `<prefix><base name>`; raises ValueError when it holds no
  results.json."""
  path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.isfile(path):
    raise ValueError(f'{workdir!r} holds no {RESULTS_FILE} (is the run finished?)')
  with open(path) as f:
    results = json.load(f)
  records = read_records(os.path.join(workdir, METRICS_FILE))
  return Run(prefix + os.path.basename(os.path.normpath(workdir)), results, records)


def read_records(path: str) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl file, one per line ([] when there is no file)."""
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def load_runs_by_name(workdirs_: Sequence[str]) -> tuple[list[Run], dict[str, str]]:
  """The runs of `workdirs_` and each one's workdir by its name; raises ValueError when two share
  a name."""
  runs = [load_run(workdir) for workdir in workdirs_]
  by_name = {}
  for run, workdir in zip(runs, workdirs_):
    if run.name in by_name:
      raise ValueError(f'two workdirs share the name {run.name!r}: {by_name[run.name]!r} and '
                       f'{workdir!r}')
    by_name[run.name] = workdir
  return runs, by_name


def check_experiment(run: Run, experiment: str) -> None:
  """Raises ValueError unless `run`'s config is of `experiment`."""
  found = run.results.get('config', {}).get('experiment')
  if found != experiment:
    raise ValueError(f'run {run.name!r} is of experiment {found!r}, not {experiment!r}')


def sort_by_seed(groups: Mapping[Any, list[Run]], method: Callable[[Any], str]) -> None:
  """Sorts each group's runs by seed; raises ValueError naming `method(key)` for a seed twice."""
  for key, members in groups.items():
    seeds = [run.results['config']['seed'] for run in members]
    if len(set(seeds)) < len(seeds):
      raise ValueError(f'method {method(key)!r} has seed {max(seeds, key=seeds.count)} twice '
                       f'among runs {[run.name for run in members]}')
    members.sort(key=lambda run: run.results['config']['seed'])


def has_results(workdir: str) -> bool:
  """Whether `workdir` holds a finished run (its results.json)."""
  return os.path.isfile(os.path.join(workdir, RESULTS_FILE))


def workdirs(results: str, pattern: str) -> list[str]:
  """The finished workdirs (holding results.json) matching glob `pattern` under `results`."""
  return sorted(d for d in glob.glob(os.path.join(results, pattern)) if has_results(d))


def is_number(value: Any) -> bool:
  """True for real numbers (Python or NumPy scalars), False for bools, None and the rest."""
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and type(value).__name__ != 'bool_')


def seed_group(name: str) -> str:
  """A run's name without its `-seed<N>` suffix: the runs of one setting over seeds."""
  return re.sub(r'-seed\d+$', '', name)


def median_grad_variance(run: Run) -> float | None:
  """The median of the run's logged gradient variances (None: none logged)."""
  values = [r['grad_variance'] for r in run.records if r.get('kind') == 'grad_variance'
            and isinstance(r.get('grad_variance'), (int, float))]
  return statistics.median(values) if values else None


def per_glimpse_values(run: Run, name: str) -> list[float]:
  """The test values `test_<name>_g1, _g2, ...` of a run, in glimpse order ([] when absent)."""
  values, t = [], 1
  while is_number(run.results.get(f'test_{name}_g{t}')):
    values.append(float(run.results[f'test_{name}_g{t}']))
    t += 1
  return values


def steps_to_leave_plateau(run: Run, level: float = 0.5) -> int | None:
  """The first logged update whose training error is below `level` (None: never)."""
  for record in run.records:
    if record.get('kind', 'train') == 'train' and is_number(record.get('error')):
      if record['error'] < level:
        return int(record['step'])
  return None
