"""The README's CONTRIBUTING example: the file it shows is the file in examples/, under 40 lines, and it works."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "residual_tool.py"


def test_the_readme_shows_the_example_tool_verbatim_and_it_is_under_40_lines():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    source = EXAMPLE.read_text()
    assert source in blocks, "README's CONTRIBUTING section must show examples/residual_tool.py verbatim"
    assert len(source.splitlines()) < 40


def test_the_example_tool_shows_the_residual_of_the_picked_denoiser():
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import residual_tool
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    view = residual_tool.ResidualView(sigma=0.2, seed=3)
    view.__panel__()
    row = view.figures(view.sigma, view.seed, view.source.image, view.picker.model)
    y_pane, x_hat_pane, residual_pane = (p.object for p in row)
    # hv.Image values come back bottom row first
    y, x_hat, r = (np.flipud(p.dimension_values(2, flat=False)) for p in (y_pane, x_hat_pane, residual_pane))
    assert y.shape == x_hat.shape == r.shape == view.source.image.shape
    np.testing.assert_allclose(r, y - x_hat, atol=1e-5)
    assert np.std(y - view.source.image) > 0.15  # σ = 0.2 noise was added
