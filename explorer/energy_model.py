"""The energy models of :mod:`explorer.energy` (whose docstring derives them): the protocol
:class:`EnergyDenoiser`, :class:`EnergyUNet`, its score-only twin :class:`ScoreUNet`, the toy
:class:`RadialEnergy`, the dual score-matching loss, the normalization log Z and the probability-flow
ODE cross-check."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .denoisers import register
from .denoisers.base import Denoiser, SigmaLike

T_MIN = 1e-9  # PSNR 90 dB for a [0, 1] image
T_MAX = 1e3  # PSNR −30 dB


# --------------------------------------------------------------------------- helpers
def as_t(t: Tensor | float, y: Tensor) -> Tensor:
    """A scalar or per-image noise variance t → a (B,) tensor with y's dtype and device."""
    tt = torch.as_tensor(t, dtype=y.dtype, device=y.device)
    if tt.ndim == 0:
        tt = tt.expand(y.shape[0])
    tt = tt.reshape(-1)
    if tt.numel() != y.shape[0]:
        raise ValueError(f"t has {tt.numel()} values for a batch of {y.shape[0]} images")
    return tt


def sample_log_t(n: int, t_min: float, t_max: float, generator: torch.Generator | None = None) -> Tensor:
    """τ = log t uniform on [log t_min, log t_max], shape (n,)."""
    a, b = math.log(t_min), math.log(t_max)
    return a + (b - a) * torch.rand(n, generator=generator)


def _dims(y: Tensor) -> int:
    return int(math.prod(y.shape[1:]))


# --------------------------------------------------------------------------- the model protocol
class EnergyDenoiser(Denoiser):
    """A noise-conditioned energy U(y, t) ≈ −log p_t(y) + const, used as a (non-blind) denoiser.

    Subclasses implement :meth:`energy_log_t` (U as a function of y and τ = log t). Buffers:
    ``t_min``, ``t_max`` (training range of t = σ²), ``log_z`` (NaN until :func:`estimate_log_z`),
    ``data_mean`` (per channel) and ``data_var`` (per pixel) of the training data.
    """

    blind = False
    bias_free = False
    concurrent_forward = True

    def __init__(self, channels: int, t_min: float, t_max: float):
        super().__init__()
        if not 0 < t_min < t_max:
            raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
        self.channels = channels
        self.register_buffer("t_min", torch.tensor(float(t_min)))
        self.register_buffer("t_max", torch.tensor(float(t_max)))
        self.register_buffer("log_z", torch.tensor(float("nan")))
        self.register_buffer("data_mean", torch.zeros(channels))
        self.register_buffer("data_var", torch.tensor(1.0))

    # --- to implement
    def energy_log_t(self, y: Tensor, tau: Tensor) -> Tensor:  # pragma: no cover - abstract
        """U(y, e^τ) per image, shape (B,)."""
        raise NotImplementedError

    # --- data statistics
    def set_data_stats(self, x: Tensor) -> None:
        """Store the per-channel mean and the per-pixel variance about it of a (B, C, H, W) batch."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected a (B, {self.channels}, H, W) batch, got shape {tuple(x.shape)}")
        mean = x.mean(dim=(0, 2, 3))
        self.data_mean.copy_(mean)
        self.data_var.copy_((x - mean.view(1, -1, 1, 1)).pow(2).mean().clamp_min(1e-8))

    # --- energies and scores
    def log_t(self, y: Tensor, t: Tensor | float) -> Tensor:
        """τ = log max(t, t_min) per image: below t_min the model reads U at t_min."""
        return torch.log(as_t(t, y).clamp_min(float(self.t_min)))

    def energy(self, y: Tensor, t: Tensor | float) -> Tensor:
        """U(y, t) per image (nats, up to the constant log Z), shape (B,)."""
        self._check(y)
        return self.energy_log_t(y, self.log_t(y, t))

    def energy_and_scores(self, y: Tensor, tau: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(U, ∇_y U, ∂_τ U) at y and τ = log t; differentiable in θ when ``create_graph``."""
        with torch.enable_grad():
            y = y if y.requires_grad else y.detach().requires_grad_(True)
            tau = tau.detach().requires_grad_(True)
            u = self.energy_log_t(y, tau)
            gy, gtau = torch.autograd.grad(u.sum(), (y, tau), create_graph=create_graph)
        return u, gy, gtau

    def grad_energy(self, y: Tensor, t: Tensor | float) -> Tensor:
        """∇_y U(y, t) (minus the space score), differentiable when grad mode is on."""
        self._check(y)
        tau = self.log_t(y, t)
        outer = torch.is_grad_enabled()
        with torch.enable_grad():
            y_in = y if (outer and y.requires_grad) else y.detach().requires_grad_(True)
            u = self.energy_log_t(y_in, tau)
            (g,) = torch.autograd.grad(u.sum(), y_in, create_graph=outer)
        return g

    def forward(self, y: Tensor, sigma: SigmaLike = None) -> Tensor:
        """x̂(y) = y − t ∇_y U(y, t), t = σ² (autograd, also under ``torch.no_grad``)."""
        s = self._require_sigma(y, sigma)
        t = (s**2).reshape(-1)
        return y - t.view(-1, 1, 1, 1) * self.grad_energy(y, t)

    def nll(self, x: Tensor) -> Tensor:
        """−log p(x) ≈ U(x, t_min) + log Z in nats per image, shape (B,)."""
        if not bool(torch.isfinite(self.log_z)):
            raise ValueError(f"{type(self).__name__} is not normalized: run estimate_log_z first (log_z is NaN)")
        return self.energy(x, float(self.t_min)) + self.log_z

    def _check(self, y: Tensor) -> None:
        if y.ndim != 4 or y.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__} takes (B, {self.channels}, H, W) batches, got shape {tuple(y.shape)}")


