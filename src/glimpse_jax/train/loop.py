"""The shared training loop: `run(config, workdir, experiment) -> results`.

One process per host; every local device trains data-parallel. The loop never names an
experiment: everything method-specific comes from the `Experiment`'s functions and the config.
"""

import contextlib
import functools
import itertools
import json
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

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
    return _Run(config, workdir, experiment, mesh).run()


# Updates between the agreements on a stop signal in a multi-process run (each one waits for the
# updates queued before it; the loop's own fetches are as frequent at log_every=100).
SIGNAL_CHECK_EVERY = 100


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
# One run.
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


class _Run:
  """The state of one call to `run`."""

  def __init__(self, config, workdir, experiment, mesh):
    self.config, self.workdir, self.experiment, self.mesh = config, workdir, experiment, mesh
    self.chief = jax.process_index() == 0
    self.batch_sharding = mesh_lib.batch_sharding(mesh)
    self.replicated = mesh_lib.replicated(mesh)
    init_key, train_key, self.eval_key, self.variance_key = jax.random.split(
        jax.random.key(config.seed), 4)
    self.train_key = mesh_lib.put_replicated(train_key, mesh)
    self.tx, self.schedule = make_optimizer(config.optimizer, config.num_steps)
    float(self.schedule(0))  # its first call compiles (~0.2 s on CPU): not in a timed interval
    # Canvases drawn on the fly are drawn inside the jitted step from the device's digit pool
    # (`dataset.sample_on_device`), else arrive as recipes and are composed there.
    self.sampler = data.device_sampler(config.dataset, config.batch_size, seed=config.seed)
    if self.sampler is not None:
      self.pool = mesh_lib.put_replicated(self.sampler.pool, mesh)
      self.prepare = lambda pool, step: jax.lax.with_sharding_constraint(
          self.sampler.sample(pool, step), self.batch_sharding)
    else:
      compose = data.composer(config.dataset)
      self.prepare = lambda batch, step: compose(batch)
    self.steps = step_lib.make_steps(experiment, mesh, config.grad_variance_draws,
                                     plateau_rule(config.optimizer.plateau)
                                     if config.optimizer.plateau.patience else None,
                                     self.prepare)
    self.frozen = load_frozen(config, experiment, mesh)
    self.join = (open_training_store(config.data_from, config.dataset) if config.data_from
                 else None)
    if self.join is not None and self.sampler is not None:
      raise ValueError(
          f'data_from={config.data_from!r} joins stored fields by example index, which canvases '
          'drawn on the device do not have: set dataset.train_on_the_fly=False')
    self.checkpointer = Checkpointer(workdir, config.keep_checkpoints,
                                     keep_steps=tuple(config.checkpoint_at))
    self.clock = _Clock()
    self.console = ConsoleReporter(config.num_steps, enabled=self.chief)
    self.process = dict(process_index=jax.process_index(), process_count=jax.process_count())
    try:
      self.state, self.origin = self._initial_state(init_key)
    except BaseException:
      self.checkpointer.close()
      raise
    self.start_step = int(self.state.step)
    self.writer = MetricsWriter(workdir, resume_step=self.start_step, enabled=self.chief)
    self.clock.carry(_logged_wall_seconds(self.writer.kept))
    self.stopping = EarlyStopping(config.early_stopping, config.headline)
    for record in self.writer.kept:
      if record['kind'] == 'eval':
        self.stopping.update(record)
    if self.chief:
      metrics_lib.write_config(workdir, config)

  def _train_stream(self, start_step: int):
    return data.train_stream(self.config.dataset, self.config.batch_size, seed=self.config.seed,
                             start_step=start_step, join=self.join, recipes=True, **self.process)

  def _train_batches(self, start_step: int):
    """A context manager over the batches the update takes from `start_step` on: the prefetched
    training stream, or, when canvases are drawn in the step, the device's digit pool every time
    (the update draws from it by its own `state.step`)."""
    if self.sampler is not None:
      return contextlib.nullcontext(itertools.repeat(self.pool))
    return DevicePrefetcher(self._train_stream(start_step), self.batch_sharding)

  def _eval_batches(self, split: str):
    return data.eval_batches(self.config.dataset, self.config.eval.batch_size, split=split,
                             **self.process)

  # -------------------------------------------------------------------------------------------
  # Initial state: the workdir's checkpoint, else config.init_from's parameters, else scratch.
  # -------------------------------------------------------------------------------------------
  def _initial_state(self, init_key) -> tuple[TrainState, str]:
    # The update's batch argument as it arrives, and the batch `init` sees.
    if self.sampler is not None:
      self.stream_example = self.pool
      self.example_batch = mesh_lib.fetch(
          jax.jit(self.sampler.sample, out_shardings=self.replicated)(self.pool, 0))
    else:
      self.stream_example = next(self._train_stream(0))
      self.example_batch = jax.tree.map(np.asarray, self.prepare(self.stream_example, 0))
    abstract = abstract_state(self.experiment, self.tx, init_key, self.example_batch,
                              self.replicated)
    self._check_evaluate(abstract)
    try:
      state = self.checkpointer.restore(abstract)
    except Exception as error:  # orbax names shapes, not the config field that changed them
      raise ValueError(
          f'{self.workdir}: cannot resume from its checkpoint at step '
          f'{self.checkpointer.latest_step()} ({type(error).__name__}: {error}); '
          f'{self._changes_since_saved()}; use another workdir for another model') from error
    if state is not None:
      if int(state.step) > self.config.num_steps:
        raise ValueError(f'num_steps={self.config.num_steps}, but {self.workdir} holds a '
                         f'checkpoint at step {int(state.step)}: raise num_steps or use another '
                         'workdir')
      return state, f'resumed from step {int(state.step)}'
    params, origin = None, 'from scratch'
    source = self.config.init_from
    if source is not None:
      subtrees = tuple(self.config.init_subtrees) or ('',)
      try:
        restored = load_params(source)
      except Exception as error:
        raise ValueError(f'init_from={source!r}: cannot restore parameters ({error})') from error
      fresh = jax.jit(self.experiment.init)(init_key, self.example_batch)
      params = mesh_lib.put_replicated(  # restored on one device: to every device of the mesh
          graft(fresh, restored, subtrees, source_name=f'init_from={source!r}'), self.mesh)
      what = ', '.join(self.config.init_subtrees) or 'parameters'
      origin = f'{what} from {source}'
    return create_state(self.experiment, self.tx, init_key, self.example_batch,
                        self.replicated, params), origin

  def _trace(self, fn, *args) -> Any:
    """`jax.eval_shape(fn, *args)`; a failure names the frozen models when there are any (a
    teacher of another shape fails here, before training)."""
    try:
      return jax.eval_shape(fn, *args)
    except Exception as error:
      if self.frozen is None:
        raise
      sources = ', '.join(f'frozen.{name}={path!r}' for name, path in self.config.frozen.items())
      raise ValueError(f'the step fails with the frozen models {sources} (is each the model '
                       f'this phase expects?): {type(error).__name__}: {error}') from error

  def _changes_since_saved(self) -> str:
    """The config fields that differ from the workdir's config.json, as text."""
    try:
      saved = _flatten(json.loads(
          (files.as_path(self.workdir) / metrics_lib.CONFIG_FILE).read_text()))
    except (OSError, ValueError):
      return 'the workdir holds no readable config.json to compare with'
    now = _flatten(json.loads(self.config.to_json_best_effort()))
    changed = [f'{key}: {saved.get(key, "(absent)")!r} -> {now.get(key, "(absent)")!r}'
               for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]
    return ('config changes since it was saved: ' + ', '.join(changed) if changed
            else 'the config is the one it was saved with')

  def _check_evaluate(self, abstract: TrainState) -> None:
    """Traces `evaluate` once so a missing headline or a wrong shape fails before training."""
    example = next(self._eval_batches(self.config.eval.splits[0]))
    batch = {name: jax.ShapeDtypeStruct(value.shape, value.dtype)
             for name, value in example.items()}
    sums = self._trace(
        lambda p, b, f: step_lib.eval_step(self.experiment.evaluate, p, b, jax.random.key(0), f),
        abstract.params, batch, self.frozen)
    if self.config.headline not in sums:
      raise ValueError(f'headline={self.config.headline!r}: experiment.evaluate returns only '
                       f'{sorted(set(sums) - {"examples"})}')
    for name, watcher in (('early_stopping', self.config.early_stopping),
                          ('optimizer.plateau', self.config.optimizer.plateau)):
      if watcher.patience and (watcher.metric or self.config.headline) not in sums:
        raise ValueError(f'{name}.metric={watcher.metric!r}: experiment.evaluate returns only '
                         f'{sorted(set(sums) - {"examples"})}')

  # -------------------------------------------------------------------------------------------
  # Training.
  # -------------------------------------------------------------------------------------------
  def run(self) -> dict[str, Any]:
    config = self.config
    self.console.line(
        f'{config.experiment}{":" + config.phase if config.phase else ""}: '
        f'{count_params(self.state.params):,} parameters, '
        f'{self.mesh.size} x {jax.devices()[0].device_kind}, {self.origin}, '
        f'{config.num_steps} steps of {config.batch_size}')
    try:
      with StopRequests() as stop:
        if self.stopping.stopped:
          self.console.line(f'stopped early at step {self.start_step} ({self.stopping.reason})')
        elif self.start_step < config.num_steps:
          self._train(stop)
      self.checkpointer.wait()
      return self._finish()
    finally:
      self.console.close()
      self.checkpointer.close()
      self.writer.close()

  def _train(self, stop: StopRequests) -> None:
    config = self.config
    metric_names = sorted(self._trace(
        functools.partial(step_lib.train_step, prepare=self.prepare), self.state,
        self._abstract_batch(), self.train_key, self.frozen)[1])
    fresh = jax.tree.map(np.array, step_lib.init_accumulator(metric_names))  # host copies
    new_accumulator = lambda: mesh_lib.put_replicated(fresh, self.mesh)
    acc, pending, self.variances = new_accumulator(), None, []
    self.last_logged, state = self.start_step, self.state
    self.state = None  # donated below; the loop's `state` is the only live reference
    self.console.start(self.start_step)
    with self._train_batches(self.start_step) as batches:
      for step in range(self.start_step, config.num_steps):
        batch = next(batches)
        if config.grad_variance_every and step % config.grad_variance_every == 0:
          rng = jax.random.fold_in(self.variance_key, step)
          self.variances.append(
              (step, self.steps.grad_variance(state, batch, rng, self.frozen)))
        state, acc = self.steps.update(state, acc, batch, self.train_key, self.frozen)
        done = step + 1
        if pending is not None:  # the previous interval, fetched one step late
          self._report(*pending)
          pending = None
        last = done == config.num_steps
        periodic_eval = (not last and config.eval_every and done % config.eval_every == 0)
        signum = self._signal_to_stop_for(stop, done, last)
        save = last or signum is not None or done in config.checkpoint_at or (
            config.checkpoint_every and done % config.checkpoint_every == 0)
        sync = save or periodic_eval
        if done % config.log_every == 0 or last:
          pending, acc = (done, acc), new_accumulator()
          if sync:
            self._report(*pending)
            pending = None
        elif sync:
          self._raise_if_bad(mesh_lib.fetch({'first_bad_step': acc['first_bad_step'],
                                             'bad': acc['bad']}))
        if periodic_eval:
          by_split = self._evaluate(state.params, done, config.eval_examples_during_training)
          if not self.stopping.stopped:  # a rate reduced at the stopping evaluation is never used
            state = self._feed_plateau(state, by_split, done)
          if self.stopping.stopped:
            if pending is not None:
              self._report(*pending)
              pending = None
            save = True
        if save:
          self.state = state
          self._save(done)
        if self.stopping.stopped:
          self.console.line(f'stopped early after step {done} ({self.stopping.reason})')
          break
        if signum is not None:
          self.checkpointer.wait()
          self.console.line(f'stopped by signal {signum} after step {done}; saved')
          stop.raise_for_signal(signum)
    self.console.close()
    self.state = state

  def _signal_to_stop_for(self, stop: StopRequests, done: int, last: bool) -> int | None:
    """The signal to save and stop for after update `done`, if any. One process acts on its own
    at once; several agree every SIGNAL_CHECK_EVERY updates (a collective), so they save
    together and none waits alone in the next update's all-reduce."""
    if self.process['process_count'] > 1 and not last and done % SIGNAL_CHECK_EVERY:
      return None
    return stop.agree()

  def _feed_plateau(self, state: TrainState, by_split: dict[str, dict[str, float]],
                    done: int) -> TrainState:
    """Gives the learning-rate plateau rule (if any) this evaluation's value of its metric."""
    plateau = self.config.optimizer.plateau
    if not plateau.patience:
      return state
    metric = plateau.metric or self.config.headline
    value = by_split[plateau.split][metric]
    opt_state = self.steps.report_plateau(state.opt_state, np.float32(value))
    scale = plateau_scale(opt_state)
    self.writer.write('plateau', done, {'split': plateau.split, metric: value, 'scale': scale})
    return state.replace(opt_state=opt_state)

  def _abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
    if self.sampler is not None:
      return {name: jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=self.replicated)
              for name, value in self.pool.items()}
    return {name: jax.ShapeDtypeStruct((self.config.batch_size, *value.shape[1:]), value.dtype,
                                       sharding=self.batch_sharding)
            for name, value in self.stream_example.items()}

  def _report(self, done: int, acc: dict[str, Any]) -> None:
    """Fetches an interval's sums (blocking until its last update ran), checks and logs them."""
    acc = mesh_lib.fetch(acc)
    self._raise_if_bad(acc)
    steps = int(acc['count'])
    seconds = self.clock.interval(done - self.last_logged)
    self.last_logged = done
    values = {name: float(total) / steps for name, total in acc['sum'].items()}
    values.update(
        learning_rate=float(self.schedule(done - 1)),
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

  def _save(self, done: int) -> None:
    with self.clock.paused():
      self.writer.flush()  # the records up to a checkpoint are in the workdir before it is
      self.checkpointer.save(self.state, done, {'experiment': self.config.experiment})

  def _evaluate(self, params: Any, done: int, max_examples: int,
                final: bool = False) -> dict[str, dict[str, float]]:
    """Means of `evaluate` on every split of `eval.splits` (each logged as an 'eval' record;
    `final` marks the evaluation after training, which early stopping does not count)."""
    by_split = {}
    with self.clock.paused():
      for split in self.config.eval.splits:
        means = evaluate(self.steps.evaluate, params, self._eval_batches(split),
                         self.batch_sharding, jax.random.fold_in(self.eval_key, done),
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
  def _finish(self) -> dict[str, Any]:
    config = self.config
    steps = int(self.state.step)
    by_split = self._evaluate(self.state.params, steps, 0, final=True)
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
        'num_params': count_params(self.state.params),
        'devices': f'{self.mesh.size} x {jax.devices()[0].device_kind}',
        **self.stopping.summary(),
        'config': json.loads(config.to_json_best_effort()),
    }
    if self.chief:
      self.writer.flush()  # the learning curve reads metrics.jsonl
      metrics_lib.write_results(self.workdir, results)
      self.console.line(f'{headline_split} {config.headline} {results["headline_value"]:.4f} on '
                        f'{by_split[headline_split]["examples"]} examples; results.json written')
      metrics_lib.write_plots(self.workdir, self.experiment, mesh_lib.fetch(self.state.params),
                              config, jax.random.fold_in(self.eval_key, steps + 1))
    return results


def _flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} of a nested dict."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  return {key: value for name, child in tree.items()
          for key, value in _flatten(child, f'{prefix}.{name}' if prefix else name).items()}
