"""Time the GAHB tool's whole computation (SVD + shrinkage + traces + σ-curve) at 64×64, k = 64: `python benchmarks/bench_gahb.py THREADS`."""
import sys
import threading
import time

import torch

import explorer
from explorer.data.builtin import builtin_image
from explorer.ui.gahb_state import GAHBState, compute_stages
torch.set_num_threads(int(sys.argv[1]))
h = explorer.load("bf-natural-gray")
state = GAHBState(k=64, sigma=0.1)
x = builtin_image("camera", 64).astype("float32")
req = state.request(h, x)
h.denoise(req["y"])  # warm
t = time.perf_counter()
compute_stages(req, threading.Event(), lambda m: None)
print(f"GAHB tool at 64×64, k = 64, {torch.get_num_threads()} threads: {time.perf_counter() - t:.1f} s")
