"""benchmarks/bench_levers.py: the quick run measures every lever asked for on the book's members and nothing else,
and its JSON holds all of it (no timing is asserted; ``tests/test_channels_last.py`` checks that channels-last
weights compute what contiguous ones do)."""

from __future__ import annotations

import json

from benchmarks import bench_levers


def test_the_quick_run_reports_every_lever_asked_for():
    result = bench_levers.benchmark(quick=True, members=("tsn/res34",), repeats=1)
    (row,) = result["memory_format"]
    for side in ("contiguous", "channels_last"):
        assert row[f"train_cpu_s_per_clip_{side}"] > 0 and row[f"infer_cpu_s_per_clip_{side}"] > 0
    assert row["train_gflop_per_clip"] > 2 * row["infer_gflop_per_clip"]  # a backward costs about two forwards
    (batches,) = result["eval_batch"]
    measured = {int(k.rsplit("batch", 1)[1]) for k in batches if k.startswith("infer_cpu_s")}
    assert measured == {1, row["batch_size"], 2 * row["batch_size"]}
    assert "tsn/res34" in bench_levers.table(result)
    assert result["compile"] == [] and result["threads"] == []  # levers not asked for are not measured
    assert json.loads(json.dumps(result)) == result  # the --json file holds all of it


def test_the_members_are_the_books():
    assert set(bench_levers.MEMBERS) == {"egoaco/res34", "egoaco/res101", "egoaco/res152", "egoaco/incv3",
                                         "egoaco/r2p1d34", "gsm/bninc", "gsm/incv3", "gsm_egoaco/bninc",
                                         "gsm_egoaco/incv3", "tsn/res34"}
