"""Run selection: the one place where a run's configuration is chosen, shown (hash) and opened.

The form edits a copy of the current :class:`RunConfig`; "Open run" validates it, makes it the session's run and
opens it (computing what the run store lacks, with a progress bar). Recent runs of the store reopen in one click.
"""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError

from dashboard import data, model_picker, operator_settings, permalink, state, widgets
from surgery_core.errors import PathNotAllowedError, SurgeryError
from surgery_core.eval.boxes import cut_short
from surgery_core.model.methods import METHODS, POSEMBED_MODES
from surgery_core.model.prompts import PROMPT_SETS
from surgery_core.run.config import RunConfig
from surgery_core.run.facade import Run

KINDS = {"demo": "demo scenes (generated)", "samples": "5 real DIOR samples", "dior": "DIOR folder",
         "coco": "COCO JSON"}
SPLITS = ["test", "val", "train", "trainval", "all"]
KERNELS = [1, 3, 5, 7, 9, 11, 15]


def _same(v):
    return v


def _text(v) -> str:
    return v or ""


def _text_or_none(w: str) -> str | None:
    return w.strip() or None


def _zero(v) -> int:
    return v or 0


def _zero_float(v) -> float:
    return float(v or 0.0)


def _int_or_none(w) -> int | None:
    return int(w) or None


def _float_or_none(w) -> float | None:
    return float(w) or None


def _methods(w: list[str]) -> list[str]:
    return [m for m in METHODS if m in w]  # registry order, whatever order they were picked in


# The form, one row per RunConfig field: (widget key, dotted field, field -> widget value, widget value -> field).
FORM_FIELDS = (
    ("f_kind", "data.kind", _same, _same),
    ("f_root", "data.root", _text, _text_or_none),
    ("f_images", "data.images", _text, _text_or_none),
    ("f_split", "data.split", _same, _same),
    ("f_limit", "data.limit", _zero, _int_or_none),
    ("f_model", "model.name", _text, _text_or_none),
    ("f_arch", "model.arch", _same, str.strip),
    ("f_ckpt", "model.checkpoint", _text, _text_or_none),
    ("f_qg", "model.quickgelu", _same, bool),
    ("f_methods", "methods", list, _methods),
    ("f_size", "input.size", _zero, _int_or_none),
    ("f_window", "input.window", _zero, _int_or_none),
    ("f_stride", "input.stride", _zero, _int_or_none),
    ("f_posembed", "input.posembed", _same, _same),
    ("f_depth", "surgery_depth", _same, int),
    ("f_prompts", "prompt_set", _same, _same),
    ("f_pct", "boxes.percentile", float, float),
    ("f_rule", "boxes.rule", _same, _same),
    ("f_fixed", "boxes.fixed_value", float, float),
    ("f_kernel", "boxes.morph_kernel", _same, int),
    ("f_conn", "boxes.connectivity", _same, int),
    ("f_score", "boxes.score", _same, _same),
    ("f_cpw", "boxes.class_prob_weight", _same, bool),
    ("f_minarea", "boxes.min_area", float, float),
    ("f_nms", "boxes.nms_iou", _zero_float, _float_or_none),
    ("f_res", "boxes.box_resolution", _zero, _int_or_none),
)


def _form_values(cfg: RunConfig) -> dict:
    doc = cfg.model_dump(mode="json")
    out = {}
    for key, field, to_widget, _ in FORM_FIELDS:
        *parents, name = field.split(".")
        node = doc
        for part in parents:
            node = node[part]
        out[key] = to_widget(node[name])
    out["f_random"] = cfg.run_hash in st.session_state.get(data.RANDOM_OK, ())  # not a field: a session's choice
    return out


def _config_from_form(base: RunConfig) -> RunConfig:
    s = st.session_state
    doc = base.model_dump(mode="json")
    for key, field, _, to_field in FORM_FIELDS:
        *parents, name = field.split(".")
        node = doc
        for part in parents:
            node = node[part]
        node[name] = to_field(s[key])
    model = doc["model"]
    model.pop("sha256", None)  # set again from the name, if any: never the previous model's
    if model["name"]:  # the name sets architecture, QuickGELU and the file; the fields typed below are not used
        for k in ("arch", "quickgelu", "checkpoint"):
            model.pop(k, None)
    pct = float(s.f_pct)
    if pct not in doc["sweep_percentiles"] and pct not in doc["quality_percentiles"]:
        doc["sweep_percentiles"] = sorted({*doc["sweep_percentiles"], pct})
    return RunConfig.model_validate(doc)


FORM_STATE = "_form_values"  # the form's values, owned here: Streamlit drops the keys of widgets a run does not draw


