"""The gradient variance of every WS-RAM and VAR estimator at the same parameters (Ba et al. 2015,
Figure 2, middle), so that "control variates cut variance" is measured at one point, not inferred
from runs that went different ways.

Usage:
  make experiment NAME=ws_ram CONFIG=ws_q_cv ARGS="--config.checkpoint_at=(1000,5000,10000,30000)"
  .venv/bin/python scripts/ws_ram_variance.py runs/ws_ram-ws_q_cv [--draws 16] [--examples 256]
  .venv/bin/python scripts/ws_ram_variance.py runs/ws_ram_variance-smoke --smoke \
      --draws 8 --examples 64
      # trains WS-RAM's smoke variant (28x28 MNIST, 1,500 updates) keeping snapshots at 100,
      # 500 and 1,500 updates, then measures them (under a minute on 2 CPU cores)

For each kept snapshot of the run (its checkpoints; `checkpoint_at` keeps chosen ones for good)
and each row of the paper's table (var, var_cv, ws, ws_cv, ws_q, ws_q_cv), draws `--draws`
independent sets of K rollouts from the row's proposal on the same `--examples` test images and
takes the estimator's gradient for the prediction network and the prior policy: the row's
surrogate only (no exploration terms; the baseline's regression and q's update reach only their
own parameters, which are left out). The spread is the trace of the covariance over draws, the
sum over parameters of the unbiased per-parameter variance. A ws_q_cv run's snapshots suit every
row: its q is trained by the wake-q update and its baseline b(x) is regressed alongside.

Writes `<workdir>/estimator_variance.json` ({'steps': [...], 'rows': {row: [variance per
snapshot]}, 'examples', 'draws', 'num_samples'}) and `estimator_variance.png`.
"""

import argparse
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glimpse_jax import data, train
from glimpse_jax.experiments import ws_ram
from glimpse_jax.nets import draw_noise
from glimpse_jax.train import checkpoint

# Parameters outside the prediction network and prior policy: their updates are not the
# estimators being compared.
AUXILIARY = ('baseline', 'inference')
OUTPUT = 'estimator_variance'
SMOKE_SNAPSHOTS = (100, 500, 1_500)


def smoke_config() -> ml_collections.ConfigDict:
  """WS-RAM's smoke variant (ws_q_cv) keeping `SMOKE_SNAPSHOTS` for the measurement."""
  config = ws_ram.get_config('smoke')
  config.checkpoint_at = SMOKE_SNAPSHOTS
  return config


def prediction_gradient(grads):
  """The gradient tree without the `AUXILIARY` subtrees (leaves under a key of that name)."""
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  return [leaf for path, leaf in flat
          if not any(getattr(key, 'key', None) in AUXILIARY for key in path)]


def make_variance_fn(config: ml_collections.ConfigDict, draws: int):
  """(params, images, labels, rng) -> {row: trace of the gradient covariance}, jitted."""
  model = ws_ram.make_model(config)
  m, k = config.model, config.loss.num_samples

  def row_variance(params, images, labels, rng, method, control_variates):
    proposal = 'q' if method == 'ws_q' else 'prior'

    def grad(draw_rng):
      noise = draw_noise(draw_rng, (k, images.shape[0], m.num_glimpses), m.num_scales)

      def surrogate(params):
        out = model.apply(params, images, noise, labels, proposal=proposal)
        per_example, _ = ws_ram.estimator_surrogate(out, labels, method, control_variates)
        return per_example.mean()

      return prediction_gradient(jax.grad(surrogate)(params))

    grads = jax.vmap(grad)(jax.random.split(rng, draws))  # leaves [D, ...]
    return sum(jnp.sum(jnp.var(g, axis=0, ddof=1)) for g in grads)

  @jax.jit
  def variances(params, images, labels, rng):
    # The same draws of noise for every row: differences are the estimators', not the luck's.
    return {row: row_variance(params, images, labels, rng, paper.method, paper.control_variates)
            for row, paper in ws_ram.ROWS.items()}

  return variances


def measure(workdir: str, draws: int = 16, examples: int = 256, seed: int = 0) -> dict:
  """Variances of every row at each of the run's snapshots; writes the json and the figure."""
  config = _config_of(workdir)
  steps = checkpoint.Checkpointer(workdir, keep=None, create=False).all_steps()
  if not steps:
    raise ValueError(f'{workdir!r} holds no checkpoints to measure')
  batch = next(data.eval_batches(config.dataset, examples))
  images, labels = jnp.asarray(batch['image']), jnp.asarray(batch['label'])
  variances = make_variance_fn(config, draws)
  rng = jax.random.key(seed)
  rows = {row: [] for row in ws_ram.ROWS}
  for step in steps:
    params = checkpoint.load_params(workdir, step=step)
    for row, value in variances(params, images, labels, rng).items():
      rows[row].append(float(value))
  result = {'steps': list(steps), 'rows': rows, 'examples': int(images.shape[0]),
            'draws': draws, 'num_samples': config.loss.num_samples}
  with open(os.path.join(workdir, f'{OUTPUT}.json'), 'w') as f:
    json.dump(result, f, indent=1)
  plot(result, os.path.join(workdir, f'{OUTPUT}.png'))
  return result


def _config_of(workdir: str) -> ml_collections.ConfigDict:
  with open(os.path.join(workdir, 'config.json')) as f:
    return ml_collections.ConfigDict(json.load(f))


def plot(result: dict, path: str) -> None:
  """Variance against the snapshot's update, one line per row, log scale."""
  fig = Figure(figsize=(6.5, 4.2))
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  for row, values in result['rows'].items():
    name = ws_ram.ROWS[row].name
    ax.plot(result['steps'], values, 'o-' if row.endswith('_cv') else 'o--', label=name)
  ax.set(xlabel='snapshot (updates)', ylabel='trace of gradient covariance', yscale='log',
         title=f"estimator variance at the same parameters ({result['draws']} draws of "
               f"K = {result['num_samples']}, {result['examples']} images)")
  ax.title.set_fontsize(9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog='python scripts/ws_ram_variance.py',
                                   description=__doc__.splitlines()[0])
  parser.add_argument('workdir', help='a ws_ram run with checkpoints')
  parser.add_argument('--draws', type=int, default=16, help='independent sets of K rollouts')
  parser.add_argument('--examples', type=int, default=256, help='test images per draw')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--smoke', action='store_true',
                      help="first train WS-RAM's smoke variant into the workdir (resumes there)")
  args = parser.parse_args(argv)
  if args.draws < 2 or args.examples < 1:
    parser.error(f'--draws must be >= 2 and --examples >= 1, got {args.draws}, {args.examples}')
  if args.smoke:
    config = smoke_config()
    train.run(config, args.workdir, ws_ram.make_experiment(config))
  result = measure(args.workdir, args.draws, args.examples, args.seed)
  for row, values in result['rows'].items():
    print(f'{row:8s}', ' '.join(f'{v:10.4g}' for v in values))
  print(f"steps {result['steps']}; wrote {os.path.join(args.workdir, OUTPUT)}.json and .png")


if __name__ == '__main__':
  main()
