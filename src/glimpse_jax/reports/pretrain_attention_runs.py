"""Pre-training attention's pipeline runs (experiments/pretrain_attention.py): loading a
finished pipeline workdir and naming it as the experiment's variants do."""

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from glimpse_jax.reports.runs import METRICS_FILE, RESULTS_FILE, read_records, seed_group

EXPERIMENT = 'pretrain_attention'
PIPELINE_FILE = 'pipeline.json'
SMOKE_SUFFIX = '_smoke'
DEFAULT_LEARNING_RATE = 1e-3  # the experiment's Adam rate
DEFAULT_CLIP = 5.0  # its gradient clipping norm for every phase but reconstruction
READ_NORMS = {'full': 'full-mass', 'image': 'image-normalised'}  # model.read_norm, as named


@dataclasses.dataclass(frozen=True)
class PipelineRun:
  """One finished pipeline: its workdir, configs and results per phase, and eval/train records."""

  workdir: str
  pipeline: tuple[str, ...]
  configs: Mapping[str, Mapping[str, Any]]
  results: Mapping[str, Mapping[str, Any]]
  records: Mapping[str, Sequence[Mapping[str, Any]]]

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.workdir))

  @property
  def seed(self) -> int:
    """The seed the last phase trained with (a pipeline's `--config.seed` sets every phase's when
    it runs, after pipeline.json is written)."""
    last = self.pipeline[-1]
    return (self.results.get(last, {}).get('config') or self.configs[last]).get('seed', 0)

  @property
  def wall_seconds(self) -> float:
    return sum(r.get('wall_seconds') or 0.0 for r in self.results.values())


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def load_pipeline_run(workdir: str) -> PipelineRun:
  """Reads a finished pipeline workdir; raises ValueError naming what is missing."""
  path = os.path.join(workdir, PIPELINE_FILE)
  if not os.path.isfile(path):
    raise ValueError(f'{workdir!r} holds no {PIPELINE_FILE} (not a pipeline workdir)')
  pipeline = _read_json(path)
  config = pipeline['config']
  if config.get('experiment') != EXPERIMENT:
    raise ValueError(f'run {workdir!r} is of experiment {config.get("experiment")!r}, not '
                     f'{EXPERIMENT!r}')
  names = tuple(pipeline['pipeline'])
  results, records = {}, {}
  for name in names:
    phase_dir = os.path.join(workdir, name)
    if not os.path.isfile(os.path.join(phase_dir, RESULTS_FILE)):
      raise ValueError(f'phase {name!r} of {workdir!r} holds no {RESULTS_FILE} (is the run '
                       'finished?)')
    results[name] = _read_json(os.path.join(phase_dir, RESULTS_FILE))
    records[name] = read_records(os.path.join(phase_dir, METRICS_FILE))
  return PipelineRun(workdir, names, config['phases'], results, records)


def dataset_of(run: PipelineRun) -> str:
  """'translated' or 'regular' (28x28 MNIST), from the last phase's dataset."""
  name = run.configs[run.pipeline[-1]]['dataset']['name']
  return {'translated': 'translated', 'mnist': 'regular'}.get(name, name)


def method_of(run: PipelineRun) -> str:
  """The method's name in the experiment's variants (`no_guidance`, `mimic_alpha05`, ...)."""
  phases, configs = run.pipeline, run.configs
  if 'tester' in phases:
    tested = [p for p in phases if p not in ('sequences', 'tester')]
    objectives = [configs[p]['loss']['objective'] for p in tested]
    return 'tester_' + '_'.join(objectives)
  if 'teacher' in phases:
    teacher = configs['teacher']['loss']['objective']
    method = 'mimic' if teacher == 'reconstruction' else 'bootstrap'
    alpha = configs['classify']['loss']['mimic_alpha']
    return method if alpha == 0.95 else (f'{method}_alpha05' if alpha == 0.5
                                         else f'{method}_alpha{alpha:g}')
  if 'pretrain' in phases:
    return configs['pretrain']['loss']['objective']
  return 'no_guidance'


