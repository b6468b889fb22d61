"""benchmarks/bench_models.py: the data-loading measurement counts the CPU time of the DataLoader workers."""

import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_models  # noqa: E402

CPU_PER_ITEM = 0.02  # seconds of CPU time each item costs, whatever the machine's load


class Burn(Dataset):
    """Items that each spend ``CPU_PER_ITEM`` seconds of the loading process's CPU time."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict:
        start = time.process_time()
        while time.process_time() - start < CPU_PER_ITEM:
            pass
        return {"clip": torch.zeros(2)}


def test_loader_cpu_time_includes_the_workers():
    # with one worker the main process only waits: counting its CPU time alone would report a loader far faster
    # than the CPU it costs; every item costs CPU_PER_ITEM of CPU, so no honest count exceeds 1 / CPU_PER_ITEM
    result = bench_models.loader_throughput(DataLoader(Burn(), batch_size=2, num_workers=1), batches=4)
    assert result["clips"] == 8
    assert 0 < result["clips_per_cpu_s"] <= 1 / CPU_PER_ITEM
    inline = bench_models.loader_throughput(DataLoader(Burn(), batch_size=2, num_workers=0), batches=4)
    assert 0 < inline["clips_per_cpu_s"] <= 1 / CPU_PER_ITEM
