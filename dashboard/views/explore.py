"""Explore: a sample of the run or an uploaded image, any phrases, every registered method side by side, at any
input size and window. The numbers are :mod:`surgery_core.run.explore`'s (the engine's grids); this page draws them.

A new phrase on an image already computed costs only the text side: the image side (the forward pass of every
window) comes from the process-wide :func:`surgery_core.run.explore.shared_token_cache`. Uploaded images stay in
this session's memory; only a snapshot the user saves keeps them.
"""

import base64
import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import data, inspector, permalink, snapshot_ui, state, widgets
from surgery_core.demo.model import DEMO_ARCH
from surgery_core.errors import InputError
from surgery_core.eval.maps import upsample
from surgery_core.model.methods import METHODS
from surgery_core.run import explore
from surgery_core.share import drawing
from surgery_core.share.portable import slug

# a dataset sample is ``sample``; an uploaded image never goes into a link, only ``xsrc=upload``
permalink.declare(
    state.Param("xsrc", "str", "sample", "Explore: image source, sample (of the run) or upload"),
    state.Param("xq", "str", "", "Explore: phrases, comma-separated"),
    state.Param("xmode", "str", "set", "Explore: several phrases as a class set or as independent queries"),
    state.Param("xsize", "int", lambda c: c.input.size or 0, "Explore: input size px (the model's own by default)"),
    state.Param("xwin", "int", lambda c: c.input.window or 0, "Explore: sliding window px (0 = one pass)"),
    state.Param("xstride", "int", lambda c: c.input.stride or 0, "Explore: window stride px (0 = the window)"),
    state.Param("xscale", "str", "minmax", "Explore: colour scale, minmax (per map) or raw (shared per phrase)"),
)

SIDE = 360  # px, longer side of each map picture: twice a panel's width at 1280 px, sharp on HiDPI screens
PER_ROW = 4  # map panels per row: readable at 1280 px with the sidebar open
GRID_TEXT = 8  # cells per side up to which the patch grid prints its values (hover shows them always)
TYPES = ["jpg", "jpeg", "png", "tif", "tiff"]  # what surgery_core.data.images decodes
SOURCES = {"sample": "Sample of the run", "upload": "Upload an image"}

run = data.current_run()
loaded = run.loaded  # the process-wide model this run was opened with (dashboard.data)
cache = explore.shared_token_cache()
patch = loaded.patch_size
ss = st.session_state
rows = run.grids.rows.tolist()
ids = [run.dataset.images[i].image_id for i in rows]
index_of = {s: i for s, i in zip(ids, rows)}
upload_limit = int(st.get_option("server.maxUploadSize")) * 2**20


@st.cache_resource(max_entries=8, show_spinner=False)
def sample_image(key: str, index: int, _run) -> tuple[np.ndarray, str]:
    """A dataset image, decoded once, and its content hash."""
    image = _run.image(index)
    return image, explore.image_hash(image)


def take_upload() -> None:
    """Decode a new upload; a refused file leaves the image shown before untouched and says why."""
    f = ss.get("x_upload")
    ss.pop("_x_upload_error", None)
    if f is None:  # removed, or about to be replaced (the browser sends both): set aside, not dropped
        if ss.get("_x_image") is not None:
            ss["_x_previous"] = ss.pop("_x_image")
        return
    try:
        ss["_x_image"] = explore.read_upload(f.getvalue(), f.name, patch, upload_limit)
        ss.pop("_x_previous", None)
    except InputError as exc:
        if ss.get("_x_image") is None and ss.get("_x_previous") is not None:
            ss["_x_image"] = ss.pop("_x_previous")
        kept = ss.get("_x_image")
        ss["_x_upload_error"] = f"**Upload refused.** {exc}" + (
            f" The view still shows `{kept.name}`." if kept is not None else "")


def jet_scale(steps: int = 11) -> list:
    """Plotly colour scale equal to the overlays' jet (:func:`surgery_core.share.drawing.jet`), so the bar matches."""
    t = np.linspace(0, 1, steps, dtype=np.float32)
    rgb = drawing.jet(t[None, :])[0]
    return [[float(v), f"rgb({r},{g},{b})"] for v, (r, g, b) in zip(t, rgb.tolist())]


def data_uri(rgb: np.ndarray) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(drawing.encode_jpg(rgb, 88)).decode()