def _load_form(cfg: RunConfig) -> None:
    """Put the form's values into its widget keys before the form is drawn: the run's own values when the run
    changed, else the values this module keeps (a page without the sidebar form, such as Snapshots, makes
    Streamlit forget the widget keys; the kept copy brings them back)."""
    ss = st.session_state
    if ss.get("_form_for") != cfg.run_hash or not isinstance(ss.get(FORM_STATE), dict):
        ss[FORM_STATE] = _form_values(cfg)
        ss["_form_for"] = cfg.run_hash
    for k, v in ss[FORM_STATE].items():
        if k not in ss:
            ss[k] = list(v) if isinstance(v, list) else v


def _keep_form() -> None:
    """Copy the submitted widget values into the kept state (so a refused submit survives page changes too)."""
    ss = st.session_state
    kept = ss.setdefault(FORM_STATE, {})
    for k in list(kept):
        if k in ss:
            kept[k] = list(ss[k]) if isinstance(ss[k], list) else ss[k]


def _missing(s) -> list[str]:
    """Required form fields left empty, by their labels."""
    out = []
    if not s.get("f_model") and not str(s.get("f_arch") or "").strip():
        out.append("Architecture is empty (an open_clip name, e.g. ViT-B-32; Demo-ViT-32 is the demo model)")
    if not s.get("f_methods"):
        out.append("Heatmap methods: pick at least one")
    if s.get("f_kind") in ("dior", "coco") and not str(s.get("f_root") or "").strip():
        out.append(f"Root is empty: a {KINDS[s.get('f_kind')]} needs its path")
    return out


def _submit() -> None:
    _keep_form()
    missing = _missing(st.session_state)
    if missing:
        st.session_state["_form_error"] = "; ".join(missing)
        return
    try:
        cfg = _config_from_form(state.current_config())
    except ValidationError as exc:
        st.session_state["_form_error"] = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        return
    if st.session_state.get("f_random"):
        st.session_state.setdefault(data.RANDOM_OK, set()).add(cfg.run_hash)
    if _accept(cfg):
        st.session_state["_tried_from_form"] = cfg.run_hash  # a failure to open it returns to the working run


def _accept(cfg: RunConfig) -> bool:
    """Make ``cfg`` the session's run unless it names a path outside the data roots (then the form says so and
    the current run stays: nothing of the refused path is opened)."""
    try:
        data.check_paths(cfg)
    except PathNotAllowedError as exc:
        st.session_state["_form_error"] = _refusal(exc)
        return False
    st.session_state.pop("_form_error", None)
    state.set_config(cfg)
    return True


def _refusal(exc: PathNotAllowedError) -> str:
    return (f"**Path refused: `{exc.path}`** is {exc.problem}. The dashboard reads datasets and checkpoints only "
            "under its data roots (`data_roots` in `$SURGERY_DASHBOARD_CONFIG`, or `$SURGERY_DATA_ROOTS`).")


def _pick_recent() -> None:
    meta = st.session_state.get("_recent")
    if meta:
        try:
            cfg = RunConfig.model_validate(meta["config"])
            if _accept(cfg):
                st.session_state["_tried_from_form"] = cfg.run_hash
        except ValidationError as exc:
            st.session_state["_form_error"] = f"stored run {meta.get('run_hash')} has an unreadable config: {exc}"
    st.session_state["_recent"] = None


def _reset() -> None:
    st.session_state.pop("_form_error", None)
    state.set_config(operator_settings.app_default_config())


@st.cache_data(ttl=15, show_spinner=False)
def _recent_runs(store_root: str) -> list[dict]:
    from surgery_core.run.stored import list_stored

    out = []
    for r in list_stored(operator_settings.run_store(), products=False)[:30]:
        m = r.record
        out.append({"run_hash": m.get("run_hash"), "config": m.get("config"), "dataset": m.get("dataset"),
                    "split": m.get("split"), "images": m.get("images"), "arch": (m.get("model") or {}).get("arch"),
                    "label": r.label})
    return out


def _form(cfg: RunConfig) -> None:
    _load_form(cfg)
    with st.sidebar.expander("Run settings", expanded=bool(st.session_state.get("_form_error"))):
        model_picker.draw()
        _form_body()
    if st.session_state.get("_form_error"):
        st.sidebar.error(st.session_state["_form_error"])


