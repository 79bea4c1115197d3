"""Wu, Xu & Lee's variant MNIST experiment: the paper's rows as configs, every model training,
the cost file and pictures, the smoke variants learning, and the report on fake workdirs."""

import json
import os

import jax
import matplotlib.image
import numpy as np
import pytest

from conftest import assert_trained_as, execute_notebook
from experiments import variant_mnist
from glimpse_jax import train
from glimpse_jax.reports import variant_mnist as report_variant_mnist
from glimpse_jax.plots.attention_maps import received_attention
from glimpse_jax.nets import ram_flops_per_image

PAPER_ROWS = [name for name in variant_mnist.ROWS]


# ---------------------------------------------------------------------------------------------
# Configs.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', PAPER_ROWS)
def test_each_row_trains_the_papers_setting(name):
  row, config = variant_mnist.ROWS[name], variant_mnist.get_config(name)
  batch = 32 if row.protocol == 'torch_ram' else 128
  # 10,000 or 59,000 examples / the batch, rounded half up
  epoch = {'cluttered': 10_000, 'fashion': 59_000}[row.dataset] * 2 // batch + 1 >> 1
  assert config.eval_every == epoch and config.batch_size == batch
  assert tuple(config.eval.splits) == ('validation', 'test')
  assert config.early_stopping.split == 'validation' and config.early_stopping.metric == ''
  assert (config.optimizer.name, config.optimizer.learning_rate) == row.optimizer
  assert config.paper.to_dict() == {'table': row.table, 'row': row.label,
                                    'accuracy': row.accuracy,
                                    'test_error': pytest.approx(1 - row.accuracy)}
  if row.dataset == 'cluttered':
    assert (config.dataset.name, config.dataset.canvas_size, config.dataset.train_on_the_fly,
            config.dataset.train_examples, config.dataset.eval_examples,
            config.dataset.placement) == ('cluttered_slope', 40, False, 11_000, 1_000, 'sonderby')
  else:
    assert (config.dataset.name, config.dataset.source, config.dataset.eval_examples) == (
        'mnist', 'fashion_mnist', None)
  assert config.dataset.validation_examples == 1_000
  if row.model == 'ram':
    assert (config.headline, config.eval.mc_samples, config.early_stopping.patience) == (
        'error_mc', 10, 50)
    m = config.model
    assert (m.num_glimpses, m.glimpse_size, m.num_scales) == row.glimpses
    assert (m.what_features, m.where_features, m.core_features, m.location_std) == (
        128, 128, 256, 0.17)
    paper = variant_mnist.get_config(f'{name}_paper')
    assert paper.paper.row == row.label
    if row.protocol == 'torch_ram':  # the 2018 PyTorch RAM: 200 epochs in either variant
      assert paper.num_steps == config.num_steps == 200 * 313
      assert (config.optimizer.name, config.optimizer.momentum, m.standardise) == (
          'momentum', 0.5, True)
      plateau = config.optimizer.plateau
      assert (plateau.patience, plateau.factor, plateau.split, plateau.metric) == (
          50, 0.1, 'validation', 'nll')
    else:
      assert paper.num_steps > config.num_steps and not m.standardise
      assert config.optimizer.plateau.patience == 0
      assert config.num_steps == {'cluttered': 150, 'fashion': 100}[row.dataset] * epoch
  else:
    assert (config.headline, config.early_stopping.patience) == ('error', 2)
    plateau = config.optimizer.plateau
    assert (plateau.patience, plateau.factor, plateau.min_delta) == (1, 0.5, 5e-4)
    assert plateau.split == 'validation'
    assert config.model.layer_norm and config.model.dropout == 0.5
    if row.model == 'attention_cnn':
      assert (config.model.head, config.model.hidden) == ('weighted_sum', 740)


@pytest.mark.parametrize('name, epoch', [('cnn_cluttered', 78), ('ram_cluttered_g6_sgd1e-2', 313),
                                         ('ram_fashion_8x8', 461)])
