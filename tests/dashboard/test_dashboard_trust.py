"""Settings that stay the user's, and numbers that cannot be mistaken (issue 21, points 1, 4-6, 8-10), through
``streamlit.testing.v1.AppTest`` on the dashboard tests' run (``conftest.py``)."""

from __future__ import annotations

import pandas as pd
from tests.dashboard.test_dashboard import app, goto, ok, tables

from dashboard import serving


def submit(at, **values):
    for key, v in values.items():
        widget = {"f_limit": at.number_input, "f_pct": at.number_input, "f_arch": at.text_input,
                  "f_ckpt": at.text_input, "f_split": at.selectbox, "f_random": at.checkbox,
                  "f_methods": at.multiselect}[key](key=key)
        widget.set_value(v)
    at.get("form_submit_button")[0].click().run()
    return at


def test_a_new_run_adopts_its_own_percentile_and_drops_the_old_filters(dashboard_env, test_run):
    at = goto(app(), "compare")
    at.select_slider(key="p").set_value(75.0).run()
    goto(at, "browse")
    at.slider(key="bn").set_value((1, 2)).run()
    ok(at)
    submit(at, f_limit=6, f_pct=80.0)  # another run, at percentile 80
    ok(at)
    info = "\n".join(i.value for i in at.info)
    assert "opened with its own settings" in info and "percentile p80, the run's (was p75)" in info, info
    assert "objects-per-image filter cleared (was 1-2)" in info
    lo, hi = at.slider(key="bn").value
    assert (lo, hi) == tuple(sorted({min(r.num_objects for r in _images(at)), max(r.num_objects for r in _images(at))}))
    goto(at, "compare")
    assert at.select_slider(key="p").value == 80.0  # not the 75 of the previous run's page
    caption = "\n".join(c.value for c in at.sidebar.caption)
    assert "boxes p80" in caption and "on this page" not in caption


def _images(at):
    from dashboard import data, state

    return data.open_run(state._config_from_spec(at.session_state["_cfg_json"])).dataset.images


def test_a_page_percentile_is_shown_where_the_boxes_are_with_one_click_back(dashboard_env, test_run):
    at = goto(app(), "compare")
    at.select_slider(key="p").set_value(75.0).run()
    back = at.button(key="p_back")
    assert back.label == f"Run's p{test_run.cfg.boxes.percentile:g}"
    back.click().run()
    ok(at)
    assert at.select_slider(key="p").value == test_run.cfg.boxes.percentile
    assert not [b for b in at.button if b.key == "p_back"]


def test_a_run_that_cannot_open_leaves_the_working_run_and_says_why_at_the_form(dashboard_env, test_run):
    at = app()
    submit(at, f_arch="ViT-B-16")
    assert not at.exception
    assert at.query_params["h"] == test_run.run_hash  # the working run stays open
    assert len(at.image) == 24  # and its page is drawn
    errors = "\n".join(e.value for e in at.sidebar.error)
    assert "cannot be opened; the run you had stays open" in errors and "ViT-B-16 needs a checkpoint" in errors
    assert "(the Checkpoint field)" in errors and "(tick Random weights)" in errors
    assert "--" not in errors.replace("**", "")  # no command-line flag in a form's message


def test_random_weights_are_an_explicit_choice_and_named_on_every_page(dashboard_env, test_run):
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.test_dashboard import APP

    at = AppTest.from_file(APP, default_timeout=600).run()  # a ViT-B-16 is built and run on the CPU
    at.selectbox(key="f_prompts").set_value("single")  # one prompt per class: the text tower runs 8 times
    submit(at, f_arch="ViT-B-16", f_random=True, f_limit=2, f_methods=["standard", "vv_mixed"])
    assert not at.exception
    assert at.query_params["h"] != test_run.run_hash
    for page in ("browse", "ap", "run"):
        goto(at, page)
        banner = [e.value for e in at.error]
        assert any("Random weights: ViT-B-16 has no checkpoint" in e and "RANDOM WEIGHTS" in e for e in banner), page
    goto(at, "ap")
    assert not any("★" in m.label for m in at.metric)
    assert any("No method is marked best: random weights" in c.value for c in at.caption)
    assert "RANDOM WEIGHTS" in "\n".join(c.value for c in at.sidebar.caption)


