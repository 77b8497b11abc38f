"""Snapshots of what a page shows: the registry the views fill while they draw, the "Save snapshot" control, and
the read-only replay of a stored snapshot.

Registry
    Views declare what they display as they display it: :func:`markdown`, :func:`caption` and :func:`image` draw
    an element and register it in one call (``snapshot_ui.image(m, png, where=col, width="stretch")``);
    ``widgets.table`` (given a ``shown`` name), ``widgets.chart`` and ``widgets.how`` (every "how was this
    computed" caption) do the same for tables, plotly charts and captions. What a page draws in another form
    than the snapshot keeps it is registered alone: the state the view used (:func:`shown_state`) and named
    numbers (:func:`shown_numbers`). The registry lives in session state as an ordered list of blocks;
    :func:`begin` clears it when a script run starts (``app.py``) and when a page's fragment reruns on its own
    (first line of each ``view()``), so it always holds what is on screen now.

Saving
    :func:`save_control` (drawn by ``app.py`` on every page after the page ran) stores the registry with
    :meth:`surgery_core.share.snapshots.SnapshotStore.save`: ``state`` = :func:`~surgery_core.share.snapshots.view_state`
    (page, run configuration and hash, sample, class, methods, thresholds, the page's permalink), ``numbers`` =
    ``{"blocks": [...]}`` (tables as columns + rows, charts as plotly JSON, text verbatim), ``images`` = the
    displayed bytes. Snapshots live in :func:`dashboard.operator_settings.snapshot_store` (``<run store>/snapshots``).

Replay
    :func:`render_snapshot` draws a stored snapshot from its file alone: no run, no dataset, nothing recomputed.

Each block kind is one :class:`BlockKind` entry of :data:`BLOCK_KINDS`: how a registered block is stored and how
a stored one is drawn again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode

import streamlit as st

from dashboard.operator_settings import snapshot_store
from dashboard.state import PAGE_TITLES
from surgery_core.share.snapshots import Snapshot, SnapshotError, separate_fields, view_state

REG = "_snap_shown"
COLOUR_SCALE = "colour scale"  # the image name of a heatmap colour bar: drawn on its own row, at its own width
POPOVER = "snap_pop"  # the "Save snapshot" popover's key: its open state, closed after a save
IMAGES_PER_ROW = 8
# view_state's own arguments; every other shown_state value is kept as an extra key
_STATE_ARGS = ("image_index", "class_index", "cells", "methods", "percentile", "iou", "protocol", "interp")


def permalink(snapshot_id: str) -> str:
    """The query string that opens a snapshot (``?page=snapshots&snapshot=<id>``)."""
    return "?" + urlencode({"page": "snapshots", "snapshot": snapshot_id})


# ------------------------------------------------------------------------------------------ registry
def begin() -> None:
    """Start an empty registry (a script run or a page fragment starts drawing)."""
    st.session_state[REG] = {"state": {}, "blocks": []}


def mark() -> int:
    """Where the registry stands now: a fragment that reruns alone under other registered blocks calls
    :func:`rewind` with this mark first, so that its blocks replace its own earlier ones, not the page's."""
    return len(_reg()["blocks"])


def rewind(at: int) -> None:
    """Drop the blocks registered after mark ``at`` (see :func:`mark`)."""
    del _reg()["blocks"][at:]


def _reg() -> dict:
    reg = st.session_state.get(REG)
    if not isinstance(reg, dict):
        begin()
        reg = st.session_state[REG]
    return reg


def _add(kind: str, **block) -> None:
    _reg()["blocks"].append({"kind": kind} | block)


def shown_state(**values) -> None:
    """The view's state as the view used it (after coercion): ``image_index``, ``class_index``, the boxes shown
    (``cells``: a :class:`~surgery_core.eval.protocols.Cell` per method; a view that shows no cell gives
    ``methods`` and/or ``percentile`` instead), ``iou``, ``interp`` and any other JSON value (kept as an extra
    key)."""
    _reg()["state"].update(values)


def shown_numbers(name: str, values: dict, caption: str | None = None, style: str = "metrics") -> None:
    """Named numbers the page draws in its own form; the snapshot shows them as ``style`` ``metrics`` (one
    st.metric each) or ``json``."""
    _add("numbers", name=name, values=values, caption=caption, style=style)


def register_table(name: str, data, caption: str | None = None) -> None:
    """A table drawn by ``widgets.table`` (a DataFrame or a pandas Styler; the unformatted values are stored)."""
    _add("table", name=name, data=data, caption=caption)


