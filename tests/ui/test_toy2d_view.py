"""Toy2DView without a browser: the heat map is p_σ (integrates to ~1, drawn the right way up), the
arrows go from y to the MMSE x̂(y) and point toward the curve, the sampler paths and the animation."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from explorer.toy2d import CurveMMSE
from explorer.ui.toy2d_view import Toy2DView

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def view():
    return Toy2DView(resolution=81, n_arrows=30, chains=4, sigma=0.2)


def test_heat_map_is_a_density(view):
    dx = float(view.xs[1] - view.xs[0])
    assert view.density.shape == (81, 81)
    assert float(view.density.sum()) * dx * dx == pytest.approx(1.0, abs=0.02)
    assert (view.density >= 0).all()
    assert "∫p_σ over the square = 1.00" in view._info.object
    view.sigma = 0.1
    assert float(view.density.sum()) * dx * dx == pytest.approx(1.0, abs=0.02)


def test_heat_map_is_drawn_the_right_way_up(view):
    """The displayed image at plot point (x₁, x₂) is p_σ at that point (an asymmetric curve: a = 0.5, 3 lobes)."""
    view.param.update(lobes=3, amplitude=0.5)
    img = view._heat_plot(view._heat_pipe.data)
    xs = view.xs
    for i, j in [(10, 60), (60, 10), (40, 70), (70, 40)]:
        shown = float(img[xs[j], xs[i]])  # hv: (x₁, x₂)
        assert shown == pytest.approx(float(view.density[i, j]), rel=1e-6)
        expected = float(torch.exp(view.prior.log_density(torch.tensor([[xs[j], xs[i]]]), 0.2))[0])
        assert shown == pytest.approx(expected, rel=1e-6)


def test_arrows_go_from_noisy_points_to_the_mmse_and_toward_the_curve(view):
    y, xh = view._arrow_pipe.data
    np.testing.assert_allclose(y, view.noisy)
    np.testing.assert_allclose(xh, view.denoised)
    assert y.shape == (30, 2)
    mmse = CurveMMSE(view.prior, blind=False)
    ref = mmse(torch.as_tensor(y), torch.full((30,), 0.2, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(xh, ref, rtol=1e-9, atol=1e-12)
    d_y = view.prior.distance(torch.as_tensor(y)).numpy()
    d_x = view.prior.distance(torch.as_tensor(xh)).numpy()
    assert d_x.mean() < 0.5 * d_y.mean()
    toward = ((xh - y) * (view.prior.nearest(torch.as_tensor(y)).numpy() - y)).sum(1)
    far = d_y > 0.05  # points well off the curve
    assert far.sum() >= 10 and (toward[far] > 0).mean() >= 0.9


def test_trajectories_and_animation(view):
    tr = view.trajectories
    T = tr.paths.shape[0] - 1
    assert tr.paths.shape[1:] == (4, 2) and T >= 1
    assert view.param.frame.bounds[1] == len(view._frames) - 1
    assert view._frames[0] == 0 and view._frames[-1] == T
    view.frame = view.param.frame.bounds[1]
    paths, t, total = view._path_pipe.data
    assert t == T and total == T and paths.shape == (T + 1, 4, 2)
    view.frame = 0
    paths, t, _ = view._path_pipe.data
    assert t == 0 and paths.shape == (1, 4, 2)
    # the chains end near the curve
    assert view.prior.distance(tr.paths[-1]).max() < 0.1
    old = tr.paths.clone()
    view.beta = 0.2
    assert view.trajectories is not tr
    assert torch.equal(view.trajectories.paths[0], old[0])  # same seed: same start
    assert not torch.equal(view.trajectories.paths[1], old[1])  # β changes the injected noise
    assert view.trajectories.paths.shape[1] == 4
    view.chains = 6
    assert view.trajectories.paths.shape[1] == 6
    assert "6 chains" in view._traj_info.object


def test_curve_shape_and_log_scale(view):
    view.lobes = 0  # r(θ) = r₀(1 + a cos 0): a circle of radius 1 + a
    pts = view._curve_pipe.data
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 1.0 + view.amplitude, atol=1e-9)
    view.log_scale = True
    z, log, _ = view._heat_pipe.data
    assert log and np.allclose(z, view.log_density)


def test_downloads(view):
    png = view._png().getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(io.BytesIO(view._npz().getvalue()))
    np.testing.assert_allclose(data["density"], view.density)
    np.testing.assert_allclose(data["paths"], view.trajectories.paths.numpy())
    params = json.loads(str(data["params"]))
    assert params["sigma"] == pytest.approx(0.2) and params["chains"] == 4
