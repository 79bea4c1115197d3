"""What the loop does after each update (`Timetable.due`), and a run that does just that."""

import os
import signal

import pytest

from glimpse_jax import train
from glimpse_jax.train import loop, stopping
from test_train_loop import _config, make_experiment

# The toy run's schedule: 30 updates, logs every 4, evaluations every 6, checkpoints every 7 and
# at 5, the gradient variance every 9.
SCHEDULE = dict(num_steps=30, log_every=4, eval_every=6, checkpoint_every=7, checkpoint_at=(5,),
                grad_variance_every=9)


def _timetable(signal_every=1, **overrides):
  fields = {**SCHEDULE, **overrides}
  return loop.Timetable(**{**fields, 'checkpoint_at': frozenset(fields['checkpoint_at'])},
                        signal_every=signal_every)


def _fired(timetable, signal_at=None):
  """The steps after which each action is due, up to the signal's step (where the run stops)."""
  fired = {'log': [], 'evaluate': [], 'save': [], 'signal': []}
  for done in range(1, timetable.num_steps + 1):
    due = timetable.due(done, signal.SIGTERM if done == signal_at else None)
    for action in ('log', 'evaluate', 'save'):
      if getattr(due, action):
        fired[action].append(done)
    if due.signal is not None:
      fired['signal'].append(done)
      break
  return fired


def test_each_action_is_due_at_its_own_steps_and_every_one_at_the_last():
  assert _fired(_timetable()) == {
      'log': [4, 8, 12, 16, 20, 24, 28, 30],
      'evaluate': [6, 12, 18, 24],  # not 30: the final evaluation follows the last update
      'save': [5, 7, 14, 21, 28, 30],
      'signal': []}


def test_a_signal_is_saved_at_its_step_before_the_run_stops():
  assert _fired(_timetable(), signal_at=13) == {
      'log': [4, 8, 12], 'evaluate': [6, 12], 'save': [5, 7, 13], 'signal': [13]}
  due = _timetable().due(13, signal.SIGINT)
  assert (due.save, due.sync, due.signal, due.log, due.evaluate) == (
      True, True, signal.SIGINT, False, False)


def test_the_state_is_synced_before_each_evaluation_and_save_only():
  timetable = _timetable()
  synced = [done for done in range(1, 31) if timetable.due(done).sync]
  assert synced == [5, 6, 7, 12, 14, 18, 21, 24, 28, 30]


def test_zero_periods_leave_the_last_step_alone():
  fired = _fired(_timetable(log_every=10, eval_every=0, checkpoint_every=0, checkpoint_at=(),
                            grad_variance_every=0))
  assert fired == {'log': [10, 20, 30], 'evaluate': [], 'save': [30], 'signal': []}
  assert not any(_timetable(grad_variance_every=0).measures_variance(s) for s in range(30))


def test_the_gradient_variance_is_measured_before_the_updates_from_its_multiples():
  assert [s for s in range(30) if _timetable().measures_variance(s)] == [0, 9, 18, 27]


def test_several_processes_agree_on_a_signal_every_hundred_updates_and_at_the_last():
  one = _timetable(num_steps=250)
  several = _timetable(num_steps=250, signal_every=loop.SIGNAL_CHECK_EVERY)
  assert all(one.checks_signal(done) for done in range(1, 251))
  assert [done for done in range(1, 251) if several.checks_signal(done)] == [100, 200, 250]


def test_the_timetable_of_a_config(data_dir):
  config = _config(data_dir, **SCHEDULE)
  assert loop.Timetable.of(config, process_count=1) == _timetable()
  assert loop.Timetable.of(config, process_count=2).signal_every == loop.SIGNAL_CHECK_EVERY


@pytest.mark.slow
def test_a_run_logs_evaluates_and_saves_when_due_and_resumes_after_a_signal(
    data_dir, tmp_path, monkeypatch):
  config = _config(data_dir, keep_checkpoints=10, **{**SCHEDULE, 'grad_variance_every': 0})
  workdir = str(tmp_path / 'run')
  agreed = []

  def agree(self):  # a SIGTERM agreed on after update 13
    agreed.append(len(agreed) + 1)
    return signal.SIGTERM if len(agreed) == 13 else None

  monkeypatch.setattr(stopping.StopRequests, 'agree', agree)
  with pytest.raises(SystemExit) as stopped:
    train.run(config, workdir, make_experiment(config))
  assert stopped.value.code == 128 + signal.SIGTERM
  monkeypatch.undo()
  results = train.run(config, workdir, make_experiment(config))
  assert results['start_step'] == 13 and results['steps'] == 30

  fired, after = _fired(_timetable(), signal_at=13), _fired(_timetable())
  steps = lambda kind: [r['step'] for r in train.read_metrics(workdir, kind)]
  # The interval cut by the signal is not logged; the resumed run's first one starts at 13.
  assert steps('train') == fired['log'] + [s for s in after['log'] if s > 13]
  assert steps('eval') == fired['evaluate'] + [s for s in after['evaluate'] if s > 13] + [30]
  saved = sorted(int(name) for name in os.listdir(os.path.join(workdir, 'checkpoints'))
                 if name.isdigit())
  assert saved == fired['save'] + [s for s in after['save'] if s > 13]
