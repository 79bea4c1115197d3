"""One benchmark across the glimpse methods: the same task, the same retina, the same budget.

Usage:
  make bench-methods TASK=cluttered60            # every method, T = 2/4/6/8, 3 seeds, the CPU
  make bench-methods TASK=translated60           # budget below, into runs/glimpse_bench-<TASK>
  make bench-methods TASK=translated60_fashion   # Fashion-MNIST objects
  make bench-methods TASK=cluttered60_smoke      # every method, T = 2, seed 0, a few updates
                                                 # each (the default TASK)
  make bench-methods TASK=cluttered60_paper      # 1M updates of 128 per run, for GPU/TPU
which is `main.py --config=src/glimpse_jax/glimpse_bench.py:<TASK> --workdir=<workdir>` (WORKDIR=
chooses the folder, ARGS= adds flags). Every (method, T, seed) trains in its own workdir
`<workdir>/<method>-g<T>-seed<s>` (the CNNs, which take no glimpses, in
`<workdir>/<method>-seed<s>`; a method of several phases in `<workdir>/<run>/<phase>`), by the
experiment module that owns the method and the shared loop; the BOED design that every ram_boed
run of the task reads is trained once, in `<workdir>/boed/<phase>` (below). The benchmark is
one pipeline whose phases are those runs (`train.run_pipeline`), so a restarted benchmark skips
the finished runs and resumes the interrupted one from its checkpoint. One run alone:
PHASE=ram-g4-seed0; the seeds are the benchmark's, so leave `--config.seed` out. The chapter
(`glimpse_jax.reports.glimpse_bench`) reads the workdirs.

This module trains nothing itself and is no method: it sits above the experiments, beside the
reports (floor 5), importing each method's module by name (`glimpse_jax.experiments.<name>`), so it
is not one of `experiments/` (which never import each other). `make_experiment(config)` is the
module of the run's `config.experiment`, whose config.json therefore names that experiment
(`glimpse_jax.load_run` and the chapters read a bench run as one of their own).

Tasks (TASKS; the retina fixed per task, in one place): 60x60 canvases of 28x28 digits, cluttered
(4 pieces of 8x8 clutter, the RAM paper's) or translated, of MNIST digits, and translated
Fashion-MNIST objects. The retina is RAM's on these canvases: 12x12 patches at 3 scales, each
twice the last (12, 24, 48 px). Training canvases are drawn on the fly by the host's seeded
generator for every method but ram_boed (`dataset.sample_on_device=False`, also for RAM and
WS-RAM, whose own variants draw them in the step): at one batch size and seed every such method
sees the same canvases at every update. ram_boed trains on the task's FIXED training canvases of
`dataset.seed` 0 (`train_on_the_fly=False`, the glimpse tester's canvases; 60,000 at the CPU and
paper budgets, 64 in the smoke), as its designed sequences are stored by canvas index: at 6,000
updates of 64 it sees each canvas 6.4 times where the others see 384,000 fresh ones. The test
split is the fixed 10,000-canvas split of `dataset.seed` 0 for every method; no validation split
(no method stops early or lowers its rate on a plateau: every run trains its budget).

Methods (METHODS; each keeps its module's own optimizer, rate and schedule):
  ram            RAM, linear Gaussian locator (ram.py, REINFORCE averaged over the glimpses).
  ram_lstm       RAM with the locator's own LSTM (ram.py's `model.locator='lstm'`, the LSTM locator
                 of Brooks et al.; ram_reward.py trains it with a classifier after every glimpse,
                 which would change two things at once, so the row takes ram.py's loss).
  ws_ram_q_cv    WS-RAM + q with control variates (ws_ram.py `ws_q_cv`): 12x12 patches at one of
                 the 3 scales per glimpse (its categorical scale choice), plus its 10x10 view of
                 the whole canvas for the top layer.
  ram_center     RAM with digit-center supervision (ram.py's `loss.supervised_fraction`: a tenth
                 of the examples, as the near-optimal glimpses' stored fraction, teacher-forced
                 to the digit's center at every glimpse and trained on -log pi(center), w = 1).
                 near_optimal_glimpses.py's `supervised_center` is not used: its supervised
                 examples are those of the designed-sequence store, so it needs that pipeline.
  ram_boed       RAM supervised by near-optimal glimpse sequences designed by Bayesian
                 experimental design (near_optimal_glimpses.py `supervised_sum`): its RAM phase
                 with the task's retina, RAM's Gaussian locator (`model.locator='linear'`, std
                 0.2, as the ram row's), the designed canvases teacher-forced to their stored
                 sequence and trained on -log N(target_t; mean_t, 0.2) summed over the glimpses
                 at the authors' strength (`loss.supervision_reduction='sum'`, w = 1: B times a
                 batch mean), REINFORCE for the others, averaged over the glimpses as in the
                 ram row (`loss.reinforce_time_average`). `data_from` is the task's shared design
                 `boed/sequences`: near_optimal_glimpses' `sequences` pipeline (`design_phases`:
                 `boed/posterior`, `boed/completion`, `boed/sequences`, placed once before the
                 first ram_boed run), designing sequences of the budget's largest T on the fixed
                 training canvases with the retina's finest 12x12 patch as the window and a
                 grid of candidate centers; a run at T is supervised with each sequence's first
                 T glimpses (the greedy design is sequential: its T-prefix is the T-glimpse
                 design). Its workdir `boed/` is no run: the chapter reports its cost apart.
  draw_heuristic DRAW read (pretrain_attention.py `heuristic_translated`): T reads, heuristic
                 pre-training then classification from the grafted read.
  draw_reconstruction  the same after reconstruction pre-training.
                 DRAW's read is a DRAW_READ_SIZE x DRAW_READ_SIZE grid of Gaussian filters:
                 21 x 21 = 441 input values per glimpse against the retina's 3 x 12 x 12 = 432
                 (no N gives 432 exactly; 21 is the nearest).
  random         RAM's network on uniformly random glimpse locations (ram.py
                 `model.random_locations`): nothing to reinforce.
  oracle         RAM's network with every glimpse at the digit's center the batch carries, in
                 training and evaluation (ram.py `model.fixed_locations='center'`): nothing to
                 reinforce; with `random`, it bounds what a policy's choice of places is worth.
  cnn            the simple CNN of variant_mnist.py (`cnn_cluttered`: layer norm, dropout 0.5),
  attention_cnn  and its self-attention CNN, on the whole canvas: reference lines, no glimpses.

Budgets (BUDGETS; the same for every method of a task; DRAW's pre-training and the BOED design,
`Budget.design`, come on top):
  CPU (no suffix)  6,000 updates of batch 64 per run, a checkpoint and a 1,000-image test
                   evaluation every 1,000 updates, the whole test split at the end (10 sampled
                   paths where a method reports them); DRAW pre-training 500 (heuristic) or
                   2,000 (reconstruction) updates; T = 2, 4, 6, 8 and seeds 0, 1, 2: 9 glimpse
                   methods x 4 x 3 + 2 CNNs x 3 = 114 runs per task. Updates per second at T = 8
                   on cluttered60, measured over 300 updates on 2 CPU cores shared with other
                   training runs (load ~7): RAM 66, RAM with the LSTM locator 24, WS-RAM + q
                   23, DRAW's classification (21 x 21 reads) 5.3, the self-attention CNN 2.5,
                   the simple CNN ~2: at 6,000 updates from ~1.5 min (RAM) to ~50 min (the
                   CNNs) a run, about 10 hours a task at that load, DRAW's and the CNNs' runs
                   most of it.
                   The BOED design, once per task: the canvas posterior 20,000 updates of 64
                   and the completion model 4,000 of 32 (near_optimal_glimpses' own counts and
                   batches), then sequences of T = 8 designed for 1/60 of the 60,000 fixed
                   training canvases (1,000), 64 drawn completions a step over a 16 x 16 grid
                   of candidates, stored in chunks of 100 (resumable). Measured on the 2 shared
                   cores (nice 10, load ~4) with the design's networks: the posterior's update
                   ~120/s and the completion model's 3.7/s (~3 and ~18 min, the data pipeline
                   left out), the design 8.2 s a canvas at T = 8 (4 canvases, the compiling
                   left out): ~2.3 h for the 1,000, about 2.7 h a task in all.
  `_smoke`         4 updates of 16 per run (DRAW pre-training 2), 64 test canvases, T = 2 only
                   (every method still runs once), seed 0: 11 runs, 2 pre-training phases, the
                   BOED design's 3 (the pooled posterior and the completion model 4 updates of
                   16 each on 64 fixed canvases, sequences of T = 2 for 32 of them with 4 mean
                   completions a step over an 8 x 8 grid) and the tester's 18, all but the
                   compiling negligible. Wall time of the whole
                   command on the 2 shared cores (load ~5, nice 10): 8 min 56 s at T = 2 and 4
                   before the tester (22 phases), 5 min 54 s at T = 2 with it (28 phases: the
                   12 of the methods ~3.8 min, the tester's 16 ~2 min, XLA compiling most of
                   both; the plots hooks ~35 s of it). With JAX_DISABLE_MOST_OPTIMIZATIONS=1 and a
                   JAX_COMPILATION_CACHE_DIR (the 8 testers compile one network) in the
                   environment: 3 min 55 s. With ram_boed (34 phases), the slow test (the
                   whole smoke, its resume and the chapter): 4 min 44 s on the loaded cores
                   (load ~4, nice 10), the BOED design's 3 phases 25 s of it (posterior 8 s,
                   completion model 12 s, 32 sequences 4 s) and the ram_boed run with its
                   tester 13 s; 2 min 17 s on the 2 cores unloaded, within the 3 minutes
                   aimed at.
  `_paper`         RAM's paper budget for every method, 1M updates of 128 (papers.RAM_STEPS),
                   DRAW pre-training at Lindsey's translated counts; evaluation every 10,000;
                   the BOED design at near_optimal_glimpses' own settings (the canvas posterior
                   20,000 updates, the completion model 4,000, 64 drawn completions a step over
                   a 16 x 16 grid, a tenth of the 60,000 canvases: 6,000 sequences of T = 8,
                   ~14 h at the CPU's 8.2 s a canvas).
After every glimpse run, Lindsey's glimpse tester (`<run>/tester_record`, `<run>/tester`; the
tester section below, `glimpse_tester.py`). FLOPs per prediction and the greedy paths of every
method on the same eight test canvases are the chapter's (`reports/glimpse_bench`).
"""

