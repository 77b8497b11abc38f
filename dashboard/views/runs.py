"""Runs: every run of the store in one table (one row per run and method, the numbers each run has already
computed), labels, notes and deletion, and 2 to 4 (run, method) pairs compared on the images they share.

The frame opens no run on this page (``app.py``): the table is read from the run folders' files
(:mod:`surgery_core.run.stored`), so opening the page computes nothing. "Compute the missing numbers" is the one
control that does, with a progress bar; comparing opens the chosen runs from the store.
"""

import pandas as pd
import streamlit as st

from dashboard import crossrun_view, data, operator_settings, permalink, snapshot_ui, state, widgets
from surgery_core.errors import PathNotAllowedError, SurgeryError
from surgery_core.eval.protocols import PRESENT
from surgery_core.run import stored
from surgery_core.run.config import RunConfig

permalink.declare(
    state.Param("pairs", "list", [], "Runs: the (run folder:method) pairs compared"),
    state.Param("rds", "list", [], "Runs: datasets shown (empty = all)"),
    state.Param("rarch", "list", [], "Runs: models shown (empty = all)"),
    state.Param("rmeth", "list", [], "Runs: methods shown (empty = all)"),
    state.Param("rsample", "str", "", "Runs: shared image shown"),
    state.Param("rcls", "str", "", "Runs: class shown"),
    state.Param("rproto", "str", PRESENT.name, "Runs: protocol of the comparison"),
    state.Param("rinterp", "str", "voc07", "Runs: interpolation of the comparison"),
    state.Param("riou", "float", 0.5, "Runs: IoU threshold of the comparison table"),
)

ss = st.session_state
store = operator_settings.run_store()
HEAD = [h.key for h in stored.HEADLINES]
LEAD = ["label", "run", "method"]  # then the numbers, then what distinguishes the runs
FACTS = ["dataset", "split", "images", "arch", "weights", "sha256", "input", "window", "depth", "prompts", "box rule"]
TAIL = ["run MB", "grids MB", "note", "finished"]
COLOUR_ROWS = 150


@st.cache_data(ttl=10, show_spinner="Reading the run store…")
def board(root: str, generation: int) -> tuple[list[stored.StoredRun], list[dict]]:
    """The stored runs and the leaderboard rows (re-read every 10 s, and after a label, delete or compute)."""
    runs = stored.list_stored(store)
    return runs, stored.leaderboard(store, runs)


def refresh() -> None:
    ss["_runs_gen"] = ss.get("_runs_gen", 0) + 1


# ------------------------------------------------------------------------------------------ housekeeping
def save_label(folder: str) -> None:
    try:
        run = stored.read_run(store.root / "runs" / folder, products=False)
        if run is None:
            raise SurgeryError(f"run folder {folder} is no longer in the store")
        stored.set_label(run, ss.get("runs_label", ""), ss.get("runs_note", ""))
        ss["_runs_msg"] = ("success", f"Saved the label of run {run.run_hash}: {run.label or '(none)'}")
    except SurgeryError as exc:
        ss["_runs_msg"] = ("error", str(exc))
    refresh()


def load_label() -> None:
    folder = ss.get("runs_edit")
    run = stored.read_run(store.root / "runs" / folder, products=False) if folder else None
    ss["runs_label"], ss["runs_note"] = (run.label, run.note) if run else ("", "")
    ss.pop("_runs_confirm", None)


def delete(folder: str) -> None:
    ss.pop("_runs_confirm", None)
    run = stored.read_run(store.root / "runs" / folder, products=False)
    try:
        if run is None:
            raise SurgeryError(f"run folder {folder} is no longer in the store")
        stored.delete_run(store, run)
        ss["_runs_msg"] = ("success", f"Deleted run {run.title()}.")
        ss["pairs"] = [p for p in ss.get("pairs") or [] if not p.startswith(folder + ":")]
    except (SurgeryError, OSError) as exc:
        ss["_runs_msg"] = ("error", f"Could not delete: {exc}")
    ss["runs_edit"] = None
    refresh()