def _form_body() -> None:
    with st.form("run_form", border=False):
        st.markdown("**Data**")
        st.selectbox("Dataset", list(KINDS), key="f_kind", format_func=KINDS.get)
        st.text_input("Root", key="f_root", placeholder="DIOR folder or COCO JSON",
                      help="the dataset's folder (DIOR) or annotation file (COCO); the demo scenes and the 5 real "
                           "DIOR samples are built in: leave it empty")
        st.text_input("COCO image folder", key="f_images")
        c1, c2 = st.columns(2)
        c1.selectbox("Split", SPLITS, key="f_split")
        c2.number_input("First N images", 0, step=50, key="f_limit", help="0 = the whole split")
        st.markdown("**Architecture and checkpoint** (when no model is picked above)")
        st.text_input("Architecture", key="f_arch", help="open_clip name, e.g. ViT-B-32, ViT-L-14, RN50; "
                                                         "Demo-ViT-32 is the shipped demo model")
        st.text_input("Checkpoint", key="f_ckpt", placeholder="empty: the shipped demo weights",
                      help="a local state dict (.pt/.safetensors), e.g. RemoteCLIP-ViT-B-32.pt")
        st.checkbox("QuickGELU (OpenAI CLIP and RemoteCLIP use it)", key="f_qg")
        st.checkbox("Random weights (no checkpoint: every number means nothing)", key="f_random",
                    help="For trying the app with another architecture when no checkpoint is at hand: the model keeps "
                         "its random initialisation; every page then says RANDOM WEIGHTS and marks no method best. "
                         "Used only when Checkpoint is empty and the architecture is not the demo model.")
        st.multiselect("Heatmap methods", list(METHODS), key="f_methods")
        c1, c2, c3 = st.columns(3)
        c1.number_input("Input px", 0, step=32, key="f_size", help="0 = the model's own size")
        c2.number_input("Window", 0, step=32, key="f_window", help="sliding window px; 0 = one pass")
        c3.number_input("Stride", 0, step=32, key="f_stride", help="0 = the window")
        st.selectbox("Positional embedding", list(POSEMBED_MODES), key="f_posembed",
                     help="when the input (or window) is not the model's own size: " + "; ".join(
                         f"{k} = {v}" for k, v in POSEMBED_MODES.items()))
        c1, c2 = st.columns(2)
        c1.number_input("Surgery depth", 0, 48, key="f_depth")
        c2.selectbox("Prompts", list(PROMPT_SETS), key="f_prompts")
        st.markdown("**Boxes**")
        c1, c2 = st.columns(2)
        c1.number_input("Percentile", 0.0, 100.0, step=5.0, key="f_pct")
        c2.selectbox("Box rule", ["percentile", "otsu", "fixed"], key="f_rule",
                     help="percentile (the seed's), Otsu's threshold of each 0-1 map (256 bins), or a fixed value")
        c1.number_input("Fixed value", 0.0, 1.0, step=0.05, key="f_fixed", help="threshold of the fixed rule, 0-1")
        c2.selectbox("Morph kernel", KERNELS, key="f_kernel")
        c1.selectbox("Connectivity", [8, 4], key="f_conn")
        c2.selectbox("Score", ["mean", "max"], key="f_score")
        c1.number_input("Min area px²", 0.0, step=10.0, key="f_minarea")
        c2.number_input("NMS IoU", 0.0, 1.0, step=0.05, key="f_nms", help="0 = off")
        c1.number_input("Box map px", 0, step=32, key="f_res", help="working map side; 0 = the image size")
        c2.checkbox("x class prob", key="f_cpw", help="multiply box scores by the CLS class probability")
        st.form_submit_button("Open run", type="primary", on_click=_submit, width="stretch")


#: The command line's words in a library message, as the Run settings form names the same thing.
FORM_TERMS = (
    (r"\(--checkpoint FILE, or model\.checkpoint in a run configuration\)", "(the Checkpoint field)"),
    (r"\(--random-weights, for tests\)", "(tick Random weights)"),
    (r"--random-weights", "Random weights"), (r"--images FOLDER", "COCO image folder"),
    (r"--images", "COCO image folder"), (r"--split all", "Split: all"), (r"--split", "Split"),
    (r"--checkpoint", "Checkpoint"), (r"\bmodel\.checkpoint\b", "Checkpoint"),
)


def form_terms(message: str) -> str:
    """A library message with its command-line options named as the form names them."""
    import re

    for pattern, words in FORM_TERMS:
        message = re.sub(pattern, words, message)
    return message


def _back_to_working_run(cfg: RunConfig, exc: Exception) -> bool:
    """When ``cfg`` came from the form (or the recent runs) and cannot be opened: the session returns to the run
    that was working, and the form says why in its own terms. False when there is no such run to return to."""
    ss = st.session_state
    working = ss.get("_working_run")
    if ss.get("_tried_from_form") != cfg.run_hash or not working:
        return False
    ss.pop("_tried_from_form", None)
    msg = _refusal(exc) if isinstance(exc, PathNotAllowedError) else form_terms(str(exc))
    ss["_form_error"] = f"**Run {cfg.run_hash} cannot be opened; the run you had stays open.** {msg}"
    back = RunConfig.model_validate_json(working)
    state.set_config(back)
    ss["_form_for"] = back.run_hash  # the form keeps the values that were tried, beside the message
    return True