import dataclasses
import importlib
import re
import types
from collections.abc import Callable

import ml_collections
from ml_collections import config_dict

from glimpse_jax import data, glimpse_tester, papers, train

EXPERIMENTS_PACKAGE = 'glimpse_jax.experiments'


# ---------------------------------------------------------------------------------------------
# Tasks: the dataset and the retina, one place.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Retina:
  """The glimpse every method of a task reads: `num_scales` patches of `glimpse_size` pixels,
  each `scale_factor` times the last."""

  glimpse_size: int
  num_scales: int
  scale_factor: int

  @property
  def values(self) -> int:
    """Input values of one glimpse (one channel)."""
    return self.num_scales * self.glimpse_size**2


@dataclasses.dataclass(frozen=True)
class Task:
  """A task: its dataset fields (over data.default_config()'s) and its retina."""

  dataset: dict
  retina: Retina


RETINA_60 = Retina(glimpse_size=12, num_scales=3, scale_factor=2)
# Every task: canvases drawn on the fly by the host's generator, the fixed test split of seed 0.
_COMMON_DATASET = dict(train_on_the_fly=True, compose_on_device=True, sample_on_device=False,
                       seed=0, validation_examples=0, train_examples=None)
TASKS = {
    'cluttered60': Task(dict(_COMMON_DATASET, name='cluttered', source='mnist', canvas_size=60,
                             num_clutter=4, clutter_size=8), RETINA_60),
    'translated60': Task(dict(_COMMON_DATASET, name='translated', source='mnist',
                              canvas_size=60), RETINA_60),
    'translated60_fashion': Task(dict(_COMMON_DATASET, name='translated', source='fashion_mnist',
                                      canvas_size=60), RETINA_60),
}
DRAW_READ_SIZE = 21  # 21 x 21 = 441 values a read, the nearest square to the retina's 432
GLIMPSES = (2, 4, 6, 8)