# --------------------------------------------------------------------------- time embedding
class TimeEmbedding(nn.Module):
    """τ = log t → features: τ̃ ∈ [−1, 1] on the training range, sin/cos(k π τ̃ / 2) for k = 1..K, then an MLP."""

    def __init__(self, t_min: float, t_max: float, hidden: int, frequencies: int = 6):
        super().__init__()
        self.lo, self.hi = math.log(t_min), math.log(t_max)
        self.register_buffer("k", torch.arange(1, frequencies + 1, dtype=torch.float32) * (math.pi / 2))
        self.mlp = nn.Sequential(nn.Linear(1 + 2 * frequencies, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())

    def forward(self, tau: Tensor) -> Tensor:
        u = (2 * tau - (self.lo + self.hi)) / (self.hi - self.lo)
        a = u[:, None] * self.k
        return self.mlp(torch.cat([u[:, None], torch.sin(a), torch.cos(a)], dim=1))


# --------------------------------------------------------------------------- the UNet energy
ACTIVATIONS = {"relu": F.relu, "silu": F.silu, "gelu": F.gelu}


class _GainBlock(nn.Module):
    """[bias-free conv3x3 → per-channel gain g(t) → activation] × n; positively homogeneous in its
    input when the activation is ReLU."""

    def __init__(self, c_in: int, c_out: int, n_convs: int, activation: str = "relu"):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False) for i in range(n_convs))
        self.n_gains = n_convs * c_out
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor, gains: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            c = conv.out_channels
            x = self.activation(conv(x) * gains[:, i * c:(i + 1) * c, None, None])
        return x


