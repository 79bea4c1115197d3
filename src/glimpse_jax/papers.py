"""The papers' published numbers, one named record per row: experiment configs and the report
chapters both import them from here, so each figure is written once.

Errors and accuracies are fractions (0.0112 is 1.12%); BLEU scores are in points as printed.
"""

import dataclasses


# ---------------------------------------------------------------------------------------------
# Recurrent Models of Visual Attention (Mnih, Heess, Graves & Kavukcuoglu 2014), Tables 1-2.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RamRow:
  """One RAM row: the task (an `experiments/ram.py` variant), glimpses, random locations or the
  learned policy, and its test error."""

  task: str
  glimpses: int
  random_locations: bool
  test_error: float


RAM = (
    RamRow('mnist', 6, False, 0.0112), RamRow('mnist', 7, False, 0.0107),
    RamRow('translated60', 4, False, 0.0154), RamRow('translated60', 6, False, 0.0122),
    RamRow('translated60', 8, False, 0.0120), RamRow('translated60', 8, True, 0.144),
    RamRow('cluttered60', 4, False, 0.0496), RamRow('cluttered60', 6, False, 0.0408),
    RamRow('cluttered60', 8, False, 0.0404), RamRow('cluttered60', 8, True, 0.284),
    RamRow('cluttered100', 4, False, 0.0941), RamRow('cluttered100', 6, False, 0.0831),
    RamRow('cluttered100', 8, False, 0.0811),
)
RAM_STEPS = 1_000_000  # the budget of the `_paper` variants


# ---------------------------------------------------------------------------------------------
# Learning Wake-Sleep Recurrent Attention Models (Ba, Grosse, Salakhutdinov & Frey 2015).
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WsRamRow:
  """One row of the paper's Table 1 (100x100 translated MNIST, digits scaled by 0.5-2, K = 5
  samples, 10M updates): the estimator (`loss.method`, `loss.control_variates`), the paper's
  name for it and its test error."""

  method: str
  control_variates: bool
  name: str
  test_error: float


# variant of experiments/ws_ram.py -> its row
WS_RAM = {
    'var': WsRamRow('var', False, 'VAR', 0.0311),
    'var_cv': WsRamRow('var', True, 'VAR + c.v.', 0.0181),
    'ws': WsRamRow('ws', False, 'WS-RAM', 0.0423),
    'ws_cv': WsRamRow('ws', True, 'WS-RAM + c.v.', 0.0185),
    'ws_q': WsRamRow('ws_q', False, 'WS-RAM + q', 0.0259),
    'ws_q_cv': WsRamRow('ws_q', True, 'WS-RAM + q + c.v.', 0.0162),
}
WS_RAM_STEPS = 10_000_000  # the budget of the `_paper` variants


@dataclasses.dataclass(frozen=True)
class CaptionRow:
  """One captioning estimator (`loss.method`), the paper's name for it and its Flickr8k test
  BLEU-1..4 (Table 2, with control variates); None where the paper reports none."""

  method: str
  name: str
  bleu: tuple[float, float, float, float] | None


# variant of experiments/ws_ram_captioning.py -> its row
WS_RAM_CAPTIONING = {
    'var': CaptionRow('var', 'VAR', (62.3, 41.6, 26.9, 17.2)),
    'ws': CaptionRow('ws', 'WS-RAM', None),
    'ws_q': CaptionRow('ws_q', 'WS-RAM + q', (61.1, 40.4, 26.9, 17.8)),
}


# ---------------------------------------------------------------------------------------------
# Reward shaping and an LSTM locator for RAM (Brooks et al.).
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RamRewardClaims:
  """The paper's observation: the output-change reward first passes `pass_accuracy` test
  accuracy, then collapses to `collapsed_accuracy` (a range) by epoch `collapse_epoch`, an epoch
  being `epoch_examples` classifications."""

  pass_accuracy: float
  collapsed_accuracy: tuple[float, float]
  collapse_epoch: int
  epoch_examples: int


RAM_REWARD = RamRewardClaims(pass_accuracy=0.5, collapsed_accuracy=(0.10, 0.11),
                             collapse_epoch=10, epoch_examples=50_000)


# ---------------------------------------------------------------------------------------------
# Attention mechanisms for variant MNIST datasets (Wu, Xu & Lee), Tables 1 (RAM) and 2 (CNNs).
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VariantMnistRow:
  """One row's table and its test accuracy."""

  table: int
  accuracy: float