def test_fields_counted_in_epochs_follow_the_batch_size(name, epoch):
  config = variant_mnist.get_config(name)
  epochs = config.num_steps // epoch
  assert (config.eval_every, config.checkpoint_every) == (epoch, 10 * epoch)
  for batch in (32, 64, 256):
    config.batch_size = batch
    per_epoch = variant_mnist.epoch_steps(config.dataset, batch)
    assert per_epoch == round({78: 10_000, 313: 10_000, 461: 59_000}[epoch] / batch + 1e-9)
    assert (config.eval_every, config.num_steps, config.checkpoint_every) == (
        per_epoch, epochs * per_epoch, 10 * per_epoch)
    assert json.loads(config.to_json_best_effort())['eval_every'] == per_epoch
  config.eval_every = 7  # one set explicitly keeps its value
  config.batch_size = 128
  assert config.eval_every == 7
  assert config.num_steps == epochs * variant_mnist.epoch_steps(config.dataset, 128)


def test_ablations_change_one_setting_of_their_paper_row_at_a_time():
  for name, ablation in variant_mnist.ABLATIONS.items():
    base, dataset, options = ablation.row, ablation.dataset, ablation.options
    config, paper = variant_mnist.get_config(name), variant_mnist.get_config(base)
    variant_mnist.validate(config)
    assert config.paper.row == '' and config.dataset.placement == (
        'slope' if dataset == 'cluttered_wedge' else 'sonderby')
    assert {k: config.model[k] for k, _ in options} == dict(options)
    assert report_variant_mnist.method_name(config.to_dict()) != paper.paper.row
    for field in ('num_steps', 'eval_every', 'batch_size', 'early_stopping', 'optimizer'):
      assert config[field] == paper[field], (name, field)
  # Each ablation differs from another method in exactly one setting: the report can chain them.
  settings = [report_variant_mnist.cnn_settings(variant_mnist.get_config(n).to_dict())[0]
              for n in (*variant_mnist.ABLATIONS, 'cnn_cluttered', 'attention_cnn_cluttered')]
  for one in settings:
    assert any(sum(one[k] != other[k] for k in one) == 1 for other in settings)


@pytest.mark.parametrize('name', PAPER_ROWS)
def test_the_report_names_each_row_as_the_paper_row_it_records(name):
  config = variant_mnist.get_config(name).to_dict()
  assert report_variant_mnist.method_name(config) == config['paper']['row']


@pytest.mark.parametrize('field, value, message', [
    ('model.num_glimpses', 6, "paper.row 'RAM, cluttered, 4 glimpses.*model.num_glimpses=4"),
    ('optimizer.learning_rate', 1e-3, 'trains with optimizer.learning_rate=0.0003, got 0.001'),
    ('paper.row', 'RAM, mnist', 'paper.row must be one of'),
    ('model.name', 'vit', 'model.name must be one of'),
    ('model.glimpse_size', 41, r'model.glimpse_size must be an integer in \[1, 40\]'),
    ('model.location_std', 0.0, 'model.location_std must be > 0'),
    ('loss.reinforce_weight', -1.0, 'loss.reinforce_weight must be >= 0'),
    ('headline', 'bound', "headline must be one of \\['error', 'error_mc'\\]"),
    ('dataset.placement', 'wedge', 'dataset.placement must be None or'),
    ('dataset.train_on_the_fly', True, "dataset.placement='sonderby' places the fixed splits"),
])
def test_bad_config_fails_naming_the_field(field, value, message):
  config = variant_mnist.get_config('ram_cluttered_g4')
  section, _, name = field.rpartition('.')
  with config.unlocked():
    (config[section] if section else config)[name] = value
  with pytest.raises(ValueError, match=message):
    variant_mnist.make_experiment(config)


