"""Multi-phase methods: named phases run in order, each in its own workdir, by one command.

A pipeline config (`pipeline_config`) holds `pipeline`, the phase names in order, and `phases`,
one full shared config per phase. A phase's `init_from`, `frozen.<name>` and `data_from` may name
an earlier phase; the runner points them at that phase's workdir `<workdir>/<phase>`. Overrides
name the phase they touch: `--config.phases.classify.num_steps=500`; `--config.seed=3` sets every
phase's seed. Finished phases (their results.json written with the same config) are skipped, an
interrupted one resumes from its checkpoint, so a pipeline restarted after `kill -9` ends as an
uninterrupted one would. A config without `phases` is a pipeline of one run in `workdir` itself.
"""

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
from ml_collections import config_dict

from glimpse_jax import files
from glimpse_jax.train.generate import generate
from glimpse_jax.train.loop import run
from glimpse_jax.train.config import validate
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.metrics import RESULTS_FILE, read_results, write_json
from glimpse_jax.train.workdir import lock_workdir

MakeExperiment = Callable[[ml_collections.ConfigDict], Experiment]
PIPELINE_FILE = 'pipeline.json'


def pipeline_config(experiment: str,
                    phases: Sequence[tuple[str, ml_collections.ConfigDict]]
                    ) -> ml_collections.ConfigDict:
  """A pipeline of `phases` (name, shared config) in order; the caller locks it.

  Each phase's `experiment` and `phase` fields are set here.
  """
  config = ml_collections.ConfigDict()
  config.experiment = experiment
  config.seed = config_dict.placeholder(int)  # when set: every phase's seed
  config.pipeline = tuple(name for name, _ in phases)
  config.phases = ml_collections.ConfigDict()
  for name, phase in phases:
    phase.experiment, phase.phase = experiment, name
    config.phases[name] = phase
  validate_pipeline(config)
  return config


def is_pipeline(config: ml_collections.ConfigDict) -> bool:
  return 'phases' in config


