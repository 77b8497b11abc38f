"""The HTML report's two interactive charts (mAP vs IoU threshold, mAP vs threshold percentile with one button per
IoU) and the plotly.js library, inlined once and gzip-compressed, that draws them offline
(:mod:`surgery_core.share.html` writes the report around them)."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from surgery_core.errors import SurgeryError

if TYPE_CHECKING:
    from surgery_core.share.html import Parts


def iou_chart(p: "Parts", cfg) -> "Any":
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from surgery_core.model.methods import method_color  # one colour per method, the dashboard's too

    protos, interps = list(cfg.protocols), list(cfg.interps)
    titles = [f"{pr} protocol, {it}" for pr in protos for it in interps]
    fig = make_subplots(rows=len(protos), cols=len(interps), subplot_titles=titles, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.16)
    ious = [float(t) for t in cfg.iou_thresholds]
    for r, pr in enumerate(protos):
        for c, it in enumerate(interps):
            for k, m in enumerate(p.methods):
                vals = list(p.tables.entry(m, pr, it).map_per_iou.values())
                fig.add_trace(go.Scatter(
                    x=ious, y=vals, mode="lines+markers", name=m, legendgroup=m, showlegend=(r == 0 and c == 0),
                    line=dict(color=method_color(m), width=2),
                    hovertemplate=(f"{m}<br>protocol {pr}, {it}<br>{p.tables.cut_text}<br>"
                                   "IoU ≥ %{x:g}: mAP %{y:.4f}<extra></extra>")), row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="IoU threshold", title_font_size=11)
    fig.update_yaxes(title_text="mAP", title_font_size=11, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=300 * len(protos) + 80, margin=dict(l=50, r=20, t=60, b=50),
                      title=dict(text=f"mAP vs IoU threshold, boxes at {p.tables.cut_text}", font_size=14),
                      legend=dict(orientation="h", y=-0.12))
    return fig


def percentile_chart(p: "Parts", cfg) -> "Any":
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from surgery_core.model.methods import method_color

    sw = p.sweep
    protos, interps = list(cfg.protocols), list(sw.interps)
    ious, pcts = [float(t) for t in sw.ious], [float(x) for x in sw.percentiles]
    default_t = ious.index(0.5) if 0.5 in ious else 0
    titles = [f"{pr} protocol, {it}" for pr in protos for it in interps]
    fig = make_subplots(rows=len(protos), cols=len(interps), subplot_titles=titles, shared_yaxes=True,
                        horizontal_spacing=0.05, vertical_spacing=0.16)
    owner = []  # IoU index of each trace
    for t, iou in enumerate(ious):
        for r, pr in enumerate(protos):
            for c, it in enumerate(interps):
                for k, m in enumerate(p.methods):
                    grid = sw.cell(m, pr, it).map
                    fig.add_trace(go.Scatter(
                        x=pcts, y=[row[t] for row in grid], mode="lines+markers", name=m, legendgroup=m,
                        showlegend=(r == 0 and c == 0), visible=(t == default_t),
                        line=dict(color=method_color(m), width=2),
                        hovertemplate=(f"{m}<br>protocol {pr}, {it}<br>IoU ≥ {iou:g}<br>"
                                       "percentile %{x:g}: mAP %{y:.4f}<extra></extra>")), row=r + 1, col=c + 1)
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
    return fig


_CHART_SCRIPT = "text/plotly-chart"


def deferred(chart_html: str) -> str:
    """A chart's inline script, kept until the library has been unpacked (:func:`plotly_library` runs it)."""
    out = re.sub(r'<script(?: type="text/javascript")?>', f'<script type="{_CHART_SCRIPT}">', chart_html)
    if f'type="{_CHART_SCRIPT}"' not in out:  # plotly changed how it writes the chart's script
        raise SurgeryError("plotly's chart HTML has no inline script to defer")
    return out


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
