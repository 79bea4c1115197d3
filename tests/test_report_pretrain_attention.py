"""The pretrain_attention report on tiny made-up pipeline workdirs: the paper's ten-evaluation
rule, batches to 95%, methods named from configs, and the tables beside the paper."""

import json
import os

import pytest

from glimpse_jax.reports import pretrain_attention as rpa


def test_paper_rule_averages_the_ten_evaluations_after_the_best():
  # Error falls to 0.02 at step 3,000, then wobbles: the rule averages the next ten evaluations.
  after = [0.03, 0.025, 0.021, 0.03, 0.022, 0.024, 0.026, 0.023, 0.027, 0.028, 0.5]
  curve = list(zip(range(1_000, 15_000, 1_000), [0.2, 0.05, 0.02, *after]))
  value, count = rpa.paper_rule_error(curve)
  assert count == 10
  assert value == pytest.approx(sum(after[:10]) / 10)
  # A run that ends sooner averages what it has, and says how many.
  assert rpa.paper_rule_error(curve[:6]) == (pytest.approx((0.03 + 0.025 + 0.021) / 3), 3)
  # Still improving at the end, or no evaluation: no value.
  assert rpa.paper_rule_error([(1_000, 0.3), (2_000, 0.1)]) == (None, 0)
  assert rpa.paper_rule_error([]) == (None, 0)
  # Ties: the first best counts, so the equal later one is averaged.
  assert rpa.paper_rule_error([(1, 0.1), (2, 0.1), (3, 0.2)]) == (pytest.approx(0.15), 2)
  with pytest.raises(ValueError, match='count must be >= 1, got 0'):
    rpa.paper_rule_error(curve, count=0)


def test_batches_to_95_percent():
  curve = [(1_000, 0.3), (2_000, 0.051), (3_000, 0.05), (4_000, 0.01)]
  assert rpa.batches_to(curve) == 3_000
  assert rpa.batches_to(curve, 0.99) == 4_000
  assert rpa.batches_to(curve[:2]) is None


# A phase's headline (as in experiments/pretrain_attention.py) and, but for errors, its test value.
HEADLINE_OF = {'classification': 'error', 'mimic': 'error', 'tester': 'error',
               'reconstruction': 'bce', 'heuristic': 'distance'}
TEST_VALUE = {'reconstruction': 169.04, 'heuristic': 0.0754}
# Test error 10% until batch 3,000, then 4%: best at 3,000, 11 evaluations after it.
FLAT = [(s, 0.1 if s < 3_000 else 0.04) for s in range(1_000, 15_000, 1_000)]


@pytest.fixture
def runs(tmp_path):
  """The folder the fake pipeline workdirs go in."""
  folder = tmp_path / 'runs'
  folder.mkdir()
  return folder


def _phase_config(objective, dataset='mnist', seed=0, alpha=0.95, hidden=256):
  return {'seed': seed, 'dataset': {'name': dataset},
          'loss': {'objective': objective, 'mimic_alpha': alpha},
          'model': {'hidden': hidden, 'glimpses': 10}}


def _write_run(root, name, phases, curves, *, seed=0, dataset='mnist', alpha=0.95):
  """A pipeline workdir: phases [(name, objective, steps)], test error curves of the last one."""
  workdir = root / name
  configs = {p: _phase_config(o, dataset, seed, alpha) for p, o, _ in phases}
  workdir.mkdir()
  (workdir / 'pipeline.json').write_text(json.dumps({
      'pipeline': [p for p, _, _ in phases],
      'config': {'experiment': 'pretrain_attention', 'phases': configs}}))
  for (phase, objective, steps), last in zip(phases, [False] * (len(phases) - 1) + [True]):
    folder = workdir / phase
    folder.mkdir()
    curve = curves if last else []
    results = {'steps': steps, 'wall_seconds': 60.0, 'config': configs[phase]}
    headline = HEADLINE_OF[objective]
    value = (curve[-1][1] if curve else 0.5) if headline == 'error' else TEST_VALUE[objective]
    results.update({'headline': headline, 'headline_split': 'test', 'headline_value': value,
                    f'test_{headline}': value})
    (folder / 'results.json').write_text(json.dumps(results))
    (folder / 'metrics.jsonl').write_text(''.join(
        json.dumps({'kind': 'eval', 'step': s, 'split': 'test', 'error': e}) + '\n'
        for s, e in curve))
  (workdir / 'results.json').write_text(json.dumps({'pipeline': [p for p, _, _ in phases]}))
  return str(workdir)


