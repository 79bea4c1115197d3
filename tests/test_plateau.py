"""The learning-rate plateau rule: ties within `min_delta`, and no reduction at the evaluation
that stops training early."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from glimpse_jax import train
from test_train_loop import _config, make_experiment


def _scales(values, **plateau):
  """The update scale after each evaluation value fed to the rule of `plateau`'s fields."""
  fields = dict(patience=1, factor=0.5, split='validation', metric='', cooldown=0,
                min_scale=0.0, rtol=1e-4, min_delta=0.0)
  fields.update(plateau)
  opt = train.base_config().optimizer
  opt.update(name='sgd', learning_rate=1.0)
  opt.plateau = ml_collections.ConfigDict(fields)
  tx, _ = train.make_optimizer(opt, 10)
  rule = train.state.plateau_rule(opt.plateau)
  opt_state, scales = tx.init({'w': jnp.ones(2)}), []
  for value in values:
    opt_state = train.state.report_plateau(opt_state, jnp.float32(value), rule)
    scales.append(train.state.plateau_scale(opt_state))
  return scales


def test_without_min_delta_a_tie_counts_as_no_improvement():
  assert _scales([0.3, 0.3, 0.29, 0.3]) == [1.0, 0.5, 0.5, 0.25]


def test_a_tie_within_min_delta_restarts_the_count_and_keeps_the_best():
  # 0.301 and 0.3012 are ties with the best 0.3; 0.302 is not (and 0.3012 did not move the best).
  assert _scales([0.3, 0.3, 0.301, 0.3012, 0.302], min_delta=0.0015) == [1.0] * 4 + [0.5]
  # Patience 2: the tie between two bad evaluations restarts their count.
  assert _scales([0.3, 0.35, 0.3005, 0.35, 0.35], patience=2, min_delta=0.0015) == [
      1.0, 1.0, 1.0, 1.0, 0.5]
  # An improvement still moves the best, and with it the ties' band.
  assert _scales([0.3, 0.2, 0.201, 0.2995], min_delta=0.0015) == [1.0, 1.0, 1.0, 0.5]


def test_min_delta_is_checked():
  config = train.base_config()
  config.experiment = 'toy'
  config.update(eval_every=5)
  config.dataset.validation_examples = 64
  config.eval.splits = ('validation', 'test')
  config.optimizer.plateau.update(patience=1, min_delta=-0.1)
  with pytest.raises(ValueError, match=r'optimizer.plateau.min_delta must be a number >= 0'):
    train.validate(config)


def test_the_stopping_evaluation_does_not_reduce_the_rate(data_dir, tmp_path):
  # A frozen metric (learning rate 0): the evaluation at 5 is the best, the one at 10 stops the
  # run; the rule hears only the first, so the rate is never reduced.
  config = _config(data_dir, **{
      'num_steps': 20, 'eval_every': 5, 'log_every': 5, 'checkpoint_every': 0,
      'optimizer.learning_rate': 0.0, 'dataset.validation_examples': 64,
      'eval.splits': ('validation',), 'early_stopping.patience': 1,
      'optimizer.plateau.patience': 1})
  workdir = str(tmp_path / 'run')
  results = train.run(config, workdir, make_experiment(config))
  assert results['stopped_early'] and results['steps'] == 10
  records = train.read_metrics(workdir, 'plateau')
  assert [(r['step'], r['scale']) for r in records] == [(5, 1.0)]
  np.testing.assert_allclose(train.read_metrics(workdir, 'eval')[1]['error'],
                             train.read_metrics(workdir, 'eval')[0]['error'])
