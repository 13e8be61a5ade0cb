"""Execute examples/explorer.ipynb in a Jupyter kernel and check what it prints.

The notebook is the library's worked example; here every cell must run without an error, and the
labelled numbers it prints ("PSNR denoised: 28.92 dB", ...) must show the properties each section is
about: denoising gains several dB, the noise estimate is close to the truth, a bias-free network is
homogeneous and J(y)y = x̂(y), the effective dimension falls with σ, the sampler converges, Algorithm 2
beats the pseudo-inverse, the energy is finite, the Panel tools render, and ``explorer.ui.notebook()`` put
BokehJS, Panel and MathJax into the notebook inline (no URL for the browser to fetch: it works offline;
``tests/ui/test_jupyterlab.py`` runs the notebook in JupyterLab in a browser).

The kernel is this interpreter (``sys.executable``): the test writes a ``python3`` kernelspec into a
temporary folder, so the notebook runs in the same environment as pytest whatever kernelspecs exist.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (installed with nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "explorer.ipynb"
NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _kernel_manager(tmp: Path) -> KernelManager:
    """A KernelManager whose ``python3`` kernel is this interpreter, with one intra-op thread."""
    spec_dir = tmp / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)",
        "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")], ensure_native_kernel=False)
    resolved = ksm.get_kernel_spec("python3")
    assert resolved.argv[0] == sys.executable, resolved.argv
    return KernelManager(kernel_name="python3", kernel_spec_manager=ksm)


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict:
    """The notebook after execution, its stdout as one string, and the wall time."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = _kernel_manager(tmp_path_factory.mktemp("kernelspec"))
    client = nbclient.NotebookClient(nb, km=km, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first cell that fails
    seconds = time.perf_counter() - t0
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []) if out.get("output_type") == "stream"
                     and out.get("name") == "stdout")
    print(f"notebook executed in {seconds:.1f} s")
    return {"nb": nb, "stdout": text, "seconds": seconds}


def value(text: str, label: str) -> float:
    """The number printed right after ``label`` (the first such line)."""
    m = re.search(re.escape(label) + r"[ \t]*" + NUMBER, text)
    assert m, f"the notebook printed no line {label!r}"
    return float(m.group(1))


def test_every_cell_ran_without_error(executed):
    cells = [c for c in executed["nb"].cells if c.cell_type == "code"]
    assert cells and all(c.get("execution_count") for c in cells), "a code cell was not executed"
    for c in cells:
        for out in c.get("outputs", []):
            assert out.get("output_type") != "error", f"{out.get('ename')}: {out.get('evalue')}"
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                assert "Traceback" not in out.get("text", ""), out["text"]


def test_kernel_is_this_environment(executed):
    m = re.search(r"Kernel Python prefix: (\S+)", executed["stdout"])
    assert m and os.path.realpath(m.group(1)) == os.path.realpath(sys.prefix)


def test_denoising_gains_and_noise_estimate(executed):
    out = executed["stdout"]
    noisy, denoised = value(out, "PSNR noisy:"), value(out, "PSNR denoised:")
    assert 19.5 < noisy < 21.0  # σ = 25/255 on a [0, 1] image: 20.2 dB
    assert denoised > noisy + 3.0
    sigma, sigma_hat = value(out, "sigma true:"), value(out, "sigma_hat:")
    assert sigma == pytest.approx(25.0)
    assert abs(sigma_hat - sigma) / sigma < 0.2
    assert value(out, "correlation(residual, true noise):") > 0.8


def test_tweedie_direction_and_homogeneity(executed):
    out = executed["stdout"]
    assert value(out, "cosine(f(y), -sigma*z):") > 0.8
    assert value(out, "||f(y)|| / sqrt(N):") == pytest.approx(value(out, "sigma_hat:"), rel=1e-3)
    bias_free = value(out, "Homogeneity relative error, bias-free:")
    biased = value(out, "Homogeneity relative error, biased:")
    assert bias_free < 1e-4
    assert biased > 100 * bias_free  # the network with biases is not homogeneous


