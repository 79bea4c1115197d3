#!/usr/bin/env bash
# Lindsey's table rows at the paper's budgets: runs `make experiment NAME=pretrain_attention` once
# per (variant, seed) into runs/pretrain_attention/<variant>-seed<s>; a finished phase is skipped,
# an interrupted one resumes. On regular MNIST, where the paper pre-trains and tests
# reconstruction for the same 15,000 batches, a `reconstruction_regular*` row takes its
# pre-training, and a `mimic_regular*` or `mimic_alpha05_regular*` row its teacher, from the
# finished `tester_reconstruction_regular*` run of the same seed and suffix when there is one (the
# same phase config and seed: the pipeline does not train it again), so Tables 2-4 train it once;
# list the tester first. (Translated: 20,000 batches against the tester's 40,000, nothing shared.)
# Usage: scripts/pretrain_attention_rows.sh "VARIANTS" "SEEDS"
# e.g.   scripts/pretrain_attention_rows.sh "tester_reconstruction_regular reconstruction_regular" "0 1 2"
set -euo pipefail
variants=$1; seeds=$2
root=runs/pretrain_attention
for variant in $variants; do for seed in $seeds; do
  workdir=$root/$variant-seed$seed
  [ -f "$workdir/results.json" ] && continue
  case $variant in  # the phase the tester's reconstruction stands in for; the rest of the name
    reconstruction_regular*) phase=pretrain; rest=${variant#reconstruction_} ;;
    mimic_alpha05_regular*) phase=teacher; rest=${variant#mimic_alpha05_} ;;
    mimic_regular*) phase=teacher; rest=${variant#mimic_} ;;
    *) phase= rest= ;;
  esac
  tester=$root/tester_reconstruction_$rest-seed$seed/pretrain
  if [[ -n $phase && $variant != *_smoke && -f $tester/results.json && ! -e $workdir/$phase ]]; then
    mkdir -p "$workdir"
    cp -r "$tester" "$workdir/$phase"
  fi
  make experiment NAME=pretrain_attention CONFIG="$variant" WORKDIR="$workdir" \
    ARGS="--config.seed=$seed"
done; done
