"""Every classical denoiser of the picker in every tool (issue #19, section 2): its adaptive filter, its
harmonic basis, Algorithm 1 and Algorithm 2 run on it; BM3D, which autograd cannot open, says so plainly
where a Jacobian is needed and still samples (the samplers only call x̂)."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.ui.filters_view import FiltersView
from explorer.ui.gahb_view import GAHBView
from explorer.ui.inverse_state import InverseRun
from explorer.ui.models import CLASSICAL, get_handle
from explorer.ui.sampler_state import SamplerRun
from explorer.ui.sources import ImageSource

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NAMES = list(CLASSICAL)


def opens(name: str) -> bool:
    """Whether autograd can open the denoiser (BM3D cannot)."""
    return bool(getattr(get_handle(name).model, "differentiable", True))


@pytest.mark.parametrize("name", NAMES)
def test_the_filters_tool_shows_its_filter_or_says_why_not(name):
    view = FiltersView(models=[name], image_source=ImageSource(sizes=[32], size=32), sigma=0.1, posterior=False)
    text = view.filters[name].text
    if opens(name):
        r = view.results[name]
        assert np.isfinite(r["filter"]).all() and np.abs(r["filter"]).max() > 0
        assert f"x̂ᵢ = {r['xhat_i']:.4f}" in text and f"⟨aᵢ, y⟩ = {r['inner']:.4f}" in text  # J(y)y vs x̂ as numbers
        if abs(r["inner"] - r["xhat_i"]) > 1e-3:  # not locally linear (e.g. shrinkage at a fixed σ): said, with the gap
            assert "J(y)y ≠ x̂(y)" in text and f"{r['inner'] - r['xhat_i']:+.4f}" in text
        else:
            assert "J(y)y = x̂(y)" in text
    else:
        assert name not in view.results and "has no Jacobian" in text and "NotDifferentiableError" in text


@pytest.mark.parametrize("name", NAMES)
def test_the_harmonic_basis_tool_opens_it_or_says_why_not(name):
    view = GAHBView(model=name, image_source=ImageSource(sizes=[16], source="synthetic", synthetic="discs", seed=1),
                    k=4, curve=False, sigma=0.1)
    if opens(name):
        values = view.svd.values.numpy()
        assert values.shape == (4,) and np.all(np.diff(values) <= 1e-6) and values[0] > 0
        assert not view.alert_pane.visible
    else:
        assert view.alert_pane.visible and "has no Jacobian" in view.alert_pane.object


@pytest.mark.parametrize("name", NAMES)
def test_algorithm_1_and_algorithm_2_run_on_it(name):
    handle = get_handle(name)
    run = SamplerRun(size=32, chains=1, h0=0.05, beta=0.8, sigma_L=0.05, max_steps=300)
    assert run.reset(handle) is not None, run.error
    assert run.play()
    run.join(120)
    assert run.done and np.isfinite(run.sampler.state.x_hat.numpy()).all()
    image = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    inverse = InverseRun(image, chains=1, beta=0.8, h0=0.05, sigma_L=0.05, max_steps=300, kind="super-resolution")
    assert inverse.build_for(handle) is not None, inverse.error
    assert inverse.play()
    inverse.join(120)
    assert inverse.done and np.isfinite(inverse.sampler.state.x_hat.numpy()).all()
