"""Shipped pretrained weights: the demo's stand-ins, trained once, stored in ``weights/`` with a manifest.

The report fine-tunes from published checkpoints that nobody re-trains: ImageNet ResNets and InceptionV3,
IG-65M + Kinetics R(2+1)D, TBN's BN-Inception. At the demo size synthetic stand-ins play that part: each backbone,
at the demo preset's width and input size, trained to classify object images (the 2D backbones, in ImageNet's role)
or motion clips (R(2+1)D, in IG-65M + Kinetics' role). Like a published checkpoint, a stand-in is trained once,
for as long as it needs (``python -m egolib.weights train``, ``make weights``), and shipped as a file, its SHA-256,
and the recipe and numbers that made it, in the spirit of torchvision's weights metadata:

    weights/manifest.json                                one entry per file (``ENTRY_FIELDS``)
    weights/standin-<backbone>-w<width>-<size>px.pt      the backbone's state dict, floats in half precision
    weights/logs/standin-<backbone>-w<width>-<size>px.csv  its training log: loss, accuracy, held-out accuracy

Half precision halves the files (all of them together must stay small enough to ship); they load into float32
models, and the held-out accuracy in the manifest is measured on the half-precision weights that ship.

A run that starts from a stand-in (``egolib.pretrain.resolve``) loads the shipped file of its backbone, width and
input size after checking its SHA-256 (``verified``): a missing file or a changed byte raises ``WeightFileError``,
which says how to get the file back, and nothing is trained in its place. A backbone with no manifest entry (the
smoke sizes, other widths) keeps the stand-in trained inside the run.

Retraining (``train``) runs from scratch with progress bars, saves its state after every epoch under
``runs/weights-train/`` and, killed and restarted, resumes after its last epoch; it then writes the file, its log
and its manifest entry through the same code at every size (``--preset smoke`` trains the tiny sets in seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from egolib import backbones, runs, synthetic, transforms
from egolib.config import RunConfig
from egolib.optim import seed_everything

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"  # the repository's weights/ folder
MANIFEST = "manifest.json"
STATE_DIR = Path("runs") / "weights-train"  # training state, one file per stand-in (resumable; never shipped)

# The stand-in of each backbone: which set it learns (the report's pretraining role) and under which pretrain name.
STANDIN_OF = {
    "bninc": ("objects", "imagenet"),
    "incv3": ("objects", "imagenet"),
    "res34": ("objects", "imagenet"),
    "res101": ("objects", "imagenet"),
    "res152": ("objects", "imagenet"),
    "r2p1d34": ("motion", "ig65m_kinetics"),
}
# The generator preset of each set at each training size.
SET_PRESET = {"smoke": "smoke", "demo": "weights"}

# Recipes, chosen on the stand-ins' own held-out items. SGD + warm-up + cosine with label smoothing for the object
# images; the motion clips train on random 3-frame windows (the 3-frame snippets EgoACO feeds R(2+1)D) and are
# held out on the centre window.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "objects": {"epochs": 1, "batch_size": 16, "lr": 0.05, "clip_grad": 5.0},
        "motion": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "clip_grad": 5.0, "optimizer": "adamw",
                   "weight_decay": 0.05, "window": 3},
    },
    "demo": {
        "objects": {"epochs": 30, "batch_size": 64, "lr": 0.1, "clip_grad": 5.0, "weight_decay": 5e-4,
                    "label_smoothing": 0.1, "warmup": 0.05},
        "motion": {"epochs": 10, "batch_size": 32, "lr": 2e-3, "clip_grad": 5.0, "optimizer": "adamw",
                   "weight_decay": 0.05, "label_smoothing": 0.1, "warmup": 0.05, "window": 3},
    },
}
ENTRY_FIELDS = ("file", "sha256", "bytes", "dtype", "backbone", "pretrain_role", "width", "input_size",
                "normalization", "set", "recipe", "held_out_top1", "train_items", "held_out_items", "classes",
                "train_cpu_hours", "train_wall_hours", "log", "log_sha256", "torch")


class WeightFileError(RuntimeError):
    """A shipped weight file that is missing or does not match its manifest entry; the message says how to get it
    back."""


def file_name(backbone: str, width: float, input_size: int) -> str:
    """``standin-<backbone>-w<width>-<size>px.pt``."""
    return f"standin-{backbone}-w{width:g}-{input_size}px.pt"


def demo_shape(backbone: str, preset: str = "demo") -> tuple[float, int]:
    """The (width, input size) a ``preset`` run of ``backbone`` uses: the shape its stand-in is trained at."""
    cfg = RunConfig.from_params({"method": "tsn", "backbone": backbone, "preset": preset})
    return cfg.width, cfg.input_size


def read_manifest(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """``{file name: entry}`` of ``folder/manifest.json`` (default: the shipped one; empty when there is none)."""
    path = Path(folder or SHIPPED_DIR) / MANIFEST
    return runs.read_json(path)["weights"] if path.is_file() else {}


def shipped(backbone: str, width: float, input_size: int, folder: Path | None = None) -> tuple[Path, dict] | None:
    """The manifest entry of ``backbone``'s stand-in at this width and input size, with its path; None if none
    ships."""
    folder = folder or SHIPPED_DIR
    name = file_name(backbone, width, input_size)
    entry = read_manifest(folder).get(name)
    return (Path(folder) / name, entry) if entry is not None else None


def _restore_hint(path: Path, backbone: str) -> str:
    return (f"restore it with `git checkout -- weights/{path.name}` (it is committed with the repository) or "
            f"retrain it with `make weights BACKBONES={backbone}` (python -m egolib.weights train --backbone "
            f"{backbone})")


def verified(path: Path, entry: dict[str, Any]) -> Path:
    """``path`` after checking it against its manifest entry (size, SHA-256).

    Raises:
        WeightFileError: the file is missing or differs from what the manifest recorded.
    """
    if not path.is_file():
        raise WeightFileError(f"shipped weight file {path} is missing (listed in {path.parent / MANIFEST}): "
                              + _restore_hint(path, entry["backbone"]))
    digest = runs.sha256_file(path)
    if digest != entry["sha256"] or path.stat().st_size != entry["bytes"]:
        found = f"{digest[:12]}…, {path.stat().st_size} bytes"
        listed = f"{entry['sha256'][:12]}…, {entry['bytes']} bytes"
        raise WeightFileError(f"shipped weight file {path} does not match {path.parent / MANIFEST} (SHA-256 {found}; "
                              f"the manifest says {listed}): " + _restore_hint(path, entry["backbone"]))
    return path


def verify_all(folder: Path | None = None) -> list[str]:
    """The problems of every shipped file (empty when every file matches the manifest)."""
    folder = folder or SHIPPED_DIR
    problems = []
    for name, entry in read_manifest(folder).items():
        try:
            verified(Path(folder) / name, entry)
        except WeightFileError as e:
            problems.append(str(e))
    return problems


# --------------------------------------------------------------------------------------------------
# Training a stand-in and shipping it


def standin_data(kind: str, preset: str, *, progress: bool = True):
    """The stand-in set ``kind`` (objects | motion) at ``preset``'s training size, generated when missing (seed 0).

    Returns:
        ``(items uint8, labels int64, class names, generator settings)``.
    """
    size = SET_PRESET[preset]
    path = Path("data") / f"{kind}-{size}"
    if kind == "motion":
        x, y, names = synthetic.load_motion_clips(synthetic.generate_motion_clips(path, preset=size, seed=0,
                                                                                  progress=progress))
        settings = synthetic.MOTION_PRESETS[size]
    else:
        x, y, names = synthetic.load_object_images(synthetic.generate_object_images(path, preset=size, seed=0,
                                                                                    progress=progress))
        settings = synthetic.OBJECT_PRESETS[size]
    return x, y, list(names), settings


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors in half precision (integer buffers as they are)."""
    return {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in state.items()}


