"""Orbax checkpoints of a run: params, optimizer state and step under `<workdir>/checkpoints`.

Orbax writes each checkpoint to a temporary folder and renames it when complete, so a crash or
`kill -9` never leaves a half-written checkpoint that a restart would read.
"""

import os
from collections.abc import Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp

from glimpse_jax import files
from glimpse_jax.train.state import TrainState


def checkpoint_dir(workdir: str) -> str:
  """Where a run in `workdir` (a local folder, made absolute, or an object-store URI) keeps its
  checkpoints."""
  if not files.is_local(workdir):
    return f'{files.normpath(workdir)}/checkpoints'
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


class Checkpointer:
  """Periodic, asynchronous saves of a TrainState keeping the last `keep`; restores the latest."""

  def __init__(self, workdir: str, keep: int | None, *, create: bool = True,
               keep_steps: Sequence[int] = ()):
    """Manages `<workdir>/checkpoints`; `keep=None` (for readers) never deletes any; the
    checkpoints of `keep_steps` are never deleted either."""
    if keep is not None and keep < 1:
      raise ValueError(f'keep must be >= 1 or None, got {keep}')
    policies = ocp.checkpoint_managers
    preservation = policies.LatestN(keep)
    if keep_steps:
      preservation = policies.AnyPreservationPolicy(
          [preservation, policies.CustomSteps(list(keep_steps))])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=preservation, create=create,
        cleanup_tmp_directories=create, enable_async_checkpointing=True)
    self.directory = checkpoint_dir(workdir)
    handlers = {'params': ocp.StandardCheckpointHandler(),
                'opt_state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()}
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=handlers)

  def all_steps(self) -> list[int]:
    """The steps of every complete checkpoint, in order."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, state: TrainState, step: int, meta: dict[str, Any]) -> None:
    """Starts saving `state` (whose update count is `step`); returns once arrays are copied."""
    items = state.checkpoint_items()
    self._manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(items['params']),
        opt_state=ocp.args.StandardSave(items['opt_state']),
        meta=ocp.args.JsonSave({**meta, 'step': step})), force=True)

  def restore(self, abstract: TrainState) -> TrainState | None:
    """The newest checkpoint restored into `abstract`'s structure and shardings, or None."""
    step = self.latest_step()
    if step is None:
      return None
    items = abstract.checkpoint_items()
    # A shape that differs is refused here, before orbax starts reading: its own refusal comes
    # while the other arrays' TensorStore reads are in flight, whose callbacks then find orbax's
    # event loop closed and print a traceback each at exit.
    try:
      stored = self._manager.item_metadata(step)
    except Exception:  # pylint: disable=broad-except
      stored = None  # no metadata to compare with: orbax's restore checks the shapes itself
    if stored is not None:
      mismatches = [m for name in ('params', 'opt_state')
                    for m in _shape_mismatches(items[name], stored[name], name)]
      if mismatches:
        raise ValueError(f'checkpoint {step} holds other shapes: {"; ".join(mismatches[:5])}'
                         + (f' (and {len(mismatches) - 5} more)' if len(mismatches) > 5 else ''))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(items['params']),
        opt_state=ocp.args.StandardRestore(items['opt_state'])))
    return abstract.restored({'params': restored['params'], 'opt_state': restored['opt_state']},
                             step)

  def restore_params(self, abstract_params: Any | None = None, step: int | None = None) -> Any:
    """The parameters of checkpoint `step` (default: newest).

    Without `abstract_params` they land on this process's first device, whatever the devices
    of the run that saved them.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise ValueError(f'no checkpoint in {self.directory!r}')
    if abstract_params is None:
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      abstract_params = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
          self._manager.item_metadata(step)['params'])
    restore = ocp.args.StandardRestore(abstract_params)
    return self._manager.restore(step, args=ocp.args.Composite(params=restore))['params']

  def wait(self) -> None:
    """Blocks until every started save is complete on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _key_name(key: Any) -> str:
  for attr in ('key', 'name', 'idx'):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _shape_mismatches(abstract: Any, stored: Any, prefix: str) -> list[str]:
  """'path: shape requested, shape stored' for each array of `abstract` whose path `stored` (a
  checkpoint item's metadata tree) holds with another shape."""
  path_of = lambda path: tuple(_key_name(k) for k in path)
  shapes = {path_of(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(stored)[0]
            if getattr(leaf, 'shape', None) is not None}
  mismatches = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    key = path_of(path)
    if key in shapes and shapes[key] != tuple(leaf.shape):
      mismatches.append(f'{"/".join((prefix, *key))}: {tuple(leaf.shape)} requested, '
                        f'{shapes[key]} stored')
  return mismatches


def load_params(workdir: str, abstract_params: Any | None = None, step: int | None = None) -> Any:
  """The parameters a run saved in `workdir` (its newest checkpoint unless `step` is given).

  Args:
    workdir: a run's workdir (the folder holding `checkpoints/`).
    abstract_params: optional pytree of `jax.ShapeDtypeStruct` (with shardings) to restore into.
    step: which checkpoint; default the newest.
  """
  if not files.as_path(checkpoint_dir(workdir)).is_dir():
    raise ValueError(f'{workdir!r} holds no checkpoints folder')
  checkpointer = Checkpointer(workdir, keep=None, create=False)
  try:
    return checkpointer.restore_params(abstract_params, step)
  finally:
    checkpointer.close()


def abstract_of(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
