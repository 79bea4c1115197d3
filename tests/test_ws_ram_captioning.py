"""WS-RAM's captioning experiment: the pyramid read against NumPy, teacher forcing and greedy
decoding, the caption likelihood and its mask, the frozen pyramid, config checks, and the smoke
pipeline (it learns, and writes sacrebleu's BLEU and the window pictures)."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_trained_as, execute_notebook
from glimpse_jax import train
from glimpse_jax.plots.caption_windows import pyramid_window_boxes
from glimpse_jax.data import captions
from glimpse_jax.nets import draw_noise, mode_noise
from glimpse_jax.nets.captioning import AttentionCaptioner, read_window
from glimpse_jax.objectives import method_surrogate, var_loss, wake_sleep_loss
from glimpse_jax.train.pipeline import PIPELINE_FILE

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'experiments'))
import ws_ram_captioning as wc  # pylint: disable=g-import-not-at-top,wrong-import-position

TINY = dict(cnn_features=(4, 6, 8), low_res_size=4, window=3, embed_features=5, read_features=7,
            lstm_features=9, inference_features=6)


def _numpy_window(fmap, loc, size):
  """The size x size cells around loc: centre c = (loc + 1) / 2 * (w, h), first cell
  floor(c - size / 2 + 0.5), zeros outside the map."""
  h, w, c = fmap.shape
  cx, cy = (loc[0] + 1) / 2 * w, (loc[1] + 1) / 2 * h
  left, top = int(np.floor(cx - size / 2 + 0.5)), int(np.floor(cy - size / 2 + 0.5))
  out = np.zeros((size, size, c), fmap.dtype)
  for i in range(size):
    for j in range(size):
      r, q = top + i, left + j
      if 0 <= r < h and 0 <= q < w:
        out[i, j] = fmap[r, q]
  return out


def test_read_window_against_numpy():
  rng = np.random.default_rng(0)
  fmap = rng.normal(size=(2, 13, 11, 3)).astype(np.float32)  # [B, h, w, C]
  locs = rng.uniform(-1.2, 1.2, size=(4, 2, 2)).astype(np.float32)  # [K, B, 2], some outside
  locs[0, 0] = (-1, -1)
  got = np.asarray(read_window(jnp.asarray(fmap), jnp.asarray(np.clip(locs, -1, 1)), 3))
  assert got.shape == (4, 2, 27)
  for k in range(4):
    for b in range(2):
      want = _numpy_window(fmap[b], np.clip(locs[k, b], -1, 1), 3).reshape(-1)
      np.testing.assert_allclose(got[k, b], want, rtol=1e-6)


def test_teacher_inputs_mask_and_caption_log_likelihood():
  caption = jnp.asarray([[3, 1, 10, 11], [7, 10, 11, 11]])  # [B, T], 10 end, 11 pad
  np.testing.assert_array_equal(wc.teacher_inputs(caption), [[11, 3, 1, 10], [11, 7, 10, 11]])
  mask = wc.word_mask(jnp.asarray([3, 2]), 4)
  np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 1, 0, 0]])
  logp = jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (2, 2, 4, 12)), -1)
  got = np.asarray(wc.caption_log_likelihood(logp, caption, mask))  # [B, K]
  logp, np_caption, np_mask = np.asarray(logp), np.asarray(caption), np.asarray(mask)
  want = np.zeros((2, 2))
  for k in range(2):
    for b in range(2):
      for t in range(4):
        if np_mask[b, t]:
          want[b, k] += logp[b, k, t, np_caption[b, t]]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  errors = wc.greedy_errors(jnp.asarray([[3, 1, 10, 5], [7, 3, 0, 0]]), caption, mask)
  np.testing.assert_array_equal(errors['error'], [0, 1])  # after the end nothing counts
  np.testing.assert_allclose(errors['token_error'], [0, 0.5])


def test_method_surrogate_is_the_per_example_estimators():
  ll, lp, r, q = jax.random.normal(jax.random.key(1), (4, 3, 5))  # each [B, K]
  baseline = jnp.asarray([0.1, -0.3, 0.2])
  for method, fn in (('var', lambda i: var_loss(ll[i], lp[i], baseline[i])),
                     ('ws', lambda i: wake_sleep_loss(ll[i], lp[i], r[i])),
                     ('ws_q', lambda i: wake_sleep_loss(ll[i], lp[i], r[i], log_q=q[i]))):
    loss, metrics = method_surrogate(method, ll, lp, r, q, baseline)
    for i in range(3):
      want, want_metrics = fn(i)
      np.testing.assert_allclose(loss[i], want, rtol=1e-5, atol=1e-7)
      np.testing.assert_allclose(metrics['bound'][i], want_metrics['bound'], rtol=1e-6)
  with pytest.raises(ValueError, match="method must be one of .* got 'wake'"):
    method_surrogate('wake', ll, lp)
  with pytest.raises(ValueError, match="'var' needs a baseline"):
    method_surrogate('var', ll, lp)


@pytest.fixture(scope='module')
def tiny_captioner():
  """A tiny captioner, its parameters, 3 images and their captions. One init for the module,
  jitted and from an 'rbg' key: a fraction of threefry's compilation (no check needs its draw)."""
  model = AttentionCaptioner(**TINY)
  images = jax.random.uniform(jax.random.key(2), (3, 20, 20, 1))
  caption = jnp.asarray([[1, 2, 10, 11], [4, 10, 11, 11], [5, 6, 7, 10]])
  params = jax.jit(model.init)(jax.random.key(3, impl='rbg'), images,
                               draw_noise(jax.random.key(4), (1, 3, 4), 3),
                               wc.teacher_inputs(caption), caption)
  return model, params, images, caption


