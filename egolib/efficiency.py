"""What the variants cost: the benchmark JSON and the run folders turned into tables (chapter 07).

Sources, each read as it is:

* ``benchmarks/bench_models.py --json``: per-variant parameters, FLOPs, throughput and memory; GSM/TSN
  training-step ratios; cost against frames and input size; paper-size parameters and FLOPs.
* ``benchmarks/gpu.py --json`` (optional): measured GPU training throughput at the paper sizes.
* run folders ``<runs>/<method>-<backbone>-<pretrain>-<preset>-s<seed>/``: ``metrics.json`` (test metrics and
  ``resources``: training seconds, total seconds, peak RSS), ``config.json`` (batch size, epochs) and ``log.csv``
  (seconds and clips per epoch).

The paper-preset cost is an estimate: measured (or assumed) training throughput times the report's epochs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from egolib.ensemble import Member
from egolib.synthetic import EPIC55_TRAIN_SEGMENTS

ROOT = Path(__file__).resolve().parent.parent
BENCH_SCRIPT = ROOT / "benchmarks" / "bench_models.py"
BENCH_KEYS = ("meta", "matmul_gflops", "variants", "gsm_vs_tsn", "paper", "scaling", "data_loading")

# Where each GSM sits at the paper input sizes, counted here by hand from the two architectures: (C, side), the
# output channels of the convolution that hosts the GSM and the side of its square feature map.
# BN-Inception at 224 px: inception 3a-3c at 28 (= 224 / 8), 4a-4e at 14, 5a-5b at 7.
# InceptionV3 at 229 px (stem: 3x3/2, two 3x3, 3x3/2 pool, 1x1, 3x3, 3x3/2 pool -> 26; each reduction block
# (x - 3) // 2 + 1 -> 12 -> 5): Mixed_5b-5d and 6a at 26, 6b, 6c, 6e and 7a at 12 (no GSM in 6d, as the released
# code), 7b-7c at 5.
GSM_HOSTS = {
    "bninc": ((64, 28), (64, 28), (128, 28), (224, 14), (192, 14), (160, 14), (96, 14), (128, 14), (352, 7), (352, 7)),
    "incv3": ((64, 26),) * 4 + ((192, 12),) * 4 + ((320, 5),) * 2,
}
GSM_HOSTS_INPUT = {"bninc": 224, "incv3": 229}  # the input size (px) GSM_HOSTS is counted at


def gsm_gate_count(backbone: str) -> dict[str, int]:
    """The GSMs' own parameters and multiply-adds per frame, counted by hand from ``GSM_HOSTS``.

    A GSM on C channels has a BN3d (2 C parameters) and a 3x3x3 gate convolution in two groups, each from C/2
    channels to one gate (2 x 27 x C/2 = 27 C weights, 2 biases): 29 C + 2 parameters, and 27 C multiply-adds per
    position of its H x W map (the element-wise gating is not a multiply-add of a convolution and is not counted).

    Returns:
        ``{"params": ..., "macs_per_frame": ...}`` at ``GSM_HOSTS_INPUT[backbone]`` px.
    """
    if backbone not in GSM_HOSTS:
        raise ValueError(f"no GSM host table for {backbone!r}; counted by hand: {', '.join(GSM_HOSTS)}")
    hosts = GSM_HOSTS[backbone]
    return {"params": sum(29 * c + 2 for c, _ in hosts), "macs_per_frame": sum(27 * c * s * s for c, s in hosts)}


# --------------------------------------------------------------------------------------------------
# The benchmark JSON


def load_benchmark(path: str | Path) -> dict[str, Any]:
    """Read a ``bench_models.py`` JSON file.

    Raises:
        FileNotFoundError: no such file (says how to make one).
        ValueError: the file lacks one of ``BENCH_KEYS``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark file {path}: run python benchmarks/bench_models.py --json {path}")
    bench = json.loads(path.read_text())
    missing = [k for k in BENCH_KEYS if k not in bench]
    if missing:
        raise ValueError(f"{path} is not a bench_models.py result (missing {', '.join(missing)}); run it again")
    return bench


def ensure_benchmark(path: str | Path, *, quick: bool) -> dict[str, Any]:
    """``load_benchmark(path)``, running ``bench_models.py`` first (``--quick`` when asked) if the file is missing."""
    path = Path(path)
    if not path.is_file():
        cmd = [sys.executable, str(BENCH_SCRIPT), "--json", str(path), *(["--quick"] if quick else [])]
        subprocess.run(cmd, check=True, cwd=ROOT)
    return load_benchmark(path)


