"""RAM against two CNN baselines on variant MNIST datasets (Wu, Xu & Lee, "Investigating Attention
Mechanisms for Variant MNIST Datasets"): both of their tables.

Usage (the default variant is `ram_cluttered_g4`):
  make experiment NAME=variant_mnist CONFIG=ram_smoke     # RAM, 4 glimpses, 30 epochs of the
                                                          # cluttered canvases: 79.0% test accuracy
                                                          # (Monte-Carlo; greedy 75.7%), 46 s
  make experiment NAME=variant_mnist CONFIG=cnn_smoke     # simple CNN, 200 updates of 32: 64.7%,
                                                          # 26 s
  make experiment NAME=variant_mnist CONFIG=attention_cnn_smoke  # self-attention CNN, the same:
                                                                 # 51.8%, 32 s
  make experiment NAME=variant_mnist CONFIG=<row> WORKDIR=runs/variant_mnist/<row>-seed0
  make experiment NAME=variant_mnist CONFIG=<RAM row>_paper  # the paper's budget, for GPU/TPU
Smoke numbers: seed 0, whole commands on 2 CPU cores shared with another training run; tested.
Every row over 3 seeds, beside the paper's, with the reading of the numbers: results/variant_mnist.md.

Rows (`config.paper`: table, row, accuracy, test_error), with the paper's test accuracy, the
parameters and the MFLOPs of one pass on one image (see Cost):
  Table 1, RAM                                                   paper    params     MFLOP
  ram_cluttered_g4          cluttered, 4 glimpses of 12x12 x 3,  92.7%    256,269    2.03
                            Adam 3e-4
  ram_cluttered_g6          6 glimpses                            91.9%    256,269    3.04
  ram_cluttered_g8          8 glimpses                            93.5%    256,269    4.05
  ram_cluttered_g6_sgd1e-2  6 glimpses, SGD 1e-2 (PyTorch RAM)    91.0%    256,269    3.04
  ram_cluttered_g6_sgd1e-3  6 glimpses, SGD 1e-3 (PyTorch RAM)    91.9%    256,269    3.04
  ram_fashion_8x8           Fashion, 6 glimpses of 8x8 x 1        85.6%    209,165    2.47
  ram_fashion_7x7x3         Fashion, 6 glimpses of 7x7 x 3        86.7%    219,789    2.60
  Table 2, CNNs (Adam 1e-3; layer norm and dropout 0.5)
  cnn_cluttered             simple CNN (`nets.cnn.SimpleCNN`)     94.40%   1,829,718  10.60
  cnn_fashion                                                     92.61%     902,742   5.20
  attention_cnn_cluttered   self-attention CNN, weighted-sum      95.10%     469,943  21.13
  attention_cnn_fashion     head (`nets.cnn.SelfAttentionCNN`)    92.05%     469,943  12.47
The paper's 1.83M and 0.47M parameters are the CNNs' on 40x40 canvases. `ABLATIONS` (not the
paper's rows) step from our earlier cluttered CNN rows (wedge placement, no normalisation layer,
the flattened head) to these one setting at a time: `cnn_cluttered_wedge_plain`, `_plain`,
`_dropout`, `_wedge`; `attention_cnn_cluttered_wedge_plain`, `_plain`, `_dropout`, `_weighted`,
`_wedge`. The report gives the change of accuracy of each step. A run that changes a
field defining its row (dataset, model, glimpses, optimizer, rate) must clear the row,
`--config.paper.row=""`, so the report keeps it apart from the paper's number.

Data. Cluttered: the paper's sizes and wording match the widely used 40x40 cluttered set made by
Sonderby's `create_mnist_sequence.py`: 40x40 canvases with 5 pieces of 5x5 clutter and fixed
splits of 10,000 training, 1,000 validation and 1,000 test canvases, the digit placed as that
script places one digit (`dataset.placement='sonderby'`: column uniform in 0-11, row min(uniform
0-39, 12), so 70% of digits on row 12; pieces overwrite one another, the digit is added and the
sum clipped; `data.canvas.sonderby_top_left`). `cluttered_wedge` (placement 'slope') is our
earlier reading of the paper's text, a +-45 degree wedge through the center. The placement field
builds fixed splits only: canvases drawn on the fly (`train_on_the_fly`) keep the wedge. Fashion:
the 28x28 Fashion-MNIST images; the paper describes no validation split for it, so the last 1,000
of the 60,000 training images are held out (59,000 train, 1,000 validation, the 10,000 test). An
epoch is 78 updates of 128 (cluttered) or 461 (Fashion); `num_steps`, `eval_every` and
`checkpoint_every` are counted in epochs of `batch_size`, so they follow a `--config.batch_size`
override (one set explicitly keeps its value). `--config.seed` changes parameters,
sampling and the order of examples, never the canvases (one dataset, as in the paper).

RAM (Table 1): its hidden sizes 128 (h_g, h_l) are the what and where pathways, 256 the glimpse
feature and the ReLU RNN core; a linear Gaussian locator of std 0.17; glimpses of 1 or 3 scales,
each twice the last; batch 128 (chosen here); a constant learning rate. The SGD rows follow the
2018 PyTorch RAM (kevinzakka/recurrent-visual-attention) whose settings the paper copies
(`Row.protocol='torch_ram'`): SGD with momentum 0.5, batch 32, 200 epochs (62,600 updates), the
rate divided by 10 when the validation loss (the greedy path's NLL) has not improved for 50
epochs, inputs standardised with its MNIST mean and std (`model.standardise`). The paper's accuracy averages class log-probabilities over 10 sampled glimpse
paths, which is the loop's `error_mc` (`eval.mc_samples=10`), so that is the headline
(results.json `test_error_mc`; `test_error` follows the greedy path along the mean locations).
After every epoch the loop evaluates the validation and test splits (on Fashion, the first 1,000
test images: `eval_examples_during_training`) and stops when validation accuracy has not
improved for 50 epochs. CPU budgets: at most 150 epochs of cluttered canvases (11,700 updates) or
100 of Fashion (46,100 updates of 128, 5.9M images, against the paper's protocol's ~95-330K
updates of 32, 3.0-10.6M images, from its 50-epoch patience to its 200 epochs); `_paper`: at
most 1,000 epochs, so that early stopping ends the run, as in the paper. On one CPU core a 6-glimpse cluttered run takes ~7 minutes (62 updates/s, plus ~1.5 s
per evaluation of both splits over 11 paths), a Fashion run ~10 (9-13 measured, 100 epochs).

CNNs (Table 2): Adam 1e-3, batch 128 (chosen here), the rate halved when validation accuracy has
not improved for an epoch (`optimizer.plateau`; a patience chosen here: with early stopping at 2
epochs a longer one could never act; an equal error is a tie, `min_delta`, and the evaluation
that stops the run reduces nothing), early stopping after 2 epochs without improvement, at most
100 epochs. The paper's "normalisation layer" is read as layer norm plus dropout 0.5 (our
reading; `model.layer_norm`, `model.dropout`). The self-attention CNN classifies by the weighted
sum of its tokens (`model.head='weighted_sum'`, hidden 740: the paper's 0.47M parameters): with
the flattened head, layer norm and Adam at 1e-3 silence its 32 hidden ReLUs within the first
updates (`SelfAttentionCNN.layer_norm`). The CNNs ran at ~400 images/s on
cluttered canvases in the smoke runs (shared cores).

Cost. The plots hook writes `cost.json` from the config the run trained with (overrides
included): `flops_per_pass` (2 FLOPs per multiply-add of the matrix products and convolutions of
one forward pass on one image: `nets.ram_flops_per_image`, `nets.flops_per_image`),
`passes_per_prediction` (10 for RAM's Monte-Carlo headline, 1 for a CNN), `flops_per_prediction`
and `inputs_per_pass` (values fed to the network: glimpses x scales x size^2 for RAM, its
coarser scales area-averaged from larger patches; the whole image for a CNN). RAM's 4-glimpse pass costs a fifth of the simple CNN's on cluttered canvases, but its
10-path prediction twice as much. `num_params` is in results.json.

Pictures (plots hook, on the first test images): `glimpse_sequence.png` (RAM: one column per
glimpse, in order, with the retina's boxes, as the paper's Figure 4), `glimpse_paths.png` (all
glimpses on one image), `attention_maps.png` (self-attention CNN: the attention each block
receives, per head and averaged), and the loop's `learning_curve.png`.

Other choices made here: the REINFORCE and baseline terms weigh 1, as in RAM (PyTorch
reimplementations of RAM often weigh REINFORCE by 0.01: `--config.loss.reinforce_weight=0.01`),
and REINFORCE is averaged over the glimpses (`loss.reinforce_time_average`, RAM's default);
the final model is reported, not the best one (the loop keeps no best checkpoint; the report adds
the test accuracy at the evaluation of best validation accuracy).

The 3-seed sweep of both tables, the CNN ablations and its report (results/variant_mnist.md):
  for v in ram_cluttered_g4 ram_cluttered_g6 ram_cluttered_g8 ram_cluttered_g6_sgd1e-2 \
           ram_cluttered_g6_sgd1e-3 ram_fashion_8x8 ram_fashion_7x7x3 cnn_cluttered \
           cnn_fashion attention_cnn_cluttered attention_cnn_fashion \
           cnn_cluttered_wedge_plain cnn_cluttered_plain cnn_cluttered_dropout \
           cnn_cluttered_wedge attention_cnn_cluttered_wedge_plain \
           attention_cnn_cluttered_plain attention_cnn_cluttered_dropout \
           attention_cnn_cluttered_weighted attention_cnn_cluttered_wedge; do
    for s in 0 1 2; do
      make experiment NAME=variant_mnist CONFIG=$v WORKDIR=runs/variant_mnist/$v-seed$s \
        ARGS="--config.seed=$s"
    done
  done
  .venv/bin/python -m glimpse_jax.report_variant_mnist runs/variant_mnist/* \
    --out results/variant_mnist.md
"""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import optax
from ml_collections import config_dict

