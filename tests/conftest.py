"""Shared fixtures and helpers: where the real MNIST / Fashion-MNIST IDX files are, a Jupyter
kernel, a notebook run headless (a short run, or an experiment's smoke run that its tests check);
for the whole session one JAX compilation cache and the tests' compile flag; the two test tiers
and the fast tier's time limit.

The tiers: `make test` runs the fast one (`-m 'not slow'`): unit tests and a few steps of each
experiment's smoke (or tinier) config. `make test-all` adds the slow tier: tests marked `slow`,
`learning` (a training long enough to check what it learned), `notebook` (a notebook run headless)
or `multihost` (several main.py processes); each of the last three puts a test in the slow tier."""

import json
import os
import pathlib
import shutil
import sys
import tempfile
from typing import NamedTuple

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / 'notebooks'
CACHE_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'
MIN_TIME_VARIABLE = 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'


# Tests compile with LLVM's optimisation level 1 instead of XLA's default 2: compiling, most of
# the suite's time, takes about a quarter less and training runs as fast. Values may differ from
# level 2's in the last bits: every check has a tolerance above that, or compares two runs
# compiled alike. A level already in XLA_FLAGS is kept, so
# `XLA_FLAGS=--xla_backend_optimization_level=2 make test` checks the default code generation.
TEST_XLA_FLAG = '--xla_backend_optimization_level=1'


def pytest_configure(config):
  """Set once, in the controller (xdist workers, main.py subprocesses and notebook kernels
  inherit the environment): the test compile flag and the session's compilation cache.

  Compiled programs are shared by every process of the session through the cache, so a program
  compiled once (a resumed run, a notebook's model, an init shared by parametrised cases, an
  operation run eagerly on both workers) is loaded, not compiled again. A fresh folder per
  session, removed at its end: nothing carries over between sessions. A folder already set in
  the environment is used as it is."""
  if hasattr(config, 'workerinput'):
    return  # an xdist worker: the controller has set the environment
  flags = os.environ.get('XLA_FLAGS', '')
  if '--xla_backend_optimization_level' not in flags:
    os.environ['XLA_FLAGS'] = f'{flags} {TEST_XLA_FLAG}'.strip()
  if os.environ.get(CACHE_VARIABLE):
    return  # the caller's own cache
  folder = tempfile.mkdtemp(prefix='glimpse-jax-compiled-')
  config.stash[_CACHE_KEY] = folder
  os.environ[CACHE_VARIABLE] = folder
  os.environ[MIN_TIME_VARIABLE] = '0'  # operations run eagerly are shared too
  if 'jax' in sys.modules:  # already imported (by a plugin): its flags read the environment
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update('jax_compilation_cache_dir', folder)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


def pytest_unconfigure(config):
  folder = config.stash.get(_CACHE_KEY, None)
  if folder:
    os.environ.pop(CACHE_VARIABLE, None)
    os.environ.pop(MIN_TIME_VARIABLE, None)
    shutil.rmtree(folder, ignore_errors=True)


_CACHE_KEY = pytest.StashKey[str]()


# Markers that put a test in the slow tier, beside `slow` itself.
SLOW_TIER_MARKERS = ('learning', 'notebook', 'multihost')


@pytest.hookimpl(tryfirst=True)  # before `-m` selects: a `learning` test is a `slow` one
def pytest_collection_modifyitems(config, items):
  """Tests marked with one of SLOW_TIER_MARKERS are marked slow too. Modules holding slow tests
  run first, each module's tests together and in their order: under `-n 2` the short tests then
  fill the end on both workers instead of one worker finishing a long check while the other
  waits."""
  del config
  for item in items:
    if any(item.get_closest_marker(name) for name in SLOW_TIER_MARKERS):
      item.add_marker(pytest.mark.slow)
  module = lambda item: item.nodeid.split('::')[0]
  slow = {module(item) for item in items if item.get_closest_marker('slow')}
  items.sort(key=lambda item: module(item) not in slow)  # stable