def register_chart(name: str, fig) -> None:
    """A plotly figure drawn by ``widgets.chart`` (stored as plotly JSON: its data and layout)."""
    _add("chart", name=name, fig=fig)


def markdown(text: str, where=st, name: str | None = None) -> None:
    """Draw markdown in ``where`` and register it (``name``: the image it sits under, if any)."""
    where.markdown(text)
    _add("markdown", text=str(text), name=name)


def caption(text: str, where=st, name: str | None = None) -> None:
    """Draw a caption (how the numbers near it were computed) in ``where`` and register it."""
    where.caption(text)
    _add("caption", text=str(text), name=name)


def image(name: str, data: bytes, label: str | None = None, where=st, per_row: int | None = None,
          framed: bool = False, **kw) -> None:
    """Draw ``data`` (PNG or JPEG bytes) with ``where.image(data, **kw)`` and register it under ``name`` with
    ``label``, the words a snapshot shows under it (on screen they may sit in a caption of their own).
    per_row: pictures per row on screen (the row's columns); framed: the picture sits in a bordered container
    (``where`` is one): so that a snapshot reopens in the same layout, pictures of the same size."""
    where.image(data, **kw)
    _add("image", name=name, data=data, caption=label, **({"per_row": int(per_row)} if per_row else {}),
         **({"framed": True} if framed else {}))


# ------------------------------------------------------------------------------------------ serialising
def _records(data) -> dict:
    """``{"columns": [...], "rows": [[...]]}`` of a DataFrame or Styler; NaN/NA as None."""
    import pandas as pd

    df = getattr(data, "data", data) if not isinstance(data, pd.DataFrame) else data
    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(df)
    df = df.reset_index(drop=True)
    obj = df.astype(object).where(df.notna(), None)
    return {"columns": [str(c) for c in df.columns], "rows": obj.values.tolist()}


def _plotly_json(fig) -> dict:
    try:
        return json.loads(fig.to_json())
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"a chart could not be stored: {exc}") from None


def _store_text(b: dict, images: dict[str, bytes]) -> dict:
    return {"kind": b["kind"], "text": b["text"], "name": b.get("name")}


def _store_table(b: dict, images: dict[str, bytes]) -> dict:
    return {"kind": "table", "name": b["name"], "caption": b.get("caption")} | _records(b["data"])


def _store_numbers(b: dict, images: dict[str, bytes]) -> dict:
    return {k: b.get(k) for k in ("kind", "name", "values", "caption", "style")}


def _store_chart(b: dict, images: dict[str, bytes]) -> dict:
    return {"kind": "chart", "name": b["name"], "figure": _plotly_json(b["fig"])}


def _store_image(b: dict, images: dict[str, bytes]) -> dict:
    key, n = str(b["name"]), 2
    while key in images:  # unique keys; the block keeps the name shown
        key, n = f"{b['name']} ({n})", n + 1
    images[key] = bytes(b["data"])
    return {"kind": "image", "name": b["name"], "image": key, "caption": b.get("caption")} | {
        k: b[k] for k in ("per_row", "framed") if b.get(k)}


def collect(reg: dict | None = None) -> tuple[dict, dict, dict[str, bytes]]:
    """(view state values, numbers, images) of the registry, ready for :meth:`SnapshotStore.save`."""
    reg = _reg() if reg is None else reg
    images: dict[str, bytes] = {}
    blocks = [BLOCK_KINDS[b["kind"]].store(b, images) for b in reg.get("blocks", [])]
    return dict(reg.get("state", {})), {"blocks": blocks}, images


def snapshot_state(run, page: str, values: dict, link: dict) -> dict:
    """The stored state: :func:`view_state` of the values a view declared, with its page title and link."""
    kw = {k: values[k] for k in _STATE_ARGS if k in values}
    extra = {k: v for k, v in values.items() if k not in _STATE_ARGS}
    return view_state(run, page, **kw, **extra, page_title=PAGE_TITLES.get(page, page), link=link)


def default_title(page: str, values: dict, run) -> str:
    parts = [PAGE_TITLES.get(page, page)]
    if run is None:  # a page of several runs (Runs): what it compared, or the whole store
        pairs = values.get("pairs") or []
        if values.get("image_id"):
            parts.append(str(values["image_id"]))
        return " · ".join(parts + ([" vs ".join(pairs)] if pairs else ["every stored run"]))
    if values.get("image_index") is not None:
        parts.append(str(run.dataset.images[values["image_index"]].image_id))
    if values.get("class_index") is not None:
        parts.append(run.classes[values["class_index"]])
    parts.append(f"run {run.run_hash}")
    return " · ".join(parts)