from glimpse_jax import data, diagnostics, papers, train
from glimpse_jax.plots.attention_maps import plot_attention_maps
from glimpse_jax.data import canvas
from glimpse_jax.data.config import index_range
from glimpse_jax.plots.glimpse_paths import plot_glimpse_paths, plot_glimpse_sequence
from glimpse_jax.nets import (RecurrentAttentionModel, RetinaSpec, SelfAttentionCNN, SimpleCNN,
                              attention_weights, evaluate_glimpse_paths, flops_per_image,
                              glimpse_predictions, ram_flops_per_image, ram_noise)
from glimpse_jax.nets.cnn import ConvTrunk, cnn_name
from glimpse_jax.nets.settings import check_positive_ints, is_positive_int
from glimpse_jax.objectives import loss_metrics, rollout_loss

COST_FILE = 'cost.json'  # written by the plots hook: FLOPs and input values per image
MODELS = ('ram', 'simple_cnn', 'attention_cnn')
HEADS = ('flatten', 'weighted_sum')  # the self-attention CNN's classifier heads
PROTOCOLS = ('ours', 'torch_ram')  # how a RAM row trains (see module doc)
# The 2018 PyTorch RAM's input standardisation (its MNIST mean and std), for `model.standardise`.
INPUT_MEAN, INPUT_STD = 0.1307, 0.3081