def test_greedy_decoding_feeds_back_its_own_words(tiny_captioner):
  model, params, images, _ = tiny_captioner
  apply = jax.jit(lambda words, decode: model.apply(params, images, mode_noise((1, 3, 4), 3),
                                                    words, decode=decode), static_argnums=1)
  greedy = apply(jnp.zeros((3, 4), jnp.int32), True)
  words = greedy.words[:, 0]  # [B, T]
  forced = apply(wc.teacher_inputs(words), False)
  np.testing.assert_allclose(forced.word_log_probs, greedy.word_log_probs, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(forced.layers, greedy.layers)
  assert greedy.log_q is None and greedy.word_log_probs.shape == (3, 1, 4, 12)


def test_q_sees_the_target_word_and_the_pyramid_gets_no_gradient(tiny_captioner):
  model, params, images, caption = tiny_captioner
  noise = draw_noise(jax.random.key(5), (2, 3, 4), 3)

  @jax.jit
  def run(p, targets):
    return model.apply(p, images, noise, wc.teacher_inputs(caption), targets)

  out, other = run(params, caption), run(params, (caption + 1) % 10)
  assert not np.allclose(out.log_q[:, :, 0], other.log_q[:, :, 0])  # q reads y_1
  np.testing.assert_allclose(out.log_prior[:, :, 0], other.log_prior[:, :, 0])  # the prior not
  grads = jax.jit(jax.grad(lambda p: run(p, caption).word_log_probs.sum()
                           + run(p, caption).log_q.sum()))(params)
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads['params']['cnn']))
  assert float(jnp.abs(grads['params']['step']['lstm']['hf']['kernel']).max()) > 0


def test_bad_inputs_are_named(tiny_captioner):
  model, params, images, caption = tiny_captioner
  with pytest.raises(ValueError, match=r'noise.choice must be \[K, B, T, 3\]'):
    model.apply(params, images, draw_noise(jax.random.key(0), (1, 3, 4), 2),
                wc.teacher_inputs(caption))
  with pytest.raises(ValueError, match="proposal 'q' needs targets"):
    model.apply(params, images, draw_noise(jax.random.key(0), (1, 3, 4), 3),
                wc.teacher_inputs(caption), proposal='q')


