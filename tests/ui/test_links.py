"""Links that reopen a view (issue #21 §3), without a browser: every tool's link list names real parameters,
a link's values come back in a fresh view (the URL round trip), and a hand-edited link's bad values are clamped or
ignored with a sentence, never raised. The served round trip is tests/ui/test_browser_links.py."""
from __future__ import annotations

import urllib.parse

import pytest
from panel.util import parse_query

from explorer.ui import links
from explorer.ui.controls import COPY_LINK_JS, CopyLink
from explorer.ui.explorer_app import TOOLS, ExplorerApp
from explorer.ui.sources import ImageSource

GAUSS = "classical: Gaussian smoothing"


def make(tool: str):
    """A small view of each tool (the tiny model, small images)."""
    if tool == "sampler":
        from explorer.ui.sampler_view import SamplerView
        return SamplerView(model="tiny-test", size=32, chains=1)
    if tool == "inverse":
        from explorer.ui.inverse_view import InverseView
        return InverseView(model="tiny-test", size=32, chains=1)
    if tool == "filters":
        from explorer.ui.filters_view import FiltersView
        return FiltersView(models=["tiny-test"], image_source=ImageSource(sizes=[32, 64], size=32))
    if tool == "gahb":
        from explorer.ui.gahb_view import GAHBView
        return GAHBView(model="tiny-test", image_source=ImageSource(sizes=[16, 32]), k=4, curve=False, probes=4)
    if tool == "energy":
        from explorer.ui.energy_view import EnergyView
        return EnergyView()
    if tool == "toy2d":
        from explorer.ui.toy2d_view import Toy2DView
        return Toy2DView(resolution=31, n_arrows=5, chains=2)
    if tool == "generalization":
        from explorer.ui.generalization_view import GeneralizationView
        return GeneralizationView(auto_run=False)
    if tool == "report":
        from explorer.ui.report_view import ReportView
        return ReportView(model=GAUSS)
    if tool == "decomposition":
        from explorer.ui.decomposition_view import DecompositionView
        return DecompositionView(models=("tiny-test", GAUSS), image_source=ImageSource(sizes=[32], size=32))
    if tool == "representation":
        from explorer.ui.representation_view import RepresentationView
        return RepresentationView(model="tiny-test", count=20, k=3)
    assert tool == "main"
    return ExplorerApp()


#: Settings that differ from each view's defaults (what a lecturer changed before copying the link).
CHANGES: dict[str, dict[str, object]] = {
    "sampler": dict(beta=0.3, h0=0.02, sigma0=0.8, sigma_L=0.05, seed=4, size=64, chains=2),
    "inverse": dict(source="synthetic", synthetic="discs", synthetic_seed=3, kind="super-resolution", factor=2,
                    beta=0.2, chains=2, seed=5, measurement_seed=9),
    "filters": dict(models=["tiny-test", GAUSS], size=64, sigma=0.2, seed=7, row=5, col=20, crop=4, posterior=False),
    "gahb": dict(size=32, sigma=0.15, seed=2, vectors="v (input side)"),
    "energy": dict(unit="nats", bins=20, count=120, probe="camera", stride=16, map_size=128, map_stride=16),
    "toy2d": dict(sigma=0.3, lobes=3, beta=0.4, h0=0.1, chains=3, seed=11, log_scale=True),
    "generalization": dict(seed=6, beta=0.3, h0=0.02),
    "report": dict(model="classical: Wiener filter"),
    "decomposition": dict(model_b="classical: Wiener filter", n=3, sigma=0.2, fixed_strength=True),
    "representation": dict(block="layer2", sigma=0.2, draws=2, count=24, k=4, standardize=False, color_by="cluster",
                           query=3, target="its cluster's mean φ", strength=0.5, seed=5),
    "main": dict(page="toy2d"),
}


def url_round_trip(query: dict[str, str]) -> dict[str, object]:
    """What the page reads back from a URL with ``query`` (Panel's own parsing of the search string)."""
    return parse_query("?" + urllib.parse.urlencode(query))


def test_every_tool_and_the_main_app_has_a_link_list():
    assert set(links.LINKS) == {t.key for t in TOOLS} | {"main"}
    for tool, entries in links.LINKS.items():
        keys = [link.key for link in entries]
        assert len(keys) == len(set(keys)), tool  # one key per setting in a page


@pytest.mark.parametrize("tool", sorted(links.LINKS))
def test_link_lists_name_real_parameters_and_survive_the_url(tool, tiny_handle):
    view = make(tool)
    for link in links.LINKS[tool]:
        owner = links.owner_of(view, link)
        assert link.name in owner.param, f"{tool}: {link.owner or 'view'}.{link.name}"
    assert set(CHANGES[tool]) <= {link.key for link in links.LINKS[tool]}
    assert links.restore(view, tool, CHANGES[tool]) == []
    query = links.query_of(view, tool)
    for key, value in CHANGES[tool].items():
        assert url_round_trip({key: query[key]})[key] == value, key
    fresh = make(tool)
    assert links.query_of(fresh, tool) != query
    assert links.restore(fresh, tool, url_round_trip(query)) == []
    assert links.query_of(fresh, tool) == query  # the link reopens the same view