# The paper's two datasets. Cluttered: 40x40 canvases, 5 pieces of 5x5 clutter, the digit placed
# as Sonderby's script places one digit (`dataset.placement='sonderby'`), fixed splits of
# 10,000 / 1,000 / 1,000 canvases; `cluttered_wedge` places it in our earlier wedge reading of
# the paper's text (`cluttered_slope`'s own placement). Fashion: the 28x28 images; the paper
# describes no validation split for it, so the last 1,000 training images are held out (59,000
# train, 1,000 validation, the 10,000 test images).
_CLUTTERED = dict(name='cluttered_slope', source='mnist', canvas_size=40, num_clutter=5,
                  clutter_size=5, train_on_the_fly=False, train_examples=11_000,
                  validation_examples=1_000, eval_examples=1_000)
DATASETS = {
    'cluttered': dict(_CLUTTERED, placement='sonderby'),
    'cluttered_wedge': dict(_CLUTTERED, placement='slope'),
    'fashion': dict(name='mnist', source='fashion_mnist', canvas_size=28,
                    validation_examples=1_000),
}


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of the paper's tables: what it trains and the test accuracy it reports."""

  table: int
  label: str  # the paper's row, as results.json and the report name it
  dataset: str  # a key of DATASETS
  model: str  # one of MODELS
  accuracy: float
  glimpses: tuple[int, int, int] = (0, 0, 0)  # RAM: (num_glimpses, glimpse_size, num_scales)
  optimizer: tuple[str, float] = ('adam', 3e-4)
  protocol: str = 'ours'  # one of PROTOCOLS
  options: tuple[tuple[str, object], ...] = ()  # CNN: model fields over `_model_config`'s


# The paper's CNNs as read here: the "normalisation layer" as layer norm plus dropout, and the
# self-attention CNN's weighted-sum head at the paper's 0.47M parameters (`nets/cnn.py`).
_SIMPLE = (('layer_norm', True), ('dropout', 0.5))
_ATTENTION = (('head', 'weighted_sum'), ('hidden', 740), ('layer_norm', True), ('dropout', 0.5))
_DATASET_LABELS = {'cluttered': 'cluttered', 'cluttered_wedge': 'cluttered, wedge placement',
                   'fashion': 'fashion'}


