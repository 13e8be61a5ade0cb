"""ReportView without a browser: Run fills the table line by line, then the plots; the downloads are the report."""
from __future__ import annotations

import json

import pytest

from explorer.report import KEYS
from explorer.ui.report_view import ReportView, command_name
from explorer.ui.models import get_handle

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
GAUSS = "classical: Gaussian smoothing"


def test_run_shows_every_line_the_plots_and_downloads_the_same_report():
    view = ReportView(model=GAUSS)
    view.main()
    view.run()
    report = view.report
    assert {p.key for p in report.lines} >= set(KEYS)
    shown = view.shown
    assert shown.measured == len(KEYS)
    table = shown.table
    assert table.count("<tr>") == len(report.lines) + 1
    assert "python -m explorer.report classical:gaussian --only psnr" in table
    flags = [p.flag for p in report.lines]
    assert f"{flags.count('pass')} pass" in shown.status and "measuring" not in shown.status
    assert shown.plots >= 4  # PSNR, effective dimension, σ̂, calibration images, samples
    page = view.html().getvalue()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    entry = json.loads(view.json().getvalue())
    assert [line["key"] for line in entry["lines"]] == [p.key for p in report.lines]
    assert shown.filenames == ("report_classical-gaussian.html", "report_classical-gaussian.json")
    assert shown.run_enabled


def test_the_command_names_of_classical_pickers_are_what_the_cli_takes():
    assert command_name(GAUSS, get_handle(GAUSS)) == "classical:gaussian"
    assert command_name("bf-mnist", None) == "bf-mnist"


def test_an_unloadable_model_shows_why(monkeypatch):
    view = ReportView(model=GAUSS)
    view.main()
    monkeypatch.setattr("explorer.ui.report_view.get_handle", lambda name: (_ for _ in ()).throw(FileNotFoundError("no weights")))
    view.run()
    assert "no weights" in view.shown.alert
    assert view.shown.run_enabled
