#!/usr/bin/env bash
# Issue #17: the natural-image energy model and its score-only twin, the same network, data and budget:
# dual score matching (energy-natural-gray) and DSM of the score directly (score-natural-gray), on 32×32
# patches of BSD400 (random crops with dihedral augmentation), 8-bit dequantized (x + U(0, 2^-8)), t = σ²
# log-uniform on [1e-6, 1e3]; Set68's centre crops are the held-out images for log Z and validation.
# Each trains into its run folder ($EXPLORER_RUNS/NAME); rerunning resumes an unfinished run (Ctrl-C or
# SIGTERM checkpoints) and skips a finished one. ONLY=energy or ONLY=score trains one of the two; WIDTH and
# LEVELS size the UNet (16 and 3 for the published pair). ACTIVATION (silu) and SCALED_INPUT (1: the UNet
# reads (y − m)/√(t + v_d)) choose the network: ACTIVATION=relu SCALED_INPUT=0 is the first published pair's
# (2026-12-02), whose energy denoised 1.6–2.0 dB below its twin; 2000-step diagnostics (2026-12-03) put the
# smooth, scaled network's energy 0.14–0.25 dB below its twin.
set -euo pipefail
PY=${PYTHON:-python}
THREADS=${THREADS:-1}
STEPS=${STEPS:-20000}
WIDTH=${WIDTH:-16}
LEVELS=${LEVELS:-3}
network=(--activation "${ACTIVATION:-silu}")
if [ "${SCALED_INPUT:-1}" = 1 ]; then network+=(--scaled-input); fi
for kind in ${ONLY:-energy score}; do
  name=$kind-natural-gray
  objective=$([ "$kind" = energy ] && echo dual || echo score)
  runs=${EXPLORER_RUNS:-$HOME/.cache/denoiser-explorer/runs}
  resume=()
  if [ -f "$runs/$name/training/$name/state.json" ]; then resume=(--resume); fi
  OMP_NUM_THREADS=$THREADS $PY -m explorer.train_energy --name "$name" --objective "$objective" \
    --data ../shared/data/bsd/Train400 --val ../shared/data/bsd/Set68 --dequantize-bits 8 \
    --t-min 1e-6 --t-max 1e3 --width "$WIDTH" --levels "$LEVELS" --batch 32 --patch 32 --steps "$STEPS" --lr 1e-3 "${network[@]}" \
    --checkpoint-every 1000 --checkpoint-minutes 5 --threads "$THREADS" --quiet "${resume[@]}"
done
