"""What a phase takes from finished runs: frozen models' parameters and stored per-example fields.

(Parameters grafted into the trained model come through `config.init_from`; see `params.graft`.)
"""

import json
import os
from typing import Any

import ml_collections
from jax.sharding import Mesh

from glimpse_jax import data
from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train.checkpoint import load_params
from glimpse_jax.train.experiment import Experiment

STORE_DIR = 'store'  # where a generate phase keeps its ExampleStore, under its workdir


def load_frozen(config: ml_collections.ConfigDict, experiment: Experiment,
                mesh: Mesh) -> dict[str, Any] | None:
  """The frozen models' parameters restored from the workdirs `config.frozen` names, replicated.

  Returns None when the experiment takes no frozen model.

  Raises:
    ValueError: the config's frozen names differ from the experiment's, or a workdir holds no
      checkpoint.
  """
  wanted, given = set(experiment.frozen_models), set(config.frozen.keys())
  if wanted != given:
    raise ValueError(f"the experiment takes frozen models {sorted(wanted)} but the config's "
                     f'frozen names {sorted(given)}')
  if not wanted:
    return None
  frozen = {}
  for name, source in config.frozen.items():
    try:
      frozen[name] = load_params(source)
    except Exception as error:
      raise ValueError(f'frozen.{name}={source!r}: cannot restore parameters ({error})') from error
  return mesh_lib.put_replicated(frozen, mesh)


# Dataset fields that do not change which image a training index names.
_INDEX_NEUTRAL = ('eval_examples', 'validation_examples', 'train_on_the_fly', 'download',
                  'data_dir', 'cache_dir', 'compose_on_device', 'sample_on_device')


def open_store(path: str) -> 'data.StoredFields':
  """The complete, checksum-verified store of a generate phase's workdir (or a store folder)."""
  folder = os.path.join(path, STORE_DIR)
  return data.ExampleStore.open(folder if os.path.isdir(folder) else path)


def open_training_store(path: str, dataset: ml_collections.ConfigDict) -> 'data.StoredFields':
  """`open_store`, checked to be keyed by the training examples of `dataset`.

  Raises:
    ValueError: the store holds another split, or was made from other canvases.
  """
  stored = open_store(path)
  meta = stored.meta or {}
  if meta.get('split', 'train') != 'train':
    raise ValueError(f'data_from={path!r} stores the {meta["split"]!r} split; training joins '
                     f'fields of the train split only')
  theirs = meta.get('dataset') or {}
  ours = json.loads(dataset.to_json_best_effort())
  differ = sorted(name for name in set(ours) | set(theirs)
                  if name not in _INDEX_NEUTRAL and ours.get(name) != theirs.get(name))
  if theirs and differ:
    raise ValueError(f'data_from={path!r} was stored for other training examples: dataset '
                     + ', '.join(f'{n}={theirs.get(n)!r} there, {ours.get(n)!r} here' for n in differ))
  return stored
