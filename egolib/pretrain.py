"""Pretrained backbones: the report's weights when present, synthetic stand-ins otherwise, EPIC TSN-style.

``pretrain`` names what the report used; ``resolve(cfg)`` says what this run gets, ``ensure(cfg)`` makes it:

    imagenet         weights/<backbone>-imagenet.pth or torchvision's file in the torch hub cache (width 1 only);
                     stand-in: the backbone trained to classify synthetic object images; at the demo size the
                     shipped one (``egolib.weights``), at other sizes one trained here
    ig65m_kinetics   weights/r2p1d34-ig65m_kinetics.pth or ig65m-pytorch's file in the hub cache (width 1 only);
                     stand-in: R(2+1)D trained to classify synthetic motion clips (shipped at the demo size)
    epic             weights/<backbone>-epic.pth (e.g. TBN's BN-Inception); otherwise, as the report did for
                     InceptionV3, a TSN model trained on the run's training split from the ``imagenet`` backbone.
                     GSM + EgoACO starts, as in the report, from an EPIC-trained GSM backbone: the backbone of the
                     ``gsm`` run with the same backbone and preset (reused when complete, else trained here)
    scratch          random initialisation

Everything trained here is cached in ``runs/pretrain/<pretrain>-<backbone>-w<width>-<preset>-<key>/``
(``backbone.pt``, ``log.csv``, ``config.json``, then ``DONE`` with their SHA-256), under the folder's lock
(``egolib.runs.exclusive``), so parallel runs wait for one another and every later run with the same key reuses it;
a file that no longer matches its hash is moved aside and the backbone trained again. ``<key>`` hashes everything
that makes the cache (``cache_key``): the recipe (the stand-in's, or the TSN / GSM run's config), the data it is
trained on (the embedded set's name and seed, or the ``data_root`` folder and the bytes of its annotation files) and
the library code. A cache made from other data, another recipe or other code therefore lives in another folder and
is never picked up; a folder whose ``config.json`` holds another key is trained again. Nothing is ever downloaded.

Seeds: an EPIC backbone is trained on the run's own SynthKitchens draw with the run's seed, so each draw has its
own. The stand-ins (object images, motion clips) do not depend on the draw and play the part of published
weights: one set and one training (seed 0) serve every seed, as the same ImageNet weights would.

Training a TSN or GSM model needs ``egolib.train``, which imports this module; ``ensure`` is therefore given the
fit function (``egolib.train.fit_model``) instead of importing it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egolib import backbones, models, runs, synthetic, transforms, weights
from egolib.config import PLACEMENT_FIELDS, RunConfig
from egolib.optim import WarmupCosine, rng_state, seed_everything, set_rng_state
from egolib.progress import tqdm

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path("weights")  # real weights: weights/<backbone>-<pretrain>.pth (a plain backbone state dict)
PRETRAIN_DIR = Path("runs") / "pretrain"
BACKBONE_FILE = "backbone.pt"
KEY_LENGTH = 10  # hex digits of the cache key in the folder name

FitFunction = Callable[..., nn.Module]  # fit(cfg, *, progress) -> the trained model (egolib.train.fit_model)

# Stand-in pretraining recipes per preset: SGD + cosine on the synthetic sets (numbers are ours, not the
# report's: the real ImageNet / IG-65M schedules are far beyond this machine).
# Deep narrow ResNets from scratch have huge initial gradients (ResNet-152 at width 1/8: norm ~3000), so
# 10 % linear warm-up and gradient clipping are needed.
STANDIN_RECIPES: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 1, "batch_size": 16, "lr": 0.05, "clip_grad": 5.0},
    "demo": {"epochs": 8, "batch_size": 32, "lr": 0.05, "clip_grad": 5.0},
    "paper": {"epochs": 30, "batch_size": 64, "lr": 0.1, "clip_grad": 5.0},
}
# At the demo preset the stand-ins trained inside a run (for a backbone, width or input size that ships none:
# ``egolib.weights`` ships the demo's own) train longer than the preset's recipe says: 8 epochs end before they
# learn. Motion clips from scratch sit near chance (loss ln 14) for hundreds of steps before they leave it.
OBJECT_EPOCHS = {"demo": 24}
MOTION_EPOCHS = {"demo": 24}


def standin_recipe(preset: str, *, video: bool) -> dict[str, Any]:
    """The stand-in recipe of ``preset`` for motion clips (``video``) or object images."""
    recipe = dict(STANDIN_RECIPES[preset])
    epochs = (MOTION_EPOCHS if video else OBJECT_EPOCHS).get(preset)
    if epochs is not None:
        recipe["epochs"] = epochs
    # the motion clips' object loss joins when the shipped stand-in's does (``egolib.weights``: with both losses
    # from the first epoch the object task held R(2+1)D at chance on the motion)
    shipped = weights.RECIPES.get(preset, {}).get("motion", {})
    if video and "others_from_epoch" in shipped:
        recipe["others_from_epoch"] = shipped["others_from_epoch"]
    return recipe


@dataclass(frozen=True)
class Pretraining:
    """What a run's backbone starts from.

    Attributes:
        pretrain: the config's name (imagenet | epic | ig65m_kinetics | scratch).
        source: ``real weights``, ``synthetic stand-in: object images``, ``synthetic stand-in: motion clips``,
            ``EPIC TSN-style (training split)`` or ``random initialisation``.
        path: the plain-backbone state-dict file (None for random initialisation).
        ready: the file exists (``ensure`` makes stand-ins ready).
        sha256: the file's SHA-256 for a shipped stand-in (``egolib.weights``), checked on every ``resolve``.
    """

    pretrain: str
    source: str
    path: str | None
    ready: bool
    sha256: str | None = None

    def describe(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"pretrain={self.pretrain}: {self.source}{where}"


# --------------------------------------------------------------------------------------------------
# Where weights come from


def real_weights(backbone: str, pretrain: str, width: float) -> Path | None:
    """The first real weight file found for (backbone, pretrain): ``weights/`` first, then the hub cache.

    Real weights only fit the standard network, so at width != 1 there are none.
    """
    if width != 1.0 or pretrain == "scratch":
        return None
    candidates = [WEIGHTS_DIR / f"{backbone}-{pretrain}.pth"]
    published = backbones.PRETRAINED_FILES.get(backbone, {}).get(pretrain)  # (file name, where to get it)
    if published is not None:
        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / published[0])
    return next((p for p in candidates if p.is_file()), None)


def cache_dir(pretrain: str, backbone: str, width: float, preset: str, key: str) -> Path:
    """``runs/pretrain/<pretrain>-<backbone>-w<width>-<preset>-<key>`` (``key``: ``cache_key``'s hash)."""
    return PRETRAIN_DIR / f"{pretrain}-{backbone}-w{width:g}-{preset}-{key}"


def _data_identity(cfg: RunConfig) -> dict[str, Any]:
    """What names the data a TSN / GSM pretraining trains on.

    The embedded SynthKitchens draw is fixed by its preset and seed (``cfg.seed``) and made by the library (its
    code is in the key already); a ``data_root`` is named by its absolute path and a hash of its annotation files.
    """
    if cfg.data_root is None:
        return {"dataset": cfg.dataset_path.name, "generator_seed": cfg.seed}
    root = cfg.dataset_path.resolve()
    digest = hashlib.sha256()
    for path in sorted((root / "annotations").glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"data_root": str(root), "annotations_sha256": digest.hexdigest()}


def _run_recipe(run: RunConfig) -> dict[str, Any]:
    """A run's config without where and how it runs (``config.PLACEMENT_FIELDS``) and its data root: what decides
    its numbers."""
    return {k: v for k, v in run.to_dict().items() if k not in (*PLACEMENT_FIELDS, "data_root")}


def cache_key(cfg: RunConfig) -> dict[str, Any]:
    """Everything that makes ``cfg``'s cached pretraining: what is trained, on which data, how, by which code.

    Returns:
        A JSON-serialisable dict; its hash (``key_hash``) names the cache folder and is checked against the
        folder's ``config.json`` before the cache is used.
    """
    if from_gsm_run(cfg):
        made = {"kind": "epic_gsm", "run": _run_recipe(gsm_config(cfg, Path("."))), "data": _data_identity(cfg)}
    elif cfg.pretrain == "epic":
        made = {"kind": "epic", "run": _run_recipe(epic_config(cfg, Path("."))), "data": _data_identity(cfg)}
    else:
        video = _standin_source(cfg.pretrain, cfg.backbone).endswith("motion clips")
        made = {"kind": "standin", "backbone": cfg.backbone, "width": cfg.width, "input_size": cfg.input_size,
                "data": _standin_identity(cfg.preset, video), "recipe": standin_recipe(cfg.preset, video=video),
                "seed": 0}
    return made | {"code_version": runs.code_version()}


def key_hash(key: dict[str, Any]) -> str:
    """The first ``KEY_LENGTH`` hex digits of the SHA-256 of ``key`` as sorted JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:KEY_LENGTH]


CACHE_FILES = (BACKBONE_FILE, "log.csv", "config.json")  # what DONE lists, with their SHA-256


def _is_cached(out: Path, key: dict[str, Any]) -> bool:
    """``out`` is complete (``DONE``), every file verifies against the hash ``DONE`` recorded, and it was made with
    exactly ``key``."""
    if runs.unverified(out, CACHE_FILES):
        return False
    return runs.read_json(out / "config.json").get("cache_key") == key


def _set_aside_corrupt(out: Path) -> None:
    """Before a cache folder is trained again: move aside each file that exists but does not verify."""
    if not (out / runs.DONE).exists():
        return
    for problem in runs.unverified(out, CACHE_FILES):
        log.warning("%s", problem)
    for name in CACHE_FILES:
        if (out / name).is_file() and runs.unverified(out, (name,)):
            runs.set_aside(out / name)


def from_gsm_run(cfg: RunConfig) -> bool:
    """GSM + EgoACO with EPIC pretraining starts from an EPIC-trained GSM backbone (the report's GSM models):
    the backbone of the ``gsm`` run of the same backbone and preset, made after that run."""
    return cfg.method == "gsm_egoaco" and cfg.pretrain == "epic"


def _standin_source(pretrain: str, backbone: str, gsm_backbone: bool = False) -> str:
    if gsm_backbone:
        return "EPIC-trained GSM backbone (the gsm run of this backbone)"
    if pretrain == "epic":
        return "EPIC TSN-style (training split)"
    if pretrain == "ig65m_kinetics" or backbone == "r2p1d34":
        return "synthetic stand-in: motion clips"
    return "synthetic stand-in: object images"


def resolve(cfg: RunConfig) -> Pretraining:
    """What ``cfg``'s backbone starts from, without training anything."""
    if cfg.pretrain == "scratch":
        return Pretraining("scratch", "random initialisation", None, True)
    gsm_backbone = from_gsm_run(cfg)
    real = None if gsm_backbone else real_weights(cfg.backbone, cfg.pretrain, cfg.width)
    if real is not None:
        return Pretraining(cfg.pretrain, "real weights", str(real), True)
    if cfg.pretrain != "epic":
        ship = weights.shipped(cfg.backbone, cfg.width, cfg.input_size)
        if ship is not None:  # the demo's stand-in, trained once and shipped: its hash is checked, never retrained
            path, entry = ship
            source = "shipped " + _standin_source(cfg.pretrain, cfg.backbone)
            return Pretraining(cfg.pretrain, source, str(weights.verified(path, entry)), True, entry["sha256"])
    name = "epic_gsm" if gsm_backbone else cfg.pretrain
    key = cache_key(cfg)
    out = cache_dir(name, cfg.backbone, cfg.width, cfg.preset, key_hash(key))
    source = _standin_source(cfg.pretrain, cfg.backbone, gsm_backbone)
    return Pretraining(cfg.pretrain, source, str(out / BACKBONE_FILE), _is_cached(out, key))


def ensure(cfg: RunConfig, *, fit: FitFunction | None = None, progress: bool = True) -> Pretraining:
    """``resolve(cfg)``, training and caching the stand-in (or the EPIC backbone) first when it is missing.

    Args:
        cfg: the run whose backbone is pretrained.
        fit: ``egolib.train.fit_model``; needed only when an EPIC (TSN or GSM) backbone must be trained.
        progress: show progress bars.

    Raises:
        ValueError: an EPIC backbone must be trained and no ``fit`` was given.
    """
    pre = resolve(cfg)
    if pre.ready:
        return pre
    out = Path(pre.path).parent
    key = cache_key(cfg)
    if cfg.pretrain == "epic" and fit is None:
        raise ValueError(f"{out} must be trained from a TSN/GSM run: pass fit=egolib.train.fit_model to ensure")
    with runs.exclusive(out, what="pretraining", wait=True):
        if not _is_cached(out, key):
            _set_aside_corrupt(out)
            if (out / runs.DONE).exists():
                log.warning("%s is not complete or was made with another cache key: training it again", out)
                (out / runs.DONE).unlink()
            t0 = time.perf_counter()
            if from_gsm_run(cfg):
                _pretrain_epic_gsm(cfg, out, fit, key, progress=progress)
            elif cfg.pretrain == "epic":
                _pretrain_epic(cfg, out, fit, key, progress=progress)
            else:
                _pretrain_standin(cfg, out, key, progress=progress)
            log.info("pretrained %s in %.0f s", out, time.perf_counter() - t0)
    return resolve(cfg)


def ensure_all(configs: list[RunConfig], *, fit: FitFunction, progress: bool = True) -> dict[str, Pretraining]:
    """``ensure`` for each (pretrain, backbone) of ``configs`` once, in order.

    The GSM + EgoACO backbones that start from a GSM run (``from_gsm_run``) are left out: they are made when
    those runs are trained, after the GSM runs.

    Returns:
        ``{"<pretrain>-<backbone>": Pretraining}``.
    """
    done: dict[str, Pretraining] = {}
    for cfg in configs:
        key = f"{cfg.pretrain}-{cfg.backbone}"
        if key not in done and not from_gsm_run(cfg):
            done[key] = ensure(cfg, fit=fit, progress=progress)
    return done


# --------------------------------------------------------------------------------------------------
# Stand-ins: classify synthetic object images (2D backbones) or motion clips (R(2+1)D)


def _logits(backbone: nn.Module, x: Tensor, heads: dict[str, int]) -> list[Tensor]:
    """Backbone features -> global average pool -> its own classifier: one ``(N, classes)`` slice per task of
    ``heads`` (task -> classes), in order.

    Training through the standard classifier (sliced) keeps the state dict's shapes standard, so the saved
    file loads like a real weight file.
    """
    z = backbones.forward_features(backbone, x).mean((2, 3))  # (N, C, h, w) -> (N, C)
    logits = getattr(backbone, backbone.spec.classifier)(z)[:, : sum(heads.values())]  # (N, sum of classes)
    return list(logits.split(list(heads.values()), dim=1))


def _run_set_size(preset: str) -> str:
    """The generator size of the stand-in set a run of ``preset`` trains on inside the run: smoke or demo."""
    return "smoke" if preset == "smoke" else "demo"


def _standin_path(size: str, video: bool) -> Path:
    """``data/motion-<size>`` or ``data/objects-<size>`` (``size``: a generator preset of the sets)."""
    return Path("data") / f"{'motion' if video else 'objects'}-{size}"


def _set_settings(size: str, video: bool) -> dict[str, Any]:
    return (synthetic.MOTION_PRESETS if video else synthetic.OBJECT_PRESETS)[size]


def _standin_identity(preset: str, video: bool) -> dict[str, Any]:
    """What makes a stand-in set: its folder, seed and generator settings (sizes, generator version)."""
    size = _run_set_size(preset)
    return {"dataset": _standin_path(size, video).name, "generator_seed": 0, "settings": _set_settings(size, video),
            "generator_version": synthetic.GENERATOR_VERSION}


def standin_set(size: str, *, video: bool, progress: bool = True) -> tuple[Tensor, Tensor, dict[str, list[str]]]:
    """The stand-in set of generator size ``size`` (``synthetic.OBJECT_PRESETS`` / ``MOTION_PRESETS``), generated
    first when missing (seed 0).

    Returns:
        ``(items, labels, tasks)``: uint8 object images ``(N, 3, H, W)`` or, with ``video``, motion clips
        ``(N, T, 3, H, W)``; int64 labels ``(N, tasks)``; the class names of each task, the main one first
        (``{"object": ...}`` for images, ``{"motion": ..., "object": ...}`` for clips).
    """
    path = _standin_path(size, video)
    _drop_outdated_set(path, "SynthMotion" if video else "SynthObjects", _set_settings(size, video))
    if video:
        made = synthetic.generate_motion_clips(path, preset=size, seed=0, progress=progress)
        x, y, names = synthetic.load_motion_clips(made)
        objects, object_names = synthetic.load_motion_objects(made)
        return x, torch.stack([y, objects], dim=1), {"motion": list(names), "object": list(object_names)}
    made = synthetic.generate_object_images(path, preset=size, seed=0, progress=progress)
    x, y, names = synthetic.load_object_images(made)
    return x, y[:, None], {"object": list(names)}


def _drop_outdated_set(path: Path, kind: str, settings: dict[str, Any]) -> None:
    """Delete a stand-in set that an older generator made at ``path`` (other settings or generator version), so that
    it is generated again: a stand-in set is a pure function of the code, and a folder of another kind is never
    touched (the generator then refuses it by name)."""
    made = path / synthetic.MANIFEST
    if not made.is_file():
        return
    have = runs.read_json(made)
    if have.get("dataset") == kind and (have.get("size"), have.get("generator_version")) != (
            settings, synthetic.GENERATOR_VERSION):
        log.warning("%s was made by an older generator (%s); generating it again", path, have.get("size"))
        shutil.rmtree(path)


def heads_of(tasks: dict[str, list[str]]) -> dict[str, int]:
    """Task -> number of classes."""
    return {task: len(names) for task, names in tasks.items()}


def _load_standin_data(cfg: RunConfig) -> tuple[Tensor, Tensor, dict[str, list[str]], bool]:
    """uint8 items (images ``(N, 3, H, W)`` or clips ``(N, T, 3, H, W)``), labels, tasks' class names, is-video."""
    video = _standin_source(cfg.pretrain, cfg.backbone).endswith("motion clips")
    return *standin_set(_run_set_size(cfg.preset), video=video), video


def _to_input(item: Tensor, tf: Any, video: bool, window: int | None = None, start: int | None = None) -> Tensor:
    """One uint8 image ``(3, H, W)`` or clip ``(T, 3, H, W)`` -> the backbone's float input ``(3, h, w)`` or
    ``(3, L, h, w)``: with ``window``, the ``window`` frames from ``start`` (random when None)."""
    if not video:
        return tf(item[None])[0]  # (1, 3, H, W) -> (3, h, w)
    if window is not None and window < item.shape[0]:
        first = int(torch.randint(item.shape[0] - window + 1, ())) if start is None else start
        item = item[first : first + window]  # (T, 3, H, W) -> (window, 3, H, W)
    return tf(item).transpose(0, 1)  # (L, 3, h, w) -> (3, L, h, w)


def centre_start(frames: int, window: int | None) -> int:
    """First frame of the centre ``window`` of a ``frames``-frame clip (the held-out items' window)."""
    return 0 if window is None else max((frames - window) // 2, 0)


# What a stand-in recipe leaves out (``fit_standin``): SGD, 10 % warm-up, no label smoothing, every frame of a clip,
# every task's loss from the first epoch.
RECIPE_DEFAULTS: dict[str, Any] = {"optimizer": "sgd", "weight_decay": 5e-4, "label_smoothing": 0.0, "warmup": 0.1,
                                   "window": None, "others_from_epoch": 1}


def _optimizer(net: nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD with momentum 0.9, or AdamW (``recipe["optimizer"] == "adamw"``); ``recipe`` has its defaults."""
    if recipe["optimizer"] == "adamw":
        return torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    return torch.optim.SGD(net.parameters(), lr=recipe["lr"], momentum=0.9, weight_decay=recipe["weight_decay"])


def training_notes(video: bool, recipe: dict[str, Any]) -> dict[str, str]:
    """The schedule and augmentation that ``fit_standin`` gives a stand-in ``recipe``, in words (manifest fields)."""
    r = RECIPE_DEFAULTS | recipe
    optimiser = "AdamW" if r["optimizer"] == "adamw" else "SGD (momentum 0.9)"
    schedule = (f"{optimiser}, lr {r['lr']:g}, weight decay {r['weight_decay']:g}, linear warm-up over "
                f"{r['warmup']:.0%} of the steps then cosine decay to 0, batch {r['batch_size']}, {r['epochs']} "
                f"epochs, gradient norm clipped at {r['clip_grad']:g}, label smoothing {r['label_smoothing']:g}")
    crop = "multi-scale crop (scales 1, .875, .75, .66, aspect jitter) resized to the input size"
    if video:
        frames = f"a random {r['window']}-frame window of each clip" if r["window"] else "the whole clip"
        augmentation = f"{crop}, the same for every frame of {frames}; no flip (it would swap left and right)"
    else:
        augmentation = f"{crop}, random horizontal flip"
    if r["others_from_epoch"] > 1:
        schedule += (f"; the main task alone for the first {r['others_from_epoch'] - 1} epochs, the other tasks' "
                     "losses added from then on")
    return {"schedule": schedule, "augmentation": augmentation}


def fit_standin(net: nn.Module, x: Tensor, y: Tensor, split: tuple[Tensor, Tensor], heads: dict[str, int], *,
                recipe: dict[str, Any], video: bool, input_size: int, state_path: Path | None = None,
                state_key: dict[str, Any] | None = None, progress: bool = True,
                desc: str = "pretrain") -> list[dict[str, Any]]:
    """Train ``net`` to classify the stand-in items ``x[train]`` and report held-out accuracy on ``x[held]`` per
    epoch; ``split`` is ``(train indices, held-out indices)``; ``y`` holds one label column per task of ``heads``
    (task -> classes, the main task first), and the loss is the sum of the tasks' cross-entropies.

    The recipe: ``epochs``, ``batch_size``, ``lr``, ``clip_grad``; optional ``optimizer`` (sgd | adamw),
    ``weight_decay`` (5e-4), ``label_smoothing`` (0), ``warmup`` (fraction of the steps, 0.1) and, for motion clips,
    ``window`` (frames per item: a random window in training, the centre one held out) and, with several tasks,
    ``others_from_epoch`` (1-based: the epoch from which the tasks after the main one add their losses; 1).
    Warm-up then cosine decay;
    gradients clipped (deep narrow nets from scratch start with huge gradients).

    With ``state_path``, the model, optimiser, schedule, log rows and RNG state are saved there after every epoch
    and a restart with the same ``state_key`` resumes after the last saved epoch.

    Returns:
        One row per epoch: ``epoch, loss, acc, val_acc`` (the main task's accuracies), ``acc_<task>`` and
        ``val_acc_<task>`` for every other task, ``lr, time_s`` (wall) and ``cpu_s`` (all threads).
    """
    train_idx, held_idx = split
    recipe = RECIPE_DEFAULTS | recipe
    device = next(net.parameters()).device
    window = recipe["window"] if video else None
    # No flips for motion clips: a mirrored "left" clip is a "right" clip (flips would swap half the labels).
    norm = backbones.normalization(net.spec.name)
    train_tf = dataclasses.replace(transforms.train_transform(norm, input_size), flip=not video)
    steps = max(len(train_idx) // recipe["batch_size"], 1)
    opt = _optimizer(net, recipe)
    total = recipe["epochs"] * steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(total, max(int(total * recipe["warmup"]), 1)))
    rows: list[dict[str, Any]] = []
    if state_path is not None and state_path.is_file():
        state = runs.load_torch(state_path, map_location="cpu")
        if state.get("key") == state_key:
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["schedule"])
            rows = list(state["rows"])
            set_rng_state(state["rng"])
            log.info("%s: resuming after epoch %d of %d (%s)", desc, len(rows), recipe["epochs"], state_path)
        else:
            log.warning("%s holds another recipe or set: training from the start", state_path)
    for epoch in range(len(rows), recipe["epochs"]):
        t0, cpu0 = time.perf_counter(), time.process_time()
        net.train()
        perm = train_idx[torch.randperm(len(train_idx))]
        loss_sum, seen = 0.0, 0
        hits = torch.zeros(len(heads), dtype=torch.long)  # per task
        bar = tqdm(range(steps), desc=f"{desc} epoch {epoch + 1}/{recipe['epochs']}", disable=not progress,
                   leave=False, mininterval=1.0)
        for s in bar:
            idx = perm[s * recipe["batch_size"] : (s + 1) * recipe["batch_size"]]
            batch = torch.stack([_to_input(x[i], train_tf, video, window) for i in idx.tolist()]).to(device)
            target = y[idx].to(device)  # (B, tasks)
            logits = _logits(net, batch, heads)
            tasks = len(logits) if epoch + 1 >= recipe["others_from_epoch"] else 1
            loss = sum(F.cross_entropy(out, target[:, k], label_smoothing=recipe["label_smoothing"])
                       for k, out in enumerate(logits[:tasks]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), recipe["clip_grad"])
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            hits += torch.stack([(out.argmax(1) == target[:, k]).sum() for k, out in enumerate(logits)]).cpu()
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        held = held_out_accuracy(net, x, y, held_idx, heads, video=video, input_size=input_size, window=window)
        main, *others = heads
        rows.append({"epoch": epoch + 1, "loss": loss_sum / seen, "acc": int(hits[0]) / seen, "val_acc": held[main],
                     **{f"acc_{task}": int(hits[k + 1]) / seen for k, task in enumerate(others)},
                     **{f"val_acc_{task}": held[task] for task in others},
                     "lr": opt.param_groups[0]["lr"], "time_s": time.perf_counter() - t0,
                     "cpu_s": time.process_time() - cpu0})
        log.info("%s epoch %d: loss %.3f acc %.3f held-out acc %.3f%s (%.0f s)", desc, epoch + 1, rows[-1]["loss"],
                 rows[-1]["acc"], rows[-1]["val_acc"],
                 "".join(f", {t} acc {rows[-1][f'acc_{t}']:.3f} held-out {held[t]:.3f}" for t in others),
                 rows[-1]["time_s"])
        if state_path is not None:
            runs.save_torch(state_path, {"key": state_key, "model": net.state_dict(), "optimizer": opt.state_dict(),
                                         "schedule": sched.state_dict(), "rows": rows, "rng": rng_state()})
    return rows


def _pretrain_standin(cfg: RunConfig, out: Path, key: dict[str, Any], *, progress: bool) -> None:
    """Train ``cfg.backbone`` (width ``cfg.width``) on the stand-in set; 10 % held out to report accuracy."""
    x, y, tasks, video = _load_standin_data(cfg)
    recipe = standin_recipe(cfg.preset, video=video)
    seed_everything(0)
    split = held_out_split(len(y))
    device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    net = backbones.build_backbone(cfg.backbone, width=cfg.width).to(device)
    rows = fit_standin(net, x, y, split, heads_of(tasks), recipe=recipe, video=video, input_size=cfg.input_size,
                       progress=progress, desc=f"pretrain {cfg.backbone}")
    _save(out, net, rows, {
        "backbone": cfg.backbone, "width": cfg.width, "preset": cfg.preset, "input_size": cfg.input_size,
        "source": _standin_source(cfg.pretrain, cfg.backbone), "classes": tasks,
        "train_items": len(split[0]), "held_out_items": len(split[1]), **recipe, "cache_key": key,
    })


def held_out_split(n: int) -> tuple[Tensor, Tensor]:
    """``(train indices, held-out indices)``: a random 10 % of ``n`` items held out (torch's global RNG)."""
    order = torch.randperm(n)
    n_held = max(n // 10, 1)
    return order[n_held:], order[:n_held]


@torch.no_grad()
def held_out_accuracy(net: nn.Module, x: Tensor, y: Tensor, idx: Tensor, heads: dict[str, int], *, video: bool,
                      input_size: int, window: int | None = None, batch_size: int = 64) -> dict[str, float]:
    """Top-1 accuracy of each task on ``x[idx]`` in eval mode, centre crop (clips: their centre ``window``
    frames); ``y`` holds one label column per task of ``heads``."""
    net.eval()
    device = next(net.parameters()).device
    norm = backbones.normalization(net.spec.name)
    tf = transforms.centre_transform(norm, input_size, backbones.scale_size(input_size))
    start = centre_start(x.shape[1], window) if video else None
    hits = torch.zeros(len(heads), dtype=torch.long)  # per task
    for s in range(0, len(idx), batch_size):
        part = idx[s : s + batch_size].tolist()
        batch = torch.stack([_to_input(x[i], tf, video, window, start) for i in part]).to(device)
        logits = _logits(net, batch, heads)
        hits += torch.stack([(out.argmax(1).cpu() == y[part, k]).sum() for k, out in enumerate(logits)])
    return {task: int(hits[k]) / max(len(idx), 1) for k, task in enumerate(heads)}


def _save(out: Path, net: nn.Module, rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    """``backbone.pt``, ``log.csv``, ``config.json``, then ``DONE`` (each atomic)."""
    runs.save_torch(out / BACKBONE_FILE, {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
    runs.write_text(out / "log.csv", pd.DataFrame(rows).to_csv(index=False))
    runs.write_json(out / "config.json", {**info, "versions": runs.library_versions(),
                                          "code_version": runs.code_version()})
    runs.write_done(out, CACHE_FILES)


# --------------------------------------------------------------------------------------------------
# EPIC: a TSN model on the training split, started from the imagenet backbone (report: InceptionV3)


def epic_config(cfg: RunConfig, out: Path) -> RunConfig:
    """The TSN run that makes ``cfg``'s EPIC backbone: same backbone, width, preset and seed, hence the same data
    (the SynthKitchens draw of ``cfg.seed``), so that a run depends on its own draw alone."""
    return RunConfig.from_params({
        "method": "tsn", "backbone": cfg.backbone, "preset": cfg.preset, "dataset": cfg.dataset,
        "data_root": cfg.data_root,
        "pretrain": "ig65m_kinetics" if cfg.backbone == "r2p1d34" else "imagenet",
        "seed": cfg.seed, "width": cfg.width, "device": cfg.device, "num_workers": cfg.num_workers,
        "channels_last": cfg.channels_last, "run_dir": str(out / "tsn"),
    })


def _pretrain_epic(cfg: RunConfig, out: Path, fit: FitFunction, key: dict[str, Any], *, progress: bool) -> None:
    tsn = epic_config(cfg, out)
    model = fit(tsn, progress=progress)
    rows = _run_log(tsn.run_path)
    _save(out, model.backbone, rows, {
        "backbone": cfg.backbone, "width": cfg.width, "preset": cfg.preset,
        "source": _standin_source("epic", cfg.backbone), "tsn_run": json.loads(tsn.to_json()), "cache_key": key,
    })


def _run_log(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``log.csv`` (``egolib.train.read_log``)."""
    return pd.read_csv(run_dir / "log.csv").to_dict("records")


def gsm_config(cfg: RunConfig, out: Path) -> RunConfig:
    """The ``gsm`` run whose backbone GSM + EgoACO starts from: the Table 1 GSM variant of the same backbone,
    preset and seed when that run is complete with exactly this config (reused), else a run inside ``out``."""
    variant = RunConfig.from_params({
        "method": "gsm", "backbone": cfg.backbone, "pretrain": "epic", "preset": cfg.preset, "seed": cfg.seed,
        "dataset": cfg.dataset, "data_root": cfg.data_root, "width": cfg.width, "num_segments": cfg.num_segments,
        "input_size": cfg.input_size, "device": cfg.device, "num_workers": cfg.num_workers,
        "channels_last": cfg.channels_last,
    })
    if runs.is_complete(variant.run_path, variant.to_dict()):
        return variant
    return dataclasses.replace(variant, run_dir=str(out / "gsm"))


def _pretrain_epic_gsm(cfg: RunConfig, out: Path, fit: FitFunction, key: dict[str, Any], *,
                       progress: bool) -> None:
    gsm = gsm_config(cfg, out)
    if not runs.is_complete(gsm.run_path, gsm.to_dict()):
        fit(gsm, progress=progress)
    model = models.load_model(gsm.run_path / "checkpoint.pt")
    rows = _run_log(gsm.run_path)
    _save(out, model.backbone, rows, {
        "backbone": cfg.backbone, "width": cfg.width, "preset": cfg.preset,
        "source": _standin_source("epic", cfg.backbone, True), "gsm_run": str(gsm.run_path), "cache_key": key,
    })


def read_log(pre: Pretraining) -> pd.DataFrame | None:
    """The training log of a shipped or cached pretraining (None for real weights and random initialisation)."""
    if pre.path is None or pre.source == "real weights":
        return None
    if pre.sha256 is not None:  # shipped: the log the manifest names
        entry = weights.read_manifest(Path(pre.path).parent)[Path(pre.path).name]
        return pd.read_csv(Path(pre.path).parent / entry["log"])
    path = Path(pre.path).parent / "log.csv"
    return pd.read_csv(path) if path.exists() else None


def summary(pre: Pretraining) -> dict[str, Any]:
    """``Pretraining`` as a dict, plus the shipped file's manifest entry or the cached pretraining's own config."""
    out = dataclasses.asdict(pre)
    if pre.sha256 is not None:
        entry = weights.read_manifest(Path(pre.path).parent)[Path(pre.path).name]
        out["details"] = {k: v for k, v in entry.items() if k not in ("classes", "log_sha256")}
    elif pre.path and pre.source != "real weights":
        config = Path(pre.path).parent / "config.json"
        if config.exists():
            info = runs.read_json(config)
            hidden = ("versions", "tsn_run", "gsm_run", "cache_key")
            out["details"] = {k: v for k, v in info.items() if k not in hidden}
    return out


# --------------------------------------------------------------------------------------------------
# The shipped stand-ins (``egolib.weights``): retrained from scratch by ``python -m egolib.pretrain train``


# Stored in float32: BatchNorm running statistics. Some running variances fall below half precision's smallest
# normal number (6e-5) and lose their digits there; BN-Inception's stand-in fell from 91.6 % to 20.5 % held-out
# with them in half precision, and recovered 91.7 % with them in float32.
FLOAT32_KEYS = ("running_mean", "running_var")
SHIPPED_DTYPE = "float16 (BatchNorm running statistics float32)"


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors in half precision, except BatchNorm running statistics (``FLOAT32_KEYS``); integer
    buffers as they are."""
    def stored(k: str, v: torch.Tensor) -> torch.Tensor:
        v = v.detach().cpu()
        return v.half() if v.is_floating_point() and not k.endswith(FLOAT32_KEYS) else v
    return {k: stored(k, v).contiguous() for k, v in state.items()}


def _bytes_of(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def retrain_standin(backbone: str, *, preset: str = "demo", out: Path | None = None,
                    state_dir: Path = weights.STATE_DIR, progress: bool = True) -> dict[str, Any]:
    """Train ``backbone``'s stand-in from scratch (or resume it), then write its file, log and manifest entry.

    Args:
        backbone: a key of ``weights.STANDIN_OF``.
        preset: ``demo`` (the shipped files) or ``smoke`` (tiny sets, seconds; the tests' size).
        out: the folder of the files and ``manifest.json`` (default: the shipped ``weights/``).
        state_dir: where the per-epoch training state lives (resume after a kill).

    Returns:
        The manifest entry written.
    """
    if backbone not in weights.STANDIN_OF:
        raise ValueError(f"no stand-in for backbone {backbone!r}; choose one of {', '.join(weights.STANDIN_OF)}")
    if preset not in weights.RECIPES:
        raise ValueError(f"no stand-in recipe for preset {preset!r}; choose one of {', '.join(weights.RECIPES)}")
    kind, role = weights.STANDIN_OF[backbone]
    video = kind == "motion"
    width, size = weights.demo_shape(backbone, preset)
    recipe = weights.recipe_of(preset, backbone)
    size_of_set = weights.SET_PRESET[preset]
    x, y, tasks = standin_set(size_of_set, video=video, progress=progress)
    heads = heads_of(tasks)
    seed_everything(0)
    split = held_out_split(len(y))
    net = backbones.build_backbone(backbone, width=width)
    name = weights.file_name(backbone, width, size)
    the_set = {"generator": f"egolib.synthetic ({'motion clips' if video else 'object images'})",
               "generator_version": synthetic.GENERATOR_VERSION, "preset": size_of_set, "seed": 0,
               "settings": _set_settings(size_of_set, video), "items": len(y)}
    key = {"backbone": backbone, "width": width, "input_size": size, "set": the_set, "recipe": recipe}
    state_path = Path(state_dir) / f"{name}.state"
    rows = fit_standin(net, x, y, split, heads, recipe=recipe, video=video, input_size=size,
                       state_path=state_path, state_key=key, progress=progress, desc=f"stand-in {backbone}")
    # The held-out accuracy of what ships: the half-precision weights, loaded back into float32.
    shipped_state = _half(net.state_dict())
    net.load_state_dict(shipped_state)
    top1 = held_out_accuracy(net, x, y, split[1], heads, video=video, input_size=size,
                             window=recipe.get("window") if video else None)
    main, *others = tasks
    out = Path(out or weights.SHIPPED_DIR)
    data = _bytes_of(shipped_state)
    log_name = f"logs/{name.removesuffix('.pt')}.csv"
    log_text = pd.DataFrame(rows).to_csv(index=False)
    entry = {
        "file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "dtype": SHIPPED_DTYPE,
        "backbone": backbone, "pretrain_role": role, "width": width, "input_size": size,
        "normalization": weights.describe(backbones.normalization(backbone)), "set": the_set, "recipe": recipe,
        **training_notes(video, recipe),
        "held_out_top1": top1[main], "train_items": len(split[0]), "held_out_items": len(split[1]),
        "classes": tasks[main],
        "train_cpu_hours": sum(r.get("cpu_s", 0.0) for r in rows) / 3600,
        "train_wall_hours": sum(r["time_s"] for r in rows) / 3600,
        "log": log_name, "log_sha256": hashlib.sha256(log_text.encode()).hexdigest(), "torch": torch.__version__,
    }
    if others:  # the motion clips' object labels
        entry["other_tasks"] = {t: {"classes": tasks[t], "held_out_top1": top1[t]} for t in others}
    weights.ship(out, entry, data, log_text)
    log.info("%s: held-out top-1 %s (half precision), %.2f CPU-hours, %.1f MiB", out / name,
             ", ".join(f"{t} {100 * a:.1f} %" for t, a in top1.items()),
             entry["train_cpu_hours"], len(data) / 2**20)
    return entry


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m egolib.pretrain",
                                     description="The shipped stand-ins (egolib.weights): retrain, verify, list.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train stand-ins from scratch (resumes after a kill) and ship them")
    tr.add_argument("--backbone", default=",".join(weights.STANDIN_OF),
                    help=f"comma-separated backbones (default: all: {','.join(weights.STANDIN_OF)})")
    tr.add_argument("--preset", default="demo", choices=list(weights.RECIPES))
    tr.add_argument("--out", default=None, help="folder of the files and manifest.json (default: weights/)")
    tr.add_argument("--state-dir", default=str(weights.STATE_DIR), help="training state (resumable)")
    tr.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    sub.add_parser("verify", help="check every shipped file against the manifest")
    sub.add_parser("list", help="the shipped weights as a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "train":
        if args.threads:
            torch.set_num_threads(args.threads)
        for backbone in args.backbone.split(","):
            retrain_standin(backbone.strip(), preset=args.preset, out=args.out and Path(args.out),
                            state_dir=Path(args.state_dir))
    elif args.command == "verify":
        problems = weights.verify_all()
        for p in problems:
            print(p)
        if problems:
            raise SystemExit(1)
        print(f"every file in {weights.SHIPPED_DIR / weights.MANIFEST} matches")
    else:
        print(weights.table().to_string(index=False))


if __name__ == "__main__":
    main()
