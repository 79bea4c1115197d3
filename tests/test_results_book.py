"""The results book regenerates every committed page from the committed runs."""

import json
import os
import shutil

import pytest

from glimpse_jax.reports import book as results_book

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'results')


@pytest.mark.slow
def test_committed_pages_are_what_the_book_generates(tmp_path):
  copy = tmp_path / 'results'
  shutil.copytree(RESULTS, copy)
  index = results_book.write_book(str(copy))
  for chapter in results_book.CHAPTERS:
    page = f'{chapter.name}.md'
    if not chapter.workdirs(RESULTS):
      assert f'[{chapter.name}]' not in index
      continue
    assert f'| [{chapter.name}]({page}) | {chapter.title} |' in index
    with open(os.path.join(RESULTS, page)) as committed, open(copy / page) as generated:
      assert generated.read() == committed.read(), f'results/{page} is stale: run make results'
  with open(os.path.join(RESULTS, 'README.md')) as committed:
    assert index == committed.read(), 'results/README.md is stale: run make results'


def test_notes_are_appended_and_runs_without_logs_get_no_curve(tmp_path):
  shutil.copytree(os.path.join(RESULTS, 'ram', 'mnist'), tmp_path / 'ram' / 'mnist')
  (tmp_path / 'ram_notes.md').write_text('## Reading\n\nA note.\n')
  assert not (tmp_path / 'ram' / 'mnist' / 'metrics.jsonl').exists()  # committed without its log
  index = results_book.write_book(str(tmp_path))
  page = (tmp_path / 'ram.md').read_text()
  assert '| ram-mnist | mnist, 6 glimpses | 60000 |' in page
  assert '| 1.66 | 1.12 |' in page  # ours, then the paper's
  assert page.endswith('## Reading\n\nA note.\n')
  assert 'training_error.png' not in page
  assert '| [ram](ram.md) |' in index and '[ws_ram]' not in index


def test_ws_ram_chapter_shows_the_estimator_variance_measurement(tmp_path):
  shutil.copytree(os.path.join(RESULTS, 'ws_ram', 'var-penalty-12k-seed0'),
                  tmp_path / 'ws_ram' / 'var-penalty-12k-seed0')
  measured = tmp_path / 'ws_ram' / 'variance-ws_q_cv'
  measured.mkdir()
  (measured / 'estimator_variance.json').write_text(json.dumps(
      {'steps': [1000, 5000], 'rows': {'var': [80.0, 9.5], 'ws_q_cv': [3.25, 0.5]},
       'examples': 256, 'draws': 16, 'num_samples': 5}))
  results_book.write_book(str(tmp_path))
  page = (tmp_path / 'ws_ram.md').read_text()
  assert '## Estimator variance at the same parameters (ws_ram-variance-ws_q_cv)' in page
  assert '| estimator | update 1,000 | update 5,000 |' in page
  assert '| var | 80 | 9.5 |' in page and '| ws_q_cv | 3.25 | 0.5 |' in page
  assert 'over 16 draws of K = 5 rollouts on the same 256 test images' in page


def test_a_pipeline_run_has_the_seed_it_ran_with(tmp_path):
  names = ('reconstruction_translated_gregor-seed1', 'reconstruction_translated_gregor-seed2')
  for name in names:
    shutil.copytree(os.path.join(RESULTS, 'pretrain_attention', name),
                    tmp_path / 'pretrain_attention' / name)
  runs = [results_book._load_run(str(tmp_path / 'pretrain_attention' / name)) for name in names]
  assert [run.results['config']['seed'] for run in runs] == [1, 2]
  assert '| 2 | 1, 2 |' in results_book.write_book(str(tmp_path))  # runs, seeds
