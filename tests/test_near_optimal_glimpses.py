"""The near-optimal glimpses experiment: its notebook runs the smoke pipeline (every phase) once for
this module (the slow tier); the tests check what that run learnt and stored, and the method's
pieces. A shrunk smoke pipeline runs every phase a few steps in the fast tier."""

import functools
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import nbclient
import nbformat
import numpy as np
import optax
import pytest

from experiments import near_optimal_glimpses as nog
from glimpse_jax import data, train
from glimpse_jax.reports import near_optimal_glimpses as report
from glimpse_jax.data import sources
from glimpse_jax.experimental_design import expected_posterior_entropy
from glimpse_jax.nets import draw_noise, grid_centers

REPO = pathlib.Path(__file__).resolve().parents[1]


def _kernel(tmp, patch) -> str:
  """A Jupyter kernel for this interpreter (installed into `tmp` when none is called python3)."""
  from ipykernel import kernelspec  # pylint: disable=g-import-not-at-top
  from jupyter_client import kernelspec as specs  # pylint: disable=g-import-not-at-top
  try:
    specs.KernelSpecManager().get_kernel_spec('python3')
  except specs.NoSuchKernel:
    kernelspec.install(kernel_name='python3', prefix=str(tmp / 'jupyter'))
    patch.setenv('JUPYTER_PATH', str(tmp / 'jupyter' / 'share' / 'jupyter'))
  return 'python3'


@pytest.fixture(scope='module')
def smoke(data_dir, tmp_path_factory):
  """The notebook's run: the smoke pipeline at half its budget. -> (workdir, pictures, printed)."""
  tmp = tmp_path_factory.mktemp('near_optimal')
  with pytest.MonkeyPatch.context() as patch:
    python3_kernel = _kernel(tmp, patch)
    patch.setenv('GLIMPSE_NOTEBOOK_STEP_FRACTION', '0.5')
    patch.setenv('GLIMPSE_NOTEBOOK_WORKDIR', str(tmp / 'run'))
    patch.setenv('GLIMPSE_DATA_DIR', data_dir)
    patch.setenv('JAX_PLATFORMS', 'cpu')
    notebook = nbformat.read(REPO / 'notebooks' / 'near_optimal_glimpses.ipynb', as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name=python3_kernel, timeout=300,
                                     resources={'metadata': {'path': str(REPO / 'notebooks')}})
    client.execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
  pictures = [o for o in outputs if 'image/png' in o.get('data', {})]
  printed = ''.join(o.get('text', '') for o in outputs)
  return tmp / 'run', pictures, printed


def _results(workdir, phase):
  return json.loads((workdir / phase / 'results.json').read_text())


@pytest.mark.notebook
def test_notebook_runs_every_phase_and_shows_its_pictures(smoke):
  workdir, pictures, printed = smoke
  for phase in ('posterior', 'completion', 'sequences', 'ram'):
    assert (workdir / phase / 'results.json').is_file(), phase
  # completions, EPE maps, attention frequency, the glimpses of `predict` on a test batch
  assert len(pictures) == 4
  assert 'predicted classes: [' in printed
  assert 'after the designed sequences' in printed and 'threshold' in printed


@pytest.mark.notebook
@pytest.mark.learning
def test_designed_sequences_beat_random_glimpses_and_ram_learns(smoke):
  workdir, _, _ = smoke
  summary = report.sequence_summary(str(workdir / 'sequences'))
  random_error = _results(workdir, 'posterior')['test_error']
  designed_error = 1.0 - summary['posterior_accuracy']
  # Same posterior, same number of glimpses: the design's sequences make it far more accurate
  # (seed 0: 0.464 against 0.706).
  assert designed_error < random_error - 0.18, (designed_error, random_error)
  ram = _results(workdir, 'ram')
  assert ram['test_error'] < 0.68, ram['test_error']  # measured 0.626; chance is 0.9
  stored = data.ExampleStore.open(str(workdir / 'sequences' / 'store'))
  centres = grid_centers(8)
  cells = stored.arrays['target_cell']
  np.testing.assert_allclose(stored.arrays['target_location'], centres[cells])
  assert all(len(set(row)) == len(row) for row in cells.tolist())  # no cell twice


