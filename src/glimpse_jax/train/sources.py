"""What a phase takes from finished runs: frozen models' parameters and stored per-example fields.

(Parameters grafted into the trained model come through `config.init_from`; see `params.graft`.)
"""

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


def open_store(path: str) -> 'data.StoredFields':
  """The complete, checksum-verified store of a generate phase's workdir (or a store folder)."""
  folder = os.path.join(path, STORE_DIR)
  return data.ExampleStore.open(folder if os.path.isdir(folder) else path)
