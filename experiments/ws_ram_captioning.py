"""Caption generation with stochastic multi-scale attention over a convolutional pyramid
(Ba, Grosse, Salakhutdinov, Frey 2015, sec. 5.2): VAR against WS-RAM and WS-RAM + q.

Usage: make experiment NAME=ws_ram_captioning CONFIG=<method>[_smoke|_large]
  methods: var (VAR + input-dependent baseline), ws (WS-RAM + control variates, the prior
           proposes), ws_q (WS-RAM + q + control variates, the inference network proposes);
           `smoke` alone is ws_q_smoke.
Each is a pipeline of two phases (runs/ws_ram_captioning-<variant>/<phase>):
  cnn      the pyramid: three 2x2 convolutions, each with ReLU and 2x2 max-pooling
           (`nets.captioning.PyramidCNN`), trained to classify single 28x28 MNIST digits;
  caption  the decoder (`nets.captioning.AttentionCaptioner`) on multi-digit MNIST strings, the
           pyramid grafted from `cnn` and frozen (`optimizer.freeze`, and no gradient reaches it).
Data (a stand-in for Flickr8k, which `glimpse_jax.data.flickr8k` loads where its archives are):
canvases of MNIST digits captioned by their digits read left to right and an end token
(vocabulary of 12; `data.digit_strings_config`); the decoder runs max_digits + 1 steps, and only
the steps up to a caption's end token count. Sizes (`CANVASES`):
  <method>         64x64 canvases of 1-3 digits scaled 0.75-1.0 (21-28 px), sized for this CPU:
                   10,000 updates in about 10 minutes on one core;
  <method>_large   100x100 canvases of 2-5 digits scaled 0.75-1.25 (21-35 px), for accelerators
                   (about 20 minutes per 10,000 updates on one shared CPU core);
  <method>_smoke   48x48 canvases of 1-2 digits, narrow widths, 300 + 1,500 updates;
  <method>_sizes   64x64 canvases of 2-4 digits scaled 0.25-1.0 (7-28 px), the pyramid trained on
                   28x28 canvases of digits at the same scales: digit sizes that span the three
                   windows (6, 12 and 24 px), packed closer than the coarse window is wide, so
                   that which layer to read depends on the digit (the paper's rows cannot test
                   it: on their canvases only the coarse window holds a digit).

Per word, a layer (categorical: the scale; on 64x64 canvases maps of 32x32, 16x16 and 8x8 cells,
a cell 2, 4 and 8 px) and a location (Gaussian, std 0.1) are drawn; a 3x3-cell window of that
map is read.
The whole caption is one sample: log p(y | a, x) sums the words' log-probabilities, log p(a | x)
the actions' (both up to the end token), and the WS-RAM / VAR estimators take K = 5 samples per
image as in the classification experiment (`objectives.method_surrogate`).

Where the paper is silent, this module chooses:
  - q(a_t | ...) sees the decoder state, the previous word and the word y_t the glimpse must
    explain (the target word of this step: the only information q has beyond the prior's).
  - The decoder starts from a zero state: a view of the whole canvas would tell the predictor
    how many digits there are, and where. VAR's baseline b(x) reads a 10x10 view of the whole
    canvas. `model.initial_view=True` lets that view set the initial LSTM state too (as WS-RAM's
    top layer does in classification); the `_smoke` variants do, so that their 1,500 updates
    learn something.
  - Adam at 1e-3, batch 32, 10,000 updates (the paper's Figure 6 spans its first 10,000).
  - `loss.layer_entropy_weight` w (0: the paper's loss) subtracts w times the prior's layer
    entropy per word from the loss: without it the layer choice collapses onto the coarsest map
    within 500-2,000 updates, before the finer maps' reads have learned anything.
  - Test metrics from greedy decoding (mean location, most probable layer and word): `error`
    (exact caption wrong), `token_error`, and after training corpus BLEU-1..4 with sacrebleu
    (digits as words, no tokenisation, no smoothing; null for orders above the most digits a
    caption has) written to `captions.json` beside results.json, with the layer chosen
    per word position and against the side of the digit the word names (`SIZE_BINS`); `nll` on the test split is -log (1/K) sum_k p(y | a_k, x), prior samples.
  - Training curves: `nll_word`, -log (1/K) sum_k w_k per word of the caption, the importance-
    weighted bound of each method's own proposal (Figure 6's quantity, comparable across them).
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import sacrebleu

from glimpse_jax import data, papers, train
from glimpse_jax.plots.caption_windows import plot_caption_windows
from glimpse_jax.data import captions
from glimpse_jax.data.config import CAPTION_NAMES
from glimpse_jax.diagnostics import per_glimpse, saturated
from glimpse_jax.distributions import categorical_entropy
from glimpse_jax.nets import draw_noise, mode_noise
from glimpse_jax.nets.captioning import AttentionCaptioner, DigitClassifier
from glimpse_jax.nets.settings import check_positive_ints
from glimpse_jax.objectives import METHODS, method_surrogate

# row variant -> the paper's row: loss.method, its name and Flickr8k BLEU-1..4
ROWS: dict[str, papers.CaptionRow] = papers.WS_RAM_CAPTIONING
SIZES = ('', '_smoke', '_large', '_sizes')  # the CPU rows, smoke, 100x100, digit sizes 7-28 px
VARIANTS = ('smoke', *(f'{row}{size}' for size in SIZES for row in ROWS))


@dataclasses.dataclass(frozen=True)
class Canvas:
  """A size's canvases: side, digits per caption, digit scales, training digits (None: all) and
  the digit scales the pyramid is trained on (None: plain 28x28 MNIST digits)."""

  canvas_size: int
  min_digits: int
  max_digits: int
  scale_range: tuple[float, float]
  train_examples: int | None
  pyramid_scale_range: tuple[float, float] | None = None

  def dataset_fields(self) -> dict:
    """The caption phase's dataset fields."""
    fields = dataclasses.asdict(self)
    del fields['pyramid_scale_range']
    return fields


