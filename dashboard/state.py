"""View state shared by every page, and the permalink that carries it in the URL.

Session state is the source of truth while a session lives; the URL mirrors it after every rerun
(:func:`sync_url`) and seeds it when a session starts (:func:`init_from_url`), so a pasted link opens exactly
the same view. URL parameters:

``page``    the page's url path (also the URL path itself),
``run``     the run configuration: zlib-compressed, base64url JSON of the fields that differ from
            ``RunConfig()`` (absent: the app's default run; ``-``: ``RunConfig()`` itself),
``h``       the run hash, for display and to warn when a link no longer yields the same numbers,
then one parameter per :data:`PARAMS` entry, written only when it differs from its default.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st

from surgery_core.run.config import RunConfig

ENV_DEFAULT_CONFIG = "SURGERY_DASHBOARD_CONFIG"
ENV_DATA_ROOTS = "SURGERY_DATA_ROOTS"
MAX_CONFIG_BYTES = 64 * 1024
#: The app's pages (``?page=`` names) and their titles, in navigation order.
PAGE_TITLES = {"browse": "Browse", "compare": "Compare", "explore": "Explore", "ap": "Per-class AP",
               "sweep": "Threshold sweep", "quality": "Heatmap quality", "run": "Run", "snapshots": "Snapshots"}


# ------------------------------------------------------------------------------------------ run configuration
def encode_config(cfg: RunConfig) -> str:
    """Compact URL-safe text of the fields of ``cfg`` that differ from ``RunConfig()`` ("" for the default)."""
    doc = cfg.model_dump(mode="json", exclude_defaults=True)
    if not doc:
        return ""
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).rstrip(b"=").decode()


def decode_config(text: str | None) -> RunConfig:
    """Inverse of :func:`encode_config`; ValueError (pydantic's included) on anything malformed."""
    if not text or text == "-":
        return RunConfig()
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        d = zlib.decompressobj()
        raw = d.decompress(data, MAX_CONFIG_BYTES)
        if d.unconsumed_tail:
            raise ValueError("run configuration too large")
        doc = json.loads(raw)
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"the run parameter of this link is not a readable configuration ({exc})") from exc
    return RunConfig.model_validate(doc)


def app_default_config() -> RunConfig:
    """The run the app opens with no ``run`` parameter: ``$SURGERY_DASHBOARD_CONFIG`` (JSON text or a JSON
    file) when set, else ``RunConfig()`` (the demo run)."""
    return _dashboard_config(os.environ.get(ENV_DEFAULT_CONFIG, "").strip())[0]


def configured_data_roots() -> tuple[Path, ...]:
    """The data roots the operator configured: ``data_roots`` of ``$SURGERY_DASHBOARD_CONFIG`` (relative ones
    from the config file's folder) and ``$SURGERY_DATA_ROOTS`` (os.pathsep-separated); () when neither."""
    env = tuple(Path(r).expanduser() for r in os.environ.get(ENV_DATA_ROOTS, "").split(os.pathsep) if r.strip())
    return _dashboard_config(os.environ.get(ENV_DEFAULT_CONFIG, "").strip())[1] + env


@lru_cache(maxsize=8)
def _dashboard_config(spec: str) -> tuple[RunConfig, tuple[Path, ...]]:
    """The dashboard configuration: a RunConfig document (JSON text or a JSON file) plus an optional
    dashboard-only ``data_roots`` list, which is not part of the run (nor of its hash)."""
    if not spec:
        return RunConfig(), ()
    if spec.startswith("{"):
        text, base = spec, Path.cwd()
    else:
        path = Path(spec).expanduser()
        text, base = path.read_text(), path.resolve().parent
    doc = json.loads(text)
    roots = doc.pop("data_roots", None) if isinstance(doc, dict) else None
    if roots is None:
        roots = []
    if isinstance(roots, str) or not all(isinstance(r, str) and r.strip() for r in roots):
        raise ValueError(f"{ENV_DEFAULT_CONFIG}: data_roots must be a list of folder paths, got {roots!r}")
    return RunConfig.model_validate(doc), tuple(base / Path(r).expanduser() for r in roots)


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


def run_param(cfg: RunConfig) -> str | None:
    """The ``run`` URL parameter for ``cfg`` (None when the app's default run needs no parameter)."""
    code = encode_config(cfg)
    if code:
        return code
    return None if app_default_config() == cfg else "-"


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


def _seed_first(methods) -> list[str]:
    """Methods shown by default: the seed's four when the run has them (the run may hold all ten)."""
    from surgery_core.model.methods import SEED_METHODS

    return [m for m in methods if m in SEED_METHODS] or list(methods)


