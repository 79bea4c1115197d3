"""The cross-method benchmark: its registry puts every method on every task and T through the
method's own experiment, its names fail loudly, its chapter renders, and (slow tier) its smoke
variant trains every run end to end."""

import glob
import json
import os
import pathlib
import subprocess
import types

import jax
import ml_collections
import numpy as np
import pytest

import glimpse_jax
from glimpse_jax import cli, data
from glimpse_jax import glimpse_bench as gb
from glimpse_jax import train
from glimpse_jax.train import sources
from glimpse_jax.plots.method_paths import MethodPaths, plot_method_paths
from glimpse_jax.reports import book as results_book
from glimpse_jax.reports import glimpse_bench as report

REPO = pathlib.Path(__file__).resolve().parents[1]


def _phases(config):
  """A config's phases: [(name, phase config)], one unnamed for a single-phase config."""
  if train.is_pipeline(config):
    return [(name, config.phases[name]) for name in config.pipeline]
  return [('', config)]


def _glimpse_count(phase):
  model = phase.model
  return model['glimpses'] if phase.experiment == 'pretrain_attention' else model.get(
      'num_glimpses')


@pytest.mark.parametrize('task', list(gb.TASKS))
def test_every_method_and_glimpse_count_is_a_valid_config_of_its_experiment(task):
  for name, method in gb.METHODS.items():
    module = gb.experiment_module(method.experiment)
    for glimpses in (gb.GLIMPSES if method.glimpses else (None,)):
      config = gb.method_config(name, task, glimpses, seed=2)
      assert config.experiment == method.experiment
      # ram_boed trains on the fixed canvases its designed sequences are stored by
      dataset = dict(gb.TASKS[task].dataset, **({'train_on_the_fly': False} if method.design
                                                 else {}))
      for phase_name, phase in _phases(config):
        train.validate(phase)
        module.validate(phase)  # the experiment's own checks
        where = f'{name} T={glimpses} {phase_name}'
        for field, value in dataset.items():
          assert phase.dataset[field] == value, (where, field)
        assert phase.seed == 2 and phase.num_steps > 0, where
        assert phase.eval.splits == ('test',) and phase.early_stopping.patience == 0, where
        if method.glimpses:
          assert _glimpse_count(phase) == glimpses, where
      last = _phases(config)[-1][1]
      assert last.num_steps == gb.BUDGETS[''].num_steps, name
      if method.glimpses and method.experiment != 'pretrain_attention':
        retina = gb.TASKS[task].retina
        assert (last.model.glimpse_size, last.model.num_scales) == (retina.glimpse_size,
                                                                   retina.num_scales), name
  assert gb.method_config('draw_heuristic', task, 4).phases.classify.model.read_size == 21
  assert 21**2 - gb.RETINA_60.values == 9  # the nearest square to the retina's 432 values
  oracle = gb.method_config('oracle', task, 4).model
  assert oracle.fixed_locations == 'center' and not oracle.random_locations
  # Every method of the benchmark's brief is wired.
  assert set(gb.METHODS) == {'ram', 'ram_lstm', 'ws_ram_q_cv', 'ram_boed', 'ram_center',
                             'draw_heuristic', 'draw_reconstruction', 'random', 'oracle', 'cnn',
                             'attention_cnn'}


def test_every_method_builds_its_experiment():
  for name in gb.METHODS:
    glimpses = 2 if gb.METHODS[name].glimpses else None
    config = gb.method_config(name, 'translated60_fashion', glimpses, budget='_smoke')
    for _, phase in _phases(config):
      experiment = gb.make_experiment(phase)
      assert callable(experiment.loss) or callable(experiment.generate), name