class EnergyUNet(EnergyDenoiser):
    """U(y, t) = ½⟨v, s_θ(v, t)⟩ + d·b_θ(t),  v = y − m,

        s_θ(v, t) = (v + N_θ(v, t)) / (t + v_d),    b_θ(t) = ½ log 2π(t + v_d) + h_θ(log t),

    N_θ a UNet (bias-free 3×3 convolutions, 2×2 average pooling, bilinear upsampling, concatenated
    skips) whose every channel is scaled by a gain g_θ(log t) from a small MLP; m the per-channel data
    mean, v_d the per-pixel data variance (buffers). N_θ = 0 gives the Gaussian N(m, v_d I) exactly
    (the t-scaling gives the right t → ∞ limit for free). Image sides that are not multiples of
    2^(levels−1) are reflect-padded for N_θ and cropped back; d is the unpadded C·H·W.

    ``activation`` is ReLU (N_θ homogeneous of degree 1 in v, U of degree 2 up to the offset), or the
    smooth SiLU / GELU. With ``scaled_input`` the UNet reads v at unit variance, as in the EDM-like
    parametrization of Guth et al. (2025): N_θ(v, t) = √(t + v_d) · UNet(v / √(t + v_d), t), the same
    function class as without it for ReLU, but a fixed input scale for a smooth activation.
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        levels: int = 3,
        convs_per_block: int = 2,
        embed: int = 64,
        t_min: float = T_MIN,
        t_max: float = T_MAX,
        activation: str = "relu",
        scaled_input: bool = False,
    ):
        super().__init__(channels, t_min, t_max)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: one of {', '.join(ACTIVATIONS)}")
        self.levels = levels
        self.scaled_input = scaled_input
        self.config = dict(channels=channels, width=width, levels=levels, convs_per_block=convs_per_block, embed=embed, t_min=t_min, t_max=t_max,
                           activation=activation, scaled_input=scaled_input)
        widths = [width * 2**i for i in range(levels)]
        self.encoders = nn.ModuleList()
        c_in = channels
        for w in widths:
            self.encoders.append(_GainBlock(c_in, w, convs_per_block, activation))
            c_in = w
        self.decoders = nn.ModuleList(_GainBlock(widths[i + 1] + widths[i], widths[i], convs_per_block, activation) for i in reversed(range(levels - 1)))
        self.head = nn.Conv2d(widths[0], channels, 3, padding=1, bias=False)
        n_gains = sum(b.n_gains for b in [*self.encoders, *self.decoders]) + channels
        self.embedding = TimeEmbedding(t_min, t_max, embed)
        self.gain_head = nn.Linear(embed, n_gains)
        self.offset_head = nn.Linear(embed, 1)
        for lin, bias in ((self.gain_head, 1.0), (self.offset_head, 0.0)):
            nn.init.zeros_(lin.weight)
            nn.init.constant_(lin.bias, bias)
        with torch.no_grad():
            self.head.weight.mul_(0.1)  # start near the Gaussian N(m, v_d I)

    def network(self, v: Tensor, emb: Tensor) -> Tensor:
        """N_θ(v, t): the gain-modulated bias-free UNet (homogeneous of degree 1 in v)."""
        gains = self.gain_head(emb)
        h, w = v.shape[-2:]
        m = 2 ** (self.levels - 1)
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(v, (0, pw, 0, ph), mode="reflect") if (ph or pw) else v
        skips, k = [], 0
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = enc(x, gains[:, k:k + enc.n_gains])
            k += enc.n_gains
            skips.append(x)
        for dec, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1), gains[:, k:k + dec.n_gains])
            k += dec.n_gains
        out = self.head(x) * gains[:, k:, None, None]
        return out[..., :h, :w]

    def s_theta(self, y: Tensor, tau: Tensor, emb: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(v, s_θ(v, t)) with v = y − m and s_θ = (v + N_θ(v, t)) / (t + v_d), τ = log t."""
        emb = self.embedding(tau) if emb is None else emb
        scale = (torch.exp(tau) + self.data_var).view(-1, 1, 1, 1)
        v = y - self.data_mean.view(1, -1, 1, 1)
        if self.scaled_input:
            std = scale.sqrt()
            return v, (v + std * self.network(v / std, emb)) / scale
        return v, (v + self.network(v, emb)) / scale

    def energy_log_t(self, y: Tensor, tau: Tensor) -> Tensor:
        emb = self.embedding(tau)
        v, s = self.s_theta(y, tau, emb)
        offset = 0.5 * torch.log(2 * math.pi * (torch.exp(tau) + self.data_var)) + self.offset_head(emb)[:, 0]
        return 0.5 * (v * s).flatten(1).sum(dim=1) + _dims(y) * offset


