"""The glimpse tester: its record phase stores what `predict` returns for the tested run, its
training batches carry those locations, the benchmark runs it after every glimpse run, bad inputs
fail naming the value, and (slow tier) it learns the class from on-digit locations and nothing
from locations that see no ink."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import glimpse_jax
from glimpse_jax import data, train
from glimpse_jax import glimpse_bench as gb
from glimpse_jax import glimpse_tester as gt
from glimpse_jax.train.metrics import write_config
from glimpse_jax.reports import glimpse_bench as report
from glimpse_jax.train.sources import open_training_store


def _unlocked_copy(config):
  copy = config.copy_and_resolve_references()
  copy.unlock()
  return copy


def _save_run(workdir, config, params) -> str:
  """A run's workdir as training leaves it: config.json and a checkpoint of `params`."""
  state = train.TrainState.create(apply_fn=None, params=params, tx=optax.adam(1e-3))
  checkpointer = train.Checkpointer(str(workdir), keep=1)
  checkpointer.save(state, 1, {})
  checkpointer.close()
  write_config(str(workdir), config)
  return str(workdir)


def _zeros(experiment, batch):
  """Parameters of `experiment`'s shapes, all zero (no model is run to make them)."""
  shapes = jax.eval_shape(experiment.init, jax.random.key(0), batch)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _canvases(config, count=8):
  """`count` fixed test canvases of the config's dataset, as an evaluation batch."""
  return next(data.eval_batches(config.dataset, count, split='test'))


def _run_config(method, data_dir, glimpses=2, task='cluttered60'):
  config = _unlocked_copy(gb.method_config(method, task, glimpses, seed=0, budget='_smoke'))
  if train.is_pipeline(config):
    config = _unlocked_copy(config.phases[gb.METHODS[method].result_phase])
  config.dataset.data_dir = data_dir
  return config


def _tester_configs(run_dir, data_dir, glimpses=2, source='predict', steps=4):
  """(record, tester) configs of the smoke budget reading the run in `run_dir`."""
  budget = gt.TesterBudget(num_steps=steps, batch_size=16, train_canvases=64,
                           checkpoint_every=0, log_every=2)
  retina = gb.TASKS['cluttered60'].retina
  (_, record), (_, tester) = gt.phase_configs(
      task_dataset=gb.TASKS['cluttered60'].dataset, glimpses=glimpses,
      retina=(retina.glimpse_size, retina.num_scales, retina.scale_factor), budget=budget,
      seed=0, run=None if source == 'center' else run_dir, source=source, eval_examples=32,
      eval_batch_size=32)
  for config in (record, tester):
    config.dataset.data_dir = data_dir
  return record, tester


@pytest.fixture(scope='module')
def recorded(tmp_path_factory, data_dir):
  """A RAM run at T = 2 (fresh parameters, saved as training saves them) and its record phase's
  store of 64 fixed training canvases."""
  folder = tmp_path_factory.mktemp('tester')
  config = _run_config('ram', data_dir)
  experiment = gb.make_experiment(config)
  params = jax.jit(experiment.init)(jax.random.key(3), _canvases(config))
  run_dir = _save_run(folder / 'run', config, params)
  record, tester = _tester_configs(run_dir, data_dir)
  record_dir = str(folder / 'tester_record')
  tester.data_from = record_dir
  results = train.generate(record, record_dir, gt.make_experiment(record))
  return run_dir, record_dir, record, tester, results


def test_recorded_locations_are_what_predict_returns_for_the_run(recorded):
  run_dir, record_dir, record, _, results = recorded
  assert results['examples'] == 64 and results['fields'] == {'locations': ['float32', [2, 2]]}
  stored = train.open_store(record_dir)
  batch = next(data.index_batches(record.dataset, 'train', stored.indices[:16], 16))
  expected = glimpse_jax.predict(glimpse_jax.load_run(run_dir), batch['image'])['locations']
  np.testing.assert_allclose(stored.lookup(batch['index'])['locations'], expected, atol=1e-6)
  assert expected.shape == (16, 2, 2) and np.ptp(expected) > 0  # differs between canvases