@pytest.mark.parametrize('task', list(gb.TASKS))
@pytest.mark.parametrize('budget', list(gb.BUDGETS))
def test_ram_boed_is_supervised_ram_on_the_shared_designs_canvases(task, budget):
  nog = gb.experiment_module('near_optimal_glimpses')
  design = dict(gb.design_phases(task, budget))
  assert list(design) == ['boed/posterior', 'boed/completion', 'boed/sequences']
  largest = max(gb.BUDGETS[budget].glimpses)
  retina = gb.TASKS[task].retina
  for name, phase in design.items():
    train.validate(phase)
    nog.validate(phase)
    assert phase.experiment == 'near_optimal_glimpses' and phase.seed == gb.DESIGN_SEED, name
    assert phase.model.num_glimpses == largest and phase.model.glimpse_size == 12, name
    assert (phase.model.glimpse_size, phase.model.num_scales) == (retina.glimpse_size, 1), name
    assert not phase.dataset.train_on_the_fly and phase.dataset.seed == 0, name
  sequences = design['boed/sequences']
  assert sequences.kind == 'generate' and sequences.generate.split == 'train'
  assert dict(sequences.frozen) == {'posterior': 'boed/posterior', 'completion': 'boed/completion'}
  own = nog.get_config('sequences').phases  # the paper budget: the module's own design
  if budget == '_paper':
    for name in gb.DESIGN_PHASES:
      for field in ('num_steps', 'batch_size'):
        assert design[f'boed/{name}'][field] == own[name][field], (name, field)
      assert design[f'boed/{name}'].design == own[name].design, name
    assert sequences.generate.fraction == own.sequences.generate.fraction == 0.1
  elif budget == '':
    assert round(sequences.generate.fraction * 60_000) == 1_000
    assert design['boed/posterior'].model.posterior == 'canvas'
    assert design['boed/posterior'].num_steps <= own.posterior.num_steps
    assert design['boed/completion'].num_steps <= own.completion.num_steps
  else:
    assert design['boed/posterior'].model.posterior == 'pooled'
    assert sequences.design.samples == 4 and sequences.dataset.train_examples == 64
  for glimpses in gb.BUDGETS[budget].glimpses:
    config = gb.method_config('ram_boed', task, glimpses, seed=1, budget=budget)
    train.validate(config)
    nog.validate(config)
    assert config.experiment == 'near_optimal_glimpses' and config.model.part == 'ram'
    assert (config.model.num_glimpses, config.model.glimpse_size, config.model.num_scales,
            config.model.scale_factor) == (glimpses, 12, 3, 2)
    assert config.model.locator == 'linear' and config.supervision.targets == 'designed'
    assert (config.loss.supervision_reduction, config.loss.supervision_weight) == ('sum', 1.0)
    assert config.loss.reinforce_time_average  # REINFORCE averaged over T, as the ram row's
    assert config.data_from == gb.DESIGN_STORE == 'boed/sequences'
    assert config.num_steps == gb.BUDGETS[budget].num_steps
    # Its canvases are the design's: the store's dataset check passes.
    neutral = sources._INDEX_NEUTRAL  # pylint: disable=protected-access
    ours, theirs = (json.loads(c.dataset.to_json_best_effort()) for c in (config, sequences))
    assert {k: v for k, v in ours.items() if k not in neutral} == {
        k: v for k, v in theirs.items() if k not in neutral}


def test_a_stored_design_opens_as_the_ram_boed_runs_training_store(tmp_path):
  sequences = dict(gb.design_phases('translated60', '_smoke'))['boed/sequences']
  store = data.ExampleStore(str(tmp_path / 'store'))
  store.plan(np.arange(4), 4, meta={'split': 'train', 'dataset': json.loads(
      sequences.dataset.to_json_best_effort())})
  store.write_chunk(0, {'target_location': np.zeros((4, 2, 2), np.float32)})
  config = gb.method_config('ram_boed', 'translated60', 2, budget='_smoke')
  stored = sources.open_training_store(str(tmp_path), config.dataset)
  assert stored.arrays['target_location'].shape == (4, 2, 2)
  other = gb.method_config('ram_boed', 'cluttered60', 2, budget='_smoke')  # another task's
  with pytest.raises(ValueError, match='stored for other training examples'):
    sources.open_training_store(str(tmp_path), other.dataset)