def housekeeping(runs: list[stored.StoredRun]) -> None:
    by_name = {r.name: r for r in runs}
    with st.expander("Label, note and delete a run"):
        if ss.get("runs_edit") not in by_name:
            ss["runs_edit"] = None
        pick = st.selectbox("Run", list(by_name), key="runs_edit", index=None, on_change=load_label,
                            placeholder="pick a run…", format_func=lambda n: f"{by_name[n].title()} · "
                            f"{by_name[n].facts()['dataset']} · {by_name[n].facts()['arch']}")
        if pick is None:
            return
        with st.form("runs_label_form", border=False):
            st.text_input("Label", key="runs_label", max_chars=stored.MAX_LABEL,
                          placeholder="e.g. RemoteCLIP B/32 @448")
            st.text_area("Note (who, why)", key="runs_note", max_chars=stored.MAX_NOTE, height=80)
            st.form_submit_button("Save label and note", on_click=save_label, args=(pick,), icon=":material/save:")
        size = stored.folder_size(by_name[pick].folder) / 1e6
        if ss.get("_runs_confirm") != pick:
            st.button(f"Delete this run ({size:.1f} MB)", key="runs_del", icon=":material/delete:",
                      on_click=lambda: ss.__setitem__("_runs_confirm", pick))
            return
        st.warning(f"Delete run `{by_name[pick].title()}` ({size:.1f} MB of results)? Its grids stay in the store "
                   "for runs of the same model and input. This cannot be undone.", icon=":material/warning:")
        a, b = st.columns(2)
        a.button("Yes, delete", key="runs_del_yes", type="primary", on_click=delete, args=(pick,))
        b.button("Cancel", key="runs_del_no", on_click=lambda: ss.pop("_runs_confirm", None))


# ------------------------------------------------------------------------------------------ computing
def compute(runs: list[stored.StoredRun]) -> None:
    """The one control that computes: the AP tables and quality of the runs that lack them."""
    todo = [r for r in runs if not all(r.products.values())]
    if not todo:
        return
    n = sum(not ok for r in todo for ok in r.products.values())
    if not st.button(f"Compute the missing numbers ({n} product{'s' * (n != 1)} of {len(todo)} "
                     f"run{'s' * (len(todo) != 1)})", key="runs_compute", icon=":material/calculate:",
                     help="Opens each run from the store (its heatmaps are there) and computes its AP tables, "
                          "CorLoc and "
                          "heatmap quality; the numbers are kept in the run folder."):
        return
    allowed = []
    for r in todo:
        try:
            data.check_paths(RunConfig.model_validate(r.config))
            allowed.append(r)
        except (PathNotAllowedError, ValueError) as exc:
            st.error(f"Run {r.title()} is not computed here: {exc}", icon=":material/block:")
    bar = st.progress(0.0, text="Computing…")

    def step(done: int, total: int, what: str) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{what} ({done}/{total})")

    try:
        stored.compute_missing(store, allowed, progress=step)
    except Exception as exc:  # noqa: BLE001 - one line, the rest of the page stays
        widgets.failure("Computing the missing numbers", exc)
    refresh()
    st.rerun()


# ------------------------------------------------------------------------------------------ the table
def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=LEAD + HEAD + [stored.NOT_COMPUTED] + FACTS + TAIL + ["folder"])
    for c in HEAD:
        df[c] = df[c].astype(float)
    return df


def leaderboard(df: pd.DataFrame) -> None:
    df = df.drop(columns="folder")
    num = df[HEAD].astype(float)
    shown = df.copy()
    for h in stored.HEADLINES:  # text that sorts as the number (fixed 4 decimals, all values in 0-1); a product the
        # run has not computed says so, not a dash and not a zero
        missing = df[stored.NOT_COMPUTED].str.contains(h.product.replace("_", " "), regex=False)
        shown[h.key] = [stored.NOT_COMPUTED if miss else ("—" if v != v else f"{v:.4f}")
                        for v, miss in zip(num[h.key], missing)]
    # colours for a table of up to COLOUR_ROWS rows (a filtered view); beyond, pandas' Styler costs about a second
    # per 1,000 rows on every redraw, so the full store is shown as sortable text only
    sty = shown.style.apply(lambda _: widgets.scale_colours(num, 0.0), axis=None, subset=HEAD) \
        if len(df) <= COLOUR_ROWS else shown
    cfg = {"label": st.column_config.TextColumn(pinned=True), "run": st.column_config.TextColumn(pinned=True),
           "method": st.column_config.TextColumn(pinned=True),
           "images": st.column_config.NumberColumn(help="images with heatmaps"),
           "sha256": st.column_config.TextColumn(help="checkpoint content, first 12 hex digits"),
           "run MB": st.column_config.NumberColumn(format="%.1f", help="the run folder: its results and label"),
           "grids MB": st.column_config.NumberColumn(format="%.1f", help="the run's heatmap grids, shared by every "
                                                     "run of the same model, input, prompts and classes")}
    cfg |= {h.key: st.column_config.TextColumn(help=h.doc) for h in stored.HEADLINES}
    widgets.table(sty, len(df), 420, shown="runs", column_config=cfg)


