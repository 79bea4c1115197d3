"""glimpse_jax.load_run + glimpse_jax.predict on every experiment, after a few training steps."""

import json
import os

import numpy as np
import pytest

import glimpse_jax
from glimpse_jax import cli, data, train

# (experiment, variant, what predict must return besides probabilities)
CASES = [
    ('ram', 'smoke', ('locations',)),
    ('ws_ram', 'smoke', ('locations', 'scales')),
    ('ram_reward', 'smoke', ('locations',)),
    ('variant_mnist', 'ram_smoke', ('locations',)),
    ('variant_mnist', 'cnn_smoke', ()),
    ('ws_ram_captioning', 'smoke', ('locations', 'scales', 'words')),
    ('pretrain_attention', 'smoke', ('locations', 'reads')),
    ('near_optimal_glimpses', 'unsupervised', ('locations',)),
    ('tiny_pipelines', 'distill', ()),
]


def shrink(config, data_dir: str) -> None:
  """A few tiny steps for every phase of `config` (unlocked in place)."""
  phases = [config.phases[p] for p in config.pipeline] if train.is_pipeline(config) else [config]
  for phase in phases:
    with phase.unlocked():
      phase.dataset.data_dir = data_dir
      phase.num_steps, phase.batch_size, phase.log_every = 2, 8, 1
      phase.eval_every = phase.checkpoint_every = phase.grad_variance_every = 0
      phase.eval.batch_size, phase.eval.mc_samples = 8, 1
      phase.eval.splits = ('test',)
      phase.dataset.eval_examples = 16
      phase.dataset.validation_examples = 0
      phase.early_stopping.patience = phase.optimizer.plateau.patience = 0
      if phase.dataset.train_examples is not None or not phase.dataset.get('train_on_the_fly', 1):
        phase.dataset.train_examples = 64
      if 'design' in phase:
        phase.design.samples, phase.design.candidates = 2, min(phase.design.get('candidates', 4), 4)
      phase.generate.fraction = 1.0


def _train(name: str, variant: str, workdir: str, data_dir: str):
  module = cli.import_experiment(name)
  config = module.get_config(variant)
  shrink(config, data_dir)
  train.run_pipeline(config, workdir, module.make_experiment)
  return config


@pytest.mark.slow  # ~20 s each on 2 cores, most of it compiling the steps
@pytest.mark.parametrize('name,variant,fields', CASES, ids=[f'{n}:{v}' for n, v, _ in CASES])
def test_predict_after_a_few_steps(name, variant, fields, data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  _train(name, variant, workdir, data_dir)
  run = glimpse_jax.load_run(workdir)
  height, width, channels = data.image_shape(run.config.dataset)
  images = np.random.default_rng(0).uniform(size=(3, height, width, channels)).astype(np.float32)
  out = glimpse_jax.predict(run, images)
  probabilities = out['probabilities']
  assert probabilities.shape[0] == 3 and np.all(np.isfinite(probabilities))
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-4)
  for field in fields:
    assert field in out and out[field].shape[0] == 3, (field, {k: v.shape for k, v in out.items()})
  if 'locations' in out:
    assert out['locations'].shape[-1] == 2 and np.all(np.abs(out['locations']) <= 1.0 + 1e-6)

  with pytest.raises(ValueError, match=r'got shape \(3, 5, 5, 1\)'):
    glimpse_jax.predict(run, np.zeros((3, 5, 5, 1), np.float32))


def test_load_run_names_what_is_missing(tmp_path):
  with pytest.raises(ValueError, match='does not exist'):
    glimpse_jax.load_run(str(tmp_path / 'nowhere'))
  os.makedirs(tmp_path / 'empty')
  with pytest.raises(ValueError, match='holds no config.json'):
    glimpse_jax.load_run(str(tmp_path / 'empty'))
  (tmp_path / 'other').mkdir()
  (tmp_path / 'other' / 'config.json').write_text(json.dumps({'experiment': 'nope'}))
  with pytest.raises(ValueError, match="unknown experiment 'nope'; experiments: "):
    glimpse_jax.load_run(str(tmp_path / 'other'))


def test_predict_refuses_other_images(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  _train('tiny_pipelines', 'smoke', workdir, data_dir)
  run = glimpse_jax.load_run(workdir, checkpoint='best')
  with pytest.raises(ValueError, match=r'images must be a batch \[B, 28, 28, 1\].*got shape '
                                       r'\(28, 28, 1\)'):
    glimpse_jax.predict(run, np.zeros((28, 28, 1), np.float32))
  with pytest.raises(ValueError, match='divide 8-bit images by 255'):
    glimpse_jax.predict(run, np.full((2, 28, 28, 1), 255, np.uint8))
