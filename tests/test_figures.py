"""egolib.figures: the player's traces, slider and dropdown; the static twins; the book renderer."""

import numpy as np
import plotly.io as pio
import pytest

from egolib import figures


def clip(label: str, T: int = 3) -> figures.MapClip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (T, 12, 20, 3), dtype=np.uint8)
    maps = {"act": rng.random((T, 3, 5)), "obj": rng.random((T, 3, 5))}
    boxes = np.tile([0.1, 0.2, 0.5, 0.6], (T, 1))
    boxes[1] = np.nan
    return figures.MapClip(label, frames, maps, boxes)


def test_player_slider_walks_frames_and_dropdown_picks_clip_and_map():
    fig = figures.heatmap_player([clip("a"), clip("b")], title="attention")
    # per clip: T images + T boxes + 2 options x T maps
    assert len(fig.data) == 2 * (3 + 3 + 2 * 3)
    assert sum(bool(t.visible) for t in fig.data) == 3  # one frame, its box, one map
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == 3
    shown = [[fig.data[i].type for i, v in enumerate(s.args[0]["visible"]) if v] for s in slider.steps]
    assert shown == [["image", "scatter", "heatmap"]] * 3
    first = [i for i, v in enumerate(slider.steps[0].args[0]["visible"]) if v]
    last = [i for i, v in enumerate(slider.steps[2].args[0]["visible"]) if v]
    assert first != last  # the slider changes the frame and the map
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["a · act", "a · obj", "b · act", "b · obj"]
    b_obj = [i for i, v in enumerate(buttons[3].args[0]["visible"]) if v]
    assert fig.data[b_obj[2]].name == "obj" and b_obj[0] >= 12  # clip b's traces come after clip a's
    title, menu = fig.layout.title, fig.layout.updatemenus[0]
    assert title.text == "attention" and (title.yref, title.yanchor, title.y) == ("container", "top", 1.0)
    m = fig.layout.margin
    menu_bottom = m.t - (menu.y - 1) * (fig.layout.height - m.t - m.b)  # pixels from the top of the figure
    # the title line takes the top ~35 px and the menu ~30 px: the menu sits in the margin below the title
    assert menu.yanchor == "bottom" and 35 + 30 <= menu_bottom <= m.t
    html = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "png;base64," in html and "Plotly.newPlot" in html


def test_player_rejects_clips_with_different_maps():
    a, b = clip("a"), clip("b")
    del b.maps["obj"]
    with pytest.raises(ValueError, match="must agree"):
        figures.heatmap_player([a, b])
    a.maps["act"] = a.maps["act"][:2]
    with pytest.raises(ValueError, match="must be"):
        figures.heatmap_player([a])


def test_static_twin_has_one_row_per_map_and_one_column_per_frame():
    fig = figures.heatmap_grid(clip("a"), signed=True)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 3


def test_book_renderer(monkeypatch):
    monkeypatch.delenv("PLOTLY_RENDERER", raising=False)
    old = pio.renderers.default
    try:
        assert figures.use_book_renderer() == "plotly_mimetype+notebook_connected"
        monkeypatch.setenv("PLOTLY_RENDERER", "notebook")
        assert figures.use_book_renderer() == "notebook"
    finally:
        pio.renderers.default = old


def test_bars_name_both_axes():
    import pandas as pd

    table = pd.DataFrame({"act": [40.0, 30.0], "obj": [50.0, 20.0]}, index=pd.Index(["S1", "S2"], name="split"))
    fig = figures.bars_figure(table, title="pointing", yaxis="% hits")
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("split", "% hits")  # the index's name
    assert figures.bars_figure(table, yaxis="%", xaxis="test split").layout.xaxis.title.text == "test split"
    ax = figures.bars_twin(table, yaxis="% hits", xaxis="test split").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("test split", "% hits")
