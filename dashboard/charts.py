"""Plotly figures: the raw patch grid, PR curves, sweep curves and heat maps, quality distributions."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = ["#0b6bcb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#1098ad", "#d6336c", "#5c7cfa"]
MARGIN = dict(l=10, r=10, t=30, b=10)


def method_color(methods: list[str], m: str) -> str:
    """The colour of method ``m``, the same on every page and chart: fixed by the registry's order
    (``surgery_core.methods.method_color``); ``methods`` (the methods shown) no longer matters."""
    from surgery_core.methods import method_color as registry_color

    return registry_color(m)


def patch_grid(grid: np.ndarray, rec, cls: int, method: str) -> go.Figure:
    """The raw similarity of every patch (text = value), GT boxes of the class outlined in patch units."""
    gh, gw = grid.shape
    fig = go.Figure(go.Heatmap(z=grid, colorscale="Jet", text=np.round(grid, 3), texttemplate="%{text:.2f}",
                               textfont=dict(size=9), showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra>" + method + "</extra>"))
    for x1, y1, x2, y2 in rec.xyxy[rec.labels == cls]:
        fig.add_shape(type="rect", x0=x1 / rec.width * gw - 0.5, x1=x2 / rec.width * gw - 0.5,
                      y0=y1 / rec.height * gh - 0.5, y1=y2 / rec.height * gh - 0.5,
                      line=dict(color="#1ec83c", width=2))
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x", constrain="domain")
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=22, b=0),
                      title=dict(text=f"raw similarity {gh}x{gw}", font=dict(size=11)))
    return fig


def pr_curves(results: dict, classes: tuple[str, ...], t_index: int = 0, cols: int = 5) -> go.Figure:
    """Precision-recall curves, one panel per class with ground truth, one line per method."""
    methods = list(results)
    first = results[methods[0]]
    ks = [k for k in range(len(classes)) if first.n_gt[k] > 0]
    rows = max(1, math.ceil(len(ks) / cols))
    titles = [f"{classes[k]} (GT {int(first.n_gt[k])})" for k in ks]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.12 if rows < 4 else 0.06, shared_yaxes=True)
    for j, k in enumerate(ks):
        r, c = j // cols + 1, j % cols + 1
        for m in methods:
            res = results[m]
            rec, prec = res.recall[t_index][k], res.precision[t_index][k]
            if len(rec):
                fig.add_trace(go.Scatter(x=rec, y=prec, mode="lines", name=m, legendgroup=m, showlegend=j == 0,
                                         line=dict(color=method_color(methods, m), width=1.6, shape="hv"),
                                         hovertemplate=f"{m}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}"
                                                       "<extra></extra>"), row=r, col=c)
    fig.update_xaxes(range=[0, 1.02], dtick=0.5)
    fig.update_yaxes(range=[0, 1.02], dtick=0.5)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=190 * rows + 60, margin=MARGIN, legend=dict(orientation="h", y=-0.08))
    return fig


def lines(x, series: dict[str, list], x_title: str, y_title: str, mark_x=None, height: int = 300) -> go.Figure:
    """One line per method (None values leave gaps); a dotted vertical rule at ``mark_x``."""
    methods = list(series)
    fig = go.Figure()
    for m, ys in series.items():
        fig.add_trace(go.Scatter(x=x, y=[np.nan if v is None else v for v in ys], mode="lines+markers", name=m,
                                 line=dict(color=method_color(methods, m), width=2), marker=dict(size=6)))
    if mark_x is not None:
        fig.add_vline(x=mark_x, line=dict(dash="dot", color="#888"))
    fig.update_layout(height=height, margin=MARGIN, xaxis_title=x_title, yaxis_title=y_title,
                      legend=dict(orientation="h", y=1.12))
    return fig


def sweep_heatmaps(tables: dict[str, list[list]], percentiles: list[float], ious: list[float],
                   best: dict[str, tuple[float, float, float]], title: str) -> go.Figure:
    """Percentile x IoU heat map per method (value text), the best cell of each marked with a star."""
    methods = list(tables)
    ncol = min(len(methods), 5)  # wrap: ten methods in one row would be unreadable
    nrow = math.ceil(len(methods) / ncol)
    fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=methods, horizontal_spacing=0.04,
                        vertical_spacing=0.12 if nrow > 1 else 0.0, shared_yaxes=True)
    z_all = np.array([[[np.nan if v is None else v for v in r] for r in tables[m]] for m in methods], float)
    zmax = float(np.nanmax(z_all)) if np.isfinite(z_all).any() else 1.0
    xs = [f"{t:g}" for t in ious]
    ys = [f"p{p:g}" for p in percentiles]
    for j, m in enumerate(methods):
        z = z_all[j]
        fig.add_trace(go.Heatmap(z=z, x=xs, y=ys, zmin=0, zmax=max(zmax, 1e-9), colorscale="Blues",
                                 text=np.where(np.isfinite(z), np.round(z, 3), np.nan), texttemplate="%{text:.3f}",
                                 textfont=dict(size=9), showscale=j == len(methods) - 1,
                                 hovertemplate=f"{m}<br>IoU %{{x}} · %{{y}}<br>{title} %{{z:.4f}}<extra></extra>"),
                      row=j // ncol + 1, col=j % ncol + 1)
        if m in best and best[m][2] is not None:
            bp, bi, bv = best[m]
            fig.add_trace(go.Scatter(x=[f"{bi:g}"], y=[f"p{bp:g}"], mode="markers", showlegend=False,
                                     marker=dict(symbol="star", size=16, color="#f59f00",
                                                 line=dict(color="black", width=1)),
                                     hovertemplate=f"best {m}: {title} {bv:.4f} at p{bp:g}, IoU {bi:g}"
                                                   "<extra></extra>"), row=j // ncol + 1, col=j % ncol + 1)
    fig.update_xaxes(title_text="IoU threshold", type="category")
    fig.update_yaxes(type="category")
    fig.update_layout(height=360 * nrow, margin=MARGIN)
    return fig


def class_method_heatmap(values: np.ndarray, classes: list[str], methods: list[str], title: str,
                         fmt: str = ".2f") -> go.Figure:
    """Classes (rows) x methods (columns) heat map with the value in each cell."""
    fig = go.Figure(go.Heatmap(z=values, x=methods, y=classes, zmin=0, zmax=1, colorscale="Blues",
                               text=values, texttemplate="%{text:" + fmt + "}", textfont=dict(size=10),
                               hovertemplate="%{y} · %{x}: %{z:.3f}<extra>" + title + "</extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(240, 24 * len(classes) + 80), margin=MARGIN, title=dict(text=title,
                                                                                       font=dict(size=13)))
    return fig


def distributions(frames: dict, column: str, title: str) -> go.Figure:
    """Box plot with all points of one per-pair column, one box per method."""
    methods = list(frames)
    fig = go.Figure()
    for m, df in frames.items():
        fig.add_trace(go.Box(y=df[column], name=m, boxmean="sd", marker=dict(size=3, opacity=0.5),
                             line=dict(color=method_color(methods, m)), boxpoints="outliers"))
    fig.update_layout(height=320, margin=MARGIN, showlegend=False, yaxis_title=title)
    return fig