CANVASES = {
    '_smoke': Canvas(48, 1, 2, (0.75, 1.0), 10_000),
    '': Canvas(64, 1, 3, (0.75, 1.0), None),
    '_large': Canvas(100, 2, 5, (0.75, 1.25), None),
    '_sizes': Canvas(64, 2, 4, (0.25, 1.0), None, pyramid_scale_range=(0.25, 1.0)),
}
# Digit sides (px) binned for the layer-against-size readout: [7, 12), [12, 17), ... [22, 29).
SIZE_BINS = (7, 12, 17, 22, 29)
KINDS = ('classifier', 'captioner')
CAPTIONS_FILE = 'captions.json'
BLEU_ORDERS = (1, 2, 3, 4)


def _cnn_phase(smoke: bool, scale_range: tuple[float, float] | None) -> ml_collections.ConfigDict:
  config = train.base_config()
  config.dataset.update(name='mnist', eval_examples=2_000 if smoke else 10_000)
  config.batch_size = 64
  config.num_steps = 300 if smoke else 2_000
  if scale_range is not None:  # digits at the captions' scales, anywhere on a 28x28 canvas;
    # 2,000 updates leave 21% of them misread, still falling
    config.dataset.update(name='translated_scaled', scale_range=scale_range)
    config.num_steps = 10_000
  config.log_every = 100
  config.checkpoint_every = 1_000
  config.eval.batch_size = 500
  config.model = ml_collections.ConfigDict(dict(
      kind='classifier', cnn_features=(8, 16, 16) if smoke else (8, 16, 32)))
  config.loss = ml_collections.ConfigDict()
  return config