def test_report_tables_beside_the_paper(tmp_path, runs):
  workdirs = [
      _write_run(runs, 'no_guidance_regular-seed0', [('classify', 'classification', 14_000)],
                 FLAT, seed=0),
      _write_run(runs, 'no_guidance_regular-seed1', [('classify', 'classification', 14_000)],
                 [(s, e + 0.02) for s, e in FLAT], seed=1),
      _write_run(runs, 'reconstruction_regular-seed0',
                 [('pretrain', 'reconstruction', 5_000), ('classify', 'classification', 14_000)],
                 FLAT),
      _write_run(runs, 'bootstrap_alpha05_translated-seed0',
                 [('teacher', 'classification', 2_000), ('classify', 'mimic', 3_000)],
                 [(1_000, 0.3), (2_000, 0.2), (3_000, 0.1)], dataset='translated', alpha=0.5),
      _write_run(runs, 'tester_reconstruction_regular-seed0',
                 [('pretrain', 'reconstruction', 1_000), ('sequences', 'classification', 1),
                  ('tester', 'tester', 1_000)], [(1_000, 0.25)]),
  ]
  # The generate phase trains nothing: its results.json has no steps.
  sequences = runs / 'tester_reconstruction_regular-seed0' / 'sequences' / 'results.json'
  sequences.write_text(json.dumps({'wall_seconds': 5.0}))
  notes = tmp_path / 'notes.md'
  notes.write_text('## Reading\n\nA note.\n')
  out = tmp_path / 'book' / 'pretrain_attention.md'
  markdown = rpa.write_report(workdirs, str(out), str(notes))

  # no guidance over two seeds: ten evaluations after the best (step 3,000) of 0.04 and 0.06.
  assert ('| no_guidance | regular | 0, 1 | classify 14,000 | hidden 256, T = 10 | 5.00 ± 1.41 '
          '| 10 | 5.00 ± 1.41 | 2.6 | 3,000 (1/2 seeds) | 3,000 (1/2 seeds) | - | 1.0 ± 0.0 |') in markdown
  # Reconstruction: the pre-training batches count in the batches to 95%.
  assert ('| reconstruction | regular | 0 | pretrain 5,000 + classify 14,000 | hidden 256, T = 10 '
          '| 4.00 | 10 | 4.00 | 2.2 | 3,000 | 8,000 | - | 2.0 |') in markdown
  # Still improving: no paper-rule value; Table 4 names alpha 0.5; Table 3 the tester.
  assert ('| bootstrap_alpha05 | translated | 0 | teacher 2,000 + classify 3,000 | '
          'hidden 256, T = 10 | - | - | 10.00 | 2.7 | not reached | not reached | - | 2.0 |') in markdown
  assert (markdown.index('## Table 2') < markdown.index('| no_guidance')
          < markdown.index('## Table 3') < markdown.index('## Table 4')
          < markdown.index('| bootstrap_alpha05'))
  assert ('| reconstruction | regular | 0 | pretrain 1,000 + tester 1,000 | hidden 256, T = 10 | '
          '75.00 | 96.8 | - | 2.1 |') in markdown
  assert (tmp_path / 'book' / 'pretrain_attention_curves.png').stat().st_size > 0
  assert markdown.endswith('## Reading\n\nA note.\n')
  assert out.read_text() == markdown


