"""The shared training loop (floor 3): configs, train state, jitted steps, sharding, checkpoints,
metrics, evaluation and results. It never names a particular experiment.

Modules: `experiment` (the interface), `config` (shared fields and checks), `state` (train
state and optimizer), `params` (grafting and freezing subtrees), `mesh` (data parallelism,
prefetching), `step` (pure jittable steps), `checkpoint`, `workdir` (the run's lock: a flock, or
a lease on an object store), `metrics` (metrics.jsonl, TensorBoard, progress, results),
`evaluate`, `sources` (frozen models and stored fields from other runs), `start` (a run's
start-up: batches, jitted steps, the initial state), `loop` (`run`, what is due after each update,
signals), `generate` (data-producing phases), `pipeline` (phases in order: `run_pipeline`).

A notebook trains an experiment with:

    from glimpse_jax.experiments import ram
    from glimpse_jax import train
    config = ram.get_config('smoke')
    results = train.run(config, 'runs/ram-smoke', ram.make_experiment(config))

and any config, a pipeline of phases included, with
`train.run_pipeline(config, workdir, module.make_experiment)`.
"""

from glimpse_jax.train.checkpoint import Checkpointer
from glimpse_jax.train.checkpoint import load_params
from glimpse_jax.train.config import OPTIMIZERS
from glimpse_jax.train.config import SCHEDULES
from glimpse_jax.train.config import base_config
from glimpse_jax.train.config import validate
from glimpse_jax.train.evaluate import evaluate
from glimpse_jax.train.experiment import Batch
from glimpse_jax.train.experiment import Experiment
from glimpse_jax.train.experiment import pick_variant
from glimpse_jax.train.generate import generate
from glimpse_jax.train.loop import run
from glimpse_jax.train.params import freeze_labels
from glimpse_jax.train.params import graft
from glimpse_jax.train.pipeline import is_pipeline
from glimpse_jax.train.pipeline import pipeline_config
from glimpse_jax.train.pipeline import run_pipeline
from glimpse_jax.train.sources import open_store
from glimpse_jax.train.workdir import WorkdirBusyError
from glimpse_jax.train.mesh import make_data_mesh
from glimpse_jax.train.metrics import read_config
from glimpse_jax.train.metrics import read_metrics
from glimpse_jax.train.state import make_optimizer
from glimpse_jax.train.metrics import read_results
from glimpse_jax.train.state import TrainState
from glimpse_jax.train.state import abstract_state
from glimpse_jax.train.state import create_state
from glimpse_jax.train.step import eval_step
from glimpse_jax.train.step import grad_variance
from glimpse_jax.train.step import make_steps
from glimpse_jax.train.step import train_step

__all__ = [
    'Batch',
    'Checkpointer',
    'Experiment',
    'OPTIMIZERS',
    'SCHEDULES',
    'TrainState',
    'abstract_state',
    'base_config',
    'create_state',
    'eval_step',
    'evaluate',
    'freeze_labels',
    'generate',
    'graft',
    'is_pipeline',
    'open_store',
    'pipeline_config',
    'run_pipeline',
    'WorkdirBusyError',
    'grad_variance',
    'load_params',
    'make_data_mesh',
    'make_optimizer',
    'make_steps',
    'pick_variant',
    'read_config',
    'read_metrics',
    'read_results',
    'run',
    'train_step',
    'validate',
]
