"""The method picker: the seed's four by default, every method in one click, panels wrapped into rows, one
colour per method everywhere, each method's description and source on hover."""

from __future__ import annotations

from tests.dashboard.test_dashboard import app, goto, markdown, ok

from surgery_core.model.methods import DEFAULT_METHODS, METHODS, SEED_METHODS, method_color


def test_compare_defaults_to_the_seed_four_and_shows_all_in_one_click(dashboard_env, test_run):
    assert tuple(test_run.cfg.methods) == DEFAULT_METHODS  # the test run holds every registered method
    at = goto(app(), "compare")
    ok(at)
    assert len(at.image) == 2 + len(SEED_METHODS)  # the image, one per method, the colour scale
    at.button(key="methods_all").click().run()
    ok(at)
    assert len(at.image) == 2 + len(DEFAULT_METHODS)
    text = markdown(at)
    assert text.count("pointing hit") + text.count("pointing miss") == len(DEFAULT_METHODS)
    for m in DEFAULT_METHODS:
        assert f"**{m}**" in text
    assert at.query_params["methods"]  # the choice is in the permalink
    goto(at, "ap")  # the choice carries over: Per-class AP lists every method
    ok(at)
    labels = [m.label.removesuffix(" ★") for m in at.metric]  # every method's mAP, then its CorLoc
    assert labels == [f"mAP {m}" for m in DEFAULT_METHODS] + [f"CorLoc {m}" for m in DEFAULT_METHODS]


def test_picker_help_names_each_method_and_its_source():
    from dashboard.widgets import method_help

    text = method_help(list(DEFAULT_METHODS))
    for m in METHODS.values():
        assert m.name in text and m.source.repo in text and m.description in text


def test_one_colour_per_method_on_every_chart():
    from dashboard import charts

    colours = [method_color(m) for m in DEFAULT_METHODS]
    assert len(set(colours)) == len(colours)
    # The same method has the same colour whichever subset a chart shows.
    alone = charts.lines([1, 2], {"vv_mixed": [0.1, 0.2]}, "x", "y")
    among = charts.lines([1, 2], {m: [0.1, 0.2] for m in DEFAULT_METHODS}, "x", "y")
    assert alone.data[0].line.color == next(t.line.color for t in among.data if t.name == "vv_mixed")
    fig = charts.lines([1, 2], {"gem": [0.1, 0.2], "standard": [0.3, 0.4]}, "x", "y")
    assert [t.line.color for t in fig.data] == [method_color("gem"), method_color("standard")]


def test_sweep_heat_maps_wrap_into_rows():
    from dashboard import charts

    tables = {m: [[0.1, 0.2]] for m in DEFAULT_METHODS}
    n = len(DEFAULT_METHODS)
    for cols, n_rows in ((2, -(-n // 2)), (5, -(-n // 5))):  # one panel per method, rows of two (the default) or five
        fig = charts.sweep_heatmaps(tables, [90.0], [0.05, 0.5], {}, "mAP", cols=cols)
        axes = {t.yaxis for t in fig.data}
        assert len(fig.data) == len(DEFAULT_METHODS) and len(axes) == len(DEFAULT_METHODS)
        domains = {tuple(fig.layout[("yaxis" + a[1:])].domain) for a in axes}
        assert len(domains) == n_rows
    one_row = charts.sweep_heatmaps(dict(list(tables.items())[:2]), [90.0], [0.05, 0.5], {}, "mAP")
    assert fig.layout.height > one_row.layout.height  # each row keeps its height: the figure grows