def variant_costs(bench: dict[str, Any]) -> pd.DataFrame:
    """One row per variant: parameters (M), GFLOP per clip, clips/s (per CPU second), share of the matmul peak,
    training memory (MiB), at the benchmark's sizes."""
    df = pd.DataFrame(bench["variants"])
    return pd.DataFrame(
        {
            "method": df["method"],
            "backbone": df["backbone"],
            "params_M": df["params"] / 1e6,
            "gflops_per_clip": df["flops_per_clip"] / 1e9,
            "train_clips_per_s": df["train_clips_per_cpu_s"],
            "infer_clips_per_s": df["infer_clips_per_cpu_s"],
            "train_gflops_per_s": df["train_gflops_per_cpu_s"],
            "peak_fraction": df["train_peak_fraction"],
            "train_memory_mb": df["train_memory_mb"],
        }
    )


def gsm_overhead(bench: dict[str, Any]) -> pd.DataFrame:
    """GSM vs TSN per backbone: measured training-step ratios and FLOP ratio at the benchmark's sizes, the FLOP
    ratio at the paper sizes (both counted here by ``torch.utils.flop_counter``), and at the paper sizes the ratio
    with the GSMs' multiply-adds counted here by hand (``gsm_gate_count``) added to TSN's count."""
    paper = {(r["method"], r["backbone"]): r["flops_per_clip"] for r in bench["paper"]}
    frames = {r["backbone"]: r["num_segments"] * r["snippet_length"] for r in bench["paper"]  # at the hand count's size
              if r["method"] == "gsm" and r["input_size"] == GSM_HOSTS_INPUT.get(r["backbone"])}
    rows = []
    for p in bench["gsm_vs_tsn"]:
        b = p["backbone"]
        tsn_paper, gsm_paper = paper.get(("tsn", b)), paper.get(("gsm", b))
        rows.append(
            {
                "backbone": b,
                "sizes": f"width {p['width']:g}, {p['num_segments']} frames, {p['input_size']} px, "
                f"batch {p['batch_size']}",
                "step_ratio_cpu": p["step_ratio_cpu"],
                "step_ratio_cpu_paired": p["step_ratio_cpu_paired"],
                "step_ratio_wall": p["step_ratio_wall"],
                "flop_ratio": p["flop_ratio"],
                "flop_ratio_paper_sizes": gsm_paper / tsn_paper if tsn_paper and gsm_paper else float("nan"),
                "hand_count_flop_ratio_paper_sizes": (
                    1 + 2 * frames[b] * gsm_gate_count(b)["macs_per_frame"] / tsn_paper
                    if tsn_paper and b in frames else float("nan")),
                "rounds": p["repeats"],
            }
        )
    return pd.DataFrame(rows)


def scaling(bench: dict[str, Any]) -> pd.DataFrame:
    """Cost against frames per clip and input size (one model), GFLOP per clip and seconds per training step."""
    df = pd.DataFrame(bench["scaling"])
    df["gflops_per_clip"] = df["flops_per_clip"] / 1e9
    return df


