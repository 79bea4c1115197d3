"""The shared training loop: `run(config, workdir, experiment) -> results`.

One process per host; every local device trains data-parallel. The loop never names an
experiment: everything method-specific comes from the `Experiment`'s functions and the config.
Start-up (`_start`: batches, jitted steps, the initial state) comes apart from the loop (`_Run`),
whose body asks one pure function what is due after each update (`Timetable.due`).
"""

import contextlib
import dataclasses
import functools
import itertools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from glimpse_jax import data, files
from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train import metrics as metrics_lib
from glimpse_jax.train import step as step_lib
from glimpse_jax.train.checkpoint import Checkpointer, load_params
from glimpse_jax.train.config import validate
from glimpse_jax.train.evaluate import batches_for, evaluate
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.metrics import ConsoleReporter, MetricsWriter
from glimpse_jax.train.mesh import DevicePrefetcher
from glimpse_jax.train.state import TrainState, abstract_state, count_params, create_state
from glimpse_jax.train.state import make_optimizer, plateau_rule, plateau_scale
from glimpse_jax.train.params import graft
from glimpse_jax.train.sources import load_frozen, open_training_store
from glimpse_jax.train.stopping import EarlyStopping, StopRequests
from glimpse_jax.train.workdir import lock_workdir


def run(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment, *,
        devices: Sequence[jax.Device] | None = None) -> dict[str, Any]:
  """Trains `experiment` as `config` says, resuming from `workdir` if it holds a checkpoint.

  Writes config.json, metrics.jsonl, checkpoints/, results.json, learning_curve.png and the
  experiment's plots into `workdir`, which no other run may use meanwhile (it is locked).

  Args:
    config: a validated shared config (see `base_config`) filled by the experiment; its
      `init_from`, `frozen` and `data_from` name workdirs (a pipeline resolves phase names).
    workdir: the run's folder; created if missing.
    experiment: the method's functions.
    devices: train on these devices (default: all of them).

  Returns:
    The contents of results.json.

  Raises:
    FloatingPointError: some update produced a NaN or infinite loss, metric or gradient norm;
      the last checkpoint is the last good state.
    WorkdirBusyError: another run holds `workdir`.
  """
  validate(config)
  if config.kind != 'train':
    raise ValueError(f"train.run trains; a kind={config.kind!r} phase runs with train.generate")
  experiment.require('init', 'loss', 'evaluate')
  mesh = mesh_lib.make_data_mesh(devices)
  for name in ('batch_size', 'eval.batch_size'):
    size = config.batch_size if name == 'batch_size' else config.eval.batch_size
    if size % mesh.size:
      raise ValueError(f'{name} must be divisible by the {mesh.size} training devices, got {size}')
  with lock_workdir(workdir):
    loop, state = _start(config, workdir, experiment, mesh)
    return loop.run(state)


# Updates between the agreements on a stop signal in a multi-process run (each one waits for the
# updates queued before it; the loop's own fetches are as frequent at log_every=100).
SIGNAL_CHECK_EVERY = 100


# ---------------------------------------------------------------------------------------------
# What is due after an update.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Due:
  """What the loop does after the update that brings the state to step `done`. Early stopping
  is decided by this step's evaluation, so it is not known beforehand."""
  log: bool  # a log interval ends: its metric sums are written
  evaluate: bool  # a periodic evaluation (after the last update the final one follows instead)
  save: bool  # a checkpoint
  signal: int | None  # stop for this signal once saved

  @property
  def sync(self) -> bool:
    """Whether the queued updates are awaited now: a state evaluated or saved must come from
    finite updates only."""
    return self.save or self.evaluate


