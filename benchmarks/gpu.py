"""Benchmark (not a test): the model variants on a CUDA GPU, with AMP and channels-last, in about five minutes.

The same measurements as ``bench_models.py`` at the paper's input sizes (width 1, 16 or 20 frames, 224/229/112 px,
the paper's batch sizes): training and inference clips/s, peak GPU memory, GSM/TSN step-time ratios from
interleaved rounds; and, when two GPUs are present, one GSM training step under 2-process DDP (NCCL) against the
same step on one GPU. On a machine without CUDA it says so and exits with status 0.

    python benchmarks/gpu.py                    # all variants, 5 timed steps each
    python benchmarks/gpu.py --json gpu.json --repeats 3
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_models import Variant, interleaved, median, run_config, variant_list  # noqa: E402

log = logging.getLogger("gpu")


def measure(method: str, backbone: str, pretrain: str, repeats: int, device: torch.device) -> dict[str, Any]:
    """Training and inference clips/s and peak memory of one variant at the paper sizes (AMP, channels-last)."""
    cfg = run_config(method, backbone, "paper", pretrain)
    torch.cuda.reset_peak_memory_stats(device)
    v = Variant(cfg, device, channels_last=True, amp=True)
    t = interleaved({"train": v.train_step, "infer": v.infer_step}, repeats, warmup=2)
    B = cfg.batch_size
    row = {
        "method": method,
        "backbone": backbone,
        "num_segments": cfg.num_segments,
        "input_size": cfg.input_size,
        "batch_size": B,
        "train_step_s": median(t["train"]["wall"]),
        "train_clips_per_s": B / median(t["train"]["wall"]),
        "infer_clips_per_s": B / median(t["infer"]["wall"]),
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
    }
    del v
    torch.cuda.empty_cache()
    return row


def gsm_vs_tsn(backbone: str, repeats: int, device: torch.device) -> dict[str, Any]:
    """GSM / TSN training-step wall time on the GPU (interleaved rounds, medians)."""
    pair = {m: Variant(run_config(m, backbone, "paper"), device, channels_last=True, amp=True) for m in ("tsn", "gsm")}
    t = interleaved({m: v.train_step for m, v in pair.items()}, repeats, warmup=2)
    ratio = median(t["gsm"]["wall"]) / median(t["tsn"]["wall"])
    del pair
    torch.cuda.empty_cache()
    return {"backbone": backbone, "step_ratio_wall": ratio, "repeats": repeats}


def _ddp_worker(rank: int, world: int, repeats: int, out: Any) -> None:
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl", rank=rank, world_size=world)
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    v = Variant(run_config("gsm", "bninc", "paper"), device, channels_last=True, amp=True)
    v.model = torch.nn.parallel.DistributedDataParallel(v.model, device_ids=[rank])
    t = interleaved({"step": v.train_step}, repeats, warmup=2)["step"]["wall"]
    if rank == 0:
        out.put(median(t))
    dist.destroy_process_group()


def ddp_step(repeats: int) -> dict[str, Any]:
    """A GSM/BN-Inception training step (per-process batch = the paper batch) on 2 GPUs under DDP."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, repeats, queue), nprocs=2, start_method="spawn")
    step = queue.get()
    single = measure("gsm", "bninc", "epic", repeats, torch.device("cuda", 0))
    return {
        "model": "gsm/bninc",
        "world_size": 2,
        "step_s": step,
        "clips_per_s": 2 * single["batch_size"] / step,
        "one_gpu_clips_per_s": single["train_clips_per_s"],
        "scaling_efficiency": (2 * single["batch_size"] / step) / (2 * single["train_clips_per_s"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("egolib").setLevel(logging.WARNING)
    if not torch.cuda.is_available():
        print("no CUDA device is present: the GPU benchmark has nothing to measure on this machine (exit 0)")
        return 0
    device = torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    card = torch.cuda.get_device_name(device)
    log.info("%s, %d GPU(s), torch %s", card, torch.cuda.device_count(), torch.__version__)
    rows, seen = [], set()
    for v in variant_list():
        if (v["method"], v["backbone"]) in seen:
            continue
        seen.add((v["method"], v["backbone"]))
        rows.append(measure(v["method"], v["backbone"], v["pretrain"], args.repeats, device))
        r = rows[-1]
        log.info("  %-10s %-8s train %7.1f clips/s  infer %8.1f clips/s  %7.0f MiB", r["method"], r["backbone"],
                 r["train_clips_per_s"], r["infer_clips_per_s"], r["peak_memory_mb"])  # fmt: skip
    pairs = [gsm_vs_tsn(b, 2 * args.repeats + 1, device) for b in ("bninc", "incv3")]
    for p in pairs:
        log.info("  GSM/TSN %s: %.3fx (training step, wall)", p["backbone"], p["step_ratio_wall"])
    ddp = ddp_step(args.repeats) if torch.cuda.device_count() >= 2 else {"skipped": "fewer than two GPUs"}
    log.info("  DDP: %s", ddp)
    result = {
        "meta": {"card": card, "gpus": torch.cuda.device_count(), "torch": torch.__version__, "amp": True,
                 "channels_last": True, "seconds": time.perf_counter() - t0},
        "variants": rows,
        "gsm_vs_tsn": pairs,
        "ddp": ddp,
    }  # fmt: skip
    print(f"{'method':<11}{'backbone':<9}{'train clip/s':>13}{'infer clip/s':>13}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['method']:<11}{r['backbone']:<9}{r['train_clips_per_s']:>13.1f}{r['infer_clips_per_s']:>13.1f}"
              f"{r['peak_memory_mb']:>10.0f}")  # fmt: skip
    if args.json:
        from egolib import runs

        runs.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
