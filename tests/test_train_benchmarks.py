"""benchmarks/run_all.py finds bench_*.py files, runs each main() and reports failures."""

import importlib.util
import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run_all():
  spec = importlib.util.spec_from_file_location('run_all', REPO / 'benchmarks' / 'run_all.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_run_all_collects_figures_and_survives_a_failing_benchmark(tmp_path, capsys):
  (tmp_path / 'bench_fast.py').write_text("def main():\n  return {'steps_per_s': 12.5}\n")
  (tmp_path / 'bench_broken.py').write_text("def main():\n  raise RuntimeError('boom')\n")
  (tmp_path / 'helper.py').write_text("raise AssertionError('not a benchmark')\n")
  run_all = _run_all()
  assert [p.name for p in run_all.discover(tmp_path)] == ['bench_broken.py', 'bench_fast.py']

  out = tmp_path / 'figures.json'
  assert run_all.main(['--json', str(out)], folder=tmp_path) == 1
  printed = capsys.readouterr()
  assert 'boom' in printed.err and 'bench_broken' in printed.out and 'FAILED' in printed.out
  assert '12.5000' in printed.out
  assert json.loads(out.read_text()) == {'bench_fast': {'steps_per_s': 12.5}}

  assert run_all.main(['fast'], folder=tmp_path) == 0
  assert run_all.main(['nothing'], folder=tmp_path) == 1