class ScoreUNet(EnergyUNet):
    """The score-only twin of :class:`EnergyUNet`: the same network and parameters, with s_θ(y − m, t)
    read directly as minus the space score instead of differentiating an energy,

        x̂(y) = y − t s_θ(y − m, t),     L_DSM = ‖z − √t s_θ(y − m, t)‖² / d,

    (``--objective score`` in :mod:`explorer.train_energy`). It has no energy and no −log p; it is the
    baseline that shows what the energy parameterization costs in denoising PSNR.
    """

    def grad_energy(self, y: Tensor, t: Tensor | float) -> Tensor:
        """s_θ(y − m, t), the network's direct estimate of −∇_y log p_t(y) (one forward pass, no autograd)."""
        self._check(y)
        return self.s_theta(y, self.log_t(y, t))[1]

    NO_ENERGY = "a ScoreUNet models the score only: it has no energy U(y, t) and no −log p(x)"

    def energy_log_t(self, y: Tensor, tau: Tensor) -> Tensor:
        raise TypeError(self.NO_ENERGY)

    def nll(self, x: Tensor) -> Tensor:
        raise TypeError(self.NO_ENERGY)


# --------------------------------------------------------------------------- the radial toy energy
class RadialEnergy(EnergyDenoiser):
    """U(y, t) = d · f_θ(log(‖y‖²/d), log t), f_θ a small SiLU MLP: a model of isotropic densities.

    Used for the paper's toy (a scale mixture of two centred Gaussians in high dimension), where
    −log p_t is a function of ‖y‖² and t only.
    """

    def __init__(self, channels: int = 1, hidden: int = 64, t_min: float = 1e-3, t_max: float = T_MAX):
        super().__init__(channels, t_min, t_max)
        self.config = dict(channels=channels, hidden=hidden, t_min=t_min, t_max=t_max)
        self.lo, self.hi = math.log(t_min), math.log(t_max)
        self.mlp = nn.Sequential(
            nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )

    def energy_log_t(self, y: Tensor, tau: Tensor) -> Tensor:
        d = _dims(y)
        log_u = torch.log(y.flatten(1).pow(2).mean(dim=1).clamp_min(1e-12))
        u_tau = (2 * tau - (self.lo + self.hi)) / (self.hi - self.lo)
        return d * self.mlp(torch.stack([log_u, u_tau], dim=1))[:, 0]


