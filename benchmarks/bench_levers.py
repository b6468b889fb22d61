"""Benchmark (not a test): which CPU levers make the demo's members cheaper, measured side by side in one run.

For every member of the demo book (one per method and backbone), CPU seconds per training clip and per test clip,
and the fraction of a matmul peak measured in the same run that this is, under each lever:

- memory format: contiguous (how a run trains on a CPU unless ``channels_last=on``) against channels-last (2D and
  3D convolutions), for a training step and for inference;
- the evaluation batch: inference at batch 1, the training batch, and twice it;
- ``torch.compile`` of the model (``--compile``; its compile time is reported apart, not in the per-clip cost);
- threads: one process with two threads against two processes with one thread each, training the same member
  (``--threads-check``; clips per wall second, so run it on a quiet machine).

Each comparison interleaves its sides (A B, B A, ...) and reports medians of CPU time; read the ratios, not the
absolute times, on a shared machine.

    python benchmarks/bench_levers.py --json levers.json                # demo sizes, minutes
    python benchmarks/bench_levers.py --quick --members tsn/res34       # smoke sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_models import Variant, interleaved, matmul_peak, median, run_config  # noqa: E402
from egolib import models  # noqa: E402
from egolib.config import RunConfig  # noqa: E402

log = logging.getLogger("bench_levers")



def book_members(path: Path = ROOT / "configs" / "variants.yaml") -> tuple[str, ...]:
    """The members the book trains (Table 1's variants and the baselines), one per ``method/backbone``: the
    pretraining source does not change the cost."""
    data = yaml.safe_load(path.read_text())
    found = [f"{v['method']}/{v['backbone']}" for v in [*data["variants"], *data.get("baselines", [])]]
    return tuple(dict.fromkeys(found))


MEMBERS = book_members()


def member_config(member: str, preset: str, **changes: Any) -> RunConfig:
    """The preset's sizes for ``method/backbone``, with ``changes`` (e.g. another batch size)."""
    method, backbone = member.split("/")
    cfg = run_config(method, backbone, preset)
    if not changes:
        return cfg
    return RunConfig.from_params({**{k: getattr(cfg, k) for k in ("method", "backbone", "preset")}, **changes})


def _per_clip(times: dict[str, list[float]], batch: int) -> float:
    return median(times["cpu"]) / batch


def memory_format(member: str, preset: str, repeats: int, peak: float) -> dict[str, Any]:
    """Contiguous vs channels-last: CPU seconds per training clip and per test clip (training batch)."""
    cfg = member_config(member, preset)
    B = cfg.batch_size
    plain, last = Variant(cfg), Variant(cfg)
    models.to_channels_last(last.model)
    train = interleaved({"contiguous": plain.train_step, "channels_last": last.train_step}, repeats)
    infer = interleaved({"contiguous": plain.infer_step, "channels_last": last.infer_step}, repeats)
    train_flops = plain.train_flops() / B
    infer_flops = models.flops_per_clip(plain.model, plain.clip_shape)
    row: dict[str, Any] = {"member": member, "batch_size": B, "train_gflop_per_clip": train_flops / 1e9,
                           "infer_gflop_per_clip": infer_flops / 1e9}
    for side in ("contiguous", "channels_last"):
        t, i = _per_clip(train[side], B), _per_clip(infer[side], B)
        row[f"train_cpu_s_per_clip_{side}"] = t
        row[f"infer_cpu_s_per_clip_{side}"] = i
        row[f"train_peak_fraction_{side}"] = train_flops / t / 1e9 / peak
        row[f"infer_peak_fraction_{side}"] = infer_flops / i / 1e9 / peak
    for step in ("train", "infer"):
        row[f"{step}_channels_last_speedup"] = (row[f"{step}_cpu_s_per_clip_contiguous"]
                                                / row[f"{step}_cpu_s_per_clip_channels_last"])
    return row


def eval_batch(member: str, preset: str, repeats: int) -> dict[str, Any]:
    """Inference CPU seconds per test clip at batch 1, the training batch and twice it."""
    B = member_config(member, preset).batch_size
    sizes = sorted({1, B, 2 * B})
    variants = {b: Variant(member_config(member, preset, batch_size=b)) for b in sizes}
    infer = interleaved({str(b): v.infer_step for b, v in variants.items()}, repeats)
    per_clip = {b: _per_clip(infer[str(b)], b) for b in sizes}
    return {"member": member, **{f"infer_cpu_s_per_clip_batch{b}": s for b, s in per_clip.items()},
            "best_batch": min(per_clip, key=per_clip.get), "batch1_over_best": per_clip[1] / min(per_clip.values())}


def compiled(member: str, preset: str, repeats: int) -> dict[str, Any]:
    """Eager vs ``torch.compile``d training step; the compile time apart. An error is reported, not raised."""
    cfg = member_config(member, preset)
    eager, comp = Variant(cfg), Variant(cfg)
    t0 = time.process_time()
    try:
        comp.model = torch.compile(comp.model)
        comp.train_step()  # compiles
    except Exception as e:  # noqa: BLE001 - a lever that fails is a finding, not a crash
        return {"member": member, "error": f"{type(e).__name__}: {str(e)[:200]}"}
    compile_cpu_s = time.process_time() - t0
    train = interleaved({"eager": eager.train_step, "compiled": comp.train_step}, repeats)
    B = cfg.batch_size
    e, c = _per_clip(train["eager"], B), _per_clip(train["compiled"], B)
    return {"member": member, "train_cpu_s_per_clip_eager": e, "train_cpu_s_per_clip_compiled": c,
            "compile_speedup": e / c, "compile_cpu_s": compile_cpu_s}


def _steps(member: str, preset: str, steps: int, threads: int, start: Any, out: Any) -> None:
    """Worker: ``steps`` training steps of ``member`` with ``threads`` threads, timed from the moment every worker
    is ready (``start``, a barrier); puts its wall seconds on ``out``."""
    torch.set_num_threads(threads)
    v = Variant(member_config(member, preset))
    v.train_step()  # warm-up
    start.wait()
    t0 = time.perf_counter()
    for _ in range(steps):
        v.train_step()
    out.put(time.perf_counter() - t0)


def threads_check(member: str, preset: str, steps: int) -> dict[str, Any]:
    """Training clips per wall second: one process with two threads against two processes with one thread each
    (each process trains its own copy, as two runs of the book would)."""
    ctx = mp.get_context("spawn")
    B = member_config(member, preset).batch_size
    result: dict[str, Any] = {"member": member, "steps_per_process": steps}
    for name, procs, threads in (("one_process_two_threads", 1, 2), ("two_processes_one_thread", 2, 1)):
        q, start = ctx.Queue(), ctx.Barrier(procs)
        workers = [ctx.Process(target=_steps, args=(member, preset, steps, threads, start, q)) for _ in range(procs)]
        for w in workers:
            w.start()
        walls = [q.get(timeout=3600) for _ in workers]  # a worker that died raises queue.Empty, not a hang
        for w in workers:
            w.join()
        result[f"{name}_clips_per_wall_s"] = procs * steps * B / max(walls)
    result["two_processes_over_two_threads"] = (result["two_processes_one_thread_clips_per_wall_s"]
                                                / result["one_process_two_threads_clips_per_wall_s"])
    return result


def benchmark(*, quick: bool = False, members: tuple[str, ...] = MEMBERS, repeats: int | None = None,
              compile_: bool = False, threads: bool = False) -> dict[str, Any]:
    """Every measurement, as one JSON-serialisable dict (one thread for all but the threads check)."""
    torch.set_num_threads(1)
    preset = "smoke" if quick else "demo"
    repeats = repeats or (2 if quick else 5)
    t0 = time.perf_counter()
    peak = matmul_peak(512 if quick else 1024)["cpu"]
    log.info("matmul peak: %.1f GFLOP per CPU second (1 thread)", peak)
    out: dict[str, Any] = {"meta": {"preset": preset, "repeats": repeats, "torch": torch.__version__,
                                    "matmul_gflops_per_cpu_s": peak,
                                    "command": "python benchmarks/bench_levers.py " + " ".join(sys.argv[1:])},
                           "memory_format": [], "eval_batch": [], "compile": [], "threads": []}
    for m in members:
        row = memory_format(m, preset, repeats, peak)
        log.info("  %-17s train %.4f CPU-s/clip (%.0f %% of peak), channels-last x%.2f; test %.4f, x%.2f", m,
                 row["train_cpu_s_per_clip_contiguous"], 100 * row["train_peak_fraction_contiguous"],
                 row["train_channels_last_speedup"], row["infer_cpu_s_per_clip_contiguous"],
                 row["infer_channels_last_speedup"])
        out["memory_format"].append(row)
        out["eval_batch"].append(eval_batch(m, preset, repeats))
        if compile_:
            out["compile"].append(compiled(m, preset, repeats))
    if threads:
        out["threads"].append(threads_check(members[0], preset, 2 if quick else 6))
    out["meta"]["seconds"] = time.perf_counter() - t0
    return out


def table(result: dict[str, Any]) -> str:
    """Per member: CPU-s per clip and % of the matmul peak, contiguous / channels-last, and the best eval batch."""
    batches = {r["member"]: r for r in result["eval_batch"]}
    lines = [f"{'member':<18}{'train s/clip':>13}{'% peak':>8}{'ch-last':>8}{'test s/clip':>12}{'% peak':>8}"
             f"{'ch-last':>8}{'best batch':>11}{'b1/best':>8}"]
    for r in result["memory_format"]:
        b = batches[r["member"]]
        lines.append(f"{r['member']:<18}{r['train_cpu_s_per_clip_contiguous']:>13.4f}"
                     f"{100 * r['train_peak_fraction_contiguous']:>8.1f}{r['train_channels_last_speedup']:>8.2f}"
                     f"{r['infer_cpu_s_per_clip_contiguous']:>12.4f}{100 * r['infer_peak_fraction_contiguous']:>8.1f}"
                     f"{r['infer_channels_last_speedup']:>8.2f}{b['best_batch']:>11}{b['batch1_over_best']:>8.2f}")
    for r in result["compile"]:
        lines.append(f"compile {r['member']}: " + (r["error"] if "error" in r else
                     f"x{r['compile_speedup']:.2f} per training clip, {r['compile_cpu_s']:.0f} CPU-s to compile"))
    for r in result["threads"]:
        lines.append(f"threads {r['member']}: two 1-thread processes give x{r['two_processes_over_two_threads']:.2f} "
                     "the clips per wall second of one 2-thread process")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes, fewer repetitions")
    parser.add_argument("--members", default=",".join(MEMBERS), help="comma-separated method/backbone")
    parser.add_argument("--repeats", type=int, help="interleaved rounds per comparison (default 5, quick 2)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--threads-check", action="store_true",
                        help="also compare one 2-thread process with two 1-thread processes (quiet machine)")
    parser.add_argument("--json", type=Path, help="write every measurement to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    members = tuple(m.strip() for m in args.members.split(",") if m.strip())
    unknown = [m for m in members if m not in MEMBERS]
    if not members:
        parser.error(f"--members is empty; choose from {', '.join(MEMBERS)}")
    if unknown:
        parser.error(f"unknown member(s) {', '.join(unknown)}; choose from {', '.join(MEMBERS)}")
    result = benchmark(quick=args.quick, members=members, repeats=args.repeats, compile_=args.compile,
                       threads=args.threads_check)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