# ---------------------------------------------------------------------------------------------
# Budgets.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Budget:
  """What every run of a benchmark variant trains and evaluates (module doc)."""

  num_steps: int
  batch_size: int
  glimpses: tuple[int, ...]
  seeds: tuple[int, ...]
  eval_every: int
  eval_examples_during_training: int
  checkpoint_every: int
  log_every: int
  eval_examples: int | None  # test canvases; None: the whole split
  eval_batch_size: int
  mc_samples: int
  pretrain_steps: dict  # DRAW's pre-training objective -> updates
  design: 'DesignBudget'  # the shared BOED design of the ram_boed runs


@dataclasses.dataclass(frozen=True)
class DesignBudget:
  """The BOED design shared by every ram_boed run of a task (module doc): its posterior
  (`model.posterior`, `posterior_steps` updates) and completion model (`completion_steps`), both
  at `batch_size` (None: the module's own, 64 and 32), trained on `train_canvases` fixed training
  canvases (None: the whole source split), then greedy sequences designed for `fraction` of them
  with `samples` completions of the kind `completion` per step over a `grid_size`^2 grid of
  candidates, stored in chunks of `chunk_size`. The ram_boed runs train on the same canvases."""

  posterior: str
  posterior_steps: int
  completion_steps: int
  batch_size: int | None
  train_canvases: int | None
  fraction: float
  samples: int
  completion: str
  grid_size: int
  epe_batch_size: int
  chunk_size: int


