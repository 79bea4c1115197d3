"""Pure objective functions (no Flax): policy gradients, importance-weighted estimators, ..."""

from glimpse_jax.objectives.exploration import (
    action_entropy,
    location_coverage_loss,
    scale_coverage_loss,
    temper_logits,
    temper_std,
)
from glimpse_jax.objectives.reinforce import baseline_loss, reinforce_loss
from glimpse_jax.objectives.wake_sleep import importance_diagnostics, var_loss, wake_sleep_loss