def test_the_testers_batches_carry_the_stored_locations_and_it_reads_them(recorded):
  _, record_dir, _, tester, _ = recorded
  join = open_training_store(record_dir, tester.dataset)
  batch = next(data.train_stream(tester.dataset, 16, seed=0, join=join))
  assert batch['locations'].shape == (16, 2, 2) and batch['stored'].all()
  np.testing.assert_array_equal(batch['locations'],
                                join.lookup(batch['index'])['locations'])
  experiment = gt.make_experiment(tester)
  assert experiment.frozen_models == (gt.TESTED,)
  params = jax.jit(experiment.init)(jax.random.key(0), batch)
  loss = jax.jit(experiment.loss)
  value, metrics = loss(params, batch, jax.random.key(1), 0, {})
  moved = dict(batch, locations=-batch['locations'])
  assert float(loss(params, moved, jax.random.key(1), 0, {})[0]) != float(value)
  assert set(metrics) == {'nll', 'error'}


def test_the_tester_is_tested_at_the_runs_own_test_locations(recorded):
  run_dir, _, _, tester, _ = recorded
  experiment = gt.make_experiment(tester)
  batch = _canvases(tester, 16)
  params = jax.jit(experiment.init)(jax.random.key(0), batch)
  frozen = {gt.TESTED: train.load_params(run_dir)}
  values = jax.jit(experiment.evaluate)(params, batch, jax.random.key(2), frozen)
  locations = glimpse_jax.predict(glimpse_jax.load_run(run_dir), batch['image'])['locations']
  model = gt.make_model(tester)
  out = model.apply(params, jnp.asarray(batch['image']),
                    gt.ram_noise(model, 2, 16), given_locations=jnp.asarray(locations),
                    forced=jnp.ones((16,), bool))
  errors = (np.argmax(out.logits, -1) != batch['label']).astype(np.float32)
  np.testing.assert_array_equal(values['error'], errors)
  assert {'on_ink_g1', 'on_digit_g2', 'nll'} <= set(values)


def test_the_oracle_source_records_the_digit_center(data_dir, tmp_path):
  record, tester = _tester_configs(None, data_dir, glimpses=4, source='center')
  experiment = gt.make_experiment(record)
  assert experiment.frozen_models == ()
  batch = _canvases(record)
  out = experiment.generate(batch, jax.random.key(0), None)['locations']
  np.testing.assert_array_equal(out, np.repeat(batch['center'][:, None], 4, axis=1))
  tester.data_from = str(tmp_path)
  assert gt.make_experiment(tester).frozen_models == ()


def test_the_benchmark_runs_a_tester_after_every_glimpse_run():
  config = gb.get_config('cluttered60_smoke')
  names = list(config.pipeline)
  glimpse_runs = [(run, m) for run, m, glimpses, _ in gb.bench_runs('cluttered60_smoke')
                  if glimpses is not None]
  assert glimpse_runs
  for run, method in glimpse_runs:
    result_phase = gb.METHODS[method].result_phase
    tested = f'{run}/{result_phase}' if result_phase else run
    record, tester = f'{run}/tester_record', f'{run}/tester'
    assert names.index(tested) < names.index(record) == names.index(tester) - 1, run
    record_config, tester_config = config.phases[record], config.phases[tester]
    assert record_config.kind == 'generate' and tester_config.kind == 'train'
    assert record_config.experiment == tester_config.experiment == gt.EXPERIMENT
    assert tester_config.data_from == record
    if tester_config.tester.source == 'predict':
      assert record_config.frozen[gt.TESTED] == tester_config.frozen[gt.TESTED] == tested
    assert tester_config.model.num_glimpses == int(run.split('-g')[1].split('-')[0])
    assert tester_config.dataset.train_examples == 64 and tester_config.num_steps == 4
    for field in ('name', 'source', 'canvas_size', 'seed'):
      assert tester_config.dataset[field] == gb.TASKS['cluttered60'].dataset[field]
    assert not tester_config.dataset.train_on_the_fly
  assert not any(n.startswith('cnn-seed0/') for n in names)
  # The same tester for every method: only the tested run and T differ.
  def fixed(name):
    tester = json.loads(config.phases[name].to_json_best_effort())
    tester['frozen'] = tester['data_from'] = tester['model']['num_glimpses'] = None
    tester['phase'] = tester['tester'] = None
    return tester
  testers = [f'{run}/tester' for run, _ in glimpse_runs]
  assert all(fixed(t) == fixed(testers[0]) for t in testers)
  assert set(gb.TESTER_BUDGETS) == set(gb.BUDGETS)
  paper = gb.get_config('translated60_paper').phases['ram-g8-seed2/tester']
  assert paper.num_steps == 10_000 and paper.dataset.train_examples is None
  cpu = gb.get_config('translated60').phases['ram-g8-seed2/tester']
  assert (cpu.num_steps, cpu.batch_size, cpu.dataset.train_examples) == (2_500, 64, None)
  assert gb.make_experiment(config.phases['ram-g2-seed0/tester_record']).generate is not None