BUDGETS = {
    '': Budget(num_steps=6_000, batch_size=64, glimpses=GLIMPSES, seeds=(0, 1, 2),
               eval_every=1_000, eval_examples_during_training=1_000, checkpoint_every=1_000,
               log_every=100, eval_examples=None, eval_batch_size=500, mc_samples=10,
               pretrain_steps={'heuristic': 500, 'reconstruction': 2_000},
               design=DesignBudget(posterior='canvas', posterior_steps=20_000,
                                   completion_steps=4_000, batch_size=None, train_canvases=None,
                                   fraction=1 / 60, samples=64, completion='sample', grid_size=16,
                                   epe_batch_size=1, chunk_size=100)),
    '_smoke': Budget(num_steps=4, batch_size=16, glimpses=(2,), seeds=(0,), eval_every=0,
                     eval_examples_during_training=64, checkpoint_every=0, log_every=2,
                     eval_examples=64, eval_batch_size=64, mc_samples=2,
                     pretrain_steps={'heuristic': 2, 'reconstruction': 2},
                     design=DesignBudget(posterior='pooled', posterior_steps=4,
                                         completion_steps=4, batch_size=16, train_canvases=64,
                                         fraction=0.5, samples=4, completion='mean', grid_size=8,
                                         epe_batch_size=0, chunk_size=32)),
    '_paper': Budget(num_steps=papers.RAM_STEPS, batch_size=128, glimpses=GLIMPSES,
                     seeds=(0, 1, 2), eval_every=10_000, eval_examples_during_training=1_000,
                     checkpoint_every=10_000, log_every=1_000, eval_examples=None,
                     eval_batch_size=500, mc_samples=10,
                     pretrain_steps={objective: papers.PRETRAIN_ATTENTION_STEPS[objective,
                                                                                'translated']
                                     for objective in ('heuristic', 'reconstruction')},
                     design=DesignBudget(posterior='canvas', posterior_steps=20_000,
                                         completion_steps=4_000, batch_size=None,
                                         train_canvases=None, fraction=0.1, samples=64,
                                         completion='sample', grid_size=16, epe_batch_size=1,
                                         chunk_size=512)),
}
VARIANTS = tuple(f'{task}{suffix}' for suffix in BUDGETS for task in TASKS)


# ---------------------------------------------------------------------------------------------
# Methods.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Method:
  """A method: the experiment module and variant it trains with, the fields that make it the
  method (`settings(phase config, task, T)`), whether it takes glimpses, the phase whose
  results are the method's ('' for a single-phase run), and whether it trains on the task's
  shared BOED design (`design`: its fixed canvases, its store as `data_from`)."""

  label: str
  experiment: str
  variant: str
  settings: Callable[[ml_collections.ConfigDict, Task, int], None]
  glimpses: bool = True
  result_phase: str = ''
  design: bool = False


def _ram_settings(**fields) -> Callable:
  """RAM's retina and T, then `fields` as `model.<name>` or `loss.<name>` (a dotted key)."""

  def settings(config, task, glimpses):
    r = task.retina
    config.model.update(num_glimpses=glimpses, glimpse_size=r.glimpse_size,
                        num_scales=r.num_scales, scale_factor=r.scale_factor)
    for dotted, value in fields.items():
      group, name = dotted.split('__')
      config[group][name] = value

  return settings


def _ws_ram_settings(config, task, glimpses):
  r = task.retina
  config.model.update(num_glimpses=glimpses, glimpse_size=r.glimpse_size,
                      num_scales=r.num_scales, scale_factor=r.scale_factor)
  config.paper.update(row='', test_error=None)  # not the paper's 100x100 table


