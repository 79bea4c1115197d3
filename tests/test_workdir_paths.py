"""Workdirs on a local disk and on an object store: atomic writes, the run's files, its lock.

The object store is an in-memory fsspec file system registered for `gs://` (etils.epath reaches
`gs://` through fsspec when TensorFlow is absent), so nothing leaves the machine. Orbax writes
arrays through tensorstore, which this fake does not reach: the full run below keeps its
checkpoints in a local folder and everything else in the fake bucket.
"""

import importlib
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from etils.epath import backend as epath_backend
from etils.epath import gpath
from fsspec.implementations.memory import MemoryFileSystem

from glimpse_jax import files, train
from glimpse_jax.train import checkpoint as checkpoint_lib
from glimpse_jax.train import metrics, workdir as workdir_lib
from glimpse_jax.train.metrics import MetricsWriter


class FakeBucket(MemoryFileSystem):
  """`gs://bucket/key` held in memory (its own store, apart from fsspec's `memory://`)."""

  protocol = ('gs', 'gcs')
  store: dict = {}
  pseudo_dirs = ['']

  @classmethod
  def _strip_protocol(cls, path):
    path = os.fspath(path)
    for prefix in ('gs://', 'gcs://'):
      path = path.removeprefix(prefix)
    path = path.strip('/')
    return f'/{path}' if path else ''


@pytest.fixture
def bucket(monkeypatch):
  """A fresh fake `gs://` store; yields the objects it holds, {'/bucket/key': MemoryFile}."""
  monkeypatch.setattr(gpath, '_is_tf_installed', lambda: False)  # fsspec, not tf.io.gfile
  registry = importlib.import_module('fsspec.registry')._registry  # pylint: disable=protected-access
  for name in ('gs', 'gcs'):
    monkeypatch.setitem(registry, name, FakeBucket)
  monkeypatch.setattr(FakeBucket, 'store', {})
  monkeypatch.setattr(FakeBucket, 'pseudo_dirs', [''])
  FakeBucket.clear_instance_cache()
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  yield FakeBucket.store
  FakeBucket.clear_instance_cache()
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access


def objects(store) -> dict[str, bytes]:
  return {key: file.getvalue() for key, file in store.items()}


# ---------------------------------------------------------------------------------------------
# files.py
# ---------------------------------------------------------------------------------------------
def test_local_atomic_write_replaces_the_file_through_a_synced_temporary(tmp_path, monkeypatch):
  target = tmp_path / 'results.json'
  target.write_text('old')
  synced = []
  real_fsync = os.fsync
  monkeypatch.setattr(os, 'fsync', lambda fd: synced.append(fd) or real_fsync(fd))
  files.write_atomic(str(target), 'new')
  assert target.read_text() == 'new' and len(synced) == 1
  assert os.listdir(tmp_path) == ['results.json'] and (target.stat().st_mode & 0o777) == 0o644

  def fail(fd):
    raise OSError('disk full')

  monkeypatch.setattr(os, 'fsync', fail)
  with pytest.raises(OSError, match='disk full'):
    files.write_atomic(target, b'half')
  assert target.read_text() == 'new' and os.listdir(tmp_path) == ['results.json']


def test_object_store_write_is_one_upload(bucket):
  files.write_atomic('gs://bucket/run/config.json', '{"a": 1}\n')
  files.write_atomic('gs://bucket/run/config.json', b'{"a": 2}\n')
  assert objects(bucket) == {'/bucket/run/config.json': b'{"a": 2}\n'}  # no temporary beside it
  assert files.as_path('gs://bucket/run/config.json').read_text() == '{"a": 2}\n'


def test_paths_keep_their_scheme():
  assert files.is_local('runs/x') and files.is_local('/abs/x')
  assert not files.is_local('gs://bucket/x')
  assert files.normpath('./runs/x/') == 'runs/x'
  assert files.normpath('gs://bucket//runs/./x/') == 'gs://bucket/runs/x'
  assert checkpoint_lib.checkpoint_dir('gs://bucket/x/') == 'gs://bucket/x/checkpoints'
  assert checkpoint_lib.checkpoint_dir('runs/x') == os.path.abspath('runs/x/checkpoints')


# ---------------------------------------------------------------------------------------------
# The run's files on an object store.
# ---------------------------------------------------------------------------------------------
def test_metrics_reach_the_bucket_at_flush_and_close(bucket):
  workdir = 'gs://bucket/run'
  writer = MetricsWriter(workdir)
  writer.write('train', 10, {'loss': 1.0})
  # Object stores have no append: records are uploaded whole, at most every SYNC_SECONDS.
  assert metrics.read_metrics(workdir) == []
  writer.flush()  # the loop flushes at every checkpoint
  assert metrics.read_metrics(workdir) == [{'kind': 'train', 'step': 10, 'loss': 1.0}]
  writer.write('eval', 10, {'split': 'test', 'error': 0.5})
  writer.close()
  assert [r['kind'] for r in metrics.read_metrics(workdir)] == ['train', 'eval']
  assert any(key.startswith('/bucket/run/tensorboard/events.out.tfevents.') for key in bucket)

  resumed = MetricsWriter(workdir, resume_step=10)  # keeps what the bucket holds
  assert [r['kind'] for r in resumed.kept] == ['train', 'eval']
  resumed.close()


def test_metrics_are_uploaded_periodically_while_records_arrive(bucket, monkeypatch):
  monkeypatch.setattr(metrics, 'SYNC_SECONDS', 0.0)
  writer = MetricsWriter('gs://bucket/run')
  writer.write('train', 10, {'loss': 1.0})
  assert len(metrics.read_metrics('gs://bucket/run')) == 1
  writer.close()


