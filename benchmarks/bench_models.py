"""Benchmark (not a test): what each model variant costs, measured side by side in one process.

For the Table 1 variants and the TSN baselines (``configs/variants.yaml``) plus a TSN twin of every GSM backbone:
parameters, forward FLOPs per clip, training-step and inference throughput (clips/s), achieved GFLOP/s against
a matmul peak measured in the same run, and the memory a training step holds (parameters, gradients, momentum and
the activations autograd saves, counted from the tensors themselves). Then the ratios that matter, each from
interleaved repetitions (A B B A ...), medians, CPU time as well as wall time: GSM vs TSN on the same backbone,
data loading vs the fastest model's consumption, and cost against frames and input size.

A training step is what ``egolib.train`` runs: forward, the multi-task loss, backward, gradient clipping, SGD with
momentum; contiguous memory format and fp32, as training runs on a CPU by default (``channels_last=auto``). Absolute
times on a shared machine are noise; read the ratios.

    python benchmarks/bench_models.py --json bench.json           # demo scale (+ paper-scale params/FLOPs), minutes
    python benchmarks/bench_models.py --quick --json bench.json   # smoke scale, fewer repetitions: under a minute
    python benchmarks/bench_models.py --paper-timing              # also time width-1 paper-size steps (slow on CPU)
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from egolib import models, runs  # noqa: E402
from egolib.config import RunConfig  # noqa: E402
from egolib.synthetic import EPIC55_NOUNS, EPIC55_VERBS  # noqa: E402
from egolib.synthetic_render import NOUNS, VERBS  # noqa: E402

log = logging.getLogger("bench_models")

EPIC55_ACTIONS = 2513  # distinct (verb, noun) pairs of the EPIC-55 training split (EPIC_train_action_labels.csv)
TASKS = ("verb", "noun", "action")


# --------------------------------------------------------------------------------------------------
# Timing helpers


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, dict[str, list[float]]]:
    """Run every function ``warmup`` times, then ``repeats`` rounds in alternating order (A B, B A, ...).

    Returns:
        ``{name: {"cpu": [s, ...], "wall": [s, ...]}}``, one entry per round (process CPU time and wall time).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": []} for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            c0, w0 = time.process_time(), time.perf_counter()
            fns[name]()
            times[name]["cpu"].append(time.process_time() - c0)
            times[name]["wall"].append(time.perf_counter() - w0)
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def matmul_peak(size: int = 1024, repeats: int = 5) -> dict[str, float]:
    """fp32 matmul GFLOP/s with the current thread setting: medians over repeats, per CPU second and per wall
    second (on a shared machine the CPU-time figure is the stable one)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    t = interleaved({"mm": lambda: a @ b}, repeats, warmup=2)["mm"]
    flops = 2 * size**3
    return {"cpu": flops / median(t["cpu"]) / 1e9, "wall": flops / median(t["wall"]) / 1e9, "size": size}


# --------------------------------------------------------------------------------------------------
# One variant: the model, a batch, a training step, an inference step


def run_config(method: str, backbone: str, preset: str, pretrain: str | None = None) -> RunConfig:
    """The preset's sizes for a variant (``paper`` validated with a placeholder data root: nothing is read)."""
    params: dict[str, Any] = {"method": method, "backbone": backbone, "preset": preset}
    if pretrain:
        params["pretrain"] = pretrain
    if preset == "paper":
        params["data_root"] = "EPIC_KITCHENS_2018"
    return RunConfig.from_params(params)


def classes(preset: str) -> tuple[int, int, int]:
    """Head sizes: EPIC-55 at ``paper``; SynthKitchens' vocabulary otherwise (actions: every verb-noun pair, an
    upper bound; the head is a negligible part of the cost)."""
    if preset == "paper":
        return EPIC55_VERBS, EPIC55_NOUNS, EPIC55_ACTIONS
    return len(VERBS), len(NOUNS), len(VERBS) * len(NOUNS)


