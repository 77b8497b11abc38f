"""The model picker of Run settings: catalog entries and registered models by name, which are on this machine,
and a download (with a progress bar) of a missing one, on request only.

The picked name is the form field ``model.name`` (session-state key ``f_model``); "" means "the architecture and
checkpoint typed below". A name sets architecture, QuickGELU and the expected sha256 together (see
:class:`surgery_core.run.config.ModelConfig`), so the form leaves those fields out when a name is picked.
"""

from __future__ import annotations

import io

import streamlit as st

from surgery_core.errors import SurgeryError
from surgery_core.model.local_models import find_model, model_rows

CUSTOM = ""  # the picker's first option: architecture and checkpoint as typed in the form


@st.cache_data(ttl=10, show_spinner=False)
def rows() -> dict[str, dict]:
    """Every catalog and registered model with where its file is on this machine (``model_rows``), by name."""
    return {r["name"]: r for r in model_rows()}


def _size(n: int | None) -> str:
    return "size unpublished" if n is None else f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def label(name: str) -> str:
    """The picker's line for ``name``: what it is and whether it is here."""
    if name == CUSTOM:
        return "Architecture and checkpoint below"
    r = rows().get(name)
    if r is None:
        return f"{name} (unknown)"
    # the mark first: the sidebar is narrow and a long label is cut at its end
    mark, here = ("✓", "on this machine") if r["present"] else ("↓", f"not here ({_size(r['size'])})")
    return f"{mark} {name} · {r['arch']}{' · QuickGELU' if r['quickgelu'] else ''} · {here}"


def options(current: str | None) -> list[str]:
    names = [CUSTOM, *rows()]
    if current and current not in names:  # a run that names a model this process does not know (yet)
        names.append(current)
    return names


def _streamlit_tqdm(bar, what: str):
    """A tqdm class whose updates drive a Streamlit progress bar (what huggingface_hub and the URL download call)."""
    from tqdm import tqdm

    class StreamlitBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = io.StringIO()  # the terminal rendering goes nowhere; the page shows the bar
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            out = super().update(n)
            total = self.total or 0
            frac = min(self.n / total, 1.0) if total else 0.0
            shown = f"{self.n / 1e6:.0f} / {total / 1e6:.0f} MB" if total else f"{self.n / 1e6:.0f} MB"
            bar.progress(frac, text=f"Downloading {what}: {shown}")
            return out

    return StreamlitBar


def draw() -> None:
    """The picker, and under it what the picked model is, where its file is, or a Download button."""
    ss = st.session_state
    current = ss.get("f_model") or CUSTOM
    names = options(current)
    # No widget key: the id of an unkeyed selectbox covers its labels, so once a download makes a model "on this
    # machine" the box is drawn anew with its new label (a keyed one keeps showing the old label of the picked
    # option). The pick is kept in session state under the form field's key, ``f_model``.
    with st.container(key="model_picker"):
        name = st.selectbox("Model", names, index=names.index(current), format_func=label,
                            help="A catalog model (RemoteCLIP, GeoRSCLIP, SkyCLIP, OpenAI CLIP, LAION) or one "
                                 "registered with 'surgery models add': its name sets architecture, QuickGELU and "
                                 "checkpoint together, and the run names it. Nothing is downloaded unless you "
                                 "press Download.")
    ss["f_model"] = name
    pulled = ss.pop("_model_pulled", None)
    if pulled:
        st.success(pulled, icon=":material/check:")
    if name == CUSTOM:
        return
    r = rows().get(name)
    if r is None:
        st.caption(f"{name}: not in the catalog nor registered here.")
        return
    if r["present"]:
        sha = "sha256 verified" if r["sha256_verified"] else (
            "sha256 checked when loaded" if r["sha256"] else "no published sha256")
        st.caption(f"{r['title']} · {r['where']} · {sha} · licence: {r['licence']}")
        return
    st.caption(f"{r['title']} is not on this machine: {_size(r['size'])} from {r['source']}.")
    if st.button(f"Download {name}", key="model_pull", icon=":material/download:", width="stretch"):
        pull_now(name)


def pull_now(name: str) -> None:
    """Download ``name`` with a progress bar; success or the one-line reason, shown in place."""
    from surgery_core.model.pull import pull

    bar = st.progress(0.0, text=f"Downloading {name}…")
    try:
        found = pull(find_model(name), tqdm_class=_streamlit_tqdm(bar, name))
    except SurgeryError as exc:
        bar.empty()
        st.error(str(exc), icon=":material/cloud_off:")
        return
    bar.empty()
    rows.clear()
    st.session_state["_model_pulled"] = (f"{name} downloaded: in the {found.where}, size and sha256 checked "
                                         "where published. **Open run** to use it.")
    st.rerun()  # the picker's labels say it is here now
