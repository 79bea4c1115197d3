"""Start-up of a training run: batches, jitted steps, frozen models and the initial state."""

import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

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
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.metrics import ConsoleReporter, MetricsWriter
from glimpse_jax.train.mesh import DevicePrefetcher
from glimpse_jax.train.state import TrainState, abstract_state, create_state
from glimpse_jax.train.state import make_optimizer, plateau_rule
from glimpse_jax.train.params import graft
from glimpse_jax.train.sources import load_frozen, open_training_store
from glimpse_jax.train.stopping import EarlyStopping


class Clock:
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


def _logged_wall_seconds(records: list[dict[str, Any]]) -> float:
  """The run's wall time logged at the last training record of `records` (0 if none): what a
  call resuming after them carries."""
  logged = [r['wall_seconds'] for r in records if r['kind'] == 'train' and 'wall_seconds' in r]
  return float(logged[-1]) if logged else 0.0


class Batches:
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


@dataclasses.dataclass
class Started:
  """What start-up hands the loop: the run's settings, batches, jitted steps, keys and writers,
  and where a resumed run starts."""
  config: ml_collections.ConfigDict
  workdir: str
  experiment: Experiment
  mesh: Mesh
  chief: bool  # the first process: it writes the workdir's files and the console
  batches: Batches
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
  clock: Clock
  stopping: EarlyStopping
  start_step: int
  origin: str  # where the initial state came from


S = TypeVar('S', bound=Started)


def start(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment, mesh: Mesh,
          loop_class: type[S]) -> tuple[S, TrainState]:
  """Everything before the first update: keys, optimizer, batches, jitted steps, frozen models,
  the initial state, and the records and early-stopping count a resumed run keeps; handed to the
  loop as a `loop_class` (a `Started` with the loop's methods)."""
  chief = jax.process_index() == 0
  init_key, train_key, eval_key, variance_key = jax.random.split(jax.random.key(config.seed), 4)
  tx, learning_rate = make_optimizer(config.optimizer, config.num_steps)
  float(learning_rate(0))  # its first call compiles (~0.2 s on CPU): not in a timed interval
  batches = Batches(config, mesh)
  plateau = config.optimizer.plateau
  steps = step_lib.make_steps(experiment, mesh, config.grad_variance_draws,
                              plateau_rule(plateau) if plateau.patience else None, batches.prepare)
  frozen = load_frozen(config, experiment, mesh)
  checkpointer = Checkpointer(workdir, config.keep_checkpoints,
                              keep_steps=tuple(config.checkpoint_at))
  clock, console = Clock(), ConsoleReporter(config.num_steps, enabled=chief)
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
  loop = loop_class(
      config=config, workdir=workdir, experiment=experiment, mesh=mesh, chief=chief,
      batches=batches, abstract_batch=abstract_batch, steps=steps, frozen=frozen,
      learning_rate=learning_rate, train_key=mesh_lib.put_replicated(train_key, mesh),
      eval_key=eval_key, variance_key=variance_key, checkpointer=checkpointer, writer=writer,
      console=console, clock=clock, stopping=stopping, start_step=start_step, origin=origin)
  return loop, state


def _initial_state(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment,
                   tx: optax.GradientTransformation, batches: Batches, frozen: Any,
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


def trace(config: ml_collections.ConfigDict, frozen: Any, fn, *args) -> Any:
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


def _check_evaluate(config: ml_collections.ConfigDict, experiment: Experiment, batches: Batches,
                    frozen: Any, abstract: TrainState) -> None:
  """Traces `evaluate` once so a missing headline or a wrong shape fails before training."""
  example = next(batches.eval_batches(config.eval.splits[0]))
  batch = {name: jax.ShapeDtypeStruct(value.shape, value.dtype)
           for name, value in example.items()}
  sums = trace(
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


def _flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """{'a.b': value} of a nested dict."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  return {key: value for name, child in tree.items()
          for key, value in _flatten(child, f'{prefix}.{name}' if prefix else name).items()}