def _ram(dataset, glimpses, accuracy, optimizer=('adam', 3e-4), protocol='ours'):
  count, size, scales = glimpses
  name, rate = optimizer
  mantissa, exponent = f'{rate:e}'.split('e')
  label = (f'RAM, {dataset}, {count} glimpses of {size}x{size} x {scales} '
           f'scale{"s" if scales > 1 else ""}, {"Adam" if name == "adam" else "SGD"} '
           f'{float(mantissa):g}e{int(exponent)}')
  if protocol == 'torch_ram':
    label += ', momentum 0.5, batch 32, standardised'
  return Row(1, label, dataset, 'ram', accuracy, glimpses, optimizer, protocol)


def cnn_label(model: str, dataset: str, options) -> str:
  """A CNN's method name (as the report names it) from its model fields over the defaults."""
  return cnn_name({'name': model, 'hidden': SelfAttentionCNN.hidden, **dict(options)}, dataset)


def _cnn(dataset, model, accuracy, options=None):
  options = (_SIMPLE if model == 'simple_cnn' else _ATTENTION) if options is None else options
  return Row(2, cnn_label(model, _DATASET_LABELS[dataset], options), dataset, model, accuracy,
             optimizer=('adam', 1e-3), options=tuple(options))


# row variant -> how it trains; its table and accuracy are the paper's (`papers.VARIANT_MNIST`)
_ROW_SETTINGS = {
    'ram_cluttered_g4': functools.partial(_ram, 'cluttered', (4, 12, 3)),
    'ram_cluttered_g6': functools.partial(_ram, 'cluttered', (6, 12, 3)),
    'ram_cluttered_g8': functools.partial(_ram, 'cluttered', (8, 12, 3)),
    'ram_cluttered_g6_sgd1e-2': functools.partial(_ram, 'cluttered', (6, 12, 3),
                                                  optimizer=('momentum', 1e-2),
                                                  protocol='torch_ram'),
    'ram_cluttered_g6_sgd1e-3': functools.partial(_ram, 'cluttered', (6, 12, 3),
                                                  optimizer=('momentum', 1e-3),
                                                  protocol='torch_ram'),
    'ram_fashion_8x8': functools.partial(_ram, 'fashion', (6, 8, 1)),
    'ram_fashion_7x7x3': functools.partial(_ram, 'fashion', (6, 7, 3)),
    'cnn_fashion': functools.partial(_cnn, 'fashion', 'simple_cnn'),
    'cnn_cluttered': functools.partial(_cnn, 'cluttered', 'simple_cnn'),
    'attention_cnn_fashion': functools.partial(_cnn, 'fashion', 'attention_cnn'),
    'attention_cnn_cluttered': functools.partial(_cnn, 'cluttered', 'attention_cnn'),
}
ROWS = {name: settings(accuracy=papers.VARIANT_MNIST[name].accuracy)
        for name, settings in _ROW_SETTINGS.items()}
# Steps from our earlier cluttered CNN rows (wedge placement, no normalisation layer, the
# attention CNN's flattened head) to the paper rows above, one change at a time, so the report can
# say what each closes. Not the paper's rows.
@dataclasses.dataclass(frozen=True)
class Ablation:
  """A step towards a paper row: the row, the dataset (a key of DATASETS) and model fields."""

  row: str
  dataset: str
  options: tuple[tuple[str, object], ...]


_PLAIN_ATTENTION = (('head', 'flatten'), ('hidden', SelfAttentionCNN.hidden),
                    ('layer_norm', False), ('dropout', 0.0))
ABLATIONS = {
    'cnn_cluttered_wedge_plain': Ablation('cnn_cluttered', 'cluttered_wedge',
                                          (('layer_norm', False), ('dropout', 0.0))),
    'cnn_cluttered_plain': Ablation('cnn_cluttered', 'cluttered',
                                    (('layer_norm', False), ('dropout', 0.0))),
    'cnn_cluttered_dropout': Ablation('cnn_cluttered', 'cluttered',
                                      (('layer_norm', False), ('dropout', 0.5))),
    'cnn_cluttered_wedge': Ablation('cnn_cluttered', 'cluttered_wedge', _SIMPLE),
    'attention_cnn_cluttered_wedge_plain': Ablation('attention_cnn_cluttered', 'cluttered_wedge',
                                                    _PLAIN_ATTENTION),
    'attention_cnn_cluttered_plain': Ablation('attention_cnn_cluttered', 'cluttered',
                                              _PLAIN_ATTENTION),
    'attention_cnn_cluttered_dropout': Ablation('attention_cnn_cluttered', 'cluttered',
                                                (*_PLAIN_ATTENTION[:3], ('dropout', 0.5))),
    'attention_cnn_cluttered_weighted': Ablation('attention_cnn_cluttered', 'cluttered',
                                                 (*_ATTENTION[:2], ('layer_norm', False),
                                                  ('dropout', 0.5))),
    'attention_cnn_cluttered_wedge': Ablation('attention_cnn_cluttered', 'cluttered_wedge',
                                              _ATTENTION),
}


