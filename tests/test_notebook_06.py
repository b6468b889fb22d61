"""book/06_ensembles under papermill at the smoke preset, on the smoke book's member runs: the GSM run whole (for
the protocol re-scoring from its checkpoint) and the nine others by their score files alone; and ``rescore``
rewriting a run's score files identically from its checkpoint."""

import ast
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill as pm
import pytest

from egolib import ensemble, runs, scores

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "06_ensembles.ipynb"
REAL = "gsm-bninc-epic-smoke-s0"


@pytest.fixture(scope="module")
def smoke_runs(smoke_book_view):
    """A scratch folder with the smoke book's data and runs: a copy of the GSM run (the rescore test rewrites it)
    and, of every other member run, only its score files (so the chapter re-scores the GSM run alone)."""
    members = [m.run_name("smoke", 0) for m in ensemble.load_config(ROOT / "configs" / "ensembles.yaml").runs()]
    path = smoke_book_view(copy=(REAL,), scores_only=tuple(m for m in members if m != REAL))
    old = Path.cwd()
    os.chdir(path)  # rescore reads the data set relative to the working directory
    try:
        yield path
    finally:
        os.chdir(old)


def test_parameters_are_the_agreed_ones_typed_with_help():
    params = pm.inspect_notebook(str(NOTEBOOK))  # (tests/test_book.py checks the .py/.ipynb pairing)
    assert {k: p["inferred_type_name"] for k, p in params.items()} == {
        "preset": "str", "seed": "int", "runs": "str", "average": "str", "config": "str", "seeds": "str",
        "dataset": "str", "data_root": "str"}
    assert all(p["help"] for p in params.values())
    assert ast.literal_eval(params["average"]["default"]) in ensemble.AVERAGES


@pytest.mark.slow
def test_rescore_rewrites_the_same_scores_from_the_checkpoint(smoke_runs):
    run = smoke_runs / "runs" / REAL
    before = {s: np.load(run / f"scores_{s}.npz") for s in ("s1", "s2")}
    before = {s: {k: z[k] for k in z.files} for s, z in before.items()}
    np.savez(run / "scores_s1.npz", **{k: before["s1"][k] for k in ("uid", "verb", "noun", "action")})  # old format
    with pytest.raises(scores.ScoreFileError, match=f"python -m egolib.ensemble rescore {run}"):
        ensemble.load_run(run)
    resources = json.loads((run / "metrics.json").read_text())["resources"]
    ensemble.main(["rescore", str(run), "--no-progress"])
    after = ensemble.load_run(run)
    for split in ("s1", "s2"):
        for t in ("uid", "verb", "noun", "action", "action_pairs", "verb_label"):
            assert np.array_equal(getattr(after[split], t), before[split][t]), (split, t)
    assert json.loads((run / "metrics.json").read_text())["resources"] == resources
    mtimes = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert mtimes["DONE"] == max(mtimes.values())


@pytest.mark.slow
def test_a_gsm_run_scores_the_centre_crop_once_and_the_ablation_reads_it(smoke_runs, monkeypatch):
    run = smoke_runs / "runs" / REAL
    second = json.loads((run / "metrics.json").read_text())["protocol"]["second_crop"]
    assert second == {"crop": "centre", "files": ["scores_s1_centre.npz", "scores_s2_centre.npz"]}
    assert runs.unverified(run, second["files"]) == []  # hashed in DONE
    fresh = ensemble.rescore_split_scores(run, crop="centre", progress=False)
    monkeypatch.setattr(ensemble, "rescore_split_scores", lambda *a, **k: pytest.fail("re-scored a stored crop"))
    _, read, skipped = ensemble.protocol_ablation(smoke_runs / "runs", [REAL])
    assert skipped == []
    for split in ("s1", "s2"):
        for t in ("uid", "verb", "noun", "action"):
            assert np.array_equal(getattr(read[REAL]["centre"][split], t), getattr(fresh[split], t)), (split, t)
    data = bytearray((run / "scores_s1_centre.npz").read_bytes())
    data[-10] ^= 0xFF  # a changed byte: the file no longer verifies and the crop is scored again
    (run / "scores_s1_centre.npz").write_bytes(bytes(data))
    calls = []
    monkeypatch.setattr(ensemble, "rescore_split_scores", lambda *a, **k: calls.append(k["crop"]) or fresh)
    ensemble.protocol_ablation(smoke_runs / "runs", [REAL])
    assert calls == ["centre"]
    (run / "scores_s1_centre.npz").write_bytes(bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]))
    assert runs.unverified(run, second["files"]) == []