def _caption_phase(method: str, size: str) -> ml_collections.ConfigDict:
  smoke = size == '_smoke'
  config = train.base_config()
  config.dataset = data.digit_strings_config()
  config.dataset.update(validation_examples=1_000, eval_examples=2_000 if smoke else 10_000)
  config.dataset.update(CANVASES[size].dataset_fields())
  config.batch_size = 32
  config.num_steps = 1_500 if smoke else 10_000
  config.log_every = 50 if smoke else 100
  config.eval_every = 500 if smoke else 1_000
  config.eval_examples_during_training = 500 if smoke else 1_000
  config.checkpoint_every = 1_000
  config.eval.update(batch_size=250, mc_samples=5, splits=('validation', 'test'))
  config.init_from = 'cnn'
  config.init_subtrees = ('params/cnn',)
  config.optimizer.freeze = ('params/cnn',)
  config.model = ml_collections.ConfigDict(dict(
      kind='captioner', cnn_features=(8, 16, 16) if smoke else (8, 16, 32), low_res_size=10,
      initial_view=smoke,  # from zeros, 1,500 updates leave 79% of smoke captions wrong
      window=3, embed_features=16 if smoke else 32, read_features=32 if smoke else 128,
      lstm_features=64 if smoke else 128, inference_features=32 if smoke else 64,
      location_std=0.1, learn_std=False))
  config.loss = ml_collections.ConfigDict(dict(
      method=method, control_variates=True, num_samples=5, temperature=1.0,
      layer_entropy_weight=0.0))
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The pipeline of variant `arg` (one of VARIANTS; default `ws_q`)."""
  variant = train.pick_variant(arg or 'ws_q', VARIANTS)
  if variant == 'smoke':
    variant = 'ws_q_smoke'
  size = next(s for s in SIZES[1:] + ('',) if variant.endswith(s))
  method = ROWS[variant.removesuffix(size) if size else variant].method
  config = train.pipeline_config('ws_ram_captioning', [
      ('cnn', _cnn_phase(size == '_smoke', CANVASES[size].pyramid_scale_range)),
      ('caption', _caption_phase(method, size))])
  config.lock()
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of a phase that cannot work."""
  m = config.model
  if m.kind not in KINDS:
    raise ValueError(f'model.kind must be one of {list(KINDS)}, got {m.kind!r}')
  if not m.cnn_features or any(
      isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in m.cnn_features):
    raise ValueError(f'model.cnn_features must be positive integer widths, got '
                     f'{m.cnn_features!r}')
  if m.kind == 'classifier':
    if config.dataset.name in CAPTION_NAMES:
      raise ValueError(f'the classifier phase needs labelled digits, got dataset.name='
                       f'{config.dataset.name!r}')
    return
  if config.dataset.name not in CAPTION_NAMES:
    raise ValueError(f'the captioner needs a caption dataset {CAPTION_NAMES}, got '
                     f'dataset.name={config.dataset.name!r}')
  check_positive_ints('model', m, ('low_res_size', 'window', 'embed_features', 'read_features',
                                   'lstm_features', 'inference_features'))
  if not m.location_std > 0:
    raise ValueError(f'model.location_std must be > 0, got {m.location_std!r}')
  spec = config.loss
  if spec.method not in METHODS:
    raise ValueError(f'loss.method must be one of {list(METHODS)}, got {spec.method!r}')
  check_positive_ints('loss', spec, ('num_samples',))
  if not spec.temperature > 0:
    raise ValueError(f'loss.temperature must be > 0, got {spec.temperature!r}')
  if not spec.layer_entropy_weight >= 0:
    raise ValueError(f'loss.layer_entropy_weight must be >= 0, got {spec.layer_entropy_weight!r}')
  if spec.method == 'var' and spec.temperature != 1.0:
    raise ValueError(f'VAR samples from the prior itself: loss.temperature must be 1, got '
                     f'{spec.temperature}')


def make_model(config: ml_collections.ConfigDict):
  m = config.model
  if m.kind == 'classifier':
    return DigitClassifier(tuple(m.cnn_features), data.num_classes(config.dataset))
  return AttentionCaptioner(
      cnn_features=tuple(m.cnn_features), low_res_size=m.low_res_size,
      initial_view=m.initial_view, vocab_size=len(captions.DIGITS), start=captions.DIGITS.start,
      window=m.window,
      embed_features=m.embed_features, read_features=m.read_features,
      lstm_features=m.lstm_features, inference_features=m.inference_features,
      location_std=m.location_std, learn_std=m.learn_std)