@pytest.mark.parametrize('variant', ['cluttered60_smoke', 'translated60_fashion'])
def test_the_design_comes_once_before_the_first_ram_boed_run_and_every_run_reads_it(
    variant, tmp_path):
  config = gb.get_config(variant)
  names = list(config.pipeline)
  design = [n for n in names if n.startswith('boed/')]
  assert design == ['boed/posterior', 'boed/completion', 'boed/sequences']
  start = names.index('boed/posterior')
  assert names[start:start + 3] == design
  boed_runs = [run for run, method, _, _ in gb.bench_runs(variant) if method == 'ram_boed']
  assert len(boed_runs) == len(gb.BUDGETS[gb.split_variant(variant)[1]].glimpses) * len(
      gb.BUDGETS[gb.split_variant(variant)[1]].seeds)
  assert start + 3 == names.index(boed_runs[0])  # just before the first ram_boed run
  for name in design:
    assert config.phases[name].experiment == 'near_optimal_glimpses'
  for run in boed_runs:
    assert config.phases[run].data_from == 'boed/sequences', run
    assert config.phases[run].experiment == 'near_optimal_glimpses', run
    assert config.phases[f'{run}/tester'].frozen.run == run  # the run is its own result
    assert gb.RUN_NAME.match(run)['method'] == 'ram_boed'
  assert not any(gb.RUN_NAME.match(n) for n in design)  # no run of the table
  resolved = {n: c for n, c, _ in train.pipeline.resolved_phases(config, str(tmp_path))}
  assert resolved[boed_runs[-1]].data_from == str(tmp_path / 'boed' / 'sequences')
  assert resolved['boed/sequences'].frozen.posterior == str(tmp_path / 'boed' / 'posterior')


def test_a_ram_boed_run_is_supervised_with_the_prefix_of_the_stored_sequences():
  config = gb.method_config('ram_boed', 'cluttered60', 2,
                            budget='_smoke').copy_and_resolve_references()
  with config.unlocked():
    config.model.update(core_features=8, glimpse_features=8, what_features=4, where_features=4)
  nog = gb.experiment_module('near_optimal_glimpses')
  experiment = gb.make_experiment(config)
  rng = np.random.default_rng(0)
  stored = rng.uniform(-0.8, 0.8, (4, 8, 2)).astype(np.float32)  # designed for T = 8
  batch = {'image': rng.uniform(size=(4, 60, 60, 1)).astype(np.float32),
           'label': np.arange(4, dtype=np.int32), 'center': np.zeros((4, 2), np.float32),
           'box_size': np.full((4,), 28.0, np.float32), 'stored': np.ones(4, np.float32)}
  np.testing.assert_array_equal(nog.supervision_targets(config, dict(
      batch, target_location=stored)), stored[:, :2])
  params = jax.jit(experiment.init)(jax.random.key(0), batch)
  loss = jax.jit(lambda b: experiment.loss(params, b, jax.random.key(1), 0)[1]['supervision'])
  longer = float(loss(dict(batch, target_location=stored)))
  later = stored.copy()
  later[:, 2:] = 0.5  # glimpses the T = 2 run never takes
  assert float(loss(dict(batch, target_location=later))) == longer
  moved = stored.copy()
  moved[:, 1] = -moved[:, 1]  # its second target
  assert float(loss(dict(batch, target_location=moved))) != pytest.approx(longer)


@pytest.mark.parametrize('call, message', [
    (lambda: gb.get_config('cluttered100'), "'cluttered100'"),
    (lambda: gb.get_config('cluttered60_tiny'), "'cluttered60_tiny'"),
    (lambda: gb.method_config('ram_gru', 'cluttered60', 4), "method 'ram_gru'"),
    (lambda: gb.method_config('ram', 'mnist28', 4), "task 'mnist28'"),
    (lambda: gb.method_config('ram', 'cluttered60', 3), 'glimpse count T 3'),
    (lambda: gb.method_config('ram', 'cluttered60', None), 'glimpse count T None'),
    (lambda: gb.method_config('cnn', 'cluttered60', 4), 'takes no glimpses, got glimpses=4'),
    (lambda: gb.method_config('ram', 'cluttered60', 4, budget='_huge'), "budget '_huge'"),
])
def test_bad_names_fail_naming_the_value(call, message):
  with pytest.raises(ValueError, match=message.replace('(', r'\(')):
    call()


