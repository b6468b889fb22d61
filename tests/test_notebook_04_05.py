"""book/04_gsm_gates and book/05_lsta_attention (pairing: test_book.py): typed parameters, a missing run named
with the command that trains it, and both chapters under papermill on the smoke book's runs (plotly figures in
the outputs, the CSVs and summary.json the book driver reads)."""

import ast
import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill as pm
import pytest
import torch

from egolib import probes, runs

ROOT = Path(__file__).resolve().parents[1]
GATES = ROOT / "book" / "04_gsm_gates.ipynb"
ATTENTION = ROOT / "book" / "05_lsta_attention.ipynb"
COMMON = {"preset": ("str", "demo"), "seed": ("int", 0), "runs": ("str", "runs"), "run": ("str", ""),
          "dataset": ("str", "epic55"), "data_root": ("str", "")}


@pytest.mark.parametrize(("notebook", "own"), [(GATES, {"baseline"}), (ATTENTION, {"limit"})], ids=["04", "05"])
def test_parameters_are_typed_with_help(notebook, own):
    params = pm.inspect_notebook(str(notebook))
    for name, (kind, default) in COMMON.items():
        assert (params[name]["inferred_type_name"], ast.literal_eval(params[name]["default"])) == (kind, default), name
    assert own <= set(params) and all(p["help"] for p in params.values())