def test_an_oracle_run_is_tested_at_the_digit_center():
  config = _unlocked_copy(gb.method_config('ram', 'cluttered60', 4))
  assert gb.tester_source(config) == 'predict'
  config.model.fixed_locations = 'center'
  assert gb.tester_source(config) == 'center'


@pytest.mark.parametrize('change, message', [
    (lambda c: c.tester.update(source='oracle'), "tester.source must be one of .* got 'oracle'"),
    (lambda c: c.tester.update(source='center'),
     "tester.source='center' takes no frozen run, got frozen names \\['run'\\]"),
    (lambda c: c.dataset.update(train_on_the_fly=True), 'train_on_the_fly=False'),
    (lambda c: c.model.update(num_glimpses=0), 'model.num_glimpses must be an integer >= 1'),
])
def test_bad_tester_fields_fail_naming_the_value(change, message, tmp_path):
  _, tester = _tester_configs(str(tmp_path / 'run'), None)
  tester.data_from = str(tmp_path)
  change(tester)
  with pytest.raises(ValueError, match=message):
    gt.make_experiment(tester)
  _, tester = _tester_configs(str(tmp_path / 'run'), None)
  with pytest.raises(ValueError, match='set data_from'):
    gt.make_experiment(tester)


def test_a_missing_run_fails_naming_it(tmp_path, data_dir):
  missing = str(tmp_path / 'no-such-run')
  with pytest.raises(ValueError, match=f"frozen.run='{missing}' holds no config.json"):
    gt.tested_experiment(missing)
  record, _ = _tester_configs(missing, data_dir)
  with pytest.raises(ValueError, match=f"frozen.run='{missing}'"):
    train.generate(record, str(tmp_path / 'record'), gt.make_experiment(record))


def test_a_run_without_locations_fails_naming_it(tmp_path, data_dir):
  config = _unlocked_copy(gb.method_config('cnn', 'cluttered60', None, budget='_smoke'))
  config.dataset.data_dir = data_dir
  batch = _canvases(config, 2)
  params = _zeros(gb.make_experiment(config), batch)
  run_dir = _save_run(tmp_path / 'cnn', config, params)
  record, _ = _tester_configs(run_dir, data_dir)
  generate = jax.jit(gt.make_experiment(record).generate)  # fails while tracing
  with pytest.raises(ValueError, match=f"frozen.run='{run_dir}': its predict returns no "
                                       r"locations \(only \['probabilities'\]\)"):
    generate(batch, jax.random.key(0), {gt.TESTED: params})
  record.model.num_glimpses = 3  # a RAM run of T = 2 tested as T = 3
  ram = _run_config('ram', data_dir)
  ram_params = _zeros(gb.make_experiment(ram), batch)
  ram_dir = _save_run(tmp_path / 'ram', ram, ram_params)
  record.frozen.run = ram_dir
  with pytest.raises(ValueError, match=r'predicts locations of shape \(2, 2, 2\), expected '
                                       r'\[B, model.num_glimpses=3, 2\]'):
    jax.jit(gt.make_experiment(record).generate)(batch, jax.random.key(0),
                                                 {gt.TESTED: ram_params})