def test_a_hand_edited_link_is_clamped_or_ignored_and_says_so(tiny_handle):
    view = make("filters")
    before = links.query_of(view, "filters")
    bad = dict(sigma=5, seed=7.5, size=33, models=["no-such-model"], row=999, col=-3, crop="wide", posterior="maybe",
               source="upload", builtin="no-such-photo")
    messages = links.restore(view, "filters", bad)
    assert view.sigma == 0.5 and view.row == 31 and view.col == 0  # clamped (the 32×32 image bounds the pixel)
    after = links.query_of(view, "filters")
    assert {k for k in before if before[k] != after[k]} == {"sigma", "row", "col"}
    text = " ".join(messages)
    assert len(messages) == len(bad)
    for key in bad:
        assert f"{key}=" in text
    assert "outside 0–0.5: 0.5 is used" in text and "cannot be reopened from a link" in text


def test_an_uploaded_probe_is_not_reopened_from_a_link():
    from explorer.ui.energy_state import PROBE_NONE, PROBE_UPLOAD

    view = make("energy")
    messages = links.restore(view, "energy", {"probe": PROBE_UPLOAD})
    assert view.state.probe == PROBE_NONE and "cannot be reopened from a link" in messages[0]


def test_a_partly_valid_model_list_keeps_the_valid_names(tiny_handle):
    view = make("filters")
    messages = links.restore(view, "filters", {"models": ["no-such-model", GAUSS]})
    assert view.models == [GAUSS] and len(messages) == 1 and "only classical: Gaussian smoothing" in messages[0]


def test_prefixed_keys_belong_to_one_tool_of_the_main_app(tiny_handle):
    view = make("toy2d")
    assert links.restore(view, "toy2d", {"sigma": 0.5, "filters.seed": 3, "toy2d.seed": 9}, prefix="toy2d.") == []
    assert view.seed == 9 and view.sigma == 0.2  # unprefixed and other tools' keys are not this tool's
    assert set(links.query_of(view, "toy2d", "toy2d.")) == {f"toy2d.{link.key}" for link in links.LINKS["toy2d"]}


def test_the_main_app_refuses_an_unknown_page_and_links_nothing_outside_a_server():
    app = ExplorerApp()
    messages = links.restore(app, "main", {"page": "no-such-tool"})
    assert app.page == "overview" and "page=no-such-tool" in messages[0]
    assert links.link_view(app, "main") is None  # no served session: nothing to sync


def test_coerce_reads_the_types_of_a_query():
    import param

    class P(param.Parameterized):
        flag = param.Boolean(default=False)
        n = param.Integer(default=1, bounds=(0, 10))
        x = param.Number(default=0.5, bounds=(0.0, 1.0))
        pick = param.Selector(objects=[2, 4, 8], default=4)

    p = P()
    assert links.coerce(p.param.flag, True, "flag") == (True, None)
    assert links.coerce(p.param.flag, "0", "flag") == (False, None)
    assert links.coerce(p.param.n, 3.0, "n") == (3, None)
    assert links.coerce(p.param.n, 30, "n")[0] == 10
    assert links.coerce(p.param.x, float("nan"), "x")[0] is links._REFUSED
    assert links.coerce(p.param.pick, "8", "pick") == (8, None)
    assert links.coerce(p.param.pick, 3, "pick")[0] is links._REFUSED


def test_the_copy_link_button_copies_the_address_or_shows_it():
    box = CopyLink()
    assert box.button.label == "Copy link" and not box.field.visible
    assert "navigator.clipboard.writeText(url)" in COPY_LINK_JS and "field.visible = true" in COPY_LINK_JS
    model = box.button.get_root()
    assert "navigator.clipboard.writeText(url)" in model.js_event_callbacks["button_click"][0].code  # in the browser
    box.show_note(["sigma=5 is outside 0–0.5: 0.5 is used."])
    assert box.note_pane.visible and "sigma=5" in box.note_pane.object
    box.show_note([])
    assert not box.note_pane.visible


def test_every_tool_page_has_the_copy_link_button(tiny_handle):
    view = make("toy2d")
    page = view.template()
    assert view.link_box.button in page.sidebar.objects[0].objects  # above the tool's controls


def test_a_link_sets_up_the_sampler_once_with_every_setting(tiny_handle, monkeypatch):
    from explorer.ui.sampler_view import SamplerView

    view = make("sampler")
    resets = []
    original = SamplerView.reset
    monkeypatch.setattr(SamplerView, "reset", lambda self, *a, **k: (resets.append(self.run.seed), original(self, *a, **k)))
    assert links.restore(view, "sampler", CHANGES["sampler"]) == []
    assert resets == [4]  # one new sampler, made after the last setting
    y = view.sampler.state.y
    assert (y.shape[0], y.shape[-1], view.run.beta) == (2, 64, 0.3)  # it has the link's settings
    assert [y_pane.shape for y_pane, _x_pane in view.chain_images] == [(64, 64)] * 2
    view.run.seed = 5  # outside a link: each change rebuilds at once
    assert resets == [4, 5]


def test_batched_changes_nest_and_rebuild_once_at_the_outermost_end(tiny_handle):
    from explorer.ui.inverse_view import InverseView

    view = InverseView(model="tiny-test", size=32, chains=1)
    calls = []
    view.invalidate = lambda: calls.append(view.run.chains)  # what a problem change costs the view
    with view.batched_changes():
        view.run.chains = 2
        with view.batched_changes():
            view.run.beta = 0.2
        assert calls == []  # the inner block's end is not the end
        view.run.chains = 3
    assert calls == [3]
    view.run.chains = 1
    assert calls == [3, 1]