@dataclasses.dataclass(frozen=True)
class Timetable:
  """Every how many updates the loop logs, evaluates, saves, measures the gradient variance and
  agrees on a stop signal (0: never, but at the last step for logs and saves)."""
  num_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  checkpoint_at: frozenset[int]  # saved besides
  grad_variance_every: int
  signal_every: int  # 1 for one process; SIGNAL_CHECK_EVERY when several must agree

  @classmethod
  def of(cls, config: ml_collections.ConfigDict, process_count: int) -> 'Timetable':
    return cls(config.num_steps, config.log_every, config.eval_every, config.checkpoint_every,
               frozenset(config.checkpoint_at), config.grad_variance_every,
               1 if process_count == 1 else SIGNAL_CHECK_EVERY)

  def measures_variance(self, step: int) -> bool:
    """Whether the gradient variance is measured at the state of step `step`, before its update."""
    return bool(self.grad_variance_every) and step % self.grad_variance_every == 0

  def checks_signal(self, done: int) -> bool:
    """Whether the processes agree on a stop signal after update `done`. Every process calls the
    agreement (a collective) at these steps, so all of them save the same step and stop."""
    return done == self.num_steps or done % self.signal_every == 0

  def due(self, done: int, signum: int | None = None) -> Due:
    """What is due after update `done`; `signum`: the signal agreed on there, if any."""
    last = done == self.num_steps
    every = lambda period: bool(period) and done % period == 0
    return Due(log=last or every(self.log_every),
               evaluate=not last and every(self.eval_every),
               save=(last or signum is not None or done in self.checkpoint_at
                     or every(self.checkpoint_every)),
               signal=signum)


# ---------------------------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------------------------
class _Clock:
  """Wall time per log interval, leaving out evaluation and checkpointing."""

  def __init__(self):
    self.start = self._last = time.perf_counter()
    self._paused = 0.0
    self.intervals: list[tuple[int, float]] = []  # (steps, seconds)

  def interval(self, steps: int) -> float:
    now = time.perf_counter()
    seconds = max(now - self._last - self._paused, 1e-9)
    self._last, self._paused = now, 0.0
    self.intervals.append((steps, seconds))
    return seconds

  @contextlib.contextmanager
  def paused(self):
    start = time.perf_counter()
    yield
    self._paused += time.perf_counter() - start

  def carry(self, seconds: float) -> None:
    """Counts `seconds` of earlier calls (a resumed run's time before its checkpoint) as
    elapsed."""
    self.start -= seconds

  def steps_per_second(self) -> float | None:
    """Training speed over the run, leaving out the first interval (compilation) if possible."""
    timed = self.intervals[1:] or self.intervals
    return sum(s for s, _ in timed) / sum(t for _, t in timed) if timed else None


# ---------------------------------------------------------------------------------------------
# Start-up: batches, jitted steps, the initial state.
# ---------------------------------------------------------------------------------------------
def _logged_steps_per_second(records: list[dict[str, Any]]) -> float | None:
  """Mean training speed over logged intervals, leaving out the first (compilation)."""
  intervals = [(b['step'] - a['step'], b['steps_per_second'])
               for a, b in zip(records, records[1:]) if b['step'] > a['step']]
  if not intervals:
    return None
  return sum(n for n, _ in intervals) / sum(n / speed for n, speed in intervals)


def _logged_wall_seconds(records: list[dict[str, Any]]) -> float:
  """The run's wall time logged at the last training record of `records` (0 if none): what a
  call resuming after them carries."""
  logged = [r['wall_seconds'] for r in records if r['kind'] == 'train' and 'wall_seconds' in r]
  return float(logged[-1]) if logged else 0.0


class _Batches:
  """The run's batches. Canvases drawn on the fly are drawn inside the jitted step from the
  device's digit pool (`dataset.sample_on_device`), else arrive as recipes and are composed there:
  `prepare(batch, step)` maps the update's batch argument to the experiment's batch."""

  def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh):
    self.config, self.mesh = config, mesh
    self.sharding = mesh_lib.batch_sharding(mesh)
    self.process = dict(process_index=jax.process_index(), process_count=jax.process_count())
    self.sampler = data.device_sampler(config.dataset, config.batch_size, seed=config.seed)
    if self.sampler is not None:
      self.pool = mesh_lib.put_replicated(self.sampler.pool, mesh)
      self.prepare = lambda pool, step: jax.lax.with_sharding_constraint(
          self.sampler.sample(pool, step), self.sharding)
    else:
      compose = data.composer(config.dataset)
      self.prepare = lambda batch, step: compose(batch)
    self.join = (open_training_store(config.data_from, config.dataset) if config.data_from
                 else None)
    if self.join is not None and self.sampler is not None:
      raise ValueError(
          f'data_from={config.data_from!r} joins stored fields by example index, which canvases '
          'drawn on the device do not have: set dataset.train_on_the_fly=False')

  def _train_stream(self, start_step: int):
    return data.train_stream(self.config.dataset, self.config.batch_size, seed=self.config.seed,
                             start_step=start_step, join=self.join, recipes=True, **self.process)

  def train_batches(self, start_step: int):
    """A context manager over the batches the update takes from `start_step` on: the prefetched
    training stream, or, when canvases are drawn in the step, the device's digit pool every time
    (the update draws from it by its own `state.step`)."""
    if self.sampler is not None:
      return contextlib.nullcontext(itertools.repeat(self.pool))
    return DevicePrefetcher(self._train_stream(start_step), self.sharding)

  def eval_batches(self, split: str):
    return data.eval_batches(self.config.dataset, self.config.eval.batch_size, split=split,
                             **self.process)

  def examples(self) -> tuple[dict[str, jax.ShapeDtypeStruct], dict[str, np.ndarray]]:
    """The update's batch argument as abstract arrays, and a batch as `init` sees it."""
    replicated = mesh_lib.replicated(self.mesh)
    if self.sampler is not None:
      return ({name: jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=replicated)
               for name, value in self.pool.items()},
              mesh_lib.fetch(jax.jit(self.sampler.sample, out_shardings=replicated)(self.pool, 0)))
    arriving = next(self._train_stream(0))
    return ({name: jax.ShapeDtypeStruct((self.config.batch_size, *value.shape[1:]), value.dtype,
                                        sharding=self.sharding)
             for name, value in arriving.items()},
            jax.tree.map(np.asarray, self.prepare(arriving, 0)))