def teacher_inputs(caption: jax.Array) -> jax.Array:
  """Each step's input word: start, then the caption shifted right by one: [B, T] -> [B, T]."""
  start = jnp.full((caption.shape[0], 1), captions.DIGITS.start, caption.dtype)
  return jnp.concatenate([start, caption[:, :-1]], axis=1)


def word_mask(caption_length: jax.Array, steps: int) -> jax.Array:
  """float32 [B, T]: 1 at the steps up to and including each caption's end token."""
  return (jnp.arange(steps)[None, :] < caption_length[:, None]).astype(jnp.float32)


def caption_log_likelihood(word_log_probs: jax.Array, caption: jax.Array,
                           mask: jax.Array) -> jax.Array:
  """log p(y | a, x) of each sample: [B, K, T, V], [B, T], [B, T] -> [B, K]."""
  index = jnp.broadcast_to(caption[:, None, :, None], (*word_log_probs.shape[:3], 1))
  return (jnp.take_along_axis(word_log_probs, index, -1)[..., 0] * mask[:, None]).sum(-1)


def greedy_errors(words: jax.Array, caption: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Per-example caption and word errors of decoded `words` [B, T] against `caption` [B, T]."""
  wrong = (words != caption).astype(jnp.float32) * mask  # [B, T]
  return {'error': (wrong.sum(-1) > 0).astype(jnp.float32),
          'token_error': wrong.sum(-1) / mask.sum(-1)}


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The phase's model and loss: digit classification, or captioning by `config.loss.method`."""
  validate(config)
  model = make_model(config)
  if config.model.kind == 'classifier':
    return _classifier(model)
  spec = config.loss
  num_layers = len(config.model.cnn_features)
  steps = config.dataset.max_digits + 1
  proposal = 'q' if spec.method == 'ws_q' else 'prior'
  tempered = spec.temperature != 1.0
  noise = lambda rng, k, b: draw_noise(rng, (k, b, steps), num_layers)

  def init(rng, batch):
    caption = jnp.asarray(batch['caption'])
    return model.init(rng, jnp.asarray(batch['image']), noise(rng, 1, caption.shape[0]),
                      teacher_inputs(caption), caption)

  def loss(params, batch, rng, step):
    del step
    images, caption = batch['image'], batch['caption']
    mask = word_mask(batch['caption_length'], steps)  # [B, T]
    out = model.apply(params, images, noise(rng, spec.num_samples, images.shape[0]),
                      teacher_inputs(caption), caption, proposal=proposal,
                      temperature=spec.temperature)
    log_likelihood = caption_log_likelihood(out.word_log_probs, caption, mask)  # [B, K]
    per_sample = lambda a: (a * mask[:, None]).sum(-1)  # [B, K, T] -> [B, K]
    per_example, diagnostics = method_surrogate(
        spec.method, log_likelihood, per_sample(out.log_prior),
        per_sample(out.log_proposal) if (tempered or proposal == 'q') else None,
        per_sample(out.log_q) if proposal == 'q' else None, out.baseline,
        control_variates=spec.control_variates)
    total = per_example.mean()
    if spec.method != 'var':  # b(x) is regressed in every run (VAR's surrogate holds its own)
      reward = jax.lax.stop_gradient(log_likelihood)  # [B, K]
      diagnostics['baseline_loss'] = jnp.mean((reward - out.baseline[:, None]) ** 2, axis=1)
      total = total + diagnostics['baseline_loss'].mean()
    # The prior's layer entropy per counted word, [B, K, T] -> []: a bonus keeps each layer
    # chosen (and so its read trained) long enough for the choice to depend on the digit.
    layer_entropy = (categorical_entropy(out.prior.scale_logits) * mask[:, None]).sum() / (
        spec.num_samples * mask.sum())
    total = total - spec.layer_entropy_weight * layer_entropy
    words = mask.sum(-1)  # [B]
    metrics = {
        'layer_entropy': layer_entropy,
        'surrogate': per_example.mean(),
        'nll_word': jnp.mean(-diagnostics['bound'] / words),
        'nll_samples': -log_likelihood.mean(),
        'ess': diagnostics['ess'].mean(),
        'baseline_loss': diagnostics['baseline_loss'].mean(),
        'log_prior': per_sample(out.log_prior).mean(),
    }
    if proposal == 'q':
      metrics['log_q'] = per_sample(out.log_q).mean()
    chosen = jax.nn.one_hot(out.layers, num_layers) * mask[:, None, :, None]  # [B, K, T, L]
    fractions = chosen.sum((0, 1, 2)) / (spec.num_samples * mask.sum())
    for l in range(num_layers):
      metrics[f'layer_frac_{l}'] = fractions[l]
    return total, metrics

  def decode(params, images):
    """Greedy captions: [B, H, W, C] -> CaptionOutput with K = 1."""
    batch = images.shape[0]
    return model.apply(params, images, mode_noise((1, batch, steps), num_layers),
                       jnp.full((batch, steps), captions.DIGITS.start, jnp.int32), decode=True)

  def evaluate(params, batch, rng):
    images, caption = batch['image'], batch['caption']
    mask = word_mask(batch['caption_length'], steps)
    greedy = decode(params, images)
    values = greedy_errors(greedy.words[:, 0], caption, mask)
    # Where the greedy prior's location means sit, per word: parked at the edge or not.
    values.update(per_glimpse('saturated', saturated(greedy.prior.loc_mean[:, 0])))
    samples = model.apply(params, images, noise(rng, config.eval.mc_samples, images.shape[0]),
                          teacher_inputs(caption))
    log_likelihood = caption_log_likelihood(samples.word_log_probs, caption, mask)  # [B, K]
    log_mean = jax.nn.logsumexp(log_likelihood, 1) - jnp.log(config.eval.mc_samples)
    values['nll'] = -log_mean
    values['nll_word'] = -log_mean / mask.sum(-1)
    return values

  def plots(params, batch, rng, workdir):
    del rng
    decode_jit = jax.jit(decode)
    scores = test_scores(decode_jit, params, config, steps)
    with open(os.path.join(workdir, CAPTIONS_FILE), 'w') as f:
      json.dump(scores, f, indent=1)
    out = decode_jit(params, jnp.asarray(batch['image'][:8]))
    plot_caption_windows(np.asarray(batch['image'][:8]), np.asarray(out.locations[:, 0]),
                         np.asarray(out.layers[:, 0]), np.asarray(out.words[:, 0]),
                         window=config.model.window, vocab=captions.DIGITS,
                         path=os.path.join(workdir, 'caption_windows.png'))

  def predict(params, images, rng):
    del rng
    out = decode(params, images)  # greedy captions, K = 1
    return {'probabilities': jnp.exp(out.word_log_probs[:, 0]),  # [B, L, V] per word
            'words': out.words[:, 0],  # [B, L] token ids of captions.DIGITS
            'locations': out.locations[:, 0],  # [B, L, 2] one window per word
            'scales': out.layers[:, 0]}  # [B, L] the pyramid layer read

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)


