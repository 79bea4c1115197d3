"""The CNN baselines of Wu, Xu & Lee: shapes, parameter counts, gradients, attention, FLOPs."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glimpse_jax.nets import cnn
from glimpse_jax.nets import flops

PAPER_PARAMS = {'SimpleCNN': 1.83e6, 'SelfAttentionCNN': 0.47e6}
TRUNK_PARAMS = (2 * 2 * 1 * 32 + 32) + (2 * 2 * 32 * 64 + 64)
ATTENTION_PARAMS = 4 * (256 * 256 + 256)  # query, key, value, out


def _count(variables):
  return sum(int(x.size) for x in jax.tree.leaves(variables['params']))


def _init(model, shape, batch=3):
  images = jax.random.uniform(jax.random.key(1), (batch, *shape))
  return _variables(model, shape), images


@functools.lru_cache(maxsize=None)
def _variables(model, shape):
  # An 'rbg' key: threefry takes seconds on a CPU to draw the 1.8M initial weights.
  return jax.jit(model.init)(jax.random.key(0, impl='rbg'), jnp.zeros((1, *shape)))


def _shapes(model, shape):
  """The variables' shapes, without computing them."""
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))


@pytest.mark.parametrize('shape, expected', [
    # trunk + flatten (h * w * 64) -> 284 -> 10; 'SAME' pooling: 40 -> 20 -> 10, 28 -> 14 -> 7.
    ((40, 40, 1), TRUNK_PARAMS + (10 * 10 * 64 + 1) * 284 + (284 + 1) * 10),
    ((28, 28, 1), TRUNK_PARAMS + (7 * 7 * 64 + 1) * 284 + (284 + 1) * 10),
])
def test_simple_cnn_shapes_and_parameters(shape, expected):
  variables, images = _init(cnn.SimpleCNN(), shape)
  assert jax.jit(cnn.SimpleCNN().apply)(variables, images).shape == (3, 10)
  print(f'SimpleCNN {shape}: {_count(variables):,} parameters')
  assert _count(variables) == expected


@pytest.mark.parametrize('shape, tokens', [((40, 40, 1), 25), ((28, 28, 1), 16)])
def test_self_attention_cnn_shapes_and_parameters(shape, tokens):
  # A 7x7 feature map is padded to 8x8: 16 blocks.
  variables, images = _init(cnn.SelfAttentionCNN(), shape)
  assert jax.jit(cnn.SelfAttentionCNN().apply)(variables, images).shape == (3, 10)
  print(f'SelfAttentionCNN {shape}: {_count(variables):,} parameters')
  norm = 2 * 256
  classifier = (tokens * 256 + 1) * 32 + (32 + 1) * 10
  assert _count(variables) == TRUNK_PARAMS + ATTENTION_PARAMS + norm + classifier


@pytest.mark.parametrize('model', [cnn.SimpleCNN(), cnn.SelfAttentionCNN()])
def test_parameter_counts_near_the_papers_on_40x40(model):
  count = _count(_shapes(model, (40, 40, 1)))
  paper = PAPER_PARAMS[type(model).__name__]
  print(f'{type(model).__name__}: {count:,} parameters, paper {paper:,.0f}')
  assert abs(count / paper - 1) < 0.15


