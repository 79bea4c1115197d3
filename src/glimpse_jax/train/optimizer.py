"""The optax optimizer and learning-rate schedule named by `config.optimizer`."""

import ml_collections
import optax


def make_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """The learning rate as a function of the update count (warm-up, then the named schedule)."""
  decay_steps = max(num_steps - opt.warmup_steps, 1)
  if opt.schedule == 'constant':
    schedule = optax.constant_schedule(opt.learning_rate)
  elif opt.schedule == 'cosine':
    schedule = optax.cosine_decay_schedule(opt.learning_rate, decay_steps)
  elif opt.schedule == 'exponential':
    schedule = optax.exponential_decay(opt.learning_rate, opt.decay_steps, opt.decay_rate)
  else:
    raise ValueError(f"optimizer.schedule must be one of ['constant', 'cosine', 'exponential'], "
                     f'got {opt.schedule!r}')
  if not opt.warmup_steps:
    return schedule
  warmup = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
  return optax.join_schedules([warmup, schedule], [opt.warmup_steps])


def make_optimizer(opt: ml_collections.ConfigDict,
                   num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns the optimizer (clipping and weight decay included) and its learning-rate schedule."""
  schedule = make_schedule(opt, num_steps)
  if opt.name == 'adam':
    tx = (optax.adamw(schedule, weight_decay=opt.weight_decay) if opt.weight_decay
          else optax.adam(schedule))
  elif opt.name in ('sgd', 'momentum'):
    momentum = opt.momentum if opt.name == 'momentum' else None
    tx = optax.sgd(schedule, momentum=momentum)
    if opt.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
  else:
    raise ValueError(f"optimizer.name must be one of ['adam', 'momentum', 'sgd'], got {opt.name!r}")
  if opt.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx, schedule
