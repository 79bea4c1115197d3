"""The results book's per-glimpse diagnostics: values read back in glimpse order, the plateau's
end, the table and the figure (and nothing for runs that predate the diagnostics)."""

from glimpse_jax.reports import overview as report


def _run(name, saturated, on_digit, errors):
  results = {'test_error': 0.1, 'config': {'seed': 0}}
  for t, (s, d) in enumerate(zip(saturated, on_digit), 1):
    results[f'test_saturated_g{t}'] = s
    results[f'test_on_digit_g{t}'] = d
    results[f'test_on_ink_g{t}'] = d / 2
  records = [{'kind': 'train', 'step': 100 * (i + 1), 'error': e} for i, e in enumerate(errors)]
  return report.Run(name, results, records)


def test_per_glimpse_values_and_plateau():
  run = _run('a', [0.0, 0.5, 0.25], [1.0, 0.5, 0.75], [0.9, 0.6, 0.49, 0.2])
  assert report.per_glimpse_values(run, 'saturated') == [0.0, 0.5, 0.25]
  assert report.per_glimpse_values(run, 'kl_q_prior') == []
  assert report.steps_to_leave_plateau(run) == 300
  assert report.steps_to_leave_plateau(_run('b', [0.0], [1.0], [0.9, 0.8])) is None


def test_diagnostics_table_and_figure(tmp_path):
  runs = [_run('parked', [0.0, 0.9], [1.0, 0.1], [0.9, 0.8]),
          _run('looking', [0.0, 0.01], [1.0, 0.9], [0.9, 0.3]),
          report.Run('old', {'test_error': 0.2}, [])]
  table = report.diagnostics_table(runs)
  lines = table.strip().split('\n')
  assert len(lines) == 4  # header, rule, and the two runs that have diagnostics
  assert '| parked | 10.00 | 90.0 | 100 / 10 | 27.5 | never |' in lines
  assert '| looking | 10.00 | 1.0 | 100 / 90 | 47.5 | 200 |' in lines
  path = tmp_path / 'per_glimpse.png'
  assert report.plot_per_glimpse_diagnostics(runs, str(path)) and path.stat().st_size > 0
  assert report.diagnostics_table(runs[2:]) == ''
  assert not report.plot_per_glimpse_diagnostics(runs[2:], str(tmp_path / 'none.png'))