@pytest.mark.parametrize('model', [cnn.SimpleCNN(), cnn.SelfAttentionCNN()])
def test_every_parameter_gets_a_gradient(model):
  variables, images = _init(model, (40, 40, 1), batch=8)
  labels = jnp.arange(8) % 10

  def loss(params):
    logits = model.apply({'params': params}, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  grads = jax.jit(jax.grad(loss))(variables['params'])
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  dead = [jax.tree_util.keystr(path) for path, g in flat if not np.any(np.asarray(g))]
  assert not dead


def test_self_attention_cnn_without_layer_norm_drops_only_its_parameters():
  with_norm = _count(_shapes(cnn.SelfAttentionCNN(), (40, 40, 1)))
  without = _shapes(cnn.SelfAttentionCNN(layer_norm=False), (40, 40, 1))
  assert 'norm' not in without['params']
  assert _count(without) == with_norm - 2 * 256
  test_every_parameter_gets_a_gradient(cnn.SelfAttentionCNN(layer_norm=False))


def test_attention_weights_are_retrievable_and_rows_sum_to_one():
  model = cnn.SelfAttentionCNN()
  variables, images = _init(model, (40, 40, 1))
  weights = jax.jit(cnn.attention_weights, static_argnums=0)(model, variables, images)
  assert weights.shape == (3, 4, 25, 25)
  assert np.all(np.asarray(weights) >= 0)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  assert 'intermediates' not in variables  # sown only when asked for


@pytest.mark.parametrize('shape', [(2, 6, 6, 3), (2, 5, 7, 1)])  # even and odd sides
def test_conv_and_pooling_match_flax_layers(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  conv = cnn.Conv2x2(4)
  variables = conv.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
      jnp.shape, nn.Conv(4, (2, 2), padding='SAME').init(jax.random.key(1), x))
  reference = nn.Conv(4, (2, 2), padding='SAME').apply(variables, x)
  np.testing.assert_allclose(conv.apply(variables, x), reference, rtol=1e-5, atol=1e-5)
  pooled = cnn.max_pool_2x2(x)
  np.testing.assert_array_equal(pooled, nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME'))
  # Gradients agree where the maximum is unique (random inputs: everywhere).
  grad = jax.grad(lambda x: (cnn.max_pool_2x2(x) ** 2).sum())(x)
  reference_grad = jax.grad(
      lambda x: (nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME') ** 2).sum())(x)
  np.testing.assert_allclose(grad, reference_grad, rtol=1e-6)


def test_blocks_are_flattened_squares_in_row_major_order():
  features = jnp.arange(2 * 3 * 5 * 4, dtype=jnp.float32).reshape(2, 3, 5, 4)
  tokens = cnn.blocks(features, 2)  # padded to 4x6: 2 x 3 blocks
  assert tokens.shape == (2, 6, 16)
  padded = np.pad(np.asarray(features), ((0, 0), (0, 1), (0, 1), (0, 0)))
  for r in range(2):
    for c in range(3):
      np.testing.assert_array_equal(
          tokens[:, 3 * r + c], padded[:, 2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(2, 16))
  with pytest.raises(ValueError, match='block_size must be an integer >= 1, got 0'):
    cnn.blocks(features, 0)
  with pytest.raises(ValueError, match='num_heads must divide the token width 256'):
    _shapes(cnn.SelfAttentionCNN(num_heads=3), (40, 40, 1))


def test_flops_match_a_hand_count_and_xla():
  conv = 40 * 40 * 32 * (2 * 2 * 1) + 20 * 20 * 64 * (2 * 2 * 32)  # 'SAME': every output
  simple = conv + 6400 * 284 + 284 * 10
  qkv_out, scores = 4 * 25 * 256 * 256, 2 * 25 * 25 * 256  # projections; q.k and weights.v
  attention = conv + qkv_out + scores + 6400 * 32 + 32 * 10
  for model, macs in ((cnn.SimpleCNN(), simple), (cnn.SelfAttentionCNN(), attention)):
    count = cnn.flops_per_image(model, (40, 40, 1))
    print(f'{type(model).__name__}: {count:,} FLOPs per 40x40 image')
    assert count == 2 * macs
    xla = jax.jit(model.apply).lower(_shapes(model, (40, 40, 1)), jnp.zeros((1, 40, 40, 1)))
    # XLA adds elementwise work and leaves out taps on padding: a few percent either way.
    assert abs(xla.compile().cost_analysis()['flops'] / count - 1) < 0.03


def test_multiply_adds_counts_scans_and_conds_and_refuses_while_loops():
  x = jnp.zeros((3, 5))
  w = jnp.zeros((5, 5))

  def scanned(x):
    return jax.lax.scan(lambda c, _: (c @ w, None), x, length=7)[0]

  assert flops.multiply_adds(scanned, x) == 7 * 3 * 5 * 5
  branches = lambda p, x: jax.lax.cond(p, lambda x: x @ w @ w, lambda x: x, x)
  assert flops.multiply_adds(branches, True, x) == 2 * 3 * 5 * 5
  looped = lambda x: jax.lax.while_loop(lambda c: c.sum() < 1, lambda c: c @ w, x)
  with pytest.raises(ValueError, match='cannot count a while_loop'):
    flops.multiply_adds(looped, x)


# ---------------------------------------------------------------------------------------------
# The paper's normalisation layer (layer norm plus dropout) and the weighted-sum head.
# ---------------------------------------------------------------------------------------------
WEIGHTED = cnn.SelfAttentionCNN(head='weighted_sum', hidden=740, dropout=0.5)


@pytest.mark.parametrize('shape', [(40, 40, 1), (28, 28, 1)])
def test_normalised_models_parameter_counts(shape):
  simple = cnn.SimpleCNN(layer_norm=True, dropout=0.5)
  tokens_side = {40: 10, 28: 7}[shape[0]]
  assert _count(_shapes(simple, shape)) == (
      TRUNK_PARAMS + (tokens_side**2 * 64 + 1) * 284 + 2 * 284 + (284 + 1) * 10)
  # norm 2 x 256, score 256 + 1, hidden 256 x 740 + 740, logits: the same on any canvas.
  head = (256 + 1) + (256 + 1) * 740 + (740 + 1) * 10
  assert _count(_shapes(WEIGHTED, shape)) == TRUNK_PARAMS + ATTENTION_PARAMS + 2 * 256 + head
  assert _count(_shapes(WEIGHTED, shape)) == 469_943
  assert abs(469_943 / PAPER_PARAMS['SelfAttentionCNN'] - 1) < 0.001


def test_weighted_sum_head_pools_tokens_by_their_softmax_scores():
  variables, images = _init(WEIGHTED, (40, 40, 1))
  logits, state = WEIGHTED.apply(variables, images, mutable=['intermediates'])
  weights = state['intermediates']['pool_weights'][0]  # [B, T]
  assert logits.shape == (3, 10) and weights.shape == (3, 25)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  # The scores' layer gets a gradient, as every other parameter.
  test_every_parameter_gets_a_gradient(WEIGHTED)
  with pytest.raises(ValueError, match="head must be 'flatten' or 'weighted_sum', got 'mean'"):
    _shapes(cnn.SelfAttentionCNN(head='mean'), (40, 40, 1))


@pytest.mark.parametrize('model', [cnn.SimpleCNN(layer_norm=True, dropout=0.5), WEIGHTED])
def test_dropout_acts_only_while_training(model):
  variables, images = _init(model, (40, 40, 1))
  evaluated = model.apply(variables, images)
  np.testing.assert_array_equal(evaluated, model.apply(variables, images, train=False))
  first, second = (model.apply(variables, images, train=True, rngs={'dropout': jax.random.key(s)})
                   for s in (0, 1))
  assert not np.allclose(first, evaluated) and not np.allclose(first, second)


def test_weighted_sum_flops_count_the_scores_and_the_sum():
  conv = 40 * 40 * 32 * (2 * 2 * 1) + 20 * 20 * 64 * (2 * 2 * 32)
  qkv_out, scores = 4 * 25 * 256 * 256, 2 * 25 * 25 * 256
  head = 25 * 256 + 25 * 256 + 256 * 740 + 740 * 10  # scores, weighted sum, hidden, logits
  assert cnn.flops_per_image(WEIGHTED, (40, 40, 1)) == 2 * (conv + qkv_out + scores + head)
  assert 2 * (conv + qkv_out + scores + head) == 2 * 10_564_840