@pytest.mark.parametrize('field, value, message', [
    ('model.dropout', 1.0, r'model.dropout must be a rate in \[0, 1\), got 1.0'),
    ('model.head', 'mean', "model.head must be one of \\['flatten', 'weighted_sum'\\]"),
    ('model.hidden', 32, "trains with model.hidden=740, got 32"),
    ('batch_size', 64, None),
])
def test_bad_cnn_config_fails_naming_the_field(field, value, message):
  config = variant_mnist.get_config('attention_cnn_cluttered')
  section, _, name = field.rpartition('.')
  (config[section] if section else config)[name] = value
  if message is None:  # the batch size is ours, not the paper's: any one keeps the row
    variant_mnist.make_experiment(config)
    return
  with pytest.raises(ValueError, match=message):
    variant_mnist.make_experiment(config)


def test_a_changed_row_trains_once_its_paper_row_is_cleared():
  config = variant_mnist.get_config('cnn_cluttered')
  with config.unlocked():
    config.optimizer.learning_rate = 3e-4
    config.paper.row = ''
  variant_mnist.make_experiment(config)
  assert report_variant_mnist.method_name(config.to_dict()) == (
      'simple CNN, cluttered, layer norm, dropout 0.5, Adam 3e-4')
  config.dataset.placement = 'slope'  # our earlier wedge reading
  config.dataset.train_on_the_fly = True  # training canvases drawn fresh: another method
  variant_mnist.make_experiment(config)
  assert report_variant_mnist.method_name(config.to_dict()) == (
      'simple CNN, cluttered, wedge placement, fresh canvases, layer norm, dropout 0.5, Adam 3e-4')
  with pytest.raises(ValueError, match="trains with batch_size=32, got 128"):
    sgd = variant_mnist.get_config('ram_cluttered_g6_sgd1e-2')
    sgd.batch_size = 128
    variant_mnist.make_experiment(sgd)


def test_standardised_inputs_reach_the_ram_network_only():
  config = _tiny('ram_smoke')
  images = np.full((2, 28, 28, 1), variant_mnist.INPUT_MEAN, np.float32)
  np.testing.assert_array_equal(variant_mnist.network_input(config, images), images)
  with config.unlocked():
    config.model.standardise = True
  np.testing.assert_allclose(variant_mnist.network_input(config, images), 0.0, atol=1e-6)
  np.testing.assert_allclose(variant_mnist.network_input(config, images + 0.3081), 1.0, rtol=1e-5)


def test_unknown_variant_lists_the_allowed_ones():
  with pytest.raises(ValueError, match='ram_cluttered_g8'):
    variant_mnist.get_config('ram_cluttered_g5')


def test_cost_per_image():
  assert report_variant_mnist.COST_FILE == variant_mnist.COST_FILE
  ram = variant_mnist.get_config('ram_cluttered_g8')
  cost = variant_mnist.cost(ram)
  model = variant_mnist.make_model(ram)
  assert cost['flops_per_pass'] == ram_flops_per_image(model, (40, 40, 1), 8)
  assert (cost['passes_per_prediction'], cost['inputs_per_pass']) == (10, 8 * 3 * 144)
  assert cost['flops_per_prediction'] == 10 * cost['flops_per_pass']
  # nets/cnn.py's counts: 5,302,040 and, with the weighted-sum head, 10,564,840 multiply-adds on
  # 40x40 (6,236,392 on 28x28; 6,162,752 with the flattened head).
  simple = variant_mnist.cost(variant_mnist.get_config('cnn_cluttered'))
  assert (simple['flops_per_pass'], simple['passes_per_prediction']) == (2 * 5_302_040, 1)
  attention = variant_mnist.cost(variant_mnist.get_config('attention_cnn_fashion'))
  assert (attention['flops_per_pass'], attention['inputs_per_pass']) == (2 * 6_236_392, 784)
  plain = variant_mnist.cost(variant_mnist.get_config('attention_cnn_cluttered_plain'))
  assert plain['flops_per_pass'] == 2 * 10_560_320