def summary(bench: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Chapter 07's headline numbers: ``gsm_step_ratio_<backbone>`` and ``gsm_flop_ratio_<backbone>``."""
    out = {}
    for p in bench["gsm_vs_tsn"]:
        b, sizes = p["backbone"], f"{bench['meta']['preset']} sizes"
        out[f"gsm_step_ratio_{b}"] = {
            "value": float(p["step_ratio_cpu"]),
            "unit": "x",
            "label": (f"GSM/TSN training-step CPU time, {b}, {sizes} (median of {p['repeats']} interleaved rounds)"),
        }
        out[f"gsm_flop_ratio_{b}"] = {
            "value": float(p["flop_ratio"]),
            "unit": "x",
            "label": f"GSM/TSN forward FLOPs per clip, {b}, {sizes}",
        }
    return out


# --------------------------------------------------------------------------------------------------
# Run folders


def run_folder(runs_root: str | Path, variant: dict[str, str], preset: str, seed: int,
               dataset: str = "epic55", data_root: str | None = None) -> Path:
    """``<runs_root>/<method>-<backbone>-<pretrain>-<preset>[-<dataset>]-s<seed>[-data=<hash>]``
    (``RunConfig.name``)."""
    member = Member(method=variant["method"], backbone=variant["backbone"], pretrain=variant["pretrain"])
    return Path(runs_root) / member.run_name(preset, seed, dataset, data_root)


# The labelled splits of a run's metrics.json and where their top-1 sits: EPIC-55 S1/S2 (``s1.<task>.top1``),
# EPIC-100 validation (``validation.overall.<task>.top1``).
LABELLED_SPLITS = {"epic55": ("s1", "s2"), "epic100": ("validation",)}


def top1(metrics: dict[str, Any], split: str, task: str) -> float:
    """Top-1 (%) of ``task`` on ``split`` from a run's ``metrics.json``; NaN when the split has no metrics."""
    if split not in metrics:
        return float("nan")
    m = metrics[split].get("overall", metrics[split])  # EPIC-100 keeps its all-segments accuracy under "overall"
    return 100 * m[task]["top1"]


def run_results(
    runs_root: str | Path,
    variants: list[dict[str, str]],
    preset: str,
    seed: int,
    dataset: str = "epic55",
    data_root: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Test accuracy and training cost of each complete run folder (``DONE`` present).

    Returns:
        ``(table, notes)``: one row per complete run (top-1 % per labelled split and task, ``top1_<task>_<split>``
        for ``LABELLED_SPLITS[dataset]``; training seconds, seconds per optimiser step and per clip from
        ``log.csv``, peak RSS) and a note for each variant skipped.
    """
    rows, notes = [], []
    for v in variants:
        folder = run_folder(runs_root, v, preset, seed, dataset, data_root)
        if not (folder / "DONE").is_file():
            notes.append(f"{folder.name}: no complete run folder (no DONE) - skipped")
            continue
        metrics = json.loads((folder / "metrics.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        row: dict[str, Any] = {
            "run": folder.name,
            "method": v["method"],
            "backbone": v["backbone"],
            "pretrain": v["pretrain"],
        }
        for split in LABELLED_SPLITS[dataset]:
            for task in ("verb", "noun", "action"):
                row[f"top1_{task}_{split}"] = top1(metrics, split, task)
        resources = metrics.get("resources", {})
        row.update(
            train_s=resources.get("train_s", float("nan")),
            total_s=resources.get("total_s", float("nan")),
            peak_rss_mb=resources.get("peak_rss_mb", float("nan")),
        )
        log_path = folder / "log.csv"
        if log_path.is_file():
            log = pd.read_csv(log_path)
            steps = (log["clips"] // config["batch_size"]).sum()
            row.update(
                epochs=len(log),
                epoch_s=log["time_s"].sum(),
                clips=int(log["clips"].sum()),
                s_per_step=log["time_s"].sum() / max(steps, 1),
                s_per_clip=log["time_s"].sum() / max(log["clips"].sum(), 1),
            )
        else:
            notes.append(f"{folder.name}: no log.csv - no per-step cost")
        rows.append(row)
    return pd.DataFrame(rows), notes


# --------------------------------------------------------------------------------------------------
# The paper preset, estimated


def paper_estimate(
    bench: dict[str, Any],
    *,
    gpu: dict[str, Any] | None = None,
    gpu_tflops: float = 100.0,
    train_clips: int = EPIC55_TRAIN_SEGMENTS,
    variants: list[dict[str, str]] | None = None,
) -> pd.DataFrame:
    """GPU-hours to train each variant at the paper preset: an estimate.

    One row per entry of ``variants`` (e.g. ``egolib.book.variants()``: GSM InceptionV3 is trained twice, from
    ImageNet and from EPIC weights), or per model of the benchmark's paper list when None.

    Clips to process = the report's epochs (all stages) x ``train_clips``. Throughput: the GPU benchmark's measured
    training clips/s when ``gpu`` holds the variant; otherwise ``gpu_tflops`` sustained TFLOP/s applied to the
    training FLOPs per clip, i.e. the paper-size forward FLOPs times the training/forward FLOP ratio measured at
    the benchmark's sizes (every stage priced at the last stage's cost: an upper bound for EgoACO, whose early
    stages freeze the trunk).
    """
    measured = {(r["method"], r["backbone"]): r["train_clips_per_s"] for r in (gpu or {}).get("variants", [])}
    train_over_fwd = {
        (r["method"], r["backbone"]): r["train_flops_per_step"] / (r["flops_per_clip"] * r["batch_size"])
        for r in bench["variants"]
    }
    paper = {(p["method"], p["backbone"]): p for p in bench["paper"]}
    wanted = variants if variants is not None else [{**p, "pretrain": p.get("pretrain")} for p in bench["paper"]]
    rows = []
    for v in wanted:
        key = (v["method"], v["backbone"])
        if key not in paper or key not in train_over_fwd:
            raise ValueError(f"the benchmark has no {key[0]}/{key[1]}: run benchmarks/bench_models.py again")
        p = paper[key]
        clips = p["epochs"] * train_clips
        train_flops = p["flops_per_clip"] * train_over_fwd[key]
        if key in measured:
            clips_per_s, source = measured[key], f"measured on {gpu['meta']['card']}"
        else:
            clips_per_s, source = gpu_tflops * 1e12 / train_flops, f"assumed {gpu_tflops:g} TFLOP/s sustained"
        rows.append(
            {
                "method": v["method"],
                "backbone": v["backbone"],
                "pretrain": v["pretrain"],
                "frames": p["num_segments"] * p["snippet_length"],
                "input_size": p["input_size"],
                "epochs": p["epochs"],
                "gflops_per_clip": p["flops_per_clip"] / 1e9,
                "train_gflops_per_clip": train_flops / 1e9,
                "clips_per_s": clips_per_s,
                "gpu_hours": clips / clips_per_s / 3600,
                "throughput": source,
            }
        )
    return pd.DataFrame(rows)
