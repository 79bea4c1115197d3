"""Flax Linen modules shared across the papers' methods."""

from glimpse_jax.nets.actions import ActionDist, ActionHead
from glimpse_jax.nets.cnn import SelfAttentionCNN, SimpleCNN, attention_weights, flops_per_image
from glimpse_jax.nets.context import ContextNetwork, area_downsample
from glimpse_jax.nets.cores import LSTMCore, ReLURNNCell, core_output, make_core
from glimpse_jax.nets.draw import (DrawClassifier, DrawCore, DrawModel, DrawTrace,
                                  SequenceClassifier)
from glimpse_jax.distributions import (
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)
from glimpse_jax.nets.evaluation import (evaluate_glimpse_paths, evaluate_paths,
                                        glimpse_predictions, path_values)
from glimpse_jax.nets.glimpse_net import GlimpseNetwork
from glimpse_jax.nets.noise import ActionNoise, draw_noise, mode_noise
from glimpse_jax.nets.policies import (LOCATORS, MEAN_ACTIVATIONS, LocationAction, Locator,
                                      grid_cell, grid_centers, location_mean)
from glimpse_jax.nets.ram import RAMOutput, RecurrentAttentionModel, ram_noise
from glimpse_jax.nets.ram_flops import ram_flops_per_image, ram_multiply_adds
from glimpse_jax.nets.retina import RetinaSpec
from glimpse_jax.nets.ws_ram import WakeSleepRAM, WSRAMOutput
