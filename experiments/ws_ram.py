"""Wake-Sleep Recurrent Attention Model (Ba, Grosse, Salakhutdinov, Frey 2015) against VAR.

Usage (the default variant is `ws_q_cv`, WS-RAM + q with control variates):
  make experiment NAME=ws_ram CONFIG=smoke     # 28x28 MNIST, 3 scales of 8x8, 3 glimpses, K = 5,
                                               # 1,500 updates: under a minute on 2 CPU cores
  make experiment NAME=ws_ram CONFIG=<row>     # one row of the paper's table on 100x100
                                               # translated-scaled MNIST, CPU-sized (below)
  make experiment NAME=ws_ram CONFIG=<row>_paper   # the paper's budget, for GPU/TPU
Rows (`loss.method`, `loss.control_variates`) and the paper's test errors after 10M updates with
K = 5 samples: var 3.11%, var_cv 1.81% (VAR without / with the input-dependent baseline), ws 4.23%,
ws_cv 1.85% (WS-RAM, the prior proposes), ws_q 2.59%, ws_q_cv 1.62% (WS-RAM + q, the inference
network proposes and learns by the wake-q update).

Model: 4 glimpses of one 12x12 patch at a chosen one of 3 scales (12, 24, 48 px), a 10x10 view of
the whole image for the top layer, a two-layer ReLU RNN (see `glimpse_jax.nets.ws_ram`), Adam at
1e-3, batch 64. The `_paper` variants use 256-unit layers, a constant learning rate and 10M
updates. The CPU-sized rows use smaller widths (128-unit layers, 64 for the what and where
pathways and q), 30k updates with a cosine schedule, and log the gradient variance every 500
updates. The measured rows (test errors, wall times, images/s), with the paper's beside them, are
in `results/ws_ram.md` (`make results`); measured figures live there, not here.

Exploration heuristics (sec. 4.5), any variant: `--config.loss.temperature=2` (the proposal samples
from p^(1/T); WS-RAM corrects for it by importance weights, VAR does not: a biased heuristic
there), `--config.loss.entropy_weight=0.01` (entropy bonus on the acting policies),
`--config.loss.coverage_weight=0.1` (KL of the batch's scale and location use to uniform).
Metrics `scale_frac_0..2` (training) and `test_scale_frac_*` (greedy test glimpses) show whether
the policy collapses onto one scale (the paper's Figure 4). The training `error` and
`scale_frac_*` are the prior policy's in every row, estimated from the training rollouts (by
importance weights when q or a tempered proposal draws them; see `prior_policy_metrics`). Other
options: `--config.model.learn_std=True`, `--config.loss.num_samples=K`,
`--config.model.fused=False` (the scanned rollout: same values and gradients, slower updates).

Setup choices that decide the result (their measured effects are in `results/ws_ram.md`):
  model.initial_location  'policy' (default, the paper's: at initialisation the first glimpse sits
      near the canvas center for every image, so few first glimpses hold the digit) or 'centroid'
      (the first location mean starts at the image's intensity centroid and is learned from there;
      see `WakeSleepRAM`). Metrics `first_on_digit` (training: the proposal's first glimpses, q's
      for ws_q) and `test_first_on_digit` (the greedy prior's): the fraction of first glimpses
      whose finest patch holds the digit's center. Per glimpse t, evaluation also reports the
      greedy prior's `saturated_g<t>` (location mean at the edge, |mu| > 0.95), `on_ink_g<t>` and
      `on_digit_g<t>`, and for ws_q `kl_q_prior_g<t>` (KL(q || prior) at q's own samples; also a
      training metric with `saturated_g<t>`).
  model.policy_gradient_to_bottom  True (default, the paper's eq. 8 on the whole prediction
      network) or False: the top layer reads the bottom state through a stop_gradient, so the
      policies train only the top layer and the context network, the classifier the rest.
  loss.policy_time_average  False (default) or True: the policies' terms carry 1/T of their
      gradient (the estimator averaged over glimpses; only the parameters the classifier shares
      with the policies feel it under Adam).
  loss.saturation_weight  w >= 0, 1 by default (0: the paper's objective): adds
      w * relu(|z| - artanh(0.95))^2 for the acting policies' pre-tanh location means z, which
      pulls a mean parked at the canvas edge back inside where tanh's gradient has vanished
      (zero for unsaturated means). The three are measured against each other in
      `results/ws_ram_notes.md` (ws_q_cv, 12,000 updates, seed 0: greedy test error 16.3% with
      none of them, its first glimpse 10.5% saturated; 8.2% with the penalty, no glimpse
      saturated; stopping the gradient at the top layer or averaging over T parked the later
      glimpses, 47-100% saturated).
  dataset.scale_range     the digits' scale factors, (0.5, 2.0) by default: 14-56 px digits
      against 12/24/48 px patches, where the coarsest scale sees most digits whole. With
      (0.5, 1.0) (14-28 px) the finer scales suffice and collapsing onto the coarsest one loses
      detail: the setting for the paper's Figure 4 claim (without heuristics VAR falls onto one
      scale and WS-RAM does not). Off the paper's dataset the results book shows no paper
      number beside a run (`paper_row`).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_dict

from glimpse_jax import data, papers, train
from glimpse_jax.diagnostics import (kl_q_prior, location_diagnostics, per_glimpse,
                                    per_glimpse_means, saturated)
from glimpse_jax.plots.glimpse_paths import plot_glimpse_paths
from glimpse_jax.nets import (RetinaSpec, WakeSleepRAM, WSRAMOutput, draw_noise, mode_noise,
                              path_values)
from glimpse_jax.nets.settings import check_positive_ints
from glimpse_jax.objectives import (METHODS, action_entropy, location_coverage_loss,
                                    method_surrogate, saturation_penalty, scale_coverage_loss)

INITIAL_LOCATIONS = ('policy', 'centroid')
# row variant -> the paper's row: loss.method, loss.control_variates, its name and test error
ROWS: dict[str, papers.WsRamRow] = papers.WS_RAM
VARIANTS = ('smoke', *ROWS, *(f'{row}_paper' for row in ROWS))
# The paper's table is on 100x100 translated MNIST with digits scaled by 0.5-2 (every row).
PAPER_DATASET = dict(name='translated_scaled', canvas_size=100, scale_range=(0.5, 2.0),
                     source='mnist')
_PAPER_WIDTHS = dict(bottom_features=256, top_features=256, glimpse_features=256,
                     what_features=128, where_features=128, inference_features=256)
_CPU_WIDTHS = dict(bottom_features=128, top_features=128, glimpse_features=128,
                   what_features=64, where_features=64, inference_features=64)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The WS-RAM config for variant `arg` (one of VARIANTS; default `ws_q_cv`); see module doc."""
  variant = train.pick_variant(arg or 'ws_q_cv', VARIANTS)
  row = variant.removesuffix('_paper')
  paper = variant.endswith('_paper')

  config = train.base_config()
  config.experiment = 'ws_ram'
  config.dataset.update(name='translated_scaled', canvas_size=100)
  config.dataset.sample_on_device = True  # canvases drawn inside the step: no host work
  config.batch_size = 64
  config.num_steps = papers.WS_RAM_STEPS if paper else 30_000
  config.optimizer.update(name='adam', learning_rate=1e-3,
                          schedule='constant' if paper else 'cosine')
  config.eval.mc_samples = 10
  # A learning curve while it trains: 1,000 test examples (eval_examples_during_training).
  config.eval_every = 0 if row == 'smoke' else 100_000 if paper else 2_000
  config.grad_variance_every = 10_000 if paper else 500
  config.log_every = 1_000 if paper else 200
  config.checkpoint_every = 50_000 if paper else 2_000
  config.model = ml_collections.ConfigDict(dict(
      num_glimpses=4, glimpse_size=12, num_scales=3, scale_factor=2, low_res_size=10,
      location_std=0.1, learn_std=False, fused=True, initial_location='policy',
      policy_gradient_to_bottom=True, **(_PAPER_WIDTHS if paper else _CPU_WIDTHS)))
  config.loss = ml_collections.ConfigDict(dict(
      method='ws_q', control_variates=True, num_samples=5, temperature=1.0, entropy_weight=0.0,
      coverage_weight=0.0, policy_time_average=False, saturation_weight=1.0))
  # The paper's number for this row travels in results.json for `glimpse_jax.report`.
  config.paper = ml_collections.ConfigDict(dict(row='', test_error=config_dict.placeholder(float)))
  if row == 'smoke':
    config.dataset.update(name='mnist', canvas_size=28)
    config.num_steps = 1_500
    config.grad_variance_every = 0
    config.checkpoint_every = 0
    config.model.update(num_glimpses=3, glimpse_size=8, low_res_size=7, bottom_features=64,
                        top_features=64, glimpse_features=64, what_features=64,
                        where_features=32, inference_features=32)
  else:
    record = ROWS[row]
    config.loss.update(method=record.method, control_variates=record.control_variates)
    config.paper.update(row=record.name, test_error=record.test_error)
  config.lock()
  return config


