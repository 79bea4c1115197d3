"""Pure objective functions (no Flax): policy gradients, importance-weighted estimators, ..."""

from glimpse_jax.objectives.attention_guidance import (
    heuristic_loss,
    mimic_loss,
    mimic_weight,
    safe_norm,
)
from glimpse_jax.objectives.distillation import distillation_loss
from glimpse_jax.objectives.exploration import (
    action_entropy,
    location_coverage_loss,
    saturation_penalty,
    scale_coverage_loss,
    temper_logits,
    temper_std,
)
from glimpse_jax.objectives.ram import (REWARDS, classification_rewards, loss_metrics, ram_loss,
                                        rollout_loss)
from glimpse_jax.objectives.reinforce import (
    baseline_loss,
    final_rewards,
    location_supervision_loss,
    reinforce_loss,
    returns_to_go,
)
from glimpse_jax.objectives.reward_shaping import (
    OUTPUT_SPACES,
    class_outputs,
    output_change,
    output_spread,
    reward_bonuses,
)
from glimpse_jax.objectives.stopping import (
    act_outputs,
    act_weights,
    fixed_glimpse_errors,
    gain_loss,
    information_gains,
    ponder_cost,
    posterior_entropy,
    stop_steps,
    stopped_outputs,
    stopping_curve,
)
from glimpse_jax.objectives.wake_sleep import (
    METHODS,
    importance_diagnostics,
    method_surrogate,
    var_loss,
    wake_sleep_loss,
)
