"""Figures of the probes: interactive plotly players for the browsed book and JupyterLab, matplotlib twins for print.

The player shows the frames of a clip as the model sees them with a heat map (a GSM gate, an attention map)
laid over each frame and the active object's box drawn on it: a slider walks through the frames, a dropdown
picks the clip and the map (GSM layer and channel group, or attention branch). Everything is precomputed
into the figure (trace visibility switched by the slider and the dropdown), so it stays interactive in the
static HTML book with no kernel. In JupyterLab the same functions take any clip the reader builds. Beside the
probes: small line and bar plots, and the spread of Table 2 over seeds (``seed_spread_figure``).

Rendering in the book: plotly >= 6 defaults to the ``plotly_mimetype`` renderer,
which Jupyter Book cannot display (the figure silently vanishes). ``use_book_renderer`` selects
``plotly_mimetype+notebook_connected``: JupyterLab renders the mimetype output, the book the small HTML output
that calls ``Plotly`` (shipped with the book as ``_static/plotly.min.js``, so it works offline).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib.patches import Rectangle
from PIL import Image

BOOK_RENDERER = "plotly_mimetype+notebook_connected"


def use_book_renderer() -> str:
    """Make plotly figures display in JupyterLab and in the built book (``PLOTLY_RENDERER`` overrides).

    Returns:
        The renderer now in use.
    """
    pio.renderers.default = os.environ.get("PLOTLY_RENDERER", BOOK_RENDERER)
    return pio.renderers.default


@dataclass
class MapClip:
    """One clip for the player: its frames, its maps and the active object's boxes.

    Attributes:
        label: what the dropdown calls the clip (e.g. ``"S1 12: take plate"``).
        frames: uint8 ``(T, h, w, 3)``, the view the model gets.
        maps: ``{option: (T, mh, mw)}``, e.g. ``{"layer 3 · group 1 (from the past)": gate}`` or
            ``{"act": attention}``; every clip of a player has the same options.
        boxes: ``(T, 4)`` ``(x0, y0, x1, y1)`` in fractions of the frame, NaN rows where none (optional).
        frame_labels: slider label per frame (default ``"t=0"``, ...).
    """

    label: str
    frames: np.ndarray
    maps: dict[str, np.ndarray]
    boxes: np.ndarray | None = None
    frame_labels: list[str] = field(default_factory=list)


def _png_uri(frame: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _ranges(clips: Sequence[MapClip], signed: bool) -> dict[str, tuple[float, float]]:
    """One colour range per option over all clips and frames (colours compare across time and clips)."""
    out = {}
    for option in clips[0].maps:
        values = np.concatenate([np.asarray(c.maps[option], dtype=np.float64).ravel() for c in clips])
        if signed:
            m = float(np.abs(values).max()) or 1.0
            out[option] = (-m, m)
        else:
            lo, hi = float(values.min()), float(values.max())
            out[option] = (lo, hi if hi > lo else lo + 1.0)
    return out


def _check(clips: Sequence[MapClip]) -> list[str]:
    if not clips:
        raise ValueError("the player needs at least one clip")
    options = list(clips[0].maps)
    for c in clips:
        if list(c.maps) != options:
            raise ValueError(f"clip {c.label!r} has maps {list(c.maps)}, the first clip {options}: they must agree")
        T = len(c.frames)
        for o, m in c.maps.items():
            if np.asarray(m).ndim != 3 or len(m) != T:
                raise ValueError(f"clip {c.label!r}: map {o!r} must be (T={T}, h, w), got {np.shape(m)}")
    return options


def heatmap_player(
    clips: Sequence[MapClip],
    *,
    title: str = "",
    signed: bool = False,
    opacity: float = 0.5,
    colorscale: str | None = None,
    height: int = 460,
) -> go.Figure:
    """An interactive player: frames with a heat map overlaid, a frame slider, a clip x map dropdown.

    Args:
        clips: the clips (the same map options in each).
        title: figure title.
        signed: maps in [-m, m] (gates: a diverging colour scale centred on 0) rather than [lo, hi].
        opacity: of the heat map over the frame.
        colorscale: plotly colour scale (default ``RdBu_r`` when signed, else ``Inferno``).
        height: pixels.

    Returns:
        A ``go.Figure``: per clip one image and one box trace per frame, per (clip, option) one heat map per
        frame; the slider and the dropdown switch which are visible.
    """
    options = _check(clips)
    ranges = _ranges(clips, signed)
    colorscale = colorscale or ("RdBu_r" if signed else "Inferno")
    fig = go.Figure()
    index: dict[tuple, int] = {}  # ("img" | "box", c, t) or ("map", c, o, t) -> trace index
    for c, clip in enumerate(clips):
        T, h, w, _ = clip.frames.shape
        for t in range(T):
            index["img", c, t] = len(fig.data)
            fig.add_trace(go.Image(source=_png_uri(clip.frames[t]), visible=False, hoverinfo="skip", name="frame"))
            box = clip.boxes[t] if clip.boxes is not None else np.full(4, np.nan)
            x0, y0, x1, y1 = (box * [w, h, w, h] - 0.5).tolist()
            index["box", c, t] = len(fig.data)
            fig.add_trace(go.Scatter(x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], mode="lines", visible=False,
                                     line={"color": "lime", "width": 2}, hoverinfo="skip", showlegend=False,
                                     name="active object"))
        for o in options:
            lo, hi = ranges[o]
            for t in range(T):
                m = np.asarray(clip.maps[o][t], dtype=np.float32)  # (mh, mw); sent as compact binary
                mh, mw = m.shape
                index["map", c, o, t] = len(fig.data)
                fig.add_trace(go.Heatmap(
                    z=m, x0=w / (2 * mw) - 0.5, dx=w / mw, y0=h / (2 * mh) - 0.5, dy=h / mh, zmin=lo, zmax=hi,
                    colorscale=colorscale, opacity=opacity, visible=False, name=o, colorbar={"title": {"text": o[:18]}},
                    hovertemplate="row %{y:.0f} col %{x:.0f}<br>value %{z:.4f}<extra></extra>",
                ))  # fmt: skip
    n = len(fig.data)

    def visible(c: int, o: str, t: int) -> list[bool]:
        v = [False] * n
        for key in (("img", c, t), ("box", c, t), ("map", c, o, t)):
            v[index[key]] = True
        return v

    def slider(c: int, o: str) -> dict:
        clip = clips[c]
        labels = clip.frame_labels or [f"t={t}" for t in range(len(clip.frames))]
        steps = [{"method": "restyle", "args": [{"visible": visible(c, o, t)}], "label": labels[t]}
                 for t in range(len(clip.frames))]
        return {"active": 0, "steps": steps, "currentvalue": {"prefix": "frame "}, "pad": {"t": 30},
                "x": 0.05, "len": 0.9}  # inset, so the first and last tick labels are not clipped

    buttons = [{"method": "update", "label": f"{clip.label} · {o}",
                "args": [{"visible": visible(c, o, 0)}, {"sliders": [slider(c, o)]}]}
               for c, clip in enumerate(clips) for o in options]
    for i, v in enumerate(visible(0, options[0], 0)):
        fig.data[i].visible = v
    fig.update_layout(
        # the title on the top line, the dropdown on its own line below it (never over the title)
        title={"text": title, "x": 0.0, "xref": "paper", "xanchor": "left", "y": 1.0, "yref": "container",
               "yanchor": "top", "pad": {"t": 12}},
        height=height, sliders=[slider(0, options[0])],
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left", "y": 1.02,
                      "yanchor": "bottom", "showactive": True}],
        margin={"t": 110, "l": 10, "r": 10, "b": 10}, xaxis={"visible": False}, yaxis={"visible": False},
    )  # fmt: skip
    return fig


def heatmap_grid(clip: MapClip, *, signed: bool = False, opacity: float = 0.5, cmap: str | None = None) -> plt.Figure:
    """The static twin of ``heatmap_player`` for one clip: one row per map option, one column per frame.

    Args:
        clip: frames ``(T, h, w, 3)`` and maps ``{option: (T, mh, mw)}``.
        signed: maps in [-m, m] with a diverging colour map centred on 0 (gates).
        opacity: of the heat map over the frame.
        cmap: matplotlib colour map (default ``RdBu_r`` when signed, else ``inferno``).

    Returns:
        A matplotlib figure (the box of the active object in green).
    """
    options = _check([clip])
    ranges = _ranges([clip], signed)
    cmap = cmap or ("RdBu_r" if signed else "inferno")
    T, h, w, _ = clip.frames.shape
    size = 1.6 * T * w / max(h, w) + 1, 1.6 * len(options) + 0.4
    fig, axes = plt.subplots(len(options), T, figsize=size, squeeze=False, dpi=72)
    labels = clip.frame_labels or [f"t={t}" for t in range(T)]
    for r, o in enumerate(options):
        lo, hi = ranges[o]
        for t in range(T):
            ax = axes[r, t]
            ax.imshow(clip.frames[t])
            im = ax.imshow(clip.maps[o][t], extent=(-0.5, w - 0.5, h - 0.5, -0.5), cmap=cmap, vmin=lo, vmax=hi,
                           alpha=opacity, interpolation="nearest")
            if clip.boxes is not None and not np.isnan(clip.boxes[t]).any():
                x0, y0, x1, y1 = clip.boxes[t] * [w, h, w, h] - 0.5
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(labels[t], fontsize=8)
            if t == 0:
                ax.set_ylabel(o, fontsize=8)
        fig.colorbar(im, ax=axes[r].tolist(), fraction=0.02, pad=0.01)
    fig.suptitle(clip.label, fontsize=10)
    return fig


def lines_figure(table: pd.DataFrame, columns: Sequence[str], *, x: str | None = None, title: str = "",
                 yaxis: str = "") -> go.Figure:
    """An interactive line plot of some columns of a table against its index (or column ``x``), with hover.

    Used for the per-layer gate statistics (one point per GSM layer).

    Args:
        table: one row per point.
        columns: the columns drawn, one line each.
        x: the column on the x axis (default: the index).
        title: figure title.
        yaxis: y-axis title.
    """
    xs = table[x] if x else table.index
    fig = go.Figure([go.Scatter(x=xs, y=table[c], mode="lines+markers", name=c) for c in columns])
    fig.update_layout(title={"text": title}, yaxis_title=yaxis, xaxis_title=x or table.index.name or "", height=380,
                      margin={"t": 50, "l": 50, "r": 10, "b": 40})
    return fig


def lines_twin(table: pd.DataFrame, columns: Sequence[str], *, x: str | None = None, title: str = "",
               yaxis: str = "") -> plt.Figure:
    """The static twin of ``lines_figure``."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    xs = table[x] if x else table.index
    for c in columns:
        ax.plot(xs, table[c], marker="o", label=c)
    ax.set(title=title, ylabel=yaxis, xlabel=x or table.index.name or "")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def bars_figure(table: pd.DataFrame, *, title: str = "", yaxis: str = "", xaxis: str = "") -> go.Figure:
    """Grouped bars: one group per row of ``table``, one bar per column (e.g. pointing game per split).

    Args:
        table: rows are the groups, columns the bars of a group.
        title: figure title.
        yaxis: y-axis title.
        xaxis: x-axis title (what the groups are; default: the index's name).
    """
    fig = go.Figure([go.Bar(x=[str(i) for i in table.index], y=table[c], name=str(c)) for c in table.columns])
    fig.update_layout(barmode="group", title={"text": title}, yaxis_title=yaxis,
                      xaxis_title=xaxis or table.index.name or "", height=380,
                      margin={"t": 50, "l": 50, "r": 10, "b": 50})
    return fig