def test_a_benchmark_is_one_pipeline_of_runs_in_their_own_workdirs(tmp_path):
  config = gb.get_config('cluttered60_smoke')
  methods_with_glimpses = sum(m.glimpses for m in gb.METHODS.values())
  runs = gb.bench_runs('cluttered60_smoke')
  assert len(runs) == methods_with_glimpses + 2  # T = 2 and the two CNNs, seed 0
  assert 'ram-g2-seed0' in config.pipeline and 'cnn-seed0' in config.pipeline
  assert not any('-g4-' in name for name in config.pipeline)
  assert config.phases['ram-g2-seed0'].experiment == 'ram'
  classify = config.phases['draw_heuristic-g2-seed0/classify']
  assert classify.experiment == 'pretrain_attention'
  assert classify.init_from == 'draw_heuristic-g2-seed0/pretrain'
  workdirs = {name: path for name, _, path in train.pipeline.resolved_phases(config,
                                                                              str(tmp_path))}
  assert workdirs['ram-g2-seed0'] == str(tmp_path / 'ram-g2-seed0')
  assert workdirs['draw_heuristic-g2-seed0/classify'] == str(
      tmp_path / 'draw_heuristic-g2-seed0' / 'classify')
  resolved = dict((n, c) for n, c, _ in train.pipeline.resolved_phases(config, str(tmp_path)))
  assert resolved['draw_heuristic-g2-seed0/classify'].init_from == str(
      tmp_path / 'draw_heuristic-g2-seed0' / 'pretrain')
  full = gb.get_config('translated60')
  # + DRAW's pre-training, + the glimpse tester's two phases after every glimpse run
  runs_phases = [name for name in full.pipeline if not name.startswith(f'{gb.DESIGN}/')]
  assert len(runs_phases) == 3 * (4 * (3 * methods_with_glimpses + 2) + 2)
  assert len(full.pipeline) == len(runs_phases) + len(gb.DESIGN_PHASES)  # + the BOED design
  assert full.phases['ram-g8-seed2'].num_steps == 6_000
  assert gb.get_config('translated60_paper').phases['ram-g8-seed2'].num_steps == 1_000_000
  with pytest.raises(ValueError, match='pipeline of other experiments'):
    gb.make_experiment(config)


def test_make_and_the_command_reach_the_benchmark(tmp_path):
  env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL')}
  make = lambda *args: subprocess.run(
      ['make', '--no-print-directory', '-n', 'bench-methods', *args], capture_output=True,
      text=True, check=False, cwd=REPO, env=env)
  out = make('TASK=translated60').stdout
  assert ('main.py --config=src/glimpse_jax/glimpse_bench.py:translated60 '
          '--workdir=runs/glimpse_bench-translated60') in out
  out = make('WORKDIR=/tmp/b', 'PHASE=ram-g2-seed0').stdout
  assert 'glimpse_bench.py:cluttered60_smoke --workdir=/tmp/b --phase=ram-g2-seed0' in out
  argv, module = cli.resolve_config_argument(
      ['glimpse-jax', f'--config={REPO}/src/glimpse_jax/glimpse_bench.py:translated60_smoke',
       f'--workdir={tmp_path}'])
  assert module.get_config('translated60_smoke').phases['ram-g2-seed0'].dataset.name == (
      'translated')
  with pytest.raises(cli.CommandError, match="unknown variant 'translated61'"):
    cli.resolve_config_argument(
        ['glimpse-jax', f'--config={REPO}/src/glimpse_jax/glimpse_bench.py:translated61'])


def _fake_run(folder, config, error, error_mc=None, steps=100, wall=60.0):
  folder.mkdir(parents=True)
  results = {'config': config, 'steps': steps, 'wall_seconds': wall, 'test_error': error}
  if error_mc is not None:
    results['test_error_mc'] = error_mc
  (folder / 'results.json').write_text(json.dumps(results))
  (folder / 'metrics.jsonl').write_text(json.dumps({'kind': 'train', 'step': steps}) + '\n')


def _config(method, glimpses, seed, task='cluttered60'):
  config = gb.method_config(method, task, glimpses, seed)
  if train.is_pipeline(config):
    return {name: json.loads(config.phases[name].to_json_best_effort())
            for name in config.pipeline}
  return json.loads(config.to_json_best_effort())


