#!/usr/bin/env bash
# Issue #22: the default denoiser, bf-natural-gray, trained on from its published weights until it matches
# BM3D. The same bias-free blind UNet (width 32, 4 levels), BSD400 only, σ on [0, 0.4] (√σ uniform: more steps
# where PSNR is lost, σ ≤ 25/255), now on larger patches (96 instead of 64 pixels, batch 8: about the pixels
# of a step before) for the coarse levels' context, a new warm-up + cosine schedule over steps 18 000–24 000
# (peak lr 2e-4), and an exponential moving average of the weights (decay 0.999) as the weights it ships.
# Set12's centre crops are the validation curve (PSNR against wall hours in the card's history).
# Trains into $EXPLORER_RUNS/bf-natural-gray; rerunning resumes (Ctrl-C or SIGTERM checkpoint) and stops
# at the end; publish with python -m explorer.publish $EXPLORER_RUNS/bf-natural-gray --force after evaluating.
set -euo pipefail
PY=${PYTHON:-python}
THREADS=${THREADS:-1}
runs=${EXPLORER_RUNS:-$HOME/.cache/denoiser-explorer/runs}
name=bf-natural-gray
if [ -f "$runs/$name/training/$name/state.json" ]; then start=(--resume); else start=(--init pretrained/$name.json); fi
OMP_NUM_THREADS=$THREADS $PY -m explorer.train --data ../shared/data/bsd/Train400 --name "$name" \
  --arch unet --width 32 --levels 4 --convs-per-block 2 --sigma-min 0 --sigma-max 0.4 --noise-dist sqrt \
  --batch 8 --patch 96 --steps "${STEPS:-24000}" --lr 2e-4 --ema 0.999 --checkpoint-every 500 --checkpoint-minutes 10 \
  --val ../shared/data/bsd/Set12 --val-sigmas 15,25,50 --threads "$THREADS" --quiet "${start[@]}"
