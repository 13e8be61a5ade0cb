"""Energy models by dual score matching: exact identities, losses at known optima, normalization,
the ODE cross-check, the radial toy (dual vs DSM), checkpoints and the handle."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from explorer.checkpoints import load, save_model
from explorer.energy import (
    CONTINUOUS,
    UNITS,
    EnergyDenoiser,
    EnergyUNet,
    NLLQuantity,
    RadialEnergy,
    ScoreUNet,
    bits_per_dim,
    db_per_dim,
    dequantization_noise,
    discrete_nll,
    dual_score_loss,
    estimate_log_z,
    in_unit,
    nats_per_dim,
    nll_ode,
    nll_quantity,
    quantize,
    sample_log_t,
)
from explorer.handle import ModelHandle

torch.set_num_threads(1)


class IsotropicGaussianEnergy(EnergyDenoiser):
    """The exact energy of x ~ N(m, v I) plus a constant c and a deliberate time error k·d·log t:

        U(y, t) = ‖y − m‖²/(2(v + t)) + (d/2) log 2π(v + t) + c + k·d·log t.
    """

    def __init__(self, m: float = 0.5, v: float = 0.04, c: float = 0.0, k: float = 0.0):
        super().__init__(1, 1e-6, 1e3)
        self.m, self.v, self.c, self.k = m, v, c, k
        self.data_mean.fill_(m)

    def energy_log_t(self, y, tau):
        d = y[0].numel()
        t = torch.exp(tau)
        r2 = (y - self.m).flatten(1).pow(2).sum(dim=1)
        return r2 / (2 * (self.v + t)) + d / 2 * torch.log(2 * math.pi * (self.v + t)) + self.c + self.k * d * tau

    def exact_nll(self, x, t):
        d = x[0].numel()
        return (x - self.m).flatten(1).pow(2).sum(dim=1) / (2 * (self.v + t)) + d / 2 * math.log(2 * math.pi * (self.v + t))


def tiny_unet(seed: int = 0, **options) -> EnergyUNet:
    torch.manual_seed(seed)
    model = EnergyUNet(channels=1, width=4, levels=2, convs_per_block=1, embed=16, **options)
    with torch.no_grad():  # a non-trivial network: random gains and offset
        model.gain_head.weight.normal_(0, 0.5)
        model.offset_head.weight.normal_(0, 0.1)
        model.head.weight.mul_(10)
    model.set_data_stats(torch.rand(16, 1, 8, 8))
    return model.eval()


# --------------------------------------------------------------------------- units
def test_unit_conversions():
    d = 100
    nll = d * math.log(2.0)  # 1 bit per dimension
    assert bits_per_dim(nll, d) == pytest.approx(1.0)
    assert bits_per_dim(nll, d, discretization_bits=8) == pytest.approx(9.0)
    assert db_per_dim(d * math.log(10.0), d) == pytest.approx(10.0)  # p = 10^-d → 10 dB per dimension


def test_unit_conversions_against_known_values():
    """nats ↔ bits/dim ↔ dB/dim in one place: dB/dim = −10·log10(p)/d = 10·log10(e)·nats/d."""
    d = 1024
    one_bit = d * math.log(2.0)  # p = 2^-d
    assert in_unit(one_bit, d, "nats") == one_bit
    assert in_unit(one_bit, d, "nats/dim") == pytest.approx(0.6931471805599453, rel=1e-15)
    assert in_unit(one_bit, d, "bits/dim") == pytest.approx(1.0, rel=1e-15)
    assert in_unit(one_bit, d, "dB/dim") == pytest.approx(3.010299956639812, rel=1e-15)  # 10·log10(2)
    assert in_unit(float(d), d, "dB/dim") == pytest.approx(4.342944819032518, rel=1e-15)  # 1 nat/dim = 10·log10(e)
    assert in_unit(-2.5 * d, d, "nats/dim") == nats_per_dim(-2.5 * d, d) == -2.5
    # energy-mnist's card figure: 1178.297 nats per padded 32×32 digit = 1.66008 bits/dim = 4.9973 dB/dim
    assert in_unit(1178.297, 1024, "bits/dim") == pytest.approx(1.66008, abs=1e-5)
    assert in_unit(1178.297, 1024, "dB/dim") == pytest.approx(4.99734, abs=1e-5)
    t = in_unit(torch.tensor([one_bit, 2 * one_bit], dtype=torch.float64), d, "bits/dim")  # tensors and arrays too
    torch.testing.assert_close(t, torch.tensor([1.0, 2.0], dtype=torch.float64))
    np.testing.assert_allclose(in_unit(np.array([one_bit]), np.array([d]), "dB/dim"), [10 * math.log10(2)])
    assert UNITS == ("nats", "nats/dim", "bits/dim", "dB/dim")
    with pytest.raises(ValueError, match="unknown unit"):
        in_unit(1.0, d, "bits")


# --------------------------------------------------------------------------- discrete (8-bit) likelihoods
def _grid_images(n: int, shape=(1, 4, 4), lo=110, hi=146, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, (n, *shape), generator=g).double() / 255


def test_discrete_nll_of_the_uniform_density_is_exactly_8_bits():
    """p = 1 on [0,1]^d puts mass 2^-8 in every 8-bit bin: −log2 P / d = 8 exactly, with no spread."""
    x = _grid_images(3)
    r = discrete_nll(lambda y: torch.zeros(y.shape[0], dtype=torch.float64), x, bits=8, draws=4)
    d = x[0].numel()
    torch.testing.assert_close(r.nats, torch.full((3,), d * 8 * math.log(2.0), dtype=torch.float64))
    torch.testing.assert_close(bits_per_dim(r.nats, d), torch.full((3,), 8.0, dtype=torch.float64))
    assert torch.all(r.draw_sd == 0) and torch.allclose(r.iw_nats, r.nats)


def test_discrete_nll_bounds_the_exact_bin_probability_of_a_gaussian():
    """x ~ N(m, s²I) per value: P(bin) = Π [Φ((x+δ−m)/s) − Φ((x−m)/s)] exactly, and the bound's expectation
    E_u[−log p(x + u)] + d·8·ln 2 is known in closed form (E[(x+u−m)²] = (x−m)² + (x−m)δ + δ²/3)."""
    from scipy import stats

    m, s, delta = 0.5, 0.01, 2.0**-8  # a density narrow on the scale of a bin: the Jensen gap is visible
    x = _grid_images(6)
    d = x[0].numel()

    def gauss_nll(y):
        return ((y - m) ** 2).flatten(1).sum(1) / (2 * s**2) + d / 2 * math.log(2 * math.pi * s**2)

    r = discrete_nll(gauss_nll, x, bits=8, draws=64, seed=1)
    xv = x.flatten(1).numpy()
    exact = -np.log(stats.norm.cdf((xv + delta - m) / s) - stats.norm.cdf((xv - m) / s)).sum(axis=1)
    bound = (((xv - m) ** 2 + (xv - m) * delta + delta**2 / 3).sum(axis=1) / (2 * s**2)
             + d / 2 * math.log(2 * math.pi * s**2) + d * 8 * math.log(2.0))
    assert np.all(bound > exact + 0.01 * d)  # a bound (here 0.09–0.16 nats per value above −log P)
    assert np.all(np.abs(r.nats.numpy() - bound) < 4 * r.stderr.numpy())  # the draws estimate it without bias
    assert np.all(r.iw_nats.numpy() <= r.nats.numpy() + 1e-9)  # importance weighting is tighter
    assert np.all(np.abs(r.iw_nats.numpy() - exact) < np.abs(r.nats.numpy() - exact) + 4 * r.stderr.numpy())


def test_dequantization_draws_are_seeded_per_image():
    x = _grid_images(4)
    u = dequantization_noise(x, 8, draws=3, seed=0)
    assert u.shape == (3, 4, 1, 4, 4) and float(u.min()) >= 0 and float(u.max()) < 2.0**-8
    again = dequantization_noise(x[[2, 0]], 8, draws=3, seed=0)  # another batch, another order: same draws
    torch.testing.assert_close(again[:, 0], u[:, 2])
    torch.testing.assert_close(again[:, 1], u[:, 0])
    assert not torch.allclose(u[:, 0], u[:, 1])  # different images, different draws
    assert not torch.allclose(dequantization_noise(x, 8, 3, seed=1), u)
    # an image off the 8-bit grid is first rounded to it (an 8-bit image is unchanged)
    torch.testing.assert_close(quantize(x, 8), x)
    torch.testing.assert_close(quantize(x + 0.3 / 255, 8), x)


def test_the_quantity_follows_the_card():
    assert nll_quantity({"energy": {"dequantize_bits": 8}}) == NLLQuantity(8, 8, 0)
    assert nll_quantity({"energy": {"dequantize_bits": 0}}) is CONTINUOUS
    assert nll_quantity({"name": "x"}) is CONTINUOUS and nll_quantity(None) is CONTINUOUS
    q = nll_quantity({"energy": {"dequantize_bits": 8}}, draws=4)
    assert q.discrete and "8-bit" in q.short() and "4 seeded draws" in q.describe()
    assert "density on [0,1]^d" in CONTINUOUS.short() and not CONTINUOUS.discrete


# --------------------------------------------------------------------------- model identities
def test_denoiser_is_tweedie_by_finite_differences_and_works_without_grad():
    model = tiny_unet()
    y = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    model.double()
    sigma, t = 0.3, 0.09
    with torch.no_grad():
        xhat = model(y, sigma)
    assert not xhat.requires_grad
    i, eps = (0, 0, 3, 5), 1e-6
    e = torch.zeros_like(y)
    e[i] = eps
    with torch.no_grad():
        fd = (model.energy(y + e, t) - model.energy(y - e, t))[0] / (2 * eps)
    assert (y - xhat)[i].item() / t == pytest.approx(fd.item(), rel=1e-5)
    assert model.blind is False
    with pytest.raises(ValueError, match="sigma"):
        model(y)


def test_denoiser_is_differentiable_when_grad_is_on():
    model = tiny_unet()
    y = torch.rand(1, 1, 8, 8, requires_grad=True)
    out = model(y, 0.2)
    (g,) = torch.autograd.grad(out.sum(), y)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_energy_is_quadratic_along_rays_from_the_mean():
    """U(m + αv, t) − U(m, t) = α² (U(m + v, t) − U(m, t)): the homogeneous part is degree 2."""
    model = tiny_unet().double()
    m = model.data_mean.view(1, -1, 1, 1)
    v = torch.randn(3, 1, 8, 8, dtype=torch.float64) * 0.2
    t = torch.tensor([1e-6, 0.01, 10.0], dtype=torch.float64)
    with torch.no_grad():
        u0 = model.energy(m.expand_as(v), t)
        u1 = model.energy(m + v, t)
        u3 = model.energy(m + 3 * v, t)
    torch.testing.assert_close(u3 - u0, 9 * (u1 - u0), rtol=1e-9, atol=1e-9)


def test_scaled_input_is_the_same_function_for_relu_and_not_for_a_smooth_activation():
    """N_θ(v, t) = √(t + v_d)·UNet(v / √(t + v_d), t) equals UNet(v, t) when the UNet is homogeneous."""
    y = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    t = torch.tensor([1e-4, 0.5], dtype=torch.float64)

    def energies(activation):
        plain, scaled = (tiny_unet(activation=activation, scaled_input=s).double() for s in (False, True))
        scaled.load_state_dict(plain.state_dict())
        with torch.no_grad():
            return plain.energy(y, t), scaled.energy(y, t)

    torch.testing.assert_close(*energies("relu"), rtol=1e-10, atol=1e-10)
    u_plain, u_scaled = energies("silu")
    assert (u_plain - u_scaled).abs().max() > 1e-3


def test_a_smooth_energy_is_tweedie_and_not_quadratic_along_rays():
    model = tiny_unet(activation="gelu", scaled_input=True).double()
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    sigma, t = 0.2, 0.04
    with torch.no_grad():
        xhat = model(y, sigma)
    i, eps = (0, 0, 2, 6), 1e-6
    e = torch.zeros_like(y)
    e[i] = eps
    with torch.no_grad():
        fd = (model.energy(y + e, t) - model.energy(y - e, t))[0] / (2 * eps)
        m = model.data_mean.view(1, -1, 1, 1)
        v = 0.3 * torch.randn_like(y)
        u0, u1, u3 = (model.energy(m + a * v, t) for a in (0.0, 1.0, 3.0))
    assert (y - xhat)[i].item() / t == pytest.approx(fd.item(), rel=1e-5)
    assert abs((u3 - u0).item() - 9 * (u1 - u0).item()) > 1e-3 * abs((u3 - u0).item())
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        EnergyUNet(activation="tanh")


def test_a_zero_network_is_the_data_gaussian_for_every_activation():
    """N_θ = 0 (zero head): U − U(m) = ‖v‖²/2(t + v_d), the Gaussian N(m, v_d I) smoothed to variance t."""
    for activation, scaled in (("relu", False), ("silu", True), ("gelu", False)):
        model = tiny_unet(activation=activation, scaled_input=scaled).double()
        with torch.no_grad():
            model.head.weight.zero_()
        m = model.data_mean.view(1, -1, 1, 1)
        v = 0.2 * torch.randn(2, 1, 8, 8, dtype=torch.float64)
        t = torch.tensor([0.01, 2.0], dtype=torch.float64)
        with torch.no_grad():
            gap = model.energy(m + v, t) - model.energy(m.expand_as(v), t)
        expected = v.flatten(1).pow(2).sum(dim=1) / (2 * (t + model.data_var))
        torch.testing.assert_close(gap, expected, rtol=1e-10, atol=1e-10)


def test_t_is_clamped_below_t_min():
    model = tiny_unet()
    y = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.energy(y, 0.0), model.energy(y, float(model.t_min)))


# --------------------------------------------------------------------------- losses at known optima
def test_dsm_at_the_exact_energy_has_its_known_value():
    """For x ~ N(m, vI) and the exact energy, E L_DSM = v / (v + t) at every t."""
    model = IsotropicGaussianEnergy(v=0.04)
    g = torch.Generator().manual_seed(0)
    for t in (1e-4, 0.04, 10.0):
        x = 0.5 + 0.2 * torch.randn(4000, 1, 8, 8, generator=g, dtype=torch.float64)
        _, parts = dual_score_loss(model, x, torch.full((4000,), math.log(t), dtype=torch.float64), generator=g)
        assert parts["dsm"] == pytest.approx(0.04 / (0.04 + t), rel=0.01)


def test_time_score_loss_is_minimised_by_the_exact_time_dependence():
    """L_TSM(k) = E(r + k)² for U + k·d·log t: a parabola with its minimum at k = 0 iff the signs are right."""
    g = torch.Generator().manual_seed(1)
    x = 0.5 + 0.2 * torch.randn(20000, 1, 4, 4, generator=g, dtype=torch.float64)
    tau = sample_log_t(20000, 1e-6, 1e3, g).double()
    losses = {}
    for k in (-0.1, 0.0, 0.1):
        gen = torch.Generator().manual_seed(2)  # same noise for every k
        losses[k] = dual_score_loss(IsotropicGaussianEnergy(v=0.04, k=k), x, tau, generator=gen)[1]["tsm"]
    curvature = losses[0.1] + losses[-0.1] - 2 * losses[0.0]
    assert curvature == pytest.approx(2 * 0.1**2, rel=1e-6)  # the parabola k² + 2kE[r] + E[r²]
    assert abs(losses[0.1] - losses[-0.1]) / (2 * 0.1) < 0.01 * 2  # slope 2E[r] ≈ 0 at k = 0


def test_dsm_objective_ignores_the_time_score():
    model = IsotropicGaussianEnergy(k=0.5)
    x = 0.5 + 0.2 * torch.randn(64, 1, 4, 4, dtype=torch.float64)
    tau = torch.zeros(64, dtype=torch.float64)
    dual, parts = dual_score_loss(model, x, tau, "dual", torch.Generator().manual_seed(0))
    dsm, _ = dual_score_loss(model, x, tau, "dsm", torch.Generator().manual_seed(0))
    assert dual.item() == pytest.approx(parts["dsm"] + parts["tsm"])
    assert dsm.item() == pytest.approx(parts["dsm"])
    with pytest.raises(ValueError, match="objective"):
        dual_score_loss(model, x, tau, "ml")


# --------------------------------------------------------------------------- normalization and the ODE
def test_log_z_recovers_the_unknown_constant():
    """U = −log p_t + c: estimate_log_z gives −c − (d/2) log(1 + v/T) and nll = exact −log p."""
    model = IsotropicGaussianEnergy(v=0.04, c=123.4).double()
    g = torch.Generator().manual_seed(3)
    x = 0.5 + 0.2 * torch.randn(2000, 1, 8, 8, generator=g, dtype=torch.float64)
    log_z, err = estimate_log_z(model, x, generator=g)
    d, T = 64, 1e3
    assert log_z == pytest.approx(-123.4 - d / 2 * math.log(1 + 0.04 / T), abs=3 * err + 1e-6)
    held = x[:10]
    torch.testing.assert_close(model.nll(held), model.exact_nll(held, 1e-6), atol=3 * err + 1e-6, rtol=0)


def test_nll_requires_normalization():
    with pytest.raises(ValueError, match="not normalized"):
        tiny_unet().nll(torch.rand(1, 1, 8, 8))


def test_probability_flow_ode_matches_the_exact_nll():
    model = IsotropicGaussianEnergy(v=0.04).double()
    x = 0.5 + 0.2 * torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ode = nll_ode(model, x, steps=40, probes=2, generator=torch.Generator().manual_seed(5))
    exact = model.exact_nll(x, 1e-6)
    # the only approximations besides RK4: p_T ≈ N(m, T·I) instead of N(m, (T + v)·I)
    torch.testing.assert_close(ode, exact, rtol=0.01, atol=0.05)


# --------------------------------------------------------------------------- the radial toy
def _toy_sample(n, g, d=1000):
    scale = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, 4.0)
    return (scale[:, None] * torch.randn(n, d, generator=g)).view(n, 1, 1, d)


def _toy_gap(objective: str, steps: int) -> tuple[float, float]:
    d, t_min = 1000, 1e-3
    torch.manual_seed(0)
    model = RadialEnergy(hidden=32, t_min=t_min, t_max=1e3)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss, _ = dual_score_loss(model, _toy_sample(128, g), sample_log_t(128, t_min, 1e3, g), objective, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x1 = torch.randn(300, 1, 1, d, generator=g)
    x2 = 4 * torch.randn(300, 1, 1, d, generator=g)
    with torch.no_grad():
        gap = (model.energy(x2, t_min).mean() - model.energy(x1, t_min).mean()).item()
    r1, r2 = x1.pow(2).flatten(1).sum(1), x2.pow(2).flatten(1).sum(1)

    def exact(r):
        logs = [math.log(0.5) - r / (2 * (v + t_min)) - d / 2 * math.log(2 * math.pi * (v + t_min)) for v in (1.0, 16.0)]
        return -torch.logsumexp(torch.stack(logs), 0)

    return gap, (exact(r2).mean() - exact(r1).mean()).item()


def test_radial_toy_dual_recovers_the_energy_gap_and_dsm_does_not():
    gap_dual, exact = _toy_gap("dual", 400)
    gap_dsm, _ = _toy_gap("dsm", 400)
    assert abs(gap_dual / exact - 1) < 0.05
    assert abs(gap_dsm / exact - 1) > 0.05


# --------------------------------------------------------------------------- checkpoints and the handle
@pytest.mark.parametrize("options", [{}, {"activation": "silu", "scaled_input": True}])
def test_checkpoint_round_trip_keeps_log_z_and_t_range(tmp_path, options):
    model = tiny_unet(**options)
    model.log_z.fill_(-42.5)
    save_model(model, "energy-unet", tmp_path, "tiny-energy", output="denoised")
    handle = load(tmp_path / "tiny-energy.json", device="cpu")
    assert handle.card["config"]["t_min"] == pytest.approx(float(model.t_min))
    assert {k: handle.card["config"][k] for k in ("activation", "scaled_input")} == {k: model.config[k] for k in ("activation", "scaled_input")}
    assert float(handle.model.log_z) == -42.5
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = model.nll(x)
    torch.testing.assert_close(handle.nll(x), expected)
    one = handle.nll(np.asarray(x[0, 0]))
    assert one.shape == (1,) and one.item() == pytest.approx(expected[0].item(), rel=1e-5)
    torch.testing.assert_close(handle.denoise(x, 0.1), model(x, 0.1))


def test_handle_nll_needs_an_energy_model(tiny_bf_cnn):
    with pytest.raises(TypeError, match="no normalized density"):
        ModelHandle(tiny_bf_cnn, device="cpu").nll(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="no energy"):
        ModelHandle(tiny_bf_cnn, device="cpu").energy(torch.rand(1, 1, 8, 8), 0.1)


def test_handle_energy_and_nll_hold_the_lock():
    model = tiny_unet()
    handle = ModelHandle(model, device="cpu")
    held = []
    real = type(model).energy

    def energy(self, y, t):
        held.append(handle.lock.held_by_me())
        return real(self, y, t)

    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        expected = model.energy(x, 0.01)
    model.energy = energy.__get__(model)
    torch.testing.assert_close(handle.energy(x, 0.01), expected)
    model.log_z.fill_(1.0)
    handle.nll(x)  # nll reads U(x, t_min) through the same method
    assert held == [True, True]


# --------------------------------------------------------------------------- the training CLI
def test_training_cli_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    from explorer.train_energy import main

    common = ["--data", "discs", "--width", "4", "--levels", "2", "--convs-per-block", "1", "--embed", "8", "--heldout", "20",
              "--batch", "4", "--patch", "16", "--steps", "4", "--log-every", "1", "--quiet", "--checkpoint-minutes", "0",
              "--device", "cpu"]
    assert main([*common, "--name", "straight", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--name", "split", "--out", str(tmp_path / "b"), "--budget-minutes", "1e-9"]) == 0  # stops at once
    assert main([*common, "--name", "split", "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = load_file(str(tmp_path / "a" / "straight.safetensors"))
    b = load_file(str(tmp_path / "b" / "split.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    card = json.loads((tmp_path / "b" / "split.json").read_text())
    assert card["architecture"] == "energy-unet" and card["training"]["steps"] == 4
    assert math.isfinite(card["energy"]["log_z"]) and card["metrics"]["heldout_bits_per_dim"] == pytest.approx(
        card["metrics"]["heldout_nll_nats"] / (256 * math.log(2)), rel=1e-3)
    log = (tmp_path / "b" / "training" / "split" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4]
    # wall and core hours, threads and device under names that say what they are; one phase
    training = card["training"]
    assert set(training["compute"]) == {"wall_hours", "core_hours", "threads", "device"} and "cpu_hours" not in training
    assert all({"wall_hours", "core_hours"} <= set(e) and "cpu_hours" not in e for e in training["history"])
    assert len(training["phases"]) == 1 and training["phases"][0].startswith("steps 0–4: dual objective")
    assert training["heldout"] == 20 and card["energy"]["normalized_at"].endswith("on 20 held-out images")


def _split(*extra):
    from explorer.train_energy import parse_args, split_images

    return split_images(parse_args(["--name", "n", "--patch", "16", *extra]))


def test_held_out_images_are_the_registrys_each_once():
    from explorer.data import registry

    train, held = _split("--data", "discs", "--heldout", "20")
    expected = torch.stack([torch.from_numpy(registry.dataset("discs").test_image(i, 16))[None] for i in range(20)])
    torch.testing.assert_close(held, expected, rtol=0, atol=0)
    assert len(torch.unique(held.flatten(1), dim=0)) == 20
    assert len(train) == registry.SYNTHETIC_TRAINING_IMAGES
    assert not any(np.array_equal(im, held[0, 0].numpy()) for im in train[:100])
    if not registry.mnist.default_mnist_path().is_file():
        pytest.skip("no MNIST digits here")
    train, held = _split("--data", "mnist", "--patch", "32")
    digits = torch.from_numpy(registry.mnist_held_out_digits())[:, None]
    torch.testing.assert_close(held, digits, rtol=0, atol=0)  # the 500 held-out digits, in order, each once
    assert len(torch.unique(held.flatten(1), dim=0)) == len(torch.unique(digits.flatten(1), dim=0))
    assert len(train) == 10_000 - registry.MNIST_HELD_OUT
    with pytest.raises(ValueError, match="holds out 500"):
        _split("--data", "mnist", "--patch", "32", "--heldout", "501")


def test_a_resumed_run_whose_held_out_images_changed_measures_them_again(tmp_path):
    """Runs of the old code drew their held-out digits with replacement: their last entry is measured again."""
    from explorer.train_energy import main

    common = ["--data", "discs", "--width", "4", "--levels", "2", "--convs-per-block", "1", "--embed", "8", "--batch", "4",
              "--patch", "16", "--steps", "3", "--quiet", "--checkpoint-minutes", "0", "--device", "cpu", "--name", "e",
              "--out", str(tmp_path)]
    assert main([*common, "--heldout", "20"]) == 0
    before = json.loads((tmp_path / "e.json").read_text())
    assert main([*common, "--heldout", "20", "--resume"]) == 0  # the same images: nothing to measure
    assert json.loads((tmp_path / "e.json").read_text())["training"]["history"] == before["training"]["history"]
    assert main([*common, "--heldout", "10", "--resume"]) == 0
    after = json.loads((tmp_path / "e.json").read_text())
    assert [e["step"] for e in after["training"]["history"]] == [3]
    assert after["metrics"]["heldout_nll_nats"] != before["metrics"]["heldout_nll_nats"]
    assert after["energy"]["normalized_at"].endswith("on 10 held-out images")


def test_a_folder_holds_out_its_val_folder_or_its_last_images(tmp_path):
    from PIL import Image

    for name, count in (("data", 5), ("val", 2)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.fromarray(np.full((20, 24), 10 * i + (100 if name == "val" else 0), np.uint8)).save(tmp_path / name / f"{i}.png")
    train, held = _split("--data", str(tmp_path / "data"), "--heldout", "2")
    assert len(train) == 3 and held.shape == (2, 1, 16, 16)
    torch.testing.assert_close(held[:, 0, 0, 0], torch.tensor([30, 40]) / 255.0)  # the last two, center-cropped
    train, held = _split("--data", str(tmp_path / "data"), "--val", str(tmp_path / "val"))
    assert len(train) == 5 and held.shape == (2, 1, 16, 16)
    torch.testing.assert_close(held[:, 0, 0, 0], torch.tensor([100, 110]) / 255.0)


# --------------------------------------------------------------------------- the score-only twin
def test_score_unet_is_the_energy_network_read_directly_as_the_score():
    energy = tiny_unet()
    score = ScoreUNet(**energy.config)
    score.load_state_dict(energy.state_dict())
    assert sum(p.numel() for p in score.parameters()) == sum(p.numel() for p in energy.parameters())
    y, t = torch.rand(2, 1, 8, 8), torch.tensor([0.01, 0.3])
    tau = torch.log(t)
    _, s = energy.s_theta(y, tau)
    with torch.no_grad():
        torch.testing.assert_close(score(y, t.sqrt()), y - t.view(-1, 1, 1, 1) * s)
        # the energy model's denoiser differentiates ½⟨v, s_θ⟩ + d·b(t): another function of y
        assert not torch.allclose(energy(y, t.sqrt()), score(y, t.sqrt()), atol=1e-4)
    with pytest.raises(TypeError, match="no energy"):
        score.energy(y, t)
    with pytest.raises(ValueError, match="score objective trains a ScoreUNet"):
        dual_score_loss(energy, y, tau, "score")


def test_score_objective_trains_and_saves_a_loadable_score_model(tmp_path):
    from explorer.train_energy import main

    common = ["--data", "discs", "--width", "4", "--levels", "2", "--convs-per-block", "1", "--embed", "8", "--heldout", "20",
              "--batch", "8", "--patch", "16", "--log-every", "1", "--quiet", "--checkpoint-minutes", "0", "--lr", "3e-3",
              "--objective", "score", "--name", "score", "--out", str(tmp_path), "--device", "cpu"]
    assert main([*common, "--steps", "1", "--checkpoint-every", "1"]) == 0
    first = json.loads((tmp_path / "score.json").read_text())["metrics"]["heldout_dsm"]
    assert main([*common, "--steps", "60", "--checkpoint-every", "60", "--resume"]) == 0
    card = json.loads((tmp_path / "score.json").read_text())
    assert card["architecture"] == "score-unet" and "energy" not in card and card["training"]["objective"] == "score"
    assert card["metrics"]["heldout_dsm"] < first
    handle = load(tmp_path / "score.json", device="cpu")
    y = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(handle.denoise(y, 0.2), handle.model(y, 0.2))
    with pytest.raises(TypeError):
        handle.nll(y)