def paper_row(config) -> tuple[str, float] | None:
  """The paper's row and test error for a run's config (a ConfigDict or its results.json dict):
  the row of its `loss.method` and `loss.control_variates`, None on another dataset."""
  dataset, loss = config['dataset'], config['loss']
  for name, value in PAPER_DATASET.items():
    found = dataset.get(name, 'mnist' if name == 'source' else None)
    if (tuple(found) if isinstance(found, (list, tuple)) else found) != value:
      return None
  row = _row_of(loss['method'], loss['control_variates'])
  return row.name, row.test_error


def _row_of(method: str, control_variates: bool) -> papers.WsRamRow:
  return papers.lookup(ROWS.values(), method=method, control_variates=bool(control_variates))


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first WS-RAM field that cannot work."""
  m, loss = config.model, config.loss
  height, width, _ = data.image_shape(config.dataset)
  check_positive_ints('model', m, (
      'num_glimpses', 'num_scales', 'scale_factor', 'bottom_features', 'top_features',
      'glimpse_features', 'what_features', 'where_features', 'inference_features'))
  for name in ('glimpse_size', 'low_res_size'):
    if not 1 <= m[name] <= min(height, width):
      raise ValueError(f'model.{name} must be in [1, {min(height, width)}] for a '
                       f'{height}x{width} canvas, got {m[name]}')
  if not m.location_std > 0:
    raise ValueError(f'model.location_std must be > 0, got {m.location_std}')
  if m.get('initial_location', 'policy') not in INITIAL_LOCATIONS:
    raise ValueError(f'model.initial_location must be one of {list(INITIAL_LOCATIONS)}, '
                     f'got {m.initial_location!r}')
  if loss.method not in METHODS:
    raise ValueError(f'loss.method must be one of {list(METHODS)}, got {loss.method!r}')
  if loss.num_samples < 1:
    raise ValueError(f'loss.num_samples must be >= 1, got {loss.num_samples}')
  if not loss.temperature > 0:
    raise ValueError(f'loss.temperature must be > 0, got {loss.temperature}')
  for name in ('entropy_weight', 'coverage_weight', 'saturation_weight'):
    if not loss.get(name, 0.0) >= 0:
      raise ValueError(f'loss.{name} must be >= 0, got {loss[name]}')
  row = _row_of(loss.method, loss.control_variates)
  if config.paper.row and config.paper.row != row.name:
    raise ValueError(f'paper.row {config.paper.row!r} is not the row of loss.method='
                     f'{loss.method!r}, loss.control_variates={loss.control_variates} '
                     f'({row.name!r}); pick that variant or set --config.paper.row=""')


def make_model(config: ml_collections.ConfigDict) -> WakeSleepRAM:
  m = config.model
  return WakeSleepRAM(
      num_classes=data.num_classes(config.dataset),
      retina=RetinaSpec(m.glimpse_size, m.num_scales, m.scale_factor),
      low_res_size=m.low_res_size, bottom_features=m.bottom_features,
      top_features=m.top_features, glimpse_features=m.glimpse_features,
      what_features=m.what_features, where_features=m.where_features,
      inference_features=m.inference_features, location_std=m.location_std,
      learn_std=m.learn_std,
      # Configs written before `model.fused` ran the scanned rollout; both give the same values.
      fused=m.get('fused', True), initial_location=m.get('initial_location', 'policy'),
      policy_gradient_to_bottom=m.get('policy_gradient_to_bottom', True))


def _label_log_probs(class_log_probs: jax.Array, labels: jax.Array) -> jax.Array:
  """log p(y | a_k, x) at the true labels: [B, K, C], [B] -> [B, K]."""
  index = jnp.broadcast_to(labels[:, None, None], (*class_log_probs.shape[:2], 1))
  return jnp.take_along_axis(class_log_probs, index, -1)[..., 0]


def _errors(class_log_probs: jax.Array, labels: jax.Array) -> jax.Array:
  """0/1 errors of each rollout's prediction: [B, K, C], [B] -> [B, K]."""
  return (jnp.argmax(class_log_probs, -1) != labels[:, None]).astype(jnp.float32)