def _start(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment,
           mesh: Mesh) -> tuple['_Run', TrainState]:
  """Everything before the first update: keys, optimizer, batches, jitted steps, frozen models,
  the initial state, and the records and early-stopping count a resumed run keeps."""
  chief = jax.process_index() == 0
  init_key, train_key, eval_key, variance_key = jax.random.split(jax.random.key(config.seed), 4)
  tx, learning_rate = make_optimizer(config.optimizer, config.num_steps)
  float(learning_rate(0))  # its first call compiles (~0.2 s on CPU): not in a timed interval
  batches = _Batches(config, mesh)
  plateau = config.optimizer.plateau
  steps = step_lib.make_steps(experiment, mesh, config.grad_variance_draws,
                              plateau_rule(plateau) if plateau.patience else None, batches.prepare)
  frozen = load_frozen(config, experiment, mesh)
  checkpointer = Checkpointer(workdir, config.keep_checkpoints,
                              keep_steps=tuple(config.checkpoint_at))
  clock, console = _Clock(), ConsoleReporter(config.num_steps, enabled=chief)
  try:
    state, origin, abstract_batch = _initial_state(config, workdir, experiment, tx, batches,
                                                   frozen, checkpointer, init_key)
  except BaseException:
    checkpointer.close()
    raise
  start_step = int(state.step)
  writer = MetricsWriter(workdir, resume_step=start_step, enabled=chief)
  clock.carry(_logged_wall_seconds(writer.kept))
  stopping = EarlyStopping(config.early_stopping, config.headline)
  for record in writer.kept:
    if record['kind'] == 'eval':
      stopping.update(record)
  if chief:
    metrics_lib.write_config(workdir, config)
  loop = _Run(config=config, workdir=workdir, experiment=experiment, mesh=mesh, chief=chief,
              batches=batches, abstract_batch=abstract_batch, steps=steps, frozen=frozen,
              learning_rate=learning_rate, train_key=mesh_lib.put_replicated(train_key, mesh),
              eval_key=eval_key, variance_key=variance_key, checkpointer=checkpointer,
              writer=writer, console=console, clock=clock, stopping=stopping,
              start_step=start_step, origin=origin)
  return loop, state