def test_bad_runs_are_named(tmp_path, runs):
  with pytest.raises(ValueError, match='holds no pipeline.json'):
    rpa.load_pipeline_run(str(tmp_path))
  curve = [(1_000, 0.1)]
  a = _write_run(runs, 'a', [('classify', 'classification', 1_000)], curve)
  b = _write_run(runs, 'b', [('classify', 'classification', 1_000)], curve)
  with pytest.raises(ValueError, match=r"no_guidance on regular .* has seed 0 twice among runs "
                                       r"\['a', 'b'\]"):
    rpa.write_report([a, b], str(tmp_path / 'out.md'))
  os.remove(os.path.join(b, 'classify', 'results.json'))
  with pytest.raises(ValueError, match=r"phase 'classify' of '.*/b' holds no results.json"):
    rpa.load_pipeline_run(b)


def test_smoke_runs_get_their_own_section(tmp_path, runs):
  workdirs = [
      _write_run(runs, 'no_guidance_translated-seed0', [('classify', 'classification', 14_000)],
                 FLAT, dataset='translated'),
      _write_run(runs, 'heuristic_translated_smoke-seed0',
                 [('pretrain', 'heuristic', 300), ('classify', 'classification', 2_000)],
                 [(2_000, 0.293)], dataset='translated'),
      _write_run(runs, 'smoke-seed0',
                 [('pretrain', 'reconstruction', 1_000), ('classify', 'classification', 2_000)],
                 [(2_000, 0.62)]),
      _write_run(runs, 'no_guidance_regular_smoke-seed1', [('classify', 'classification', 2_000)],
                 [(2_000, 0.5)], seed=1),
      _write_run(runs, 'tester_reconstruction_regular_smoke-seed0',
                 [('pretrain', 'reconstruction', 1_000), ('sequences', 'classification', 1),
                  ('tester', 'tester', 1_000)], [(1_000, 0.25)]),
  ]
  sequences = runs / 'tester_reconstruction_regular_smoke-seed0' / 'sequences' / 'results.json'
  sequences.write_text(json.dumps({'wall_seconds': 6.0}))
  (runs / 'heuristic_translated_smoke-seed0' / 'classify' / 'read_windows.png').write_bytes(b'png')
  notes = tmp_path / 'notes.md'
  notes.write_text('## Reading\n\nA note.\n')
  out = tmp_path / 'book' / 'pretrain_attention.md'
  markdown = rpa.write_report(workdirs, str(out), str(notes))

  # Smoke runs stay out of the tables, the curves and the read windows.
  tables = markdown[:markdown.index('## Smoke variants')]
  assert '| no_guidance | translated | 0 | classify 14,000 |' in tables
  assert tables.count('| no_guidance |') == 1
  assert 'heuristic' not in tables.split('## Table 2')[1]
  assert '## Table 3' not in tables
  assert not list((tmp_path / 'book').glob('*_reads.png'))
  # One row per smoke run, by name, between the tables and the notes.
  smoke = markdown[markdown.index('## Smoke variants'):]
  assert ('| variant | phases | pre-training / teacher | test error % | learned | minutes |'
          in smoke)
  rows = [line for line in smoke.splitlines() if line.startswith('| `')]
  assert rows == [
      '| `heuristic_translated_smoke` | pretrain 300, classify 2,000 | heuristic distance 0.075 '
      '| 29.3 | yes | 2.0 |',
      '| `no_guidance_regular_smoke` | classify 2,000 | - | 50.0 | yes | 1.0 |',
      '| `smoke` | pretrain 1,000, classify 2,000 | reconstruction bce 169.0 | 62.0 | no | 2.0 |',
      '| `tester_reconstruction_regular_smoke` | pretrain 1,000, sequences, tester 1,000 '
      '| reconstruction bce 169.0 | 25.0 | yes | 2.1 |',
  ]
  # Counted from the rows, not claimed: the tester pipeline ran 2.1 minutes, one smoke failed.
  assert '3 of 4 learned; 3 of 4 ran within 2 minutes (the longest 2.1).' in smoke
  assert smoke.endswith('## Reading\n\nA note.\n')
  # The command appends the notes beside --out; a --notes that is not a file is an error.
  (tmp_path / 'cli_notes.md').write_text('## Reading\n\nBeside.\n')
  rpa.main([*workdirs, '--out', str(tmp_path / 'cli.md')])
  assert (tmp_path / 'cli.md').read_text().endswith('## Reading\n\nBeside.\n')
  with pytest.raises(SystemExit):
    rpa.main([*workdirs, '--out', str(tmp_path / 'cli.md'), '--notes', str(tmp_path / 'none.md')])
  # Without smoke runs, no smoke section.
  plain = rpa.write_report(workdirs[:1], str(tmp_path / 'plain.md'))
  assert 'Smoke' not in plain


