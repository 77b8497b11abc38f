"""Widgets that recur on several pages, each bound to one piece of view state (:mod:`dashboard.state`), and the
captions that say how every number was computed."""

from __future__ import annotations

import functools
import gc
import logging

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import snapshot_ui, state
from surgery_core.model.methods import METHODS
from surgery_core.eval.boxes import RULES, BoxRule, cut_short
from surgery_core.eval.protocols import PRESENT
from surgery_core.run.evaluation import (INTERP_NOTES, PROTOCOL_NOTES, all_percentiles, box_note, box_params_for,
                                         fixed_cuts)
from surgery_core.run.facade import Run

INTERP_LABELS = {"voc07": "VOC07 11-pt", "voc": "VOC all-pt", "coco": "COCO 101-pt"}
RULE_LABELS = {"percentile": "Percentile", "otsu": "Otsu", "fixed": "Fixed value"}
RULE_HELP = ("How each heatmap is thresholded before boxes are cut (the min-max-normalised working map):\n"
             "- **Percentile** (the seed's rule): at or above this percentile of the map's own values;\n"
             "- **Otsu**: Otsu's threshold of each map (256 bins over 0-1, the split of largest between-class "
             "variance); no parameter;\n"
             "- **Fixed value**: at or above this value of the 0-1 map.")
SESSION = "session"  # persist_state: keep each value across pages
log = logging.getLogger("surgery.dashboard")


def failure(what: str, exc: BaseException, where=st) -> None:
    """A failure as one line on screen (its kind and message, no traceback); the traceback goes to the server
    log, where whoever runs the app can read it."""
    log.error("%s failed", what, exc_info=exc)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
    where.error(f"**{what} failed:** {type(exc).__name__}: {msg} (the details are in the server's log)",
                icon=":material/error:")


def guarded(fn, what: str = "This page"):
    """Run ``fn()``; an unexpected exception becomes :func:`failure`'s one line instead of a traceback
    (Streamlit's own control flow, st.rerun/st.stop, passes: it is not an ``Exception``)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the last line of defence: every path ends in a readable line
        failure(what, exc)
        return None


def fragment(fn):
    """``st.fragment`` whose reruns are :func:`guarded` too (a fragment reruns without the frame around it)."""
    @functools.wraps(fn)
    def run(*a, **kw):
        return guarded(lambda: fn(*a, **kw))

    return st.fragment(run)


#: What the percentile and IoU controls offer beyond the run's own grids: the metrics take any value, so the
#: controls reach percentile 99.9 and IoU 0.95 (COCO's steps of .05); boxes a run store lacks are cut when first
#: asked for (:func:`dashboard.data.ensure_cells`), and the Threshold sweep computes a cell off its stored grid.
VIEW_PERCENTILES = (*(50.0 + 5 * k for k in range(10)), 97.5, 99.0, 99.5, 99.9)
VIEW_IOUS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def percentiles(run: Run) -> list[float]:
    """The percentile control's values: the run's (its sweep's, its quality table's and its own cut, whose boxes
    the run store keeps) and :data:`VIEW_PERCENTILES`."""
    return sorted({float(p) for p in all_percentiles(run.cfg) if not isinstance(p, BoxRule)} | set(VIEW_PERCENTILES))


def ious(run: Run) -> list[float]:
    """The IoU control's values: the run's thresholds and :data:`VIEW_IOUS` (up to 0.95)."""
    return sorted({float(t) for t in run.cfg.iou_thresholds} | set(VIEW_IOUS))


def override_note(run: Run, cut) -> str:
    """'' when ``cut`` is the run's own box cut, else words saying that the page draws another one."""
    own = run.cfg.boxes.cut
    if cut is None or cut == own:
        return ""
    return f"page setting {cut_short(cut)}, not the run's {cut_short(own)} (the button beside the control resets it)"


def method_help(opts) -> str:
    """Hover text of a method picker: what each method does and where its definition comes from."""
    return "\n".join(f"- **{m}**: {METHODS[m].description} *Source: {METHODS[m].source}.*" for m in opts)


