"""Pre-training attention mechanisms (Lindsey 2017): a DRAW read guided before or while classifying.

Usage: make experiment NAME=pretrain_attention CONFIG=<method>_<dataset>[_gregor][_smoke]
  datasets:  translated  100x100 translated MNIST (digit at a random place), 5x5 read;
             regular     28x28 MNIST, 2x2 read.
  methods (each a pipeline of phases in runs/pretrain_attention-<variant>/<phase>):
    no_guidance        classify: classification from scratch.
    heuristic          pretrain: 2,000 batches of sum_t ||x_dig - x_att_t||_2 + 0.001 ||h_dec_t||_1;
                       classify: from the pre-trained `params/draw` (grafted), a fresh classifier.
    reconstruction     pretrain: reconstruction of every pixel (sigmoid, binary cross-entropy;
                       20,000 batches translated, 15,000 regular); classify: grafted as above.
    mimic              teacher: the reconstruction pre-training; classify: a fresh model trained on
                       nll + s alpha^(lambda i) (1/T) sum_t ||g_t - g_t^teacher||_2 at batch i
                       (s = 1, `loss.mimic_scale`), the frozen teacher's read parameters computed
                       on the same batch in the step.
    bootstrap          the same with a teacher trained on classification only (80,000 batches
                       translated, 5,000 regular).
    mimic_alpha05, bootstrap_alpha05   the same with alpha = 0.5 (default 0.95; lambda = 0.01).
    tester_<tested>    section 5, Table 3: the tested model (`reconstruction`, `classification` or
                       `reconstruction_classification`; the paper's 15,000 batches in all on
                       regular MNIST, 40,000 translated, split evenly when there are two phases);
                       sequences: a data-producing phase storing its reads (r_t, g_t) for every
                       training canvas (fixed canvases, keyed by index); tester: an LSTM without
                       attention (256 units, then the classifier head) trained on them for the
                       paper's 10,000 batches (40,000 translated), tested on the frozen model's
                       reads of the test images. Paper: 93.9 / 95.4 / 98.6% accuracy translated,
                       96.8 / 96.0 / 97.4% regular.
  Paper, test error (Tables 2 and 4): translated 1.9% no guidance, 1.4% heuristic, 1.4%
  reconstruction, 1.5% mimic, 1.5% / 2.7% bootstrap alpha 0.95 / 0.5; regular 2.6% no guidance,
  2.2% reconstruction, 1.9% mimic, 2.3% / 1.9% bootstrap.
  `_smoke`: widths 64 (latent 10), T = 8, learning rate 3e-3 (regular reconstruction: 1e-2,
  clipped as below; at 3e-3 unclipped it still predicts the mean image after 1,000 batches, its
  late reads moved off the image with their intensity raised, and a model grafted from it or held
  to its reads stays at chance; translated reconstruction stays at 3e-3, clipped: at 1e-2 its
  reads span or leave the canvas and a classifier grafted from it stays at 76% test error, at 3e-3
  it reaches 12.2%), pre-training 300 (heuristic) or 1,000 batches, classification 2,000, 2,000
  test images; the Table 3 smokes train the tested model 2,000 batches in all and the tester 2,000
  (at 1,000 each, the translated reconstruction's reads held no class: tester 77.3% test error,
  67.2% with classification after it; at 2,000, 43.5% and 40.0%); under 2 minutes per pipeline on
  2 CPU cores. Translated smokes place the digit on a 60x60 canvas (5x5 read), where every
  translated pipeline, reconstruction's included (its head predicts every pixel), fits in 2
  minutes. At the smoke budget guidance does not lower the error on either canvas: 5.5% guided
  against 6.5% unguided at 60x60, 20.9% against 17.7% at 100x100 (the notebook's run; measured in
  results/pretrain_attention.md). The mimic variants scale their mimic term by 0.01
  (`loss.mimic_scale`, 1 elsewhere): even this teacher's late reads lie off the image, and a
  student held to them at full weight keeps them and learns slowly; scaled, it learns as without
  guidance, so that smoke checks the pipeline, not the method.
  `smoke` alone is reconstruction_regular_smoke. Measured times and errors of every smoke variant,
  and the runs at larger budgets, are in results/pretrain_attention.md.
  Reads that cannot cheat, every variant's unless `_gregor`; each a model, optimizer or loss field
  of every phase, chosen by an ablation on regular MNIST (results/pretrain_attention.md: at equal
  batches reconstruction's test bce is 24-78 lower and its gradient norm up to 4.5x smaller, and at
  the paper's budget the grafted classifiers end at 2.1-3.2% test error, where with Gregor's read
  two seeds of three stayed at 16-26%):
    model.read_norm='full'        each filter divided by its whole Gaussian mass, not renormalised
                                  inside the image, so a read off the image sees ~nothing (with
                                  Gregor's 'image' a Gaussian off the image becomes a ramp over its
                                  nearest part, broad enough a whole-image average of the ink);
    model.log_gamma_bound=2       log gamma = 2 tanh(raw / 2), gamma in [0.14, 7.4] (0: unbounded;
                                  reconstruction drove it to ~10 to rescale such ramps);
    model.read_init='digit'       a digit-sized first read on 28x28 too (2x2 grid 10 px apart,
                                  sigma 5 px: the central 20x20 box of an MNIST digit);
    optimizer.grad_clip_per_leaf  every phase's gradients clipped per variable at norm 5 (the
                                  public code's), so one gamma-scaled layer's spike no longer
                                  shrinks every other parameter's step;
    model.forget_bias=1           every LSTM's forget-gate bias starts at 1 (TensorFlow's cells;
                                  Flax's start at 0);
    loss.in_image_weight=10       reconstruction phases, and classification from scratch on
                                  translated canvases: + 10 times the mean over reads of
                                  (1 - in-image mass), a penalty on reads that leave the image.
                                  With full-mass filters a read off the image sees nothing and no
                                  gradient brings it back: without the penalty the 15,000-batch
                                  reconstructions of seeds 0 and 2 parked reads 7-10 off the image
                                  on 71-98% of test images and lost to no guidance; with it every
                                  read of seeds 0-2 keeps 0.95-1.00 of its mass inside, the grafted
                                  classifiers end at 1.65-2.25% test error (no guidance 2.38-2.73%)
                                  and Table 3's tester reads 97.0-97.8% of digits right. On the
                                  100x100 translated canvas an unguided classifier's gradient
                                  spike (norm 26-125) threw reads 3-10 off the canvas in seed 2,
                                  which then stayed at 78% test error; penalised, the same seed
                                  ends at 3.2% (3 seeds: 2.98 +- 0.83% against 28.3 +- 43.3%).
                                  A classifier grafted from pre-trained reads is not penalised:
                                  after the heuristic's pre-training the penalty pulled its wide
                                  reads in and 2 seeds of 3 stayed near the 77% plateau for
                                  3,000-4,000 more batches. On 28x28 no classifier's read left
                                  the image.
  `_gregor`: the behaviour of the runs before these fields, Gregor's read as the kernel computes
  it: filters renormalised inside the image, log gamma unbounded, the whole gradient clipped to
  global norm 5 (reconstruction's to 10), forget bias 0, no in-image penalty, and the first read
  'digit' on translated canvases and 'blur' on 28x28 (where 'digit' was the whole-image 'blur'
  grid until it became digit-sized). The smoke measurements above were made with it; with the
  default reads (before the in-image penalty) the notebook's 100x100 smokes reach 22.1% test error
  guided against 10.7% unguided. Each field can be set alone with
  --config.phases.<phase>.<field>=value.
  Every phase logs and reports where its reads went, per read step t = 1..T: log_gamma_g<t>,
  sigma_g<t> and stride_g<t> (pixels), center_x_g<t> and center_y_g<t> (locations),
  in_image_mass_g<t> (the mean over the n x n filters of the share of each one's Gaussian mass
  inside the image, the product of its x and y shares) and off_image_g<t> (the share of images
  whose read has less than half its mass inside); the tester reports its frozen model's.
Override a phase's field with ARGS="--config.phases.classify.num_steps=5000"; run one phase alone
with ARGS="--phase=classify". Rows over seeds: scripts/pretrain_attention_rows.sh "VARIANTS" "SEEDS"
(on regular MNIST a reconstruction row reuses its seed's finished Table 3 reconstruction tester's
pre-training, a mimic row the same as its teacher).

Where the paper is silent, this module chooses:
  - Adam with learning rate 1e-3 (Kingma & Ba's default, the rate of the public DRAW codes),
    batch 100; classification phases run 20,000 batches (the paper trains until test accuracy
    stops improving), evaluated on the whole test split every 1,000. Gradients are clipped per
    variable at norm 5 (`_gregor`: to global norm 5, reconstruction's to 10; the public DRAW
    codes clip, the paper's per variable at 5): unclipped, with Gregor's read, the regular
    256-unit reconstruction ran at gradient norms of ~150 and collapsed to the mean image by
    batch 2,000, and heuristic-guided classification of 100x100 translated digits with T = 10
    reads reached 8-15% training error, then both seeds measured lost it within 500 batches (to
    81% and 53% test error at batch 2,000; clipped: 8.6%).
  - The heuristic's distances are in the location convention ((x, y) in [-1, 1], the units of the
    batch's `center`); the read center is the DRAW grid center (gX, gY) mapped to it
    (`glimpse.draw_center`); the L1 term sums |h_dec_t| over every step t. Regular MNIST has no
    placed digit: its `center` is the image center, where MNIST puts the digit's center of mass.
  - The read layer's bias makes the first read a grid spanning 28 pixels (a digit's side) at the
    image center, with Gaussians of sigma = stride / 2 (`model.read_init='digit'`; on 28x28 MNIST
    the `_gregor` runs read the whole image, 'blur'). With a zero bias ('zeros',
    plain DRAW) sigma is 1 pixel and the 2x2 grid on 28x28 samples four border pixels, blank in
    MNIST: reconstruction pre-training then
    never moves the read (measured: reads still all zero after 3,000 batches), and
    classification needs ~1,000 batches to escape; on 100x100 translated digits the smokes sat at
    chance (89% training error after 250-750 batches, heuristic-guided too, then stopped). With
    'blur' (the first grid spans the whole image, sigma = stride / 2) 100x100 translated
    classification stays near 78% error for 10,000 batches, guided or not, where 'digit' takes
    the heuristic-guided smoke to 20.9% test error in 2,000 (the notebook's run).
  - `model.unroll`: DRAW steps per iteration of the compiled scan, all 10 at full size (the same
    values; on a 2-core CPU the classification update trains ~9% faster, compiling ~60% longer),
    1 in the smokes.
  - Reconstruction sums the binary cross-entropy over pixels (DRAW's L^x), headline `bce`.
  - The mimic distance is over the raw five read parameters (gx~, gy~, log sigma^2, log delta~,
    log gamma); only the teacher's `params/draw` is used, so its head may be either.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from glimpse_jax import data, glimpse, papers, train
from glimpse_jax.plots.read_windows import plot_read_windows
from glimpse_jax.nets.draw import (READ_INITS, READ_NORMS, DrawCore, DrawModel, SequenceClassifier,
                                   read_in_image_mass, read_stats, with_forget_bias)
from glimpse_jax.objectives import heuristic_loss, mimic_loss, mimic_weight

OBJECTIVES = ('classification', 'reconstruction', 'heuristic', 'mimic', 'tester')
HEAD_OF = {'classification': 'classifier', 'mimic': 'classifier', 'tester': 'classifier',
           'reconstruction': 'reconstruction', 'heuristic': 'none'}
HEADLINE_OF = {'classification': 'error', 'mimic': 'error', 'tester': 'error',
               'reconstruction': 'bce', 'heuristic': 'distance'}
# The frozen model each kind of phase takes: the teacher it mimics, or the model it tests.
FROZEN_OF = {'mimic': 'teacher', 'tester': 'model', 'generate': 'model'}
TESTED = ('reconstruction', 'classification', 'reconstruction_classification')
METHODS = ('no_guidance', 'heuristic', 'reconstruction', 'mimic', 'bootstrap', 'mimic_alpha05',
           'bootstrap_alpha05')
DATASETS = {  # name: (dataset fields, read size)
    'translated': (dict(name='translated', canvas_size=100), 5),
    'regular': (dict(name='mnist', canvas_size=28), 2),
}
GREGOR = '_gregor'  # the variant suffix of Gregor's read, as the earlier runs had it (module doc)
VARIANTS = ('smoke', *(f'{method}_{dataset}{reads}{suffix}' for suffix in ('', '_smoke')
                       for reads in ('', GREGOR)
                       for method in METHODS + tuple(f'tester_{t}' for t in TESTED)
                       for dataset in DATASETS))

# The paper's batch counts per phase, then the smoke variants'.
PRETRAIN_STEPS = papers.PRETRAIN_ATTENTION_STEPS
CLASSIFY_STEPS = 20_000
SMOKE_STEPS = {'heuristic': 300, 'reconstruction': 1_000, 'classification': 1_000}
SMOKE_CLASSIFY_STEPS = 2_000
SMOKE_TRANSLATED_CANVAS = 60  # guidance shows within the smoke's 2,000 batches (module doc)
RECONSTRUCTION_CLIP = 10.0  # gradient norm; unclipped, the reconstruction collapses (module doc)
CLIP = 5.0  # gradient norm of every other phase; unclipped, T = 10 classification collapses
SMOKE_MIMIC_SCALE = 0.01  # the smoke teacher's reads are useless: no student may be held to them
# Reads that cannot cheat (all but `_gregor`): log gamma within +-LOG_GAMMA_BOUND (gamma in
# [0.14, 7.4]), every phase's gradients clipped per variable at CLIP (the public code's), LSTM
# forget-gate biases FORGET_BIAS.
LOG_GAMMA_BOUND = 2.0
FORGET_BIAS = 1.0
# Reconstruction's penalty on read mass off the image (loss.in_image_weight, all but `_gregor`):
# without it, full-mass reads parked off the image in 2 regular seeds of 3 (module doc).
IN_IMAGE_WEIGHT = 10.0
# Table 3: every tested model gets the paper's batches in all (split evenly when it has two phases),
# then the tester trains on the stored reads: dataset -> (tested, tester) batches.
TESTER_STEPS = papers.PRETRAIN_ATTENTION_TESTER_STEPS
# Smokes: at 1,000 tested batches the translated reconstruction's reads carried no class (tester
# 77% error), at 2,000 the tester reaches 43.5% (module doc).
SMOKE_TESTED_STEPS, SMOKE_TESTER_STEPS = 2_000, 2_000


# ---------------------------------------------------------------------------------------------
# Configs.
# ---------------------------------------------------------------------------------------------
def penalises_reads_off_the_image(objective: str, dataset: str) -> bool:
  """Whether a phase's loss has the in-image penalty by default (`loss.in_image_weight`, module
  doc): reconstruction everywhere; classification on translated canvases, unless it starts from
  pre-trained reads (`get_config`)."""
  return objective == 'reconstruction' or (
      dataset == 'translated' and objective == 'classification')


def phase_config(objective: str, dataset: str, num_steps: int, smoke: bool = False,
                 gregor: bool = False) -> ml_collections.ConfigDict:
  """One phase: the DRAW model trained on `objective` over `dataset` ('translated' or 'regular'),
  with reads that cannot cheat (full-mass filters, bounded gamma, a digit-sized first read,
  per-variable clipping, forget bias 1) or, `gregor`, the earlier runs' Gregor read (module doc)."""
  fields, read_size = DATASETS[dataset]
  config = train.base_config()
  config.dataset.update(fields)
  config.batch_size = 100
  config.num_steps = num_steps
  config.log_every = 100
  config.checkpoint_every = 1_000
  config.eval_every = 1_000
  config.eval_examples_during_training = 0
  config.eval.batch_size = 500
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = CLIP
  config.optimizer.grad_clip_per_leaf = True  # False: the whole gradient clipped at once
  config.headline = HEADLINE_OF[objective]
  config.model = ml_collections.ConfigDict(dict(
      read_size=read_size, hidden=256, latent=10, glimpses=10, classifier_hidden=256,
      read_init='digit', unroll=10, read_norm='full', log_gamma_bound=LOG_GAMMA_BOUND,
      forget_bias=FORGET_BIAS))
  config.loss = ml_collections.ConfigDict(dict(
      objective=objective, l1_weight=0.001, mimic_alpha=0.95, mimic_rate=0.01, mimic_scale=1.0,
      # > 0: + weight * mean_t (1 - in-image mass of read t)
      in_image_weight=IN_IMAGE_WEIGHT if penalises_reads_off_the_image(objective, dataset)
      else 0.0))
  config.model.tester_hidden = 256
  if smoke:
    # Not unrolled: each smoke compiles its model several times and trains briefly.
    config.model.update(hidden=64, classifier_hidden=64, glimpses=8, tester_hidden=64, unroll=1)
    config.optimizer.learning_rate = 3e-3  # the narrow model leaves its plateau sooner
    if objective == 'reconstruction' and dataset == 'regular':  # leaves the mean image sooner
      config.optimizer.learning_rate = 1e-2  # (translated at 1e-2: reads no classifier can use)
    config.dataset.eval_examples = 2_000
    if dataset == 'translated':
      config.dataset.canvas_size = SMOKE_TRANSLATED_CANVAS
    config.checkpoint_every = 500
    config.log_every = 250
    config.eval_every = 0
  if gregor:
    # 'blur' on 28x28 is the first read every regular run had under 'digit' until 'digit' became
    # digit-sized there (module doc).
    config.model.update(read_init='digit' if dataset == 'translated' else 'blur',
                        read_norm='image', log_gamma_bound=0.0, forget_bias=0.0)
    config.loss.in_image_weight = 0.0
    config.optimizer.update(grad_clip_per_leaf=False, grad_clip_norm=(
        RECONSTRUCTION_CLIP if objective == 'reconstruction' else CLIP))
  return config