# ---------------------------------------------------------------------------------------------
# The models.
# ---------------------------------------------------------------------------------------------
def _tiny(name):
  config = variant_mnist.get_config(name)
  with config.unlocked():
    config.dataset.update(dict(variant_mnist.DATASETS['fashion'], placement=None))
    if config.model.name == 'ram':
      config.model.update(num_glimpses=3, what_features=8, where_features=8,
                          glimpse_features=16, core_features=16)
    config.paper.row = ''
    config.eval.mc_samples = 2
  return config


def _batch(n=4, shape=(28, 28, 1)):
  rng = np.random.default_rng(0)
  return {'image': rng.uniform(size=(n, *shape)).astype(np.float32),
          'label': rng.integers(0, 10, size=n).astype(np.int32)}


@pytest.mark.parametrize('name', ['ram_smoke', 'cnn_smoke', 'attention_cnn_smoke'])
def test_each_model_trains_and_every_parameter_gets_a_gradient(name):
  config = _tiny(name)
  experiment = variant_mnist.make_experiment(config)
  batch = _batch()
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda p: experiment.loss(p, batch, jax.random.key(1), 0), has_aux=True))
  (loss, metrics), grads = loss_and_grad(params)
  assert np.isfinite(loss) and {'nll', 'error'} <= set(metrics)
  for path, g in jax.tree.leaves_with_path(grads):
    assert np.abs(g).max() > 0, f'no gradient reaches {jax.tree_util.keystr(path)}'
  values = jax.jit(experiment.evaluate)(params, batch, jax.random.key(2))
  assert config.headline in values and values[config.headline].shape == (4,)


@pytest.mark.parametrize('name', [pytest.param('ram_smoke', marks=pytest.mark.slow),
                                  'cnn_smoke'])
def test_a_shrunk_smoke_trains_a_few_steps_and_writes_its_cost(name, data_dir, tmp_path):
  config = _tiny(name)
  with config.unlocked():
    config.dataset.update(data_dir=data_dir, download=False, validation_examples=64,
                          eval_examples=64)
    config.update(num_steps=4, eval_every=2, log_every=2, checkpoint_every=0,
                  eval_examples_during_training=64, batch_size=16)
    config.eval.batch_size = 64
  results = train.run(config, str(tmp_path / 'run'), variant_mnist.make_experiment(config))
  assert results['steps'] == 4 and np.isfinite(results[f'test_{config.headline}'])
  cost = json.loads((tmp_path / 'run' / variant_mnist.COST_FILE).read_text())
  assert cost == variant_mnist.cost(config)


def test_received_attention_averages_the_queries():
  weights = np.random.default_rng(0).dirichlet(np.ones(6), size=(2, 3, 6))  # [N, heads, T, T]
  maps = received_attention(weights, (2, 3))
  assert maps.shape == (2, 3, 2, 3)
  np.testing.assert_allclose(maps.sum((-1, -2)), 1.0)
  np.testing.assert_allclose(maps[1, 2, 1, 0], weights[1, 2, :, 3].mean())
  with pytest.raises(ValueError, match='a 2x2 grid of blocks needs T = 4 tokens, got T = 6'):
    received_attention(weights, (2, 2))


# ---------------------------------------------------------------------------------------------
# The smoke variants: the notebook's default run trains ram_smoke and attention_cnn_smoke.
# ---------------------------------------------------------------------------------------------
def _smoke_results(name, workdir):
  """`workdir`'s results and metrics, checking that it trained variant `name` and its cost file."""
  config = variant_mnist.get_config(name)
  results = train.read_results(str(workdir))
  assert_trained_as(results['config'], config)
  cost = json.loads((workdir / variant_mnist.COST_FILE).read_text())
  assert cost == variant_mnist.cost(config)
  return results, train.read_metrics(str(workdir))


def _assert_cnn_smoke_learned(name, most_error, workdir):
  results, records = _smoke_results(name, workdir)
  assert results['test_error'] < most_error, results
  assert [r['step'] for r in records if r['kind'] == 'plateau'] == [100]


