#!/usr/bin/env bash
# The ICLR 2024 generalization pairs (issue #16): one bias-free UNet per disjoint MNIST subset
# A and B of N digits, N ∈ {1, 10, 100, 1000, 4750}, all with the same architecture and schedule;
# only the step count grows with N (small sets converge early). The last quarter of the steps trains with
# the norm statistics frozen (--freeze-norms-at), so the evaluated network is the trained one. Each model trains into its run folder
# ($EXPLORER_RUNS/gen-mnist-N<N>-<A|B>); rerunning resumes unfinished runs and skips finished ones.
# PARTS=A or PARTS=B trains one half, so that the two halves of a pair can run side by side on two cores.
# Publish each with: python -m explorer.evaluate ... && python -m explorer.publish RUN
set -euo pipefail
PY=${PYTHON:-python}
THREADS=${THREADS:-1}
declare -A STEPS=([1]=8000 [10]=8000 [100]=12000 [1000]=20000 [4750]=30000)
for n in ${SIZES:-1 10 100 1000 4750}; do
  for part in ${PARTS:-A B}; do
    name=gen-mnist-N$n-$part
    runs=${EXPLORER_RUNS:-$HOME/.cache/denoiser-explorer/runs}
    resume=()
    if [ -f "$runs/$name/training/$name/state.json" ]; then resume=(--resume); fi
    OMP_NUM_THREADS=$THREADS $PY -m explorer.train --name "$name" --data mnist --subset "$n:$part" --subset-seed 0 \
      --arch unet --width 16 --levels 3 --convs-per-block 2 --sigma-min 0 --sigma-max 1 --noise-dist sqrt \
      --loss-weight relative --loss-floor 0.1 --batch 32 --patch 32 --steps "${STEPS[$n]}" --freeze-norms-at $(( ${STEPS[$n]} * 3 / 4 )) --lr 5e-4 \
      --checkpoint-every 1000 --checkpoint-minutes 10 --threads "$THREADS" --quiet "${resume[@]}"
  done
done