def _bytes_of(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def train(backbone: str, *, preset: str = "demo", out: Path | None = None, state_dir: Path = STATE_DIR,
          progress: bool = True) -> dict[str, Any]:
    """Train ``backbone``'s stand-in from scratch (or resume it), then write its file, log and manifest entry.

    Args:
        backbone: a key of ``STANDIN_OF``.
        preset: ``demo`` (the shipped files) or ``smoke`` (tiny sets, seconds; the tests' size).
        out: the folder of the files and ``manifest.json`` (default: the shipped ``weights/``).
        state_dir: where the per-epoch training state lives (resume after a kill).

    Returns:
        The manifest entry written.
    """
    from egolib.pretrain import centre_start, fit_standin, held_out_accuracy, held_out_split  # pretrain reads us

    if backbone not in STANDIN_OF:
        raise ValueError(f"no stand-in for backbone {backbone!r}; choose one of {', '.join(STANDIN_OF)}")
    if preset not in RECIPES:
        raise ValueError(f"no stand-in recipe for preset {preset!r}; choose one of {', '.join(RECIPES)}")
    kind, role = STANDIN_OF[backbone]
    video = kind == "motion"
    width, size = demo_shape(backbone, preset)
    recipe = RECIPES[preset][kind]
    x, y, names, settings = standin_data(kind, preset, progress=progress)
    seed_everything(0)
    split = held_out_split(len(y))
    net = backbones.build_backbone(backbone, width=width)
    name = file_name(backbone, width, size)
    the_set = {"generator": f"egolib.synthetic ({'motion clips' if video else 'object images'})",
               "generator_version": synthetic.GENERATOR_VERSION, "preset": SET_PRESET[preset], "seed": 0,
               "settings": settings, "items": len(y)}
    key = {"backbone": backbone, "width": width, "input_size": size, "set": the_set, "recipe": recipe}
    state_path = Path(state_dir) / f"{name}.state"
    rows = fit_standin(net, x, y, split, len(names), recipe=recipe, video=video, input_size=size,
                       state_path=state_path, state_key=key, progress=progress, desc=f"stand-in {backbone}")
    # The held-out accuracy of what ships: the half-precision weights, loaded back into float32.
    shipped_state = _half(net.state_dict())
    net.load_state_dict(shipped_state)
    norm = backbones.normalization(backbone)
    test_tf = transforms.centre_transform(norm, size, backbones.scale_size(size))
    window = recipe.get("window") if video else None
    top1 = held_out_accuracy(net, x, y, split[1], test_tf, video, len(names), window,
                             centre_start(x.shape[1], window) if video else None)
    out = Path(out or SHIPPED_DIR)
    data = _bytes_of(shipped_state)
    log_name = f"logs/{name.removesuffix('.pt')}.csv"
    log_text = pd.DataFrame(rows).to_csv(index=False)
    entry = {
        "file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "dtype": "float16",
        "backbone": backbone, "pretrain_role": role, "width": width, "input_size": size,
        "normalization": _describe(norm), "set": the_set, "recipe": recipe,
        "held_out_top1": top1, "train_items": len(split[0]), "held_out_items": len(split[1]), "classes": names,
        "train_cpu_hours": sum(r.get("cpu_s", 0.0) for r in rows) / 3600,
        "train_wall_hours": sum(r["time_s"] for r in rows) / 3600,
        "log": log_name, "log_sha256": hashlib.sha256(log_text.encode()).hexdigest(), "torch": torch.__version__,
    }
    runs.write_bytes(out / name, data)
    runs.write_text(out / log_name, log_text)
    with runs.file_lock(out / ".manifest.lock"):
        manifest = read_manifest(out)
        manifest[name] = entry
        runs.write_json(out / MANIFEST, {"format": 1, "weights": dict(sorted(manifest.items()))})
    log.info("%s: held-out top-1 %.1f %% (half precision), %.2f CPU-hours, %.1f MiB", out / name, 100 * top1,
             entry["train_cpu_hours"], len(data) / 2**20)
    return entry


def _describe(norm: transforms.Normalization) -> dict[str, Any]:
    return {"mean": list(norm.mean), "std": list(norm.std), "bgr": norm.bgr, "scale": norm.scale}


def table(folder: Path | None = None) -> pd.DataFrame:
    """The shipped weights: file, MiB, held-out top-1 (%), CPU-hours, epochs."""
    rows = [{"file": name, "backbone": e["backbone"], "set": e["set"]["generator"], "MiB": e["bytes"] / 2**20,
             "held-out top-1 (%)": 100 * e["held_out_top1"], "CPU-hours": e["train_cpu_hours"],
             "epochs": e["recipe"]["epochs"]} for name, e in read_manifest(folder).items()]
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m egolib.weights", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train stand-ins from scratch (resumes after a kill) and ship them")
    tr.add_argument("--backbone", default=",".join(STANDIN_OF),
                    help=f"comma-separated backbones (default: all: {','.join(STANDIN_OF)})")
    tr.add_argument("--preset", default="demo", choices=list(RECIPES))
    tr.add_argument("--out", default=None, help="folder of the files and manifest.json (default: weights/)")
    tr.add_argument("--state-dir", default=str(STATE_DIR), help="training state (resumable)")
    tr.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    sub.add_parser("verify", help="check every shipped file against the manifest")
    sub.add_parser("list", help="the shipped weights as a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "train":
        if args.threads:
            torch.set_num_threads(args.threads)
        for backbone in args.backbone.split(","):
            train(backbone.strip(), preset=args.preset, out=args.out and Path(args.out), state_dir=Path(args.state_dir))
    elif args.command == "verify":
        problems = verify_all()
        for p in problems:
            print(p)
        if problems:
            raise SystemExit(1)
        print(f"every file in {SHIPPED_DIR / MANIFEST} matches")
    else:
        print(table().to_string(index=False))


if __name__ == "__main__":
    main()