def build(cfg: RunConfig) -> nn.Module:
    """The model of ``cfg`` (random weights, ``classes(cfg.preset)`` heads): the benchmark's only builder call."""
    V, N, A = classes(cfg.preset)
    return models.build_model(
        cfg.method,
        cfg.backbone,
        V,
        N,
        A,
        width=cfg.width,
        num_segments=cfg.num_segments,
        snippet_length=cfg.snippet_length,
        dropout=cfg.dropout,
        lsta_memory=cfg.lsta_memory,
        lsta_pool=cfg.lsta_pool,
        egoaco_clone=cfg.egoaco_clone,
    )


class Variant:
    """A model of ``cfg`` with an optimiser and a fixed random batch, ready to time.

    Args:
        cfg: sizes (width, T, input size, batch, LSTA sizes) of the variant.
        device: where to run.
        channels_last: channels-last weights (``models.to_channels_last``; the GPU script); the clips stay as they are.
        amp: bf16/fp16 autocast (GPU script).
    """

    def __init__(
        self, cfg: RunConfig, device: torch.device | None = None, *, channels_last: bool = False, amp: bool = False
    ):
        device = device or torch.device("cpu")
        torch.manual_seed(0)
        self.cfg, self.device, self.amp = cfg, device, amp
        V, N, A = classes(cfg.preset)
        self.model = build(cfg)
        self.model.set_stage(self.model.num_stages)  # every trained parameter trains (the last stage's cost)
        self.model.to(device)
        if channels_last:
            models.to_channels_last(self.model)  # 2D and 3D kernels
        B, L, px = cfg.batch_size, cfg.snippet_length, cfg.input_size
        self.clip_shape = (cfg.num_segments * L, 3, px, px)
        self.x = torch.randn(B, *self.clip_shape, device=device)
        self.labels = {t: torch.randint(0, n, (B,), device=device) for t, n in zip(TASKS, (V, N, A), strict=True)}
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(self.params, lr=1e-3, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
        self.autocast = torch.autocast(device.type, dtype=dtype, enabled=amp)

    def loss(self) -> Tensor:
        with self.autocast:
            out = self.model(self.x)
        B = self.x.shape[0]
        return sum(nn.functional.cross_entropy(out[t].float(), self.labels[t], reduction="sum") / B for t in TASKS)

    def train_step(self) -> None:
        """Forward, loss, backward, clip, SGD step (as ``egolib.train``'s step)."""
        self.model.train()
        loss = self.loss()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, 20.0)
        self.opt.step()
        self.sync()

    def infer_step(self) -> None:
        """Forward in eval mode, no gradients."""
        self.model.eval()
        with torch.no_grad(), self.autocast:
            self.model(self.x)
        self.sync()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_flops(self) -> int:
        """FLOPs of one training step's forward + backward (``torch.utils.flop_counter``)."""
        from torch.utils.flop_counter import FlopCounterMode

        self.model.train()
        with FlopCounterMode(display=False) as counter:
            self.loss().backward()
        self.opt.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())

    def train_memory_bytes(self) -> int:
        """Bytes a training step holds: weights + gradients + momentum of the trained parameters, all buffers and
        other parameters, and every tensor autograd saves for backward (distinct storages, counted once)."""
        seen: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            try:
                storage = t.untyped_storage()
                seen.setdefault(storage.data_ptr(), storage.nbytes())
            except (NotImplementedError, RuntimeError):
                seen.setdefault(id(t), t.numel() * t.element_size())
            return t

        self.model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self.loss()
        loss.backward()
        self.opt.zero_grad(set_to_none=True)
        weights = sum(t.numel() * t.element_size() for t in [*self.model.parameters(), *self.model.buffers()])
        trained = sum(p.numel() * p.element_size() for p in self.params)
        return int(weights + 2 * trained + sum(seen.values()))


