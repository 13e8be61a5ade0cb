"""Accuracy of the coloured-probing diagonal of ∂x̂/∂y (explorer.posterior) against the exact diagonal.

bf-natural-gray on the 32×32 camera image at σ = 0.05, 0.1, 0.2 ([0, 1] units): the median relative
error of the posterior standard deviation √(σ²A_ii) for several periods and sign draws.
Usage: OMP_NUM_THREADS=1 python scripts/posterior_accuracy.py
"""
import time, numpy as np, torch, explorer
from explorer.posterior import jacobian_diagonal
from explorer.data.builtin import builtin_image
torch.set_num_threads(1)
h = explorer.load("bf-natural-gray")
x = builtin_image("camera", 32).astype(np.float32)
for sigma in (0.05, 0.1, 0.2):
    y = x + sigma * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    ex = jacobian_diagonal(h, y, sigma, method="exact").diagonal.numpy()
    print("sigma", sigma, "exact diag range", ex.min(), np.median(ex), ex.max(), "frac<=0", np.mean(ex <= 0))
    for per, rep in ((4, 4), (6, 2), (8, 1), (8, 2), (8, 8)):
        est = jacobian_diagonal(h, y, sigma, period=per, repeats=rep).diagonal.numpy()
        s_ex = np.sqrt(np.clip(ex, 1e-12, None)); s_est = np.sqrt(np.clip(est, 0, None))
        m = ex > 1e-4
        print(f"  period {per} repeats {rep} ({per*per*rep} products): median rel err of std {np.median(np.abs(s_est[m] - s_ex[m]) / s_ex[m]):.3f}")