def test_per_class_ap_has_one_number_format_and_fits_every_method(dashboard_env, test_run):
    from dashboard import widgets

    df = pd.DataFrame({"class": ["a", "b", "c"], "GT": [3, 4, 5], "m1": [0.5, 0.00058, 0.0], "m2": [8.6e-05, 0.0, 0.0]})
    html = widgets.colour_scale(df, ["m1", "m2"], lo=0.0, hi=1.0, best_per_row=True).to_html()
    assert "0.500★" in html and "<0.001★" in html.replace("&lt;", "<") and "0.000" in html
    assert "e-0" not in html  # no scientific notation beside three decimals
    at = goto(app({"methods": ",".join(test_run.cfg.methods)}), "ap")
    ok(at)
    shown = tables(at)[0].value
    shown = shown.data if hasattr(shown, "data") else shown
    assert list(shown.columns) == ["class", "GT", *test_run.cfg.methods]  # the boxes per method: in the CSV
    # that every method's column fits at 1280 px is checked in the browser (test_dashboard_walk, issue 21.8)


def test_browse_thumbnails_say_which_class_their_heatmap_shows(dashboard_env, test_run):
    at = app()
    at.toggle(key="bheat").set_value(True).run()
    ok(at)
    captions = [c.value for c in at.caption if "heatmap: " in c.value]
    assert len(captions) == 24
    names = set(test_run.classes)
    assert all(c.rsplit("heatmap: ", 1)[1] in names for c in captions)


def test_the_page_icon_ships_with_the_app_and_browsers_stay_on_this_machine():
    from pathlib import Path

    app_py = (Path(serving.APP)).read_text()
    assert ":material/" not in app_py.split("set_page_config(")[1].split(")")[0]  # a font-server icon
    assert (Path(serving.APP).parent / "assets" / "page_icon.png").is_file()
    assert serving.is_local("http://127.0.0.1:8501/_stcore/health") and serving.is_local("data:image/png;base64,x")
    assert serving.is_local("file:///tmp/report.html") and serving.is_local("http://localhost:1/x")
    assert not serving.is_local("https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/x.svg")
    assert not serving.is_local("http://10.0.0.1/") and not serving.is_local("https://data.streamlit.io/metrics.json")


def test_the_sweep_caption_names_the_percentile_of_its_heading(dashboard_env, test_run):
    at = goto(app({"p": "85"}), "sweep")
    ok(at)
    heading = next(m.value for m in at.markdown if m.value.startswith("**mAP at percentile"))
    assert heading.startswith("**mAP at percentile 85,")
    caption = next(c.value for c in at.caption if "over the sweep grid" in c.value)
    assert "percentile 85" in caption and "percentile 90" not in caption, caption


def test_the_html_report_of_four_samples_and_every_method_is_a_few_mb(dashboard_env, test_run):
    from surgery_core.model.methods import METHODS
    from surgery_core.share.html import DEFAULT_SAMPLE_COUNT, build_report_html, default_samples

    assert test_run.cfg.methods == tuple(METHODS)  # every registered method (twelve), not the seed's four
    samples = default_samples(test_run, DEFAULT_SAMPLE_COUNT)
    assert len(samples) == 4
    size = len(build_report_html(test_run, samples).encode())
    assert size < 5_000_000, f"{size / 1e6:.1f} MB"  # was 30.5 MB (PNG figures, plotly.js uncompressed)


def test_a_snapshot_reopens_in_the_layout_it_was_saved_with():
    """Seven pictures saved 6 to a row (Compare: the image and six methods) reopen as 6 + 1 in columns of the
    same width, not 7 narrow ones (issue 21.7)."""
    from streamlit.testing.v1 import AppTest

    def script():
        import numpy as np
        import streamlit as st

        from dashboard import snapshot_ui
        from surgery_core.share.drawing import encode_png

        png = encode_png(np.zeros((8, 8, 3), np.uint8))
        snapshot_ui.begin()
        cols = st.columns(6)
        for k in range(7):
            snapshot_ui.image(f"m{k}", png, f"method {k}", cols[k % 6], per_row=6)
        _, numbers, images = snapshot_ui.collect()
        st.session_state["saved"] = numbers
        snapshot_ui.render_blocks(numbers, images)

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    blocks = at.session_state["saved"]["blocks"]
    assert [b.get("per_row") for b in blocks if b["kind"] == "image"] == [6] * 7
    assert len(at.columns) == 6 + 6 + 6  # on screen 6; reopened two rows of 6 columns (6 + 1 pictures)
