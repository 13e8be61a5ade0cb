"""explorer.report / explorer.properties: every line on denoisers with known answers (an exact linear denoiser,
a bias-free network and its biased twin, the lab's converted pair), the HTML is self-contained, the card rule."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import ModelHandle
from explorer import properties as props
from explorer.denoisers import Denoiser, DnCNN
from explorer.denoisers.exact import GaussianPriorDenoiser
from explorer.report import KEYS, PRETRAINED, Report, ReportError, main, measure, resolve, write_card
from explorer.report_html import render_html

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LAB = Path(__file__).resolve().parents[1].parent / "shared" / "lcv" / "bias_free_denoising" / "dncnn"


class KnownSigmaGaussian(Denoiser):
    """The posterior mean of N(0, Σ) told σ: x̂(y) = Σ(Σ + σ²I)⁻¹y, linear in y, symmetric, homogeneous."""

    blind = False
    bias_free = True

    def __init__(self, cov: np.ndarray, n: int):
        super().__init__()
        self.prior = GaussianPriorDenoiser(torch.zeros(n, n), cov)

    def forward(self, y, sigma=None):
        return self.prior(y, self._require_sigma(y, sigma))


@pytest.fixture(scope="module")
def linear():
    n = 16
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    p = np.stack([yy.ravel(), xx.ravel()], 1)
    cov = 0.04 * np.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / 2.0) + 1e-4 * np.eye(n * n)
    handle = ModelHandle(KnownSigmaGaussian(cov, n), device="cpu", name="linear-gaussian")
    rng = np.random.default_rng(0)
    images = [rng.multivariate_normal(np.zeros(n * n), cov).reshape(n, n).astype(np.float32) for _ in range(2)]
    return handle, cov, images


def test_an_exact_linear_denoiser_has_the_ideal_lines(linear):
    handle, cov, images = linear
    sigma = 0.1
    assert props.homogeneity(handle, images, sigma).lines[0].value < 1e-5
    assert props.linearity(handle, images, sigma).lines[0].value < 1e-5
    sym = props.jacobian_symmetry(handle, images[0], sigma).lines[0]
    assert sym.value < 1e-5 and sym.flag == "pass"
    # tr A = Σ λ/(λ + σ²) at every σ (N = 256: the dense Jacobian, exact)
    sigmas = [0.05, 0.1, 0.2, 0.4]
    measured = props.effective_dimension(handle, images[0], sigmas)
    lam = np.linalg.eigvalsh(cov)
    expected = np.array([np.sum(lam / (lam + s**2)) for s in sigmas]) / lam.size
    np.testing.assert_allclose(measured.curve["trace"], expected, rtol=1e-4)
    assert measured.lines[0].flag == "pass" and measured.lines[0].value < 0
    # clean images drawn from the prior: x̂ − x ~ N(0, σ²A), so the errors are calibrated
    line = props.posterior_calibration(handle, images[0], sigma).lines[0]
    assert abs(line.value - 0.683) < 0.1 and line.flag == "pass"
    assert props.noise_estimation(handle, images, sigmas).lines[0].flag == "note"  # told σ: nothing to estimate


def test_a_bias_free_network_passes_and_its_biased_twin_fails_homogeneity():
    torch.manual_seed(0)
    images = [np.random.default_rng(k).uniform(0.2, 0.8, (24, 24)).astype(np.float32) for k in range(2)]
    free = ModelHandle(DnCNN(depth=3, width=8, bias_free=True), device="cpu")
    biased = ModelHandle(DnCNN(depth=3, width=8, bias_free=False), device="cpu")
    with torch.no_grad():
        for m in biased.model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.05, 0.05)
    for key, fn in [("homogeneity", props.homogeneity), ("linearity", props.linearity)]:
        ok, bad = fn(free, images, 0.1).lines[0], fn(biased, images, 0.1).lines[0]
        assert ok.flag == "pass" and ok.value < 1e-5, key
        assert bad.flag == "fail" and bad.value > 1e-3, key


def test_the_psnr_lines_read_the_training_range_and_flag_a_collapse():
    images = [np.full((16, 16), 0.5, np.float32)]

    class Shrink(Denoiser):  # x̂ = y inside the range, the noisy input beyond: no gain there
        blind = False

        def forward(self, y, sigma=None):
            s = float(self._require_sigma(y, sigma).flatten()[0])
            return 0.5 + (y - 0.5) * (0.1 if s <= 0.2 + 1e-6 else 1.0)

    handle = ModelHandle(Shrink(), device="cpu")
    m = props.psnr_curve(handle, images, [0.05, 0.1, 0.2, 0.3, 0.4], (0.0, 0.2))
    top, beyond = m.lines
    assert top.key == "psnr" and "σ = 0.2" in top.title and top.flag == "pass"
    assert abs(top.value - (m.curve["input_psnr"][2] + 20)) < 1e-6  # residual scaled by 0.1: +20 dB
    assert beyond.key == "psnr_beyond" and beyond.flag == "fail"
    assert props.training_range({"training": {"noise_range": [0, 55]}}) == (0.0, 55 / 255)
    assert props.training_range({"training": {"noise": {"sigma_min": 0, "sigma_max": 0.4}}}) == (0.0, 0.4)
    assert props.training_range({}) is None


def test_the_report_of_a_classical_denoiser_and_its_html_is_self_contained(tmp_path):
    handle, card, name = resolve("classical:gaussian")
    seen = []
    report = measure(handle, card, name, progress=lambda r: seen.append(len(r.lines)))
    assert [p.key for p in report.lines if p.key != "psnr_beyond"] == list(KEYS)
    assert seen == sorted(seen) and len(seen) == len(KEYS)  # progress after each measurement
    assert all(p.flag in ("pass", "fail", "note") for p in report.lines)
    assert report.command("symmetry") == "python -m explorer.report classical:gaussian --only symmetry"
    page = render_html(report, card)

    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs, self.tags = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.refs += [v for k, v in attrs if k in ("src", "href") and v]

    parser = Refs()
    parser.feed(page)
    assert parser.refs and all(r.startswith("data:image/png;base64,") for r in parser.refs)
    assert "script" not in parser.tags and "link" not in parser.tags and "@import" not in page
    assert page.count("<tr>") == len(report.lines) + 1


def test_the_command_line_writes_html_and_a_run_card_but_never_into_pretrained(tmp_path, capsys):
    card = tmp_path / "run.json"
    card.write_text(json.dumps({"name": "run"}))
    out = tmp_path / "r.html"
    assert main(["classical:gaussian", "--only", "homogeneity,linearity", "--out", str(out), "--write-card", str(card)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    entry = json.loads(card.read_text())["report"]
    assert [line["key"] for line in entry["lines"]] == ["homogeneity", "linearity"]
    assert entry["lines"][0]["command"].endswith("--only homogeneity")
    with pytest.raises(ReportError, match="pretrained"):
        write_card(PRETRAINED / "bf-mnist.json", Report("x"))
    assert main(["classical:gaussian", "--only", "nonsense"]) == 2
    assert "unknown report lines" in capsys.readouterr().err
    assert main(["classical:no-such-filter"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not LAB.is_dir(), reason="the lab's checkpoints are in ../shared/lcv")
def test_the_lab_pair_shows_the_papers_contrast():
    """BF-DnCNN and DnCNN trained on σ ∈ [0, 55]: the biased one is not homogeneous and collapses beyond its range."""
    lines = {}
    for kind in ("bias_free", "bias"):
        handle, card, name = resolve(str(LAB / kind / "0-55.pt"), device="cpu")
        report = measure(handle, card, name, only=["homogeneity", "psnr"])
        lines[kind] = {p.key: p for p in report.lines}
    assert lines["bias_free"]["homogeneity"].flag == "pass" and lines["bias"]["homogeneity"].flag == "fail"
    assert lines["bias_free"]["psnr_beyond"].flag == "pass" and lines["bias"]["psnr_beyond"].flag == "fail"
    assert lines["bias_free"]["psnr_beyond"].value > lines["bias"]["psnr_beyond"].value + 5  # dB at 2× the range