def validate_pipeline(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first phase or reference that cannot work."""
  names = tuple(config.pipeline)
  if not names or len(set(names)) < len(names):
    raise ValueError(f'pipeline must name distinct phases, got {names!r}')
  if set(names) != set(config.phases.keys()):
    raise ValueError(f'pipeline {names!r} and phases {sorted(config.phases.keys())} must name '
                     f'the same phases')
  for position, name in enumerate(names):
    for field, value in _references(config.phases[name]):
      if value in names and names.index(value) >= position:
        raise ValueError(f'phases.{name}.{field}={value!r} must name an earlier phase of '
                         f'{names!r}')


def _references(phase: ml_collections.ConfigDict) -> list[tuple[str, str]]:
  """(field, value) of the fields that may name an earlier phase."""
  refs = [('init_from', phase.init_from), ('data_from', phase.data_from)]
  refs += [(f'frozen.{name}', source) for name, source in phase.frozen.items()]
  return [(field, value) for field, value in refs if value is not None]


def resolved_phases(config: ml_collections.ConfigDict,
                    workdir: str) -> list[tuple[str, ml_collections.ConfigDict, str]]:
  """(name, config, workdir) per phase in order, phase names in references replaced by workdirs."""
  workdir = files.normpath(workdir)  # 'runs/x/' and './runs/x' name one run
  if not is_pipeline(config):
    return [(config.phase or config.experiment, config, workdir)]
  validate_pipeline(config)
  names = tuple(config.pipeline)
  phases = []
  for name in names:
    phase = config.phases[name].copy_and_resolve_references()
    if config.seed is not None:
      phase.seed = config.seed
    for field, value in _references(phase):
      if value in names:
        path = os.path.join(workdir, value)
        if field.startswith('frozen.'):
          phase.frozen[field.split('.', 1)[1]] = path
        else:
          phase[field] = path
    validate(phase)
    phases.append((name, phase, os.path.join(workdir, name)))
  return phases


def is_finished(config: ml_collections.ConfigDict, workdir: str) -> bool:
  """Whether `workdir` holds the results of a run of exactly `config`."""
  if not (files.as_path(workdir) / RESULTS_FILE).exists():
    return False
  try:
    results = read_results(workdir)
  except (OSError, ValueError):
    return False
  return results.get('config') == json.loads(config.to_json_best_effort())


def run_phase(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment, *,
              devices: Sequence[jax.Device] | None = None) -> dict[str, Any]:
  """Trains or generates, as the phase's `kind` says."""
  if config.kind == 'generate':
    return generate(config, workdir, experiment, devices=devices)
  return run(config, workdir, experiment, devices=devices)


def run_pipeline(config: ml_collections.ConfigDict, workdir: str, make_experiment: MakeExperiment,
                 *, only: str | None = None,
                 devices: Sequence[jax.Device] | None = None) -> dict[str, Any]:
  """Runs every phase (or the phase `only`) in order; returns {phase: results}.

  Args:
    config: a pipeline config, or a single-phase shared config.
    workdir: the run's folder; phase `p` works in `<workdir>/p`.
    make_experiment: builds a phase's experiment from its config.
    only: run just this phase (the earlier phases it takes from must be finished).
    devices: as in `train.run`.
  """
  phases = resolved_phases(config, workdir)
  names = [name for name, _, _ in phases]
  if only is not None and only not in names:
    raise ValueError(f'phase {only!r} is not in this pipeline; choose one of: {", ".join(names)}')
  if not is_pipeline(config):
    (_, phase, phase_dir), = phases
    return {names[0]: run_phase(phase, phase_dir, make_experiment(phase), devices=devices)}

  files.as_path(workdir).mkdir(parents=True, exist_ok=True)
  chief = jax.process_index() == 0
  results = {}
  with lock_workdir(workdir):
    if chief:
      write_json(os.path.join(workdir, PIPELINE_FILE),
                 {'pipeline': names, 'config': json.loads(config.to_json_best_effort())})
    if only is not None:
      _require_finished_sources(config, phases, only)
      phases = [p for p in phases if p[0] == only]
    finished = {name: only is None and is_finished(phase, phase_dir)
                for name, phase, phase_dir in phases}
    if only is None:
      _refuse_stale_phases(config, phases, finished)
    # Every phase to run is built (its experiment's checks run) before the first one trains.
    experiments = {name: make_experiment(phase) for name, phase, _ in phases
                   if not finished[name]}
    for name, phase, phase_dir in phases:
      if finished[name]:
        if chief:
          print(f'{config.experiment}:{name}: finished earlier, skipped ({phase_dir})', flush=True)
        results[name] = read_results(phase_dir)
        continue
      results[name] = run_phase(phase, phase_dir, experiments[name], devices=devices)
    if chief and only is None:
      summary = {name: {k: v for k, v in r.items() if k != 'config'} for name, r in results.items()}
      write_json(os.path.join(workdir, RESULTS_FILE), {'pipeline': names, 'phases': summary})
  return results


def _refuse_stale_phases(config: ml_collections.ConfigDict, phases,
                         finished: dict[str, bool]) -> None:
  """Raises ValueError if a finished phase takes (directly or through others) from a phase that
  is about to train: its results were built from what that phase was before."""
  changed = set()
  for name, _, phase_dir in phases:
    sources = [(field, source) for field, source in _references(config.phases[name])
               if source in changed]
    if not sources:
      if not finished[name]:
        changed.add(name)
      continue
    if finished[name]:
      field, source = sources[0]
      raise ValueError(
          f'phase {source!r} is about to train (unfinished, or its config changed), but phase '
          f'{name!r}, which takes {field} from it, finished earlier on what {source!r} was '
          f'then: remove {phase_dir} (and the later phases that take from it) to train it '
          f'again, or run --phase={source} alone')
    changed.add(name)


def _require_finished_sources(config: ml_collections.ConfigDict, phases, only: str) -> None:
  """Raises ValueError if phase `only` takes from an earlier phase that has not finished."""
  by_name = {name: (phase, phase_dir) for name, phase, phase_dir in phases}
  for field, source in _references(config.phases[only]):
    if source in by_name and not is_finished(*by_name[source]):
      raise ValueError(f'phase {only!r} takes {field} from phase {source!r}, which has not '
                       f'finished; run the pipeline (or --phase={source}) first')