@dataclasses.dataclass(frozen=True)
class Smoke:
  """A smoke variant: the row it shortens and its top-level config fields."""

  row: str
  fields: dict[str, int]


# The CNNs' batches of 32 see 6,400 canvases in 200 updates, as fast as 50 batches of 128 on a CPU.
SMOKES = {
    'ram_smoke': Smoke('ram_cluttered_g4', dict(num_steps=2_340, eval_every=1_170, batch_size=128)),
    'cnn_smoke': Smoke('cnn_cluttered', dict(num_steps=200, eval_every=100, batch_size=32)),
    'attention_cnn_smoke': Smoke('attention_cnn_cluttered',
                                 dict(num_steps=200, eval_every=100, batch_size=32)),
}
_RAM_ROWS = tuple(name for name, row in ROWS.items() if row.model == 'ram')
VARIANTS = (*SMOKES, *ROWS, *(f'{name}_paper' for name in _RAM_ROWS), *ABLATIONS)
# Maximum epochs: RAM within a CPU budget (`_paper`: enough for its 50-epoch early stopping to end
# the run, as in the paper; the PyTorch RAM protocol's own 200 either way); the CNNs stop after 2
# epochs without improvement long before theirs.
_RAM_CPU_EPOCHS = {'cluttered': 150, 'fashion': 100}
_RAM_PAPER_EPOCHS = 1_000
_TORCH_RAM_EPOCHS = 200
_CNN_EPOCHS = 100
_PATIENCE = {'ram': 50, 'simple_cnn': 2, 'attention_cnn': 2}  # epochs, on validation accuracy