def _boed_settings(config, task, glimpses):
  r = task.retina
  config.model.update(num_glimpses=glimpses, glimpse_size=r.glimpse_size,
                      num_scales=r.num_scales, scale_factor=r.scale_factor, locator='linear')
  config.loss.reinforce_time_average = True  # as the `ram` row's


def _draw_settings(config, task, glimpses):
  del task  # the read's size is DRAW_READ_SIZE on every 60x60 task
  config.model.update(read_size=DRAW_READ_SIZE, glimpses=glimpses, unroll=1)


def _cnn_settings(config, task, glimpses):
  del task, glimpses
  config.paper.update(table=0, row='', accuracy=None, test_error=None)


METHODS = {
    'ram': Method('RAM', 'ram', 'cluttered60', _ram_settings()),
    'ram_lstm': Method('RAM, LSTM locator', 'ram', 'cluttered60',
                       _ram_settings(model__locator='lstm', model__fused=False)),
    'ws_ram_q_cv': Method('WS-RAM + q + c.v.', 'ws_ram', 'ws_q_cv', _ws_ram_settings),
    'ram_center': Method('RAM, digit-center supervision', 'ram', 'cluttered60',
                         _ram_settings(model__fused=False, loss__supervised_fraction=0.1)),
    'ram_boed': Method('RAM, BOED supervision', 'near_optimal_glimpses', 'supervised_sum',
                       _boed_settings, design=True),
    'draw_heuristic': Method('DRAW, heuristic pre-training', 'pretrain_attention',
                             'heuristic_translated', _draw_settings, result_phase='classify'),
    'draw_reconstruction': Method('DRAW, reconstruction pre-training', 'pretrain_attention',
                                  'reconstruction_translated', _draw_settings,
                                  result_phase='classify'),
    'random': Method('random glimpses', 'ram', 'cluttered60',
                     _ram_settings(model__random_locations=True)),
    'oracle': Method('oracle glimpses (digit center)', 'ram', 'cluttered60',
                     _ram_settings(model__fixed_locations='center')),
    'cnn': Method('simple CNN (no glimpses)', 'variant_mnist', 'cnn_cluttered', _cnn_settings,
                  glimpses=False),
    'attention_cnn': Method('self-attention CNN (no glimpses)', 'variant_mnist',
                            'attention_cnn_cluttered', _cnn_settings, glimpses=False),
}
# The BOED design shared by every ram_boed run of a task (module doc): near_optimal_glimpses'
# `sequences` pipeline as the phases `boed/posterior`, `boed/completion`, `boed/sequences`.
DESIGN = 'boed'
DESIGN_EXPERIMENT = 'near_optimal_glimpses'
DESIGN_PHASES = ('posterior', 'completion', 'sequences')
DESIGN_STORE = f'{DESIGN}/sequences'  # the ram_boed runs' data_from
DESIGN_SEED = 0  # the design's parameters and its choice of designed canvases, for every run


def experiment_module(name: str) -> types.ModuleType:
  """The installed experiment module `name`."""
  return importlib.import_module(f'{EXPERIMENTS_PACKAGE}.{name}')


# ---------------------------------------------------------------------------------------------
# Configs.
# ---------------------------------------------------------------------------------------------
def split_variant(variant: str) -> tuple[str, str]:
  """`<task>[_smoke|_paper]` -> (task, budget suffix); ValueError naming anything else."""
  train.pick_variant(variant, VARIANTS)
  for suffix in ('_smoke', '_paper'):
    if variant.endswith(suffix):
      return variant.removesuffix(suffix), suffix
  return variant, ''


def _check(kind: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f'unknown {kind} {value!r}; choose one of: '
                     f'{", ".join(str(a) for a in allowed)}')


def run_name(method: str, glimpses: int | None, seed: int) -> str:
  """A run's workdir name: `<method>-g<T>-seed<s>`, `<method>-seed<s>` without glimpses."""
  return f'{method}-seed{seed}' if glimpses is None else f'{method}-g{glimpses}-seed{seed}'


RUN_NAME = re.compile(r'^(?P<method>[a-z0-9_]+?)(-g(?P<glimpses>\d+))?-seed(?P<seed>\d+)$')


def _task_dataset(old: ml_collections.ConfigDict, task: Task,
                  budget: Budget) -> ml_collections.ConfigDict:
  """The task's dataset fields; the module's own extra fields (e.g. `placement`) set to None,
  its data and cache folders kept."""
  dataset = data.default_config()
  dataset.update(task.dataset)
  dataset.eval_examples = budget.eval_examples
  for name in ('data_dir', 'cache_dir', 'download'):
    dataset[name] = old[name]
  for name in old.keys():
    if name not in dataset:
      dataset[name] = config_dict.placeholder(str if old[name] is None else type(old[name]))
  return dataset


