"""The shared training loop: `run(config, workdir, experiment) -> results`.

One process per host; every local device trains data-parallel. The loop never names an
experiment: everything method-specific comes from the `Experiment`'s functions and the config.
Start-up (`start.start`: batches, jitted steps, the initial state) comes apart from the loop
(`_Run`), whose body asks one pure function what is due after each update (`Timetable.due`).
"""

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train import metrics as metrics_lib
from glimpse_jax.train import step as step_lib
from glimpse_jax.train.config import validate
from glimpse_jax.train.evaluate import batches_for, evaluate
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.start import Started, start, trace
from glimpse_jax.train.state import TrainState, count_params, plateau_scale
from glimpse_jax.train.stopping import StopRequests
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
    loop, state = start(config, workdir, experiment, mesh, _Run)
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
# One run.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Run(Started):
  """One call to `run` once started: trains, evaluates, saves and reports. The train state is
  passed along, never kept here: each update donates its buffers."""
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
    metric_names = sorted(trace(
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


def _logged_steps_per_second(records: list[dict[str, Any]]) -> float | None:
  """Mean training speed over logged intervals, leaving out the first (compilation)."""
  intervals = [(b['step'] - a['step'], b['steps_per_second'])
               for a, b in zip(records, records[1:]) if b['step'] > a['step']]
  if not intervals:
    return None
  return sum(n for n, _ in intervals) / sum(n / speed for n, speed in intervals)