def test_the_chapter_tables_each_task_from_made_up_runs(tmp_path):
  bench = tmp_path / 'bench'
  for seed, error in ((0, 0.10), (1, 0.20)):
    _fake_run(bench / f'ram-g4-seed{seed}', _config('ram', 4, seed), error, error + 0.01)
  _fake_run(bench / 'ram-g2-seed0', _config('ram', 2, 0), 0.30)
  _fake_run(bench / 'ws_ram_q_cv-g2-seed0', _config('ws_ram_q_cv', 2, 0), 0.25)
  draw = _config('draw_heuristic', 4, 0)
  _fake_run(bench / 'draw_heuristic-g4-seed0' / 'pretrain', draw['pretrain'], 0.0, steps=500,
            wall=30.0)
  _fake_run(bench / 'draw_heuristic-g4-seed0' / 'classify', draw['classify'], 0.05, steps=6_000,
            wall=90.0)
  (bench / 'draw_reconstruction-g4-seed0' / 'pretrain').mkdir(parents=True)  # still training
  _fake_run(bench / 'cnn-seed0', _config('cnn', None, 0), 0.02)
  _fake_run(bench / 'oracle-g2-seed0', _config('oracle', 2, 0), 0.04, 0.04)
  _fake_run(bench / 'ram_boed-g4-seed0', _config('ram_boed', 4, 0), 0.08, 0.09, wall=120.0)
  design = dict(gb.design_phases('cluttered60'))
  for name, steps in (('posterior', 20_000), ('completion', 4_000)):
    _fake_run(bench / 'boed' / name, json.loads(design[f'boed/{name}'].to_json_best_effort()),
              0.5, steps=steps, wall=600.0)
  sequences = bench / 'boed' / 'sequences'  # the shared design: no run of the table
  sequences.mkdir()
  (sequences / 'results.json').write_text(json.dumps({
      'kind': 'generate', 'examples': 1_000, 'wall_seconds': 8_400.0,
      'config': json.loads(design['boed/sequences'].to_json_best_effort())}))
  other = tmp_path / 'other'
  _fake_run(other / 'random-g8-seed0', _config('random', 8, 0, 'translated60'), 0.5)
  out = tmp_path / 'book' / 'glimpse_bench.md'
  markdown = report.write_report([str(bench), str(other)], str(out))
  assert '| RAM | 4 | 0, 1 | 15.00 ± 7.07 | 16.00 ± 7.07 | 1,728 | 1.0 ± 0.0 | 100 |' in markdown
  assert '| RAM | 2 | 0 | 30.00 | - | 864 |' in markdown
  assert '| WS-RAM + q + c.v. | 2 | 0 | 25.00 | - | 388 |' in markdown  # 2 x 144 + 10 x 10
  # DRAW: 4 reads of 21 x 21; wall and updates over both phases
  assert '| DRAW, heuristic pre-training | 4 | 0 | 5.00 | - | 1,764 | 2.0 | 6,500 |' in markdown
  assert '| simple CNN (no glimpses) | - | 0 | 2.00 | - | 3,600 |' in markdown
  assert markdown.index('## cluttered60') < markdown.index('## translated60')
  assert '| random glimpses | 8 | 0 | 50.00 |' in markdown.split('## translated60')[1]
  assert 'RAM |' not in markdown.split('## translated60')[1].replace('random glimpses', '')
  assert '1 runs not finished: draw_reconstruction-g4-seed0' in markdown
  # RAM with BOED supervision: RAM's retina and widths, its own wall minutes only
  assert '| RAM, BOED supervision | 4 | 0 | 8.00 | 9.00 | 1,728 | 2.0 | 100 |' in markdown
  assert ('BOED design shared by every ram_boed run (`boed/`; not in their wall minutes): '
          'posterior: 20,000 updates, 10.0 min; completion: 4,000 updates, 10.0 min; '
          'sequences: 1,000 training canvases designed at T = 8, 140.0 min.') in (
              markdown.split('## translated60')[0])
  assert 'BOED design' not in markdown.split('## translated60')[1]
  assert 'Not in the benchmark yet' not in markdown
  assert 'boed' not in markdown.split('not finished')[1]
  assert '| oracle glimpses (digit center) | 2 | 0 | 4.00 | 4.00 | 864 |' in markdown
  # FLOPs of a greedy prediction and accuracy per GFLOP: RAM at T = 2 of its widths (what 128,
  # where 128, glimpse 256, core 256), by hand.
  ram_flops = 2 * (2 * (432 * 128 + 2 * 128 + 256 * 256 + 512 * 256 + 256 * 2) + 256 * 10)
  assert report.flops_per_prediction(_config('ram', 2, 0)) == ram_flops == 1_015_808
  per_gflop = round(70 / (ram_flops / 1e9))
  assert f'| RAM | 2 | 0 | 30.00 | - | 864 | 1.0 | 100 | 1.02 | {per_gflop} |' in markdown
  cnn_flops = report.flops_per_prediction(_config('cnn', None, 0))
  assert cnn_flops > 10 * ram_flops  # a pass over the whole canvas
  assert (f'| simple CNN (no glimpses) | - | 0 | 2.00 | - | 3,600 | 1.0 | 100 | '
          f'{cnn_flops / 1e6:.2f} | {round(98 / (cnn_flops / 1e9))} |') in markdown
  ram_boed_flops = report.flops_per_prediction(_config('ram_boed', 2, 0))
  assert ram_boed_flops == ram_flops  # the same network as RAM's row, only trained otherwise
  for task in ('cluttered60', 'translated60'):
    assert (out.parent / f'glimpse_bench_{task}_error_by_glimpses.png').stat().st_size > 0
  _fake_run(bench / 'copy' / 'ram-g4-seed0', _config('ram', 4, 0), 0.1)  # not a bench run name
  os.rename(bench / 'copy' / 'ram-g4-seed0', bench / 'ram-g04-seed0')
  with pytest.raises(ValueError, match="method 'ram' at T=4 has seed 0 twice"):
    report.write_report([str(bench)], str(out))