@pytest.mark.notebook
@pytest.mark.learning
def test_notebook_smokes_learn_and_show_accuracy_glimpses_attention_and_cost(
    data_dir, tmp_path, python3_kernel):
  run = execute_notebook('variant_mnist.ipynb', tmp_path, data_dir, python3_kernel, steps=None)
  for variant, picture in (('ram_smoke', 'glimpse_sequence.png'),
                           ('attention_cnn_smoke', 'attention_maps.png')):
    for name in ('results.json', 'cost.json', picture):
      assert (run.workdir / variant / name).is_file(), (variant, name)
  # accuracy during training, glimpses in order, attention maps, RAM's glimpses from `predict`
  assert len(run.pictures) == 4
  assert 'ram_smoke: predicted classes [' in run.printed
  assert 'test accuracy' in run.printed and 'MFLOP per pass' in run.printed
  assert 'devices:' in run.printed

  # RAM: 30 epochs of the 10,000 cluttered canvases: 79% Monte-Carlo test accuracy (chance 10%).
  workdir = run.workdir / 'ram_smoke'
  results, records = _smoke_results('ram_smoke', workdir)
  assert results['headline'] == 'error_mc' and results['test_error_mc'] < 0.25, results
  assert sorted({(r['step'], r['split']) for r in records if r['kind'] == 'eval'}) == [
      (step, split) for step in (1170, 2340) for split in ('test', 'validation')]
  for name in ('glimpse_sequence.png', 'glimpse_paths.png'):
    assert matplotlib.image.imread(str(workdir / name)).ndim == 3, name
  # The self-attention CNN with the plateau rule: 52.2% test accuracy at seed 0 (chance 10%).
  _assert_cnn_smoke_learned('attention_cnn_smoke', 0.53, run.workdir / 'attention_cnn_smoke')
  image = matplotlib.image.imread(str(run.workdir / 'attention_cnn_smoke' / 'attention_maps.png'))
  assert image.ndim == 3


@pytest.mark.learning
def test_cnn_smoke_learns_with_the_plateau_rule(data_dir, tmp_path):
  config = variant_mnist.get_config('cnn_smoke')
  with config.unlocked():
    config.dataset.update(data_dir=data_dir, cache_dir=str(tmp_path / 'tfds'))
  train.run(config, str(tmp_path / 'run'), variant_mnist.make_experiment(config))
  _assert_cnn_smoke_learned('cnn_smoke', 0.4, tmp_path / 'run')  # 64.8% at seed 0 (chance 10%)


# ---------------------------------------------------------------------------------------------
# The report, on fake workdirs.
# ---------------------------------------------------------------------------------------------
def _errors(headline, accuracy):
  """The evaluation values of an accuracy: greedy 5 points below it for RAM's MC headline."""
  return {'error': 1 - accuracy + (0.05 if headline != 'error' else 0), headline: 1 - accuracy}


def _fake_run(root, variant, seed, *, accuracies=(0.5, 0.8, 0.7), experiment='variant_mnist',
              cost=True, picture=None, name=None):
  """A finished run of `variant`: validation accuracies per epoch, test 10 points below."""
  config = variant_mnist.get_config(variant).to_dict()
  config.update(experiment=experiment, seed=seed)
  workdir = root / (name or f'{variant}-seed{seed}')
  workdir.mkdir()
  headline, every = config['headline'], config['eval_every']
  lines = [{'kind': 'eval', 'step': every * epoch, 'split': split, **_errors(headline, value)}
           for epoch, accuracy in enumerate(accuracies, 1)
           for split, value in (('validation', accuracy), ('test', accuracy - 0.1))]
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
  results = {**{f'test_{k}': v for k, v in _errors(headline, accuracies[-1]).items()},
             'headline': headline, 'steps': every * len(accuracies), 'wall_seconds': 60.0 * seed,
             'num_params': 1000, 'stopped_early': seed == 0, 'config': config}
  (workdir / 'results.json').write_text(json.dumps(results))
  if cost:
    (workdir / 'cost.json').write_text(json.dumps(
        {'model': config['model']['name'], 'flops_per_pass': 2_000_000, 'inputs_per_pass': 1728,
         'passes_per_prediction': 10 if headline == 'error_mc' else 1,
         'flops_per_prediction': 20_000_000 if headline == 'error_mc' else 2_000_000}))
  if picture:
    matplotlib.image.imsave(str(workdir / picture), np.zeros((4, 4, 3)))
  return str(workdir)