# row variant of experiments/variant_mnist.py -> the paper's number for it
VARIANT_MNIST = {
    'ram_cluttered_g4': VariantMnistRow(1, 0.927),
    'ram_cluttered_g6': VariantMnistRow(1, 0.919),
    'ram_cluttered_g8': VariantMnistRow(1, 0.935),
    'ram_cluttered_g6_sgd1e-2': VariantMnistRow(1, 0.910),
    'ram_cluttered_g6_sgd1e-3': VariantMnistRow(1, 0.919),
    'ram_fashion_8x8': VariantMnistRow(1, 0.856),
    'ram_fashion_7x7x3': VariantMnistRow(1, 0.867),
    'cnn_fashion': VariantMnistRow(2, 0.9261),
    'cnn_cluttered': VariantMnistRow(2, 0.9440),
    'attention_cnn_fashion': VariantMnistRow(2, 0.9205),
    'attention_cnn_cluttered': VariantMnistRow(2, 0.9510),
}
# The CNNs' parameters on 40x40 canvases (simple CNN, self-attention CNN with its weighted sum).
VARIANT_MNIST_PARAMETERS = {'simple_cnn': 1_830_000, 'attention_cnn': 470_000}


# ---------------------------------------------------------------------------------------------
# Pre-training attention mechanisms (Lindsey 2017).
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PretrainRow:
  """A method on a dataset ('translated' or 'regular') and the paper's number for it: test error
  (Tables 2 and 4) or, for a `tester_<tested>` method, the tester's accuracy (Table 3)."""

  method: str
  dataset: str
  value: float


PRETRAIN_ATTENTION_ERRORS = (
    PretrainRow('no_guidance', 'translated', 0.019),
    PretrainRow('heuristic', 'translated', 0.014),
    PretrainRow('reconstruction', 'translated', 0.014),
    PretrainRow('mimic', 'translated', 0.015),
    PretrainRow('bootstrap', 'translated', 0.015),
    PretrainRow('bootstrap_alpha05', 'translated', 0.027),
    PretrainRow('no_guidance', 'regular', 0.026),
    PretrainRow('reconstruction', 'regular', 0.022),
    PretrainRow('mimic', 'regular', 0.019),
    PretrainRow('bootstrap', 'regular', 0.023),
    PretrainRow('bootstrap_alpha05', 'regular', 0.019),
)
PRETRAIN_ATTENTION_TESTER_ACCURACY = (
    PretrainRow('tester_reconstruction', 'translated', 0.939),
    PretrainRow('tester_classification', 'translated', 0.954),
    PretrainRow('tester_reconstruction_classification', 'translated', 0.986),
    PretrainRow('tester_reconstruction', 'regular', 0.968),
    PretrainRow('tester_classification', 'regular', 0.960),
    PretrainRow('tester_reconstruction_classification', 'regular', 0.974),
)


@dataclasses.dataclass(frozen=True)
class BatchesToAccuracy:
  """Figure 2: batches to `accuracy` test accuracy on translated MNIST, guided and unguided."""

  accuracy: float
  guided: int
  unguided: int


PRETRAIN_ATTENTION_SPEED = BatchesToAccuracy(accuracy=0.95, guided=3_000, unguided=42_000)
# The paper's batch counts per pre-training phase: (phase, dataset) -> batches.
PRETRAIN_ATTENTION_STEPS = {
    ('heuristic', 'translated'): 2_000, ('heuristic', 'regular'): 2_000,
    ('reconstruction', 'translated'): 20_000, ('reconstruction', 'regular'): 15_000,
    ('classification', 'translated'): 80_000, ('classification', 'regular'): 5_000,
}
# Table 3's batch counts per dataset: (tested model's batches, tester's batches).
PRETRAIN_ATTENTION_TESTER_STEPS = {'translated': (40_000, 40_000), 'regular': (15_000, 10_000)}


# ---------------------------------------------------------------------------------------------
# Near-optimal glimpse sequences for hard attention (Harvey, Teng & Wood), on CelebA-HQ.
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NearOptimalClaims:
  """Supervision reaches near-best validation accuracy in `speedup` times fewer iterations and
  ends `accuracy_gain` (a fraction) more accurate; the paper has no table for MNIST."""

  speedup: float
  accuracy_gain: float


NEAR_OPTIMAL_GLIMPSES = NearOptimalClaims(speedup=7.0, accuracy_gain=0.004)


def lookup(rows, **fields):
  """The first of `rows` whose attributes equal `fields`, else None."""
  return next((r for r in rows if all(getattr(r, k) == v for k, v in fields.items())), None)