def test_the_results_book_has_the_benchmark_chapter_once_a_run_is_finished(tmp_path):
  results = tmp_path / 'results'
  cluttered = results / 'glimpse_bench' / 'cluttered60'
  for seed in (0, 1):
    _fake_run(cluttered / f'ram-g4-seed{seed}', _config('ram', 4, seed), 0.1, wall=1_800.0)
  (cluttered / 'random-g4-seed0').mkdir()  # still training
  (results / 'glimpse_bench' / 'translated60' / 'ram-g2-seed0').mkdir(parents=True)
  chapter = next(c for c in results_book.CHAPTERS if c.name == 'glimpse_bench')
  assert chapter.workdirs(str(results)) == [str(cluttered)]  # no finished run in translated60
  index = results_book.write_book(str(results), [chapter])
  assert (f'| [glimpse_bench](glimpse_bench.md) | {report.TITLE} | 2 | 0, 1 | 1.0 | '
          '`make bench-methods TASK=<task>` |') in index
  page = (results / 'glimpse_bench.md').read_text()
  assert '| RAM | 4 | 0, 1 | 10.00 ± 0.00 |' in page
  assert '1 runs not finished: random-g4-seed0' in page
  assert 'paths.png' not in page  # no checkpoint to draw from, no picture drawn before
  (results / 'glimpse_bench_cluttered60_paths.png').write_bytes(b'drawn from the checkpoints')
  results_book.write_book(str(results), [chapter])
  page = (results / 'glimpse_bench.md').read_text()
  assert 'Greedy glimpse paths at T = 4, seed 0' in page  # the committed picture is kept
  assert (results / 'glimpse_bench_cluttered60_paths.png').read_bytes() == (
      b'drawn from the checkpoints')


def test_values_read_and_task_of_a_config():
  assert report.values_read(_config('ram_lstm', 6, 0)) == 6 * 3 * 144
  assert report.values_read(_config('attention_cnn', None, 0)) == 3_600
  assert report.task_of(_config('random', 2, 0, 'translated60_fashion')) == 'translated60_fashion'
  with pytest.raises(ValueError, match="'mnist' of 'mnist' at 28 px"):
    report.task_of({'dataset': {'name': 'mnist', 'source': 'mnist', 'canvas_size': 28}})


def test_flops_per_prediction_by_hand_on_a_tiny_ram():
  config = _config('ram', 2, 0)
  config['model'].update(what_features=4, where_features=2, glimpse_features=8, core_features=6)
  # A glimpse: the 3 x 12 x 12 patch -> what, (x, y) -> where, [what, where] -> glimpse, the
  # ReLU core [glimpse, h] -> h, the location mean h -> 2; then the classifier h -> 10 once.
  per_glimpse = 432 * 4 + 2 * 2 + (4 + 2) * 8 + (8 + 6) * 6 + 6 * 2
  assert report.flops_per_prediction(config) == 2 * (2 * per_glimpse + 6 * 10)
  lstm = _config('ram_lstm', 2, 0)
  lstm['model'].update(what_features=4, where_features=2, glimpse_features=8, core_features=6,
                       locator_features=3)
  locator = (6 + 3) * 4 * 3 + 3 * 2  # the locator's LSTM cell on h, then its mean
  assert report.flops_per_prediction(lstm) == 2 * (2 * (per_glimpse - 6 * 2 + locator) + 6 * 10)
  assert report.flops_per_prediction({'experiment': 'ram_reward'}) is None  # no counter