def _initial_state(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment,
                   tx: optax.GradientTransformation, batches: _Batches, frozen: Any,
                   checkpointer: Checkpointer, init_key: jax.Array
                   ) -> tuple[TrainState, str, dict[str, jax.ShapeDtypeStruct]]:
  """The workdir's checkpoint, else config.init_from's parameters, else scratch; where it came
  from, and the update's batch argument as abstract arrays."""
  mesh, replicated = batches.mesh, mesh_lib.replicated(batches.mesh)
  abstract_batch, example = batches.examples()
  abstract = abstract_state(experiment, tx, init_key, example, replicated)
  _check_evaluate(config, experiment, batches, frozen, abstract)
  try:
    state = checkpointer.restore(abstract)
  except Exception as error:  # orbax names shapes, not the config field that changed them
    raise ValueError(
        f'{workdir}: cannot resume from its checkpoint at step {checkpointer.latest_step()} '
        f'({type(error).__name__}: {error}); {_changes_since_saved(config, workdir)}; use '
        'another workdir for another model') from error
  if state is not None:
    if int(state.step) > config.num_steps:
      raise ValueError(f'num_steps={config.num_steps}, but {workdir} holds a checkpoint at step '
                       f'{int(state.step)}: raise num_steps or use another workdir')
    return state, f'resumed from step {int(state.step)}', abstract_batch
  params, origin = None, 'from scratch'
  source = config.init_from
  if source is not None:
    subtrees = tuple(config.init_subtrees) or ('',)
    try:
      restored = load_params(source)
    except Exception as error:
      raise ValueError(f'init_from={source!r}: cannot restore parameters ({error})') from error
    fresh = jax.jit(experiment.init)(init_key, example)
    params = mesh_lib.put_replicated(  # restored on one device: to every device of the mesh
        graft(fresh, restored, subtrees, source_name=f'init_from={source!r}'), mesh)
    origin = f'{", ".join(config.init_subtrees) or "parameters"} from {source}'
  return (create_state(experiment, tx, init_key, example, replicated, params), origin,
          abstract_batch)


def _trace(config: ml_collections.ConfigDict, frozen: Any, fn, *args) -> Any:
  """`jax.eval_shape(fn, *args)`; a failure names the frozen models when there are any (a
  teacher of another shape fails here, before training)."""
  try:
    return jax.eval_shape(fn, *args)
  except Exception as error:
    if frozen is None:
      raise
    sources = ', '.join(f'frozen.{name}={path!r}' for name, path in config.frozen.items())
    raise ValueError(f'the step fails with the frozen models {sources} (is each the model '
                     f'this phase expects?): {type(error).__name__}: {error}') from error


