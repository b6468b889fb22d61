"""Efficiency: the benchmark's quick mode and JSON, the tables egolib.efficiency builds from it and from run
folders, and chapter 07 under papermill (no timing is asserted anywhere)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import papermill as pm
import pytest
import torch

from benchmarks import bench_levers
from egolib import efficiency, models
from egolib.synthetic import EPIC55_TRAIN_SEGMENTS

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "07_efficiency.ipynb"
VARIANT_FIELDS = {
    "method",
    "backbone",
    "params",
    "flops_per_clip",
    "train_flops_per_step",
    "train_step_cpu_s",
    "train_clips_per_cpu_s",
    "infer_clips_per_cpu_s",
    "train_peak_fraction",
    "train_memory_mb",
}
SUMMARY_KEYS = {"gsm_step_ratio_bninc", "gsm_step_ratio_incv3", "gsm_flop_ratio_bninc", "gsm_flop_ratio_incv3"}


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_models.py"), "--quick", "--json", str(path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GSM/TSN" in done.stdout  # the printed table
    return path


def fabricate_run(runs_root: Path, name: str, top1_action: float, batch_size: int = 4) -> Path:
    """A complete run folder as egolib.train writes it (only the files chapter 07 reads)."""
    folder = runs_root / name
    folder.mkdir(parents=True)
    split = {
        t: {"top1": top1_action + 0.1 * (t != "action"), "top5": 0.9, "precision": 0.2, "recall": 0.2}
        for t in ("verb", "noun", "action")
    }
    metrics = {
        "run": name,
        "s1": split,
        "s2": split,
        "resources": {"train_s": 120.0, "total_s": 150.0, "peak_rss_mb": 900.0},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"batch_size": batch_size}))
    pd.DataFrame({"epoch": [1, 2], "clips": [40, 40], "time_s": [50.0, 60.0]}).to_csv(folder / "log.csv", index=False)
    (folder / "DONE").write_text("done\n")
    return folder


# --------------------------------------------------------------------------------------------------
# egolib.efficiency on fabricated inputs (fast)


def small_bench() -> dict:
    variant = {
        "method": "gsm",
        "backbone": "bninc",
        "params": 2e6,
        "flops_per_clip": 1e9,
        "batch_size": 8,
        "train_flops_per_step": 24e9,
        "train_clips_per_cpu_s": 10.0,
        "infer_clips_per_cpu_s": 30.0,
        "train_gflops_per_cpu_s": 20.0,
        "train_peak_fraction": 0.2,
        "train_memory_mb": 100.0,
    }
    paper = [
        {
            "method": "gsm",
            "backbone": "bninc",
            "flops_per_clip": 60e9,
            "num_segments": 16,
            "snippet_length": 1,
            "input_size": 224,
            "epochs": 60,
        },
        {
            "method": "tsn",
            "backbone": "bninc",
            "flops_per_clip": 59.7e9,
            "num_segments": 16,
            "snippet_length": 1,
            "input_size": 224,
            "epochs": 60,
        },
    ]
    pair = {
        "backbone": "bninc",
        "width": 0.25,
        "num_segments": 8,
        "input_size": 80,
        "batch_size": 8,
        "repeats": 11,
        "step_ratio_cpu": 1.08,
        "step_ratio_cpu_paired": 1.07,
        "step_ratio_wall": 1.1,
        "flop_ratio": 1.02,
    }
    return {
        "meta": {"preset": "demo"},
        "matmul_gflops": {"cpu": 100.0},
        "variants": [variant, {**variant, "method": "tsn"}],
        "gsm_vs_tsn": [pair],
        "paper": paper,
        "scaling": [],
        "data_loading": {"skipped": "no data"},
    }


def test_paper_estimate_arithmetic_assumed_and_measured():
    bench = small_bench()
    est = efficiency.paper_estimate(bench, gpu_tflops=50.0).set_index("method")
    train_flops = 60e9 * 24e9 / (1e9 * 8)  # paper forward FLOPs x measured train/forward ratio (3x here)
    hours = 60 * EPIC55_TRAIN_SEGMENTS / (50e12 / train_flops) / 3600
    assert est.loc["gsm", "gpu_hours"] == pytest.approx(hours)
    assert "assumed 50 TFLOP/s" in est.loc["gsm", "throughput"]
    gpu = {
        "meta": {"card": "Test GPU"},
        "variants": [{"method": "gsm", "backbone": "bninc", "train_clips_per_s": 200.0}],
    }
    est = efficiency.paper_estimate(bench, gpu=gpu).set_index("method")
    assert est.loc["gsm", "gpu_hours"] == pytest.approx(60 * EPIC55_TRAIN_SEGMENTS / 200.0 / 3600)
    assert est.loc["gsm", "throughput"] == "measured on Test GPU"
    assert "assumed" in est.loc["tsn", "throughput"]  # not in the GPU file: falls back to the assumption
    twice = [{"method": "gsm", "backbone": "bninc", "pretrain": p} for p in ("imagenet", "epic")]
    est = efficiency.paper_estimate(bench, gpu_tflops=50.0, variants=twice)
    assert list(est["pretrain"]) == ["imagenet", "epic"] and est["gpu_hours"].tolist() == pytest.approx([hours] * 2)
    with pytest.raises(ValueError, match="no egoaco/res34"):
        efficiency.paper_estimate(bench, variants=[{"method": "egoaco", "backbone": "res34", "pretrain": "imagenet"}])


def test_the_gate_count_by_hand_is_the_flop_counter_s_and_the_parameter_count_s():
    """The GSMs' cost counted two ways at the paper input sizes: by hand (``gsm_gate_count``: 29 C + 2 parameters
    and 27 C H W multiply-adds per GSM and frame) and by ``torch.utils.flop_counter`` and ``count_params`` on the
    width-1 models (meta device: shapes only)."""
    for backbone in efficiency.GSM_HOSTS:
        with torch.device("meta"):
            tsn, gsm_model = (models.build_model(m, backbone, 5, 6, 7, num_segments=1, snippet_length=1, width=1.0)
                              for m in ("tsn", "gsm"))
        size = efficiency.GSM_HOSTS_INPUT[backbone]
        flops = {m: models.flops_per_clip(model, (1, 3, size, size)) for m, model in (("tsn", tsn), ("gsm", gsm_model))}
        hand = efficiency.gsm_gate_count(backbone)
        assert flops["gsm"] - flops["tsn"] == 2 * hand["macs_per_frame"], backbone  # 2 FLOPs per multiply-add
        assert models.count_params(gsm_model) - models.count_params(tsn) == hand["params"], backbone
        assert 1 < flops["gsm"] / flops["tsn"] < 1.01  # well under 1 % more arithmetic
    with pytest.raises(ValueError, match="no GSM host table for 'res34'"):
        efficiency.gsm_gate_count("res34")


def test_overhead_and_summary_keys():
    bench = small_bench()
    row = efficiency.gsm_overhead(bench).iloc[0]
    assert row["flop_ratio_paper_sizes"] == pytest.approx(60 / 59.7)
    gate_flops = 2 * 16 * sum(27 * c * side * side for c, side in efficiency.GSM_HOSTS["bninc"])  # 16 frames
    assert row["hand_count_flop_ratio_paper_sizes"] == pytest.approx(1 + gate_flops / 59.7e9)
    other_size = small_bench()
    other_size["paper"][0]["input_size"] = 112  # not the size the hosts were counted at: no hand count
    assert pd.isna(efficiency.gsm_overhead(other_size).iloc[0]["hand_count_flop_ratio_paper_sizes"])
    summary = efficiency.summary(bench)
    assert set(summary) == {"gsm_step_ratio_bninc", "gsm_flop_ratio_bninc"}
    assert summary["gsm_step_ratio_bninc"]["value"] == 1.08 and "demo sizes" in summary["gsm_step_ratio_bninc"]["label"]


def test_run_results_reads_complete_runs_and_notes_missing(tmp_path):
    variants = [
        {"method": "gsm", "backbone": "bninc", "pretrain": "epic"},
        {"method": "tsn", "backbone": "res34", "pretrain": "imagenet"},
    ]
    fabricate_run(tmp_path, "gsm-bninc-epic-demo-s0", 0.25, batch_size=8)
    table, notes = efficiency.run_results(tmp_path, variants, "demo", 0)
    assert list(table["run"]) == ["gsm-bninc-epic-demo-s0"]
    assert table.loc[0, "top1_action_s1"] == pytest.approx(25.0)
    assert table.loc[0, "s_per_step"] == pytest.approx(110.0 / 10)  # 80 clips / batch 8 = 10 steps in 110 s
    assert len(notes) == 1 and "tsn-res34-imagenet-demo-s0" in notes[0]


def test_run_folder_names_every_preset():
    variant = {"method": "gsm", "backbone": "bninc", "pretrain": "epic"}
    assert efficiency.run_folder("r", variant, "paper", 1) == Path("r") / "gsm-bninc-epic-paper-s1"
    assert efficiency.run_folder("r", variant, "demo", 0) == Path("r") / "gsm-bninc-epic-demo-s0"


def test_load_benchmark_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench_models.py --json"):
        efficiency.load_benchmark(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="missing meta"):
        efficiency.load_benchmark(tmp_path / "bad.json")


def test_chapter_is_paired_and_has_the_agreed_parameters():
    nb = nbformat.read(CHAPTER, as_version=4)
    paired = jupytext.read(CHAPTER.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in paired.cells]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    params = pm.inspect_notebook(str(CHAPTER))
    assert {"preset", "seed", "runs", "bench"} <= set(params)
    assert params["preset"]["default"] == '"demo"' and params["runs"]["default"] == '"runs"'
    assert all(p["help"] for p in params.values())


# --------------------------------------------------------------------------------------------------
# The benchmark's quick mode and the chapter (slow)


@pytest.mark.slow
def test_quick_benchmark_json_fields(quick_bench):
    bench = efficiency.load_benchmark(quick_bench)
    assert bench["meta"]["quick"] and bench["meta"]["preset"] == "smoke" and bench["meta"]["threads"] == 1
    names = {(v["method"], v["backbone"]) for v in bench["variants"]}
    assert {("gsm", "bninc"), ("gsm", "incv3"), ("tsn", "bninc"), ("tsn", "incv3"), ("egoaco", "r2p1d34")} <= names
    for v in bench["variants"]:
        assert VARIANT_FIELDS <= set(v)
        assert v["params"] > 0 and v["flops_per_clip"] > 0 and v["train_flops_per_step"] > 2 * v["flops_per_clip"]
        assert v["train_clips_per_cpu_s"] > 0 and v["train_memory_mb"] > 0
    assert {p["backbone"] for p in bench["gsm_vs_tsn"]} == {"bninc", "incv3"}
    for p in bench["gsm_vs_tsn"]:
        assert p["flop_ratio"] > 1 and p["step_ratio_cpu"] > 0 and p["repeats"] == 3
    paper = {(p["method"], p["backbone"]): p for p in bench["paper"]}
    for b in efficiency.GSM_HOSTS:  # the counter's extra FLOPs and parameters of the GSMs are the hand count's
        gsm_row, tsn_row = paper[("gsm", b)], paper[("tsn", b)]
        assert gsm_row["input_size"] == efficiency.GSM_HOSTS_INPUT[b]
        frames = gsm_row["num_segments"] * gsm_row["snippet_length"]
        hand = efficiency.gsm_gate_count(b)
        assert gsm_row["flops_per_clip"] - tsn_row["flops_per_clip"] == 2 * frames * hand["macs_per_frame"]
    assert paper[("gsm", "bninc")]["num_segments"] == 16 and paper[("gsm", "bninc")]["input_size"] == 224
    assert {s["axis"] for s in bench["scaling"]} == {"num_segments", "input_size"}
    assert bench["matmul_gflops"]["cpu"] > 0
    assert "clips_per_s" in bench["data_loading"] or "skipped" in bench["data_loading"]


@pytest.mark.slow
@pytest.mark.parametrize("with_runs", [False, True], ids=["no-runs", "fabricated-runs"])
def test_chapter_executes_at_smoke(tmp_path, quick_bench, with_runs):
    runs_root = tmp_path / "runs"
    if with_runs:
        fabricate_run(runs_root, "gsm-bninc-epic-smoke-s0", 0.3)
        fabricate_run(runs_root, "egoaco-res34-imagenet-smoke-s0", 0.2)
        levers = bench_levers.benchmark(quick=True, members=("tsn/res34",), repeats=1)
        (runs_root / "book" / "07_efficiency").mkdir(parents=True)
        (runs_root / "book" / "07_efficiency" / "levers.json").write_text(json.dumps(levers))
    out = tmp_path / "07.ipynb"
    pm.execute_notebook(
        str(CHAPTER),
        str(out),
        cwd=str(ROOT),
        progress_bar=False,
        kernel_name="python3",
        parameters={"preset": "smoke", "runs": str(runs_root), "bench": str(quick_bench)},
    )
    folder = runs_root / "book" / "07_efficiency"
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert all(set(v) == {"value", "unit", "label"} and v["value"] > 0 for v in summary.values())
    for name in ("cost.csv", "gsm_overhead.csv", "scaling.csv", "paper_estimate.csv"):
        assert len(pd.read_csv(folder / name)) > 0, name
    text = "\n".join(
        str(o.get("data", {}).get("text/markdown", ""))
        for c in nbformat.read(out, 4).cells
        for o in c.get("outputs", [])
    )
    assert ("**Levers:**" in text) == with_runs and ("No lever measurements" in text) != with_runs
    if with_runs:
        runs_table = pd.read_csv(folder / "runs.csv")
        assert set(runs_table["run"]) == {"gsm-bninc-epic-smoke-s0", "egoaco-res34-imagenet-smoke-s0"}
        assert "skipped" in text  # the other variants have no run folder
    else:
        assert not (folder / "runs.csv").exists() and "No complete run folder" in text
