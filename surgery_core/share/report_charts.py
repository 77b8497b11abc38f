"""The HTML report's two interactive charts (mAP vs IoU threshold, mAP vs threshold percentile with one button per
IoU) and the plotly.js library, inlined once and gzip-compressed, that draws them offline
(:mod:`surgery_core.share.html` writes the report around them)."""

from __future__ import annotations

import base64
import functools
import re
from typing import TYPE_CHECKING, Any

from surgery_core.errors import SurgeryError

if TYPE_CHECKING:
    from surgery_core.share.html import Parts


def _grid(protos: list, interps: list, titles: list[str], **spacing) -> tuple["Any", list[list[tuple[str, str]]]]:
    """The subplot grid (one row per protocol, one column per interpolation, shared y axes) and each cell's
    ``(xaxis, yaxis)`` names, as plotly's ``make_subplots`` lays them out (row-major: ``x``, ``x2``, ...)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(protos), cols=len(interps), subplot_titles=titles, shared_yaxes=True, **spacing)
    n = len(interps)
    refs = [[("x" + (str(k) if k > 1 else ""), "y" + (str(k) if k > 1 else ""))
             for k in range(r * n + 1, r * n + n + 1)] for r in range(len(protos))]
    return fig, refs


def _line(x: list, y: list, m: str, axes: tuple[str, str], showlegend: bool, hovertemplate: str,
          visible: bool | None = None) -> dict:
    """One method's line as a plain plotly trace: what ``go.Scatter`` then ``add_trace(row, col)`` write, key for
    key (plotly's validation of hundreds of traces took most of a report's chart time; a test checks the two
    agree)."""
    from surgery_core.model.methods import method_color  # one colour per method, the dashboard's too

    trace = {"hovertemplate": hovertemplate, "legendgroup": m, "line": {"color": method_color(m), "width": 2},
             "mode": "lines+markers", "name": m, "showlegend": showlegend}
    if visible is not None:
        trace["visible"] = visible
    return trace | {"x": x, "y": y, "type": "scatter", "xaxis": axes[0], "yaxis": axes[1]}


def _figure(fig, traces: list[dict]) -> dict:
    """A figure dict: the grid's layout (validated by plotly: a few objects) and the plain traces."""
    out = fig.to_plotly_json()
    out["data"] = traces
    return out


def iou_chart(p: "Parts", cfg) -> dict:
    """mAP vs IoU threshold, a panel per protocol and interpolation, a line per method; a plotly figure dict
    (draw it with ``plotly.io.to_html(..., validate=False)``)."""
    protos, interps = list(cfg.protocols), list(cfg.interps)
    titles = [f"{pr} protocol, {it}" for pr in protos for it in interps]
    fig, refs = _grid(protos, interps, titles, horizontal_spacing=0.04, vertical_spacing=0.16)
    ious = [float(t) for t in cfg.iou_thresholds]
    traces = []
    for r, pr in enumerate(protos):
        for c, it in enumerate(interps):
            for m in p.methods:
                vals = list(p.tables.entry(m, pr, it).map_per_iou.values())
                traces.append(_line(ious, vals, m, refs[r][c], r == 0 and c == 0,
                                    f"{m}<br>protocol {pr}, {it}<br>{p.tables.cut_text}<br>"
                                    "IoU ≥ %{x:g}: mAP %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title_text="IoU threshold", title_font_size=11)
    fig.update_yaxes(title_text="mAP", title_font_size=11, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=300 * len(protos) + 80, margin=dict(l=50, r=20, t=60, b=50),
                      title=dict(text=f"mAP vs IoU threshold, boxes at {p.tables.cut_text}", font_size=14),
                      legend=dict(orientation="h", y=-0.12))
    return _figure(fig, traces)


def percentile_chart(p: "Parts", cfg) -> dict:
    """mAP vs threshold percentile, a panel per protocol and interpolation, a line per method, one button per IoU
    threshold; a plotly figure dict, as :func:`iou_chart`."""
    sw = p.sweep
    protos, interps = list(cfg.protocols), list(sw.interps)
    ious, pcts = [float(t) for t in sw.ious], [float(x) for x in sw.percentiles]
    default_t = ious.index(0.5) if 0.5 in ious else 0
    titles = [f"{pr} protocol, {it}" for pr in protos for it in interps]
    fig, refs = _grid(protos, interps, titles, horizontal_spacing=0.05, vertical_spacing=0.16)
    traces, owner = [], []  # owner: IoU index of each trace
    for t, iou in enumerate(ious):
        for r, pr in enumerate(protos):
            for c, it in enumerate(interps):
                for m in p.methods:
                    grid = sw.cell(m, pr, it).map
                    traces.append(_line(pcts, [row[t] for row in grid], m, refs[r][c], r == 0 and c == 0,
                                        f"{m}<br>protocol {pr}, {it}<br>IoU ≥ {iou:g}<br>"
                                        "percentile %{x:g}: mAP %{y:.4f}<extra></extra>", visible=t == default_t))
                    owner.append(t)
    buttons = [dict(label=f"IoU ≥ {iou:g}", method="update",
                    args=[{"visible": [o == t for o in owner]},
                          {"title.text": f"mAP vs threshold percentile, IoU ≥ {iou:g}"}])
               for t, iou in enumerate(ious)]
    fig.update_xaxes(title_text="threshold percentile of the map", title_font_size=11)
    fig.update_yaxes(title_text="mAP", title_font_size=11, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=300 * len(protos) + 110, margin=dict(l=50, r=20, t=100, b=50),
                      title=dict(text=f"mAP vs threshold percentile, IoU ≥ {ious[default_t]:g}", font_size=14),
                      legend=dict(orientation="h", y=-0.12),
                      updatemenus=[dict(type="buttons", direction="right", buttons=buttons, active=default_t,
                                        x=0, xanchor="left", y=1.16, yanchor="bottom", showactive=True)])
    return _figure(fig, traces)


_CHART_SCRIPT = "text/plotly-chart"


def deferred(chart_html: str) -> str:
    """A chart's inline script, kept until the library has been unpacked (:func:`plotly_library` runs it)."""
    out = re.sub(r'<script(?: type="text/javascript")?>', f'<script type="{_CHART_SCRIPT}">', chart_html)
    if f'type="{_CHART_SCRIPT}"' not in out:  # plotly changed how it writes the chart's script
        raise SurgeryError("plotly's chart HTML has no inline script to defer")
    return out


@functools.cache
def plotly_library() -> str:
    """plotly.js once, gzip-compressed (level 9, no timestamp: the same bytes every time) and base64-encoded, with
    the few lines that unpack it in the browser (``DecompressionStream``, no network) and then draw the charts:
    a fifth of the 4.8 MB of the plain library."""
    import gzip

    from plotly.offline import get_plotlyjs

    packed = base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode("ascii")
    return (f'<script id="plotly-gz" type="application/gzip;base64">{packed}</script><script>(async () => {{'
            'const b = atob(document.getElementById("plotly-gz").textContent.trim());'
            'const bytes = Uint8Array.from(b, c => c.charCodeAt(0));'
            'const js = await new Response(new Blob([bytes]).stream()'
            '.pipeThrough(new DecompressionStream("gzip"))).text();'
            '(0, eval)(js);'
            f"for (const s of document.querySelectorAll('script[type=\"{_CHART_SCRIPT}\"]')) (0, eval)(s.textContent);"
            '})();</script>')
