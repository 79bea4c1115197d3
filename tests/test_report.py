"""The results table and training-error figure, from synthetic workdirs."""

import json

import matplotlib.image
import pytest

from glimpse_jax.reports import overview as report


def _workdir(tmp_path, name, test_error, *, paper=None, errors=(0.9, 0.5, 0.2), variances=()):
  workdir = tmp_path / name
  workdir.mkdir()
  config = {'experiment': 'ws_ram', 'loss': {'method': 'ws_q'}}
  if paper is not None:
    config['paper'] = paper
  results = {'test_error': test_error, 'test_error_mc': test_error / 2, 'test_bound': -0.25,
             'test_examples': 10000.0, 'steps': 3000, 'wall_seconds': 90.0, 'config': config}
  (workdir / 'results.json').write_text(json.dumps(results))
  lines = [{'kind': 'train', 'step': 1000 * (i + 1), 'error': e, 'loss': 2 * e}
           for i, e in enumerate(errors)]
  lines += [{'kind': 'grad_variance', 'step': 500 * i, 'grad_variance': v}
            for i, v in enumerate(variances)]
  lines.append({'kind': 'eval', 'step': 3000, 'error': 0.9})
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
  return str(workdir)


def _rows(table):
  return [[cell.strip() for cell in line.strip('|').split('|')] for line in table.splitlines()]


def test_table_puts_each_run_beside_the_paper(tmp_path):
  runs = [report.load_run(_workdir(tmp_path, 'ws_q_cv', 0.0250,
                                   paper={'row': 'WS-RAM + q + c.v.', 'test_error': 0.0162},
                                   variances=(9.0, 1.0, 4.0))),
          report.load_run(_workdir(tmp_path, 'var', 0.1234))]
  rows = _rows(report.results_table(runs))
  header = rows[0]
  assert header[:7] == ['run', 'paper row', 'updates', 'minutes', 'test error %', 'paper %',
                        'grad variance (median)']
  assert header[7:] == ['bound', 'error_mc %']
  assert rows[2] == ['ws_q_cv', 'WS-RAM + q + c.v.', '3000', '1.5', '2.50', '1.62', '4', '-0.25',
                     '1.25']
  assert rows[3] == ['var', '-', '3000', '1.5', '12.34', '-', '-', '-0.25', '6.17']


def test_caller_paper_numbers_override_recorded_ones(tmp_path):
  runs = [report.load_run(_workdir(tmp_path, 'var_cv', 0.02,
                                   paper={'row': 'VAR + c.v.', 'test_error': 0.5}))]
  rows = _rows(report.results_table(runs, paper={'var_cv': 0.0181}))
  assert rows[2][1] == 'VAR + c.v.' and rows[2][5] == '1.81'


def test_plot_draws_every_runs_training_error(tmp_path):
  runs = [report.load_run(_workdir(tmp_path, f'run{i}', 0.1, errors=(0.9, 0.4 + 0.1 * i)))
          for i in range(3)]
  path = tmp_path / 'errors.png'
  report.plot_training_error(runs, str(path))
  assert matplotlib.image.imread(str(path)).shape[:2] == (450, 700)
  with pytest.raises(ValueError, match="'nll'"):
    report.plot_training_error(runs, str(path), metric='nll')


def test_cli_writes_the_table_and_the_figure(tmp_path, capsys):
  first = _workdir(tmp_path, 'a', 0.03)
  second = _workdir(tmp_path, 'b', 0.04)
  figure = tmp_path / 'curves.png'
  report.main([first, second, '--plot', str(figure)])
  out = capsys.readouterr().out
  assert [row[0] for row in _rows(out.split('\n\n')[0])[2:]] == ['a', 'b']
  assert figure.exists() and f'({figure})' in out


def test_unfinished_runs_and_empty_tables_fail(tmp_path):
  (tmp_path / 'running').mkdir()
  with pytest.raises(ValueError, match='results.json'):
    report.load_run(str(tmp_path / 'running'))
  with pytest.raises(ValueError, match='at least one run'):
    report.results_table([])


def test_a_recorded_paper_number_without_its_row_is_not_shown(tmp_path):
  runs = [report.load_run(_workdir(tmp_path, 'changed', 0.02,
                                   paper={'row': '', 'test_error': 0.0162}))]
  row = _rows(report.results_table(runs))[2]
  assert row[1] == '-' and row[5] == '-'


def test_seed_table_gives_mean_and_spread_per_setting(tmp_path):
  runs = []
  for seed, error in enumerate((0.02, 0.04, 0.03)):
    workdir = _workdir(tmp_path, f'cluttered60-g8-seed{seed}', error,
                       paper={'row': 'cluttered60, 8 glimpses', 'test_error': 0.0404})
    results = json.loads((tmp_path / f'cluttered60-g8-seed{seed}' / 'results.json').read_text())
    results['config']['seed'] = seed
    (tmp_path / f'cluttered60-g8-seed{seed}' / 'results.json').write_text(json.dumps(results))
    runs.append(report.load_run(workdir))
  runs.append(report.load_run(_workdir(tmp_path, 'var', 0.1234)))
  rows = _rows(report.seed_table(runs))
  assert rows[0] == ['setting', 'paper row', 'seeds', 'updates', 'minutes (mean)', 'test error %',
                     'error_mc %', 'paper %']
  assert rows[2] == ['cluttered60-g8', 'cluttered60, 8 glimpses', '0, 1, 2', '3000', '1.5',
                     '3.00 ± 1.00', '1.50 ± 0.50', '4.04']
  assert rows[3] == ['var', '-', '0', '3000', '1.5', '12.34', '6.17', '-']
  assert report.seed_group('ram-translated60-seed12') == 'ram-translated60'
  assert report.seed_group('ram-seedless') == 'ram-seedless'