# ------------------------------------------------------------------------------------------ save control
def _save(run) -> None:
    ss = st.session_state
    ss.pop("_snap_error", None)
    ss.pop("_snap_saved", None)
    page = ss.get("_page") or ""
    try:
        values, numbers, images = collect()
        if not numbers["blocks"]:
            raise SnapshotError(f"the {PAGE_TITLES.get(page, page)} page registered nothing to store")
        title = str(ss.get("snap_title") or "").strip() or default_title(page, values, run)
        link = {k: st.query_params.get(k) for k in st.query_params}
        state = snapshot_state(run, page, values, link)
        sid = snapshot_store().save(state, title, str(ss.get("snap_note") or ""), numbers=numbers, images=images)
    except (SnapshotError, OSError, TypeError, ValueError) as exc:
        ss["_snap_error"] = f"Snapshot not saved: {exc}"
        return
    ss["_snap_saved"] = sid
    ss["snap_title"], ss["snap_note"] = "", ""
    ss[POPOVER] = False  # close the popover: the message below it says what happened


def save_control(run, where=None) -> None:
    """The "Save snapshot" popover (title, note, Save) and the outcome of the last save."""
    where = st.sidebar if where is None else where
    with where.popover("Save snapshot", icon=":material/photo_camera:", width="stretch", key=POPOVER,
                       on_change="rerun",
                       help="Store this view (its state, numbers and images) with a title and a note; "
                            "the Snapshots page lists them."):
        with st.form("snap_form", border=False):
            st.text_input("Title", key="snap_title", max_chars=200,
                          placeholder="empty: page, sample, class and run")
            st.text_area("Note", key="snap_note", max_chars=10_000, height=90)
            st.form_submit_button("Save", type="primary", icon=":material/save:", on_click=_save, args=(run,),
                                  key="snap_save", width="stretch")
        st.caption(f"Stored in {snapshot_store().root}")
    if st.session_state.get("_snap_error"):
        where.error(st.session_state["_snap_error"], icon=":material/error:")
    sid = st.session_state.pop("_snap_saved", None)  # said once, on the page it was saved from
    if sid:
        where.success(f"Snapshot saved: `{sid}` · [open it]({permalink(sid)})", icon=":material/check_circle:")


