"""The multi-phase loop on small MLPs over MNIST: a template for pre-training and distillation.

Usage (each a pipeline of phases; a minute or less on 2 CPU cores):
  make experiment NAME=tiny_pipelines CONFIG=smoke
      pretrain_classify with 200 + 400 updates: 15 s, test error 9.05% (tested: < 20%).
  make experiment NAME=tiny_pipelines CONFIG=pretrain_classify
      pretrain: an MLP autoencoder, reconstruction (headline `bce`);
      classify: a fresh classifier whose encoder is grafted from `pretrain` (init_subtrees),
                evaluated on a validation split carved from training data and on the test split.
  make experiment NAME=tiny_pipelines CONFIG=linear_probe
      the same, with the grafted encoder frozen (optimizer.freeze): only the head trains.
  make experiment NAME=tiny_pipelines CONFIG=distill
      teacher: a wide classifier; student: a narrow one trained on the labels plus the frozen
      teacher's softened outputs (the teacher's parameters are an input of the student's step).
  make experiment NAME=tiny_pipelines CONFIG=stored_distill
      teacher; logits: a data-producing phase that stores the teacher's logits for half of the
      training set, keyed by example index; student: trained on batches joined with them.
Run one phase alone with ARGS="--phase=classify"; override a phase's field with
ARGS="--config.phases.classify.num_steps=500"; `--config.seed=1` sets every phase's seed.
Each phase writes its own workdir under the run's (runs/tiny_pipelines-<variant>/<phase>).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from glimpse_jax import data, train
from glimpse_jax.objectives import distillation_loss

VARIANTS = ('smoke', 'pretrain_classify', 'linear_probe', 'distill', 'stored_distill')
HEADS = ('decoder', 'classifier')


class Encoder(nn.Module):
  """Flattened image -> ReLU layers of `features`."""
  features: tuple[int, ...]

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images.reshape(images.shape[0], -1)  # [B, H*W*C]
    for width in self.features:
      x = nn.relu(nn.Dense(width)(x))
    return x


class EncoderWithHead(nn.Module):
  """`encoder` then one linear `head` (pixel logits for 'decoder', class logits for 'classifier')."""
  features: tuple[int, ...]
  head: str
  num_outputs: int

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    return nn.Dense(self.num_outputs, name=self.head)(Encoder(self.features, name='encoder')(images))


# ---------------------------------------------------------------------------------------------
# Configs.
# ---------------------------------------------------------------------------------------------
def _phase(head: str, features=(256, 64), num_steps: int = 600) -> ml_collections.ConfigDict:
  config = train.base_config()
  config.dataset.update(name='mnist', train_examples=10_000, eval_examples=2_000)
  config.batch_size = 64
  config.num_steps = num_steps
  config.log_every = 100
  config.checkpoint_every = 200
  config.eval.batch_size = 500
  config.optimizer.learning_rate = 1e-3
  config.model = ml_collections.ConfigDict(dict(head=head, features=features,
                                                teacher_features=()))
  config.loss = ml_collections.ConfigDict(dict(distill_weight=0.0, temperature=4.0))
  if head == 'decoder':
    config.headline = 'bce'
  return config


def _classifier_with_validation(**kwargs) -> ml_collections.ConfigDict:
  config = _phase('classifier', **kwargs)
  config.dataset.validation_examples = 1_000
  config.eval.splits = ('validation', 'test')
  config.eval_every = 200
  config.eval_examples_during_training = 0
  return config


def _with_teacher(config: ml_collections.ConfigDict, features) -> ml_collections.ConfigDict:
  config.model.teacher_features = features
  config.loss.distill_weight = 0.7
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The pipeline of variant `arg` (one of VARIANTS; default `pretrain_classify`)."""
  variant = train.pick_variant(arg or 'pretrain_classify', VARIANTS)
  teacher_features = (512, 256)
  if variant in ('smoke', 'pretrain_classify', 'linear_probe'):
    classify = _classifier_with_validation()
    classify.init_from = 'pretrain'
    classify.init_subtrees = ('params/encoder',)
    if variant == 'linear_probe':
      classify.optimizer.freeze = ('params/encoder',)
    pretrain = _phase('decoder')
    if variant == 'smoke':
      pretrain.num_steps, classify.num_steps = 200, 400
    phases = [('pretrain', pretrain), ('classify', classify)]
  elif variant == 'distill':
    student = _with_teacher(_classifier_with_validation(features=(32,)), teacher_features)
    student.frozen.teacher = 'teacher'
    phases = [('teacher', _phase('classifier', teacher_features)), ('student', student)]
  else:
    logits = _phase('classifier', teacher_features)
    logits.kind = 'generate'
    logits.frozen.teacher = 'teacher'
    logits.generate.fraction = 0.5
    logits.generate.chunk_size = 1_000
    logits.model.teacher_features = teacher_features
    student = _with_teacher(_phase('classifier', (32,)), teacher_features)
    student.data_from = 'logits'
    phases = [('teacher', _phase('classifier', teacher_features)), ('logits', logits),
              ('student', student)]
  for _, phase in phases:
    phase.dataset.train_on_the_fly = False  # fixed examples, so stored fields join by index
  config = train.pipeline_config('tiny_pipelines', phases)
  config.lock()
  return config