@pytest.mark.parametrize('method', ['ws_ram_q_cv', 'draw_heuristic'])
def test_traced_flops_grow_by_one_glimpse_cost_per_glimpse(method):
  def count(glimpses):
    config = _config(method, 2, 0)
    if method.startswith('draw'):
      config = config['classify']
      config['model']['glimpses'] = glimpses
    else:
      config['model']['num_glimpses'] = glimpses
    return report.flops_per_prediction(config)
  two, three, four = count(2), count(3), count(4)
  assert 0 < two < three < four and four - two == 2 * (three - two)


def _made_up_paths(steps=3, count=8, seed=0):
  rng = np.random.default_rng(seed)
  locations = rng.uniform(-0.7, 0.7, (count, steps, 2)).astype(np.float32)
  reads = np.concatenate([locations, np.zeros((count, steps, 3), np.float32)], -1)
  return locations, reads, rng.integers(0, 3, (count, steps))


def test_the_paths_picture_draws_one_row_per_method_and_each_glimpse_box():
  locations, reads, scales = _made_up_paths()
  images = np.random.default_rng(1).uniform(size=(8, 60, 60, 1))
  rows = [MethodPaths('RAM', locations, np.arange(8), glimpse_size=12, num_scales=3),
          MethodPaths('WS-RAM', locations, None, glimpse_size=12, num_scales=3, scales=scales),
          MethodPaths('DRAW', locations, np.arange(8), reads=reads, read_size=21)]
  fig = plot_method_paths(images, rows, labels=np.arange(8))
  axes = np.reshape(fig.axes, (3, 8))
  assert [len(ax.patches) for ax in axes[:, 5]] == [3 * 3, 3, 3]  # T x scales, T, T
  assert axes[0, 2].get_title() == 'label 2, pred 2' and axes[1, 2].get_title() == ''
  with pytest.raises(ValueError, match=r'WS-RAM: locations must be \[7, T, 2\]'):
    plot_method_paths(images[:7], rows[1:2])
  with pytest.raises(ValueError, match='DRAW: reads must be'):
    plot_method_paths(images, [MethodPaths('DRAW', locations, reads=reads[:, :2], read_size=21)])