def _gradient_scaled(x: jax.Array, scale: float) -> jax.Array:
  """x itself, with its gradient multiplied by `scale`."""
  return jax.lax.stop_gradient(x) + scale * (x - jax.lax.stop_gradient(x))


def estimator_surrogate(out: WSRAMOutput, labels: jax.Array, method: str, control_variates: bool,
                        tempered: bool = False, policy_time_average: bool = False
                        ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Per-example surrogate [B] whose gradient is minus `method`'s estimator, and diagnostics.

  `out` holds K rollouts per image drawn from the method's proposal (the prior for 'var' and
  'ws', q for 'ws_q'), tempered when `tempered`. VAR's surrogate includes its baseline's
  regression, which reaches only the baseline's parameters. With `policy_time_average` the
  policies' terms (log p and log q of the actions) carry 1/T of their gradient: the estimator
  averaged over the T glimpses instead of summed, its values (weights, bound) unchanged.
  """
  scale = 1.0 / out.log_prior.shape[-1] if policy_time_average else 1.0
  log_prior = _gradient_scaled(out.log_prior.sum(-1), scale)  # [B, K]
  log_q = None if method != 'ws_q' else _gradient_scaled(out.log_q.sum(-1), scale)  # [B, K]
  log_proposal = out.log_proposal.sum(-1)  # [B, K]
  # Tempered prior samples are importance-weighted by the tempered density; under q the weights
  # use the (tempered) q that drew the samples, and q's update follows log q itself.
  return method_surrogate(
      method, _label_log_probs(out.class_log_probs, labels), log_prior,
      log_proposal if (method == 'ws_q' or tempered) else None, log_q, out.baseline,
      control_variates=control_variates)


def prior_policy_metrics(out: WSRAMOutput, labels: jax.Array,
                         prior_samples: bool) -> dict[str, jax.Array]:
  """The prior policy's training error and scale use, estimated from the K training rollouts.

  `error` estimates E_p(a|x)[error of the prediction after a] and `scale_frac_<s>` the fraction of
  the prior's glimpses at scale s, both averaged over the batch. With `prior_samples` (the
  untempered prior drew the rollouts) they are plain means over the rollouts; otherwise
  self-normalised importance estimates, rollout k of an image weighted by
  v~_k = softmax_k(log p(a_k | x) - log r(a_k)) for the proposal r that drew it, and `prior_ess`
  [1, K] (1 / sum_k v~_k^2, averaged over the batch) says how many rollouts they rest on.
  """
  errors = _errors(out.class_log_probs, labels)  # [B, K]
  num_scales = out.prior.scale_logits.shape[-1]
  if prior_samples:
    metrics = {'error': errors.mean()}
    for s in range(num_scales):
      metrics[f'scale_frac_{s}'] = jnp.mean(out.scales == s)
    return metrics
  log_v = jax.lax.stop_gradient(out.log_prior.sum(-1) - out.log_proposal.sum(-1))  # [B, K]
  weights = jax.nn.softmax(log_v, axis=1)  # [B, K] v~, per image
  metrics = {'error': jnp.sum(weights * errors, 1).mean(),
             'prior_ess': jnp.mean(1.0 / jnp.sum(weights**2, 1))}
  for s in range(num_scales):
    use = jnp.mean(out.scales == s, -1)  # [B, K] fraction of each rollout's glimpses
    metrics[f'scale_frac_{s}'] = jnp.sum(weights * use, 1).mean()
  return metrics


def patch_holds_center(locations: jax.Array, center: jax.Array, glimpse_size: int,
                       image_shape: tuple[int, int]) -> jax.Array:
  """1.0 where the finest patch of a glimpse at `locations` [B, ..., 2] contains the digit's
  center `center` [B, 2] (both in [-1, 1]), else 0.0: [B, ...]."""
  center = center.reshape(center.shape[0], *[1] * (locations.ndim - 2), 2)
  height, width = image_shape
  half = jnp.array([glimpse_size / width, glimpse_size / height])  # half a patch, in loc units
  inside = jnp.abs(jnp.clip(locations, -1, 1) - center) <= half
  return jnp.all(inside, -1).astype(jnp.float32)


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """WS-RAM / VAR training as `config.loss` says, greedy and Monte-Carlo evaluation."""
  validate(config)
  model = make_model(config)
  m, spec = config.model, config.loss
  proposal = 'q' if spec.method == 'ws_q' else 'prior'
  tempered = spec.temperature != 1.0
  # Every method logs the prior policy's training error and scale use, from the training rollouts
  # themselves: plain means when they are prior samples, importance estimates otherwise.
  prior_samples = proposal == 'prior' and not tempered
  noise = lambda rng, k, b: draw_noise(rng, (k, b, m.num_glimpses), m.num_scales)
  image_shape = data.image_shape(config.dataset)[:2]
  holds_center = lambda locations, center: patch_holds_center(locations, center,
                                                             m.glimpse_size, image_shape)

  def init(rng, batch):
    images, labels = jnp.asarray(batch['image']), jnp.asarray(batch['label'])
    return model.init(rng, images, noise(rng, 1, images.shape[0]), labels)

  def surrogate(out, labels):
    return estimator_surrogate(out, labels, spec.method, spec.control_variates, tempered,
                               spec.get('policy_time_average', False))

  def exploration(out):
    """Entropy and coverage of the policies that act: the prior, and q when it proposes."""
    acting = [out.prior] + ([out.q] if proposal == 'q' else [])
    entropy = sum(action_entropy(d.scale_logits, d.loc_log_std).mean() for d in acting)
    coverage = sum(scale_coverage_loss(d.scale_logits.reshape(-1, m.num_scales))
                   + location_coverage_loss(d.loc_mean.reshape(-1, 2)) for d in acting)
    return entropy, coverage

  def loss(params, batch, rng, step):
    del step
    images, labels = batch['image'], batch['label']
    batch_size = images.shape[0]
    train_rng, _ = jax.random.split(rng)  # the split keeps a seed's training noise unchanged
    out = model.apply(params, images, noise(train_rng, spec.num_samples, batch_size), labels,
                      proposal=proposal, temperature=spec.temperature)
    per_example, diagnostics = surrogate(out, labels)
    entropy, coverage = exploration(out)
    # The acting policies' location means beyond the edge (q's reads stop_gradient(top)).
    parked = sum(saturation_penalty(d.loc_pre_mean).mean()
                 for d in [out.prior] + ([out.q] if proposal == 'q' else []))
    total = (per_example.mean() - spec.entropy_weight * entropy
             + spec.coverage_weight * coverage + spec.get('saturation_weight', 0.0) * parked)
    if spec.method != 'var':
      # VAR's baseline b(x), regressed on the log-likelihoods here too (it reads a stopped
      # gradient, so nothing else moves): every run's snapshots then carry a fitted b, and
      # `ws_ram_variance` can compare VAR's estimators at any run's parameters.
      reward = jax.lax.stop_gradient(_label_log_probs(out.class_log_probs, labels))  # [B, K]
      diagnostics['baseline_loss'] = jnp.mean((reward - out.baseline[:, None]) ** 2, axis=1)
      total = total + diagnostics['baseline_loss'].mean()
    metrics = {
        'surrogate': per_example.mean(),
        'nll': -_label_log_probs(out.class_log_probs, labels).mean(),
        'bound': diagnostics['bound'].mean(),
        'ess': diagnostics['ess'].mean(),
        'entropy': entropy,
        'coverage': coverage,
        'saturation_penalty': parked,
        'log_prior': out.log_prior.sum(-1).mean(),
    }
    metrics['baseline_loss'] = diagnostics['baseline_loss'].mean()
    if proposal == 'q':
      metrics['log_q'] = out.log_q.sum(-1).mean()
      metrics['error_proposal'] = _errors(out.class_log_probs, labels).mean()
    metrics.update(prior_policy_metrics(out, labels, prior_samples))
    metrics.update(per_glimpse_means('saturated', saturated(out.prior.loc_mean).mean(1)))
    if proposal == 'q':
      metrics.update(per_glimpse_means('kl_q_prior',
                                       kl_q_prior(out.log_q, out.log_prior).mean(1)))
    if 'center' in batch:  # the proposal's first glimpses whose finest patch holds the digit
      metrics['first_on_digit'] = holds_center(out.locations[:, :, 0], batch['center']).mean()
    return total, metrics

  def evaluate(params, batch, rng):
    images, labels = batch['image'], batch['label']
    batch_size = images.shape[0]
    greedy = model.apply(params, images, mode_noise((1, batch_size, m.num_glimpses), m.num_scales))
    samples = model.apply(params, images, noise(rng, config.eval.mc_samples, batch_size))
    values = path_values(greedy.class_log_probs[:, 0], samples.class_log_probs, labels)
    values.update(location_diagnostics(images, greedy.prior.loc_mean[:, 0],
                                       greedy.locations[:, 0], m.glimpse_size,
                                       batch.get('center'), batch.get('box_size')))
    if proposal == 'q':  # KL(q || prior) per glimpse, estimated at q's own samples
      drawn = model.apply(params, images, noise(jax.random.fold_in(rng, 1),
                                                config.eval.mc_samples, batch_size), labels,
                          proposal='q')
      values.update(per_glimpse('kl_q_prior', kl_q_prior(drawn.log_q, drawn.log_prior).mean(1)))
    if 'center' in batch:
      values['first_on_digit'] = holds_center(greedy.locations[:, 0, 0], batch['center'])  # [B]
    for s in range(m.num_scales):
      values[f'scale_frac_{s}'] = jnp.mean(greedy.scales[:, 0] == s, -1)  # [B] over glimpses
    return values

  def plots(params, batch, rng, workdir):
    del rng
    images, labels = jnp.asarray(batch['image'][:8]), batch['label'][:8]
    greedy = model.apply(params, images, mode_noise((1, images.shape[0], m.num_glimpses),
                                                    m.num_scales))
    plot_glimpse_paths(images, jnp.clip(greedy.locations[:, 0], -1, 1),
                       glimpse_size=m.glimpse_size, num_scales=m.num_scales,
                       scale_factor=m.scale_factor, labels=labels,
                       predictions=jnp.argmax(greedy.class_log_probs[:, 0], -1),
                       scales=greedy.scales[:, 0], path=f'{workdir}/glimpse_paths.png')

  def predict(params, images, rng):
    del rng
    greedy = model.apply(params, images, mode_noise((1, images.shape[0], m.num_glimpses),
                                                    m.num_scales))
    return {'probabilities': jnp.exp(greedy.class_log_probs[:, 0]),  # [B, K]
            'locations': jnp.clip(greedy.locations[:, 0], -1, 1),  # [B, T, 2]
            'scales': greedy.scales[:, 0]}  # [B, T]

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)


def size_bins(sizes, edges) -> np.ndarray:
  """The bin of each digit side `sizes` [B] among `edges` [N + 1] (increasing): bin i holds
  edges[i] <= size < edges[i + 1], the last bin closed on the right; -1 outside [edges[0],
  edges[-1]]. numpy, [B] int."""
  sizes, edges = np.asarray(sizes, np.float64), np.asarray(edges, np.float64)
  if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
    raise ValueError(f'edges must be 2 or more increasing values, got {edges.tolist()}')
  bins = np.searchsorted(edges, sizes, side='right') - 1
  bins[sizes == edges[-1]] = edges.size - 2
  bins[(sizes < edges[0]) | (sizes > edges[-1])] = -1
  return bins


def scale_by_size(scales, on_ink, sizes, edges, num_scales: int = 3) -> dict:
  """The chosen glimpse scale against the digit's size (Ba et al. 2015, Figure 4).

  Args:
    scales: [B, T] int, the scale index of each glimpse (0 the finest).
    on_ink: [B, T] bool, whether the glimpse's finest patch holds ink.
    sizes: [B], the digit's side in pixels.
    edges: [N + 1] increasing size-bin edges (`size_bins`).
    num_scales: how many scales the retina has.

  Returns:
    {'edges', 'num_scales', 'examples', 'glimpses', 'outside' (examples outside the edges),
    'on_ink_fraction' [N] (of the bin's glimpses), and for 'on_ink' (glimpses on ink only) and
    'all': {'count' [N] glimpses, 'fractions' [N][num_scales] (None for an empty bin)}}: plain
    Python values, ready for json.
  """
  scales, on_ink = np.asarray(scales), np.asarray(on_ink, bool)
  if scales.ndim != 2 or scales.shape != on_ink.shape or np.shape(sizes) != scales.shape[:1]:
    raise ValueError(f'scales and on_ink must be [B, T] and sizes [B], got {scales.shape}, '
                     f'{on_ink.shape}, {np.shape(sizes)}')
  if scales.size and not 0 <= scales.min() <= scales.max() < num_scales:
    raise ValueError(f'scales must lie in [0, {num_scales}), got {scales.min()}..{scales.max()}')
  bins = np.broadcast_to(size_bins(sizes, edges)[:, None], scales.shape)  # [B, T]
  num_bins = len(edges) - 1

  def summary(kept):  # [B, T] bool -> counts and scale fractions per bin
    counts = [int(np.sum(kept & (bins == b))) for b in range(num_bins)]
    fractions = [None if not counts[b] else
                 [float(np.sum(kept & (bins == b) & (scales == s)) / counts[b])
                  for s in range(num_scales)] for b in range(num_bins)]
    return {'count': counts, 'fractions': fractions}

  ink, every = summary(on_ink), summary(np.ones_like(on_ink))
  return {'edges': [float(e) for e in edges], 'num_scales': num_scales,
          'examples': int(scales.shape[0]), 'glimpses': int(scales.shape[1]),
          'outside': int(np.sum(bins[:, 0] < 0)) if scales.shape[1] else 0,
          'on_ink_fraction': [i / a if a else None for i, a in zip(ink['count'], every['count'])],
          'on_ink': ink, 'all': every}