def test_smoke_names_and_teacher_headline(tmp_path, runs):
  curve = [(2_000, 0.4)]
  bootstrap = rpa.load_pipeline_run(_write_run(
      runs, 'bootstrap_regular_smoke-seed2',
      [('teacher', 'classification', 1_000), ('classify', 'mimic', 2_000)], curve))
  assert rpa.variant_of(bootstrap) == 'bootstrap_regular_smoke' and rpa.is_smoke(bootstrap)
  assert rpa.headline_of(bootstrap, 'teacher') == 'classification error 50.0%'
  assert rpa.smoke_row(bootstrap)[2:] == ['classification error 50.0%', '40.0', 'yes', '2.0']
  made = rpa.load_pipeline_run(_write_run(runs, 'pretrain_attention-smoke-seed0',
                                          [('classify', 'classification', 2_000)], curve))
  assert rpa.variant_of(made) == 'smoke' and rpa.is_smoke(made)
  for name in ('smoke_test-seed0', 'reconstruction_regular-seed0', 'smokey_smoker'):
    run = rpa.load_pipeline_run(_write_run(runs, name, [('classify', 'classification', 1)], curve))
    assert not rpa.is_smoke(run), name


def test_model_column_names_the_first_read_and_a_changed_learning_rate_or_clipping():
  def run(dataset, read_init, learning_rate=1e-3, clip=5.0):
    config = {'model': {'hidden': 256, 'glimpses': 10, 'read_init': read_init},
              'dataset': {'name': dataset},
              'optimizer': {'learning_rate': learning_rate, 'grad_clip_norm': clip}}
    return rpa.PipelineRun('w', ('classify',), {'classify': config}, {}, {})

  assert rpa.widths_of(run('translated', 'blur')) == 'hidden 256, T = 10, first read blur'
  assert rpa.widths_of(run('translated', 'digit')) == 'hidden 256, T = 10, first read digit'
  assert rpa.widths_of(run('mnist', 'digit')) == 'hidden 256, T = 10'  # the same read as 'blur'
  assert rpa.widths_of(run('mnist', 'zeros')) == 'hidden 256, T = 10, first read zeros'
  assert (rpa.widths_of(run('translated', 'digit', 3e-3))
          == 'hidden 256, T = 10, first read digit, learning rate 0.003')
  assert (rpa.widths_of(run('translated', 'digit', clip=0.0))
          == 'hidden 256, T = 10, first read digit, unclipped')
  assert rpa.widths_of(run('mnist', 'digit', clip=10.0)) == ('hidden 256, T = 10, gradients '
                                                            'clipped at 10')
  # Configs with `read_norm` are from after 'digit' became digit-sized on 28x28: it is named.
  def contained(dataset, read_init, **model):
    config = run(dataset, read_init)
    config.configs['classify']['model'].update({'read_norm': 'image', **model})
    return config

  assert rpa.widths_of(contained('mnist', 'blur')) == 'hidden 256, T = 10'
  assert rpa.widths_of(contained('mnist', 'digit')) == 'hidden 256, T = 10, first read digit'
  bundle = contained('mnist', 'digit', read_norm='full', log_gamma_bound=2.0, forget_bias=1.0)
  bundle.configs['classify']['optimizer']['grad_clip_per_leaf'] = True
  assert rpa.widths_of(bundle) == ('hidden 256, T = 10, first read digit, full-mass reads, '
                                   'log gamma within ±2, forget bias 1, gradients clipped per '
                                   'variable at 5')
  # The penalty on read mass off the image is named with the phase it weighs on.
  bundle = contained('mnist', 'digit')
  bundle = rpa.PipelineRun('w', ('pretrain', 'classify'), {
      'pretrain': {**bundle.configs['classify'], 'loss': {'in_image_weight': 10.0}},
      'classify': {**bundle.configs['classify'], 'loss': {'in_image_weight': 0.0}}}, {}, {})
  assert rpa.widths_of(bundle) == ('hidden 256, T = 10, first read digit, mass off the image '
                                   'penalised x10 in pretrain')
  # Phases that read differently are named with their reads.
  full = {**bundle.configs['classify'], 'model': {**bundle.configs['classify']['model'],
                                                  'read_norm': 'full'}}
  mixed = rpa.PipelineRun('w', ('pretrain', 'classify'), {  # named in the pipeline's order
      'classify': bundle.configs['classify'], 'pretrain': full}, {}, {})
  assert rpa.widths_of(mixed) == ('hidden 256, T = 10, first read digit, reads full-mass in '
                                  'pretrain, image-normalised in classify')


