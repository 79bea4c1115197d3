"""Stochastic multi-scale attention over a convolutional pyramid that writes captions
(Ba, Grosse, Salakhutdinov, Frey 2015, sec. 5.2).

A convolutional trunk (`PyramidCNN`) turns the image into L feature maps, one after each 2x2
max-pooling, each half the side of the one before. Per word t an LSTM decoder's prior policy,
reading its state and the previous word, picks a layer l_t (categorical: the scale) and a
location (Gaussian, (x, y) in [-1, 1] as everywhere in glimpse_jax); the decoder reads the
`window` x `window` cells of that layer's map around the location (O(window^2), as the retina),
projects them to one feature vector and, with the previous word, predicts word t. The inference
network q(a_t | state, previous word, y_t) additionally sees the word the glimpse must explain.

The rollout is a pure function of pre-drawn `ActionNoise` for K samples per image, drawn
[K, B, T, ...] (sample, example, word); `choice` is the layer's Gumbel noise. Its outputs are batch
first, [B, K, T, ...] (the scan's time-major outputs transposed once, here). Sampled actions
carry no gradient. With `decode=True` each step feeds the previous step's most probable word
instead of the given one (greedy decoding when the noise is zero).
"""

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from glimpse_jax import glimpse
from glimpse_jax.nets.actions import ActionDist, ActionHead
from glimpse_jax.nets.cnn import Conv2x2, max_pool_2x2
from glimpse_jax.nets.context import ContextNetwork
from glimpse_jax.nets.noise import ActionNoise
from glimpse_jax.nets.settings import settings_of

PROPOSALS = ('prior', 'q')


class PyramidCNN(nn.Module):
  """2x2 convolution, ReLU and 2x2 max-pooling per layer; returns every layer's pooled map.

  Attributes:
    features: filters per layer; L = len(features) maps.
  """

  features: Sequence[int] = (16, 32, 32)

  @nn.compact
  def __call__(self, images: jax.Array) -> list[jax.Array]:
    # images: [B, H, W, C] -> L maps [B, ceil(H / 2^l), ceil(W / 2^l), features[l - 1]]
    maps, x = [], images
    for i, width in enumerate(self.features):
      x = max_pool_2x2(nn.relu(Conv2x2(width, name=f'conv{i + 1}')(x)))
      maps.append(x)
    return maps


class DigitClassifier(nn.Module):
  """`PyramidCNN` (named 'cnn', so a caption model can graft it), flatten, class logits."""

  features: Sequence[int] = (16, 32, 32)
  num_classes: int = 10

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    top = PyramidCNN(self.features, name='cnn')(images)[-1]  # [B, h, w, C]
    return nn.Dense(self.num_classes, name='classifier')(top.reshape(top.shape[0], -1))


class CaptionOutput(NamedTuple):
  """K rollouts of T words per image, batch first."""

  word_log_probs: jax.Array  # [B, K, T, V] log p(y_t | y_<t, a_<=t, x) for every word
  words: jax.Array  # [B, K, T] int32 most probable word per step (what decoding feeds back)
  log_prior: jax.Array  # [B, K, T] log p(a_t | state, y_<t, x) at the drawn actions
  log_q: jax.Array | None  # [B, K, T] log q(a_t | state, y_<=t, x), None without targets
  log_proposal: jax.Array  # [B, K, T] log of the (tempered) density the actions were drawn from
  prior: ActionDist  # [B, K, T, ...]
  locations: jax.Array  # [B, K, T, 2] drawn, unclipped (the read uses them clipped)
  layers: jax.Array  # [B, K, T] int32 drawn layer indices (0 the finest map)
  baseline: jax.Array  # [B] b(x) from the initial state's input (VAR's control variate)


class _Settings(nn.Module):
  """Settings shared by `CaptionStep` and `AttentionCaptioner` (see the latter's attributes)."""

  vocab_size: int = 12
  window: int = 3
  embed_features: int = 32
  read_features: int = 128
  lstm_features: int = 128
  inference_features: int = 64
  location_std: float = 0.1
  learn_std: bool = False


