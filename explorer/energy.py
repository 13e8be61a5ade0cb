"""Energy models trained by dual score matching (Guth, Kadkhodaie & Simoncelli, NeurIPS 2025).

An energy network U_θ(y, t) models −log p_t(y) up to one global constant, where p_t = p * N(0, tI)
is the data density blurred by Gaussian noise of variance t = σ². Two scores follow by autograd:

- the space score −∇_y U, giving the denoiser x̂(y) = y − t ∇_y U (Tweedie/Miyasawa);
- the time score ∂_t U, which by the heat equation ∂_t p_t = ½ Δp_t satisfies
  ∂_t U(y, t) = d/(2t) − E[‖y − x‖²/(2t²) | y],  d = C·H·W.

Dual objective, per sample y = x + √t z with log t uniform on [log t_min, log t_max]:

    L_DSM = ‖x̂(y, t) − x‖² / (d t)                              = ‖z − √t ∇_y U‖² / d
    L_TSM = (t/d)² (∂_t U − d/(2t) + ‖y − x‖²/(2t²))²            = ((∂_τ U − d/2 + ‖z‖²/2) / d)²,  τ = log t

(both minimised by the true −log p_t up to a constant; DSM alone leaves U(·, t) free up to an
arbitrary function of t, TSM ties the levels together). The constant is fixed once at a large T,
where p_T is nearly N(m, T·I) with entropy (d/2)·log(2πeT):

    log Z = (d/2) log(2πeT) − E[U(x + √T z, T)],     NLL(x) = −log p(x) ≈ U(x, t_min) + log Z,

with t_min the smallest training noise variance (U(x, 0⁺) is read at t_min; the model is not trained
below it). Units: nats per image of the continuous density on [0,1]^d; :func:`in_unit` (nats/dim,
bits/dim, dB/dim) converts, and :func:`discrete_nll` turns a density of dequantized b-bit data into
the discrete likelihood of the b-bit image (the uniform-dequantization bound).

Cross-check: the probability-flow ODE dy/dt = ½ ∇_y U(y, t) transports x at t_min to y_T, and
−log p_{t_min}(x) = −log N(y_T; m, T·I) − ∫ ½ ΔU(y(t), t) dt (Hutchinson estimate of the Laplacian),
an independent estimate of the same NLL that only uses the space score (:func:`nll_ode`).

Architecture (:class:`EnergyUNet`): U(y, t) = ½⟨v, s_θ(v, t)⟩ + d·b_θ(t), v = y − m, with s_θ a
UNet with bias-free convolutions whose channels are scaled by gains computed from log t (so s_θ is
positively homogeneous of degree 1 in v), and b_θ(t) = ½ log 2π(t + v_d) + h_θ(log t) a scalar
function of t. Why the mean m and b_θ: ½⟨v, s_θ(v, t)⟩ is homogeneous of degree 2 in v, hence 0 at
v = 0 for every t; but −log p_t at the reference image m depends on t (it grows like (d/2) log 2πt),
and that t-dependence is exactly what the time score sees. b_θ(t) carries U(m, t) (learned only by
TSM; DSM is blind to it), and centring on the data mean m (a per-channel gray level, stored as a
buffer) puts the fixed point of the homogeneous part where the data are, so a Gaussian N(m, Σ) is
represented exactly by a linear s_θ = (Σ + tI)⁻¹ and b_θ = ½ mean log 2π(λ + t). The price is that
U − d·b is exactly quadratic along rays from m (energy(m + αv) − d·b = α²·(energy(m + v) − d·b)).

Modules: :mod:`explorer.energy_model` (the models, the loss, log Z, the ODE) and
:mod:`explorer.likelihood` (units, discrete likelihoods); this module re-exports their public names.
"""
from __future__ import annotations

from collections.abc import Sequence

from .energy_model import (  # noqa: F401
    T_MAX, T_MIN, EnergyDenoiser, EnergyUNet, RadialEnergy, ScoreUNet, TimeEmbedding, _dims, as_t, dual_score_loss,
    estimate_log_z, nll_ode, sample_log_t,
)
from .likelihood import (  # noqa: F401
    CONTINUOUS, DEFAULT_DRAWS, LN2, LN10, UNITS, DiscreteNLL, NLLQuantity, bits_per_dim, db_per_dim,
    dequantization_noise, discrete_nll, in_unit, nats_per_dim, nll_quantity, nll_values, quantize,
)

__all__: Sequence[str] = [
    "CONTINUOUS", "DEFAULT_DRAWS", "DiscreteNLL", "EnergyDenoiser", "EnergyUNet", "NLLQuantity", "RadialEnergy", "ScoreUNet",
    "TimeEmbedding", "T_MAX", "T_MIN", "UNITS", "as_t", "bits_per_dim", "db_per_dim", "dequantization_noise", "discrete_nll",
    "dual_score_loss", "estimate_log_z", "in_unit", "nats_per_dim", "nll_ode", "nll_quantity", "nll_values", "quantize",
    "sample_log_t",
]
