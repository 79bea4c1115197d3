"""What multi-phase methods ask of the loop, in process on a toy MLP: grafted and frozen
parameters, frozen models as step inputs, headlines, validation and early stopping, data-producing
phases joined by index, the workdir lock and a tolerant metrics reader."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from glimpse_jax import data, train
from glimpse_jax.train import mesh as mesh_lib
from glimpse_jax.train import step as step_lib
from glimpse_jax.train.params import subtree

TRACES = {'loss': 0}


class _Net(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, images):  # [B, H, W, 1] -> [B, 10]
    x = images.reshape(images.shape[0], -1)
    return nn.Dense(10, name='head')(nn.relu(nn.Dense(self.hidden, name='body')(x)))


def _config(data_dir, **overrides):
  config = train.base_config()
  config.experiment = 'toy'
  config.batch_size = 32
  config.num_steps = 10
  config.log_every = 5
  config.checkpoint_every = 5
  config.eval.batch_size = 64
  config.optimizer.learning_rate = 3e-3
  config.dataset.update(train_examples=1024, eval_examples=128, download=False,
                        data_dir=data_dir, train_on_the_fly=False)
  config.model = ml_collections.ConfigDict(dict(hidden=16, teacher_hidden=32))
  config.update_from_flattened_dict(overrides)
  return config


def _experiment(config, frozen_models=(), generate=False):
  model = _Net(config.model.hidden)
  teacher = _Net(config.model.teacher_hidden)

  def init(rng, batch):
    return model.init(rng, batch['image'])

  def loss(params, batch, rng, step, frozen=None):
    del rng, step
    TRACES['loss'] += 1
    logits = model.apply(params, batch['image'])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    metrics = {'error': jnp.mean(jnp.argmax(logits, -1) != batch['label'])}
    if frozen is None:
      return nll, metrics
    target = jax.nn.softmax(teacher.apply(frozen['teacher'], batch['image']))
    match = optax.softmax_cross_entropy(logits, target).mean()
    return nll + match, {**metrics, 'match': match}

  def evaluate(params, batch, rng, frozen=None):
    del rng, frozen
    logits = model.apply(params, batch['image'])
    return {'error': (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32)}

  def produce(batch, rng, frozen):
    del rng
    return {'teacher_logits': teacher.apply(frozen['teacher'], batch['image'])}

  if generate:
    return train.Experiment(generate=produce, frozen_models=frozen_models)
  return train.Experiment(init=init, loss=loss, evaluate=evaluate, frozen_models=frozen_models)


def _teacher(data_dir, workdir):
  config = _config(data_dir, **{'model.hidden': 32})
  train.run(config, workdir, _experiment(config))
  return workdir


# ---------------------------------------------------------------------------------------------
# Grafting and freezing parameter subtrees.
# ---------------------------------------------------------------------------------------------
def test_graft_takes_named_subtrees_and_names_mismatches():
  target = {'params': {'body': {'kernel': np.zeros((4, 3))}, 'head': {'kernel': np.zeros((3, 2))}}}
  source = {'params': {'body': {'kernel': np.ones((4, 3))}, 'head': {'kernel': np.ones((3, 5))}}}
  grafted = train.graft(target, source, ('params/body',))
  np.testing.assert_array_equal(grafted['params']['body']['kernel'], 1.0)
  np.testing.assert_array_equal(grafted['params']['head']['kernel'], 0.0)
  with pytest.raises(ValueError, match=r"params/head/kernel: float64\[3, 5\] in src, "
                                       r"float64\[3, 2\] here"):
    train.graft(target, source, ('params/head',), source_name='src')
  with pytest.raises(ValueError, match=r"'params/encoder'.*\['body', 'head'\]"):
    train.graft(target, source, ('params/encoder',))
  with pytest.raises(ValueError, match=r"params/body/bias: missing in source, float32\[3\] here"):
    train.graft({'params': {'body': {'bias': np.zeros(3, np.float32)}}}, source, ('params/body',))


@pytest.mark.slow
def test_init_subtrees_and_optimizer_freeze(data_dir, tmp_path):
  first = _teacher(data_dir, str(tmp_path / 'first'))
  config = _config(data_dir, **{'model.hidden': 32, 'init_from': first,
                                'init_subtrees': ('params/body',),
                                'optimizer.freeze': ('params/body',)})
  results = train.run(config, str(tmp_path / 'second'), _experiment(config))
  assert results['steps'] == 10
  before, after = train.load_params(first), train.load_params(str(tmp_path / 'second'))
  np.testing.assert_array_equal(before['params']['body']['kernel'],
                                after['params']['body']['kernel'])  # grafted, then frozen
  assert not np.allclose(before['params']['head']['kernel'], after['params']['head']['kernel'])

  config = _config(data_dir, **{'init_from': first, 'init_subtrees': ('params/body',)})
  with pytest.raises(ValueError, match=r'params/body/kernel: float32\[784, 32\] in '
                                       r"init_from=.*float32\[784, 16\] here"):
    train.run(config, str(tmp_path / 'third'), _experiment(config))
  with pytest.raises(ValueError, match=r'optimizer.freeze.*no .params/nope'):
    train.freeze_labels({'params': {'body': 1}}, ('params/nope',))


# ---------------------------------------------------------------------------------------------
# Frozen models: restored from another workdir, an input of the jitted step, never trained.
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_frozen_teacher_is_a_step_input_and_stays_out_of_the_checkpoint(data_dir, tmp_path):
  teacher_dir = _teacher(data_dir, str(tmp_path / 'teacher'))
  config = _config(data_dir, **{'frozen': ml_collections.ConfigDict({'teacher': teacher_dir})})
  experiment = _experiment(config, frozen_models=('teacher',))
  results = train.run(config, str(tmp_path / 'student'), experiment)
  assert results['steps'] == 10
  student = train.load_params(str(tmp_path / 'student'))
  assert subtree(student, 'params/body')['kernel'].shape == (784, 16)  # the student's only
  assert set(student) == {'params'} and set(student['params']) == {'body', 'head'}

  # Other teacher values change the loss without a new compilation: they are an argument.
  mesh = train.make_data_mesh()
  steps = step_lib.make_steps(experiment, mesh, 2)
  teacher = mesh_lib.put_replicated(train.load_params(teacher_dir), mesh)
  batch = next(data.train_stream(config.dataset, 32, seed=0))
  tx, _ = train.make_optimizer(config.optimizer, 10)
  matches = []
  TRACES['loss'] = 0
  for scale in (1.0, 0.0):
    state = train.create_state(experiment, tx, jax.random.key(0), batch, mesh_lib.replicated(mesh))
    frozen = {'teacher': jax.tree.map(lambda x: x * scale, teacher)}
    acc = step_lib.init_accumulator(['error', 'grad_norm', 'loss', 'match'])  # donated below
    _, sums = steps.update(state, acc, mesh_lib.shard_batch(batch, mesh_lib.batch_sharding(mesh)),
                           jax.random.key(1), frozen)
    matches.append(float(sums['sum']['match']))
  assert TRACES['loss'] == 1
  assert matches[0] != matches[1]
  assert matches[1] >= np.log(10) - 1e-5  # a zeroed teacher's target is uniform

  config = _config(data_dir)
  with pytest.raises(ValueError, match=r"takes frozen models \['teacher'\] but the config's "
                                       r'frozen names \[\]'):
    train.run(config, str(tmp_path / 'none'), _experiment(config, frozen_models=('teacher',)))
  config = _config(data_dir, **{'frozen': ml_collections.ConfigDict({'teacher': teacher_dir}),
                                'model.teacher_hidden': 64})  # the teacher has 32 units
  with pytest.raises(ValueError, match=rf"fails with the frozen models frozen.teacher="
                                       rf"'{teacher_dir}' \(is each the model"):
    train.run(config, str(tmp_path / 'wider'), _experiment(config, frozen_models=('teacher',)))


# ---------------------------------------------------------------------------------------------
# Headline, validation split, early stopping.
# ---------------------------------------------------------------------------------------------
def test_headline_must_be_an_evaluate_value(data_dir, tmp_path):
  config = _config(data_dir, headline='bce')
  with pytest.raises(ValueError, match=r"headline='bce': experiment.evaluate returns only "
                                       r"\['error'\]"):
    train.run(config, str(tmp_path / 'run'), _experiment(config))
  with pytest.raises(ValueError, match="eval.splits has 'validation'"):
    train.validate(_config(data_dir, **{'eval.splits': ('validation', 'test')}))
  with pytest.raises(ValueError, match='early_stopping.patience needs eval_every'):
    train.validate(_config(data_dir, **{'early_stopping.patience': 2,
                                        'dataset.validation_examples': 64,
                                        'eval.splits': ('validation', 'test')}))


def test_validation_split_and_early_stopping_survive_a_restart(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  # A zero learning rate never improves: evaluations at 5 (best), 10, 15 -> stop after 15.
  config = _config(data_dir, **{
      'num_steps': 50, 'eval_every': 5, 'eval_examples_during_training': 0,
      'optimizer.learning_rate': 0.0, 'dataset.validation_examples': 64,
      'eval.splits': ('validation', 'test'), 'early_stopping.patience': 2})
  results = train.run(config, workdir, _experiment(config))
  assert results['steps'] == 15 and results['stopped_early']
  assert results['best_step'] == 5 and results['validation_examples'] == 64
  assert results['headline'] == 'error' and results['headline_split'] == 'test'
  assert results['headline_value'] == results['test_error']
  evals = train.read_metrics(workdir, 'eval')
  assert [(r['step'], r['split']) for r in evals][:4] == [
      (5, 'validation'), (5, 'test'), (10, 'validation'), (10, 'test')]
  again = train.run(config, workdir, _experiment(config))
  assert again['steps'] == 15 and again['start_step'] == 15
  assert again['stopped_early'] and again['best_step'] == 5


def test_a_run_trained_to_the_end_has_not_stopped_early(data_dir, tmp_path):
  # Evaluations at 5 (best) and 10, then the final one at 15: patience 2 is never reached
  # while training, and the evaluation after it counts neither as a step without improvement
  # nor as the best.
  config = _config(data_dir, **{
      'num_steps': 15, 'eval_every': 5, 'eval_examples_during_training': 0,
      'optimizer.learning_rate': 0.0, 'dataset.validation_examples': 64,
      'eval.splits': ('validation', 'test'), 'early_stopping.patience': 2})
  results = train.run(config, str(tmp_path / 'run'), _experiment(config))
  assert results['steps'] == 15 and not results['stopped_early']
  assert results['best_step'] == 5


@pytest.mark.slow
def test_learning_rate_plateau_follows_evaluations(data_dir, tmp_path):
  # optax's rule fed by hand: the second equal value halves the updates.
  config = _config(data_dir, **{'optimizer.name': 'sgd', 'optimizer.learning_rate': 0.1,
                                'optimizer.plateau.patience': 1})
  tx, _ = train.make_optimizer(config.optimizer, 10)
  rule = train.state.plateau_rule(config.optimizer.plateau)
  params = {'w': jnp.ones(3)}
  opt_state = tx.init(params)
  for _ in range(2):
    opt_state = train.state.report_plateau(opt_state, jnp.float32(0.3), rule)
  updates, _ = tx.update({'w': jnp.ones(3)}, opt_state, params)
  np.testing.assert_allclose(updates['w'], -0.05)

  # In a run: a frozen metric (learning rate 0) halves the scale at every evaluation after the
  # first, and the records say so.
  workdir = str(tmp_path / 'run')
  config = _config(data_dir, **{
      'num_steps': 20, 'eval_every': 5, 'optimizer.learning_rate': 0.0,
      'dataset.validation_examples': 64, 'eval.splits': ('validation', 'test'),
      'optimizer.plateau.patience': 1})
  train.run(config, workdir, _experiment(config))
  records = train.read_metrics(workdir, 'plateau')
  assert [(r['step'], r['scale']) for r in records] == [(5, 1.0), (10, 0.5), (15, 0.25)]
  with pytest.raises(ValueError, match='optimizer.plateau.patience needs eval_every'):
    train.validate(_config(data_dir, **{'optimizer.plateau.patience': 1}))


# ---------------------------------------------------------------------------------------------
# A data-producing phase: interrupted, resumed, joined into training batches by index.
# ---------------------------------------------------------------------------------------------
def _generate_config(data_dir, teacher_dir):
  return _config(data_dir, **{
      'kind': 'generate', 'frozen': ml_collections.ConfigDict({'teacher': teacher_dir}),
      'generate.fraction': 0.5, 'generate.chunk_size': 100})


def test_generate_phase_resumes_and_joins_by_index(data_dir, tmp_path, monkeypatch):
  teacher_dir = _teacher(data_dir, str(tmp_path / 'teacher'))
  config = _generate_config(data_dir, teacher_dir)
  experiment = _experiment(config, ('teacher',), generate=True)
  reference = str(tmp_path / 'reference')
  results = train.generate(config, reference, experiment)
  assert results['examples'] == 512 and results['chunks'] == 6
  assert results['fields'] == {'teacher_logits': ['float32', [10]]}

  interrupted = str(tmp_path / 'interrupted')
  write_chunk = data.ExampleStore.write_chunk
  written = []

  def interrupt_after_two(store, k, arrays):
    if len(written) == 2:
      raise KeyboardInterrupt
    written.append(k)
    write_chunk(store, k, arrays)
  monkeypatch.setattr(data.ExampleStore, 'write_chunk', interrupt_after_two)
  with pytest.raises(KeyboardInterrupt):
    train.generate(config, interrupted, experiment)
  monkeypatch.setattr(data.ExampleStore, 'write_chunk', write_chunk)
  assert data.ExampleStore(os.path.join(interrupted, 'store')).num_done == 2
  resumed = train.generate(config, interrupted, experiment)
  assert resumed['written_examples'] == 512 - 200
  assert resumed['seconds_per_example'] == pytest.approx(resumed['wall_seconds'] / (512 - 200))
  ours, theirs = train.open_store(reference), train.open_store(interrupted)
  np.testing.assert_array_equal(ours.indices, theirs.indices)
  np.testing.assert_array_equal(ours.arrays['teacher_logits'], theirs.arrays['teacher_logits'])

  # The stored logits are the teacher's on the image with that index.
  split = data.load_split(config.dataset, 'train')
  teacher = _Net(32)
  index = ours.indices[:5]
  images = split['image'][index].astype(np.float32) / 255
  np.testing.assert_allclose(teacher.apply(train.load_params(teacher_dir), images),
                             ours.arrays['teacher_logits'][:5], rtol=1e-5, atol=1e-5)
  batch = next(data.train_stream(config.dataset, 32, seed=0, join=ours))
  looked_up = ours.lookup(batch['index'])
  np.testing.assert_array_equal(batch['teacher_logits'], looked_up['teacher_logits'])
  assert 0 < np.sum(batch['stored']) < 32

  student = _config(data_dir, **{'data_from': reference, 'dataset.train_examples': 2048})
  with pytest.raises(ValueError, match=r'stored for other training examples: dataset '
                                       r'train_examples=1024 there, 2048 here'):
    train.run(student, str(tmp_path / 'student'), _experiment(student))

  with pytest.raises(ValueError, match='records another plan'):
    train.generate(_config(data_dir, **{
        'kind': 'generate', 'frozen': ml_collections.ConfigDict({'teacher': teacher_dir}),
        'generate.fraction': 0.25, 'generate.chunk_size': 100}), reference, experiment)


# ---------------------------------------------------------------------------------------------
# One run per workdir; metrics files with damaged lines.
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_run_on_a_busy_workdir_stops_naming_the_first(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from glimpse_jax.train.workdir import WorkdirLock; '
       'WorkdirLock(sys.argv[1]).acquire(); print("locked", flush=True); time.sleep(60)', workdir],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    config = _config(data_dir)
    with pytest.raises(train.WorkdirBusyError, match=f'in use by another run .pid {holder.pid}'):
      train.run(config, workdir, _experiment(config))
  finally:
    holder.kill()
    holder.wait()
  config = _config(data_dir, num_steps=5)
  assert train.run(config, workdir, _experiment(config))['steps'] == 5  # the lock died with it


def test_metrics_reader_skips_malformed_lines_anywhere(tmp_path):
  lines = [json.dumps({'kind': 'train', 'step': 1, 'loss': 1.0}),
           '{"kind": "train", "step": 2, "lo{"kind": "eval"',
           json.dumps({'kind': 'eval', 'step': 2, 'error': 0.5}), '[1, 2]',
           json.dumps({'kind': 'train', 'step': 3, 'loss': 0.5}), '{"kind": "tr']
  (tmp_path / 'metrics.jsonl').write_text('\n'.join(lines))
  assert [r['step'] for r in train.read_metrics(str(tmp_path))] == [1, 2, 3]
  assert [r['step'] for r in train.read_metrics(str(tmp_path), 'train')] == [1, 3]


def test_pipeline_references_must_name_earlier_phases(data_dir):
  late = _config(data_dir, init_from='second')
  with pytest.raises(ValueError, match=r"phases.first.init_from='second' must name an earlier"):
    train.pipeline_config('toy', [('first', late), ('second', _config(data_dir))])
  config = train.pipeline_config('toy', [('first', _config(data_dir)),
                                         ('second', _config(data_dir, init_from='first'))])
  (_, first, first_dir), (_, second, _) = train.pipeline.resolved_phases(config, '/runs/x')
  assert (first_dir, second.init_from, first.phase) == ('/runs/x/first', '/runs/x/first', 'first')


def test_resuming_another_model_or_fewer_steps_names_the_change(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _config(data_dir)
  train.run(config, workdir, _experiment(config))  # 10 steps, checkpoints at 5 and 10
  wider = _config(data_dir, **{'model.hidden': 32})
  with pytest.raises(ValueError, match=r"cannot resume from its checkpoint at step 10 .*config "
                                       r"changes since it was saved: model.hidden: 16 -> 32"):
    train.run(wider, workdir, _experiment(wider))
  fewer = _config(data_dir, num_steps=5)
  with pytest.raises(ValueError, match='num_steps=5, but .* holds a checkpoint at step 10'):
    train.run(fewer, workdir, _experiment(fewer))
  assert json.loads((tmp_path / 'run' / 'config.json').read_text())['model']['hidden'] == 16
