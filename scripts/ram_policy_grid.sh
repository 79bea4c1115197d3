#!/usr/bin/env bash
# RAM's location-policy choices at equal budget: runs `make experiment NAME=ram` once per
# (setting, task, glimpses, seed) into runs/ram_policy/<task>-g<T>-<setting>-<steps>-seed<s>; a finished
# run is skipped, an interrupted one resumes. Settings:
#   attached     the policy gradient reaches the core (the Torch RAM), REINFORCE summed over T
#   detached     the locator reads stop_gradient(h) (the paper's hybrid loss)
#   attached_avg / detached_avg  the same with REINFORCE averaged over T
#   hardtanh     detached, with a clipped-linear location mean
# Usage: scripts/ram_policy_grid.sh STEPS "SETTINGS" "TASKS" "GLIMPSES" "SEEDS"
# e.g.   scripts/ram_policy_grid.sh 30000 "detached" "translated60 cluttered60" "4 6 8" "0 1 2"
set -euo pipefail
steps=$1; settings=$2; tasks=$3; glimpses=$4; seeds=$5
for setting in $settings; do
  case $setting in
    attached) args="--config.model.policy_gradient_to_core=True --config.loss.reinforce_time_average=False";;
    detached) args="--config.model.policy_gradient_to_core=False --config.loss.reinforce_time_average=False";;
    attached_avg) args="--config.model.policy_gradient_to_core=True --config.loss.reinforce_time_average=True";;
    detached_avg) args="--config.model.policy_gradient_to_core=False --config.loss.reinforce_time_average=True";;
    hardtanh) args="--config.model.policy_gradient_to_core=False --config.loss.reinforce_time_average=False --config.model.mean_activation=hardtanh";;
    *) echo "unknown setting '$setting'" >&2; exit 2;;
  esac
  for task in $tasks; do for t in $glimpses; do for seed in $seeds; do
    workdir=runs/ram_policy/$task-g$t-$setting-${steps}-seed$seed
    [ -f "$workdir/results.json" ] && continue
    make experiment NAME=ram CONFIG=$task WORKDIR="$workdir" \
      ARGS="--config.num_steps=$steps --config.model.num_glimpses=$t --config.seed=$seed $args"
  done; done; done
done