#: The session's one method choice, methods that a page does not offer included (Explore offers every registered
#: method, the other pages the run's): each page's picker shows the part it offers (session key ``methods``, also
#: the URL's), and a change on one page changes only that part.
CHOSEN = "_methods_chosen"


def _picked(opts: list[str]) -> None:
    """The picker of a page offering ``opts`` changed: the choice keeps what other pages offer beyond them."""
    ss = st.session_state
    elsewhere = [m for m in (ss.get(CHOSEN) or []) if m not in opts]
    ss[CHOSEN] = [m for m in METHODS if m in elsewhere or m in (ss.get("methods") or [])]


def _all_methods(opts: list[str]) -> None:
    st.session_state["methods"] = list(opts)
    _picked(opts)


def control_row(where=st):
    """A row of controls that wraps onto the next line instead of cutting a control (each keeps its own width)."""
    return where.container(horizontal=True, wrap=True, vertical_alignment="bottom", gap="medium")


def methods(run: Run, where=st, label: str = "Methods", options: list[str] | None = None) -> list[str]:
    """Method picker: ``options`` (default: the run's methods) as pills, the session's one choice (:data:`CHOSEN`;
    default: the seed's four when offered), an "All" button under it; each method's description and source on
    hover. Returns the chosen methods in registry order."""
    opts = list(run.cfg.methods if options is None else options)
    ss = st.session_state
    if ss.get(CHOSEN) is not None:
        ss["methods"] = [m for m in opts if m in ss[CHOSEN]]
    kept = state.coerce("methods", opts)  # nothing of the choice offered here: the default (state.SHARED_PARAMS)
    ss["methods"] = [m for m in opts if m in kept]  # in the order offered, whatever order a link names them in
    if ss.get(CHOSEN) is None:  # the session's first picker: the link's choice, or the default
        ss[CHOSEN] = list(ss["methods"])
    box = where.container()
    chosen = box.pills(label, opts, selection_mode="multi", key="methods", persist_state=SESSION,
                       on_change=_picked, args=(opts,), help=method_help(opts)) or []
    if len(opts) > len(chosen):
        box.button(f"All {len(opts)} methods", key="methods_all", on_click=_all_methods, args=(opts,),
                   help="show every method " + ("of the run" if options is None else "offered here"),
                   type="tertiary")
    return [m for m in opts if m in chosen] or opts


def method_one(run: Run, key: str, where=st, label: str = "Method", width="stretch") -> str:
    opts = list(run.cfg.methods)
    state.coerce(key, opts)
    return where.selectbox(label, opts, key=key, persist_state=SESSION, width=width,
                           help="\n".join(f"- **{m}**: {METHODS[m].description}" for m in opts))