def phrase_figure(maps: explore.PhraseMaps, k: int, picture: np.ndarray, scale: str, alpha: float,
                  grid_view: bool) -> go.Figure:
    """One phrase: a panel per method (the map over the picture, jet), hover = row, column, raw similarity and
    the min-max value of each patch; one colour bar for the phrase.

    Built as plain dicts and validated once: plotly's per-subplot update calls cost 150-600 ms per figure on
    the 2-core machine, most of a redraw."""
    methods = list(maps.methods)
    lo, hi = explore.display_range(maps, k, scale)
    n_rows = -(-len(methods) // PER_ROW)
    # Always PER_ROW columns: a panel keeps its size whatever the number of methods.
    gap_x, gap_y = 0.015, (0.08 / n_rows if n_rows > 1 else 0.0)
    w, h = (1 - gap_x * (PER_ROW - 1)) / PER_ROW, (1 - gap_y * (n_rows - 1)) / n_rows
    hidden = dict(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False, constrain="domain")
    ph, pw = picture.shape[:2]
    traces, layout, titles = [], {}, []
    for j, m in enumerate(methods):
        r, c = divmod(j, PER_ROW)
        n = "" if j == 0 else str(j + 1)
        raw = maps.grids[m][k]
        gh, gw = raw.shape
        x0, top = c * (w + gap_x), 1 - r * (h + gap_y)
        layout[f"xaxis{n}"] = dict(hidden, domain=[x0, x0 + w], range=[-0.5, gw - 0.5], anchor=f"y{n}")
        layout[f"yaxis{n}"] = dict(hidden, domain=[top - h, top], range=[gh - 0.5, -0.5], anchor=f"x{n}",
                                   scaleanchor=f"x{n}")
        titles.append(dict(text=m, x=x0 + w / 2, y=top, xref="paper", yref="paper", xanchor="center",
                           yanchor="bottom", showarrow=False, font=dict(size=12)))
        shown = explore.display_grid(maps, m, k, scale)
        img = drawing.overlay(picture, upsample(shown, pw, ph), 0.0 if grid_view else alpha)
        traces.append(dict(type="image", source=data_uri(img), x0=-0.5 + gw / pw / 2, dx=gw / pw,
                           y0=-0.5 + gh / ph / 2, dy=gh / ph, hoverinfo="skip", xaxis=f"x{n}", yaxis=f"y{n}"))
        z = raw if scale == "raw" else shown
        text = np.round(raw, 3).tolist() if grid_view and max(gh, gw) <= GRID_TEXT else None
        # Plain lists, not numpy: plotly would store arrays as base64 blobs, and a saved snapshot keeps these
        # figures as the record of the maps' values.
        traces.append(dict(
            type="heatmap", z=z.tolist(), customdata=np.stack([raw, maps.map01(m, k)], axis=-1).tolist(),
            coloraxis="coloraxis", opacity=0.85 if grid_view else 0.0, text=text,
            texttemplate="%{text:.2f}" if text is not None else None, textfont=dict(size=8),
            hovertemplate="row %{y}, col %{x}<br>raw similarity %{customdata[0]:.4f}<br>min-max %{customdata[1]:.3f}"
                          f"<extra>{m} · {html.escape(maps.phrases[k])}</extra>", xaxis=f"x{n}", yaxis=f"y{n}"))
    title = "min-max" if scale == "minmax" else "raw sim."
    layout.update(
        annotations=titles,
        coloraxis=dict(colorscale=jet_scale(), cmin=lo, cmax=hi,
                       colorbar=dict(title=dict(text=title, side="right"), thickness=12, len=0.9,
                                     tickformat=".2f" if scale == "minmax" else ".3f")),
        # the phrase as the figure's title: the PNG of the toolbar's camera button says what it shows
        title=dict(text=f"'{html.escape(maps.phrases[k])}' · {title} colour scale", x=0.0, xanchor="left",
                   y=1.0, yanchor="top", yref="container", pad=dict(t=8), font=dict(size=12)),
        height=225 * n_rows + 34, margin=dict(l=0, r=0, t=46, b=0), hoverlabel=dict(font_size=11))
    return go.Figure(data=traces, layout=layout)


def controls() -> dict:
    """The page's inputs (bound to view state, so the permalink carries them)."""
    top = st.columns([1.6, 2.4, 3.2, 2.2], vertical_alignment="bottom")
    state.coerce("xsrc", list(SOURCES))
    src = top[0].segmented_control("Image", list(SOURCES), key="xsrc", format_func=lambda s: SOURCES[s].split()[0],
                                   required=True, selection_mode="single", persist_state="session",
                                   help="a sample of the open run, or an image of your own (kept in memory "
                                        "only; a saved snapshot keeps it)") or "sample"
    if src == "sample":
        state.coerce("sample", ids)
        top[1].selectbox("Sample", ids, key="sample", persist_state="session", help="image id of the open run")
    else:
        top[1].file_uploader("Image file", type=TYPES, key="x_upload", on_change=take_upload,
                             help=f"JPEG, PNG or TIFF up to {upload_limit // 2**20} MB (server.maxUploadSize); "
                                  "16-bit is scaled to 8-bit, alpha dropped")
    state.keep("xq")
    top[2].text_input("Phrases", key="xq", persist_state="session", placeholder="solar panel, swimming pool",
                      help=f"one or more, separated by commas (at most {explore.MAX_PHRASES}); each is put in "
                           "the run's prompt ensemble")
    state.coerce("xmode", list(explore.MODES))
    try:
        several = len(explore.parse_phrases(ss.get("xq", ""))) > 1
    except InputError:
        several = True
    top[3].segmented_control("Several phrases as", list(explore.MODES), key="xmode", required=True,
                             selection_mode="single", persist_state="session", disabled=not several,
                             format_func={"set": "class set", "independent": "independent"}.get,
                             help="\n".join(f"- **{m}**: {d}" for m, d in explore.MODES.items())
                                  + "\n\nOne phrase is always single-text feature surgery.")
    chosen = widgets.methods(run, options=list(METHODS))  # every registered method; the choice is one setting
    ctl = st.columns([1.1, 1.1, 1.1, 2.5, 2.0, 1.3], vertical_alignment="bottom")
    state.set_default("xsize", run.cfg.input.size or loaded.image_size)
    for key in ("xsize", "xwin", "xstride"):
        v = ss.get(key)
        v = int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else state.default(key, run.cfg)
        ss[key] = min(max(v, 0), explore.MAX_INPUT_SIZE)  # a link's out-of-range value: the widget would raise
    ctl[0].number_input("Input px", 0, explore.MAX_INPUT_SIZE, step=patch, key="xsize", persist_state="session",
                        help=f"the image is squashed to this square size; a multiple of the {patch} px patch "
                             f"(0 = the model's own, {loaded.image_size}; e.g. 800 gives a {800 // patch}x"
                             f"{800 // patch} grid)")
    ctl[1].number_input("Window px", 0, explore.MAX_INPUT_SIZE, step=patch, key="xwin", persist_state="session",
                        help="sliding window side; 0 = one pass over the whole input")
    ctl[2].number_input("Stride px", 0, explore.MAX_INPUT_SIZE, step=patch, key="xstride", persist_state="session",
                        help="window step; 0 = the window (no overlap); overlapping cells are averaged")
    state.coerce("xscale", list(explore.SCALES))
    ctl[3].segmented_control("Colour scale", list(explore.SCALES), key="xscale", required=True,
                             selection_mode="single", persist_state="session",
                             format_func={"minmax": "min-max per map", "raw": "raw, per phrase"}.get,
                             help="\n".join(f"- **{s}**: {d}" for s, d in explore.SCALES.items()))
    state.coerce("alpha", [round(x * 0.05, 2) for x in range(21)], 0.5)
    ctl[4].slider("Heatmap opacity", 0.0, 1.0, step=0.05, key="alpha", persist_state="session")
    state.keep("raw")
    ctl[5].toggle("Patch grid", key="raw", persist_state="session", help="the grid cells themselves, raw values "
                  f"printed up to {GRID_TEXT}x{GRID_TEXT} cells (hover shows them on any grid)")
    return {"src": src, "methods": chosen, "text": ss.get("xq", "")}


def resolution() -> explore.Resolution:
    """The checked resolution; a bad setting says why and the last valid one stays in use."""
    try:
        res = explore.Resolution.check(ss["xsize"] or loaded.image_size, ss["xwin"], ss["xstride"], patch)
        ss["_x_res"] = res
    except InputError as exc:
        res = ss.get("_x_res") or explore.Resolution.check(loaded.image_size, None, None, patch)
        st.error(f"**Resolution not applied.** {exc}. The maps use the last valid setting: {res.describe()}.",
                 icon=":material/straighten:")
    return res


def current_image(src: str):
    """(image, content key, name, notes, dataset index or None), or None when there is none yet."""
    if src == "sample":
        if not ids:
            st.info("The open run has no readable images; upload one instead.")
            return None
        index = index_of[ss["sample"]]
        try:
            image, key = sample_image(data.run_key(run), index, run)
        except (OSError, InputError) as exc:  # the file went away or changed since the run was opened
            st.error(f"**Sample {ss['sample']} cannot be read.** {exc}", icon=":material/broken_image:")
            return None
        return image, key, ss["sample"], (), index
    if ss.get("_x_upload_error"):
        st.error(ss["_x_upload_error"], icon=":material/broken_image:")
    up = ss.get("_x_image")
    if up is None:
        st.info("Upload a JPEG, PNG or TIFF image (this page keeps it in memory only). Links carry dataset "
                "samples, not uploads: a link made on an uploaded image opens here without it.")
        return None
    return up.image, up.key, up.name, up.notes, None


@st.fragment
def view() -> None:
    snapshot_ui.begin()
    c = controls()
    res = resolution()
    try:
        phrases = explore.parse_phrases(c["text"])
    except InputError as exc:
        st.error(f"**Phrases not applied.** {exc}", icon=":material/text_fields:")
        phrases = []
    methods = c["methods"]
    got = current_image(c["src"])
    permalink.sync_url()
    if got is None:
        return
    image, key, name, notes, index = got
    h, w = image.shape[:2]
    left, right = st.columns([1, 5.2], vertical_alignment="top")
    picture, _ = drawing.fit(image, SIDE)
    where = "sample of run " + run.run_hash if index is not None else "uploaded, kept in memory only"
    snapshot_ui.image("image", drawing.encode_jpg(picture), f"{name} · {w}x{h} px", left, width="stretch")
    snapshot_ui.markdown(f"**{name}** · {w}x{h} px · {where}" + "".join(f" · {n}" for n in notes), right)
    if index is None and run.model_note == "" and run.cfg.model.arch == DEMO_ARCH:
        right.warning("The demo model was trained only on synthetic scenes: on any other picture its maps are "
                      "noise, not a finding. Open a run with a RemoteCLIP or CLIP checkpoint for real images.",
                      icon=":material/warning:")
    if not methods:
        right.info("Choose at least one method.")
        return
    if not phrases:
        right.info("Type one or more phrases, e.g. `solar panel` or `swimming pool, roundabout`.")
        return
    mode = explore.effective_mode(phrases, ss["xmode"])
    with right, st.spinner(f"Forward pass of {res.window_count} window{'s' * (res.window_count > 1)} at "
                           f"{res.size} px (once per image and resolution)…", show_time=True):
        tokens, cached = cache.get(loaded, image, res, run.cfg.surgery_depth, methods, image_key=key,
                                   posembed=run.cfg.input.posembed)
    new = explore.uncached_phrases(loaded, phrases, run.cfg.prompt_set)
    with right, st.spinner(f"Encoding {', '.join(map(repr, new))} with the {run.cfg.prompt_set} prompt ensemble "
                           "(once per phrase)…" if new else "Similarity maps…", show_time=bool(new)):
        maps = explore.phrase_maps(loaded, tokens, phrases, methods, ss["xmode"], run.cfg.prompt_set)
    scale, alpha, grid_view = ss["xscale"], float(ss["alpha"]), bool(ss.get("raw"))
    snapshot_ui.shown_state(image_index=index, methods=methods, phrases=phrases, text_mode=mode,
                            resolution=res.to_dict(), source=c["src"], image_name=name, colour_scale=scale,
                            alpha=alpha)
    gh, gw = res.grid
    side_note = (f"image side: {'reused from the cache' if cached else f'computed in {tokens.seconds:.2f} s'} "
                 f"({res.window_count} window{'s' * (res.window_count > 1)}); text side: {maps.seconds:.2f} s")
    snapshot_ui.caption(explore.describe(loaded, tokens, maps), right)
    how = (f"{len(phrases)} phrase{'s' * (len(phrases) > 1)}: "
           + ("single-text feature surgery (one phrase alone)" if len(phrases) == 1 else
              "treated as a **class set**" if mode == "set" else "treated as **independent queries**")
           + f" · colour scale {explore.SCALES[scale]} · grid {gh}x{gw} · {side_note} · `standard` is plain cosine "
             "in every mode")
    if mode == "independent":
        how += (" · single-text surgery reads patch tokens only: methods that differ only in their CLS token give "
                "the same map")
    snapshot_ui.caption(how, right)
    for k, phrase in enumerate(maps.phrases):
        words = explore.prompt_words(phrase)
        head = f"**{phrase}**" + (f" (prompted as *{words}*)" if words != phrase else "")
        if maps.probs is not None:
            head += f" · p(phrase | image) over the set = {maps.probs[k]:.3f} (CLS, softmax over the phrases)"
        snapshot_ui.markdown(head)
        widgets.chart(phrase_figure(maps, k, picture, scale, alpha, grid_view), f"x_fig_{k}",
                      name=slug(f"explore {name} {phrase}", 80, "explore"))
    inspector.show(loaded, image, res, run.cfg.surgery_depth, methods, run.cfg.input.posembed, "x_insp")


view()