def box_caption(cfg: RunConfig) -> str:
    """The percentile the page shows boxes at (what its percentile control drew last, see
    :func:`dashboard.widgets.percentile`), and the run's own when they differ."""
    ss = st.session_state
    run_p = cfg.boxes.cut
    drawn = ss.get("_pct_drawn")
    page_p = drawn[1] if isinstance(drawn, tuple) and drawn[0] == ss.get("_page") else run_p
    ss["_sidebar_p"] = (ss.get("_page"), page_p)
    return f"boxes {cut_short(page_p)}" + ("" if page_p == run_p else f" on this page (run: {cut_short(run_p)})")


_HEAD = "_sidebar_head"  # this script run's (placeholder, run words, box words) of the sidebar's first caption


def name_page_boxes(cfg: RunConfig) -> None:
    """After the page ran: the sidebar's caption names the box rule the page drew (its percentile control runs
    after the sidebar). Rewritten in place, in this same script run: no second run of the whole app."""
    head = st.session_state.pop(_HEAD, None)
    if head is None:
        return
    where, words, said = head
    now = box_caption(cfg)
    if now != said:
        where.caption(f"{words} · {now}")


def run_selection(area) -> Run:
    """Draw the sidebar and return the open run (``area``: where the progress bar goes); stops on failure."""
    cfg = state.current_config()
    sb = st.sidebar
    recent = _recent_runs(str(operator_settings.run_store().root))
    label = next((m["label"] for m in recent if m["run_hash"] == cfg.run_hash and m["label"]), "")
    sb.markdown(f"### Run `{cfg.run_hash}`" + (f" · {label}" if label else ""))
    model = ((f"{cfg.model.name} ({cfg.model.arch})" if cfg.model.name else cfg.model.arch)
             + (" · QuickGELU" if cfg.model.quickgelu else ""))
    head = sb.empty()  # the dataset in the words every page uses (its name and split), once the run is open
    head.caption(f"{cfg.data.kind}/{cfg.data.split} · {model} · {box_caption(cfg)}")
    _form(cfg)
    if recent:
        sb.selectbox("Recent runs", recent, index=None, key="_recent", on_change=_pick_recent,
                     placeholder="reopen a stored run…",
                     format_func=lambda m: f"{m['run_hash']}{' · ' + m['label'] if m['label'] else ''} · "
                                           f"{m['dataset']}/{m['split']} · {m['images']} img · "
                                           f"{m['arch']}")
    sb.button("Back to the default run", on_click=_reset, width="stretch",
              disabled=cfg == operator_settings.app_default_config())
    try:
        run = data.open_run(cfg, area)
    except Exception as exc:  # noqa: BLE001 - bad input (SurgeryError, OSError, ValueError) or a library failure
        if isinstance(exc, (SurgeryError, OSError, ValueError)) and _back_to_working_run(cfg, exc):
            st.rerun()  # the working run stays open; the message sits at the form
        if isinstance(exc, PathNotAllowedError):  # a link (or the recent-runs list) named a path outside the roots
            sb.error(_refusal(exc), icon=":material/block:")
            area.error(f"**Run {cfg.run_hash} cannot be opened.** {_refusal(exc)}", icon=":material/block:")
        elif isinstance(exc, (SurgeryError, OSError, ValueError)):
            area.error(f"**Run {cfg.run_hash} cannot be opened.** {form_terms(str(exc))}", icon=":material/error:")
        else:
            widgets.failure(f"Opening run {cfg.run_hash}", exc, area)
        from surgery_core.demo.model import DEMO_ARCH, DEMO_WEIGHTS

        if cfg.model.arch == DEMO_ARCH and cfg.model.checkpoint is None and not DEMO_WEIGHTS.is_file():
            area.info("The demo weights are not installed yet (`surgery demo train` writes them). Pick a "
                      "checkpoint under **Run settings** in the sidebar.")
        permalink.sync_url()
        st.stop()
    st.session_state["_working_run"] = cfg.model_dump_json()
    st.session_state.pop("_tried_from_form", None)
    # a newly opened run: its own percentile and no filter of the previous run, before the sidebar names the
    # page's percentile (else it names the previous run's page value until the next rerun)
    state.adopt_run(run.cfg)
    words = (f"{run.dataset.name} / {run.dataset.split} · {model}"
             + (" · RANDOM WEIGHTS" if run.random_weights else ""))
    said = box_caption(cfg)
    head.caption(f"{words} · {said}")
    st.session_state[_HEAD] = (head, words, said)
    g = run.grids
    sb.caption(f"{len(g.rows)} images · {len(run.classes)} classes · grid "
               f"{g.grids[run.cfg.methods[0]].shape[-2]}x{g.grids[run.cfg.methods[0]].shape[-1]} · "
               f"heatmap key `{g.key}`")
    return run