def layer_counts_by_size(layers: np.ndarray, digit_size: np.ndarray,
                         bins: tuple[int, ...] = SIZE_BINS, num_layers: int = 3,
                         wrong: np.ndarray | None = None) -> np.ndarray:
  """How often each layer is chosen for a word, and how often the word is wrong, against the side
  of the digit it names.

  Args:
    layers: [B, T] int, the layer read at each word (T > D: the end token's step follows).
    digit_size: [B, D] side in pixels of the digit each word names, in reading order; 0 for
      empty slots.
    bins: edges in pixels; bin i holds sides in [bins[i], bins[i + 1]).
    num_layers: L.
    wrong: [B, T] bool, the word differs from the caption's; None: no error column.

  Returns:
    [len(bins) - 1, L + 1] counts per layer, then wrong words; digits outside the bins are left
    out.
  """
  sides = np.asarray(digit_size)  # [B, D]
  chosen = np.asarray(layers)[:, :sides.shape[1]]  # [B, D]
  which = np.digitize(sides, bins) - 1  # [B, D]
  keep = (sides > 0) & (which >= 0) & (which < len(bins) - 1)
  counts = np.zeros((len(bins) - 1, num_layers + 1))
  np.add.at(counts, (which[keep], chosen[keep]), 1)
  if wrong is not None:
    np.add.at(counts[:, -1], which[keep], np.asarray(wrong)[:, :sides.shape[1]][keep])
  return counts