def measure_variants(cfgs: list[RunConfig], repeats: int, peak: dict[str, float]) -> list[dict[str, Any]]:
    """Params, FLOPs, throughput and memory of each variant; the training steps of all variants interleaved
    (round r runs every variant once, in alternating order), then the inference steps, so that the rows are
    comparable with each other on a noisy machine."""
    built = [Variant(cfg) for cfg in cfgs]
    train = interleaved({str(i): v.train_step for i, v in enumerate(built)}, repeats)
    infer = interleaved({str(i): v.infer_step for i, v in enumerate(built)}, repeats)
    rows = []
    for i, v in enumerate(built):
        cfg, B = v.cfg, v.cfg.batch_size
        step_flops = v.train_flops()
        train_s, train_cpu = median(train[str(i)]["wall"]), median(train[str(i)]["cpu"])
        row = {
            "method": cfg.method,
            "backbone": cfg.backbone,
            "pretrain": cfg.pretrain,
            "preset": cfg.preset,
            "width": cfg.width,
            "num_segments": cfg.num_segments,
            "snippet_length": cfg.snippet_length,
            "input_size": cfg.input_size,
            "batch_size": B,
            "params": models.count_params(v.model),
            "flops_per_clip": models.flops_per_clip(v.model, v.clip_shape),
            "train_flops_per_step": step_flops,
            "train_step_s": train_s,
            "train_step_cpu_s": train_cpu,
            "train_clips_per_s": B / train_s,
            "train_clips_per_cpu_s": B / train_cpu,
            "infer_clips_per_s": B / median(infer[str(i)]["wall"]),
            "infer_clips_per_cpu_s": B / median(infer[str(i)]["cpu"]),
            "train_gflops_per_cpu_s": step_flops / train_cpu / 1e9,
            "train_peak_fraction": step_flops / train_cpu / 1e9 / peak["cpu"],
            "train_memory_mb": v.train_memory_bytes() / 2**20,
            "repeats": repeats,
        }
        log.info(
            "  %-10s %-8s %6.2f M params %7.3f GFLOP/clip  train %6.1f clips/CPU-s  infer %7.1f  %6.0f MiB",
            cfg.method,
            cfg.backbone,
            row["params"] / 1e6,
            row["flops_per_clip"] / 1e9,
            row["train_clips_per_cpu_s"],
            row["infer_clips_per_cpu_s"],
            row["train_memory_mb"],
        )
        rows.append(row)
    return rows


def paper_cost(cfg: RunConfig) -> dict[str, Any]:
    """Parameters and forward FLOPs per clip at the paper sizes, counted on the meta device (no arithmetic)."""
    with torch.device("meta"):
        model = build(cfg)
    shape = (cfg.num_segments * cfg.snippet_length, 3, cfg.input_size, cfg.input_size)
    try:
        flops = models.flops_per_clip(model, shape)
    except (NotImplementedError, RuntimeError) as err:  # an op without a meta kernel: count on real tensors
        log.info("  meta-device count failed for %s/%s (%s): counting on the CPU", cfg.method, cfg.backbone, err)
        model = build(cfg)
        flops = models.flops_per_clip(model, shape)
    return {
        "method": cfg.method,
        "backbone": cfg.backbone,
        "pretrain": cfg.pretrain,
        "preset": cfg.preset,
        "width": cfg.width,
        "num_segments": cfg.num_segments,
        "snippet_length": cfg.snippet_length,
        "input_size": cfg.input_size,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs + cfg.epochs_stage2 + cfg.epochs_stage3,
        "params": models.count_params(model),
        "flops_per_clip": flops,
    }


# --------------------------------------------------------------------------------------------------
# Ratios measured side by side