@pytest.mark.notebook
@pytest.mark.learning
def test_the_epe_of_a_glimpse_on_the_digit_is_below_an_empty_corner(smoke, data_dir):
  workdir, _, _ = smoke
  config = nog.get_config('smoke').phases.sequences
  params = train.load_params(str(workdir / 'posterior'))
  read, embed, classify, _ = nog.design_functions(config, params, None)
  digits, _ = sources.load_digits('mnist', 'test', data_dir, download=False)  # uint8 [N, 28, 28]
  canvas = np.zeros((20, 40, 40, 1), np.float32)
  canvas[:, 6:34, 6:34, 0] = digits[:20] / 255.0  # the digit in the middle, the corners empty
  candidates = jnp.array([[0.0, 0.0], [-0.85, -0.85]])  # on the digit; the top-left corner
  epe_of = jax.jit(jax.vmap(functools.partial(expected_posterior_entropy, read, embed, classify),
                            (None, None, 0, None)))
  # Oracle completions: the canvas itself; nothing seen yet.
  epe = np.asarray(epe_of(jnp.zeros(config.model.posterior_features), jnp.float32(0.0),
                          jnp.asarray(canvas)[:, None], candidates))
  assert np.mean(epe[:, 0] < epe[:, 1]) >= 0.8, epe
  assert epe[:, 0].mean() < epe[:, 1].mean() - 0.1


def test_the_smoke_posterior_phase_trains_a_few_steps(data_dir, tmp_path):
  config = nog.get_config('smoke').phases.posterior
  with config.unlocked():
    config.dataset.update(data_dir=data_dir, download=False, cache_dir=str(tmp_path / 'tfds'),
                          train_examples=200, validation_examples=40, eval_examples=40)
    config.model.update(posterior_features=16)
    config.update(num_steps=2, log_every=1, checkpoint_every=0, eval_every=0)
    config.eval.batch_size = 40
  results = train.run(config, str(tmp_path / 'run'), nog.make_experiment(config))
  assert results['steps'] == 2 and 0 <= results['test_error'] <= 1


@pytest.mark.slow
def test_a_shrunk_smoke_pipeline_runs_every_phase(data_dir, tmp_path):
  """The smoke pipeline on 200 canvases with narrow widths: two steps of each training phase,
  sequences designed for a tenth of the canvases, and RAM trained on them."""
  config = nog.get_config('smoke')
  with config.unlocked():
    for name in config.pipeline:
      phase = config.phases[name]
      phase.dataset.update(data_dir=data_dir, download=False, cache_dir=str(tmp_path / 'tfds'),
                           train_examples=200, validation_examples=40, eval_examples=40)
      phase.model.update(num_glimpses=2, posterior_features=16, latent=4, core_features=16,
                         glimpse_features=16, what_features=8, where_features=8)
      phase.update(num_steps=2, log_every=1, checkpoint_every=0, eval_every=0,
                   eval_examples_during_training=40)
      phase.eval.batch_size = 40
    config.phases.ram.eval.mc_samples = 2
    config.phases.sequences.generate.chunk_size = 20
  results = train.run_pipeline(config, str(tmp_path / 'run'), nog.make_experiment)
  assert results['ram']['steps'] == 2 and np.isfinite(results['ram']['test_error'])
  stored = data.ExampleStore.open(str(tmp_path / 'run' / 'sequences' / 'store'))
  cells = stored.arrays['target_cell']
  assert cells.shape[-1] == 2 and all(len(set(row)) == 2 for row in cells.tolist())
  assert stored.arrays['expected_gain'].shape == stored.arrays['step_correct'].shape == cells.shape
  np.testing.assert_array_equal(stored.arrays['step_correct'][:, -1],
                                stored.arrays['posterior_correct'])
  assert np.isfinite(results['ram']['test_error_sampled_path'])