def test_read_windows_come_from_the_lowest_error_run_of_each_method(runs, tmp_path):
  errors = {('no_guidance_translated-seed0', 14_000, 0): 0.30,
            ('no_guidance_translated-seed1', 14_000, 1): 0.10,
            ('no_guidance_translated_long-seed0', 20_000, 0): 0.20}
  workdirs = []
  for (name, steps, seed), error in errors.items():
    workdirs.append(_write_run(runs, name, [('classify', 'classification', steps)],
                               [(steps, error)], seed=seed, dataset='translated'))
    (runs / name / 'classify' / 'read_windows.png').write_bytes(name.encode())
  out = tmp_path / 'book' / 'pretrain_attention.md'
  markdown = rpa.write_report(workdirs, str(out))
  picture = tmp_path / 'book' / 'pretrain_attention_no_guidance_translated_reads.png'
  assert picture.read_bytes() == b'no_guidance_translated-seed1'
  assert markdown.count('Read windows of no_guidance') == 1
  assert '(no_guidance_translated, seed 1, the lowest final test error' in markdown


def test_a_runs_seed_is_the_one_its_last_phase_trained_with(runs):
  workdir = _write_run(runs, 'no_guidance_translated-seed1', [('classify', 'classification', 10)],
                       [(10, 0.5)], dataset='translated')  # pipeline.json: seed 0
  results = runs / 'no_guidance_translated-seed1' / 'classify' / 'results.json'
  trained = json.loads(results.read_text())
  trained['config']['seed'] = 1  # as `--config.seed=1` sets it when the phase runs
  results.write_text(json.dumps(trained))
  assert rpa.load_pipeline_run(str(workdir)).seed == 1


def _with_read_steps(workdir, phase, steps):
  """Adds per-step read statistics `{stat: [values]}` to a phase's results.json."""
  path = os.path.join(workdir, phase, 'results.json')
  results = json.loads(open(path).read())
  for stat, values in steps.items():
    results.update({f'test_{stat}_g{t}': v for t, v in enumerate(values, 1)})
  with open(path, 'w') as f:
    json.dump(results, f)