def gsm_vs_tsn(backbone: str, preset: str, repeats: int) -> dict[str, Any]:
    """GSM / TSN training-step time on one backbone: interleaved rounds, medians of CPU and wall time and the
    median of the per-round CPU ratios; plus the FLOP ratio."""
    pair = {m: Variant(run_config(m, backbone, preset)) for m in ("tsn", "gsm")}
    t = interleaved({m: v.train_step for m, v in pair.items()}, repeats, warmup=2)
    flops = {m: models.flops_per_clip(v.model, v.clip_shape) for m, v in pair.items()}
    row = {
        "backbone": backbone,
        "preset": preset,
        "width": pair["gsm"].cfg.width,
        "num_segments": pair["gsm"].cfg.num_segments,
        "input_size": pair["gsm"].cfg.input_size,
        "batch_size": pair["gsm"].cfg.batch_size,
        "repeats": repeats,
        "tsn_step_cpu_s": median(t["tsn"]["cpu"]),
        "gsm_step_cpu_s": median(t["gsm"]["cpu"]),
        "tsn_step_s": median(t["tsn"]["wall"]),
        "gsm_step_s": median(t["gsm"]["wall"]),
        "step_ratio_cpu": median(t["gsm"]["cpu"]) / median(t["tsn"]["cpu"]),
        "step_ratio_wall": median(t["gsm"]["wall"]) / median(t["tsn"]["wall"]),
        "step_ratio_cpu_paired": median([g / s for g, s in zip(t["gsm"]["cpu"], t["tsn"]["cpu"], strict=True)]),
        "flop_ratio": flops["gsm"] / flops["tsn"],
    }
    log.info(
        "  %-6s GSM/TSN step: CPU %.3fx (paired %.3fx), wall %.3fx; FLOPs %.4fx",
        backbone,
        row["step_ratio_cpu"],
        row["step_ratio_cpu_paired"],
        row["step_ratio_wall"],
        row["flop_ratio"],
    )
    return row


def scaling(method: str, backbone: str, preset: str, frames: list[int], sizes: list[int], repeats: int) -> list[dict]:
    """Forward FLOPs per clip and training-step time as the frames per clip or the input size grow."""
    import dataclasses

    base = run_config(method, backbone, preset)
    rows = []
    for axis, values in (("num_segments", frames), ("input_size", sizes)):
        for value in values:
            cfg = dataclasses.replace(base, **{axis: value})
            v = Variant(cfg)
            t = interleaved({"train": v.train_step}, repeats)["train"]
            rows.append(
                {
                    "axis": axis,
                    "method": method,
                    "backbone": backbone,
                    "num_segments": cfg.num_segments,
                    "input_size": cfg.input_size,
                    "batch_size": cfg.batch_size,
                    "width": cfg.width,
                    "flops_per_clip": models.flops_per_clip(v.model, v.clip_shape),
                    "train_step_s": median(t["wall"]),
                    "train_step_cpu_s": median(t["cpu"]),
                }
            )
            log.info(
                "  %s=%d: %.2f GFLOP/clip, step %.3f CPU s",
                axis,
                value,
                rows[-1]["flops_per_clip"] / 1e9,
                rows[-1]["train_step_cpu_s"],
            )
    return rows


