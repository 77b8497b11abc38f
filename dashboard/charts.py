"""Plotly figures: the raw patch grid, PR curves, sweep curves and heat maps, quality distributions."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from surgery_core.model.methods import method_color  # one colour per method, fixed by the registry's order
from surgery_core.share.portable import plotly_config

MARGIN = dict(l=10, r=10, t=30, b=10)
LEGEND = dict(orientation="v", x=1.02, xanchor="left", y=1.0, yanchor="top", font=dict(size=11))


def config(name: str) -> dict:
    """Every chart's plotly configuration (:func:`surgery_core.share.portable.plotly_config`: the camera saves a
    PNG at 2x named ``name``), the toolbar shown while the pointer is over the chart, so that at rest it covers
    no subplot title."""
    return {"displayModeBar": "hover", **plotly_config(name)}


def patch_grid(grid: np.ndarray, rec, cls: int, method: str) -> go.Figure:
    """The raw similarity of every patch (text = value), GT boxes of the class outlined in patch units."""
    gh, gw = grid.shape
    fig = go.Figure(go.Heatmap(z=grid, colorscale="Jet", text=np.round(grid, 3), texttemplate="%{text:.2f}",
                               textfont=dict(size=9), showscale=True,
                               colorbar=dict(thickness=8, len=0.9, tickfont=dict(size=9), tickformat=".2f"),
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


def step_corners(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points of a curve drawn as a step function (plotly ``shape="hv"``: from each point across at
    its y to the next point's x, then up or down to it; x never decreasing) that the drawing needs: the same
    lines through every corner, without the points that lie inside a flat stretch (the previous point's y) or
    inside a vertical stretch (the next point's x, y between its neighbours'). A VOC precision-recall curve holds
    one point per detection, most of them false positives stacked at one recall: these go."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n <= 2:
        return np.arange(n)
    keep = np.ones(n, bool)
    keep[1:-1] = y[1:-1] != y[:-2]  # flat: the line at the previous y runs on through it
    i = np.flatnonzero(keep)
    xs, ys = x[i], y[i]
    inner = np.ones(len(i), bool)  # vertical: the next point sits straight above or below, and so does this one
    if len(i) > 2:
        lo, hi = np.minimum(ys[:-2], ys[2:]), np.maximum(ys[:-2], ys[2:])
        inner[1:-1] = ~((xs[1:-1] == xs[2:]) & (lo <= ys[1:-1]) & (ys[1:-1] <= hi))
    return i[inner]


def pr_curves(results: dict, classes: tuple[str, ...], t_index: int = 0, cols: int = 4,
              only: tuple[int, ...] | None = None) -> go.Figure:
    """Precision-recall curves, one panel per class with ground truth (``only``: of these classes; its AP per
    method in the hover), one line per method through every corner of its step curve (:func:`step_corners`); a
    curve of one or two points (e.g. AP 1.000 from a single true positive) is drawn with markers so that it
    shows."""
    methods = list(results)
    first = results[methods[0]]
    ks = [k for k in (range(len(classes)) if only is None else only) if first.n_gt[k] > 0]
    cols = max(1, min(cols, len(ks)))
    rows = max(1, math.ceil(len(ks) / cols))
    titles = [f"{classes[k]} (GT {int(first.n_gt[k])})" for k in ks]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.16 if rows < 4 else 0.08)
    for j, k in enumerate(ks):
        r, c = j // cols + 1, j % cols + 1
        for m in methods:
            res = results[m]
            rec, prec = res.recall[t_index][k], res.precision[t_index][k]
            if len(rec):
                few, at = len(rec) <= 2, step_corners(rec, prec)
                rec, prec = np.asarray(rec)[at], np.asarray(prec)[at]
                ap = res.per_class_ap[k]
                fig.add_trace(go.Scatter(x=rec, y=prec, mode="lines+markers" if few else "lines", name=m,
                                         legendgroup=m, showlegend=j == 0, marker=dict(size=7),
                                         line=dict(color=method_color(m), width=1.6, shape="hv"),
                                         hovertemplate=f"{m} (AP {ap:.3f})<br>recall %{{x:.3f}}<br>precision "
                                                       "%{y:.3f}<extra></extra>"), row=r, col=c)
    fig.update_xaxes(range=[-0.02, 1.04], dtick=0.5, title_text="recall", title_font_size=11, title_standoff=2)
    fig.update_yaxes(range=[-0.02, 1.04], dtick=0.5, title_text="precision", title_font_size=11, title_standoff=2)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=230 * rows + 50, margin=dict(l=10, r=10, t=30, b=10), legend=LEGEND)
    return fig


def lines(x, series: dict[str, list], x_title: str, y_title: str, mark_x=None, height: int = 300) -> go.Figure:
    """One line per method (None values leave gaps); a dotted vertical rule at ``mark_x``."""
    fig = go.Figure()
    for m, ys in series.items():
        fig.add_trace(go.Scatter(x=x, y=[np.nan if v is None else v for v in ys], mode="lines+markers", name=m,
                                 line=dict(color=method_color(m), width=2), marker=dict(size=6)))
    if mark_x is not None:
        fig.add_vline(x=mark_x, line=dict(dash="dot", color="#888"))
    fig.update_layout(height=height, margin=MARGIN, xaxis_title=x_title, yaxis_title=y_title, legend=LEGEND)
    return fig


def sweep_heatmaps(tables: dict[str, list[list]], percentiles: list[float], ious: list[float],
                   best: dict[str, tuple[float, float, float]], title: str, cols: int = 2,
                   ylabel: str = "heatmap percentile") -> go.Figure:
    """Percentile (or fixed value: ``ylabel``) x IoU heat map per method, ``cols`` per row, every cell with its
    value; the best cell of each
    method in bold with a star before its value (nothing covers a number). One colour scale for all (shown)."""
    methods = list(tables)
    cols = max(1, min(cols, len(methods)))
    rows = math.ceil(len(methods) / cols)
    height = 60 + rows * (28 * len(percentiles) + 90)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=methods, horizontal_spacing=0.1,
                        vertical_spacing=min(0.3, 100 / height) if rows > 1 else 0.1)
    z_all = np.array([[[np.nan if v is None else v for v in r] for r in tables[m]] for m in methods], float)
    zmax = float(np.nanmax(z_all)) if np.isfinite(z_all).any() else 1.0
    xs = [f"{t:g}" for t in ious]
    row_text = (lambda p: f"p{p:g}") if ylabel == "heatmap percentile" else (lambda p: f"{p:g}")
    ys = [row_text(p) for p in percentiles]
    for j, m in enumerate(methods):
        z = z_all[j]
        text = np.array([[f"{v:.3f}".removeprefix("0") if np.isfinite(v) else "" for v in r] for r in z], object)
        if m in best and best[m][2] is not None:
            bp, bi, _ = best[m]
            i, k = ys.index(row_text(bp)), xs.index(f"{bi:g}")
            text[i, k] = f"<b>★{text[i, k]}</b>"
        fig.add_trace(go.Heatmap(z=z, x=xs, y=ys, zmin=0, zmax=max(zmax, 1e-9), colorscale="Blues",
                                 text=text, texttemplate="%{text}", textfont=dict(size=12),
                                 showscale=j == 0, colorbar=dict(title=dict(text=title, side="right"), len=0.9,
                                                                 thickness=14),
                                 hovertemplate=f"{m}<br>IoU %{{x}} · %{{y}}<br>{title} %{{z:.4f}}<extra></extra>"),
                      row=j // cols + 1, col=j % cols + 1)
    fig.update_xaxes(title_text="IoU threshold", type="category", title_standoff=4)
    fig.update_yaxes(type="category", title_text=ylabel, title_standoff=2)
    fig.update_annotations(font_size=13)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def class_method_heatmap(values: np.ndarray, classes: list[str], methods: list[str], title: str,
                         fmt: str = ".2f", zrange: tuple[float, float] | None = (0.0, 1.0)) -> go.Figure:
    """Classes (rows) x methods (columns) heat map with the value in each cell and a colour bar; ``zrange`` None
    fits the scale to the values (the bar says so), else that fixed range (e.g. 0-1 for accuracies)."""
    finite = values[np.isfinite(values)]
    if zrange is None:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        zrange = (lo, hi if hi > lo else lo + 1e-9)
    fig = go.Figure(go.Heatmap(z=values, x=methods, y=classes, zmin=zrange[0], zmax=zrange[1], colorscale="Blues",
                               text=values, texttemplate="%{text:" + fmt + "}", textfont=dict(size=12),
                               colorbar=dict(thickness=12, len=0.9, tickformat=fmt),
                               hovertemplate="%{y} · %{x}: %{z:.3f}<extra>" + title + "</extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30 if len(methods) > 5 else 0)
    fig.update_layout(height=max(260, 28 * len(classes) + 110), margin=MARGIN,
                      title=dict(text=f"{title} (scale {zrange[0]:{fmt}}-{zrange[1]:{fmt}})", font=dict(size=13)))
    return fig


def distributions(frames: dict, column: str, title: str) -> go.Figure:
    """Box plot with all points of one per-pair column, one box per method."""
    fig = go.Figure()
    for m, df in frames.items():
        fig.add_trace(go.Box(y=df[column], name=m, boxmean="sd", marker=dict(size=3, opacity=0.5),
                             line=dict(color=method_color(m)), boxpoints="outliers"))
    fig.update_layout(height=320, margin=MARGIN, showlegend=False, yaxis_title=title)
    return fig


def sweep_runs(series: dict[str, tuple[list[float], list]], y_title: str, height: int = 320) -> go.Figure:
    """mAP against the box percentile, one line per (run, method) pair (each with its own percentiles)."""
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_trace(go.Scatter(x=xs, y=[np.nan if v is None else v for v in ys], mode="lines+markers", name=name,
                                 line=dict(width=2), marker=dict(size=6),
                                 hovertemplate=f"{name}<br>p%{{x:g}}: mAP %{{y:.4f}}<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN, xaxis_title="box percentile of the map", yaxis_title=y_title,
                      legend=dict(orientation="h", x=0, y=-0.25, font=dict(size=11)))
    return fig


def attention_rows(panels: list[tuple[str, np.ndarray]], cell: tuple[int, int], cols: int = 7,
                   height: int = 170) -> go.Figure:
    """Small multiples of attention rows over the patch grid (one shared 0-max colour scale per panel), the
    query patch outlined in white."""
    rows = max(1, math.ceil(len(panels) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in panels], horizontal_spacing=0.012,
                        vertical_spacing=0.12 / rows)
    r, c = cell
    for i, (title, grid) in enumerate(panels):
        at = dict(row=i // cols + 1, col=i % cols + 1)
        fig.add_trace(go.Heatmap(z=grid, colorscale="Viridis", showscale=False, zmin=0, zmax=float(grid.max()) or 1,
                                 hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra>" + title + "</extra>"), **at)
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color="white", width=2),
                      **at)
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", **at)
    fig.update_yaxes(autorange="reversed", showticklabels=False, ticks="", showgrid=False, constrain="domain")
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, constrain="domain")
    fig.update_annotations(font=dict(size=10))
    fig.update_layout(height=height * rows + 20, margin=dict(l=0, r=0, t=24, b=0))
    return fig