def bars_twin(table: pd.DataFrame, *, title: str = "", yaxis: str = "", xaxis: str = "") -> plt.Figure:
    """The static twin of ``bars_figure``."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    table.plot.bar(ax=ax, rot=0)
    ax.set(title=title, ylabel=yaxis, xlabel=xaxis or table.index.name or "")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def seed_spread_figure(stacked: pd.DataFrame, *, metric: str = "top1", task: str = "action",
                       title: str = "") -> go.Figure:
    """Each Table 2 row over seeds: one dot per seed and the mean ± one standard deviation, one panel per setting.

    A reader sees at a glance whether two rows' spreads overlap (a gap within the noise) or not.

    Args:
        stacked: ``egolib.seeds.stack``'s table (``name, setting, task, seed`` and the metric columns).
        metric: the metric column (percent), e.g. ``top1``.
        task: ``verb``, ``noun`` or ``action``.
        title: the figure title.
    """
    from plotly.subplots import make_subplots

    part = stacked[stacked["task"] == task]
    if part.empty:
        raise ValueError(f"no task {task!r} in the table; choose one of {', '.join(stacked['task'].unique())}")
    settings = list(dict.fromkeys(part["setting"]))
    names = list(dict.fromkeys(part["name"]))[::-1]  # plotly draws the first category at the bottom
    fig = make_subplots(rows=1, cols=len(settings), shared_yaxes=True, subplot_titles=settings,
                        horizontal_spacing=0.04)
    colours = pio.templates["plotly"].layout.colorway
    seeds = list(dict.fromkeys(part["seed"]))
    for col, setting in enumerate(settings, start=1):
        block = part[part["setting"] == setting]
        for k, seed in enumerate(seeds):
            dots = block[block["seed"] == seed]
            fig.add_trace(go.Scatter(x=dots[metric], y=dots["name"], mode="markers", name=f"seed {seed}",
                                     legendgroup=f"seed {seed}", showlegend=col == 1, opacity=0.6,
                                     marker={"size": 7, "color": colours[k % len(colours)]},
                                     hovertemplate=f"seed {seed}<br>%{{y}}: %{{x:.2f}}<extra></extra>"), 1, col)
        stats = block.groupby("name", sort=False)[metric].agg(["mean", "std"]).reindex(names)
        fig.add_trace(go.Scatter(x=stats["mean"], y=stats.index, mode="markers", name="mean ± std",
                                 legendgroup="mean", showlegend=col == 1,
                                 marker={"symbol": "line-ns-open", "size": 16, "color": "black",
                                         "line": {"width": 2}},
                                 error_x={"type": "data", "array": stats["std"].fillna(0.0), "color": "black",
                                          "thickness": 1.5, "width": 6},
                                 hovertemplate="%{y}: %{x:.2f} ± %{error_x.array:.2f}<extra></extra>"), 1, col)
        fig.update_xaxes(title_text=f"{task} {metric} (%)", row=1, col=col)
    fig.update_yaxes(categoryorder="array", categoryarray=names)
    fig.update_layout(title={"text": title}, height=max(300, 60 + 24 * len(names)),
                      margin={"t": 60, "l": 10, "r": 10, "b": 40}, legend={"orientation": "h", "y": -0.15})
    return fig


def seed_spread_twin(stacked: pd.DataFrame, *, metric: str = "top1", task: str = "action",
                     title: str = "") -> plt.Figure:
    """The static twin of ``seed_spread_figure``."""
    part = stacked[stacked["task"] == task]
    if part.empty:
        raise ValueError(f"no task {task!r} in the table; choose one of {', '.join(stacked['task'].unique())}")
    settings = list(dict.fromkeys(part["setting"]))
    names = list(dict.fromkeys(part["name"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 0.6 + 0.3 * len(names)),
                             sharey=True, squeeze=False)
    pos = {n: len(names) - 1 - i for i, n in enumerate(names)}  # first row on top
    for ax, setting in zip(axes[0], settings, strict=True):
        block = part[part["setting"] == setting]
        ax.scatter(block[metric], block["name"].map(pos), s=14, alpha=0.6, c="tab:blue", label="seeds")
        stats = block.groupby("name", sort=False)[metric].agg(["mean", "std"])
        ax.errorbar(stats["mean"], stats.index.map(pos), xerr=stats["std"].fillna(0.0), fmt="|", color="black",
                    capsize=3, markersize=10, label="mean ± std")
        ax.set(title=setting, xlabel=f"{task} {metric} (%)")
        ax.set_yticks(range(len(names)), names[::-1], fontsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