def _fragment_only() -> bool:
    """True in a script run of page fragments alone (the frame and the sidebar are not redrawn in it)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def percentile(run: Run, where=st, width=190, rules: tuple[str, ...] = RULES):
    """The page's box rule and its parameter: a percentile (a float, the seed's rule) or a
    :class:`~surgery_core.eval.boxes.BoxRule` (Otsu, a fixed value), among ``rules``. The sidebar names it
    ("boxes p75"): a full script run rewrites that caption after the page (``sidebar.name_page_boxes``); when the
    control moved in a page fragment that reruns alone (which cannot write to the sidebar), the whole app reruns
    once."""
    rule = state.coerce("rule", list(rules), "percentile" if "percentile" in rules else rules[0])
    rule = where.segmented_control("Box rule", list(rules), key="rule", persist_state=SESSION, required=True,
                                   selection_mode="single", format_func=RULE_LABELS.get, help=RULE_HELP) or rule
    if rule == "otsu":
        v = BoxRule("otsu")
    elif rule == "fixed":
        opts = [c.value for c in fixed_cuts(run.cfg)]
        state.coerce("fv", opts)
        v = BoxRule("fixed", where.select_slider("Fixed threshold", opts, key="fv", persist_state=SESSION,
                                                 width=width, format_func=lambda v: f"{v:g}",
                                                 help="Boxes are cut where the min-max-normalised map is at or "
                                                      "above this value."))
    else:
        opts = percentiles(run)
        state.coerce("p", opts)
        v = float(where.select_slider("Heatmap percentile", opts, key="p", persist_state=SESSION, width=width,
                                      format_func=lambda v: f"p{v:g}",
                                      help="Boxes are cut where the min-max-normalised map is at or above this "
                                           "percentile of its own values (seed: 90; its analysis recommends 75)."))
    ss = st.session_state
    own = run.cfg.boxes.cut
    if v != own and run.cfg.boxes.rule in rules:
        # a page override, said where the boxes are (widgets.how), one click from the run's own cut
        where.button(f"Run's {cut_short(own)}", key="p_back", icon=":material/undo:", on_click=_run_cut,
                     args=(run,), help=f"Boxes on this page are cut at {cut_short(v)}, not at the run's own "
                                       f"{cut_short(own)}: click to draw them at the run's.")
    drawn = (ss.get("_page"), v)
    ss["_pct_drawn"], ss["_pct_this_run"] = drawn, True
    if "_sidebar_p" in ss and ss["_sidebar_p"] != drawn and _fragment_only():
        st.rerun(scope="app")
    return v


def _run_cut(run: Run) -> None:
    """The page's box rule and its value set back to the run's own."""
    b = run.cfg.boxes
    st.session_state.update(rule=b.rule, p=float(b.percentile), fv=float(b.fixed_value))


def iou(run: Run, where=st, disabled: bool = False, width=170) -> float:
    opts = ious(run)
    state.coerce("iou", opts)
    return float(where.select_slider("IoU threshold", opts, key="iou", persist_state=SESSION, disabled=disabled,
                                     width=width,
                                     format_func=lambda v: f"{v:g}",
                                     help="A predicted box is a true positive when its IoU with a still-unmatched "
                                          "GT box of its class is at least this (greedy, highest score first)."))


def protocol(run: Run, where=st) -> str:
    opts = list(run.cfg.protocols)
    state.coerce("proto", opts)
    return where.segmented_control("Protocol", opts, key="proto", persist_state=SESSION, required=True,
                                   selection_mode="single",
                                   help="\n".join(f"- {PROTOCOL_NOTES[p]}" for p in opts)) or opts[0]


def interp(run: Run, where=st, options: list[str] | None = None) -> str:
    opts = list(options or run.cfg.interps)
    state.coerce("interp", opts)
    return where.segmented_control("Interpolation", opts, key="interp", persist_state=SESSION, required=True,
                                   selection_mode="single", format_func=INTERP_LABELS.get,
                                   help="\n".join(f"- **{o}**: {INTERP_NOTES[o]}" for o in opts)) or opts[0]


def class_label(run: Run, c: int, image: int | None = None) -> str:
    name = run.classes[c]
    if image is None:
        return name
    n = int((run.dataset.images[image].labels == c).sum())
    return f"{name} ({n} GT)" if n else f"{name} (absent)"


# ------------------------------------------------------------------------------------------ captions
def how(run: Run, *, what: str = "", method: str | None = None, protocol: str | None = None,
        interp: str | None = None, iou: float | None = None, coco95: bool = False,
        percentile: float | None = None, where=st) -> None:
    """One caption naming everything a number on screen depends on."""
    parts = [what] if what else []
    if method:
        parts.append(f"method {method}: {METHODS[method].description}")
    if protocol:
        parts.append("protocol " + PROTOCOL_NOTES[protocol])
    if interp:
        parts.append(INTERP_NOTES[interp])
    if iou is not None:
        parts.append("IoU .50:.05:.95 averaged (COCO)" if coco95 and interp == "coco" else f"TP at IoU >= {iou:g}")
    if percentile is not None:
        params = box_params_for(run.cfg, protocol or PRESENT).with_cut(percentile)
        parts.append(box_note(params))
        if note := override_note(run, percentile):
            parts.append(f"**{note}**")
    if not run.cfg.input.at_models_own_size:  # a resized input: how the positional embedding followed
        from surgery_core.share.report import input_size

        parts.append(input_size(run))
    parts.append(f"run {run.title()} ({len(run.grids.rows)} images)")
    snapshot_ui.caption(" · ".join(parts), where)


_heap_settled = False


def settle_heap() -> None:
    """Once per process, with the libraries imported and the first run open: collect garbage, then freeze what
    is left (``gc.freeze``) so that later collections skip it.

    Streamlit calls ``gc.collect(2)`` after every rerun (``runner.postScriptGC``), holding the GIL before it
    tells the browser the run finished. torch, open_clip, plotly and pandas leave about 480,000 tracked objects
    that live as long as the process; scanning them took 270-650 ms per rerun on the 2-core test machine, most
    of the Compare page's redraw time in a browser. Frozen objects are still freed by reference counting (an
    evicted run is freed as before); only the objects created later are scanned (a few ms)."""
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()
        gc.freeze()


def banner(run: Run) -> None:
    """Warnings that must not be missed: random weights, or a model that cannot read the data; the link's run
    changed; the view settings the newly opened run reset."""
    if run.random_weights:
        st.error(f"**Random weights: {run.cfg.model.arch} has no checkpoint.** {run.model_note}",
                 icon=":material/warning:")
    elif run.model_note:
        st.error(f"**Model/data mismatch.** {run.model_note}", icon=":material/warning:")
    notes = st.session_state.get(state.ADOPT_NOTES)
    if notes:
        st.info(f"Run {run.run_hash} opened with its own settings: " + "; ".join(notes) + ".",
                icon=":material/restart_alt:")
    for note in st.session_state.get("_url_notes", []):
        st.warning(note, icon=":material/link:")
    if run.grids.skipped:
        st.caption(f"{len(run.grids.skipped)} images have no heatmaps (unreadable); see the Run page.")


# ------------------------------------------------------------------------------------------ tables
def scale_colours(vals: pd.DataFrame, lo: float | None = None, hi: float | None = None) -> pd.DataFrame:
    """CSS per cell of the numeric frame ``vals``: white to blue from ``lo`` to ``hi`` (default: its min and max),
    nothing on NaN (:func:`colour_scale`'s colours, for tables that show other text in their cells)."""
    arr = vals.to_numpy(dtype=float)
    some = np.isfinite(arr).any()  # a table of no value (every AP undefined) has no scale, and no warning
    lo = (np.nanmin(arr) if some else 0.0) if lo is None else lo
    hi = (np.nanmax(arr) if some else 1.0) if hi is None else hi
    span = (hi - lo) if np.isfinite(hi - lo) and hi > lo else 1.0

    def one(v: float) -> str:
        if not np.isfinite(v):
            return ""
        t = float(np.clip((v - lo) / span, 0, 1))
        r, g, b = (int(255 + (c - 255) * t) for c in (66, 133, 214))
        return f"background-color: rgb({r},{g},{b}); color: {'white' if t > 0.6 else 'black'}"

    return pd.DataFrame([[one(v) for v in row] for row in arr], index=vals.index, columns=vals.columns)


def colour_scale(df: pd.DataFrame, cols: list[str], lo: float | None = None, hi: float | None = None,
                 best_per_row: bool = False, fmt: str = "{:.3f}"):
    """A pandas Styler: white-to-blue background on ``cols`` (no matplotlib needed); with ``best_per_row`` the
    row's best value (every tie, and only when above zero) in bold with a star; NaN shown as an em dash."""
    vals = df[cols].astype(float)
    colours = scale_colours(vals, lo, hi)
    best = None
    if best_per_row and len(cols) > 1:
        top = vals.max(axis=1, skipna=True)
        best = vals.eq(top, axis=0) & (top > 0).to_numpy()[:, None]

    def text(v):
        if v is None or not np.isfinite(float(v)):
            return "—"
        if 0 < abs(float(v)) < 0.001:  # a tiny AP is not 0.000, and one format per table: "<0.001"
            return "<0.001" if v > 0 else "-<0.001"
        return fmt.format(v)

    sty = df.style.apply(lambda _: colours, axis=None, subset=cols).format(text, subset=cols)
    if best is not None:
        sty = sty.apply(lambda _: np.where(best, "font-weight: bold", ""), axis=None, subset=cols)
        for col in cols:  # one call per column (a call per starred cell cost ~6 ms each)
            rows = best.index[best[col].to_numpy()]
            if len(rows):
                sty = sty.format(lambda v: f"{text(v)}★", subset=pd.IndexSlice[list(rows), [col]])
    return sty


def metrics(values: dict, helps: list[str] | None = None, per_row: int = 5, where=st) -> None:
    """``st.metric`` per value, ``per_row`` to a row (ten methods stay readable at 1280 px)."""
    items = list(values.items())
    helps = helps or [None] * len(items)
    for r0 in range(0, len(items), per_row):
        for col, (label, v), h in zip(where.columns(per_row), items[r0:r0 + per_row], helps[r0:r0 + per_row]):
            col.metric(label, v, help=h)


def _value_text(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value_text(x) for x in v) or "—"
    if isinstance(v, dict):
        return " · ".join(f"{k.replace('_', ' ')} {_hash_text(k, x)}" for k, x in v.items()) or "—"
    return str(v)


def _hash_text(key: str, v) -> str:
    """A content hash cut to 16 hex digits (a 64-digit word overflows any table cell at 1280 px)."""
    if isinstance(v, str) and ("sha" in key or "hash" in key) and len(v) > 16:
        return v[:16] + "…"
    return _value_text(v)


def settings_markdown(doc: dict) -> str:
    """A nested settings document (a run configuration, model facts) as a two-column markdown table, one row
    per top-level key, nested keys inline (``kind demo · split test``; — = not set: the default applies)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = [f"| **{cell(k.replace('_', ' '))}** | {cell(_value_text(v))} |" for k, v in doc.items()]
    return "| setting | value |\n|:--|:--|\n" + "\n".join(rows)


ROW_PX = 32  # row height of every table
#: Tables of up to this many rows, without column settings, are drawn as plain HTML (``st.table``): the
#: interactive grid (``st.dataframe``, a canvas) cost about 0.25 s of the browser's time per table on each page
#: visit (Chrome profile of the Per-class AP page on the 2-core test machine), plain HTML a few ms
STATIC_ROWS = 100


def table(data, n_rows: int, cap: int = 900, where=st, shown: str | None = None, grid: bool | None = None,
          **kw) -> None:
    """A table, index hidden, registered for snapshots under the name ``shown`` when given: plain HTML with every
    row (``st.table``) when it is small (:data:`STATIC_ROWS`) and has no column settings (``kw``); else, or with
    ``grid``, ``st.dataframe`` (sort by a header click, pinned and sized columns, header hover texts) exactly as
    tall as its rows, scrolling beyond ``cap`` px."""
    if grid is None:
        grid = n_rows > STATIC_ROWS or bool(kw)
    if grid:
        where.dataframe(data, hide_index=True, height=min(ROW_PX * (n_rows + 1) + 2, cap), row_height=ROW_PX, **kw)
    else:
        where.table(data, hide_index=True, border="horizontal")
    if shown is not None:
        snapshot_ui.register_table(shown, data)


@st.cache_resource(max_entries=256, show_spinner=False)
def _built(memo: tuple, _build):
    """The figure ``_build()`` returns, built once per ``memo`` in this process (shared read-only: Streamlit only
    reads a figure to send it, and so do snapshots)."""
    return _build()


def chart(fig, key: str, where=st, name: str | None = None, memo: tuple | None = None) -> None:
    """A plotly figure with its toolbar (download as PNG at 2x, :func:`dashboard.charts.config`); ``name``: the
    downloaded file's name (default: the key and the run).

    With ``memo`` (everything the figure depends on, :func:`dashboard.data.run_key` first), ``fig`` is a function
    that builds it, called once per memo: building plotly figures (validated property by property) was most of
    the Per-class AP, Threshold sweep and Heatmap quality reruns (0.3-0.8 s per figure on 2 cores)."""
    from dashboard import charts, data

    if memo is not None:
        fig = _built((key, *memo), fig)
    where.plotly_chart(fig, key=key, config=charts.config(name or f"{key}_{data.current_run().run_hash}"))
    snapshot_ui.register_chart(key, fig)