def _changes_since_saved(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The config fields that differ from the workdir's config.json, as text."""
  try:
    saved = _flatten(json.loads((files.as_path(workdir) / metrics_lib.CONFIG_FILE).read_text()))
  except (OSError, ValueError):
    return 'the workdir holds no readable config.json to compare with'
  now = _flatten(json.loads(config.to_json_best_effort()))
  changed = [f'{key}: {saved.get(key, "(absent)")!r} -> {now.get(key, "(absent)")!r}'
             for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]
  return ('config changes since it was saved: ' + ', '.join(changed) if changed
          else 'the config is the one it was saved with')


def _check_evaluate(config: ml_collections.ConfigDict, experiment: Experiment, batches: _Batches,
                    frozen: Any, abstract: TrainState) -> None:
  """Traces `evaluate` once so a missing headline or a wrong shape fails before training."""
  example = next(batches.eval_batches(config.eval.splits[0]))
  batch = {name: jax.ShapeDtypeStruct(value.shape, value.dtype)
           for name, value in example.items()}
  sums = _trace(
      config, frozen,
      lambda p, b, f: step_lib.eval_step(experiment.evaluate, p, b, jax.random.key(0), f),
      abstract.params, batch, frozen)
  if config.headline not in sums:
    raise ValueError(f'headline={config.headline!r}: experiment.evaluate returns only '
                     f'{sorted(set(sums) - {"examples"})}')
  for name, watcher in (('early_stopping', config.early_stopping),
                        ('optimizer.plateau', config.optimizer.plateau)):
    if watcher.patience and (watcher.metric or config.headline) not in sums:
      raise ValueError(f'{name}.metric={watcher.metric!r}: experiment.evaluate returns only '
                       f'{sorted(set(sums) - {"examples"})}')


# ---------------------------------------------------------------------------------------------
# One run.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Run:
  """One call to `run` once started: trains, evaluates, saves and reports. The train state is
  passed along, never kept here: each update donates its buffers."""
  config: ml_collections.ConfigDict
  workdir: str
  experiment: Experiment
  mesh: Mesh
  chief: bool  # the first process: it writes the workdir's files and the console
  batches: _Batches
  abstract_batch: dict[str, jax.ShapeDtypeStruct]  # the update's batch argument
  steps: step_lib.Steps
  frozen: Any  # the frozen models' parameters, or None
  learning_rate: Callable[[int], Any]
  train_key: jax.Array  # replicated
  eval_key: jax.Array
  variance_key: jax.Array
  checkpointer: Checkpointer
  writer: MetricsWriter
  console: ConsoleReporter
  clock: _Clock
  stopping: EarlyStopping
  start_step: int
  origin: str  # where the initial state came from
  # Gradient variances measured since the last log, (step, device values): written with it.
  variances: list[tuple[int, Any]] = dataclasses.field(default_factory=list)

  def run(self, state: TrainState) -> dict[str, Any]:
    config = self.config
    self.console.line(
        f'{config.experiment}{":" + config.phase if config.phase else ""}: '
        f'{count_params(state.params):,} parameters, '
        f'{self.mesh.size} x {jax.devices()[0].device_kind}, {self.origin}, '
        f'{config.num_steps} steps of {config.batch_size}')
    try:
      with StopRequests() as stop:
        if self.stopping.stopped:
          self.console.line(f'stopped early at step {self.start_step} ({self.stopping.reason})')
        elif self.start_step < config.num_steps:
          state = self._train(state, stop)
      self.checkpointer.wait()
      return self._finish(state)
    finally:
      self.console.close()
      self.checkpointer.close()
      self.writer.close()

  # -------------------------------------------------------------------------------------------
  # Training.
  # -------------------------------------------------------------------------------------------
  def _train(self, state: TrainState, stop: StopRequests) -> TrainState:
    """Updates `state` (each update donates its buffers) to num_steps, or until an evaluation
    stops the run early or a signal does (saved, then raised); returns the last state."""
    timetable = Timetable.of(self.config, jax.process_count())
    new_accumulator = self._accumulators(state)
    acc, late = new_accumulator(), None  # late: a log interval fetched after the next update
    self.console.start(self.start_step)
    with self.batches.train_batches(self.start_step) as batches:
      for step in range(self.start_step, self.config.num_steps):
        batch = next(batches)
        if timetable.measures_variance(step):
          rng = jax.random.fold_in(self.variance_key, step)
          self.variances.append((step, self.steps.grad_variance(state, batch, rng, self.frozen)))
        state, acc = self.steps.update(state, acc, batch, self.train_key, self.frozen)
        done = step + 1
        if late is not None:  # fetching it waits for the update before the one just queued
          self._report(*late)
          late = None
        due = timetable.due(done, stop.agree() if timetable.checks_signal(done) else None)
        # Log: an interval's sums are fetched one update late, or at once before the state is
        # evaluated or saved, which must come from finite updates only.
        if due.log:
          interval, acc = (done, acc), new_accumulator()
          if due.sync:
            self._report(*interval)
          else:
            late = interval
        elif due.sync:
          self._raise_if_bad(mesh_lib.fetch({'first_bad_step': acc['first_bad_step'],
                                             'bad': acc['bad']}))
        if due.evaluate:
          state = self._evaluate_while_training(state, done)
        if due.save or self.stopping.stopped:  # the state an early stop ends with is saved too
          self._save(state, done)
        if self.stopping.stopped:
          self.console.line(f'stopped early after step {done} ({self.stopping.reason})')
          break
        if due.signal is not None:
          self.checkpointer.wait()
          self.console.line(f'stopped by signal {due.signal} after step {done}; saved')
          stop.raise_for_signal(due.signal)
    self.console.close()
    return state

  def _accumulators(self, state: TrainState) -> Callable[[], dict[str, Any]]:
    """A maker of empty metric sums on the devices, for the metrics the update returns."""
    metric_names = sorted(_trace(
        self.config, self.frozen,
        functools.partial(step_lib.train_step, prepare=self.batches.prepare), state,
        self.abstract_batch, self.train_key, self.frozen)[1])
    fresh = jax.tree.map(np.array, step_lib.init_accumulator(metric_names))  # host copies
    return lambda: mesh_lib.put_replicated(fresh, self.mesh)

  def _evaluate_while_training(self, state: TrainState, done: int) -> TrainState:
    """A periodic evaluation; unless it stops the run early (a rate reduced then is never used),
    the learning-rate plateau rule (if any) hears its value of the rule's metric."""
    by_split = self._evaluate(state.params, done, self.config.eval_examples_during_training)
    plateau = self.config.optimizer.plateau
    if self.stopping.stopped or not plateau.patience:
      return state
    metric = plateau.metric or self.config.headline
    value = by_split[plateau.split][metric]
    opt_state = self.steps.report_plateau(state.opt_state, np.float32(value))
    scale = plateau_scale(opt_state)
    self.writer.write('plateau', done, {'split': plateau.split, metric: value, 'scale': scale})
    return state.replace(opt_state=opt_state)

  def _report(self, done: int, acc: dict[str, Any]) -> None:
    """Fetches an interval's sums (blocking until its last update ran), checks and logs them."""
    acc = mesh_lib.fetch(acc)
    self._raise_if_bad(acc)
    steps = int(acc['count'])
    seconds = self.clock.interval(steps)
    values = {name: float(total) / steps for name, total in acc['sum'].items()}
    values.update(
        learning_rate=float(self.learning_rate(done - 1)),
        steps_per_second=steps / seconds,
        images_per_second=self.config.batch_size * steps / seconds,
        wall_seconds=time.perf_counter() - self.clock.start)
    self.console.train(self.writer.write('train', done, values))
    for step, variance in self.variances:
      self.writer.write('grad_variance', step, {k: float(v) for k, v in
                                                mesh_lib.fetch(variance).items()})
    self.variances = []

  def _raise_if_bad(self, acc: dict[str, Any]) -> None:
    """Raises FloatingPointError naming the first update and metrics that were not finite."""
    step = int(acc['first_bad_step'])
    if step >= 0:
      self.checkpointer.wait()
      names = sorted(name for name, bad in acc['bad'].items() if bad)
      raise FloatingPointError(
          f'non-finite {", ".join(names)} at step {step} (the update from step {step} to '
          f'{step + 1}); training stopped, the last good state is checkpoint '
          f'{self.checkpointer.latest_step()} in {self.checkpointer.directory}')

  def _save(self, state: TrainState, done: int) -> None:
    with self.clock.paused():
      self.writer.flush()  # the records up to a checkpoint are in the workdir before it is
      self.checkpointer.save(state, done, {'experiment': self.config.experiment})

  def _evaluate(self, params: Any, done: int, max_examples: int,
                final: bool = False) -> dict[str, dict[str, float]]:
    """Means of `evaluate` on every split of `eval.splits` (each logged as an 'eval' record;
    `final` marks the evaluation after training, which early stopping does not count)."""
    by_split = {}
    with self.clock.paused():
      for split in self.config.eval.splits:
        means = evaluate(self.steps.evaluate, params, self.batches.eval_batches(split),
                         self.batches.sharding, jax.random.fold_in(self.eval_key, done),
                         max_batches=batches_for(max_examples, self.config.eval.batch_size),
                         frozen=self.frozen)
        record = self.writer.write('eval', done, {'split': split, **means,
                                                  'full': not max_examples, 'final': final})
        self.console.eval(record)
        self.stopping.update(record)
        by_split[split] = means
    return by_split

  # -------------------------------------------------------------------------------------------
  # The end: a full evaluation of every split, results.json, learning curve and the plots.
  # -------------------------------------------------------------------------------------------
  def _finish(self, state: TrainState) -> dict[str, Any]:
    config = self.config
    steps = int(state.step)
    by_split = self._evaluate(state.params, steps, 0, final=True)
    steps_per_second = self.clock.steps_per_second()
    if steps_per_second is None:  # this call trained no step: the speed its earlier calls logged
      steps_per_second = _logged_steps_per_second(
          [r for r in self.writer.kept if r['kind'] == 'train'])
    headline_split = 'test' if 'test' in by_split else config.eval.splits[0]
    results = {
        **{f'{split}_{name}': value for split, means in by_split.items()
           for name, value in means.items()},
        'headline': config.headline,
        'headline_split': headline_split,
        'headline_value': by_split[headline_split][config.headline],
        'steps': steps,
        'start_step': self.start_step,
        'wall_seconds': time.perf_counter() - self.clock.start,
        'steps_per_second': steps_per_second,
        'images_per_second': steps_per_second and steps_per_second * config.batch_size,
        'num_params': count_params(state.params),
        'devices': f'{self.mesh.size} x {jax.devices()[0].device_kind}',
        **self.stopping.summary(),
        'config': json.loads(config.to_json_best_effort()),
    }
    if self.chief:
      self.writer.flush()  # the learning curve reads metrics.jsonl
      metrics_lib.write_results(self.workdir, results)
      self.console.line(f'{headline_split} {config.headline} {results["headline_value"]:.4f} on '
                        f'{by_split[headline_split]["examples"]} examples; results.json written')
      metrics_lib.write_plots(self.workdir, self.experiment, mesh_lib.fetch(state.params),
                              config, jax.random.fold_in(self.eval_key, steps + 1))
    return results


def _flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} of a nested dict."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  return {key: value for name, child in tree.items()
          for key, value in _flatten(child, f'{prefix}.{name}' if prefix else name).items()}
