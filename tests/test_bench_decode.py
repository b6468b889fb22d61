"""benchmarks/bench_decode.py: every decoder it compares gives the demo frames' pixels, and it reports a rate."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_decode  # noqa: E402


def test_decoders_agree_and_are_measured(tmp_path: Path) -> None:
    frames, source = bench_decode.demo_frames(3, tmp_path)  # no draw there: rendered in memory
    assert len(frames) == 3 and source.startswith("rendered")
    with pytest.warns(DeprecationWarning, match="image decoding and encoding capabilities of TorchVision are "
                      "deprecated"):  # the "before": why egolib moved
        result = bench_decode.measure(frames, rounds=1)
    assert set(result) == {"torchvision.io (before)", "torchcodec (after)", "PIL"}
    assert all(m["frames_per_cpu_s"] > 0 and m["frames_per_wall_s"] > 0 for m in result.values())