def _design_dataset(old: ml_collections.ConfigDict, task: Task,
                    budget: Budget) -> ml_collections.ConfigDict:
  """The task's fixed training canvases of the BOED design (`budget.design.train_canvases`),
  keyed by index: its phases' and the ram_boed runs' dataset."""
  dataset = _task_dataset(old, task, budget)
  dataset.update(train_on_the_fly=False, train_examples=budget.design.train_canvases)
  return dataset


def _apply(config: ml_collections.ConfigDict, method: Method, task: Task, glimpses: int,
           budget: Budget, seed: int, num_steps: int) -> None:
  """Puts one phase of `method` on the task, T, budget and seed."""
  config.dataset = (_design_dataset if method.design else _task_dataset)(config.dataset, task,
                                                                         budget)
  if method.design:
    config.data_from = DESIGN_STORE
  config.update(seed=seed, batch_size=budget.batch_size, num_steps=num_steps,
                eval_every=budget.eval_every if budget.eval_every < num_steps else 0,
                eval_examples_during_training=budget.eval_examples_during_training,
                checkpoint_every=budget.checkpoint_every, log_every=budget.log_every,
                checkpoint_at=(), grad_variance_every=0)
  config.eval.update(batch_size=budget.eval_batch_size, mc_samples=budget.mc_samples,
                     splits=('test',))
  config.early_stopping.patience = 0
  config.optimizer.plateau.patience = 0
  method.settings(config, task, glimpses)


def method_config(method: str, task: str, glimpses: int | None = None, seed: int = 0,
                  budget: str = '') -> ml_collections.ConfigDict:
  """The config of `method` on `task` at T = `glimpses` (None for a method without glimpses):
  a config of the method's own experiment (a pipeline for a method of several phases), locked.

  Raises:
    ValueError: naming an unknown method, task, budget or glimpse count.
  """
  _check('method', method, METHODS)
  _check('task', task, TASKS)
  _check('budget', budget, BUDGETS)
  spec, the_task, the_budget = METHODS[method], TASKS[task], BUDGETS[budget]
  if spec.glimpses:
    _check('glimpse count T', glimpses, GLIMPSES)
  elif glimpses is not None:
    raise ValueError(f'method {method!r} takes no glimpses, got glimpses={glimpses!r}')
  config = experiment_module(spec.experiment).get_config(spec.variant)
  with config.unlocked():
    if train.is_pipeline(config):
      for name in config.pipeline:
        phase = config.phases[name]
        objective = phase.loss.get('objective', '')
        steps = the_budget.pretrain_steps.get(objective, the_budget.num_steps)
        if name == spec.result_phase:
          steps = the_budget.num_steps
        _apply(phase, spec, the_task, glimpses, the_budget, seed, steps)
    else:
      _apply(config, spec, the_task, glimpses, the_budget, seed, the_budget.num_steps)
  config.lock()
  return config


def bench_runs(variant: str) -> list[tuple[str, str, int | None, int]]:
  """(run name, method, T or None, seed) of every run of benchmark `variant`, in training
  order: seed by seed, so a benchmark cut short holds every method at the first seeds."""
  _, suffix = split_variant(variant)
  budget = BUDGETS[suffix]
  runs = []
  for seed in budget.seeds:
    for glimpses in budget.glimpses:
      runs += [(run_name(m, glimpses, seed), m, glimpses, seed)
               for m, spec in METHODS.items() if spec.glimpses]
    runs += [(run_name(m, None, seed), m, None, seed)
             for m, spec in METHODS.items() if not spec.glimpses]
  return runs


def _rename_references(phase: ml_collections.ConfigDict, names: dict[str, str]) -> None:
  """Points a pipeline phase's references to other phases (`init_from`, `data_from`, `frozen`)
  at their names in the benchmark, `names[old]` (the phase unlocked)."""
  for field in ('init_from', 'data_from'):
    if phase[field] in names:
      phase[field] = names[phase[field]]
  for frozen, source in phase.frozen.items():
    if source in names:
      phase.frozen[frozen] = names[source]


