#!/usr/bin/env bash
# Lindsey's table rows at the paper's budgets: runs `make experiment NAME=pretrain_attention` once
# per (variant, seed) into runs/pretrain_attention/<variant>-seed<s>; a finished phase is skipped,
# an interrupted one resumes. A `reconstruction_<dataset>` row takes its 15,000-batch pre-training
# from the finished `tester_reconstruction_<dataset>` run of the same seed when there is one (the
# same phase config and seed: the pipeline skips it), so Tables 2 and 3 train it once; list the
# tester first.
# Usage: scripts/pretrain_attention_rows.sh "VARIANTS" "SEEDS"
# e.g.   scripts/pretrain_attention_rows.sh "tester_reconstruction_regular reconstruction_regular" "0 1 2"
set -euo pipefail
variants=$1; seeds=$2
root=runs/pretrain_attention
for variant in $variants; do for seed in $seeds; do
  workdir=$root/$variant-seed$seed
  [ -f "$workdir/results.json" ] && continue
  tester=$root/tester_$variant-seed$seed/pretrain
  if [[ $variant == reconstruction_* && -f $tester/results.json && ! -e $workdir/pretrain ]]; then
    mkdir -p "$workdir"
    cp -r "$tester" "$workdir/pretrain"
  fi
  make experiment NAME=pretrain_attention CONFIG="$variant" WORKDIR="$workdir" \
    ARGS="--config.seed=$seed"
done; done