def read_window(feature_map: jax.Array, locations: jax.Array, size: int) -> jax.Array:
  """The size x size cells of each example's map around each location (zero outside the map).

  Args:
    feature_map: [B, h, w, C].
    locations: [K, B, 2] in [-1, 1].
    size: window side in cells.

  Returns:
    [K, B, size * size * C].
  """
  one = lambda fmap, location: glimpse.retina(fmap, location, size=size, num_scales=1)[0]
  per_example = jax.vmap(one)  # over B
  windows = jax.vmap(per_example, in_axes=(None, 0))(feature_map, locations)  # [K, B, s, s, C]
  return windows.reshape(*windows.shape[:2], -1)


class CaptionStep(_Settings):
  """One word: the policies act, the chosen layer's window is read, the LSTM predicts the word."""

  proposal: str = 'prior'
  temperature: float = 1.0
  decode: bool = False

  @nn.compact
  def __call__(self, carry, inputs, maps):
    # carry: (LSTM (c, h) each [K, B, D], previous word [K, B]); inputs: (ActionNoise of
    # [K, B, ...], given previous word [B], target word [B] or None); maps: L x [B, h, w, C]
    (lstm_carry, previous), (noise_t, given, target) = carry, inputs
    word_in = previous if self.decode else jnp.broadcast_to(given, previous.shape)  # [K, B]
    embedded = nn.Embed(self.vocab_size, self.embed_features, name='embed')(word_in)
    state = jnp.concatenate([lstm_carry[1], embedded], -1)  # [K, B, D + E]
    head = lambda name, hidden: ActionHead(len(maps), self.location_std, self.learn_std, hidden,
                                           name=name)
    prior = head('policy', 0)(state)
    q = None
    if target is not None:
      target_code = jax.nn.one_hot(jnp.broadcast_to(target, previous.shape), self.vocab_size)
      q = head('inference', self.inference_features)(
          jnp.concatenate([jax.lax.stop_gradient(state), target_code], -1))
    acting = (q if self.proposal == 'q' else prior).temper(self.temperature)
    location, layer = acting.sample(noise_t.location, noise_t.choice)  # [K, B, 2], [K, B]
    seen = jnp.clip(location, -1.0, 1.0)
    reads = jnp.stack([
        nn.Dense(self.read_features, name=f'read{l}')(read_window(fmap, seen, self.window))
        for l, fmap in enumerate(maps)], axis=-2)  # [K, B, L, F]
    feature = jnp.take_along_axis(reads, layer[..., None, None], axis=-2)[..., 0, :]  # [K, B, F]
    lstm_carry, h = nn.OptimizedLSTMCell(self.lstm_features, name='lstm')(
        lstm_carry, jnp.concatenate([embedded, nn.relu(feature)], -1))
    log_probs = jax.nn.log_softmax(nn.Dense(self.vocab_size, name='words')(h), -1)  # [K, B, V]
    words = jnp.argmax(log_probs, -1).astype(jnp.int32)  # [K, B]
    log_q = None if q is None else q.log_prob(location, layer)
    outputs = (log_probs, words, prior.log_prob(location, layer), log_q,
               acting.log_prob(location, layer), prior, location, layer)
    return (lstm_carry, words), outputs