def design_phases(task: str, budget: str = '') -> list[tuple[str, ml_collections.ConfigDict]]:
  """The BOED design shared by the ram_boed runs of `task` at `budget`: near_optimal_glimpses'
  `sequences` pipeline (posterior, completion, sequences; not its test_sequences) as
  `[('boed/<phase>', config)]`, designing sequences of the budget's largest T on the task's
  fixed training canvases, the retina's finest patch as the design's window.

  Raises:
    ValueError: naming an unknown task or budget.
  """
  _check('task', task, TASKS)
  _check('budget', budget, BUDGETS)
  the_task, the_budget = TASKS[task], BUDGETS[budget]
  design, retina = the_budget.design, the_task.retina
  pipeline = experiment_module(DESIGN_EXPERIMENT).get_config('sequences')
  named = []
  for name in DESIGN_PHASES:
    phase = pipeline.phases[name].copy_and_resolve_references()
    with phase.unlocked():
      phase.dataset = _design_dataset(phase.dataset, the_task, the_budget)
      phase.update(seed=DESIGN_SEED, eval_every=0, checkpoint_at=(), grad_variance_every=0,
                   eval_examples_during_training=the_budget.eval_examples_during_training,
                   log_every=the_budget.log_every)
      phase.model.update(glimpse_size=retina.glimpse_size, num_scales=1,
                         num_glimpses=max(the_budget.glimpses), grid_size=design.grid_size,
                         posterior=design.posterior)
      phase.design.update(samples=design.samples, completion=design.completion,
                          epe_batch_size=design.epe_batch_size)
      phase.early_stopping.patience = 0
      phase.optimizer.plateau.patience = 0
      if phase.kind == 'generate':
        phase.generate.update(fraction=design.fraction, chunk_size=design.chunk_size)
      else:
        phase.num_steps = (design.posterior_steps if name == 'posterior'
                           else design.completion_steps)
        phase.checkpoint_every = min(the_budget.checkpoint_every, phase.checkpoint_every)
        if design.batch_size is not None:
          phase.batch_size = design.batch_size
        phase.eval.update(batch_size=the_budget.eval_batch_size, splits=('test',))
      _rename_references(phase, {n: f'{DESIGN}/{n}' for n in pipeline.pipeline})
    phase.lock()
    named.append((f'{DESIGN}/{name}', phase))
  return named


# ---------------------------------------------------------------------------------------------
# The glimpse tester: glimpse quality, independent of the classifier (glimpse_tester.py).
# ---------------------------------------------------------------------------------------------
# After every glimpse run, two phases in `<workdir>/<run>/`: `tester_record` stores the frozen
# run's greedy locations on the task's fixed training canvases (dataset seed 0, the same for
# every method: the runs' own canvases, drawn on the fly, are never kept), and `tester` trains
# one network, the same for every method and T (glimpse_tester.MODEL: RAM's glimpse network, an
# LSTM core of 128, the classifier), forced to those locations, reading the task's retina; it is
# tested at the run's locations on the test split. Its test error (`<run>/tester/results.json`,
# the chapter's tester column) measures where a method looks, not how it reads: DRAW's reads
# enter by their centers only (not their stride, sigma or intensity), WS-RAM's by its locations
# (all the retina's scales are read, not the one it chose). Random glimpses and the oracle
# (the digit's center at every glimpse, recorded from the canvas, as the oracle's predict needs
# the centers: any run with `model.fixed_locations='center'`) bound it.
# Budgets (TESTER_BUDGETS, the same for every method of a variant):
#   CPU (no suffix)  2,500 updates of 64 over the 60,000 fixed training canvases of the source
#                    split (2.7 epochs), the whole test split at the end. Measured on cluttered60
#                    at T = 8, nice 10 on the 2 cores shared with other training (tested: a RAM
#                    run of 300 updates): recording 60,000 canvases 21 s, the tester 67 s (~50
#                    updates/s), about 1.5 min per glimpse run, so ~2 h more per task at 3 seeds;
#                    building the fixed split, once per task, ~10 s. Its test error 38.4%; over
#                    10,000 canvases (16 epochs) the tester overfits: 8% training, 48.5% test.
#   `_smoke`         4 updates of 16 over 64 fixed canvases, the smoke's 64 test canvases
#                    (~17 s a glimpse run, nearly all compiling).
#   `_paper`         10,000 updates of 128 (Lindsey's tester's 10,000 batches) over the same
#                    60,000 canvases.
TESTER_BUDGETS = {
    '': glimpse_tester.TesterBudget(num_steps=2_500, batch_size=64, train_canvases=None,
                                    checkpoint_every=500, log_every=100),
    '_smoke': glimpse_tester.TesterBudget(num_steps=4, batch_size=16, train_canvases=64,
                                          checkpoint_every=0, log_every=2),
    '_paper': glimpse_tester.TesterBudget(num_steps=10_000, batch_size=128, train_canvases=None,
                                          checkpoint_every=1_000, log_every=1_000),
}
TESTER_PHASES = (glimpse_tester.RECORD, glimpse_tester.TESTER)