def epoch_steps(dataset: ml_collections.ConfigDict, batch_size: int) -> int:
  """Updates in one pass over the training examples (the train split less its validation tail),
  rounded half up."""
  start, stop = index_range(dataset, 'train')
  return max(1, (stop - start + batch_size // 2) // batch_size)


def _epoch_ref(config: ml_collections.ConfigDict) -> config_dict.FieldReference:
  """`epoch_steps` as a reference to `config.batch_size`: the fields made from it follow a
  `--config.batch_size` override (one set explicitly keeps its own value)."""
  start, stop = index_range(config.dataset, 'train')
  batch = config.get_ref('batch_size')
  return (stop - start + batch // 2) // batch


def _model_config(row: Row, options=None) -> ml_collections.ConfigDict:
  if row.model == 'ram':
    count, size, scales = row.glimpses
    # h_g and h_l of 128 units (the what and where pathways), a 256-unit glimpse feature and core.
    return ml_collections.ConfigDict(dict(
        name='ram', num_glimpses=count, glimpse_size=size, num_scales=scales, scale_factor=2,
        what_features=128, where_features=128, glimpse_features=256, core_features=256,
        location_std=0.17,
        # True: REINFORCE's gradient reaches the core (the rows as measured so far); the 2018
        # PyTorch RAM the paper's settings follow detaches the locator's input (False).
        policy_gradient_to_core=True,
        # (image - INPUT_MEAN) / INPUT_STD into the network, as the PyTorch RAM's loader.
        standardise=row.protocol == 'torch_ram'))
  if row.model == 'simple_cnn':
    model = dict(name='simple_cnn', hidden=SimpleCNN.hidden, layer_norm=False, dropout=0.0)
  else:
    # The flattened head without the layer norm: with it Adam at the paper's 1e-3 silences the
    # hidden ReLUs at once and accuracy stays at chance (see `SelfAttentionCNN.layer_norm`).
    model = dict(name='attention_cnn', block_size=SelfAttentionCNN.block_size,
                 num_heads=SelfAttentionCNN.num_heads, hidden=SelfAttentionCNN.hidden,
                 layer_norm=False, dropout=0.0, head='flatten')
  model.update(row.options if options is None else options)
  return ml_collections.ConfigDict(model)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of variant `arg` (one of VARIANTS; default `ram_cluttered_g4`); see module doc."""
  variant = train.pick_variant(arg or 'ram_cluttered_g4', VARIANTS)
  name = variant.removesuffix('_paper')
  smoke = SMOKES.get(name)
  ablation = ABLATIONS.get(name)
  row = ROWS[smoke.row if smoke else ablation.row if ablation else name]

  config = train.base_config()
  config.experiment = 'variant_mnist'
  config.dataset.placement = config_dict.placeholder(str)  # None: the dataset name's own
  config.dataset.update(DATASETS[ablation.dataset if ablation else row.dataset])
  config.batch_size = 32 if row.protocol == 'torch_ram' else 128
  if row.model != 'ram':
    epochs = _CNN_EPOCHS
  elif row.protocol == 'torch_ram':
    epochs = _TORCH_RAM_EPOCHS
  else:
    epochs = _RAM_PAPER_EPOCHS if variant.endswith('_paper') else _RAM_CPU_EPOCHS[row.dataset]
  # Counted in epochs: they follow a `--config.batch_size` override.
  config.num_steps = _epoch_ref(config) * epochs
  config.eval_every = _epoch_ref(config)
  config.checkpoint_every = _epoch_ref(config) * 10
  epoch = epoch_steps(config.dataset, config.batch_size)
  config.log_every = max(1, min(100, epoch, epoch * epochs // 10))
  if smoke:
    config.update(smoke.fields)
    config.checkpoint_every = 0
    config.log_every = max(1, min(100, config.eval_every, config.num_steps // 10))
  config.eval.splits = ('validation', 'test')
  opt_name, rate = row.optimizer
  config.optimizer.update(name=opt_name, learning_rate=rate, schedule='constant')
  config.model = _model_config(row, ablation.options if ablation else None)
  if row.protocol == 'torch_ram':
    # The 2018 PyTorch RAM: SGD with momentum 0.5, batch 32, 200 epochs, the rate divided by 10
    # when the validation loss (here the greedy path's NLL) has not improved for the patience.
    config.optimizer.momentum = 0.5
    config.optimizer.plateau.update(patience=_PATIENCE['ram'], factor=0.1, split='validation',
                                    metric='nll')
  if row.model == 'ram':
    # The paper's accuracy averages class log-probabilities over 10 sampled glimpse paths.
    config.headline = 'error_mc'
    config.eval.mc_samples = 10
    # REINFORCE averaged over the glimpses, RAM's default (experiments/ram.py): summed, its push
    # on the core grows with T and parks the location means at the edges. The PyTorch RAM sums
    # (False), with a detached locator (`model.policy_gradient_to_core=False`).
    config.loss = ml_collections.ConfigDict(dict(reinforce_weight=1.0, baseline_weight=1.0,
                                                 reinforce_time_average=True))
  else:
    config.headline = 'error'
    config.loss = ml_collections.ConfigDict()
    # Halve the rate when validation accuracy has not improved for an epoch (with early stopping
    # at 2 epochs a longer patience could never act); an equal error is a tie, not a plateau.
    config.optimizer.plateau.update(patience=1, factor=0.5, split='validation', min_delta=5e-4)
  config.early_stopping.update(patience=0 if smoke else _PATIENCE[row.model],
                               split='validation')
  # The paper's number for this row travels in results.json (read by both report commands).
  config.paper = ml_collections.ConfigDict(dict(
      table=0, row='', accuracy=config_dict.placeholder(float),
      test_error=config_dict.placeholder(float)))
  if smoke:
    # Short runs learn faster with a decaying step (RAM's also larger, as RAM's own smoke).
    config.optimizer.update(learning_rate=2e-3 if row.model == 'ram' else 1e-3,
                            schedule='cosine')
  elif not ablation:
    config.paper.update(table=row.table, row=row.label, accuracy=row.accuracy,
                        test_error=round(1.0 - row.accuracy, 6))
  config.lock()
  return config


def _row_fields(row: Row) -> dict:
  """The config fields that make a run the paper's `row`."""
  fields = {f'dataset.{k}': v for k, v in DATASETS[row.dataset].items()}
  fields.update({'model.name': row.model, 'optimizer.name': row.optimizer[0],
                 'optimizer.learning_rate': row.optimizer[1]})
  fields.update({f'model.{k}': v for k, v in row.options})
  if row.model == 'ram':
    fields.update(zip(('model.num_glimpses', 'model.glimpse_size', 'model.num_scales'),
                      row.glimpses))
    fields['model.standardise'] = row.protocol == 'torch_ram'
  if row.protocol == 'torch_ram':
    fields.update({'batch_size': 32, 'optimizer.momentum': 0.5})
  return fields


def _check_paper_row(config: ml_collections.ConfigDict) -> None:
  if not config.paper.row:
    return
  rows = {row.label: row for row in ROWS.values()}
  if config.paper.row not in rows:
    raise ValueError(f'paper.row must be one of {sorted(rows)} or "", got {config.paper.row!r}')
  for field, expected in _row_fields(rows[config.paper.row]).items():
    value = config
    for part in field.split('.'):
      value = value[part]
    if value != expected:
      raise ValueError(f'paper.row {config.paper.row!r} trains with {field}={expected!r}, got '
                       f'{value!r}; pick that row\'s variant or set --config.paper.row=""')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of this experiment that cannot work."""
  m = config.model
  if m.name not in MODELS:
    raise ValueError(f'model.name must be one of {list(MODELS)}, got {m.name!r}')
  placement = config.dataset.get('placement')
  if placement is not None:
    if placement not in canvas.PLACEMENTS or config.dataset.name != 'cluttered_slope':
      raise ValueError(f'dataset.placement must be None or, for dataset.name=\'cluttered_slope\','
                       f' one of {list(canvas.PLACEMENTS)}, got {placement!r}')
    if placement != 'slope' and config.dataset.train_on_the_fly:
      raise ValueError(f'dataset.placement={placement!r} places the fixed splits\' canvases '
                       'only (canvases drawn on the fly keep the wedge): set '
                       'dataset.train_on_the_fly=False or dataset.placement=\'slope\'')
  if m.name == 'ram':
    height, width, _ = data.image_shape(config.dataset)
    check_positive_ints('model', m, ('num_glimpses', 'num_scales', 'scale_factor', 'what_features',
                                     'where_features', 'glimpse_features', 'core_features'))
    if not is_positive_int(m.glimpse_size) or m.glimpse_size > min(height, width):
      raise ValueError(f'model.glimpse_size must be an integer in [1, {min(height, width)}] for '
                       f'a {height}x{width} canvas, got {m.glimpse_size!r}')
    if not m.location_std > 0:
      raise ValueError(f'model.location_std must be > 0, got {m.location_std}')
    for name in ('reinforce_weight', 'baseline_weight'):
      if not config.loss[name] >= 0:
        raise ValueError(f'loss.{name} must be >= 0, got {config.loss[name]}')
    if not isinstance(m.get('standardise', False), bool):
      raise ValueError(f'model.standardise must be True or False, got {m.standardise!r}')
    headlines = ('error', 'error_mc')
  else:
    names = ('hidden',) if m.name == 'simple_cnn' else ('hidden', 'block_size', 'num_heads')
    check_positive_ints('model', m, names)
    if not isinstance(m.layer_norm, bool):
      raise ValueError(f'model.layer_norm must be True or False, got {m.layer_norm!r}')
    if isinstance(m.dropout, bool) or not 0 <= m.dropout < 1:
      raise ValueError(f'model.dropout must be a rate in [0, 1), got {m.dropout!r}')
    if m.name == 'attention_cnn' and m.head not in HEADS:
      raise ValueError(f'model.head must be one of {list(HEADS)}, got {m.head!r}')
    headlines = ('error',)
  if config.headline not in headlines:
    raise ValueError(f'headline must be one of {list(headlines)} for model.name={m.name!r}, got '
                     f'{config.headline!r}')
  _check_paper_row(config)


def make_model(config: ml_collections.ConfigDict):
  """The Flax module of `config.model.name`."""
  m, classes = config.model, data.num_classes(config.dataset)
  if m.name == 'ram':
    return RecurrentAttentionModel(
        num_classes=classes, retina=RetinaSpec(m.glimpse_size, m.num_scales, m.scale_factor),
        core='rnn', core_features=m.core_features, glimpse_features=m.glimpse_features,
        what_features=m.what_features, where_features=m.where_features, locator='linear',
        location_std=m.location_std, fused=True,
        policy_gradient_to_core=m.policy_gradient_to_core)
  if m.name == 'simple_cnn':
    return SimpleCNN(num_classes=classes, hidden=m.hidden, layer_norm=m.get('layer_norm', False),
                     dropout=m.get('dropout', 0.0))
  return SelfAttentionCNN(num_classes=classes, block_size=m.block_size, num_heads=m.num_heads,
                          hidden=m.hidden, layer_norm=m.layer_norm, dropout=m.get('dropout', 0.0),
                          head=m.get('head', 'flatten'))


def network_input(config: ml_collections.ConfigDict, images: jax.Array) -> jax.Array:
  """The images as the network takes them: standardised when `model.standardise`."""
  if config.model.get('standardise', False):
    return (images - INPUT_MEAN) / INPUT_STD
  return images


def cost(config: ml_collections.ConfigDict) -> dict:
  """FLOPs (2 per multiply-add of the matrix products and convolutions) and input values fed to
  the network, per image: one pass, and one prediction as the headline evaluates it (RAM's Monte-Carlo
  prediction takes eval.mc_samples passes)."""
  model, shape = make_model(config), data.image_shape(config.dataset)
  if config.model.name == 'ram':
    m = config.model
    flops = ram_flops_per_image(model, shape, m.num_glimpses)
    inputs = m.num_glimpses * m.num_scales * m.glimpse_size**2 * shape[2]
  else:
    flops, inputs = flops_per_image(model, shape), shape[0] * shape[1] * shape[2]
  passes = config.eval.mc_samples if config.headline == 'error_mc' else 1
  return {'model': config.model.name, 'flops_per_pass': int(flops), 'inputs_per_pass': inputs,
          'passes_per_prediction': passes, 'flops_per_prediction': int(flops) * passes}


def make_experiment(config: ml_collections.ConfigDict) -> train.Experiment:
  """RAM (REINFORCE, greedy and Monte-Carlo evaluation) or a CNN (cross-entropy), with the plots
  of `plots` and the cost file `COST_FILE`."""
  validate(config)
  experiment = _ram(config) if config.model.name == 'ram' else _cnn(config)

  def plots(params, batch, rng, workdir):
    with open(os.path.join(workdir, COST_FILE), 'w') as f:
      json.dump(cost(config), f, indent=1)
    experiment.plots(params, batch, rng, workdir)

  return dataclasses.replace(experiment, plots=plots)


def _ram(config: ml_collections.ConfigDict) -> train.Experiment:
  model, m, spec = make_model(config), config.model, config.loss
  noise = lambda batch, rng=None, samples=(): ram_noise(model, m.num_glimpses, batch, rng, samples)

  inputs = lambda images: network_input(config, images)

  def init(rng, batch):
    images = jnp.asarray(batch['image'])
    return model.init(rng, inputs(images), noise(images.shape[0], rng))

  def loss(params, batch, rng, step):
    del step
    images, labels = batch['image'], batch['label']
    out = model.apply(params, inputs(images), noise(images.shape[0], rng))
    per_example, terms = rollout_loss(out, labels, reinforce_weight=spec.reinforce_weight,
                                      baseline_weight=spec.baseline_weight,
                                      reinforce_time_average=spec.reinforce_time_average)
    return per_example.mean(), {
        **loss_metrics(terms), **diagnostics.location_metrics(images, out, batch, m.glimpse_size)}

  def evaluate(params, batch, rng):
    images = batch['image']
    batch_size = images.shape[0]
    return evaluate_glimpse_paths(
        lambda drawn: model.apply(params, inputs(images), drawn), noise(batch_size),
        noise(batch_size, rng, (config.eval.mc_samples,)), batch, m.glimpse_size)

  def plots(params, batch, rng, workdir):
    del rng
    images, labels = jnp.asarray(batch['image'][:8]), batch['label'][:8]
    out = model.apply(params, inputs(images), noise(images.shape[0]))
    drawn = dict(images=images, locations=jnp.clip(out.locations, -1, 1), labels=labels,
                 predictions=jnp.argmax(out.logits, -1), glimpse_size=m.glimpse_size,
                 num_scales=m.num_scales, scale_factor=m.scale_factor)
    plot_glimpse_sequence(**drawn, path=os.path.join(workdir, 'glimpse_sequence.png'))
    plot_glimpse_paths(**drawn, path=os.path.join(workdir, 'glimpse_paths.png'))

  def predict(params, images, rng):
    del rng
    return glimpse_predictions(model.apply(params, inputs(images), noise(images.shape[0])))

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)


def _cnn(config: ml_collections.ConfigDict) -> train.Experiment:
  model = make_model(config)

  def init(rng, batch):
    return model.init(rng, jnp.asarray(batch['image']))

  def loss(params, batch, rng, step):
    del step
    logits = model.apply(params, batch['image'], train=True, rngs={'dropout': rng})
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])  # [B]
    error = (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32)
    return nll.mean(), {'nll': nll.mean(), 'error': error.mean()}

  def evaluate(params, batch, rng):
    del rng
    logits = model.apply(params, batch['image'])
    return {'error': (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32),
            'nll': optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])}

  def plots(params, batch, rng, workdir):
    del rng
    if config.model.name != 'attention_cnn':
      return
    images, labels = jnp.asarray(batch['image'][:6]), batch['label'][:6]
    weights = attention_weights(model, params, images)  # [N, heads, T, T]
    cell = 2**len(ConvTrunk.features)  # image pixels per feature-map cell
    plot_attention_maps(images, weights, token_side=config.model.block_size * cell,
                        labels=labels, predictions=jnp.argmax(model.apply(params, images), -1),
                        path=os.path.join(workdir, 'attention_maps.png'))

  def predict(params, images, rng):
    del rng  # a CNN looks at every pixel: no glimpse locations
    return {'probabilities': jax.nn.softmax(model.apply(params, images), -1)}  # [B, K]

  return train.Experiment(init=init, loss=loss, evaluate=evaluate, plots=plots, predict=predict)
