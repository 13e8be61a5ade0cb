"""Time the posterior standard-deviation map √(σ² diag A) at 64×64 (explorer.posterior defaults): `python benchmarks/bench_posterior.py THREADS`."""
import sys
import time

import numpy as np
import torch

import explorer
from explorer.posterior import posterior_std
from explorer.data.builtin import builtin_image
torch.set_num_threads(int(sys.argv[1]))
h = explorer.load("bf-natural-gray")
x = builtin_image("camera", 64).astype(np.float32)
y = x + 0.1 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
posterior_std(h, y, 0.1)
ts = []
for _ in range(3):
    t = time.perf_counter(); posterior_std(h, y, 0.1); ts.append(time.perf_counter() - t)
print(f"posterior SD map 64×64, default (64 products), {torch.get_num_threads()} threads: median {sorted(ts)[1]:.2f} s")