def tester_source(config: ml_collections.ConfigDict) -> str:
  """Where a run's tested locations come from: 'center' for a run glimpsing at the digit's
  center (`model.fixed_locations='center'`, the oracle, whose predict needs the centers),
  else 'predict'."""
  last = config.phases[config.pipeline[-1]] if train.is_pipeline(config) else config
  return 'center' if last.model.get('fixed_locations') == 'center' else 'predict'


def tester_phases(run: str, method: str, task: str, glimpses: int, seed: int, suffix: str = '',
                  config: ml_collections.ConfigDict | None = None
                  ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """The `<run>/tester_record` and `<run>/tester` phases of the glimpse run `run` of `method`
  (its result phase frozen as the tested run); `config`: the run's `method_config`, if built."""
  if config is None:
    config = method_config(method, task, glimpses, seed, suffix)
  result_phase = METHODS[method].result_phase
  source = tester_source(config)
  tested = None if source == 'center' else (f'{run}/{result_phase}' if result_phase else run)
  retina, budget = TASKS[task].retina, BUDGETS[suffix]
  phases = glimpse_tester.phase_configs(
      task_dataset=TASKS[task].dataset, glimpses=glimpses,
      retina=(retina.glimpse_size, retina.num_scales, retina.scale_factor),
      budget=TESTER_BUDGETS[suffix], seed=seed, run=tested, source=source,
      eval_examples=budget.eval_examples, eval_batch_size=budget.eval_batch_size)
  named = []
  for name, phase in phases:
    if phase.kind == 'train':
      phase.data_from = f'{run}/{glimpse_tester.RECORD}'
    named.append((f'{run}/{name}', phase))
  return named


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The benchmark of variant `arg` (one of VARIANTS; default `cluttered60_smoke`): a pipeline
  whose phases are the runs (`<run>`, or `<run>/<phase>` for a method of several phases), each
  glimpse run followed by its tester's phases (`<run>/tester_record`, `<run>/tester`)."""
  task, suffix = split_variant(arg or 'cluttered60_smoke')
  phases, experiments = [], {}
  for run, method, glimpses, seed in bench_runs(arg or 'cluttered60_smoke'):
    if METHODS[method].design and not any(name.startswith(f'{DESIGN}/') for name, _ in phases):
      for name, phase in design_phases(task, suffix):  # once, before the first ram_boed run
        phases.append((name, phase))
        experiments[name] = DESIGN_EXPERIMENT
    config = method_config(method, task, glimpses, seed, suffix)
    experiment = METHODS[method].experiment
    if not train.is_pipeline(config):
      phases.append((run, config.copy_and_resolve_references()))
      experiments[run] = experiment
    else:
      names = {name: f'{run}/{name}' for name in config.pipeline}
      for name in config.pipeline:
        phase = config.phases[name].copy_and_resolve_references()
        with phase.unlocked():
          _rename_references(phase, names)
        phases.append((names[name], phase))
        experiments[names[name]] = experiment
    if glimpses is not None:
      for name, phase in tester_phases(run, method, task, glimpses, seed, suffix, config):
        phases.append((name, phase))
        experiments[name] = glimpse_tester.EXPERIMENT
  bench = train.pipeline_config('glimpse_bench', phases)
  for name, experiment in experiments.items():
    bench.phases[name].experiment = experiment  # the run's own module trains and reads it
  bench.lock()
  return bench


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The experiment of one run: its own module's (`config.experiment`), or a tester phase's
  (`glimpse_tester`)."""
  if config.experiment == 'glimpse_bench':
    raise ValueError('experiment glimpse_bench is a pipeline of other experiments\' runs; '
                     'train it with train.run_pipeline, which builds each phase')
  if config.experiment == glimpse_tester.EXPERIMENT:
    return glimpse_tester.make_experiment(config)
  return experiment_module(config.experiment).make_experiment(config)