def _rows(markdown):
  return [[cell.strip() for cell in line.strip('|').split('|')]
          for line in markdown.splitlines() if line.startswith('|')]


def test_report_writes_both_tables_with_the_papers_numbers_and_costs(tmp_path):
  runs = [_fake_run(tmp_path, 'cnn_cluttered', s, accuracies=(0.9, 0.95 - 0.01 * s))
          for s in range(2)]
  runs += [_fake_run(tmp_path, 'ram_cluttered_g8', s, picture='glimpse_sequence.png')
           for s in range(3)]
  runs += [_fake_run(tmp_path, 'attention_cnn_fashion', 0, picture='attention_maps.png')]
  out = tmp_path / 'results' / 'variant_mnist.md'
  report_variant_mnist.main([*runs, '--out', str(out)])
  text = out.read_text()
  assert text.index('## Table 1: RAM') < text.index('## Table 2: CNN baselines')
  rows = _rows(text)
  assert rows[0] == report_variant_mnist.HEADER
  ram = rows[2]  # accuracy 70% (MC), greedy 65%; best validation 80% at epoch 2: test 70%
  assert ram[:8] == ['RAM, cluttered, 8 glimpses of 12x12 x 3 scales, Adam 3e-4', '0, 1, 2',
                     '70.00 ± 0.00', '93.50', '65.00 ± 0.00', '70.00 ± 0.00',
                     f'{3 * 78 * 128 / 10_000:.1f} ± 0.0', '1/3']
  # 2 MFLOP per pass, 10 passes: 0.7 / 0.02 GFLOP = 35 per GFLOP; greedy 0.65 / 0.002 = 325.
  assert ram[8:15] == ['1,000', '2.00', '10', '35.0 ± 0.0', '325.0 ± 0.0', '1,728', '1.0 ± 1.0']
  cnn_rows = {row[0]: row for row in rows[3:] if row[0] != 'method'}
  assert cnn_rows['simple CNN, cluttered, layer norm, dropout 0.5'][1:4] == [
      '0, 1', '94.50 ± 0.71', '94.40']
  assert cnn_rows['self-attention CNN, fashion, weighted-sum head of 740, layer norm, '
                  'dropout 0.5'][3] == '92.05'
  for figure in ('variant_mnist_validation.png',
                 'variant_mnist_ram_cluttered_8_glimpses_of_12x12_x_3_scales_adam_3e_4'
                 '_glimpses.png',
                 'variant_mnist_self_attention_cnn_fashion_weighted_sum_head_of_740_layer_norm_'
                 'dropout_0_5_attention.png'):
    assert matplotlib.image.imread(str(out.parent / figure)).ndim == 3, figure
    assert f'({figure})' in text


def test_report_keeps_changed_runs_apart_from_the_papers_rows(tmp_path):
  changed = variant_mnist.get_config('cnn_cluttered').to_dict()
  runs = [_fake_run(tmp_path, 'cnn_cluttered', 0), _fake_run(tmp_path, 'cnn_smoke', 0)]
  groups = report_variant_mnist.group_runs([report_variant_mnist.load_run(r) for r in runs])
  name = 'simple CNN, cluttered, layer norm, dropout 0.5'
  assert set(groups) == {(name, changed['paper']['row']), (f'{name}, Adam 1e-3, batch 32', '')}