def test_variants_resolve_and_bad_fields_are_named():
  for variant in wc.VARIANTS:
    config = wc.get_config(variant)
    assert config.pipeline == ('cnn', 'caption')
    caption = config.phases.caption
    assert caption.init_from == 'cnn' and caption.optimizer.freeze == ('params/cnn',)
    assert caption.model.cnn_features == config.phases.cnn.model.cnn_features
  assert wc.get_config('smoke').phases.caption.loss.method == 'ws_q'
  with pytest.raises(ValueError, match="unknown variant 'wsq'"):
    wc.get_config('wsq')
  for field, value, message in (
      (('loss', 'method'), 'reinforce', "loss.method must be one of .* got 'reinforce'"),
      (('model', 'window'), 0, 'model.window must be an integer >= 1, got 0'),
      (('loss', 'num_samples'), 0, 'loss.num_samples must be an integer >= 1'),
      (('dataset', 'name'), 'mnist', "needs a caption dataset .* got dataset.name='mnist'")):
    config = wc.get_config('var').phases.caption
    with config.unlocked():
      config[field[0]][field[1]] = value
    config.experiment = 'ws_ram_captioning'
    with pytest.raises(ValueError, match=message):
      wc.make_experiment(config)
  config = wc.get_config('var').phases.cnn
  with config.unlocked():
    config.dataset.name = 'digit_strings'
  with pytest.raises(ValueError, match='the classifier phase needs labelled digits'):
    wc.make_experiment(config)


def test_window_boxes_are_the_read_cells_in_image_pixels():
  boxes = pyramid_window_boxes(np.zeros((3, 2)), np.arange(3), window=3, height=100, width=100)
  # maps of 50, 25 and 13 cells of 2, 4 and 8 px; the centre is cell 25, 12.5 and 6.5, so the
  # windows start at cells 24, 11 and 5
  np.testing.assert_allclose(boxes[:, 2], [6, 12, 24])
  np.testing.assert_allclose(boxes[:, 0], [48, 44, 40])
  fmap = np.zeros((13, 13, 1), np.float32)
  fmap[5:8, 5:8] = 1.0  # the cells of the layer-2 box above
  read = np.asarray(read_window(jnp.asarray(fmap[None]), jnp.zeros((1, 1, 2)), 3))
  np.testing.assert_array_equal(read, np.ones((1, 1, 9)))


@pytest.mark.slow
def test_every_method_gives_finite_gradients_and_its_metrics():
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(3, 24, 24, 1)).astype(np.float32),
           'caption': np.asarray([[1, 2, 10], [4, 10, 11], [5, 6, 10]], np.int32),
           'caption_length': np.asarray([3, 2, 3], np.int32)}
  for method in ('var', 'ws_q'):  # 'ws' is 'ws_q' without q and a prior proposal
    config = wc.get_config(f'{method}_smoke').phases.caption
    with config.unlocked():
      config.experiment = 'ws_ram_captioning'
      config.model.update(**TINY)
      config.dataset.update(canvas_size=24, max_digits=2)
      config.loss.num_samples = 2
    experiment = wc.make_experiment(config)
    params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
    loss = lambda p: experiment.loss(p, batch, jax.random.key(1), 0)
    (value, metrics), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert np.isfinite(value) and {'nll_word', 'ess', 'layer_frac_2'} <= set(metrics)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads)), method
    assert ('log_q' in metrics) == (method == 'ws_q')
    policy = grads['params']['step']['policy']['mean']['kernel']
    assert float(jnp.abs(policy).max()) > 0, method  # the prior learns in every method


def test_a_shrunk_smoke_pipeline_trains_both_phases_and_scores_its_captions(data_dir, tmp_path):
  """The smoke pipeline with tiny widths: two steps of the CNN, two of the captioner on its
  frozen pyramid, and the captions of 32 test canvases scored."""
  config = wc.get_config('smoke')
  with config.unlocked():
    for name in config.pipeline:
      phase = config.phases[name]
      phase.dataset.update(data_dir=data_dir, download=False, eval_examples=32)
      phase.update(num_steps=2, log_every=1, checkpoint_every=0, eval_every=0,
                   eval_examples_during_training=32)
      phase.eval.batch_size = 32
      phase.model.cnn_features = TINY['cnn_features']
    caption = config.phases.caption
    caption.model.update(TINY)
    caption.dataset.update(cache_dir=str(tmp_path / 'tfds'), train_examples=200,
                           validation_examples=32)
    caption.eval.update(mc_samples=2, splits=('test',))
    caption.loss.num_samples = 2
  results = train.run_pipeline(config, str(tmp_path / 'run'), wc.make_experiment)
  assert results['caption']['steps'] == 2 and np.isfinite(results['caption']['test_nll_word'])
  scores = json.loads((tmp_path / 'run' / 'caption' / wc.CAPTIONS_FILE).read_text())
  assert scores['examples'] == 32 and 0 <= scores['bleu1'] <= 100