@pytest.mark.slow
def test_chapter_runs_at_smoke_and_writes_its_tables(smoke_runs):
    out_nb = smoke_runs / "06.ipynb"
    params = {"preset": "smoke", "runs": "runs", "config": str(ROOT / "configs" / "ensembles.yaml")}
    pm.execute_notebook(str(NOTEBOOK), str(out_nb), parameters=params, cwd=str(smoke_runs), kernel_name="python3",
                        progress_bar=False)
    out = smoke_runs / "runs" / "book" / "06_ensembles"
    table = pd.read_csv(out / "table2.csv")
    assert list(table.columns) == ["name", "setting", "task", "top1", "top5", "precision", "recall"]
    assert len(table) == (3 + 10) * 2 * 3
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {f"beats_best_member_ensemble{i}" for i in (1, 2, 3)}
    assert all(v["value"] in (0.0, 1.0) and v["unit"] and v["label"] for v in summary.values())
    for stem in ("table1", "table2_vs_report", "beats_best_member", "leave_one_out", "greedy_selection",
                 "size_curve", "averaging_and_nesting", "protocol", "disagreement_s1_action", "oracle_s1_action",
                 "s1_s2_drop"):
        assert (out / f"{stem}.csv").exists(), stem
    protocol = pd.read_csv(out / "protocol.csv")
    assert {("gsm-bninc-epic-smoke-s0", "full"), ("gsm-bninc-epic-smoke-s0", "centre")} <= set(
        zip(protocol["name"], protocol["crop"], strict=True))
    nb = nbformat.read(out_nb, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + o.get("text", "") for o in outputs)
    assert "Skipped (no `checkpoint.pt` or `config.json` in the run folder): gsm-incv3-imagenet-smoke-s0" in text
    assert "SynthKitchens smoke" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5


@pytest.mark.slow
def test_chapter_shows_the_spread_over_draws(smoke_runs):
    config = ROOT / "configs" / "ensembles.yaml"
    for name in (m.run_name("smoke", 0) for m in ensemble.load_config(config).runs()):
        twin = smoke_runs / "runs" / re.sub(r"-s0$", "-s1", name)  # a second draw scoring as the first: no spread
        twin.mkdir(exist_ok=True)
        for split in ("s1", "s2"):
            shutil.copy2(smoke_runs / "runs" / name / f"scores_{split}.npz", twin)
    out_nb = smoke_runs / "06_seeds.ipynb"
    params = {"preset": "smoke", "runs": "runs", "config": str(config), "seeds": "0,1"}
    pm.execute_notebook(str(NOTEBOOK), str(out_nb), parameters=params, cwd=str(smoke_runs), kernel_name="python3",
                        progress_bar=False)
    out = smoke_runs / "runs" / "book" / "06_ensembles"
    table = pd.read_csv(out / "table2.csv").set_index(["name", "setting", "task"])
    spread = pd.read_csv(out / "table2_spread.csv")
    spread["name"] = [n if n in table.index.get_level_values("name") else f"{n}-s0" for n in spread["name"]]
    spread = spread.set_index(["name", "setting", "task"])
    assert (spread["seeds"] == 2).all() and set(spread.index) == set(table.index)
    assert np.allclose(spread["top1_std"], 0) and np.allclose(spread["top1_mean"], table.loc[spread.index, "top1"],
                                                                atol=1e-3)
    gaps = pd.read_csv(out / "table2_differences.csv")
    assert len(gaps) and np.allclose(gaps["diff_std"], 0)
    nb = nbformat.read(out_nb, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)  # the spread figure
    with pytest.raises(pm.PapermillExecutionError, match="must start with this chapter's seed"):
        pm.execute_notebook(str(NOTEBOOK), str(out_nb), parameters={**params, "seeds": "1,0"}, cwd=str(smoke_runs),
                            kernel_name="python3", progress_bar=False)