def test_scores(decode_fn, params, config: ml_collections.ConfigDict, steps: int) -> dict:
  """Greedy captions of the whole test split: sacrebleu BLEU-1..4, exact-caption accuracy, and
  how often each layer is chosen at each word position (over the words that count) and against
  the side of the digit a word names (`SIZE_BINS`)."""
  vocab, num_layers = captions.DIGITS, len(config.model.cnn_features)
  targets, predictions, layer_counts = [], [], np.zeros((steps, num_layers))
  size_counts = np.zeros((len(SIZE_BINS) - 1, num_layers + 1))  # layers, then wrong words
  for batch in data.eval_batches(config.dataset, config.eval.batch_size):
    real = np.asarray(batch['mask']) > 0
    out = decode_fn(params, jnp.asarray(batch['image']))
    words, layers = np.asarray(out.words[:, 0])[real], np.asarray(out.layers[:, 0])[real]
    caption = np.asarray(batch['caption'])[real]
    mask = np.asarray(word_mask(jnp.asarray(batch['caption_length'][real]), steps)) > 0
    for t in range(steps):
      layer_counts[t] += np.bincount(layers[mask[:, t], t], minlength=num_layers)
    size_counts += layer_counts_by_size(layers, np.asarray(batch['digit_size'])[real],
                                        num_layers=num_layers, wrong=words != caption)
    targets.append(caption)
    predictions.append(words)
  targets, predictions = np.concatenate(targets), np.concatenate(predictions)
  text = lambda tokens: ' '.join(vocab.to_words(tokens))
  hypotheses = [text(p) for p in predictions]
  references = [[text(t) for t in targets]]
  # Corpus BLEU-n, unsmoothed (Papineni et al.); None past the longest caption, whose n-grams no
  # reference has (smoothing would make up a precision for them).
  bleu = {f'bleu{n}': sacrebleu.metrics.BLEU(max_ngram_order=n, tokenize='none',
                                              smooth_method='none', effective_order=False
                                              ).corpus_score(hypotheses, references).score
          if n <= config.dataset.max_digits else None
          for n in BLEU_ORDERS}
  fraction = lambda counts: (counts / np.maximum(counts.sum(-1, keepdims=True), 1)).tolist()
  return {
      **bleu,
      'sequence_accuracy': float(captions.sequence_accuracy(targets, predictions, vocab).mean()),
      'examples': int(targets.shape[0]),
      'layer_fraction_by_position': fraction(layer_counts),
      'words_by_position': layer_counts.sum(-1).astype(int).tolist(),
      'size_bins': list(SIZE_BINS),  # digit sides in px: [7, 12), [12, 17), ...
      'layer_fraction_by_size': fraction(size_counts[:, :-1]),
      'words_by_size': size_counts[:, :-1].sum(-1).astype(int).tolist(),
      'word_error_by_size': (size_counts[:, -1] / np.maximum(size_counts[:, :-1].sum(-1), 1)
                             ).tolist(),
      'samples': [{'target': text(t), 'greedy': text(p)}
                  for t, p in zip(targets[:10], predictions[:10])],
  }


def _classifier(model) -> train.Experiment:
  """Phase 1: the pyramid and a linear head classify single digits."""

  def init(rng, batch):
    return model.init(rng, jnp.asarray(batch['image']))

  def per_example(params, batch):
    logits = model.apply(params, batch['image'])  # [B, C]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    return nll, (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32)

  def loss(params, batch, rng, step):
    del rng, step
    nll, error = per_example(params, batch)
    return nll.mean(), {'nll': nll.mean(), 'error': error.mean()}

  def evaluate(params, batch, rng):
    del rng
    nll, error = per_example(params, batch)
    return {'error': error, 'nll': nll}

  def predict(params, images, rng):
    del rng
    return {'probabilities': jax.nn.softmax(model.apply(params, images), -1)}  # [B, K]

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, predict=predict)