def data_loading(preset: str, backbone: str, batches: int, data_root: str | None = None) -> dict[str, Any]:
    """Training clips/s of the real input pipeline (JPEG decoding, sampling, augmentation) with the preset's
    DataLoader workers and clip sizes, on ``data_root`` or else the SynthKitchens set of the preset when it has
    been generated."""
    import dataclasses

    from torch.utils.data import DataLoader

    from egolib import train

    cfg = run_config("gsm", backbone, preset)
    if data_root is not None:
        cfg = dataclasses.replace(cfg, data_root=data_root)
    if not (cfg.dataset_path / "annotations").is_dir():
        return {"skipped": f"no {cfg.dataset_path} (generate it with book/01_data_prep or any training run)"}
    data = train.load_data(cfg, progress=False)
    loader = DataLoader(
        train.train_dataset(cfg, data),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.num_workers,
        drop_last=True,
    )
    return {
        "dataset": str(cfg.dataset_path),
        "backbone": backbone,
        "num_workers": cfg.num_workers,
        "num_segments": cfg.num_segments,
        "input_size": cfg.input_size,
        **loader_throughput(loader, batches),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished, reaped children (DataLoader workers once shut down)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def loader_throughput(loader: Any, batches: int) -> dict[str, float]:
    """Clips/s of ``loader`` over ``batches`` batches (items ``{"clip": (B, ...)}``).

    Wall time is timed after the first batch (worker start-up and first decode outside it). CPU time counts
    this process and the loader's worker processes (their time is known once they exit): from the start of the
    iteration to the workers' shutdown, so it includes start-up and the batches prefetched but not consumed, and
    ``clips_per_cpu_s`` is a lower bound.

    Returns:
        ``clips`` (timed), ``clips_per_s`` (wall) and ``clips_per_cpu_s`` (all processes, every consumed clip).
    """
    c0 = _cpu_seconds()
    it = iter(loader)
    first = next(it)["clip"].shape[0]
    n, w0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            n += next(it)["clip"].shape[0]
        except StopIteration:
            break
    wall = time.perf_counter() - w0
    del it  # shuts the workers down and reaps them, so that their CPU time is counted
    cpu = _cpu_seconds() - c0
    return {"clips": n, "clips_per_s": n / wall, "clips_per_cpu_s": (first + n) / max(cpu, 1e-9)}


# --------------------------------------------------------------------------------------------------
# The whole benchmark


def variant_list(path: Path = ROOT / "configs" / "variants.yaml") -> list[dict[str, str]]:
    """Table 1's variants and the baselines, plus a TSN twin of every GSM backbone (the GSM/TSN pairs)."""
    data = yaml.safe_load(path.read_text())
    out = [dict(v) for v in data["variants"]] + [dict(v) for v in data.get("baselines", [])]
    for backbone in sorted({v["backbone"] for v in out if v["method"] == "gsm"}):
        twin = {"method": "tsn", "backbone": backbone, "pretrain": "imagenet"}
        if not any(v["method"] == "tsn" and v["backbone"] == backbone for v in out):
            out.append(twin)
    return out


def benchmark(
    *,
    quick: bool = False,
    repeats: int | None = None,
    pair_repeats: int | None = None,
    paper_timing: bool = False,
    threads: int = 1,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Every measurement, as one JSON-serialisable dict (see the module docstring)."""
    torch.set_num_threads(threads)
    preset = "smoke" if quick else "demo"
    repeats = repeats or (2 if quick else 5)
    pair_repeats = pair_repeats or (3 if quick else 11)
    t0 = time.perf_counter()
    peak = matmul_peak(512 if quick else 1024)
    log.info(
        "matmul peak: %.1f GFLOP per CPU second, %.1f per wall second (%d thread(s))",
        peak["cpu"],
        peak["wall"],
        threads,
    )
    todo, seen = [], set()
    for v in variant_list():
        if (v["method"], v["backbone"]) not in seen:  # the pretraining source does not change the cost
            seen.add((v["method"], v["backbone"]))
            todo.append(v)
    log.info("variants at the %s preset (%d interleaved rounds):", preset, repeats)
    rows = measure_variants(
        [run_config(v["method"], v["backbone"], preset, v["pretrain"]) for v in todo], repeats, peak
    )
    log.info("GSM vs TSN (%d interleaved rounds):", pair_repeats)
    pairs = [gsm_vs_tsn(b, preset, pair_repeats) for b in sorted({v["backbone"] for v in todo if v["method"] == "gsm"})]
    log.info("paper sizes (parameters and FLOPs counted on the meta device)")
    paper = [paper_cost(run_config(v["method"], v["backbone"], "paper", v["pretrain"])) for v in todo]
    if paper_timing:
        cfgs = [run_config(r["method"], r["backbone"], "paper", r["pretrain"]) for r in paper]
        for row, timed in zip(paper, measure_variants(cfgs, 1, peak), strict=True):
            row.update({k: w for k, w in timed.items() if k not in row})
    log.info("cost vs frames and input size (gsm/bninc):")
    frames, sizes = ([2, 4, 8], [64, 80, 96]) if quick else ([4, 8, 16], [64, 80, 112, 160])
    scale_rows = scaling("gsm", "bninc", preset, frames, sizes, repeats)
    loading = data_loading(preset, "bninc", 3 if quick else 20, data_root)
    fastest = max(rows, key=lambda r: r["train_clips_per_cpu_s"])
    if "clips_per_s" in loading:
        loading.update(
            fastest_model=f"{fastest['method']}/{fastest['backbone']}",
            fastest_model_clips_per_cpu_s=fastest["train_clips_per_cpu_s"],
            loading_over_consumption=loading["clips_per_cpu_s"] / fastest["train_clips_per_cpu_s"],
        )
    log.info("data loading: %s", loading)
    return {
        "meta": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "threads": threads,
            "device": "cpu",
            "preset": preset,
            "quick": quick,
            "repeats": repeats,
            "pair_repeats": pair_repeats,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "command": "python benchmarks/bench_models.py " + " ".join(sys.argv[1:]),
        },
        "matmul_gflops": peak,
        "variants": rows,
        "gsm_vs_tsn": pairs,
        "paper": paper,
        "scaling": scale_rows,
        "data_loading": loading,
    }


def table(result: dict[str, Any]) -> str:
    """The variants and the GSM/TSN ratios as plain-text tables (throughput per CPU second)."""
    lines = [
        f"{'method':<11}{'backbone':<9}{'params M':>9}{'GFLOP/clip':>11}{'train clip/s':>13}"
        f"{'infer clip/s':>13}{'GFLOP/s':>9}{'% peak':>8}{'mem MiB':>9}"
    ]
    for r in result["variants"]:
        lines.append(
            f"{r['method']:<11}{r['backbone']:<9}{r['params'] / 1e6:>9.2f}{r['flops_per_clip'] / 1e9:>11.3f}"
            f"{r['train_clips_per_cpu_s']:>13.1f}{r['infer_clips_per_cpu_s']:>13.1f}"
            f"{r['train_gflops_per_cpu_s']:>9.1f}{100 * r['train_peak_fraction']:>8.1f}"
            f"{r['train_memory_mb']:>9.0f}"
        )
    peak = result["matmul_gflops"]
    lines.append(
        f"(per CPU second; matmul peak {peak['cpu']:.1f} GFLOP/s, {result['meta']['threads']} thread(s), "
        f"{result['meta']['preset']} sizes)"
    )
    lines.append("")
    lines.append(
        f"{'GSM/TSN':<9}{'CPU':>8}{'paired':>8}{'wall':>8}{'FLOPs':>8}   (training step, "
        f"{result['meta']['preset']} sizes, {result['meta']['pair_repeats']} interleaved rounds)"
    )
    for p in result["gsm_vs_tsn"]:
        lines.append(
            f"{p['backbone']:<9}{p['step_ratio_cpu']:>8.3f}{p['step_ratio_cpu_paired']:>8.3f}"
            f"{p['step_ratio_wall']:>8.3f}{p['flop_ratio']:>8.4f}"
        )
    loading = result["data_loading"]
    lines.append("")
    if "clips_per_s" in loading:
        lines.append(
            f"data loading {loading['clips_per_cpu_s']:.1f} clips/CPU-s ({loading['num_workers']} workers) "
            f"vs {loading['fastest_model']} training {loading['fastest_model_clips_per_cpu_s']:.1f}"
        )
    else:
        lines.append(f"data loading: skipped ({loading['skipped']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes and fewer repetitions (the chapter's test)")
    parser.add_argument("--json", type=Path, help="write every measurement to this JSON file")
    parser.add_argument("--repeats", type=int, help="timed steps per variant (default 5, quick 2)")
    parser.add_argument("--pair-repeats", type=int, help="interleaved rounds for GSM/TSN (default 11, quick 3)")
    parser.add_argument("--paper-timing", action="store_true", help="also time one width-1 paper-size step each")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument(
        "--data-root", help="data set for the loading measurement (default: the preset's SynthKitchens)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("egolib").setLevel(logging.WARNING)
    result = benchmark(
        quick=args.quick,
        repeats=args.repeats,
        pair_repeats=args.pair_repeats,
        paper_timing=args.paper_timing,
        threads=args.threads,
        data_root=args.data_root,
    )
    print(table(result))
    if args.json:
        runs.write_json(args.json, result)
        log.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