@pytest.mark.slow
@pytest.mark.parametrize('locator', ['grid', 'linear'])
def test_supervision_moves_the_policy_towards_the_targets(locator):
  config = nog.get_config('supervised')
  with config.unlocked():
    config.dataset.update(name='cluttered', canvas_size=40, num_clutter=2)
    config.model.update(glimpse_size=12, grid_size=4, num_glimpses=3, core_features=32,
                        glimpse_features=32, what_features=16, where_features=16,
                        locator=locator)
  experiment = nog.make_experiment(config)
  model = nog.ram_model(config)
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(8, 40, 40, 1)).astype(np.float32),
           'label': rng.integers(0, 10, 8).astype(np.int32),
           'target_location': grid_centers(4)[rng.integers(0, 16, (8, 3))],
           'stored': np.ones(8, np.float32)}
  params = experiment.init(jax.random.key(0), batch)
  targets = jnp.asarray(batch['target_location'])  # [B, T, 2]

  def target_log_prob(params):
    noise = draw_noise(jax.random.key(1), (3, 8), 16 if locator == 'grid' else 0)
    out = model.apply(params, batch['image'], noise, given_locations=targets,
                      forced=jnp.ones(8, bool))
    return out.log_probs.sum()

  grads = jax.jit(jax.grad(lambda p: experiment.loss(p, batch, jax.random.key(2), 0)[0]))(params)
  norm = optax.tree.norm(grads)
  stepped = jax.tree.map(lambda p, g: p - 0.01 * g / norm, params, grads)  # a short step downhill
  target_log_prob = jax.jit(target_log_prob)
  assert float(target_log_prob(stepped)) > float(target_log_prob(params)) + 1e-3
  # Without the supervised term, the targets' log-probability gets no push.
  with config.unlocked():
    config.loss.supervision_weight = 0.0
  plain = nog.make_experiment(config)
  grads = jax.jit(jax.grad(lambda p: plain.loss(p, batch, jax.random.key(2), 0)[0]))(params)
  locator = grads['params']['step']['location']
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(locator))