def view() -> None:
    snapshot_ui.begin()
    for kind, text in [ss.pop("_runs_msg")] if ss.get("_runs_msg") else []:
        (st.success if kind == "success" else st.error)(text)
    runs, rows = board(str(store.root), ss.get("_runs_gen", 0))
    st.markdown("### Runs")
    if not runs:
        st.info(f"No stored runs in {store.root / 'runs'} yet: open a run (sidebar of any other page) or run "
                "`surgery evaluate`.")
        permalink.sync_url()
        return
    full = table(rows)
    row = widgets.control_row()
    filters = {}
    for key, col, label in (("rds", "dataset", "Dataset"), ("rarch", "arch", "Model"), ("rmeth", "method", "Method")):
        opts = list(dict.fromkeys(full[col].tolist()))
        state.coerce(key, opts, [])
        filters[col] = row.multiselect(label, opts, key=key, persist_state="session", placeholder="all", width=260)
    df = full
    for col, chosen in filters.items():
        if chosen:
            df = df[df[col].isin(chosen)]
    df = df.reset_index(drop=True)
    snapshot_ui.shown_state(filters={k: v for k, v in filters.items() if v})
    snapshot_ui.caption(
        f"{len(runs)} runs in {store.root / 'runs'}, newest first; {len(df)} (run, method) rows shown. Every number "
        "is read from what the run has computed already (opening this page computes nothing); mAP: VOC2007 "
        "11-point or COCO AP@[.50:.95], at the IoU of the column, boxes at the run's own box rule (column 'box "
        "rule'); CorLoc at IoU 0.5 (top box per class and image); pointing games over all (image, GT class) "
        "pairs, tolerance as configured per run. — = the run "
        "does not score it (or no GT). Click a header to sort.")
    leaderboard(df)
    compute(runs)
    housekeeping(runs)

    st.markdown("#### Compare runs")
    options = [f"{name}:{m}" for name, m in zip(df["folder"], df["method"])]
    chosen = [p for p in ss.get("pairs") or [] if _split(p)[0] in {r.name for r in runs}]
    options = list(dict.fromkeys(chosen + options))
    ss["pairs"] = chosen
    titles = {r.name: r.title() for r in runs}
    st.multiselect("Rows to compare (2 to 4), each a run and one of its methods", options, key="pairs",
                   max_selections=4, persist_state="session", placeholder="pick 2 to 4 (run, method) rows…",
                   format_func=lambda p: f"{titles.get(_split(p)[0], _split(p)[0])} · {_split(p)[1]}")
    chosen = list(ss.get("pairs") or [])
    if len(chosen) < 2:
        st.caption("Pick at least two rows: the same sample side by side, the per-class AP of each pair on the "
                   "images the runs share with the difference to the first, and the threshold sweeps.")
    else:
        comparison(chosen, {r.name: r for r in runs}, snapshot_ui.mark())
    permalink.sync_url()


@widgets.fragment
def comparison(chosen: list[str], by_name: dict, at: int) -> None:
    """The cross-run view, rerun alone on Prev/Next and its own controls (the table above is not redrawn)."""
    snapshot_ui.rewind(at)
    crossrun_view.show(chosen, by_name)
    permalink.sync_url()


def _split(p: str) -> tuple[str, str]:
    folder, _, method = p.rpartition(":")
    return folder, method


widgets.fragment(view)()