def test_the_chapter_draws_each_methods_greedy_paths_from_its_run(tmp_path, monkeypatch):
  bench = tmp_path / 'bench'
  for method in ('oracle', 'ram', 'ws_ram_q_cv'):
    for glimpses in (2, 4):
      _fake_run(bench / f'{method}-g{glimpses}-seed0', _config(method, glimpses, 0), 0.1)
      (bench / f'{method}-g{glimpses}-seed0' / 'checkpoints').mkdir()
  draw = _config('draw_heuristic', 4, 0)
  _fake_run(bench / 'draw_heuristic-g4-seed0' / 'pretrain', draw['pretrain'], 0.0)
  _fake_run(bench / 'draw_heuristic-g4-seed0' / 'classify', draw['classify'], 0.05)
  (bench / 'draw_heuristic-g4-seed0' / 'classify' / 'checkpoints').mkdir()
  _fake_run(bench / 'random-g4-seed0', _config('random', 4, 0), 0.5)  # no checkpoint: no row
  _fake_run(bench / 'ram_lstm-g4-seed1', _config('ram_lstm', 4, 1), 0.2)  # seed 1: no row
  rng = np.random.default_rng(0)
  test = {'image': rng.integers(0, 256, (10, 60, 60, 1)).astype(np.uint8),
          'label': np.arange(10, dtype=np.int32),
          'center': rng.uniform(-0.5, 0.5, (10, 2)).astype(np.float32)}
  monkeypatch.setattr(report.data, 'load_split', lambda cfg, split: test)
  locations, reads, scales = _made_up_paths(steps=4)

  def oracle_predict(params, images, rng, centers=None):
    assert images.shape == (8, 60, 60, 1) and float(images.max()) <= 1.0
    return {'probabilities': np.eye(10)[:8],
            'locations': np.broadcast_to(np.asarray(centers)[:, None], (8, 4, 2))}

  def load_run(workdir):
    config = ml_collections.ConfigDict(json.loads(
        (pathlib.Path(workdir) / 'results.json').read_text())['config'])
    return types.SimpleNamespace(config=config, params=None,
                                 experiment=types.SimpleNamespace(predict=oracle_predict))

  def predict(run, images):
    assert run.config.model.get('fixed_locations') is None  # the oracle goes through its own
    out = {'probabilities': np.eye(10)[::-1][:8], 'locations': locations}
    if run.config.experiment == 'ws_ram':
      out['scales'] = scales
    if run.config.experiment == 'pretrain_attention':
      out['reads'] = reads
    return out

  monkeypatch.setattr(glimpse_jax, 'load_run', load_run)
  monkeypatch.setattr(glimpse_jax, 'predict', predict)
  drawn = []
  monkeypatch.setattr(report, 'plot_method_paths',
                      lambda images, rows, **kw: drawn.append((images, rows, kw)))
  markdown = report.write_report([str(bench)], str(tmp_path / 'book' / 'glimpse_bench.md'))
  assert 'Greedy glimpse paths at T = 4, seed 0' in markdown
  assert '![greedy glimpse paths](glimpse_bench_cluttered60_paths.png)' in markdown
  (images, rows, kw), = drawn
  assert [row.label for row in rows] == ['RAM', 'WS-RAM + q + c.v.', 'DRAW, heuristic pre-training',
                                         'oracle glimpses (digit center)']
  np.testing.assert_allclose(images, test['image'][:8] / 255.0)
  np.testing.assert_array_equal(kw['labels'], np.arange(8))
  np.testing.assert_allclose(rows[3].locations[:, 2], test['center'][:8])
  assert rows[0].glimpse_size == 12 and rows[0].num_scales == 3 and rows[0].scales is None
  np.testing.assert_array_equal(rows[1].scales, scales)
  assert rows[2].read_size == 21 and rows[2].reads is reads
  np.testing.assert_array_equal(rows[0].predictions, np.arange(10)[::-1][:8])


@pytest.mark.slow
def test_the_smoke_benchmark_trains_every_run_and_resumes_finished(data_dir, tmp_path,
                                                                    monkeypatch):
  monkeypatch.setenv('GLIMPSE_DATA_DIR', data_dir)
  monkeypatch.setenv('GLIMPSE_CACHE_DIR', str(tmp_path / 'tfds'))
  config = gb.get_config('cluttered60_smoke')
  workdir = str(tmp_path / 'bench')
  results = train.run_pipeline(config, workdir, gb.make_experiment)
  assert set(results) == set(config.pipeline)
  for run, method, glimpses, _ in gb.bench_runs('cluttered60_smoke'):
    result_phase = gb.METHODS[method].result_phase
    name = f'{run}/{result_phase}' if result_phase else run
    assert results[name]['steps'] == 4 and 0 <= results[name]['test_error'] <= 1, name
  # The shared BOED design: T = 2 sequences for half the 64 fixed canvases, read by ram_boed.
  stored = data.ExampleStore.open(os.path.join(workdir, 'boed', 'sequences', 'store'))
  assert stored.arrays['target_location'].shape == (32, 2, 2)
  logged = train.read_metrics(os.path.join(workdir, 'ram_boed-g2-seed0'), 'train')
  assert any(record['supervision'] != 0 for record in logged)  # designed canvases were forced
  # Each run's own results.json (the pipeline's summary beside them is rewritten every time).
  written = {path: os.stat(path).st_mtime_ns
             for path in glob.glob(os.path.join(workdir, '*', '**', 'results.json'), recursive=True)}
  train.run_pipeline(config, workdir, gb.make_experiment)  # every run finished: all skipped
  assert written and all(os.stat(path).st_mtime_ns == t for path, t in written.items())
  markdown = report.write_report([workdir], str(tmp_path / 'book' / 'glimpse_bench.md'))
  assert markdown.count('| 4 |') >= 7 and '| simple CNN (no glimpses) | - | 0 |' in markdown
  assert 'Greedy glimpse paths at T = 2, seed 0' in markdown  # from the runs' checkpoints
  assert '| RAM, BOED supervision | 2 | 0 |' in markdown
  assert 'sequences: 32 training canvases designed at T = 2' in markdown
  assert (tmp_path / 'book' / 'glimpse_bench_cluttered60_paths.png').stat().st_size > 0