def _parse(variant: str) -> tuple[str, str, bool, bool]:
  """`<method>_<dataset>[_gregor][_smoke]` -> (method, dataset, smoke, gregor)."""
  if variant == 'smoke':
    return 'reconstruction', 'regular', True, False
  smoke = variant.endswith('_smoke')
  stem = variant.removesuffix('_smoke')
  gregor = stem.endswith(GREGOR)
  method, dataset = stem.removesuffix(GREGOR).rsplit('_', 1)
  return method, dataset, smoke, gregor


def _tester_phases(tested: str, dataset: str, smoke: bool, gregor: bool) -> list:
  """The tested model's phases, `sequences` (its reads stored) and `tester` (section 5)."""
  total, tester_steps = ((SMOKE_TESTED_STEPS, SMOKE_TESTER_STEPS) if smoke
                         else TESTER_STEPS[dataset])
  if tested == 'reconstruction_classification':
    classify = phase_config('classification', dataset, total // 2, smoke, gregor)
    classify.init_from = 'pretrain'
    classify.init_subtrees = ('params/draw',)
    classify.loss.in_image_weight = 0.0  # grafted from pre-trained reads: unpenalised
    phases = [('pretrain', phase_config('reconstruction', dataset, total - total // 2, smoke,
                                        gregor)),
              ('classify', classify)]
  else:
    name = 'pretrain' if tested == 'reconstruction' else 'classify'
    phases = [(name, phase_config(tested, dataset, total, smoke, gregor))]
  sequences = phase_config('classification', dataset, 1, smoke, gregor)  # steps unused
  sequences.kind = 'generate'
  sequences.frozen.model = phases[-1][0]
  sequences.generate.chunk_size = 5_000
  tester = phase_config('tester', dataset, tester_steps, smoke, gregor)
  tester.frozen.model = phases[-1][0]
  tester.data_from = 'sequences'
  for phase in (sequences, tester):  # fixed canvases, so stored reads join by example index
    phase.dataset.train_on_the_fly = False
  return phases + [('sequences', sequences), ('tester', tester)]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The pipeline of variant `arg` (one of VARIANTS; default `reconstruction_translated`)."""
  method, dataset, smoke, gregor = _parse(
      train.pick_variant(arg or 'reconstruction_translated', VARIANTS))
  phase = functools.partial(phase_config, smoke=smoke, gregor=gregor)

  def steps(objective):
    return SMOKE_STEPS[objective] if smoke else PRETRAIN_STEPS[objective, dataset]

  classify_steps = SMOKE_CLASSIFY_STEPS if smoke else CLASSIFY_STEPS
  if method.startswith('tester_'):
    phases = _tester_phases(method.removeprefix('tester_'), dataset, smoke, gregor)
  elif method == 'no_guidance':
    phases = [('classify', phase('classification', dataset, classify_steps))]
  elif method in ('heuristic', 'reconstruction'):
    classify = phase('classification', dataset, classify_steps)
    classify.init_from = 'pretrain'
    classify.init_subtrees = ('params/draw',)
    # Unpenalised: on translated canvases the penalty pulled the heuristic's wide pre-trained
    # reads in and held 2 of 3 seeds near the 77% plateau (module doc).
    classify.loss.in_image_weight = 0.0
    phases = [('pretrain', phase(method, dataset, steps(method))), ('classify', classify)]
  else:
    teacher_objective = 'reconstruction' if method.startswith('mimic') else 'classification'
    classify = phase('mimic', dataset, classify_steps)
    classify.frozen.teacher = 'teacher'
    if method.endswith('_alpha05'):
      classify.loss.mimic_alpha = 0.5
    if smoke and teacher_objective == 'reconstruction':
      classify.loss.mimic_scale = SMOKE_MIMIC_SCALE
    phases = [('teacher', phase(teacher_objective, dataset, steps(teacher_objective))),
              ('classify', classify)]
  config = train.pipeline_config('pretrain_attention', phases)
  config.lock()
  return config


# ---------------------------------------------------------------------------------------------
# The method.
# ---------------------------------------------------------------------------------------------
def _check_int(config, name: str, minimum: int) -> None:
  value = config.model[name]
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ValueError(f'model.{name} must be an integer >= {minimum}, got {value!r}')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of a phase that cannot work."""
  objective = config.loss.objective
  if objective not in OBJECTIVES:
    raise ValueError(f'loss.objective must be one of {list(OBJECTIVES)}, got {objective!r}')
  for name in ('hidden', 'latent', 'glimpses', 'classifier_hidden', 'tester_hidden', 'unroll'):
    _check_int(config, name, 1)
  _check_int(config, 'read_size', 2)
  side = min(data.image_shape(config.dataset)[:2])
  if config.model.read_size > side:
    raise ValueError(f'model.read_size must be <= the image side {side}, got '
                     f'{config.model.read_size}')
  if config.model.read_init not in READ_INITS:
    raise ValueError(f'model.read_init must be one of {list(READ_INITS)}, got '
                     f'{config.model.read_init!r}')
  if config.model.read_norm not in READ_NORMS:
    raise ValueError(f'model.read_norm must be one of {list(READ_NORMS)}, got '
                     f'{config.model.read_norm!r}')
  if config.model.log_gamma_bound < 0:
    raise ValueError(f'model.log_gamma_bound must be >= 0 (0: unbounded), got '
                     f'{config.model.log_gamma_bound}')
  if not isinstance(config.optimizer.grad_clip_per_leaf, bool):
    raise ValueError(f'optimizer.grad_clip_per_leaf must be True or False, got '
                     f'{config.optimizer.grad_clip_per_leaf!r}')
  if config.loss.l1_weight < 0:
    raise ValueError(f'loss.l1_weight must be >= 0, got {config.loss.l1_weight}')
  if not 0 < config.loss.mimic_alpha <= 1:
    raise ValueError(f'loss.mimic_alpha must be in (0, 1], got {config.loss.mimic_alpha}')
  if config.loss.mimic_rate < 0:
    raise ValueError(f'loss.mimic_rate must be >= 0, got {config.loss.mimic_rate}')
  if config.loss.mimic_scale < 0:
    raise ValueError(f'loss.mimic_scale must be >= 0, got {config.loss.mimic_scale}')
  if config.loss.in_image_weight < 0:
    raise ValueError(f'loss.in_image_weight must be >= 0, got {config.loss.in_image_weight}')
  frozen = tuple(config.frozen.keys())
  role = 'generate' if config.kind == 'generate' else objective
  wanted = FROZEN_OF.get(role)
  what = "kind='generate'" if role == 'generate' else f'loss.objective={objective!r}'
  if wanted and frozen != (wanted,):
    raise ValueError(f'{what} needs exactly frozen.{wanted} (a workdir or an earlier phase whose '
                     f'params/draw it uses), got frozen names {list(frozen)}')
  if not wanted and frozen:
    raise ValueError(f'{what} takes no frozen model, got frozen names {list(frozen)}')
  if objective == 'tester' and config.data_from is None:
    raise ValueError("loss.objective='tester' needs data_from: the generate phase that stored "
                     'the tested model\'s reads')
  if (role == 'generate' or config.data_from is not None) and config.dataset.train_on_the_fly:
    raise ValueError(f'{what} stores or joins reads by example index, which needs '
                     'dataset.train_on_the_fly=False (fixed training canvases)')
  if config.headline != HEADLINE_OF[objective]:
    raise ValueError(f'headline must be {HEADLINE_OF[objective]!r} for loss.objective='
                     f'{objective!r}, got {config.headline!r}')


# Model fields a frozen model's run must share with the phase that runs it, beyond those its
# parameter shapes show (widths, read size): the number of reads it was trained to make and how
# it reads, with the values of runs whose configs predate a field.
FROZEN_MODEL_FIELDS = {'glimpses': None, 'read_norm': 'image', 'log_gamma_bound': 0.0}


def _check_frozen_run(where: str, workdir: str | None,
                      config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming each field where the frozen run's saved config (its workdir's
  config.json) differs from `config`: FROZEN_MODEL_FIELDS and the image shape, which parameter
  shapes miss (one DRAW runs any number of steps on any canvas). A workdir without a saved config
  is left to the shape check."""
  saved = train.read_config(workdir) if workdir else None
  if saved is None:
    return
  theirs_of = {name: saved.model.get(name, default)
               for name, default in FROZEN_MODEL_FIELDS.items()}
  differ = [f'model.{name}: {theirs_of[name]!r} there, {config.model[name]!r} here'
            for name in FROZEN_MODEL_FIELDS if theirs_of[name] != config.model[name]]
  theirs, ours = data.image_shape(saved.dataset), data.image_shape(config.dataset)
  if tuple(theirs) != tuple(ours):
    canvas = saved.dataset.get('canvas_size')
    differ.append(f'image shape (dataset {saved.dataset.name!r}, canvas_size {canvas!r}): '
                  f'{tuple(theirs)} there, {tuple(ours)} here')
  if differ:
    raise ValueError(f'{where} was trained on other reads or images than this phase runs it on '
                     f'(its config.json): ' + '; '.join(differ))


def draw_fields(model: ml_collections.ConfigDict) -> dict:
  """The DrawCore fields (widths, steps, how it reads) of a phase's `model` config."""
  return dict(read_size=model.read_size, hidden=model.hidden, latent=model.latent,
              steps=model.glimpses, read_init=model.read_init, unroll=model.unroll,
              read_norm=model.read_norm, log_gamma_bound=model.log_gamma_bound)


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """The phase's DRAW model and its loss: classification, reconstruction, heuristic or mimic."""
  validate(config)
  objective = config.loss.objective
  height, width, channels = data.image_shape(config.dataset)
  sizes = draw_fields(config.model)
  model = DrawModel(HEAD_OF[objective], classifier_hidden=config.model.classifier_hidden,
                    num_classes=data.num_classes(config.dataset), **sizes)
  core = DrawCore(**sizes)
  frozen_name = FROZEN_OF.get('generate' if config.kind == 'generate' else objective)
  frozen_source = config.frozen.get(frozen_name) if frozen_name else None
  expected_core = jax.eval_shape(core.init, jax.random.key(0),
                                 jax.ShapeDtypeStruct((1, height, width, channels), jnp.float32))

  def init(rng, batch):
    variables = model.init(rng, batch['image'])
    return with_forget_bias(variables, config.model.forget_bias)

  def stats(read_params):  # [B, T, 5] -> {f'{stat}_g{t}': [B]}
    return read_stats(read_params, n=config.model.read_size, height=height, width=width)

  def means(values):
    return {name: value.mean() for name, value in values.items()}

  def with_in_image_penalty(value, metrics, read_params):
    """`value` plus `loss.in_image_weight` times the mean over reads of their mass off the image."""
    if not config.loss.in_image_weight:
      return value, metrics
    mass = read_in_image_mass(read_params, n=config.model.read_size, height=height, width=width)
    penalty = (1.0 - mass).mean()  # over [B, T]
    return (value + config.loss.in_image_weight * penalty,
            {**metrics, 'in_image_penalty': penalty})

  def frozen_trace(frozen, images):
    """The frozen DRAW's reads on `images`, after checking (while tracing) that it fits."""
    where = f'frozen.{frozen_name}={frozen_source!r}'
    _check_frozen_run(where, frozen_source, config)
    try:
      train.graft({'params': {'draw': expected_core['params']}}, frozen[frozen_name],
                  ('params/draw',), source_name=where)
    except ValueError as error:
      raise ValueError(f'{where} is not a DRAW model of this phase\'s model fields '
                       f'{dict(sizes)}: {error}') from error
    trace = core.apply({'params': frozen[frozen_name]['params']['draw']}, images)
    return jax.tree.map(jax.lax.stop_gradient, trace)

  def teacher_read_params(frozen, images):
    return frozen_trace(frozen, images).read_params  # [B, T, 5]

  def classification(params, batch):
    logits, trace = model.apply(params, batch['image'])  # [B, 10]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])  # [B]
    error = (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32)  # [B]
    return nll, error, trace

  def reconstruction(params, batch):
    logits, trace = model.apply(params, batch['image'])  # [B, H, W, C]
    bce = optax.sigmoid_binary_cross_entropy(logits, batch['image']).sum((1, 2, 3))  # [B]
    return bce, trace

  def heuristic(params, batch):
    _, trace = model.apply(params, batch['image'])
    centers = glimpse.draw_center(trace.read_params, height=height, width=width)  # [B, T, 2]
    per_example = jax.vmap(heuristic_loss, in_axes=(0, 0, 0, None))(
        batch['center'], centers, trace.decoder, config.loss.l1_weight)  # [B]
    distance = jnp.linalg.norm(centers - batch['center'][:, None], axis=-1).mean(-1)  # [B]
    return per_example, distance, trace

  def loss(params, batch, rng, step, frozen=None):
    del rng
    if objective == 'reconstruction':
      bce, trace = reconstruction(params, batch)
      return with_in_image_penalty(bce.mean(), {'bce': bce.mean(),
                                                **means(stats(trace.read_params))},
                                   trace.read_params)
    if objective == 'heuristic':
      per_example, distance, trace = heuristic(params, batch)
      return with_in_image_penalty(
          per_example.mean(), {'heuristic': per_example.mean(), 'distance': distance.mean(),
                               **means(stats(trace.read_params))}, trace.read_params)
    nll, error, trace = classification(params, batch)
    metrics = {'nll': nll.mean(), 'error': error.mean(), **means(stats(trace.read_params))}
    if objective == 'classification':
      return with_in_image_penalty(nll.mean(), metrics, trace.read_params)
    teacher = teacher_read_params(frozen, batch['image'])  # [B, T, 5]
    mimic = jax.vmap(mimic_loss)(trace.read_params, teacher).mean()
    weight = config.loss.mimic_scale * mimic_weight(step, config.loss.mimic_alpha,
                                                    config.loss.mimic_rate)
    return with_in_image_penalty(nll.mean() + weight * mimic,
                                 {**metrics, 'mimic': mimic, 'mimic_weight': weight},
                                 trace.read_params)

  def evaluate(params, batch, rng, frozen=None):
    del rng
    if objective == 'reconstruction':
      bce, trace = reconstruction(params, batch)
      return {'bce': bce, **stats(trace.read_params)}
    if objective == 'heuristic':
      per_example, distance, trace = heuristic(params, batch)
      return {'heuristic': per_example, 'distance': distance, **stats(trace.read_params)}
    nll, error, trace = classification(params, batch)
    values = {'error': error, 'nll': nll, **stats(trace.read_params)}
    if frozen is not None:
      teacher = teacher_read_params(frozen, batch['image'])
      values['mimic'] = jax.vmap(mimic_loss)(trace.read_params, teacher)
    return values

  if config.kind == 'generate':
    def generate(batch, rng, frozen):
      del rng
      trace = frozen_trace(frozen, batch['image'])
      return {'glimpses': trace.glimpses, 'read_params': trace.read_params}  # [B, T, ...]
    return train.Experiment(generate=generate, frozen_models=(frozen_name,))
  if objective == 'tester':
    return _tester(config, frozen_trace, stats)

  def plots(params, batch, rng, workdir):
    del rng
    images = jnp.asarray(batch['image'][:8])
    out, trace = model.apply(params, images)
    predictions = jnp.argmax(out, -1) if HEAD_OF[objective] == 'classifier' else None
    plot_read_windows(images, trace.read_params, n=config.model.read_size,
                      labels=batch['label'][:8], predictions=predictions,
                      path=f'{workdir}/read_windows.png')

  def predict(params, images, rng, frozen=None):
    del rng, frozen
    out, trace = model.apply(params, images)
    if HEAD_OF[objective] == 'classifier':
      values = {'probabilities': jax.nn.softmax(out, -1)}  # [B, K]
    else:
      values = {'reconstruction': jax.nn.sigmoid(out)}  # [B, H, W, C]
    return {**values, 'reads': trace.read_params,  # [B, T, 5]
            'locations': glimpse.draw_center(trace.read_params, height=height, width=width)}

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots,
                          frozen_models=tuple(config.frozen.keys()), predict=predict)