# Explore (a dataset sample is ``sample``; an uploaded image never goes into a link, only ``xsrc=upload``).
EXPLORE_PARAMS = (
    Param("xsrc", "str", "sample", "Explore: image source, sample (of the run) or upload"),
    Param("xq", "str", "", "Explore: phrases, comma-separated"),
    Param("xmode", "str", "set", "Explore: several phrases as a class set or as independent queries"),
    Param("xm", "list", lambda c: _seed_first(c.methods), "Explore: methods shown"),
    Param("xsize", "int", lambda c: c.input.size or 0, "Explore: input size px (the model's own by default)"),
    Param("xwin", "int", lambda c: c.input.window or 0, "Explore: sliding window px (0 = one pass)"),
    Param("xstride", "int", lambda c: c.input.stride or 0, "Explore: window stride px (0 = the window)"),
    Param("xscale", "str", "minmax", "Explore: colour scale, minmax (per map) or raw (shared per phrase)"),
)
PARAMS: tuple[Param, ...] = (
    Param("sample", "str", "", "image id shown in Compare"),
    Param("cls", "str", "", "class name shown in Compare"),
    Param("methods", "list", lambda c: _seed_first(c.methods), "heatmap methods shown"),
    Param("p", "float", lambda c: float(c.boxes.percentile), "heatmap percentile threshold"),
    Param("iou", "float", _default_iou, "IoU threshold for TP/AP"),
    Param("proto", "str", "present", "evaluation protocol"),
    Param("interp", "str", "voc07", "AP interpolation"),
    Param("coco95", "bool", False, "COCO AP@[.50:.95] instead of the chosen IoU"),
    Param("alpha", "float", 0.5, "heatmap opacity"),
    Param("raw", "bool", False, "show the raw patch grid"),
    Param("cols", "int", 3, "Compare: pictures per row"),
    Param("q", "str", "", "Browse: image id search"),
    Param("bcls", "list", lambda c: [], "Browse: classes present"),
    Param("bn", "range", (0, 0), "Browse: object count range (0-0 = any)"),
    Param("bout", "str", "all", "Browse: outcome filter"),
    Param("bm", "str", lambda c: _seed_first(c.methods)[-1] if c.methods else "",
          "Browse: method for the outcome filter"),
    Param("bpage", "int", 1, "Browse: page number"),
    Param("bsize", "str", "medium", "Browse: thumbnail size"),
    Param("sc", "str", "", "Sweep: class of the per-class view ('' = mAP)"),
    Param("snapshot", "str", "", "Snapshots: id of the snapshot shown ('' = the list)"),
    *EXPLORE_PARAMS,
)
PARAM_BY_KEY = {p.key: p for p in PARAMS}


def _fmt(kind: str, v: Any) -> str:
    if kind == "float":
        return f"{float(v):g}"
    if kind == "bool":
        return "1" if v else "0"
    if kind == "list":
        return ",".join(str(x) for x in v)
    if kind == "range":
        return f"{int(v[0])}-{int(v[1])}"
    return str(v)


def _parse(kind: str, text: str) -> Any:
    if kind == "float":
        return float(text)
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text not in ("0", "false", "False", "")
    if kind == "list":
        return [x for x in text.split(",") if x]
    if kind == "range":
        a, b = text.split("-", 1)
        return int(a), int(b)
    return text


def set_default(key: str, value: Any) -> None:
    """A default that depends on the open run (e.g. the full object-count range), kept out of the URL."""
    st.session_state.setdefault("_defaults", {})[key] = value


def default(key: str, cfg: RunConfig) -> Any:
    over = st.session_state.get("_defaults", {})
    return over[key] if key in over else PARAM_BY_KEY[key].default_for(cfg)


def init_from_url() -> None:
    """Seed session state from the URL once per session (bad values are ignored, with a note)."""
    ss = st.session_state
    if ss.get("_url_seeded"):
        return
    ss["_url_seeded"] = True
    qp = st.query_params
    ss["_url_page"] = qp.get("page")
    notes = []
    if "run" in qp:
        try:
            cfg = decode_config(qp.get("run"))
            set_config(cfg, from_link=True)
            given = qp.get("h")
            if given and given != cfg.run_hash:
                notes.append(f"This link was made for run {given}; the same settings now give run {cfg.run_hash} "
                             "(the library changed what a run covers). Numbers may differ from the link's.")
        except ValueError as exc:
            notes.append(f"Could not read the run of this link, showing the default run instead: {exc}")
    ss["_url_has_cls"] = "cls" in qp  # a class named by a link is shown even where it has no ground truth
    for p in PARAMS:
        if p.key in qp:
            try:
                ss[p.key] = _parse(p.kind, qp.get(p.key))
            except (TypeError, ValueError):
                notes.append(f"Ignored URL parameter {p.key}={qp.get(p.key)!r}")
    ss["_url_notes"] = notes


def sync_url(page: str | None = None) -> None:
    """Write the current view into the URL (only what differs from defaults; nothing when unchanged)."""
    cfg = current_config()
    ss = st.session_state
    if page is not None:
        ss["_page"] = page
    out: dict[str, str] = {}
    if ss.get("_page"):
        out["page"] = ss["_page"]
    rp = run_param(cfg)
    if rp is not None:
        out["run"] = rp
    out["h"] = cfg.run_hash
    for p in PARAMS:
        v, d = ss.get(p.key), default(p.key, cfg)
        if v is None or v == d:
            continue
        if p.kind in ("list", "range"):
            v = list(v)
            if v == list(d):
                continue
        out[p.key] = _fmt(p.kind, v)
    if {k: st.query_params.get(k) for k in st.query_params} != out:
        st.query_params.from_dict(out)


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
    p = PARAM_BY_KEY.get(key)
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

