"""WS-RAM's training loss and gradients at fixed parameters and rng, against stored values.

The stored values (`ws_ram_gradients.json` beside this file, float32 values as text) were computed by the rollout and
losses as first written, one prior rollout of their own measuring the prior's error under q or a
tempered proposal. Any rewrite of the rollout or the step for speed must give the same loss, the
same gradient of every parameter and the same estimator diagnostics. Regenerate only when an
estimator is meant to change: `python tests/test_ws_ram_gradients.py --write`.
"""

import json
import pathlib
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import ws_ram  # noqa: E402

STORED = pathlib.Path(__file__).resolve().parent / 'ws_ram_gradients.json'
# case: (row variant, loss overrides); together they take every branch of the loss
CASES = {
    'var_cv': ('var_cv', {}),
    'ws': ('ws', {}),
    'ws_q': ('ws_q', {}),
    'ws_cv_tempered': ('ws_cv', {'temperature': 2.0}),
    'ws_q_cv_tempered_explored': ('ws_q_cv', {'temperature': 2.0, 'entropy_weight': 0.1,
                                              'coverage_weight': 0.1}),
}
# Metrics that depend on the estimator alone (the prior's error and scale use may be estimated).
ESTIMATOR_METRICS = ('surrogate', 'nll', 'bound', 'ess', 'entropy', 'coverage', 'log_prior',
                     'baseline_loss', 'log_q', 'error_proposal')


def _config(case):
  variant, loss = CASES[case]
  config = ws_ram.get_config(variant)
  with config.unlocked():
    config.dataset.update(name='translated', canvas_size=32)
    config.model.update(num_glimpses=3, glimpse_size=4, low_res_size=4, bottom_features=8,
                        top_features=8, glimpse_features=8, what_features=4, where_features=4,
                        inference_features=4, learn_std=True)
    config.loss.update(num_samples=4, **loss)
  return config


def compute(case):
  """{name: array}: `loss`, `metric/<name>` and `grad/<parameter path>` of one update."""
  experiment = ws_ram.make_experiment(_config(case))
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(6, 32, 32, 1)).astype(np.float32),
           'label': rng.integers(0, 10, size=6).astype(np.int32)}
  # Jitted: one program, the same in every case (compiled once a session through the compilation
  # cache), instead of one compilation per operation; the same parameters as run eagerly.
  params = jax.jit(experiment.init)(jax.random.key(0), batch)
  (loss, metrics), grads = jax.jit(jax.value_and_grad(
      lambda p: experiment.loss(p, batch, jax.random.key(3), 0), has_aux=True))(params)
  values = {'loss': np.asarray(loss)}
  values.update({f'metric/{k}': np.asarray(v) for k, v in metrics.items()})
  values.update({f'grad/{jax.tree_util.keystr(path)}': np.asarray(g)
                 for path, g in jax.tree.leaves_with_path(grads)})
  return values


def load_stored() -> dict[str, np.ndarray]:
  """{'<case>:<name>': float32 array} from STORED."""
  with open(STORED) as f:
    stored = json.load(f)
  return {k: np.asarray(v['values'], np.float32).reshape(v['shape']) for k, v in stored.items()}


@pytest.mark.slow
@pytest.mark.parametrize('case', list(CASES))
def test_loss_and_gradients_match_the_stored_values(case):
  stored = load_stored()
  expected = {k.removeprefix(f'{case}:'): v for k, v in stored.items()
              if k.startswith(f'{case}:')}
  got = compute(case)
  grads = sorted(k for k in expected if k.startswith('grad/'))
  assert grads == sorted(k for k in got if k.startswith('grad/'))
  for name in ['loss', *grads]:
    scale = np.abs(expected[name]).max()
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5 * scale + 1e-8,
                               err_msg=f'{case} {name}')
  # Under the untempered prior the prior's error and scale use are the training rollouts' own.
  prior_sampled = CASES[case][0] in ('var_cv', 'ws') and 'temperature' not in CASES[case][1]
  prior_metrics = [k.removeprefix('metric/') for k in expected
                   if k.startswith(('metric/error', 'metric/scale_frac_'))]
  for metric in [*ESTIMATOR_METRICS, *(prior_metrics if prior_sampled else [])]:
    name = f'metric/{metric}'
    if name in expected:
      np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-6,
                                 err_msg=f'{case} {name}')


if __name__ == '__main__':
  if sys.argv[1:] != ['--write']:
    sys.exit(__doc__)
  with open(STORED, 'w') as f:
    json.dump({f'{case}:{name}': {'shape': list(value.shape),
                                  'values': value.astype(np.float64).ravel().tolist()}
               for case in CASES for name, value in compute(case).items()}, f,
              separators=(',', ':'))
  print(f'wrote {STORED}')
