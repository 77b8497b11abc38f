"""CLIP Surgery inspector: ``streamlit run dashboard/app.py`` (from the repository root).

The frame: navigation, the run chosen in the sidebar (opened once per process), warnings, then the page.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import permalink, sidebar, snapshot_ui, state, widgets  # noqa: E402

# 330 px: the sidebar's labels ("Window", "x class prob") and recent-run entries fit on one line at 1280 px
# The page icon ships with the app (a material icon would make the browser fetch it from Google's font server)
st.set_page_config(page_title="CLIP Surgery inspector", page_icon=str(ROOT / "dashboard" / "assets" / "page_icon.png"),
                   layout="wide", initial_sidebar_state=330)

ICONS = {"browse": "grid_view", "compare": "compare", "explore": "travel_explore", "ap": "table_chart",
         "sweep": "tune", "quality": "insights", "run": "info", "runs": "leaderboard",
         "snapshots": "photo_library"}
PAGES = {name: st.Page(f"views/{name}.py", title=title, icon=f":material/{ICONS[name]}:", default=name == "browse",
                       url_path=None if name == "browse" else name)
         for name, title in state.PAGE_TITLES.items()}
page = st.navigation(list(PAGES.values()), position="top")
name = next(n for n, p in PAGES.items() if p.title == page.title)

permalink.init_from_url()
wanted = st.session_state.pop("_url_page", None)
if wanted in PAGES and wanted != name:  # a link that names its page only in ?page=
    st.switch_page(PAGES[wanted], query_params={k: st.query_params.get(k) for k in st.query_params})

st.html("<style>[data-testid='stMainBlockContainer']{padding-top:3.6rem;padding-bottom:2rem;"
        "padding-left:2rem;padding-right:2rem}</style>")  # at 1280 px every pixel goes to the pictures
top = st.container()
st.session_state["_page"] = name
snapshot_ui.begin()  # the page registers what it shows, for "Save snapshot"
if name in ("snapshots", "runs"):  # no session run is opened: stored views open from their files alone, the
    # Runs page reads the run folders' files and opens only the runs it compares
    st.sidebar.caption("Snapshots open from their files alone: no run is opened on this page." if name == "snapshots"
                       else "The Runs page reads every stored run's files; it opens only the runs you compare.")
    permalink.sync_url(name)
    widgets.guarded(page.run)
    permalink.sync_url(name)
    if name == "runs":
        snapshot_ui.save_control(None)
    st.stop()
run = sidebar.run_selection(top)  # adopts a newly opened run's own view settings (state.adopt_run)
widgets.settle_heap()  # once per process, with the libraries loaded and a run open: keeps post-run GC short
widgets.banner(run)
permalink.sync_url(name)
st.session_state.pop("_pct_this_run", None)
widgets.guarded(page.run)
if not st.session_state.pop("_pct_this_run", False):  # this page has no percentile: the sidebar shows the run's
    st.session_state.pop("_pct_drawn", None)
sidebar.name_page_boxes(run.cfg)  # the box rule the page drew, in the sidebar drawn before it
permalink.sync_url(name)
snapshot_ui.save_control(run)