@pytest.mark.slow
def test_a_missing_run_stops_the_chapter_with_the_command_that_trains_it(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(GATES), str(tmp_path / "out.ipynb"), parameters={"preset": "smoke", "seed": 2},
                            cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    assert err.value.ename == "FileNotFoundError"
    assert ("papermill book/03_train.ipynb runs/gsm-bninc-epic-smoke-s2/train.ipynb -p method gsm -p backbone bninc "
            "-p pretrain epic -p preset smoke -p seed 2") in err.value.evalue


# --------------------------------------------------------------------------------------------------
# Both chapters on the smoke book's runs (the chapters' default run folders at the smoke preset)

RUNS = {"tsn": "tsn-res34-imagenet-smoke-s0", "gsm": "gsm-bninc-epic-smoke-s0",
        "egoaco": "egoaco-res34-imagenet-smoke-s0"}


@pytest.fixture(scope="module")
def smoke_runs(smoke_book_view):
    """A scratch folder reading the smoke book's data and these three runs; the chapters write into it."""
    return smoke_book_view(link=tuple(RUNS.values()))


@pytest.mark.slow
def test_a_probe_clip_is_the_models_test_clip_with_its_boxes_in_view(smoke_runs, monkeypatch):
    monkeypatch.chdir(smoke_runs)
    for method in ("gsm", "egoaco"):
        run = probes.open_run("runs", RUNS[method])
        item = run.dataset("s2")[3]
        pc = run.clip("s2", 3)
        assert torch.equal(pc.clip, item["clip"]) and pc.uid == item["uid"] and pc.verb == item["verb"] >= 0
        T = run.cfg.num_segments
        assert pc.frames.shape == (T, *pc.clip.shape[-2:], 3) and pc.frames.dtype == np.uint8
        assert pc.boxes.shape == (T, 4) and pc.visible.any()
        b = pc.boxes[pc.visible]
        assert ((0 <= b) & (b <= 1)).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


@pytest.mark.slow
def test_an_egoaco_run_keeps_its_test_attention_and_the_pointing_game_reads_it(smoke_book_view, monkeypatch):
    root = smoke_book_view(copy=(RUNS["egoaco"],))
    monkeypatch.chdir(root)
    run = probes.open_run("runs", RUNS["egoaco"])
    kept = json.loads((run.path / "metrics.json").read_text())["protocol"]["first_clip"]
    assert kept == {"files": ["first_clip_s1.npz", "first_clip_s2.npz"], "attention": True}
    assert runs.unverified(run.path, kept["files"]) == []  # hashed in DONE
    stored = probes.stored_first_clip(run, "s1")
    assert stored["uid"].tolist() == [str(u) for u in run.dataset("s1").uids]
    pcs = [run.clip("s1", i) for i in range(3)]
    fresh = probes.capture(run.model, torch.stack([pc.clip for pc in pcs]))
    for b in probes.BRANCHES:  # the maps of the pass that scored the first test clips
        np.testing.assert_allclose(stored[b][:3], fresh.attention[b].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stored["verb"][:3], fresh.outputs["verb"].numpy(), rtol=0, atol=1e-4)
    with monkeypatch.context() as m:
        m.setattr(probes, "capture", lambda *a, **k: pytest.fail("computed the maps the run kept"))
        read = probes.attention_probe(run, "s1")
    data = bytearray((run.path / "first_clip_s1.npz").read_bytes())
    data[-10] ^= 0xFF  # a changed byte: the file no longer verifies and the maps are computed again
    (run.path / "first_clip_s1.npz").write_bytes(bytes(data))
    assert probes.stored_first_clip(run, "s1") is None and probes.stored_attention(run, "s1") is None
    pd.testing.assert_frame_equal(probes.attention_probe(run, "s1"), read)
    assert len(read) > 0 and read.uid.nunique() > 1


@pytest.mark.slow
def test_the_order_probe_reads_the_forward_plays_of_the_runs_test(smoke_book_view, monkeypatch):
    root = smoke_book_view(copy=(RUNS["gsm"],))
    monkeypatch.chdir(root)
    run = probes.open_run("runs", RUNS["gsm"])
    assert json.loads((run.path / "metrics.json").read_text())["protocol"]["first_clip"]["attention"] is False
    calls = []
    model = run.model
    run.model = lambda clip: calls.append(clip) or model(clip)  # counts the passes, answers as the model
    run.model.eval = model.eval
    read = probes.order_probe(run, ["s1"])
    assert len(calls) == -(-len(read) // run.cfg.batch_size)  # one pass per batch: the backward plays only
    (run.path / "DONE").unlink()  # the kept file no longer verifies: both plays run
    calls.clear()
    fresh = probes.order_probe(run, ["s1"])
    assert len(calls) == 2 * -(-len(read) // run.cfg.batch_size)
    pd.testing.assert_frame_equal(fresh, read)


def execute(notebook: Path, root: Path, parameters: dict) -> list:
    out = root / f"{notebook.stem}.out.ipynb"
    pm.execute_notebook(str(notebook), str(out), parameters={"preset": "smoke", **parameters}, cwd=str(root),
                        kernel_name="python3", progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def plotly_outputs(outputs: list) -> list:
    """Plotly figures as the book renders them: the mimetype for JupyterLab and an HTML twin calling Plotly."""
    figs = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert all("Plotly.newPlot" in o["data"]["text/html"] for o in figs)
    return figs


def read_summary(path: Path, keys: set[str]) -> dict:
    summary = json.loads(path.read_text())
    assert set(summary) == keys
    for v in summary.values():
        assert set(v) == {"value", "unit", "label"} and v["unit"] == "%" and 0 <= v["value"] <= 100
    return summary


@pytest.mark.slow
def test_gate_chapter_runs_on_smoke_runs(smoke_runs):
    outputs = execute(GATES, smoke_runs, {})  # the default runs
    figs = plotly_outputs(outputs)
    assert len(figs) >= 3  # gate statistics, the gate player, the order probe
    player = max(figs, key=lambda o: len(o["data"]["application/vnd.plotly.v1+json"]["data"]))
    layout = player["data"]["application/vnd.plotly.v1+json"]["layout"]
    assert layout["sliders"][0]["steps"] and len(layout["updatemenus"][0]["buttons"]) > 1
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # the static twins
    out = smoke_runs / "runs" / "book" / "04_gsm_gates"
    read_summary(out / "summary.json", {"order_pairs_gsm", "order_pairs_tsn", "order_flip_gsm", "order_flip_tsn"})
    assert {"gate_stats.csv", "order_probe.csv", "order_predictions.csv"} <= {p.name for p in out.iterdir()}
    assert len((out / "gate_stats.csv").read_text().splitlines()) == 1 + 10  # one row per GSM of BN-Inception


@pytest.mark.slow
def test_attention_chapter_runs_on_smoke_runs(smoke_runs):
    outputs = execute(ATTENTION, smoke_runs, {})
    figs = plotly_outputs(outputs)
    assert len(figs) >= 3  # the attention player, the pointing game, best and worst clip
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    out = smoke_runs / "runs" / "book" / "05_lsta_attention"
    keys = {f"pointing_{b}_{s}" for b in ("act", "obj", "ctx", "centre", "random") for s in ("s1", "s2")}
    read_summary(out / "summary.json", keys)
    assert {"pointing.csv", "pointing_frames.csv"} <= {p.name for p in out.iterdir()}