class AttentionCaptioner(_Settings):
  """The pyramid, the baseline (and optionally the initial state) from a low-resolution view of
  the whole image, the scanned words.

  Attributes:
    cnn_features: the pyramid's filters per layer (L layers to choose from).
    low_res_size: side of the low-resolution view of the whole image that VAR's baseline b(x)
      reads.
    initial_view: the same view also sets the LSTM's initial state; off, the decoder starts from
      zeros and sees the image only through its windows (the paper's design: the whole-canvas
      view would tell the predictor how many digits there are and roughly where).
    vocab_size: V words (targets and inputs); `start` is the first step's input.
    start: the start token's id.
    window: side of the window read from the chosen map, in cells.
    embed_features, read_features, lstm_features: widths of the word embedding, of the read
      projection (one per layer) and of the LSTM.
    inference_features: width of q's hidden layer.
    location_std, learn_std: the location policies' std (initial std when learnt).
    freeze_cnn: stop gradients at the pyramid (it is trained in an earlier phase).
  """

  cnn_features: Sequence[int] = (16, 32, 32)
  low_res_size: int = 10
  initial_view: bool = False
  start: int = 11
  freeze_cnn: bool = True

  @nn.compact
  def __call__(self, images: jax.Array, noise: ActionNoise, previous_words: jax.Array,
               targets: jax.Array | None = None, *, proposal: str = 'prior',
               temperature: float = 1.0, decode: bool = False) -> CaptionOutput:
    """Runs K rollouts of T words per image.

    Args:
      images: [B, H, W, C].
      noise: `ActionNoise` of [K, B, T, ...], `choice` [K, B, T, L].
      previous_words: [B, T] int, the input word of each step (teacher forcing; its first
        column is usually `start`); ignored after the first step when `decode`.
      targets: [B, T] int, the words to predict; q runs only when they are given.
      proposal: 'prior' or 'q' (needs targets); temperature: sample from p^(1/T).
      decode: feed back each step's most probable word.
    """
    if proposal not in PROPOSALS:
      raise ValueError(f'proposal must be one of {PROPOSALS}, got {proposal!r}')
    if proposal == 'q' and targets is None:
      raise ValueError("proposal 'q' needs targets")
    if temperature <= 0:
      raise ValueError(f'temperature must be > 0, got {temperature}')
    num_samples, batch, steps = noise.location.shape[:3]
    num_layers = len(self.cnn_features)
    if noise.choice is None or noise.choice.shape[-1] != num_layers:
      shape = None if noise.choice is None else noise.choice.shape
      raise ValueError(f'noise.choice must be [K, B, T, {num_layers}] Gumbel noise for the '
                       f'layers, got {shape}')
    if images.shape[0] != batch or previous_words.shape != (batch, steps):
      raise ValueError(f'noise is for {batch} images and {steps} words, got images '
                       f'{images.shape} and previous_words {previous_words.shape}')

    maps = PyramidCNN(self.cnn_features, name='cnn')(images)
    if self.freeze_cnn:
      maps = [jax.lax.stop_gradient(m) for m in maps]
    view = ContextNetwork(self.low_res_size, self.lstm_features, name='context')(images)  # [B, D]
    # b(x) trains the view only where the decoder does not start from it.
    baseline_input = jax.lax.stop_gradient(view) if self.initial_view else view
    baseline = nn.Dense(1, name='baseline')(baseline_input)[:, 0]  # [B]
    initial = view if self.initial_view else jnp.zeros_like(view)
    hidden = jnp.broadcast_to(initial, (num_samples, *initial.shape))  # [K, B, D]
    carry = ((jnp.zeros_like(hidden), hidden),
             jnp.full((num_samples, batch), self.start, jnp.int32))
    step = nn.scan(CaptionStep, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=(0, nn.broadcast), out_axes=0)(
        proposal=proposal, temperature=temperature, decode=decode, name='step',
        **settings_of(self, _Settings))
    time_major = (jax.tree.map(lambda a: jnp.moveaxis(a, 2, 0), noise),  # [T, K, B, ...]
                  previous_words.T, None if targets is None else targets.T)  # [T, B]
    _, outputs = step(carry, time_major, maps)
    outputs = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 2), outputs)  # [B, K, T, ...]
    log_probs, words, log_prior, log_q, log_proposal, prior, locations, layers = outputs
    return CaptionOutput(log_probs, words, log_prior, log_q, log_proposal, prior, locations,
                         layers, baseline)