def test_config_and_results_round_trip(bucket):
  config = train.base_config()
  config.experiment = 'toy'
  metrics.write_config('gs://bucket/run', config)
  assert metrics.read_config('gs://bucket/run').experiment == 'toy'
  assert metrics.read_config('gs://bucket/elsewhere') is None
  metrics.write_results('gs://bucket/run', {'test_error': 0.25})
  assert metrics.read_results('gs://bucket/run') == {'test_error': 0.25}


# ---------------------------------------------------------------------------------------------
# The lock: flock on a local disk, a lease on an object store.
# ---------------------------------------------------------------------------------------------
def test_a_lease_keeps_a_second_run_out_until_released(bucket, monkeypatch):
  monkeypatch.setattr(workdir_lib.LeaseLock, 'settle_seconds', 0.0)
  with workdir_lib.lock_workdir('gs://bucket/run') as lock:
    assert isinstance(lock, workdir_lib.LeaseLock)
    holder = json.loads(files.as_path('gs://bucket/run/.lock').read_text())
    assert holder['pid'] == os.getpid() and holder['expires'] > time.time()
    with pytest.raises(train.WorkdirBusyError, match=rf'pid {os.getpid()} on '):
      workdir_lib.LeaseLock('gs://bucket/run').acquire()
  assert '/bucket/run/.lock' not in bucket
  with workdir_lib.lock_workdir('gs://bucket/run'):
    pass


def test_a_lease_renews_itself(bucket, monkeypatch):
  monkeypatch.setattr(workdir_lib.LeaseLock, 'settle_seconds', 0.0)
  monkeypatch.setattr(workdir_lib.LeaseLock, 'lease_seconds', 0.2)
  with workdir_lib.lock_workdir('gs://bucket/run'):
    first = json.loads(files.as_path('gs://bucket/run/.lock').read_text())['expires']
    time.sleep(0.3)  # past the first expiry: renewed every lease_seconds / 4
    later = json.loads(files.as_path('gs://bucket/run/.lock').read_text())['expires']
    assert later > first and later > time.time()
    # Taken over (this run stalled past its expiry): the lease is left to its new holder.
    other = {'host': 'elsewhere', 'pid': 7, 'token': 'other', 'expires': time.time() + 100}
    files.as_path('gs://bucket/run/.lock').write_text(json.dumps(other))
    time.sleep(0.15)
    assert json.loads(files.as_path('gs://bucket/run/.lock').read_text()) == other
  assert json.loads(files.as_path('gs://bucket/run/.lock').read_text()) == other  # not removed


def test_a_stale_lease_does_not_block_a_restart(bucket, monkeypatch):
  monkeypatch.setattr(workdir_lib.LeaseLock, 'settle_seconds', 0.0)
  lock = files.as_path('gs://bucket/run/.lock')
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  leases = [  # a dead process on this host; another host's lease that ran out
      {'host': socket.gethostname(), 'pid': int(dead.stdout), 'expires': time.time() + 100},
      {'host': 'elsewhere', 'pid': 1, 'expires': time.time() - 1}]
  for lease in leases:
    lock.write_text(json.dumps(lease))
    with workdir_lib.lock_workdir('gs://bucket/run'):
      assert json.loads(lock.read_text())['pid'] == os.getpid()
  lock.write_text(json.dumps({'host': 'elsewhere', 'pid': 7, 'expires': time.time() + 100}))
  with pytest.raises(train.WorkdirBusyError, match='pid 7 on elsewhere'):
    workdir_lib.lock_workdir('gs://bucket/run').acquire()


def test_a_local_workdir_keeps_its_flock(tmp_path):
  assert isinstance(workdir_lib.lock_workdir(str(tmp_path)), workdir_lib.WorkdirLock)


# ---------------------------------------------------------------------------------------------
# A whole run.
# ---------------------------------------------------------------------------------------------
def test_a_run_writes_its_files_to_the_bucket(bucket, monkeypatch, tmp_path, data_dir):
  from tests import test_train_loop as toy  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(workdir_lib.LeaseLock, 'settle_seconds', 0.0)
  local_checkpoints = str(tmp_path / 'checkpoints')
  monkeypatch.setattr(checkpoint_lib, 'checkpoint_dir', lambda workdir: local_checkpoints)
  config = toy.get_config('tiny')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.update(num_steps=6, log_every=3, eval_every=3, checkpoint_every=0)
  workdir = 'gs://bucket/runs/toy/'  # as typed: a trailing slash
  results = train.run_pipeline(config, workdir, toy.make_experiment)['toy_mlp']

  assert sorted(bucket) == sorted(
      ['/bucket/runs/toy/config.json', '/bucket/runs/toy/metrics.jsonl',
       '/bucket/runs/toy/results.json', '/bucket/runs/toy/learning_curve.png',
       '/bucket/runs/toy/toy_plot.json'] +
      [key for key in bucket if key.startswith('/bucket/runs/toy/tensorboard/events.')])
  assert any('/tensorboard/' in key for key in bucket)  # and no .lock left behind
  assert train.read_results('gs://bucket/runs/toy')['test_error'] == results['test_error']
  assert train.read_config('gs://bucket/runs/toy').num_steps == 6
  records = train.read_metrics('gs://bucket/runs/toy')
  assert [(r['kind'], r['step']) for r in records] == [
      ('train', 3), ('eval', 3), ('train', 6), ('eval', 6)]
  assert json.loads(bucket['/bucket/runs/toy/toy_plot.json'].getvalue())['batch'] == 64
  assert os.listdir(local_checkpoints)  # orbax's part, kept local in this test