def test_reads_per_step_beside_the_tables_and_the_pictures(runs, tmp_path):
  # Two seeds of reconstruction then classification, one unguided run that predates the logging.
  workdirs = [_write_run(runs, f'reconstruction_regular-seed{seed}',
                         [('pretrain', 'reconstruction', 5_000),
                          ('classify', 'classification', 14_000)], FLAT, seed=seed)
              for seed in (0, 1)]
  workdirs.append(_write_run(runs, 'no_guidance_regular-seed0',
                             [('classify', 'classification', 14_000)], FLAT))
  masses = {0: [0.96, 0.30, 0.02], 1: [0.96, 0.50, 0.10]}
  for seed, workdir in zip((0, 1), workdirs):
    _with_read_steps(workdir, 'pretrain', {'in_image_mass': masses[seed],
                                           'off_image': [0.0, 0.5 + seed / 4, 1.0],
                                           'log_gamma': [0.0, 3.0, 9.0 + seed]})
    _with_read_steps(workdir, 'classify', {
        'in_image_mass': [0.96, 0.90 - seed / 10, 0.85], 'off_image': [0.0, 0.0, 0.1],
        'log_gamma': [0.0, 0.5, 0.7], 'sigma': [5.0, 2.5, 1.25], 'stride': [10.0, 4.0, 2.0],
        'center_x': [0.0, 0.1, -0.2], 'center_y': [0.0, 0.3, 0.05]})
  (runs / 'reconstruction_regular-seed1' / 'classify' / 'read_windows.png').write_bytes(b'png')
  out = tmp_path / 'book' / 'pretrain_attention.md'
  markdown = rpa.write_report(workdirs, str(out))

  # Table 2: the lowest per-step in-image mass of the classifier's reads, mean ± std over seeds;
  # '-' for the run that did not log it.
  assert '| 3,000 | 8,000 | 0.82 ± 0.04 | 2.0 ± 0.0 |' in markdown  # min 0.85 and 0.80
  assert '| 3,000 (1/1 seeds) |' not in markdown
  assert '| no_guidance | regular | 0 | classify 14,000 | hidden 256, T = 10 |' in markdown
  # The per-step section: the pre-training's reads leave the image, mean over the two seeds.
  section = markdown[markdown.index('## Where the reads went'):]
  prefix = '| reconstruction | regular | pretrain 5,000 + classify 14,000 | hidden 256, T = 10 '
  assert prefix + '| pretrain | 2 | in-image mass | 0.96 | 0.40 | 0.06 |' in section
  assert prefix + '| pretrain | 2 | mostly off the image % | 0 | 62 | 100 |' in section
  assert prefix + '| pretrain | 2 | log gamma | 0.00 | 3.00 | 9.50 |' in section
  assert prefix + '| classify | 2 | in-image mass | 0.96 | 0.85 | 0.85 |' in section
  assert 'no_guidance' not in section.split('Read windows')[0]
  assert (tmp_path / 'book' / 'pretrain_attention_reads_per_step.png').stat().st_size > 0
  # Beside the picture: its run's reads per step, every statistic.
  beside = markdown[markdown.index('Read windows of reconstruction'):]
  assert '| read step t | 1 | 2 | 3 |' in beside
  assert '| sigma px | 5 | 2.5 | 1.25 |' in beside
  assert '| centre y | 0.00 | 0.30 | 0.05 |' in beside
  assert '| in-image mass | 0.96 | 0.80 | 0.85 |' in beside  # seed 1's


def test_read_statistics_are_those_the_model_reports():
  draw = pytest.importorskip('glimpse_jax.nets.draw')
  assert sorted(stat for stat, *_ in rpa.READ_STATS) == sorted(draw.STATS)
  assert rpa.read_steps({'test_log_gamma_g1': 0.5, 'test_log_gamma_g2': 1.5,
                         'test_log_gamma_g4': 9.0}) == {'log_gamma': [0.5, 1.5]}
  assert rpa.read_steps({'test_error': 0.1}) == {}