def _tester(config: ml_collections.ConfigDict, frozen_trace, stats) -> train.Experiment:
  """Section 5: an LSTM without attention classifies the stored `[r_t, g_t]` of a frozen model
  (training batches joined with them by index; test images read by the frozen model in the step).
  Its evaluation also reports `stats` of the frozen model's reads of the test images."""
  model = SequenceClassifier(config.model.tester_hidden, config.model.classifier_hidden,
                             data.num_classes(config.dataset))
  channels = data.image_shape(config.dataset)[2]
  features = config.model.read_size ** 2 * channels + 5

  def sequences(glimpses, read_params):  # [B, T, n, n, C], [B, T, 5] -> [B, T, n*n*C + 5]
    flat = glimpses.reshape(*glimpses.shape[:2], -1)
    return jnp.concatenate([flat, read_params], axis=-1)

  def init(rng, batch):
    del batch
    variables = model.init(rng, jnp.zeros((1, config.model.glimpses, features)))
    return with_forget_bias(variables, config.model.forget_bias)

  def classify(params, inputs, labels):
    logits = model.apply(params, inputs)  # [B, 10]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # [B]
    return nll, (jnp.argmax(logits, -1) != labels).astype(jnp.float32)

  def loss(params, batch, rng, step, frozen):
    del rng, step, frozen
    nll, error = classify(params, sequences(batch['glimpses'], batch['read_params']),
                          batch['label'])
    stored = batch['stored'].astype(jnp.float32)  # [B] 0 for examples without stored reads
    count = jnp.maximum(stored.sum(), 1.0)
    return (nll * stored).sum() / count, {'nll': (nll * stored).sum() / count,
                                          'error': (error * stored).sum() / count}

  def evaluate(params, batch, rng, frozen):
    del rng
    trace = frozen_trace(frozen, batch['image'])
    nll, error = classify(params, sequences(trace.glimpses, trace.read_params), batch['label'])
    return {'error': error, 'nll': nll, **stats(trace.read_params)}

  def predict(params, images, rng, frozen):
    del rng
    trace = frozen_trace(frozen, images)  # the frozen model's reads
    height, width, _ = images.shape[1:]
    logits = model.apply(params, sequences(trace.glimpses, trace.read_params))  # [B, K]
    return {'probabilities': jax.nn.softmax(logits, -1), 'reads': trace.read_params,  # [B, T, 5]
            'locations': glimpse.draw_center(trace.read_params, height=height, width=width)}

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, frozen_models=('model',),
                          predict=predict)
