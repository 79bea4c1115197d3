"""The files a finished run leaves: results.json, learning_curve.png and the method's plots."""

import json
import os
from typing import Any

import jax
import ml_collections

from glimpse_jax import data, plotting
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.metrics import read_metrics, write_json

RESULTS_FILE = 'results.json'
LEARNING_CURVE_FILE = 'learning_curve.png'


def write_results(workdir: str, results: dict[str, Any]) -> None:
  """Writes results.json (atomically, so a reader never sees half of it)."""
  write_json(os.path.join(workdir, RESULTS_FILE), results)


def read_results(workdir: str) -> dict[str, Any]:
  """The results.json of a finished run."""
  with open(os.path.join(workdir, RESULTS_FILE)) as f:
    return json.load(f)


def write_plots(workdir: str, experiment: Experiment, params: Any,
                config: ml_collections.ConfigDict, rng: jax.Array) -> None:
  """Draws the learning curve, then calls `experiment.plots` with the first test batch."""
  plotting.plot_learning_curves(read_metrics(workdir), os.path.join(workdir, LEARNING_CURVE_FILE))
  if experiment.plots is None:
    return
  batch = next(data.eval_batches(config.dataset, config.eval.batch_size))
  experiment.plots(params, batch, rng, workdir)