def test_report_says_what_each_single_change_closes(tmp_path):
  # Final test accuracies (seed 0; seed 1 a point higher): wedge plain 0.85, Sonderby plain 0.90,
  # + dropout 0.93, + layer norm (the paper row) 0.94; a Fashion run joins no step.
  runs = [_fake_run(tmp_path, variant, s, accuracies=(0.5, accuracy + 0.01 * s))
          for variant, accuracy in (('cnn_cluttered_wedge_plain', 0.85),
                                    ('cnn_cluttered_plain', 0.90), ('cnn_cluttered_dropout', 0.93),
                                    ('cnn_cluttered', 0.94)) for s in range(2)]
  runs.append(_fake_run(tmp_path, 'cnn_fashion', 0))
  out = tmp_path / 'variant_mnist.md'
  text = report_variant_mnist.write_report(runs, str(out))
  section = text[text.index('## What closes the cluttered CNN gap'):]
  rows = _rows(section)
  assert rows[0] == report_variant_mnist.GAP_HEADER
  assert rows[2:] == [
      ['simple CNN', 'placement', 'wedge', 'Sonderby', '85.50 ± 0.71', '90.50 ± 0.71', '+5.00'],
      ['simple CNN', 'dropout', '0', '0.5', '90.50 ± 0.71', '93.50 ± 0.71', '+3.00'],
      ['simple CNN', 'layer norm', 'no', 'yes', '93.50 ± 0.71', '94.50 ± 0.71', '+1.00']]
  # Without pairs that differ in one setting, no section.
  alone = report_variant_mnist.write_report(runs[-3:], str(tmp_path / 'alone.md'))
  assert 'What closes' not in alone


def test_report_refuses_other_experiments_repeated_seeds_and_missing_costs(tmp_path):
  other = _fake_run(tmp_path, 'ram_smoke', 0, experiment='ram')
  with pytest.raises(ValueError, match="'ram'"):
    report_variant_mnist.write_report([other], str(tmp_path / 'out.md'))
  first = _fake_run(tmp_path, 'cnn_fashion', 1)
  again = _fake_run(tmp_path, 'cnn_fashion', 1, name='cnn_fashion-again')
  with pytest.raises(ValueError,
                     match="'simple CNN, fashion, layer norm, dropout 0.5' has seed 1 twice"):
    report_variant_mnist.write_report([first, again], str(tmp_path / 'out.md'))
  (tmp_path / 'elsewhere').mkdir()
  same_name = _fake_run(tmp_path / 'elsewhere', 'cnn_fashion', 2, name='cnn_fashion-seed1')
  with pytest.raises(ValueError, match='two workdirs share the name'):
    report_variant_mnist.write_report([first, same_name], str(tmp_path / 'out.md'))
  missing = _fake_run(tmp_path, 'ram_fashion_8x8', 0, cost=False)
  with pytest.raises(ValueError, match='holds no cost.json'):
    report_variant_mnist.write_report([missing], str(tmp_path / 'out.md'))


def test_report_shows_where_rams_glimpses_look(tmp_path):
  ram = _fake_run(tmp_path, 'ram_fashion_7x7x3', 0)
  path = os.path.join(ram, 'results.json')
  results = json.load(open(path))
  parked = [0.0, 0.0, 0.02, 0.32, 0.75, 0.93]  # the later glimpses' means at the edge
  results.update({f'test_saturated_g{t}': v for t, v in enumerate(parked, 1)})
  results.update({f'test_on_ink_g{t}': 0.5 for t in range(1, 7)})
  json.dump(results, open(path, 'w'))
  cnn = _fake_run(tmp_path, 'cnn_fashion', 0)
  text = report_variant_mnist.write_report([ram, cnn], str(tmp_path / 'variant_mnist.md'))
  section = text[text.index('## Where the policy looks'):]
  rows = _rows(section)
  assert len(rows) == 3 and rows[2][0] == 'ram_fashion_7x7x3-seed0'  # the CNN has no row
  assert rows[2][2] == '93.0' and rows[2][4] == '50.0'  # worst glimpse saturated, mean on ink
  assert (tmp_path / 'variant_mnist_per_glimpse.png').stat().st_size > 0
  cnn_only = report_variant_mnist.write_report([cnn], str(tmp_path / 'cnn.md'))
  assert 'Where the policy looks' not in cnn_only