def variant_of(run: PipelineRun) -> str:
  """The run's name without its `-seed<N>` suffix (and `pretrain_attention-` prefix)."""
  return seed_group(run.name).removeprefix(f'{EXPERIMENT}-')


def is_smoke(run: PipelineRun) -> bool:
  """Whether the run is a `_smoke` variant (`smoke` alone is reconstruction_regular_smoke)."""
  variant = variant_of(run)
  return variant == 'smoke' or variant.endswith(SMOKE_SUFFIX)


def trained_phases(run: PipelineRun) -> list[str]:
  """The phases that trained (a generate phase has no `steps`), in pipeline order."""
  return [name for name in run.pipeline if 'steps' in run.results[name]]


def _phase_label(run: PipelineRun, name: str) -> str:
  """'classify 8,000' for a trained phase, the bare name for a generate phase."""
  steps = run.results[name].get('steps')
  return name if steps is None else f'{name} {steps:,}'


def budget_of(run: PipelineRun) -> str:
  """Batches per trained phase, e.g. 'pretrain 6,000 + classify 8,000'."""
  return ' + '.join(_phase_label(run, name) for name in trained_phases(run))


def widths_of(run: PipelineRun) -> str:
  """The model column: widths, steps, the first read's span where the dataset tells them apart
  (`read_init`; on regular MNIST 'blur' is the read that configs from before `read_norm` called
  'digit'), the read's options where set (full-mass filters, per phase where phases differ;
  bounded log gamma, forget bias, the penalty on read mass off the image, per phase) and
  the last phase's learning rate and gradient clipping where they are not the module's (1e-3,
  global norm 5)."""
  config = run.configs[run.pipeline[-1]]
  model = config['model']
  text = f"hidden {model['hidden']}, T = {model['glimpses']}"
  read_init = model.get('read_init')  # absent from older configs
  older = 'read_norm' not in model  # from before 'digit' was digit-sized on 28x28
  if read_init is not None and not (dataset_of(run) == 'regular' and (
      read_init == 'blur' or (read_init == 'digit' and older))):
    text += f', first read {read_init}'
  norms = {name: run.configs[name]['model'].get('read_norm', 'image') for name in run.pipeline
           if 'model' in run.configs[name]}
  if len(set(norms.values())) > 1:  # e.g. full-mass in pre-training, Gregor's in classification
    text += ', reads ' + ', '.join(f'{READ_NORMS.get(norm, norm)} in {name}'
                                   for name, norm in norms.items())
  elif model.get('read_norm', 'image') != 'image':
    text += f", {model['read_norm']}-mass reads"
  if model.get('log_gamma_bound'):
    text += f", log gamma within ±{model['log_gamma_bound']:g}"
  if model.get('forget_bias'):
    text += f", forget bias {model['forget_bias']:g}"
  penalised = {name: phase['loss'].get('in_image_weight') for name, phase in run.configs.items()
               if phase.get('loss', {}).get('in_image_weight')}
  if penalised:
    text += ', mass off the image penalised ' + ', '.join(
        f'x{weight:g} in {name}' for name, weight in penalised.items())
  optimizer = config.get('optimizer', {})
  rate = optimizer.get('learning_rate', DEFAULT_LEARNING_RATE)
  if rate != DEFAULT_LEARNING_RATE:
    text += f', learning rate {rate:g}'
  clip = optimizer.get('grad_clip_norm', DEFAULT_CLIP)
  if optimizer.get('grad_clip_per_leaf') and clip:
    text += f', gradients clipped per variable at {clip:g}'
  elif clip != DEFAULT_CLIP:
    text += ', unclipped' if not clip else f', gradients clipped at {clip:g}'
  return text


def pretraining_steps(run: PipelineRun) -> int:
  """Batches trained before the last trained phase (pre-training or the teacher)."""
  return sum(run.results[p]['steps'] for p in trained_phases(run)[:-1])


def last_trained(run: PipelineRun) -> str:
  """The last phase that trained."""
  return trained_phases(run)[-1]


def phases_of(run: PipelineRun) -> str:
  """Every phase with its batches, e.g. 'pretrain 300, classify 2,000'; generate phases (no
  batches) by name alone."""
  return ', '.join(_phase_label(run, name) for name in run.pipeline)
