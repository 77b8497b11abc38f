"""The permalink: the URL that carries a session's view, so that a pasted link opens exactly the same view.

The URL mirrors session state after every rerun (:func:`sync_url`) and seeds it when a session starts
(:func:`init_from_url`). URL parameters:

``page``    the page's url path (also the URL path itself),
``run``     the run configuration: zlib-compressed, base64url JSON of the fields that differ from
            ``RunConfig()`` (absent: the app's default run; ``-``: ``RunConfig()`` itself),
``h``       the run hash, for display and to warn when a link no longer yields the same numbers,
then one parameter per declared view parameter (:mod:`dashboard.state`), written only when it differs from its
default. The shared ones are known from the start; a page declares its own with :func:`declare` when it runs,
which seeds them from the link that opened the session. Until then a link's parameters that no page has
declared yet are kept in the URL as they came.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import streamlit as st

from dashboard import state
from dashboard.operator_settings import app_default_config
from surgery_core.run.config import RunConfig

MAX_CONFIG_BYTES = 64 * 1024
_PENDING = "_url_pending"  # {name: text} of the link's parameters no page has declared yet


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


def run_param(cfg: RunConfig) -> str | None:
    """The ``run`` URL parameter for ``cfg`` (None when the app's default run needs no parameter)."""
    code = encode_config(cfg)
    if code:
        return code
    return None if app_default_config() == cfg else "-"


# ------------------------------------------------------------------------------------------ view parameters
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


def _seed(params, texts: dict[str, str]) -> list[str]:
    """Session values of ``params`` from the link's ``texts`` (taken out of ``texts``); notes on bad values."""
    ss, notes = st.session_state, []
    for p in params:
        if p.key in texts:
            text = texts.pop(p.key)
            try:
                ss[p.key] = _parse(p.kind, text)
            except (TypeError, ValueError):
                notes.append(f"Ignored URL parameter {p.key}={text!r}")
    return notes


def declare(*params: state.Param) -> None:
    """A page's own URL parameters, declared at the top of the page (before its widgets): known from now on,
    and seeded from the link that opened the session when it named them (a bad value is warned about here: the
    frame's banner was drawn before the page ran)."""
    state.register(params)
    pending = st.session_state.get(_PENDING)
    if pending:
        for note in _seed(params, pending):
            st.session_state.setdefault("_url_notes", []).append(note)
            st.warning(note, icon=":material/link:")


#: URL parameters of older links and the parameter that holds the same setting now.
RENAMED = {"xm": "methods"}  # Explore's own method choice became the one choice of every page (issue 21.9)


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
            state.set_config(cfg, from_link=True)
            given = qp.get("h")
            if given and given != cfg.run_hash:
                notes.append(f"This link was made for run {given}; the same settings now give run {cfg.run_hash} "
                             "(the library changed what a run covers). Numbers may differ from the link's.")
        except ValueError as exc:
            notes.append(f"Could not read the run of this link, showing the default run instead: {exc}")
    ss["_url_has_cls"] = "cls" in qp  # a class named by a link is shown even where it has no ground truth
    texts = {k: qp.get(k) for k in qp if k not in ("page", "run", "h")}
    for old, new in RENAMED.items():  # links made before a parameter was renamed open as they did
        if old in texts:
            text = texts.pop(old)
            texts.setdefault(new, text)
    notes += _seed(state.params(), texts)
    ss[_PENDING] = texts
    ss["_url_notes"] = notes


def sync_url(page: str | None = None) -> None:
    """Write the current view into the URL (only what differs from defaults; nothing when unchanged)."""
    cfg = state.current_config()
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
    for p in state.params():
        v, d = ss.get(p.key), state.default(p.key, cfg)
        if v is None or v == d:
            continue
        if p.kind in ("list", "range"):
            v = list(v)
            if v == list(d):
                continue
        out[p.key] = _fmt(p.kind, v)
    for k, text in (ss.get(_PENDING) or {}).items():  # the link's, until their page seeds them
        out.setdefault(k, text)
    if {k: st.query_params.get(k) for k in st.query_params} != out:
        st.query_params.from_dict(out)