def test_jacobian_identities_and_effective_dimension(executed):
    out = executed["stdout"]
    assert value(out, "J(y)y relative error, bias-free:") < 1e-4  # Euler: x̂(y) = J(y) y
    assert value(out, "J(y)y relative error, biased:") > 1e-3
    m = re.search(r"<a_i, y>: " + NUMBER + r"\s+x_hat_i: " + NUMBER, out)
    assert m and float(m.group(1)) == pytest.approx(float(m.group(2)), abs=1e-4)
    assert 0.8 < value(out, "row sum of the filter:") < 1.2
    low, high = value(out, "tr(A) at sigma=10/255:"), value(out, "tr(A) at sigma=50/255:")
    assert 0 < high < low < 4096  # fewer degrees of freedom kept at higher noise
    s = re.search(r"top singular values s_k of A_y[^:]*: ([^\n]+)", out)
    vals = [float(v) for v in s.group(1).split(",")]
    assert len(vals) == 4 and all(a >= b > 0 for a, b in zip(vals, vals[1:]))


def test_sampler_converges(executed):
    out = executed["stdout"]
    m = re.search(r"Sampler chains converged: (\d+) of (\d+)", out)
    assert m and m.group(1) == m.group(2) == "4"
    assert value(out, "Sampler final sigma_t:") <= 0.03  # sigma_L of the notebook
    steps = [int(v) for v in re.search(r"Sampler steps per chain: \[([^\]]*)\]", out).group(1).split(",")]
    assert all(5 < s < 300 for s in steps)
    assert len(re.findall(r"^t = \d+: h_t = ", out, flags=re.M)) == 4  # the stepper cell


def test_inverse_problems_beat_the_pseudo_inverse(executed):
    out = executed["stdout"]
    for name in ("Inpainting", "Super-resolution"):
        baseline = value(out, f"{name} PSNR pseudo-inverse:")
        alg2 = value(out, f"{name} PSNR Algorithm 2:")
        assert alg2 > baseline, (name, alg2, baseline)
        assert value(out, f"{name} measurement mismatch ||M^T y_T - x_c|| / ||x_c||:") < 0.05


def test_energies_are_finite(executed):
    out = executed["stdout"]
    assert math.isfinite(value(out, "Energy NLL mean:"))
    assert "Energy data:" in out


def test_the_notebook_loads_its_javascript_inline(executed):
    """The autoload scripts ``explorer.ui.notebook()`` publishes list no URL to fetch (BokehJS, Panel, MathJax
    and the upload widget's files are in the outputs themselves)."""
    outputs = [out for cell in executed["nb"].cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    scripts = [js for out in outputs if "const js_urls" in (js := out.get("data", {}).get("application/javascript", ""))]
    assert scripts, "no autoload script in the outputs: explorer.ui.notebook() was not called"
    for js in scripts:
        for name in ("js_urls", "js_modules", "css_urls"):
            assert re.search(rf"const {name} = +\[\];", js), f"{name} is not empty: resources from a URL"
    assert max(len(js) for js in scripts) > 2_000_000  # BokehJS and Panel themselves, inline


def test_viewer_renders_in_the_notebook(executed):
    code = [c for c in executed["nb"].cells if c.cell_type == "code"]
    for name in ("FiltersView()", "GAHBView(", "SamplerView(", "Toy2DView("):  # four tools, each a cell's result
        cell = next(c for c in code if name in c.source)
        bundles = [o.get("data", {}) for o in cell.get("outputs", [])
                   if o.get("output_type") in ("execute_result", "display_data")]
        assert any("application/vnd.holoviews_exec.v0+json" in b or "text/html" in b for b in bundles), (name, bundles)
    assert re.search(r"Toy2DView: sigma = 0.1, lobes = \d+", executed["stdout"])
    assert re.search(r"FiltersView: models \[", executed["stdout"])
    assert re.search(r"SamplerView: model bf-mnist, 2 chains of 32x32", executed["stdout"])
    assert value(executed["stdout"], "top singular value") > 0.5  # GAHBView computed its basis
    assert re.search(r"row sum " + NUMBER, executed["stdout"])  # the viewer computed its filters


def test_runs_in_reasonable_time(executed):
    assert executed["seconds"] < 300  # ~30-60 s on one busy core; generous for slow CI machines