# The fast tier's limit on a test's call phase, in wall seconds on an otherwise idle machine: a
# fast-tier test that takes longer fails, asking to be marked. On a busier machine (a load average
# above its core count) the limit grows in proportion, so a shared machine does not fail tests
# that are short on an idle one. GLIMPSE_FAST_TEST_SECONDS sets it; 0 turns the check off.
FAST_LIMIT_VARIABLE = 'GLIMPSE_FAST_TEST_SECONDS'
FAST_LIMIT_SECONDS = 5.0
# A test fails at this multiple of its limit: the limit is the target, and a compile-bound test
# near it varies by more than a second from run to run on a shared 2-core machine.
FAST_LIMIT_TOLERANCE = 2.0
# Fast-tier tests allowed a longer call phase (node id without parameters: (their own limit in
# seconds, scaled as FAST_LIMIT_SECONDS is, and why they belong in the fast tier anyway)).
_SMOKE = "the experiment's fast-tier smoke: a few steps of its shrunk smoke config through the loop"
FAST_LIMIT_EXEMPT = {
    'tests/test_ram.py::test_a_shrunk_smoke_trains_a_few_steps': (15, _SMOKE),
    'tests/test_ws_ram.py::test_a_shrunk_smoke_trains_a_few_steps': (20, _SMOKE),
    'tests/test_ram_reward.py::test_a_short_run_writes_the_per_glimpse_figures': (15, _SMOKE),
    'tests/test_variant_mnist.py::test_a_shrunk_smoke_trains_a_few_steps_and_writes_its_cost': (
        10, _SMOKE),
    'tests/test_ws_ram_captioning.py::'
    'test_a_shrunk_smoke_pipeline_trains_both_phases_and_scores_its_captions': (
        25, _SMOKE + ' (two phases, greedy captions and BLEU)'),
    'tests/test_near_optimal_glimpses.py::test_the_smoke_posterior_phase_trains_a_few_steps': (
        10, _SMOKE),
    'tests/test_pipeline.py::test_a_few_steps_of_each_phase_in_process': (10, _SMOKE),
    'tests/test_pretrain_attention.py::test_classification_starts_from_the_pretrained_draw': (
        15, _SMOKE + ' (a tiny pre-training, then the grafted, frozen-teacher classifier)'),
}


def _fast_limit() -> float:
  value = os.environ.get(FAST_LIMIT_VARIABLE, '')
  try:
    return float(value) if value else FAST_LIMIT_SECONDS
  except ValueError:
    raise pytest.UsageError(f'{FAST_LIMIT_VARIABLE} must be a number of seconds, got {value!r}')


def _load_factor() -> float:
  """How much slower than on an idle machine a test may run now: the 1-minute load average per
  core, at least 1."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    cores = os.cpu_count() or 1
  return max(1.0, os.getloadavg()[0] / cores)


_TIMED_KEY = pytest.StashKey[bool]()


def pytest_collection_finish(session):
  """The limit holds in a fast-tier run: beside slow tests (`make test-all`) the fast ones share
  the cores with trainings, and their times say little."""
  session.config.stash[_TIMED_KEY] = not any(
      item.get_closest_marker('slow') for item in session.items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
  """Fails a passing fast-tier test whose call phase took longer than the limit."""
  report = yield
  limit = _fast_limit()
  if (report.when != 'call' or not report.passed or limit <= 0
      or not item.config.stash.get(_TIMED_KEY, False) or item.get_closest_marker('slow')):
    return report
  exempt = FAST_LIMIT_EXEMPT.get(item.nodeid.split('[')[0])
  if exempt:
    limit *= exempt[0] / FAST_LIMIT_SECONDS
  factor = _load_factor()
  if call.duration > FAST_LIMIT_TOLERANCE * limit * factor:
    busy = f' (x{factor:.1f} for the machine\'s load)' if factor > 1 else ''
    report.outcome = 'failed'
    report.longrepr = (
        f'{item.nodeid} took {call.duration:.1f} s, over {FAST_LIMIT_TOLERANCE:g} x the fast '
        f'tier\'s {limit:g} s{busy}: '
        'mark it @pytest.mark.slow (or learning / notebook / multihost) so that only `make '
        'test-all` runs it, make it shorter, or list it in FAST_LIMIT_EXEMPT in tests/conftest.py '
        f'with a reason ({FAST_LIMIT_VARIABLE} sets the limit, 0 turns it off).')
  return report


def in_ci() -> bool:
  """Whether this is a CI run ($CI set to true, as CI services do): missing data fails there."""
  return os.environ.get('CI', '').strip().lower() in ('1', 'true', 'yes')


@pytest.fixture(scope='session')
def data_dir() -> str:
  """$GLIMPSE_DATA_DIR, else `<repo>/../shared/data`. When no MNIST files are there the test
  fails in CI (a green run has run every test) and is skipped, saying why, elsewhere."""
  folder = pathlib.Path(os.environ.get('GLIMPSE_DATA_DIR') or REPO.parent / 'shared' / 'data')
  if not (folder / 'mnist').is_dir():
    message = (f'no MNIST IDX files under {folder}/mnist: set GLIMPSE_DATA_DIR to a folder '
               'holding mnist/ (and fashion_mnist/)')
    if in_ci():
      pytest.fail(f'{message} (CI is set: tests that need the data fail, not skip)',
                  pytrace=False)
    pytest.skip(message)
  return str(folder)


@pytest.fixture(scope='session')
def python3_kernel(tmp_path_factory):
  """The name of a Jupyter kernel for this interpreter, installed into a temporary folder when
  none called `python3` exists."""
  # Imported here: only the notebook tests need Jupyter.
  from ipykernel import kernelspec  # pylint: disable=g-import-not-at-top
  from jupyter_client import kernelspec as specs  # pylint: disable=g-import-not-at-top
  with pytest.MonkeyPatch.context() as patch:
    try:
      specs.KernelSpecManager().get_kernel_spec('python3')
    except specs.NoSuchKernel:
      prefix = tmp_path_factory.mktemp('jupyter')
      kernelspec.install(kernel_name='python3', prefix=str(prefix))
      patch.setenv('JUPYTER_PATH', str(prefix / 'share' / 'jupyter'))
    yield 'python3'


DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'


def subprocess_env(devices: int | None = None) -> dict[str, str]:
  """The environment for a child process (main.py, make) on CPU: this one's, keeping the
  session's compile flag and cache, with `devices` fake CPU devices (default: one)."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  flags = [f for f in env.get('XLA_FLAGS', '').split() if not f.startswith(DEVICE_COUNT_FLAG)]
  if devices:
    flags.append(f'{DEVICE_COUNT_FLAG}={devices}')
  env['XLA_FLAGS'] = ' '.join(flags)
  return env