# ---------------------------------------------------------------------------------------------
# The method.
# ---------------------------------------------------------------------------------------------
def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of a phase that cannot work."""
  if config.model.head not in HEADS:
    raise ValueError(f'model.head must be one of {list(HEADS)}, got {config.model.head!r}')
  if not config.model.features or min(config.model.features) < 1:
    raise ValueError(f'model.features must be positive widths, got {config.model.features!r}')
  takes_teacher = bool(config.frozen) or config.data_from is not None
  if takes_teacher and not config.model.teacher_features:
    raise ValueError('a phase with a teacher needs model.teacher_features')
  if not 0.0 <= config.loss.distill_weight <= 1.0:
    raise ValueError(f'loss.distill_weight must be in [0, 1], got {config.loss.distill_weight}')


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The phase's model and loss: reconstruction, classification or distillation."""
  validate(config)
  height, width, channels = data.image_shape(config.dataset)
  outputs = height * width * channels if config.model.head == 'decoder' else 10
  model = EncoderWithHead(tuple(config.model.features), config.model.head, outputs)
  teacher = EncoderWithHead(tuple(config.model.teacher_features or (1,)), 'classifier', 10)
  weight, temperature = config.loss.distill_weight, config.loss.temperature

  def init(rng, batch):
    return model.init(rng, batch['image'])

  def reconstruction(params, batch):
    logits = model.apply(params, batch['image'])  # [B, H*W*C]
    targets = batch['image'].reshape(logits.shape)
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean(-1)  # [B]

  def classification(params, batch, teacher_logits=None, stored=None):
    logits = model.apply(params, batch['image'])  # [B, 10]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])  # [B]
    error = (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32)
    if teacher_logits is None:
      return nll, {'nll': nll.mean(), 'error': error.mean()}
    distill = distillation_loss(logits, teacher_logits, temperature)  # [B]
    if stored is not None:  # only the examples with stored teacher outputs distil
      distill = distill * stored
    total = (1 - weight) * nll + weight * distill
    return total, {'nll': nll.mean(), 'distill': distill.mean(), 'error': error.mean()}

  def loss(params, batch, rng, step, frozen=None):
    del rng, step
    if config.model.head == 'decoder':
      bce = reconstruction(params, batch)
      return bce.mean(), {'bce': bce.mean()}
    if frozen is not None:
      per_example, metrics = classification(
          params, batch, teacher.apply(frozen['teacher'], batch['image']))
    elif config.data_from is not None:
      per_example, metrics = classification(params, batch, batch['teacher_logits'],
                                            batch['stored'].astype(jnp.float32))
    else:
      per_example, metrics = classification(params, batch)
    return per_example.mean(), metrics

  def evaluate(params, batch, rng, frozen=None):
    del rng, frozen
    if config.model.head == 'decoder':
      return {'bce': reconstruction(params, batch)}
    logits = model.apply(params, batch['image'])
    return {'error': (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32),
            'nll': optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])}

  def generate(batch, rng, frozen):
    del rng
    return {'teacher_logits': teacher.apply(frozen['teacher'], batch['image'])}  # [B, 10]

  frozen_models = tuple(config.frozen.keys())
  if config.kind == 'generate':
    return train.Experiment(generate=generate, frozen_models=frozen_models)
  def predict(params, images, rng, frozen=None):
    del rng, frozen  # MLPs look at every pixel: no glimpse locations
    out = model.apply(params, images)
    if config.model.head == 'decoder':
      return {'reconstruction': jax.nn.sigmoid(out).reshape(images.shape)}  # [B, H, W, C]
    return {'probabilities': jax.nn.softmax(out, -1)}  # [B, K]

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, frozen_models=frozen_models,
                          predict=predict)