# --------------------------------------------------------------------------- objective
def dual_score_loss(
    model: EnergyDenoiser,
    x: Tensor,
    tau: Tensor,
    objective: str = "dual",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Mean over the batch of L_DSM + L_TSM ("dual") or L_DSM alone ("dsm"); see the module docstring.
    ``"score"`` trains a :class:`ScoreUNet` by L_DSM on its direct score output.

    ``tau`` = log t per image (B,). Returns the loss (differentiable, double backprop) and the batch
    means of both terms as floats (L_TSM is reported even when not optimised).
    """
    if objective not in ("dual", "dsm", "score"):
        raise ValueError(f"unknown objective {objective!r} (dual, dsm or score)")
    d = _dims(x)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    t = torch.exp(tau).to(x.dtype).view(-1, 1, 1, 1)
    y = x + t.sqrt() * z
    if objective == "score":
        if not isinstance(model, ScoreUNet):
            raise ValueError("the score objective trains a ScoreUNet (a model of the score, not of an energy)")
        dsm = (z - t.sqrt() * model.grad_energy(y, t.view(-1))).flatten(1).pow(2).sum(dim=1) / d
        return dsm.mean(), {"dsm": dsm.mean().item(), "tsm": float("nan")}
    _, gy, gtau = model.energy_and_scores(y, tau.to(x.dtype), create_graph=True)
    dsm = (z - t.sqrt() * gy).flatten(1).pow(2).sum(dim=1) / d
    tsm = ((gtau - d / 2 + 0.5 * z.flatten(1).pow(2).sum(dim=1)) / d) ** 2
    loss = (dsm + tsm).mean() if objective == "dual" else dsm.mean()
    return loss, {"dsm": dsm.mean().item(), "tsm": tsm.mean().item()}


# --------------------------------------------------------------------------- normalization
@torch.no_grad()
def estimate_log_z(
    model: EnergyDenoiser,
    x: Tensor,
    t: float | None = None,
    draws: int = 1,
    batch: int = 256,
    generator: torch.Generator | None = None,
    store: bool = True,
) -> tuple[float, float]:
    """log Z = (d/2) log(2πeT) − mean U(x + √T z, T) over held-out images ``x`` (B, C, H, W).

    T defaults to the model's ``t_max``. Returns (log Z, its Monte-Carlo standard error); with
    ``store`` it is written into the model's ``log_z`` buffer, which :meth:`EnergyDenoiser.nll` uses.
    """
    T = float(model.t_max) if t is None else float(t)
    d = _dims(x)
    values = []
    for _ in range(draws):
        for chunk in x.split(batch):
            y = chunk + math.sqrt(T) * torch.randn(chunk.shape, generator=generator, dtype=chunk.dtype, device=chunk.device)
            values.append(model.energy(y, T).double())
    u = torch.cat(values)
    log_z = 0.5 * d * math.log(2 * math.pi * math.e * T) - u.mean().item()
    err = u.std().item() / math.sqrt(u.numel()) if u.numel() > 1 else float("nan")
    if store:
        model.log_z.fill_(log_z)
    return log_z, err


# --------------------------------------------------------------------------- probability-flow ODE
def nll_ode(
    model: EnergyDenoiser,
    x: Tensor,
    steps: int = 50,
    probes: int = 4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """−log p_{t_min}(x) by the probability-flow ODE, using only the model's space score.

    In τ = log t the flow is dy/dτ = (t/2) ∇_y U(y, t) (``steps`` Runge-Kutta-4 steps, uniform in τ from
    log t_min to log t_max = log T; 4 score evaluations each), with d/dτ log p_t(y(τ)) = −(t/2) ΔU; so

        −log p_{t_min}(x) = −log N(y_T; m, T·I) − ∫ (t/2) ΔU(y(τ), t) dτ,

    m the model's ``data_mean`` and ΔU = E_ε[εᵀ ∇_y(εᵀ ∇_y U)] by Hutchinson with ``probes``
    Rademacher vectors per image and step. Returns (B,) nats.
    """
    lo, hi = math.log(float(model.t_min)), math.log(float(model.t_max))
    h = (hi - lo) / steps
    b = x.shape[0]
    rep = lambda a: a.repeat_interleave(probes, dim=0)  # noqa: E731

    def velocity_and_divergence(y: Tensor, tau: float) -> tuple[Tensor, Tensor]:
        t = math.exp(tau)
        with torch.enable_grad():
            yy = rep(y).detach().requires_grad_(True)
            taus = torch.full((yy.shape[0],), tau, dtype=y.dtype, device=y.device)
            u = model.energy_log_t(yy, taus)
            (g,) = torch.autograd.grad(u.sum(), yy, create_graph=True)
            eps = torch.randint(0, 2, yy.shape, generator=generator).to(y) * 2 - 1
            (hv,) = torch.autograd.grad((g * eps).sum(), yy)
        lap = (hv * eps).flatten(1).sum(dim=1).view(b, probes).mean(dim=1)
        vel = 0.5 * t * g.detach().view(b, probes, *y.shape[1:])[:, 0]
        return vel, 0.5 * t * lap

    y = x.detach().clone()
    integral = torch.zeros(b, dtype=torch.float64, device=x.device)
    tau = lo
    for _ in range(steps):  # classical Runge-Kutta 4 on (y, ∫ (t/2) ΔU dτ)
        k1, d1 = velocity_and_divergence(y, tau)
        k2, d2 = velocity_and_divergence(y + 0.5 * h * k1, tau + 0.5 * h)
        k3, d3 = velocity_and_divergence(y + 0.5 * h * k2, tau + 0.5 * h)
        k4, d4 = velocity_and_divergence(y + h * k3, tau + h)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        integral += (h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)).double()
        tau += h
    T = math.exp(hi)
    d = _dims(x)
    r2 = (y - model.data_mean.view(1, -1, 1, 1)).flatten(1).pow(2).sum(dim=1).double()
    prior = 0.5 * r2 / T + 0.5 * d * math.log(2 * math.pi * T)
    return (prior - integral).to(x.dtype)



register("energy-unet", EnergyUNet)
register("energy-radial", RadialEnergy)
register("score-unet", ScoreUNet)