@pytest.mark.notebook
@pytest.mark.learning
def test_notebook_trains_the_smoke_pipeline_which_learns_and_scores_its_captions(
    data_dir, tmp_path, python3_kernel):
  # The notebook's default run is the smoke variant at its own budgets: one training checks both
  # what the notebook shows and what the run learned.
  run = execute_notebook('ws_ram_captioning.ipynb', tmp_path, data_dir, python3_kernel,
                         steps=None)
  workdir = run.workdir / 'caption'
  for name in ('results.json', wc.CAPTIONS_FILE, 'caption_windows.png'):
    assert (workdir / name).is_file(), name
  assert len(run.pictures) == 3  # training curves; the windows; those of `predict`
  assert 'predicted caption' in run.printed
  assert 'BLEU-1..4' in run.printed and 'test caption error' in run.printed

  config = wc.get_config('smoke')
  saved = json.loads((run.workdir / PIPELINE_FILE).read_text())
  assert saved['pipeline'] == list(config.pipeline) == ['cnn', 'caption']
  assert_trained_as(saved['config'], config)  # 300 + 1,500 updates
  results = {phase: train.read_results(str(run.workdir / phase)) for phase in config.pipeline}
  assert results['cnn']['test_error'] < 0.12  # measured 0.0955
  # Chance: 0.945 of captions wrong (1 - (1/2 * 1/10 + 1/2 * 1/100)), 0.9 of words; measured
  # 0.5625 and 0.26 after 1,500 updates at seed 0.
  assert results['caption']['test_error'] < 0.62, results['caption']
  assert results['caption']['test_token_error'] < 0.3, results['caption']
  scores = json.loads((workdir / wc.CAPTIONS_FILE).read_text())
  assert scores['examples'] == config.phases.caption.dataset.eval_examples == 2_000
  assert 1 - scores['sequence_accuracy'] == pytest.approx(results['caption']['test_error'],
                                                           abs=1e-6)
  assert scores['bleu1'] > 50 and scores['bleu1'] >= scores['bleu2'], scores  # measured 56.6
  assert scores['bleu3'] is None and scores['bleu4'] is None  # captions of at most 2 digits
  assert np.allclose(np.sum(scores['layer_fraction_by_position'], -1), 1)


# ---------------------------------------------------------------------------------------------
# The report, on made-up runs.
# ---------------------------------------------------------------------------------------------
def _fake_run(folder, method, seed, bleu1, nll_scale, initial_view=False, by_size=None, **loss):
  folder.mkdir(parents=True)
  config = {'seed': seed, 'loss': {'method': method, **loss},
            'model': {'initial_view': initial_view},
            'dataset': {'canvas_size': 100, 'min_digits': 2, 'max_digits': 5 if method == 'var' else 3}}
  (folder / 'results.json').write_text(json.dumps({
      'config': config, 'steps': 10_000, 'wall_seconds': 600.0, 'test_token_error': 0.1,
      'test_nll_word': 0.25, 'test_error': 0.3}))
  records = [{'kind': 'train', 'step': s, 'nll_word': nll_scale / s} for s in range(100, 10_001, 100)]
  records += [{'kind': 'eval', 'split': 'validation', 'step': s, 'nll_word': 0.25}
              for s in range(1_000, 10_001, 1_000)]
  (folder / 'metrics.jsonl').write_text('\n'.join(json.dumps(r) for r in records))
  (folder / wc.CAPTIONS_FILE).write_text(json.dumps({
      'bleu1': bleu1, 'bleu2': 50.0, 'bleu3': 40.0, 'bleu4': 30.0, 'sequence_accuracy': 0.7,
      'examples': 100, 'layer_fraction_by_position': [[0.0, 0.25, 0.75], [0.0, 0.0, 1.0]],
      'words_by_position': [100, 60], 'samples': [], **(by_size or {})}))
  return str(folder)


