"""Pure objective functions (no Flax): policy gradients, importance-weighted estimators, ..."""

from glimpse_jax.objectives.reinforce import baseline_loss, reinforce_loss