# ------------------------------------------------------------------------------------------ replay
def _fmt_metric(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _table(block: dict, images: dict[str, bytes], key: str) -> None:
    import pandas as pd

    df = pd.DataFrame(block.get("rows") or [], columns=block.get("columns") or [])
    if block.get("name"):
        st.markdown(f"**{block['name']}**")
    if block.get("caption"):
        st.caption(block["caption"])
    st.dataframe(df, hide_index=True, key=key)


def _numbers(block: dict, images: dict[str, bytes], key: str) -> None:
    values = block.get("values") or {}
    if block.get("style") == "json" or not values:
        st.markdown(f"**{block.get('name', '')}**")
        st.json(values, expanded=2)
    else:
        for col, (k, v) in zip(st.columns(len(values)), values.items()):
            col.metric(str(k), _fmt_metric(v))
    if block.get("caption"):
        st.caption(block["caption"])


def _chart(block: dict, images: dict[str, bytes], key: str) -> None:
    import plotly.io as pio

    try:
        fig = pio.from_json(json.dumps(block["figure"]))
    except (KeyError, TypeError, ValueError) as exc:
        st.warning(f"Chart {block.get('name')!r} of this snapshot cannot be drawn: {exc}")
        return
    from dashboard import charts

    st.plotly_chart(fig, key=key, config=charts.config(str(block.get("name") or key)))


def _image_row(row: list[dict], images: dict[str, bytes], under: dict[str, list[dict]]) -> None:
    """Pictures of one layout (the same pictures per row and frame) in the columns they were saved in: every
    row has ``per_row`` columns, the last one too, so that each picture keeps its width (snapshots saved before
    ``per_row`` was stored: 8 a row); the colour scale alone at its own width."""
    if row[0].get("name") == COLOUR_SCALE:
        data = images.get(row[0].get("image"))
        if data is None:
            st.warning("the colour scale is missing from the snapshot file")
        else:
            st.image(data, width=640)
        return
    per = int(row[0].get("per_row") or IMAGES_PER_ROW)
    for start in range(0, len(row), per):
        for col, b in zip(st.columns(per), row[start:start + per]):
            cell = col.container(border=True) if b.get("framed") else col
            data = images.get(b.get("image"))
            if data is None:
                cell.warning(f"image {b.get('name')!r} is missing from the snapshot file")
            else:
                cell.image(data, width="stretch", caption=b.get("caption") or None)
            for t in under.get(b.get("name"), []):
                (cell.caption if t["kind"] == "caption" else cell.markdown)(t["text"])


def _layout(b: dict) -> tuple:
    """What must be equal for two pictures to share a row of a snapshot."""
    return b.get("name") == COLOUR_SCALE, b.get("per_row"), bool(b.get("framed"))


def render_blocks(numbers: dict, images: dict[str, bytes], key: str = "snap") -> None:
    """Draw stored blocks in their order; consecutive images side by side, each with its named text under it."""
    blocks = list((numbers or {}).get("blocks") or [])
    k = 0
    while k < len(blocks):
        b = blocks[k]
        if b.get("kind") == "image":
            row, under, names = [], {}, set()
            while k < len(blocks):
                c = blocks[k]
                if c.get("kind") == "image":
                    # a row holds pictures of one layout; the colour scale is a row of its own, where it was drawn
                    if row and (_layout(c) != _layout(row[0]) or c.get("name") == COLOUR_SCALE):
                        break
                    row.append(c)
                    names.add(c.get("name"))
                elif c.get("kind") in ("markdown", "caption") and c.get("name") in names:
                    under.setdefault(c["name"], []).append(c)
                else:
                    break
                k += 1
            _image_row(row, images, under)
            continue
        kind = BLOCK_KINDS.get(b.get("kind"))
        if kind is None:
            st.warning(f"This snapshot holds a block of unknown kind {b.get('kind')!r} (skipped).")
        else:
            kind.draw(b, images, f"{key}_{b['kind'][0]}{k}")  # tables _t<k>, charts _c<k>: stable widget keys
        k += 1


@dataclass(frozen=True)
class BlockKind:
    """One kind of block: ``store(registered block, images)`` gives the stored block (image bytes go into
    ``images``); ``draw(stored block, images, widget key)`` draws it again from a snapshot file."""

    store: Callable[[dict, dict[str, bytes]], dict]
    draw: Callable[[dict, dict[str, bytes], str], None]


BLOCK_KINDS = {
    "markdown": BlockKind(_store_text, lambda b, images, key: st.markdown(b.get("text", ""))),
    "caption": BlockKind(_store_text, lambda b, images, key: st.caption(b.get("text", ""))),
    "table": BlockKind(_store_table, _table),
    "numbers": BlockKind(_store_numbers, _numbers),
    "chart": BlockKind(_store_chart, _chart),
    # consecutive images are drawn as a row by render_blocks; alone, an image is a row of one
    "image": BlockKind(_store_image, lambda b, images, key: _image_row([b], images, {})),
}


STATE_LABELS = {"page_title": "page", "run_hash": "run", "run_label": "run label", "pairs": "compared",
                "shared_images": "shared images", "dataset": "dataset", "split": "split",
                "image_id": "sample", "class": "class", "methods": "methods", "percentile": "heatmap percentile",
                "box_rule": "box rule",
                "iou": "IoU threshold", "protocol": "protocol", "interp": "interpolation"}


def state_values(state: dict) -> dict:
    """The state as {what: value} for display (only what the view used), the same for a state that keeps its cells
    under one key and one from before cells (:func:`~surgery_core.share.snapshots.separate_fields`)."""
    state = separate_fields(state)
    out = {label: state[k] for k, label in STATE_LABELS.items() if state.get(k) not in (None, "", [])}
    if state.get("model"):
        out["model"] = state["model"]
    return out


def render_snapshot(snap: Snapshot) -> None:
    """A stored view, read-only: title, note, time, state, then the blocks as they were on screen."""
    s = snap.state
    st.markdown(f"### {snap.title}")
    st.caption(f"Snapshot `{snap.id}` · saved {snap.created} (UTC) · {s.get('page_title') or s.get('page')} page "
               f"of run `{s.get('run_hash')}` · read-only: the stored numbers and images, nothing recomputed")
    if snap.note:
        st.markdown(snap.note)
    from dashboard.widgets import settings_markdown  # widgets imports this module: import at call time

    link = s.get("link") or {}
    if link:
        st.markdown(f"[:material/open_in_new: Open the live view of these settings](?{urlencode(link)}) "
                    "(recomputed from the run: the numbers may differ if the run or the library changed since)")
    st.markdown(settings_markdown(state_values(s)))
    with st.expander("Run configuration at the time"):
        st.markdown(settings_markdown(s.get("config") or {}))
    st.divider()
    render_blocks(snap.numbers, snap.images)
