"""Data-producing phases: run frozen models over a split and store per-example outputs by index.

`generate(config, workdir, experiment)` writes `<workdir>/store/` (a `data.ExampleStore`: chunks
keyed by example index, each checksummed) chunk by chunk; a restarted phase writes only the chunks
still missing, and the outputs are a function of the seed alone, so an interrupted phase finishes
with the same store as an uninterrupted one. A later phase joins the stored fields into its
training batches with `config.data_from`.
"""

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
from jax.experimental import multihost_utils
import numpy as np

from glimpse_jax import data
from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train import metrics as metrics_lib
from glimpse_jax.train.config import validate
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.metrics import ConsoleReporter
from glimpse_jax.train.sources import STORE_DIR, load_frozen, open_store
from glimpse_jax.train.workdir import lock_workdir

_SUBSET_TAG = 0x5E1EC7  # keeps the choice of stored examples apart from other seeded draws


def chosen_indices(config: ml_collections.ConfigDict) -> np.ndarray:
  """The sorted indices the phase stores: a seeded `generate.fraction` of its split."""
  every = data.split_indices(config.dataset, config.generate.split)
  count = max(1, round(config.generate.fraction * every.size))
  if count >= every.size:
    return every
  rng = np.random.default_rng([_SUBSET_TAG, config.seed])
  return np.sort(rng.choice(every, size=count, replace=False))


def generate(config: ml_collections.ConfigDict, workdir: str, experiment: Experiment, *,
             devices: Sequence[jax.Device] | None = None) -> dict[str, Any]:
  """Stores `experiment.generate`'s outputs for the chosen examples; returns results.json.

  Outputs should be 32-bit (devices hold no 64-bit arrays unless jax_enable_x64 is set).

  Raises:
    ValueError: the config is not a generate phase, or the store in `workdir` was planned with
      other examples or settings.
  """
  validate(config)
  if config.kind != 'generate':
    raise ValueError(f"train.generate runs kind='generate' phases, got kind={config.kind!r}")
  experiment.require('generate')
  mesh = mesh_lib.make_data_mesh(devices)
  if config.eval.batch_size % mesh.size:
    raise ValueError(f'eval.batch_size must be divisible by the {mesh.size} devices, got '
                     f'{config.eval.batch_size}')
  with lock_workdir(workdir):
    return _generate(config, workdir, experiment, mesh)


def _generate(config, workdir, experiment, mesh) -> dict[str, Any]:
  chief = jax.process_index() == 0
  process = dict(process_index=jax.process_index(), process_count=jax.process_count())
  frozen = load_frozen(config, experiment, mesh)
  sharding = mesh_lib.batch_sharding(mesh)
  produce = jax.jit(lambda batch, rng, frozen: experiment.generate(batch, rng, frozen),
                    out_shardings=mesh_lib.replicated(mesh))
  indices = chosen_indices(config)
  store = data.ExampleStore(os.path.join(workdir, STORE_DIR))
  if chief:
    metrics_lib.write_config(workdir, config)
    store.plan(indices, config.generate.chunk_size,
               meta={'experiment': config.experiment, 'phase': config.phase,
                     'split': config.generate.split, 'seed': config.seed,
                     'dataset': json.loads(config.dataset.to_json_best_effort()),
                     'frozen': dict(config.frozen.items())})
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('glimpse_jax: store planned')
  pending = store.pending_chunks()
  console = ConsoleReporter(store.num_chunks, enabled=chief, unit='chunk')
  console.line(f'{config.experiment}:{config.phase or "generate"}: {indices.size:,} '
               f'{config.generate.split} examples in {store.num_chunks} chunks, '
               f'{store.num_chunks - len(pending)} already stored')
  key = jax.random.key(config.seed)
  start = time.perf_counter()
  written, first_done = 0, store.num_chunks - len(pending)
  if pending:
    console.start(first_done)
  for done, chunk in enumerate(pending, first_done + 1):
    chunk_indices = store.chunk_indices(chunk)
    outputs = []
    batches = data.index_batches(config.dataset, config.generate.split, chunk_indices,
                                 config.eval.batch_size, **process)
    for number, batch in enumerate(batches):
      rng = jax.random.fold_in(jax.random.fold_in(key, chunk), number)
      values = produce(mesh_lib.shard_batch(batch, sharding), rng, frozen)  # global rows
      outputs.append(mesh_lib.fetch(values))
    # Global batches cover the chunk's examples in order; padding rows trail the last one.
    arrays = {name: np.concatenate([o[name] for o in outputs])[:chunk_indices.size]
              for name in outputs[0]}
    if chief:
      store.write_chunk(chunk, arrays)
    written += chunk_indices.size
    seconds = time.perf_counter() - start
    console.progress(done, (done - first_done) / seconds,
                     f'{written / seconds:.3g} examples/s, {seconds / written:.3g} s/example')
  wall = time.perf_counter() - start
  results = {
      'kind': 'generate',
      'examples': int(indices.size),
      'split': config.generate.split,
      'chunks': store.num_chunks,
      'written_examples': written,
      'wall_seconds': wall,
      'examples_per_second': written / wall if written else None,
      'seconds_per_example': wall / written if written else None,
      'config': json.loads(config.to_json_best_effort()),
  }
  console.close()
  if chief:
    stored = open_store(workdir)  # verifies every chunk's checksum
    results['fields'] = {name: [np.dtype(dtype).name, list(shape)]
                         for name, (dtype, shape) in stored.fields.items()}
    metrics_lib.write_results(workdir, results)
    console.line(f'stored {indices.size:,} examples ({", ".join(results["fields"])}); '
                 f'results.json written')
  return results
