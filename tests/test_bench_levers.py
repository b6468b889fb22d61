"""benchmarks/bench_levers.py: channels-last weights (``models.to_channels_last``) compute what contiguous ones
do, and the quick run reports every lever's per-clip cost with ratios that follow from it (no timing asserted)."""

from __future__ import annotations

import json

import torch

from benchmarks import bench_levers
from benchmarks.bench_models import Variant
from egolib import models


def test_channels_last_weights_give_the_same_outputs_for_2d_and_3d_members():
    for member in ("tsn/res34", "egoaco/r2p1d34"):
        v = Variant(bench_levers.member_config(member, "smoke"))
        v.model.eval()
        with torch.no_grad():
            before = v.model(v.x)
            models.to_channels_last(v.model)
            after = v.model(v.x)
        kernels = [p for p in v.model.parameters() if p.dim() in (4, 5)]
        assert kernels and all(p.is_contiguous(memory_format=torch.channels_last if p.dim() == 4
                                               else torch.channels_last_3d) for p in kernels)
        assert any(not p.is_contiguous() for p in kernels)  # the layout really changed
        for task in before:
            torch.testing.assert_close(after[task], before[task], rtol=1e-4, atol=1e-4)


def test_the_quick_run_reports_every_lever_and_consistent_ratios():
    result = bench_levers.benchmark(quick=True, members=("tsn/res34",), repeats=1)
    (row,) = result["memory_format"]
    for side in ("contiguous", "channels_last"):
        assert row[f"train_cpu_s_per_clip_{side}"] > 0 and row[f"infer_cpu_s_per_clip_{side}"] > 0
        assert 0 < row[f"train_peak_fraction_{side}"]
    assert row["train_channels_last_speedup"] == (row["train_cpu_s_per_clip_contiguous"]
                                                   / row["train_cpu_s_per_clip_channels_last"])
    (batches,) = result["eval_batch"]
    per_clip = {int(k.rsplit("batch", 1)[1]): v for k, v in batches.items() if k.startswith("infer_cpu_s")}
    assert 1 in per_clip and batches["best_batch"] == min(per_clip, key=per_clip.get)
    assert "tsn/res34" in bench_levers.table(result)
    assert result["compile"] == [] and result["threads"] == []  # levers not asked for are not measured
    assert json.loads(json.dumps(result)) == result  # the --json file holds all of it


def test_the_members_are_the_books():
    assert set(bench_levers.MEMBERS) == {"egoaco/res34", "egoaco/res101", "egoaco/res152", "egoaco/incv3",
                                         "egoaco/r2p1d34", "gsm/bninc", "gsm/incv3", "gsm_egoaco/bninc",
                                         "gsm_egoaco/incv3", "tsn/res34"}
