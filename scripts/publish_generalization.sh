#!/usr/bin/env bash
# Publish the finished generalization pairs (scripts/train_generalization.sh) into pretrained/:
# each run gets its held-out MNIST table (the card-regression test re-measures it), then
# explorer.publish copies weights + card. A pair is published only when both A and B are finished.
set -euo pipefail
PY=${PYTHON:-python}
runs=${EXPLORER_RUNS:-$HOME/.cache/denoiser-explorer/runs}
finished() {  # run name → true when its state has reached the steps its command asked for
  local state="$runs/$1/training/$1/state.json"
  [ -f "$state" ] && $PY -c "import json,sys; s = json.load(open('$state')); sys.exit(s['step'] < s['args']['steps'])"
}
for n in ${SIZES:-1 10 100 1000 4750}; do
  if finished "gen-mnist-N$n-A" && finished "gen-mnist-N$n-B"; then
    for part in A B; do
      name=gen-mnist-N$n-$part
      OMP_NUM_THREADS=1 $PY -m explorer.evaluate "$runs/$name/$name.json" --data mnist --sigma 0.05,0.1,0.2,0.4 --scale 1 --write-card --quiet
      $PY -m explorer.publish "$runs/$name" ${FORCE:+--force}
    done
  else
    echo "N = $n: the pair is not finished yet"
  fi
done