@pytest.mark.slow
def test_the_tester_learns_from_on_digit_locations_and_nothing_without_ink(tmp_path, data_dir):
  """One 16-pixel scale on translated 60x60 digits, 400 updates of 64 over 2,000 canvases:
  read at the digit's center the tester learns the class; read at the top-left corner, whose
  patch sees no ink, it stays at chance."""
  budget = gt.TesterBudget(num_steps=400, batch_size=64, train_canvases=2_000,
                           checkpoint_every=0, log_every=100)
  task = gb.TASKS['translated60'].dataset

  def configs(run, source):
    (_, record), (_, tester) = gt.phase_configs(
        task_dataset=task, glimpses=2, retina=(16, 1, 2), budget=budget, seed=0, run=run,
        source=source, eval_examples=1_000, eval_batch_size=500)
    for config in (record, tester):
      config.dataset.data_dir = data_dir
    return record, tester

  # A RAM run whose locator parks at (-1, -1): its mean's kernel zero, its bias far negative.
  run = _unlocked_copy(gb.method_config('ram', 'translated60', 2, budget='_smoke'))
  run.dataset.data_dir = data_dir
  params = gb.make_experiment(run).init(jax.random.key(0), _canvases(run, 2))
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: (jnp.full_like(x, -10.0) if 'bias' in jax.tree_util.keystr(path)
                       else jnp.zeros_like(x)) if 'location' in jax.tree_util.keystr(path) else x,
      params)
  run_dir = _save_run(tmp_path / 'corner', run, params)
  errors, ink = {}, {}
  for name, (run_arg, source) in {'corner': (run_dir, 'predict'),
                                  'center': (None, 'center')}.items():
    record, tester = configs(run_arg, source)
    record_dir = str(tmp_path / name / 'record')
    train.generate(record, record_dir, gt.make_experiment(record))
    tester.data_from = record_dir
    results = train.run(tester, str(tmp_path / name / 'tester'), gt.make_experiment(tester))
    errors[name], ink[name] = results['test_error'], results['test_on_ink']
  stored = train.open_store(str(tmp_path / 'corner' / 'record')).arrays['locations']
  np.testing.assert_allclose(stored, -1.0)
  assert ink['corner'] < 0.02 and ink['center'] > 0.9, ink
  assert errors['corner'] > 0.8, errors  # chance: 0.9
  assert errors['center'] < 0.4, errors


def _fake_results(folder, config, **values):
  folder.mkdir(parents=True)
  (folder / 'results.json').write_text(json.dumps({'config': config, **values}))


def test_the_chapter_shows_the_tester_error_and_keeps_it_out_of_the_runs_phases(tmp_path):
  bench = tmp_path / 'bench'
  def as_json(config):
    return json.loads(config.to_json_best_effort())
  phases = gb.get_config('cluttered60').phases
  for seed, tester_error in ((0, 0.20), (1, 0.30)):
    run = bench / f'ram-g4-seed{seed}'
    _fake_results(run, as_json(gb.method_config('ram', 'cluttered60', 4, seed)), steps=100,
                  wall_seconds=60.0, test_error=0.1)
    _fake_results(run / 'tester_record', as_json(phases[f'ram-g4-seed{seed}/tester_record']),
                  examples=60_000)
    _fake_results(run / 'tester', as_json(phases[f'ram-g4-seed{seed}/tester']), steps=2_500,
                  wall_seconds=67.0, test_error=tester_error)
  draw = gb.method_config('draw_heuristic', 'cluttered60', 2)
  for phase in draw.pipeline:
    _fake_results(bench / 'draw_heuristic-g2-seed0' / phase, as_json(draw.phases[phase]),
                  steps=500 if phase == 'pretrain' else 6_000, wall_seconds=30.0,
                  test_error=0.05)
  (bench / 'draw_heuristic-g2-seed0' / 'tester_record').mkdir()  # the tester still records
  markdown = report.write_report([str(bench)], str(tmp_path / 'book' / 'glimpse_bench.md'))
  header = next(line for line in markdown.splitlines() if line.startswith('| method'))
  assert header.rstrip(' |').endswith('tester error (%)')
  ram = next(line for line in markdown.splitlines() if line.startswith('| RAM | 4 |'))
  assert ram.endswith('| 25.00 ± 7.07 |') and '| 1.0 ± 0.0 | 100 |' in ram  # the run's own
  draw_line = next(line for line in markdown.splitlines() if line.startswith('| DRAW'))
  assert draw_line.endswith('| - |') and '| 1.0 | 6,500 |' in draw_line
  assert 'not finished' not in markdown