def test_reinforce_averaged_over_the_glimpses_is_the_sum_divided_by_t():
  config = nog.get_config('unsupervised')
  with config.unlocked():
    config.dataset.update(name='cluttered', canvas_size=40, num_clutter=2)
    config.model.update(glimpse_size=12, num_glimpses=3, core_features=16, glimpse_features=16,
                        what_features=8, where_features=8, locator='linear')
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(4, 40, 40, 1)).astype(np.float32),
           'label': rng.integers(0, 10, 4).astype(np.int32)}
  params = nog.make_experiment(config).init(jax.random.key(0), batch)

  def loss(reinforce_weight, average):
    with config.unlocked():
      config.loss.update(reinforce_weight=reinforce_weight, reinforce_time_average=average)
    return float(nog.make_experiment(config).loss(params, batch, jax.random.key(1), 0)[0])

  without = loss(0.0, False)
  summed, averaged = loss(1.0, False) - without, loss(1.0, True) - without
  assert abs(summed) > 1e-4
  np.testing.assert_allclose(averaged, summed / 3, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('field, value, message', [
    ('model.part', 'decoder', 'model.part'),
    ('model.grid_size', 0, 'model.grid_size'),
    ('design.samples', 0, 'design.samples'),
    ('loss.ponder_weight', -1.0, 'loss.ponder_weight'),
    ('model.classify_every_step', False, 'predict_gain needs'),
    ('model.locator', 'lstm', 'model.locator'),
])
def test_bad_fields_are_named(field, value, message):
  config = nog.get_config('stopping')
  with config.unlocked():
    section, name = field.split('.')
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    nog.make_experiment(config)


def test_a_missing_sequence_store_is_named(tmp_path, data_dir, monkeypatch):
  monkeypatch.setenv('GLIMPSE_DATA_DIR', data_dir)
  config = nog.get_config('supervised')
  with config.unlocked():
    config.data_from = str(tmp_path / 'nowhere')
    config.dataset.update(canvas_size=40, train_examples=500, validation_examples=100)
    config.model.update(glimpse_size=12, grid_size=4)
  with pytest.raises(Exception, match='nowhere'):
    train.run_pipeline(config, str(tmp_path / 'run'), nog.make_experiment)


@pytest.mark.notebook
def test_report_on_the_smoke_run(smoke, tmp_path):
  workdir, _, _ = smoke
  text = report.write_report([str(workdir)], str(tmp_path / 'page.md'))
  assert 'Sequences by experimental design' in text and 'Adaptive stopping' in text
  for name in ('page_run_epe_maps.png', 'page_attention.png', 'page_stopping.png'):
    assert (tmp_path / name).is_file(), name
  assert json.loads((workdir / 'sequences' / report.EXAMPLES_FILE).read_text())['grid_size'] == 8


def _fake_run(tmp_path, name, seed, supervised, curve, sampled=(), loss=None, targets=None):
  """A finished RAM run's workdir with validation errors `curve` (one per 1,000 steps) and the
  test errors of `sampled` single sampled-path draws."""
  workdir = tmp_path / name
  workdir.mkdir()
  config = {'seed': seed, 'data_from': 'somewhere' if supervised else None,
            'model': {'act': False, 'predict_gain': False}, 'loss': loss or {},
            'eval_every': 1000, 'eval_examples_during_training': 2000 if seed else 0}
  if targets:
    config['supervision'] = {'targets': targets}
  results = {'test_error': curve[-1], 'steps': 1000 * len(curve), 'wall_seconds': 60.0,
             'config': config}
  results.update({f'test_error_sampled_path_{k}': e for k, e in enumerate(sampled)})
  (workdir / 'results.json').write_text(json.dumps(results))
  records = [{'kind': 'eval', 'split': 'validation', 'step': 1000 * (i + 1), 'error': e}
             for i, e in enumerate(curve)]
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
  return str(workdir)


def test_report_counts_steps_to_near_best_and_to_the_common_target(tmp_path):
  runs = [_fake_run(tmp_path, 'u0', 0, False, [0.8, 0.5, 0.3, 0.2]),
          _fake_run(tmp_path, 'u1', 1, False, [0.8, 0.6, 0.35, 0.22]),
          _fake_run(tmp_path, 's0', 0, True, [0.4, 0.2, 0.19, 0.18]),
          _fake_run(tmp_path, 's1', 1, True, [0.5, 0.25, 0.2, 0.19])]
  text = report.write_report(runs, str(tmp_path / 'page.md'), margin=0.01)
  # Unsupervised: near-best at 4,000 both; the common target is mean(0.2, 0.22) + 0.01 = 0.22,
  # reached at 4,000 by both; supervised: near-best at 3,000 and 3,000, target at 2,000 and 3,000.
  assert '| unsupervised | 0, 1 | 4,000 | 4000 ± 0 | 4000 ± 0 | 21.00 ± 1.41 |' in text
  assert '| supervised | 0, 1 | 4,000 | 3000 ± 0 | 2500 ± 707 | 18.50 ± 0.71 |' in text
  assert 'Speed-up: 1.3x in steps to each run\'s near-best, 1.6x in steps to the common target' in text
  assert '| unsupervised | 3000 ± 0 | 3500 ± 707 | 4000 ± 0 |' in text
  assert '| supervised | 1500 ± 707 | 2000 ± 0 | 2000 ± 0 |' in text
  assert 'Speed-up of supervision: 2.0x to 40%, 1.8x to 30%, 2.0x to 25%.' in text


def test_report_shows_the_sampled_path_error_and_every_supervised_arm(tmp_path):
  sum_loss = {'supervision_reduction': 'sum', 'supervision_weight': 1.0}
  runs = [_fake_run(tmp_path, 'u0', 0, False, [0.8, 0.3], sampled=[0.30, 0.32, 0.34]),
          _fake_run(tmp_path, 'u1', 1, False, [0.8, 0.4], sampled=[0.40, 0.40, 0.40]),
          _fake_run(tmp_path, 's0', 0, True, [0.5, 0.2], sampled=[0.25, 0.27]),
          _fake_run(tmp_path, 'w0', 0, True, [0.4, 0.2], loss={'supervision_weight': 8.0}),
          _fake_run(tmp_path, 'c0', 0, True, [0.3, 0.1], loss=sum_loss,
                    targets='digit_center'),
          _fake_run(tmp_path, 'm0', 0, True, [0.6, 0.3], loss=sum_loss)]
  text = report.write_report(runs, str(tmp_path / 'page.md'), margin=0.01)
  # Unsupervised draws: means 0.32 and 0.40 (mean 36.00 ± 5.66), stds 0.02 and 0 (mean 1.00 pt).
  assert '| 35.00 ± 7.07 | 36.00 ± 5.66 (draws ± 1.00) |' in text
  assert '| supervised | 0 | 2,000 |' in text and '| 20.00 | 26.00 (draws ± 1.41) |' in text
  for arm in ('supervised_w8', 'supervised_center_sum', 'supervised_sum'):
    assert f'| {arm} | 0 | 2,000 |' in text, arm
    assert f'Speed-up of {arm}:' in text, arm
  assert '| supervised_w8 | 0 | 2,000 | 2000 | 2000 | 20.00 | n/a |' in text
  # to 40%: unsupervised 2000 (both), supervised_center_sum 1000: 2.0x
  assert 'Speed-up of supervised_center_sum: 2.0x to 40%' in text
  assert '(every 1,000 updates, on the whole validation split)' in text  # u0's config
  assert report.sampled_path_error({'validation_error': 0.1}) is None


def test_report_puts_the_design_based_stopping_rule_beside_the_learned_one(tmp_path):
  seq = tmp_path / 'test_sequences'
  store = data.ExampleStore(str(seq / 'store'))
  store.plan(np.arange(3), chunk_size=3)
  gains = np.array([[0.9, 0.5, 0.05], [0.9, 0.02, 0.3], [0.9, 0.3, 0.3]], np.float32)
  correct = np.array([[0, 1, 1], [0, 0, 1], [1, 0, 0]], np.float32)
  store.write_chunk(0, {'expected_gain': gains, 'step_correct': correct})
  # threshold 0.1: 2, 1 and 3 glimpses, right, wrong, wrong.
  points = report.design_stopping_points(str(seq), (0.0, 0.1))
  np.testing.assert_allclose(points, [(0.0, 3.0, 1 / 3), (0.1, 2.0, 2 / 3)], atol=1e-6)
  shutil.rmtree(seq / 'store')  # read back from the exported file once the store is gone
  np.testing.assert_allclose(report.design_stopping_points(str(seq)), points)
  assert report.design_stopping_points(str(tmp_path / 'none')) is None
  text = ''.join(report._stopping_section({}, 'mnist', str(tmp_path), 'page', points))
  assert '| design: posterior stops below expected gain 0.1 | 2.00 | 66.67 |' in text
  assert (tmp_path / 'page_stopping.png').is_file()


def test_a_longer_stored_sequence_supervises_with_its_first_glimpses():
  config = nog.get_config('supervised')
  with config.unlocked():
    config.model.num_glimpses = 3
  stored = np.arange(4 * 6 * 2, dtype=np.float32).reshape(4, 6, 2)  # designed for 6 glimpses
  np.testing.assert_array_equal(nog.supervision_targets(config, {'target_location': stored}),
                                stored[:, :3])
  with config.unlocked():
    config.model.num_glimpses = 6
  np.testing.assert_array_equal(nog.supervision_targets(config, {'target_location': stored}),
                                stored)
  with config.unlocked():
    config.model.num_glimpses = 7
  with pytest.raises(ValueError, match='model.num_glimpses=7 needs stored sequences .* got 6'):
    nog.supervision_targets(config, {'target_location': stored})
  with config.unlocked():
    config.supervision.targets = 'digit_center'
  center = np.ones((4, 2), np.float32)
  assert nog.supervision_targets(config, {'center': center}).shape == (4, 7, 2)
