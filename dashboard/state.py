"""View state shared by every page: the run a session looks at, and the view parameters (sample, class,
methods, thresholds, ...) with their defaults.

Session state is the source of truth while a session lives; :mod:`dashboard.permalink` mirrors it in the URL.
The parameters every page may read are declared here (:data:`SHARED_PARAMS`); a page declares its own with
:func:`dashboard.permalink.declare` when it runs, and this module keeps what was declared (:func:`param`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import streamlit as st

from dashboard.operator_settings import app_default_config
from surgery_core.eval.protocols import PRESENT
from surgery_core.run.config import RunConfig

#: The app's pages (``?page=`` names) and their titles, in navigation order.
PAGE_TITLES = {"browse": "Browse", "compare": "Compare", "explore": "Explore", "ap": "Per-class AP",
               "sweep": "Threshold sweep", "quality": "Heatmap quality", "run": "Run", "runs": "Runs", "snapshots": "Snapshots"}


# ------------------------------------------------------------------------------------------ run configuration
@lru_cache(maxsize=64)
def _config_from_spec(spec: str) -> RunConfig:
    """A RunConfig from JSON text (a session's run); frozen, so safe to share."""
    return RunConfig.model_validate_json(spec)


def current_config() -> RunConfig:
    """The configuration of the run this session looks at."""
    text = st.session_state.get("_cfg_json")
    return _config_from_spec(text) if text else app_default_config()


def set_config(cfg: RunConfig, from_link: bool = False) -> None:
    """Make ``cfg`` the session's run (notes about the link that opened the session go with the old run)."""
    st.session_state["_cfg_json"] = cfg.model_dump_json()
    if not from_link:
        st.session_state["_url_notes"] = []


# ------------------------------------------------------------------------------------------ view parameters
@dataclass(frozen=True)
class Param:
    """One piece of view state: its session-state key (also the URL name), kind and default."""

    key: str
    kind: str  # str | float | int | bool | list | range
    default: Any  # a value, or a function of the RunConfig
    doc: str

    def default_for(self, cfg: RunConfig) -> Any:
        return self.default(cfg) if callable(self.default) else self.default


def _default_iou(cfg: RunConfig) -> float:
    from surgery_core.run.evaluation import view_iou  # one rule for Compare and the report figures

    return view_iou(cfg)


def seed_first(methods) -> list[str]:
    """Methods shown by default: the seed's four when the run has them (the run may hold all ten)."""
    from surgery_core.model.methods import SEED_METHODS

    return [m for m in methods if m in SEED_METHODS] or list(methods)


#: Parameters more than one page reads (the frame's widgets, or one page sending the user to another).
SHARED_PARAMS: tuple[Param, ...] = (
    Param("sample", "str", "", "image id shown in Compare"),
    Param("cls", "str", "", "class name shown in Compare"),
    Param("methods", "list", lambda c: seed_first(c.methods), "heatmap methods shown"),
    Param("p", "float", lambda c: float(c.boxes.percentile), "heatmap percentile threshold"),
    Param("rule", "str", lambda c: c.boxes.rule, "box rule: percentile, otsu or fixed"),
    Param("fv", "float", lambda c: float(c.boxes.fixed_value), "fixed threshold of the 0-1 map (box rule fixed)"),
    Param("iou", "float", _default_iou, "IoU threshold for TP/AP"),
    Param("proto", "str", PRESENT.name, "evaluation protocol"),
    Param("interp", "str", "voc07", "AP interpolation"),
    Param("alpha", "float", 0.5, "heatmap opacity"),
    Param("raw", "bool", False, "show the raw patch grid"),
)
_declared: dict[str, Param] = {p.key: p for p in SHARED_PARAMS}  # process-wide: pages add theirs as they run


def register(params: tuple[Param, ...]) -> list[Param]:
    """Add a page's parameters to the known ones (idempotent); returns those that were new to this process.
    ValueError when a key is already taken by a different parameter."""
    new = []
    for p in params:
        old = _declared.get(p.key)
        if old is None:
            _declared[p.key] = p
            new.append(p)
        elif (old.kind, old.doc) != (p.kind, p.doc):  # a page's own declaration runs again on every rerun
            raise ValueError(f"URL parameter {p.key!r} declared twice: {old.doc!r} and {p.doc!r}")
    return new


def params() -> tuple[Param, ...]:
    """Every parameter declared so far: the shared ones, then the pages' in the order they first ran."""
    return tuple(_declared.values())


def param(key: str) -> Param | None:
    return _declared.get(key)


#: View settings that belong to the run they were chosen on: a run opened later starts from its own values of
#: these (its percentile and IoU, no filter), and the session is told what was reset (:func:`adopt_run`).
RUN_SCOPED = {"p": "heatmap percentile", "iou": "IoU threshold", "bn": "objects-per-image filter",
              "bcls": "class filter", "q": "image id filter", "bout": "outcome filter", "bpage": "Browse page"}
ADOPT_NOTES = "_adopt_notes"


def adopt_run(cfg: RunConfig) -> None:
    """Called once the session's run is open: when it is another run than the one the view settings were chosen
    on, drop the settings of :data:`RUN_SCOPED` (every page then shows the run's own values) and keep a note of
    what changed for the banner. A session's first run keeps what its link set."""
    ss = st.session_state
    before = ss.get("_view_for")
    ss["_view_for"] = cfg.run_hash
    if before is None or before == cfg.run_hash:
        return
    notes = []
    # set, not dropped: a widget kept across pages (persist_state) would bring a dropped value back
    reset = {"p": float(cfg.boxes.percentile), "iou": _declared["iou"].default_for(cfg), "bn": None, "bcls": [],
             "q": "", "bout": "all", "bpage": 1}
    for key, what in RUN_SCOPED.items():
        old = ss.get(key)
        if key in reset:
            ss[key] = reset[key]
        ss.get("_defaults", {}).pop(key, None)
        if old is None or key == "bpage" or old in ((), [], ""):
            continue
        p = param(key)
        if p is not None and p.kind == "range":
            notes.append(f"{what} cleared (was {int(old[0])}-{int(old[1])})")
        elif key == "p":
            if float(old) != float(cfg.boxes.percentile):
                notes.append(f"percentile p{float(cfg.boxes.percentile):g}, the run's (was p{float(old):g})")
        elif key == "iou":
            continue  # the IoU list is the run's own; the slider shows its default
        elif p is not None and old != p.default_for(cfg):
            notes.append(f"{what} cleared (was {', '.join(old) if isinstance(old, list) else old})")
    for key in ("_pct_drawn", "_sidebar_p"):
        ss.pop(key, None)
    ss[ADOPT_NOTES] = notes


def set_default(key: str, value: Any) -> None:
    """A default that depends on the open run (e.g. the full object-count range), kept out of the URL."""
    st.session_state.setdefault("_defaults", {})[key] = value


def default(key: str, cfg: RunConfig) -> Any:
    over = st.session_state.get("_defaults", {})
    return over[key] if key in over else _declared[key].default_for(cfg)


def keep(key: str) -> None:
    """Write a widget's session value back before the widget is drawn (see :func:`coerce`)."""
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]


def coerce(key: str, options: list, fallback: Any | None = None) -> Any:
    """Make the session value of ``key`` one of ``options`` before its widget is drawn (nearest for numbers).

    Returns the value. Lists keep only known options (``fallback`` when nothing is left). The value is written
    back even when valid: a widget's id differs between pages, and a value set through session state is what
    carries over to the widget of the same key on the next page.
    """
    ss = st.session_state
    p = param(key)
    if fallback is None:
        fallback = default(key, current_config()) if p else options[0]
    v = ss.get(key)
    if p is not None and p.kind == "list":
        keep = [x for x in (v or []) if x in options]
        if v is None or (not keep and v):
            keep = [x for x in fallback if x in options]
        ss[key] = keep
        return keep
    if v in options:
        ss[key] = v
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool) and options and \
            all(isinstance(o, (int, float)) for o in options):
        v = min(options, key=lambda o: abs(o - v))
    else:
        v = fallback if fallback in options else options[0]
    ss[key] = v
    return v