def test_report_tables_and_training_speed(tmp_path):
  from glimpse_jax.reports import ws_ram_captioning as rc  # pylint: disable=g-import-not-at-top
  runs = [_fake_run(tmp_path / f'{m}-seed{s}', m, s, b, scale)
          for m, s, b, scale in (('var', 0, 60.0, 100.0), ('var', 1, 64.0, 100.0),
                                 ('ws_q', 0, 70.0, 50.0))]
  out = tmp_path / 'book' / 'captioning.md'
  markdown = rc.write_report(runs, str(out))
  assert ('| VAR | 100x100, 2-5 digits | 0, 1 | 62.0 ± 2.8 | 50.0 ± 0.0 | 40.0 ± 0.0 | 30.0 ± 0.0 | '
          '62.3 / 41.6 / 26.9 / 17.2 |') in markdown
  assert '| WS-RAM + q | 100x100, 2-3 digits | 0 | 70.0 | 50.0 | 40.0 | n/a |' in markdown
  # nll_word = scale / step; after 1,000 updates the mean over steps 600..1000 of 100 / s
  want = np.mean([100.0 / s for s in range(600, 1001, 100)])
  assert f'| VAR | 100x100, 2-5 digits | {want:.3f} ± 0.000 |' in markdown
  assert '| 0.250 ± 0.000 ' * 4 + '|\n' in markdown  # validation NLL at each update count
  assert '| VAR | 100x100, 2-5 digits | 2 | 60 | 0.0 | 0.0 | 100.0 |' in markdown  # word 2
  assert (tmp_path / 'book' / 'captioning_training_nll.png').exists()
  assert rc.value_at({100: 1.0, 200: 3.0}, 300) is None  # past the curve
  with pytest.raises(ValueError, match='holds no captions.json'):
    rc.read_scores(str(tmp_path))


def test_report_keeps_other_estimator_settings_apart_and_refuses_a_seed_twice(tmp_path):
  from glimpse_jax.reports import ws_ram_captioning as rc  # pylint: disable=g-import-not-at-top
  runs = [_fake_run(tmp_path / 'var-seed0', 'var', 0, 60.0, 100.0),
          _fake_run(tmp_path / 'var-nocv-seed0', 'var', 0, 40.0, 100.0, control_variates=False),
          _fake_run(tmp_path / 'var-t2-seed1', 'var', 1, 50.0, 100.0, temperature=2.0)]
  markdown = rc.write_report(runs, str(tmp_path / 'book' / 'captioning.md'))
  assert '| VAR | 100x100, 2-5 digits | 0 | 60.0 |' in markdown  # beside the paper's c.v. row
  assert '| VAR (nocv) | 100x100, 2-5 digits | 0 | 40.0 |' in markdown
  assert '| VAR (T2) | 100x100, 2-5 digits | 1 | 50.0 |' in markdown
  runs.append(_fake_run(tmp_path / 'again-seed0', 'var', 0, 61.0, 100.0))
  with pytest.raises(ValueError, match='seed 0 twice'):
    rc.write_report(runs, str(tmp_path / 'book' / 'captioning.md'))


def test_report_tables_the_layer_against_digit_size_and_keeps_the_view_apart(tmp_path):
  from glimpse_jax.reports import ws_ram_captioning as rc  # pylint: disable=g-import-not-at-top
  by_size = lambda small: {'size_bins': [7, 12, 29], 'words_by_size': [40, 60],
                           'layer_fraction_by_size': [[small, 1 - small, 0.0], [0.0, 0.2, 0.8]],
                           'word_error_by_size': [small / 2, 0.1]}
  runs = [_fake_run(tmp_path / 'ws-seed0', 'ws', 0, 60.0, 100.0, by_size=by_size(1.0)),
          _fake_run(tmp_path / 'ws-seed1', 'ws', 1, 60.0, 100.0, by_size=by_size(0.5)),
          _fake_run(tmp_path / 'ws-view-seed0', 'ws', 0, 60.0, 100.0, initial_view=True)]
  markdown = rc.write_report(runs, str(tmp_path / 'book' / 'captioning.md'))
  assert '| WS-RAM | 100x100, 2-3 digits | 7-11 | 40 | 75.0 | 25.0 | 0.0 | 37.5 ± 17.7 |' in markdown
  assert '| WS-RAM | 100x100, 2-3 digits | 12-28 | 60 | 0.0 | 20.0 | 80.0 | 10.0 ± 0.0 |' in markdown
  assert '| WS-RAM (view) | 100x100, 2-3 digits | 0 | 60.0 |' in markdown  # its own row
  assert 'WS-RAM (view) | 100x100, 2-3 digits | 7-11' not in markdown  # no readout: no line


