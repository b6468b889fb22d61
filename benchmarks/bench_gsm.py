"""Benchmark (not a test): the GSM gate-path implementations side by side, forward + backward, in one run.

Reports the median time of each variant and its ratio to the reference-style implementation measured in the same
run (absolute times on a shared machine are noise; read the ratios). All variants are checked
to give the same output first.

    python benchmarks/bench_gsm.py                       # C=256 at 14x14 and C=64 at 28x28, T=8, 4 videos
    python benchmarks/bench_gsm.py --channels 32 --size 28 --repeats 15
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from egolib.gsm import GateShift, reference_gate_shift

log = logging.getLogger("bench_gsm")


def time_fwd_bwd(fn: Callable[[Tensor], Tensor], x: Tensor, repeats: int) -> list[float]:
    times = []
    for i in range(repeats + 2):
        xi = x.detach().requires_grad_(True)
        t0 = time.perf_counter()
        fn(xi).sum().backward()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    return times


def bench(channels: int, size: int, T: int, videos: int, repeats: int) -> None:
    torch.manual_seed(0)
    gsm = GateShift(channels, T)
    with torch.no_grad():
        gsm.conv3D.weight.normal_(0, 0.05)  # non-zero gate: all paths do real work
    x = torch.randn(videos * T, channels, size, size)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def ours(impl: str) -> Callable[[Tensor], Tensor]:
        def fn(inp: Tensor) -> Tensor:
            gsm.gate_impl = impl
            return gsm(inp)

        return fn

    variants = {
        "reference-style (NCTHW conv3d)": (lambda inp: reference_gate_shift(gsm, inp), x),
        "GateShift conv3d, contiguous": (ours("conv3d"), x),
        "GateShift conv3d, channels_last(3d)": (ours("conv3d"), x_cl),
        "GateShift conv2d, contiguous": (ours("conv2d"), x),
        "GateShift conv2d, channels_last": (ours("conv2d"), x_cl),
    }
    with torch.no_grad():
        ref = reference_gate_shift(gsm, x)
        for name, (fn, inp) in variants.items():
            torch.testing.assert_close(fn(inp), ref, rtol=1e-4, atol=1e-4, msg=f"{name} differs")
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    medians = {name: statistics.median(time_fwd_bwd(fn, inp, repeats)) for name, (fn, inp) in variants.items()}
    conv_ms = statistics.median(time_fwd_bwd(conv, x_cl, repeats))
    base = medians["reference-style (NCTHW conv3d)"]
    log.info("C=%d, %dx%d, T=%d, %d videos, fwd+bwd, median of %d", channels, size, size, T, videos, repeats)
    log.info("  %-38s %9s %14s %14s", "variant", "ms", "vs reference", "vs 3x3 conv")
    for name, t in medians.items():
        log.info("  %-38s %9.1f %13.2fx %13.2fx", name, t * 1e3, base / t, t / conv_ms)
    log.info("  %-38s %9.1f", f"(the {channels}->{channels} 3x3 conv beside it)", conv_ms * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="*", default=[256, 64])
    parser.add_argument("--size", type=int, nargs="*", default=[14, 28])
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("torch %s, %d threads", torch.__version__, torch.get_num_threads())
    sizes = args.size if len(args.size) == len(args.channels) else args.size[:1] * len(args.channels)
    for channels, size in zip(args.channels, sizes, strict=True):
        bench(channels, size, args.segments, args.videos, args.repeats)


if __name__ == "__main__":
    main()
