"""Benchmark (not a test): JPEG frame decoding, frames per CPU-second, before and after the move to TorchCodec.

Side by side in one process, on the same frames, one thread, interleaved rounds (A B C, C B A, ...), medians:

- ``torchvision.io`` (before): ``torchvision.io.decode_jpeg`` as ``egolib.epic`` called it until torchvision 0.29
  deprecated its image decoders;
- ``torchcodec`` (after): ``egolib.epic.decode_frame``, TorchCodec's ``decode_jpeg`` with egolib's error naming;
- ``PIL``: Pillow's decoder to a tensor, the other maintained decoder egolib already depends on.

The frames are the demo draw's (SynthKitchens at 228x128): read from ``--data-root`` when it holds the draw
(``data/synthkitchens-demo-s0`` by default), else rendered in memory (the first video of the same draw).
Frames per CPU-second is the number that counts on a shared machine: a DataLoader worker spends its own CPU.

    python benchmarks/bench_decode.py                  # 400 frames, 7 rounds: about a minute of CPU
    python benchmarks/bench_decode.py --frames 100 --rounds 3 --json decode.json
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from egolib import epic, runs, synthetic  # noqa: E402

log = logging.getLogger("bench_decode")


def demo_frames(count: int, data_root: Path) -> tuple[list[bytes], str]:
    """``count`` JPEG frames of the demo draw and where they came from."""
    files = sorted((data_root / "frames_rgb_flow" / "rgb" / "train").glob("*/*/frame_*.jpg"))[:count]
    if len(files) == count:
        return [f.read_bytes() for f in files], str(data_root)
    size = synthetic.preset_size("demo")
    video = synthetic.plan_dataset("demo", 0)[0]
    kitchen = synthetic.kitchen_look(0, int(video.participant[1:]) - 1)
    frames = itertools.islice(synthetic.render_video(video, kitchen, size, 0), count)
    return [synthetic.jpeg_bytes(img) for _, img, _, _ in frames], f"rendered: {video.video_id}, demo draw s0"


def torchvision_decode(data: bytes) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg  # deprecated since torchvision 0.29: the "before"

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def pil_decode(data: bytes) -> torch.Tensor:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


DECODERS: dict[str, Callable[[bytes], torch.Tensor]] = {
    "torchvision.io (before)": torchvision_decode,
    "torchcodec (after)": lambda data: epic.decode_frame(data, "bench", "0"),
    "PIL": pil_decode,
}


def measure(frames: list[bytes], rounds: int) -> dict[str, dict[str, float]]:
    """Frames per CPU-second and per wall-second of each decoder: the median over ``rounds`` interleaved rounds."""
    reference = DECODERS["torchcodec (after)"](frames[0])
    for name, decode in DECODERS.items():  # the same pixels (up to IDCT rounding), and a warm-up
        diff = (decode(frames[0]).int() - reference.int()).abs().max().item()
        assert decode(frames[0]).shape == reference.shape and diff <= 4, f"{name} decodes another picture ({diff})"
    times: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in DECODERS}
    names = list(DECODERS)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            decode = DECODERS[name]
            cpu, wall = time.process_time(), time.perf_counter()
            for data in frames:
                decode(data)
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return {name: {"frames_per_cpu_s": len(frames) / statistics.median(t["cpu"]),
                   "frames_per_wall_s": len(frames) / statistics.median(t["wall"])} for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--data-root", type=Path, default=ROOT / "data" / "synthkitchens-demo-s0")
    parser.add_argument("--json", type=Path, help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    frames, source = demo_frames(args.frames, args.data_root)
    result = {"frames": len(frames), "source": source, "rounds": args.rounds, "mean_jpeg_bytes": int(
        np.mean([len(f) for f in frames])), "host": platform.node(), "torch": torch.__version__,
        "decoders": measure(frames, args.rounds)}
    after = result["decoders"]["torchcodec (after)"]["frames_per_cpu_s"]
    print(f"{len(frames)} frames ({source}), median of {args.rounds} rounds, one thread")
    print(f"{'decoder':<26}{'frames/CPU-s':>14}{'frames/s':>12}{'vs after':>10}")
    for name, m in result["decoders"].items():
        print(f"{name:<26}{m['frames_per_cpu_s']:>14.0f}{m['frames_per_wall_s']:>12.0f}"
              f"{m['frames_per_cpu_s'] / after:>10.2f}")
    if args.json:
        runs.write_json(args.json, result)
        log.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