class NotebookRun(NamedTuple):
  """What a headless run of a notebook left: its workdir, its pictures, its printed text."""
  workdir: pathlib.Path
  pictures: list
  printed: str


def execute_notebook(name: str, folder: pathlib.Path, data_dir: str, kernel: str,
                     steps: int | None) -> NotebookRun:
  """Runs notebooks/`name` start to end into `folder`/run (its generated datasets in
  `folder`/tfds): `steps` batches per phase, or with None the variants' own budgets (the smoke
  runs the learning checks read)."""
  # Imported here: only the notebook tests need Jupyter.
  import nbclient  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top
  with pytest.MonkeyPatch.context() as patch:
    if steps is None:
      patch.delenv('GLIMPSE_NOTEBOOK_STEPS', raising=False)
    else:
      patch.setenv('GLIMPSE_NOTEBOOK_STEPS', str(steps))
    patch.setenv('GLIMPSE_NOTEBOOK_WORKDIR', str(folder / 'run'))
    patch.setenv('GLIMPSE_DATA_DIR', data_dir)
    patch.setenv('JAX_PLATFORMS', 'cpu')
    patch.setenv('GLIMPSE_CACHE_DIR', str(folder / 'tfds'))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    # A cell's time limit only catches a hung kernel: a full smoke run trains in one cell.
    client = nbclient.NotebookClient(notebook, kernel_name=kernel,
                                     timeout=180 if steps else 900,
                                     resources={'metadata': {'path': str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
  outputs = [output for cell in notebook.cells if cell.cell_type == 'code'
             for output in cell.outputs]
  pictures = [output for output in outputs if 'image/png' in output.get('data', {})]
  printed = ''.join(output.get('text', '') for output in outputs)
  return NotebookRun(folder / 'run', pictures, printed)


def _without_data_paths(tree):
  if isinstance(tree, dict):
    return {k: _without_data_paths(v) for k, v in tree.items()
            if k not in ('data_dir', 'cache_dir')}
  return tree


def assert_trained_as(saved: dict, config) -> None:
  """`saved` (a run's or pipeline's stored config) is `config` but for where the data is read
  and cached: a notebook's run is the experiment's smoke variant, unchanged."""
  assert _without_data_paths(saved) == _without_data_paths(
      json.loads(config.to_json_best_effort()))


def linear_classifier():
  """Logistic regression on the pixels: a loss that reads every pixel of the canvas."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from glimpse_jax import train  # pylint: disable=import-outside-toplevel

  def init(rng, batch):
    pixels = np.prod(batch['image'].shape[1:])
    return {'w': 0.01 * jax.random.normal(rng, (pixels, 10)), 'b': jnp.zeros(10)}

  def logits(params, batch):
    return batch['image'].reshape(batch['image'].shape[0], -1) @ params['w'] + params['b']

  def loss(params, batch, rng, step):
    del rng, step
    nll = optax.softmax_cross_entropy_with_integer_labels(logits(params, batch), batch['label'])
    return nll.mean(), {'nll': nll.mean()}

  def evaluate(params, batch, rng):
    del rng
    return {'error': (jnp.argmax(logits(params, batch), -1) != batch['label']).astype(float)}

  return train.Experiment(init=init, loss=loss, evaluate=evaluate)