def test_layer_counts_by_size_bins_each_digit_word_by_its_side():
  layers = np.asarray([[0, 1, 2, 2], [2, 0, 1, 0]])  # [B, T]: the last step is the end token
  sides = np.asarray([[7, 16, 28], [30, 11, 0]])  # [B, D]: 30 px is past the bins, 0 is empty
  wrong = np.asarray([[True, False, True, True], [False, False, True, True]])
  counts = wc.layer_counts_by_size(layers, sides, bins=(7, 12, 17, 29), num_layers=3,
                                   wrong=wrong)
  # layers 0, 1, 2, then the wrong words: 7 and 11 px (one wrong), 16 px, 28 px (wrong)
  np.testing.assert_array_equal(counts, [[2, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]])


def test_the_whole_canvas_view_reaches_the_decoder_only_when_switched_on():
  images = jax.random.uniform(jax.random.key(2), (2, 20, 20, 1))
  caption = jnp.asarray([[1, 2, 10, 11], [4, 10, 11, 11]])
  noise = mode_noise((1, 2, 4), 3)
  for view in (False, True):
    model = AttentionCaptioner(**TINY, initial_view=view)
    # Compiled: op by op, this init alone takes ~8 s.
    params = jax.jit(model.init)(jax.random.key(3, impl='rbg'), images, noise,
                                 wc.teacher_inputs(caption))

    @jax.jit
    def outputs(context):
      p = {'params': {**params['params'], 'context': context}}
      out = model.apply(p, images, noise, wc.teacher_inputs(caption))
      return out.word_log_probs, out.baseline

    context = params['params']['context']
    moved = jax.tree.map(lambda w: w + 0.5, context)
    (words, baseline), (moved_words, moved_baseline) = outputs(context), outputs(moved)
    assert not np.allclose(baseline, moved_baseline)  # b(x) reads the view either way
    assert np.allclose(words, moved_words) != view, view
    # Where the decoder ignores the view, b(x) trains it; where it starts from it, b(x) does not.
    grads = jax.grad(lambda c: outputs(c)[1].sum())(context)
    trained = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) > 0
    assert trained != view, view


@pytest.mark.slow
def test_the_layer_entropy_bonus_is_subtracted_from_the_loss_and_named_when_negative():
  rng = np.random.default_rng(0)
  batch = {'image': rng.uniform(size=(2, 24, 24, 1)).astype(np.float32),
           'caption': np.asarray([[1, 2, 10], [4, 10, 11]], np.int32),
           'caption_length': np.asarray([3, 2], np.int32)}
  config = wc.get_config('ws_smoke').phases.caption
  with config.unlocked():
    config.experiment = 'ws_ram_captioning'
    config.model.update(**TINY)
    config.dataset.update(canvas_size=24, max_digits=2)
    config.loss.update(num_samples=2, layer_entropy_weight=0.5)
  experiment = wc.make_experiment(config)
  params = jax.jit(experiment.init)(jax.random.key(0, impl='rbg'), batch)
  total, metrics = jax.jit(lambda p: experiment.loss(p, batch, jax.random.key(1), 0))(params)
  assert 0 < float(metrics['layer_entropy']) <= np.log(3) + 1e-6  # 3 layers
  np.testing.assert_allclose(
      total, metrics['surrogate'] + metrics['baseline_loss'] - 0.5 * metrics['layer_entropy'],
      rtol=1e-5)
  with config.unlocked():
    config.loss.layer_entropy_weight = -1.0
  with pytest.raises(ValueError, match='loss.layer_entropy_weight must be >= 0, got -1.0'):
    wc.make_experiment(config)
