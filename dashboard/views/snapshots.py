"""Snapshots: stored views, newest first, searchable; one opens read-only from its file alone (no run, no
dataset), with a permalink (``?page=snapshots&snapshot=<id>``); delete asks for a confirmation.

The frame (``app.py``) opens no run on this page, so it works after the run store or the dataset is gone.
"""

import streamlit as st

from dashboard import permalink, snapshot_ui, state
from surgery_core.share.snapshots import SnapshotError

permalink.declare(state.Param("snapshot", "str", "", "Snapshots: id of the snapshot shown ('' = the list)"))

SHOWN = 100  # list entries drawn at most (the search narrows it)

store = snapshot_ui.snapshot_store()
ss = st.session_state


def open_snapshot(sid: str) -> None:
    ss["snapshot"] = sid
    ss.pop("_snap_confirm", None)


def close_snapshot() -> None:
    ss["snapshot"] = ""


def ask_delete(sid: str) -> None:
    ss["_snap_confirm"] = sid


def cancel_delete() -> None:
    ss.pop("_snap_confirm", None)


def delete(sid: str) -> None:
    ss.pop("_snap_confirm", None)
    try:
        store.delete(sid)
        ss["_snap_deleted"] = sid
    except (SnapshotError, OSError) as exc:
        ss["_snap_del_error"] = f"Could not delete snapshot {sid}: {exc}"
        return
    if ss.get("snapshot") == sid:
        ss["snapshot"] = ""


def delete_controls(sid: str, where) -> None:
    """Delete, then "Yes, delete" / "Cancel" for this snapshot."""
    if ss.get("_snap_confirm") != sid:
        where.button("Delete", key=f"snap_del_{sid}", icon=":material/delete:", on_click=ask_delete, args=(sid,))
        return
    where.warning(f"Delete snapshot `{sid}`? This cannot be undone.", icon=":material/warning:")
    a, b = where.columns(2)
    a.button("Yes, delete", key=f"snap_del_yes_{sid}", type="primary", on_click=delete, args=(sid,))
    b.button("Cancel", key=f"snap_del_no_{sid}", on_click=cancel_delete)


def messages() -> None:
    if ss.get("_snap_deleted"):
        st.success(f"Deleted snapshot `{ss.pop('_snap_deleted')}`.", icon=":material/delete:")
    if ss.get("_snap_del_error"):
        st.error(ss.pop("_snap_del_error"), icon=":material/error:")


def show_one(sid: str) -> None:
    st.button("All snapshots", icon=":material/arrow_back:", on_click=close_snapshot, key="snap_back")
    try:
        snap = store.load(sid)
    except SnapshotError as exc:
        st.error(f"**This snapshot cannot be opened.** {exc}", icon=":material/error:")
        return
    url = f"{st.context.url or ''}{snapshot_ui.permalink(snap.id)}"
    c = st.columns([5, 1.2], vertical_alignment="bottom")
    c[0].caption("Permalink of this snapshot:")
    c[0].code(url, language=None, wrap_lines=True)
    delete_controls(snap.id, c[1])
    snapshot_ui.render_snapshot(snap)


def show_list() -> None:
    st.markdown("### Snapshots")
    st.caption(f"Stored views, newest first · folder {store.root} · each opens from its file alone, after the run "
               "store or the dataset is gone")
    q = st.text_input("Search titles, notes and ids", key="snap_q", placeholder="words, all must match")
    metas = store.list(q)
    if not metas:
        st.info("No snapshot matches this search." if q.strip() else
                "No snapshots yet: **Save snapshot** in the sidebar of any page stores its view.")
        return
    damaged = sum(not m.ok for m in metas)
    st.caption(f"{len(metas)} snapshot{'s' * (len(metas) != 1)}" + (f", {damaged} unreadable" if damaged else "")
               + (f" · the newest {SHOWN} shown, search to narrow" if len(metas) > SHOWN else ""))
    for m in metas[:SHOWN]:
        with st.container(border=True):
            left, right = st.columns([5, 1.2], vertical_alignment="top")
            if not m.ok:
                left.error(f"**{m.id}** cannot be opened: {m.error}", icon=":material/broken_image:")
                delete_controls(m.id, right)
                continue
            left.markdown(f"**{m.title}**")
            left.caption(f"{m.created} · {state.PAGE_TITLES.get(m.page, m.page)} page · run `{m.run_hash}` · "
                         f"{m.image_count} image{'s' * (m.image_count != 1)} · `{m.id}` · "
                         f"[permalink]({snapshot_ui.permalink(m.id)})")
            if m.note:
                first = m.note.strip().splitlines()[0]
                left.markdown(first[:300] + ("…" if len(first) > 300 or "\n" in m.note.strip() else ""))
            right.button("Open", key=f"snap_open_{m.id}", icon=":material/visibility:", on_click=open_snapshot,
                         args=(m.id,), type="primary")
            delete_controls(m.id, right)


messages()
if ss.get("snapshot"):
    show_one(ss["snapshot"])
else:
    show_list()
permalink.sync_url()
