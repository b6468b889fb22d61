"""Training and evaluation: the report's recipes, checkpoint/resume, DDP, multi-clip testing.

Read top-down:

    recipes      the report's schedules as data (GSM/TSN one stage; EgoACO three stages), warm-up + cosine
    loss         verb + noun + action cross-entropy, summed over the clips of a batch / clips
    distributed  one process or torchrun (DDP: NCCL on GPUs, gloo on CPUs), rank 0 writes
    data         SynthKitchens, EPIC-55 or EPIC-100 -> seeded training clips, multi-clip test clips
    fit          stages -> epochs -> steps; a checkpoint (atomic, hashed) after every epoch; resume from it;
                 the first non-finite loss or gradient norm stops the run (``TrainingDiverged``)
    evaluate     2 clips per segment averaged; GSM full-frame, EgoACO centre crop; scores, metrics, submission
                 (EPIC-55: S1 and S2; EPIC-100: validation with its metrics, test into the challenge zip)
    run / CLI    fit + evaluate + DONE, while the process owns the run folder (``egolib.runs.exclusive``);
                 ``python -m egolib.train --config runs/<name>/config.json``

Determinism and resume. Every random draw of a training clip (segment offsets, crop, flip) comes from a
generator seeded with (seed, epoch, clip index) alone, the sampling order from ``DistributedSampler(seed)``
and ``set_epoch``, and the rest (dropout) from torch's global RNG, whose state is saved in every checkpoint.
So a run is the same twice on CPU for a fixed seed, a run killed mid-epoch and re-run resumes from its last
epoch and ends where an uninterrupted run ends, and N processes see the same clips as one process with an
N-times larger batch.

EgoACO's stage 1 may read its clips as the frozen backbone's maps of K views drawn once (``stage1_feature_views``,
``egolib.feature_cache``), and its stage 2 as the frozen shared trunk's maps (``stage2_trunk_views``): view k is the
clip of epoch k, epoch e reads view e mod K, and the caches' own loader leaves the global RNG where an uncached run
leaves it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from egolib import (
    backbones,
    epic,
    feature_cache,
    metrics,
    models,
    pretrain,
    runs,
    scores,
    submission,
    synthetic,
    transforms,
)
from egolib.config import (
    PLACEMENT_FIELDS,
    RunConfig,
    notebook_params,  # noqa: F401  (chapters call it as train.notebook_params)
)
from egolib.optim import WarmupCosine, rng_state, seed_everything, set_rng_state
from egolib.progress import tqdm
from egolib.scores import action_dicts

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG_CSV = "log.csv"
METRICS = "metrics.json"
TASKS = ("verb", "noun", "action")


# --------------------------------------------------------------------------------------------------
# 1. Recipes (the report's). The numbers live in the presets of egolib.config (``paper`` = the report's,
# ``demo``/``smoke`` scaled down); a recipe says which fields make up which stage.


@dataclass(frozen=True)
class Stage:
    """One training stage: fresh SGD (momentum, weight decay) and its own warm-up + cosine schedule.

    Attributes:
        index: 1-based stage number, passed to ``model.set_stage``.
        epochs: epochs of this stage (0 skips it).
        lr: initial (peak) learning rate.
        warmup_epochs: linear warm-up epochs before the cosine decay.
        trains: what the stage trains, in words.
    """

    index: int
    epochs: int
    lr: float
    warmup_epochs: int
    trains: str


# (epochs field, lr field, warm-up field or None, what is trained) per stage, by method. The EgoACO stages
# (what each trains, their learning rates and epochs) are the report's; which modules make up each stage is
# egolib.models' reconstruction (no EgoACO code was released). The report warms up no EgoACO stage (paper preset:
# warmup_epochs 0); where warmup_epochs is set, every stage starts with it, since each starts a fresh optimiser.
_ONE_STAGE = (("epochs", "lr", "warmup_epochs", "everything"),)
_EGOACO_STAGES = (
    ("epochs", "lr", "warmup_epochs", "attention, LSTA and classifiers; backbone frozen (eval-mode BN)"),
    ("epochs_stage2", "lr_stage2", "warmup_epochs", "+ the three cloned top layers"),
    ("epochs_stage3", "lr_stage3", "warmup_epochs", "+ conv4_x (ResNets) / the last three Inception layers"),
)
RECIPES: dict[str, tuple[tuple[str, str, str | None, str], ...]] = {
    "tsn": _ONE_STAGE,
    "gsm": _ONE_STAGE,
    "egoaco": _EGOACO_STAGES,
    "gsm_egoaco": _EGOACO_STAGES,
}


def recipe(cfg: RunConfig) -> list[Stage]:
    """The training stages of ``cfg``: GSM/TSN one stage (SGD, lr 0.01, 10 warm-up epochs, cosine, 60
    epochs at ``paper``); EgoACO three stages (60 + 60 epochs at lr 0.01, then 30 at 1e-4 at ``paper``)."""
    if cfg.method not in RECIPES:
        raise ValueError(f"no recipe for method {cfg.method!r}; choose one of {', '.join(RECIPES)}")
    return [
        Stage(i, getattr(cfg, e), getattr(cfg, lr), getattr(cfg, w) if w else 0, trains)
        for i, (e, lr, w, trains) in enumerate(RECIPES[cfg.method], start=1)
    ]


def make_optimizer(model: nn.Module, cfg: RunConfig, stage: Stage, steps_per_epoch: int):
    """SGD (or Adam, ``cfg.optimizer``) over the parameters the stage trains, with the step-wise warm-up + cosine
    schedule.

    As the released GSM code does in effect, every trained parameter (BN and biases
    included) gets the same learning rate and weight decay. Adam takes LSTA's released settings (eps 1e-4, L2
    weight decay); the report trains EgoACO with SGD.

    Returns:
        ``(optimizer, scheduler)``; call ``scheduler.step()`` after every optimiser step.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {stage.index} of {cfg.method} trains no parameter: check model.set_stage")
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=stage.lr, eps=1e-4, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=stage.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    schedule = WarmupCosine(stage.epochs * steps_per_epoch, stage.warmup_epochs * steps_per_epoch)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


# --------------------------------------------------------------------------------------------------
# 2. Multi-task loss: L = CE(verb) + CE(noun) + CE(action).


def multitask_loss(out: dict[str, Tensor], labels: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum of the verb, noun and action cross-entropies, each summed over the batch and divided by B.

    Dividing by the batch size (not by the number of labelled clips) keeps DDP exact: the mean over N
    processes of their per-process losses is the loss of one process holding all their clips. Action
    labels -1 (pairs unseen in training) contribute nothing.

    Args:
        out: logits ``verb (B, V)``, ``noun (B, N)``, ``action (B, A)``.
        labels: int64 ``verb``, ``noun``, ``action``, each ``(B,)``.

    Returns:
        ``(loss, parts)`` with ``parts[task]`` the detached per-task loss.
    """
    B = labels["verb"].shape[0]
    parts = {
        t: F.cross_entropy(out[t].float(), labels[t], ignore_index=-1, reduction="sum") / B for t in TASKS
    }
    return sum(parts.values()), {t: v.detach() for t, v in parts.items()}


# --------------------------------------------------------------------------------------------------
# 3. Distributed context: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK.


@dataclass(frozen=True)
class Dist:
    """Where this process runs: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no GPU; use -p device cpu (or auto)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup_distributed(cfg: RunConfig) -> Dist:
    """Join the torchrun process group when there is one (NCCL on GPUs, gloo on CPUs); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=resolve_device(cfg.device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device, local_rank)
    if not torch_dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch_dist.barrier()


def _all_sum(values: list[float], dist: Dist) -> list[float]:
    if dist.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=dist.device if dist.device.type == "cuda" else "cpu")
    torch_dist.all_reduce(t)
    return t.tolist()


# --------------------------------------------------------------------------------------------------
# 4. Data


# The splits a run is tested on, per dataset: EPIC-55's seen and unseen kitchens; EPIC-100's validation (public
# labels, the EPIC-100 metrics) and test (hidden labels, the challenge zip).
TEST_SPLITS = runs.TEST_SPLITS


@dataclass(frozen=True)
class Data:
    """The annotations and frame sources of one data set (SynthKitchens, EPIC-Kitchens-55 or EPIC-100)."""

    root: Path
    epic: Any  # egolib.epic.Epic55 or egolib.epic.Epic100
    actions: list[tuple[int, int]]
    synthetic: bool
    dataset: str = "epic55"

    @property
    def num_classes(self) -> dict[str, int]:
        return {"verb": len(self.epic.verb_classes), "noun": len(self.epic.noun_classes), "action": len(self.actions)}

    @property
    def test_splits(self) -> tuple[str, ...]:
        """``s1, s2`` (EPIC-55) or ``validation, test`` (EPIC-100)."""
        return TEST_SPLITS[self.dataset]

    def class_names(self, task: str) -> list[str]:
        """The ``verb`` or ``noun`` class keys in id order (EPIC-55 ``class_key``, EPIC-100 ``key``)."""
        table = self.epic.verb_classes if task == "verb" else self.epic.noun_classes
        return table["class_key" if "class_key" in table.columns else "key"].tolist()

    def frames(self, split: str) -> epic.FrameSource:
        """The frames of ``split`` (``egolib.epic.frame_source``)."""
        return epic.frame_source(self.root, self.dataset, split)

    def test_segments(self, split: str) -> tuple[pd.DataFrame, bool]:
        """Test segments of ``split`` (``test_splits``) with their labels when the data set ships them
        (SynthKitchens S1/S2, EPIC-100 validation)."""
        if split not in self.test_splits:
            raise ValueError(f"{self.dataset} is tested on {', '.join(self.test_splits)}, not {split!r}")
        if self.dataset == "epic100":
            return (self.epic.validation, True) if split == "validation" else (self.epic.test, False)
        labels = getattr(self.epic, f"test_{split}_labels")
        return (labels, True) if labels is not None else (getattr(self.epic, f"test_{split}"), False)

    def epic100_metrics(self, verb: np.ndarray, noun: np.ndarray) -> dict[str, dict[str, Any]]:
        """``egolib.metrics.epic100_metrics`` of validation scores: overall, tail classes, unseen participants.

        Args:
            verb: ``(N, V)`` verb logits, one row per validation segment in file order.
            noun: ``(N, Nn)`` noun logits.
        """
        val = self.epic.validation
        return metrics.epic100_metrics(verb, noun, val["verb_class"].to_numpy(), val["noun_class"].to_numpy(),
                                       val["participant_id"].tolist(), self.epic.tail_verbs, self.epic.tail_nouns,
                                       self.epic.unseen_validation)

    def many_shot(self) -> epic.ManyShot:
        """The many-shot lists shipped with the data (SynthKitchens scales the threshold), else recomputed;
        empty for EPIC-100, whose metrics use tail classes and unseen participants instead."""
        if self.dataset == "epic100":
            return epic.ManyShot(verbs=[], nouns=[], actions=[])
        return self.epic.many_shot_for_metrics


# What an EPIC-100 run needs from annotations/ (the train file is downloaded separately: it is large).
EPIC100_NEEDED = ("train", "validation", "test", "verb_classes", "noun_classes", "tail_verbs", "tail_nouns",
                  "unseen_validation")


def load_data(cfg: RunConfig, *, progress: bool = True) -> Data:
    """Annotations of ``cfg.dataset_path``; the embedded SynthKitchens draw of ``cfg.seed`` is generated first when
    missing."""
    root = cfg.dataset_path
    if cfg.data_root is None and not synthetic.is_generated(root, cfg.preset):  # complete: read-only is fine
        with runs.file_lock(root.parent / f".{root.name}.lock"):
            synthetic.ensure(root, preset=cfg.preset, seed=cfg.seed, progress=progress, layout=cfg.dataset)
    annotations = root / "annotations"
    if cfg.dataset == "epic100":
        if not annotations.is_dir():
            raise FileNotFoundError(
                f"no annotations folder {annotations}: data_root must be an EPIC-KITCHENS-100 root holding "
                "annotations/ (the EPIC_100_*.csv files) and PXX/rgb_frames/PXX_YY(Y)[.tar]"
            )
        ep = epic.load_epic100(annotations)
        missing = [epic.EPIC100_FILES[name][0] for name in EPIC100_NEEDED if getattr(ep, name) is None]
        if missing:
            raise FileNotFoundError(f"{annotations} lacks {', '.join(missing)}: copy them from the "
                                    "epic-kitchens-100-annotations repository")
        synthetic_set = (root / synthetic.MANIFEST).is_file()  # SynthKitchens in the EPIC-100 layout
        return Data(root=root, epic=ep, actions=epic.action_classes(ep.train), synthetic=synthetic_set,
                    dataset="epic100")
    if not annotations.is_dir():
        raise FileNotFoundError(
            f"no annotations folder {annotations}: data_root must be an EPIC-Kitchens-55 root holding annotations/ "
            "(the EPIC_*.csv files) and frames_rgb_flow/rgb/{train,test}/"
        )
    ep = epic.load_epic55(annotations)
    synthetic_set = ep.test_s1_labels is not None
    return Data(root=root, epic=ep, actions=epic.action_classes(ep.train), synthetic=synthetic_set)


class SeededClips(Dataset):
    """Makes every random draw of a training clip a function of (seed, epoch, index) alone.

    The wrapped dataset draws offsets, crops and flips from torch's global RNG; here each item runs under a
    forked RNG seeded from (seed, epoch, index). Clips therefore do not depend on the number of processes,
    the DataLoader workers or what ran before, which makes resume and DDP exact.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.draw(i, self.epoch)

    def draw(self, i: int, epoch: int) -> Any:
        """Item ``i`` as epoch ``epoch`` draws it."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_033 + i) % (2**63))
            return self.dataset[i]


def normalization(cfg: RunConfig) -> transforms.Normalization:
    """The backbone's input normalisation (``egolib.backbones.normalization``)."""
    return backbones.normalization(cfg.backbone)


def scale_size(cfg: RunConfig) -> int:
    """Test-time shorter side of the run's crop (``egolib.backbones.scale_size``): 256 for BN-Inception at 224,
    261 for InceptionV3 at 229 as the report says, and the same ratio at the smaller presets."""
    return backbones.scale_size(cfg.input_size)


def train_dataset(cfg: RunConfig, data: Data) -> SeededClips:
    """Training clips: TSN random offsets, multi-scale crop + flip (``egolib.transforms.train_transform``)."""
    ds = epic.EpicVideoDataset(
        data.epic.train,
        data.frames("train"),
        num_segments=cfg.num_segments,
        snippet_length=cfg.snippet_length,
        mode="train",
        transform=transforms.train_transform(normalization(cfg), cfg.input_size),
        actions=data.actions,
    )
    return SeededClips(ds, cfg.seed)


def test_transform(cfg: RunConfig):
    """GSM protocol: full frame, shorter side ``scale_size`` (fully convolutional); EgoACO: centre crop."""
    if cfg.test_crop == "full":
        return transforms.full_frame_transform(normalization(cfg), scale_size(cfg))
    return transforms.centre_transform(normalization(cfg), cfg.input_size, scale_size(cfg))


def untrained_test_taps(cfg: RunConfig, test_size: tuple[int, int]) -> list[str]:
    """Backbone convolution taps that the test input reads but training never reaches (``backbones.untrained_taps``).

    Training sees ``input_size`` squares. A non-empty answer means the test features go through weights that kept
    their initial values (InceptionV3 trained at 80 px, whose last maps are 1x1, tested on 91x162 full frames):
    raise ``input_size`` or test on crops.

    Args:
        test_size: ``(height, width)`` of a test input, as ``test_transform(cfg)`` makes it.
    """
    snippet = (cfg.snippet_length,) if cfg.backbone == "r2p1d34" else ()
    with torch.device("meta"):  # shapes only
        net = backbones.build_backbone(cfg.backbone, width=cfg.width)
    return backbones.untrained_taps(net, (3, *snippet, cfg.input_size, cfg.input_size), (3, *snippet, *test_size))


def test_dataset(cfg: RunConfig, data: Data, split: str, clip_index: int) -> Dataset:
    """Test clip ``clip_index`` (0: segment centres, 1: segment starts) of every segment of ``split``
    (``Data.test_splits``)."""
    segments, _ = data.test_segments(split)
    return epic.EpicVideoDataset(
        segments,
        data.frames(split),
        num_segments=cfg.num_segments,
        snippet_length=cfg.snippet_length,
        mode="test",
        clip_index=clip_index,
        transform=test_transform(cfg),
        actions=data.actions,
    )


# --------------------------------------------------------------------------------------------------
# 5. Model


def build(cfg: RunConfig, data: Data, backbone_weights: str | None) -> nn.Module:
    """``egolib.models.build_model`` with the run's classes, sizes and pretrained backbone."""
    n = data.num_classes
    return models.build_model(
        cfg.method,
        cfg.backbone,
        n["verb"],
        n["noun"],
        n["action"],
        width=cfg.width,
        num_segments=cfg.num_segments,
        snippet_length=cfg.snippet_length,
        pretrain=cfg.pretrain,
        backbone_weights=backbone_weights,
        dropout=cfg.dropout,
        lsta_memory=cfg.lsta_memory,
        lsta_pool=cfg.lsta_pool,
        egoaco_clone=cfg.egoaco_clone,
    )


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _autocast(device: torch.device):
    """bf16 (or fp16) autocast on CUDA; nothing on CPU (fp32 keeps CPU runs exactly reproducible)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


# --------------------------------------------------------------------------------------------------
# 6. Checkpoints: weights + constructor arguments + optimiser + scheduler + position + RNG states.


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """A training checkpoint (``weights_only``: plain tensors and containers), or None when absent.

    Raises:
        egolib.runs.CorruptFile: the file is truncated or differs from the hash recorded when it was written.
    """
    path = Path(path)
    return runs.load_torch(path, map_location="cpu") if path.exists() else None


def _write_log(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    runs.write_text(run_dir / LOG_CSV, pd.DataFrame(rows).to_csv(index=False))


def read_log(run_dir: str | Path) -> pd.DataFrame:
    """The per-epoch ``log.csv`` of a run (stage, epoch, lr, losses, training accuracies, time)."""
    return pd.read_csv(Path(run_dir) / LOG_CSV)


def _check_run_folder(cfg: RunConfig) -> None:
    """Write ``config.json``, or check that the folder's one describes the same run.

    A folder that holds nothing but a ``config.json`` (a run that failed before its first checkpoint) is taken
    over by any run.
    """
    path = cfg.run_path / "config.json"
    if path.exists():
        saved = runs.read_json(path)
        diff = runs.differences(saved, cfg.to_dict())
        started = {p.name for p in cfg.run_path.iterdir() if not p.name.startswith(".")} - {"config.json"}
        if diff and not started:
            log.warning("%s held only the config.json of a run that never trained: taken over", cfg.run_path)
        elif diff:
            detail = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in sorted(diff.items()))
            raise ValueError(
                f"run folder {cfg.run_path} holds a different run ({detail}); delete the folder or set run_dir"
            )
    # What the backbone starts from (a shipped stand-in: its file and SHA-256, checked here before anything trains)
    pre = pretrain.resolve(cfg)
    started_from = {"pretrain": pre.pretrain, "source": pre.source, "file": pre.path, "sha256": pre.sha256}
    runs.write_json(path, runs.manifest(cfg.to_dict()) | {"data_path": str(cfg.dataset_path),
                                                          "pretrained": started_from, "recipe": recipe_record(cfg)})


def recipe_record(cfg: RunConfig) -> dict[str, Any]:
    """The training recipe as ``config.json`` lists it: each stage's epochs, peak learning rate, warm-up epochs and
    what it trains, with the optimiser, the batch size, input size, segments and the stage-1 and stage-2 feature
    caches (their views per clip)."""
    return {"stages": [dataclasses.asdict(s) for s in recipe(cfg)], "optimizer": cfg.optimizer,
            "batch_size": cfg.batch_size,
            "input_size": cfg.input_size, "num_segments": cfg.num_segments,
            "stage1_feature_views": cfg.stage1_feature_views, "stage2_trunk_views": cfg.stage2_trunk_views}


def data_record(root: str | Path) -> dict[str, Any]:
    """Which data a run read, for its ``metrics.json``: the folder and, for SynthKitchens, the draw its own
    manifest names (preset, seed, generator version)."""
    draw = synthetic.read_draw(root)
    return {"path": str(root)} | ({k: v for k, v in draw.items() if k != "complete"} if draw else {})


# --------------------------------------------------------------------------------------------------
# 7. fit


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient norm: training stops at once, before the optimiser step."""


def _train_step(
    net: nn.Module,
    batch: dict[str, Any],
    opt: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    cfg: RunConfig,
    device: torch.device,
) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """One optimiser step on a batch of clips, or of their cached stage-1 branch maps or stage-2 trunk maps;
    returns the loss, its parts and the logits (detached)."""
    labels = {t: batch[t].to(device, non_blocking=True) for t in TASKS}
    with _autocast(device):
        if "maps" in batch:  # (B, 3, T, C', h, w) -> act, obj, ctx maps, each (B, T, C', h, w)
            out = net(maps=batch["maps"].to(device, non_blocking=True).unbind(1))
        elif "trunk" in batch:  # (B, T, C'', [t,] h', w')
            out = net(trunk=batch["trunk"].to(device, non_blocking=True))
        else:
            out = net(batch["clip"].to(device, non_blocking=True))  # (B, T*L, C, H, W)
    loss, parts = multitask_loss(out, labels)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    params = [p for g in opt.param_groups for p in g["params"]]
    grad_norm = None
    if cfg.clip_grad > 0:
        scaler.unscale_(opt)
        grad_norm = nn.utils.clip_grad_norm_(params, cfg.clip_grad)
    elif not scaler.is_enabled():
        grad_norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    # After backward, so that under DDP every process sees the all-reduced non-finite gradient and stops. With a
    # float16 grad scaler an infinite gradient is routine (the scaler skips the step): only the loss is checked.
    bad_grad = grad_norm is not None and not scaler.is_enabled() and not torch.isfinite(grad_norm)
    if bad_grad or not torch.isfinite(loss):
        raise TrainingDiverged(f"the loss is {loss.item():.4g}, the gradient norm "
                               f"{'unknown' if grad_norm is None else f'{grad_norm.item():.4g}'}")
    scaler.step(opt)
    scaler.update()
    scheduler.step()
    return loss.detach(), parts, {t: out[t].detach() for t in TASKS}


def _train_epoch(net, loader, opt, scheduler, scaler, cfg, dist, desc: str, progress: bool) -> dict[str, float]:
    """One epoch; the sums over all processes of the losses and hits, divided by the clips seen."""
    net.train()  # the model re-applies eval-mode BN to its frozen parts (set_stage)
    sums = np.zeros(8)  # loss, loss_verb, loss_noun, loss_action, hits verb/noun/action, clips
    labelled_actions = 0
    bar = tqdm(loader, desc=desc, disable=not (progress and dist.is_main), leave=False, mininterval=1.0)
    for step, batch in enumerate(bar, start=1):
        lr = scheduler.get_last_lr()[0]
        try:
            loss, parts, out = _train_step(net, batch, opt, scheduler, scaler, cfg, dist.device)
        except TrainingDiverged as e:
            raise TrainingDiverged(f"training diverged at {desc}, step {step}/{len(loader)}, learning rate "
                                   f"{lr:.4g}: {e}") from None
        B = batch["verb"].shape[0]
        hits = [(out[t].argmax(1).cpu() == batch[t]).sum().item() for t in TASKS]
        sums += [loss.item() * B, *(parts[t].item() * B for t in TASKS), *hits, B]
        labelled_actions += int((batch["action"] >= 0).sum())
        bar.set_postfix(loss=f"{sums[0] / sums[7]:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    total = _all_sum([*sums.tolist(), labelled_actions], dist)
    n, n_action = max(total[7], 1), max(total[8], 1)
    return {
        "loss": total[0] / n,
        **{f"loss_{t}": total[1 + i] / n for i, t in enumerate(TASKS)},
        "acc_verb": total[4] / n,
        "acc_noun": total[5] / n,
        "acc_action": total[6] / n_action,
        "clips": int(total[7]),
    }


def fit(cfg: RunConfig, *, progress: bool = True) -> Path:
    """Train ``cfg`` into ``cfg.run_path`` (resuming from its checkpoint) and return the run folder.

    Writes ``config.json``, ``checkpoint.pt`` after every epoch (weights, ``model_args``, optimiser,
    scheduler, stage/epoch, RNG states) and ``log.csv`` (one row per epoch). Under torchrun it trains with
    DistributedDataParallel and only rank 0 writes.
    """
    dist = setup_distributed(cfg)
    _fit(cfg, dist, progress=progress)
    return cfg.run_path


def fit_model(cfg: RunConfig, *, progress: bool = True) -> nn.Module:
    """Train ``cfg`` as ``fit`` does, in this process alone (no process group is joined), and return the model.

    This is the fit function ``egolib.pretrain.ensure`` is given: a pretraining runs inside a file lock that
    one process holds, even under torchrun.
    """
    return _fit(cfg, Dist(device=resolve_device(cfg.device)), progress=progress)


def _fit(cfg: RunConfig, dist: Dist, *, progress: bool) -> nn.Module:
    """``_fit_owned`` while this process owns the run folder (the main process of a torchrun job does)."""
    with _own(cfg.run_path, dist):
        return _fit_owned(cfg, dist, progress=progress)


def _own(run_dir: Path, dist: Dist) -> contextlib.AbstractContextManager:
    """The run folder's lock (``egolib.runs.exclusive``), taken by the main process only."""
    return runs.exclusive(run_dir) if dist.is_main else contextlib.nullcontext()


def _fit_owned(cfg: RunConfig, dist: Dist, *, progress: bool) -> nn.Module:
    """The run folder, the pretrained backbone and the data; then resume or start, and run the stages."""
    started = time.perf_counter()
    if dist.is_main:
        _check_run_folder(cfg)
    _barrier(dist)
    pre = pretrain.ensure(cfg, fit=fit_model, progress=progress and dist.is_main)
    data = load_data(cfg, progress=progress and dist.is_main)
    monitor = validation_monitor(cfg, data, dist)
    ckpt = _resumable_checkpoint(cfg.run_path)
    seed_everything(cfg.seed)  # the same initial weights in every process and every (re)start
    model = build(cfg, data, pre.path)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model = _to_device(model, dist, cfg)
    if ckpt is not None:
        log.info("resuming %s after stage %d epoch %d", cfg.run_path, ckpt["stage"], ckpt["epoch"])
        set_rng_state(ckpt["rng"])
    train_set = train_dataset(cfg, data)
    loader = _train_loader(train_set, cfg, dist, cfg.num_workers)
    if len(loader) == 0:
        raise ValueError(
            f"{len(train_set)} training clips make no batch of {cfg.batch_size} x {dist.world} processes; "
            "lower batch_size"
        )
    _run_stages(cfg, model, loader, dist, pre, ckpt, progress=progress, started=started,
                cached=_cached_loaders(cfg, model, train_set, dist, ckpt, progress=progress), monitor=monitor)
    _barrier(dist)
    return _unwrap(model)


def _train_loader(dataset: Dataset, cfg: RunConfig, dist: Dist, num_workers: int) -> DataLoader:
    """Batches of ``batch_size`` in the order of ``DistributedSampler(seed)`` (this process's share)."""
    sampler = DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
                      pin_memory=dist.device.type == "cuda")


# The feature caches of EgoACO's stages (``egolib.feature_cache``): stage -> (file, part, views option).
CACHES = {1: (feature_cache.FILE, "maps", "stage1_feature_views"),
          2: (feature_cache.TRUNK_FILE, "trunk", "stage2_trunk_views")}


def _cached_loaders(cfg: RunConfig, model: nn.Module, train_set: SeededClips, dist: Dist,
                    ckpt: dict[str, Any] | None, *, progress: bool) -> dict[int, DataLoader]:
    """Stage 1's and stage 2's batches from their feature caches (``egolib.feature_cache``), for each stage whose
    option is on and which has epochs left: the stage-1 branch maps of ``min(stage1_feature_views, epochs)`` views
    per clip, the stage-2 trunk maps of ``stage2_trunk_views`` views. Each is read back from its file in the run
    folder or built by the main process; both in one pass when both are built with the same number of views."""
    egoaco = _unwrap(model)
    done = (ckpt["stage"], ckpt["epoch"]) if ckpt is not None else (0, 0)
    base = {"config": {k: v for k, v in cfg.to_dict().items() if k not in PLACEMENT_FIELDS},
            "code_version": runs.code_version(), "clips": len(train_set)}
    wanted: dict[int, tuple[Path, dict[str, Any]]] = {}  # stage -> (file, key)
    for stage, (name, _, option) in CACHES.items():
        epochs = (cfg.epochs, cfg.epochs_stage2)[stage - 1]
        if cfg.stages == 1 or not getattr(cfg, option) or epochs == 0 or done >= (stage, epochs):
            continue
        views = min(cfg.stage1_feature_views, cfg.epochs) if stage == 1 else cfg.stage2_trunk_views
        frozen = feature_cache.frozen_hash(egoaco, ("backbone.", "tops.") if stage == 1 else ("backbone.",))
        wanted[stage] = (cfg.run_path / name, base | {"frozen": frozen, "views": views})
    caches: dict[int, dict[str, torch.Tensor] | None] = {}
    if dist.is_main:
        caches = {stage: feature_cache.read(path, key) for stage, (path, key) in wanted.items()}
        missing = [stage for stage in wanted if caches[stage] is None]
        groups = [missing] if len({wanted[s][1]["views"] for s in missing}) == 1 else [[s] for s in missing]
        for group in (g for g in groups if g):
            t0 = time.perf_counter()
            built = feature_cache.build(egoaco, train_set.draw, len(train_set), wanted[group[0]][1]["views"],
                                        batch_size=cfg.batch_size, device=dist.device, num_workers=cfg.num_workers,
                                        progress=progress, parts=tuple(CACHES[s][1] for s in group))
            for stage in group:
                caches[stage] = feature_cache.part_of(built, CACHES[stage][1])
                feature_cache.save(wanted[stage][0], wanted[stage][1], caches[stage], time.perf_counter() - t0)
    _barrier(dist)
    loaders = {}
    for stage, (path, key) in wanted.items():
        cache = caches.get(stage) or feature_cache.read(path, key)
        if cache is None:
            raise RuntimeError(f"{path}: the main process wrote no stage-{stage} feature cache this process can read")
        loaders[stage] = _train_loader(feature_cache.CachedViews(cache), cfg, dist, num_workers=0)
    return loaders


def _resumable_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's checkpoint when this library code wrote it and it verifies; None (train from the start)
    otherwise. A corrupt checkpoint is moved aside (``egolib.runs.set_aside``), never deleted."""
    try:
        ckpt = load_checkpoint(run_dir / CHECKPOINT)
    except runs.CorruptFile as e:
        log.warning("%s; it is moved aside to %s and the run trains again from the start", e,
                    runs.set_aside(e.path).name)
        return None
    if ckpt is not None and ckpt.get("code_version") != runs.code_version():
        log.warning("%s was written by other library code: training again from the start", run_dir / CHECKPOINT)
        return None
    return ckpt


def channels_last(cfg: RunConfig, device: torch.device) -> bool:
    """Whether the run's convolutions use channels-last weights: ``cfg.channels_last`` on / off, or on CUDA only
    (``auto``). On the CPU it is a measured speed lever (``benchmarks/bench_levers.py``), off unless asked for."""
    return device.type == "cuda" if cfg.channels_last == "auto" else cfg.channels_last == "on"


def place(model: nn.Module, cfg: RunConfig, device: torch.device) -> nn.Module:
    """``model`` on ``device``, with channels-last weights where ``channels_last`` says so (training, testing and
    re-scoring all place their model here)."""
    model.to(device)
    if channels_last(cfg, device):
        models.to_channels_last(model)
    return model


def _to_device(model: nn.Module, dist: Dist, cfg: RunConfig) -> nn.Module:
    """``place`` the model; SyncBatchNorm under DDP on CUDA."""
    model = place(model, cfg, dist.device)
    if dist.device.type == "cuda" and dist.world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _wrap_ddp(model: nn.Module, cfg: RunConfig, dist: Dist) -> nn.Module:
    """A fresh DDP wrapper (one per stage: the set of trained parameters changes); the model itself in one process."""
    if dist.world == 1:
        return model
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    # EgoACO's LSTA coupling dictionary gets no gradient at all: let DDP look for it
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=cfg.stages > 1)


def _run_stages(cfg: RunConfig, model: nn.Module, loader: DataLoader, dist: Dist, pre: pretrain.Pretraining,
                ckpt: dict[str, Any] | None, *, progress: bool, started: float,
                cached: dict[int, DataLoader] | None = None,
                monitor: Callable[[nn.Module], dict[str, float]] | None = None) -> None:
    """Stages -> epochs, from where ``ckpt`` stopped; a checkpoint and ``log.csv`` after every epoch.

    Each checkpoint records ``train_s``: the training time of every process that worked on the run so far (this
    one since ``started``, a ``time.perf_counter`` value, plus what the resumed checkpoint recorded).
    ``cached`` (stage -> the feature cache's batches) replaces ``loader`` at stages 1 and 2; a cache file is
    removed when its stage ends. ``monitor`` (``validation_monitor``) adds the validation split's top-1 to every
    epoch's row.
    """
    rows: list[dict[str, Any]] = list(ckpt["log"]) if ckpt is not None else []
    cached = dict(cached or {})
    earlier_s = float(ckpt.get("train_s", 0.0)) if ckpt is not None else 0.0
    done_stage, done_epoch = (ckpt["stage"], ckpt["epoch"]) if ckpt is not None else (0, 0)
    scaler = torch.amp.GradScaler("cuda", enabled=dist.device.type == "cuda" and not torch.cuda.is_bf16_supported())
    stages = recipe(cfg)
    trained = [s for s in stages if s.epochs > 0]
    global_epoch = 0  # epochs of all earlier stages: the sampler's and the clips' epoch counter
    for stage in stages:
        if stage.epochs == 0 or stage.index < done_stage:
            global_epoch += stage.epochs
            continue
        first = done_epoch if stage.index == done_stage else 0
        _unwrap(model).set_stage(stage.index)
        opt, scheduler = make_optimizer(_unwrap(model), cfg, stage, len(loader))
        if stage.index == done_stage:
            opt.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
        net = _wrap_ddp(model, cfg, dist) if first < stage.epochs else model
        batches = cached.get(stage.index, loader)
        for epoch in range(first, stage.epochs):
            t0 = time.perf_counter()
            batches.sampler.set_epoch(global_epoch + epoch)
            batches.dataset.set_epoch(global_epoch + epoch)
            lr = scheduler.get_last_lr()[0]
            desc = f"stage {stage.index}/{len(trained)} epoch {epoch + 1}/{stage.epochs}"
            try:
                stats = _train_epoch(net, batches, opt, scheduler, scaler, cfg, dist, desc, progress)
            except TrainingDiverged as e:
                raise TrainingDiverged(_divergence_advice(cfg, stage, str(e), rows)) from None
            row = {"stage": stage.index, "epoch": epoch + 1, "global_epoch": global_epoch + epoch + 1, "lr": lr,
                   **stats, "time_s": time.perf_counter() - t0}
            if monitor is not None:
                row |= monitor(model)
            rows.append(row)
            log.info("%s: loss %.4f acc verb %.3f noun %.3f action %.3f (%.0f s)", desc, row["loss"],
                     row["acc_verb"], row["acc_noun"], row["acc_action"], row["time_s"])
            if dist.is_main:
                _save_checkpoint(cfg.run_path, model, pre, rows, stage=stage.index, epoch=epoch + 1,
                                 optimizers={"optimizer": opt, "scheduler": scheduler, "scaler": scaler},
                                 train_s=earlier_s + time.perf_counter() - started)
            _barrier(dist)
        if batches is not loader:  # the stage is over: its cache is no longer needed
            del cached[stage.index], batches
            if dist.is_main:
                feature_cache.remove(cfg.run_path / CACHES[stage.index][0])
        global_epoch += stage.epochs
    if dist.is_main and not (cfg.run_path / CHECKPOINT).exists():  # a run of 0 epochs: keep the initial weights
        _save_checkpoint(cfg.run_path, model, pre, rows, stage=0, epoch=0, train_s=time.perf_counter() - started)


def _divergence_advice(cfg: RunConfig, stage: Stage, what: str, rows: list[dict[str, Any]]) -> str:
    """``what`` went wrong, what was kept, and which parameter to change."""
    lr_field = RECIPES[cfg.method][stage.index - 1][1]
    kept = (f"the last good checkpoint, {cfg.run_path / CHECKPOINT} (after stage {rows[-1]['stage']} epoch "
            f"{rows[-1]['epoch']}), is kept" if rows else "no checkpoint had been written yet")
    clip = " or set clip_grad (0 now: no clipping)" if cfg.clip_grad == 0 else ""
    return (f"{cfg.run_path}: {what}. Nothing of this epoch was saved, {kept} and no DONE is written. Lower the "
            f"learning rate ({lr_field}={getattr(cfg, lr_field):g}){clip} and run again")


def _save_checkpoint(run_dir: Path, model: nn.Module, pre: pretrain.Pretraining, rows: list[dict[str, Any]], *,
                     stage: int, epoch: int, train_s: float, optimizers: dict[str, Any] | None = None) -> None:
    """``models.save_model`` (``model_args`` + weights) plus where training stands: stage, epoch, RNG states, the
    optimiser, schedule and grad-scaler states, the log so far, the code version and the pretraining; then
    ``log.csv``."""
    states = {k: v.state_dict() for k, v in (optimizers or {}).items()}
    models.save_model(run_dir / CHECKPOINT, _unwrap(model), **states, stage=stage, epoch=epoch, rng=rng_state(),
                      log=rows, pretrain=dataclasses.asdict(pre), code_version=runs.code_version(), train_s=train_s)
    _write_log(run_dir, rows)


# --------------------------------------------------------------------------------------------------
# 8. evaluate


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, cfg: RunConfig, dist: Dist, *, desc: str = "test",
            progress: bool = True, attention: bool = False) -> tuple[list[str], dict[str, np.ndarray]]:
    """Logits of every item of ``dataset`` (each process takes every ``world``-th item; rank order restored).

    Args:
        attention: an EgoACO model also returns its attention maps of the same pass (``models.attention_taps``).

    Returns:
        ``(uids, out)`` in dataset order: ``out[task]`` float32 logits ``(N, classes)``; with ``attention``, also
        ``out[branch]`` float32 ``(N, T, h, w)`` for each branch of ``models.ATTENTION_BRANCHES``.
    """
    model.eval()
    indices = list(range(dist.rank, len(dataset), dist.world))
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=cfg.batch_size, shuffle=False,
                        num_workers=cfg.num_workers, pin_memory=dist.device.type == "cuda")
    keys = [*TASKS, *(models.ATTENTION_BRANCHES if attention else ())]
    uids: list[str] = []
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    taps = models.attention_taps(_unwrap(model)) if attention else contextlib.nullcontext({})
    with taps as maps:
        for batch in tqdm(loader, desc=desc, disable=not (progress and dist.is_main), leave=False, mininterval=1.0):
            with _autocast(dist.device):
                logits = model(batch["clip"].to(dist.device, non_blocking=True))  # (B, T*L, C, H, W) -> (B, classes)
            logits |= {b: m.pop() for b, m in maps.items()}  # this batch's attention, (B, T, h, w)
            for k in keys:
                out[k].append(logits[k].float().cpu().numpy())
            uids.extend(batch["uid"])
    mine = {"index": indices, "uid": uids, **{k: np.concatenate(v) if v else None for k, v in out.items()}}
    parts = [mine]
    if dist.world > 1:
        parts = [None] * dist.world
        torch_dist.all_gather_object(parts, mine)
    order = np.argsort(np.concatenate([p["index"] for p in parts]), kind="stable")
    all_uids = [u for p in parts for u in p["uid"]]
    out_all = {k: np.concatenate([p[k] for p in parts if p[k] is not None])[order] for k in keys}
    return [all_uids[i] for i in order], out_all


def test_scores(cfg: RunConfig, model: nn.Module, data: Data, split: str, dist: Dist, *,
                progress: bool = True, clips: int | None = None,
                first_clip: dict[str, np.ndarray] | None = None) -> scores.Scores:
    """``clips`` (default ``cfg.test_clips``) test clips of every segment of ``split`` (``Data.test_splits``), logits
    averaged, as a score file's content (``egolib.scores``): with the action vocabulary, the labels (-1 when hidden)
    and the many-shot lists (none on EPIC-100); uids are EPIC-100's narration ids there.

    Args:
        first_clip: a dict that receives what the pass over the first clip of every segment (the clip
            ``egolib.probes`` reads) computed: ``uid``, the logits of each task ``(N, classes)`` and, for EgoACO on a
            data set with object boxes (SynthKitchens: chapter 5's pointing game), the attention maps of each branch
            ``(N, T, h, w)``.
    """
    clip_logits = []
    attention = keeps_attention(model, data)
    for k in range(cfg.test_clips if clips is None else clips):
        ds = test_dataset(cfg, data, split, clip_index=k % 2)
        keep = first_clip is not None and k == 0
        uids, logits = predict(model, ds, cfg, dist, desc=f"test {split} clip {k + 1}", progress=progress,
                               attention=keep and attention)
        if keep:
            first_clip |= {"uid": np.array(uids)} | logits
            logits = {t: logits[t] for t in TASKS}
        clip_logits.append(logits)
    avg = {t: np.mean([c[t] for c in clip_logits], axis=0).astype(np.float32) for t in TASKS}  # (N, classes)
    segments, labelled = data.test_segments(split)
    key = "narration_id" if data.dataset == "epic100" else "uid"
    if [str(u) for u in segments[key]] != uids:
        raise RuntimeError(f"test {split}: predictions came back in another order than the segments")
    labels = [segments[f"{t}_class"].to_numpy() if labelled else None for t in ("verb", "noun")]
    if data.synthetic:  # the draw is named: an ensemble refuses members of two draws
        dataset = f"SynthKitchens {cfg.preset} seed {cfg.seed}" + (", EPIC-100 layout" if data.dataset == "epic100"
                                                                   else "")
    else:
        dataset = {"epic55": "EPIC-Kitchens-55", "epic100": "EPIC-KITCHENS-100"}[data.dataset]
    return scores.make(uids, avg, data.actions, *labels, data.many_shot(), dataset)


def validation_monitor(cfg: RunConfig, data: Data, dist: Dist) -> Callable[[nn.Module], dict[str, float]] | None:
    """With ``cfg.val_curve``: a function that scores the validation split (one clip per segment, the test crop)
    and returns ``val_verb``, ``val_noun``, ``val_action`` top-1 for the epoch's ``log.csv`` row; else None.

    The validation split is S1 of a set carved from the training videos (``egolib.synthetic.write_validation_set``)
    or EPIC-100's ``validation``. The EPIC-55 test splits are refused: recipes are never chosen on them.

    Raises:
        ValueError: ``val_curve`` on EPIC-55 data that is not a carved validation set.
    """
    if not cfg.val_curve:
        return None
    if data.dataset == "epic55" and not synthetic.is_validation_set(data.root):
        raise ValueError(f"val_curve scores the validation split after every epoch, and {data.root} is a data set "
                         "whose S1 is a test split: point data_root at a validation set carved from its training "
                         "videos (python -m egolib.synthetic --what validation)")
    split = data.test_splits[0]

    def monitor(model: nn.Module) -> dict[str, float]:
        s = test_scores(cfg, _unwrap(model), data, split, dist, progress=False, clips=1)
        top1 = (data.epic100_metrics(s.verb, s.noun)["overall"] if data.dataset == "epic100" else s.metrics())
        return {f"val_{t}": top1[t]["top1"] for t in TASKS}

    return monitor


def evaluate(cfg: RunConfig, model: nn.Module, *, progress: bool = True, data: Data | None = None,
             dist: Dist | None = None) -> dict[str, Any]:
    """The report's test protocol on the test splits: ``test_clips`` clips per segment, logits averaged.

    GSM/TSN (``test_crop=full``): whole frames, shorter side ``scale_size(cfg)``, fully-convolutional;
    EgoACO (``centre``): centre crop ``input_size`` of the ``scale_size`` frame. Writes ``scores_<split>.npz``
    (``egolib.scores``: uid, verb, noun, action logits, action vocabulary, labels, many-shot lists),
    ``metrics.json`` (the pretraining used, the protocol, and the metrics of each labelled split) and
    ``submission.zip`` into the run folder; GSM runs also ``scores_<split>_centre.npz`` of the labelled splits
    (``SECOND_CROP``).

    EPIC-55: splits ``s1`` and ``s2``, EPIC-55 metrics where the data set has test labels (SynthKitchens), the
    EPIC-55 challenge zip. EPIC-100: ``validation`` scored with the EPIC-100 metrics (overall, tail classes,
    unseen participants; actions from the verb x noun product, as the official evaluation), ``test`` into the
    EPIC-100 challenge zip (``test.json``, version 0.2).

    Returns:
        The content of ``metrics.json``.
    """
    dist = dist or setup_distributed(cfg)
    data = data or load_data(cfg, progress=progress and dist.is_main)
    model = place(_unwrap(model), cfg, dist.device)
    run_dir = cfg.run_path
    action_scores = ("verb x noun softmax product (top-100), as the EPIC-100 evaluation" if data.dataset == "epic100"
                     else "action head (top-100 pairs)")
    result: dict[str, Any] = {
        "run": cfg.name,
        "dataset": data.dataset,
        "data": data_record(data.root),
        "pretrain": dataclasses.asdict(pretrain.resolve(cfg)),
        "protocol": {"clips": cfg.test_clips, "crop": cfg.test_crop, "scale_size": scale_size(cfg),
                     "input_size": cfg.input_size, "num_segments": cfg.num_segments,
                     "action_scores": action_scores},
    }
    first = data.test_splits[0]
    test_size = tuple(test_dataset(cfg, data, first, 0)[0]["clip"].shape[-2:])  # (h, w) of a test input
    untrained = untrained_test_taps(cfg, test_size)
    if untrained:
        log.warning("%s: the %s test input %s reads %d kernel taps that training at %d px never reached (%s, ...): "
                    "its scores go through untrained weights; raise input_size", cfg.name, cfg.test_crop, test_size,
                    len(untrained), cfg.input_size, untrained[0])
    result["protocol"]["untrained_taps"] = len(untrained)
    split_scores = {}
    first_files = []
    for split in data.test_splits:
        first: dict[str, np.ndarray] | None = {} if data.test_segments(split)[1] else None
        s = test_scores(cfg, model, data, split, dist, progress=progress, first_clip=first)
        split_scores[split] = (s.uid.tolist(), {t: getattr(s, t) for t in TASKS})
        if dist.is_main:
            scores.write(run_dir / f"scores_{split}.npz", s)
        if s.labelled and data.dataset == "epic100":
            result[split] = data.epic100_metrics(s.verb, s.noun)
        elif s.labelled:
            result[split] = s.metrics()
        if first is not None:
            first_files.append(FIRST_CLIP_FILE.format(split=split))
            if dist.is_main:
                write_first_clip(run_dir / first_files[-1], first)
    if first_files:
        result["protocol"]["first_clip"] = {"files": first_files, "attention": keeps_attention(model, data)}
    second = _score_second_crop(cfg, model, data, dist, progress=progress)
    if second is not None:
        result["protocol"]["second_crop"] = second
    if dist.is_main:
        if data.dataset == "epic100":
            uids, logits = split_scores["test"]
            submission.write_epic100_submission(run_dir / "submission.zip",
                                                submission.epic100_json(uids, logits["verb"], logits["noun"]))
        else:
            _write_submission(run_dir, split_scores, data.actions)
        runs.write_json(run_dir / METRICS, result)
    _barrier(dist)
    return result


# GSM runs, tested fully convolutionally (the report's protocol), also score the centre crop (EgoACO's) of their
# labelled splits, once, when they are tested: chapter 6's protocol ablation reads these files (``scores_<split>_
# <crop>.npz``, hashed in ``DONE``) instead of re-scoring every GSM checkpoint.
SECOND_CROP = {"full": "centre"}
SECOND_CROP_METHODS = ("gsm",)


# Runs keep what the pass over the first test clip of every labelled segment computed: its logits and, for EgoACO,
# its attention maps (``first_clip_<split>.npz``, hashed in ``DONE``). Chapter 4's order probe reads the forward
# predictions and chapter 5's pointing game the maps, instead of running those clips through the checkpoint again.
FIRST_CLIP_FILE = "first_clip_{split}.npz"


def keeps_attention(model: nn.Module, data: Data) -> bool:
    """Whether the first-clip outputs hold attention maps: EgoACO models on SynthKitchens, whose object boxes the
    pointing game needs (on EPIC-Kitchens the maps of every clip would take about 100 MB per split for no chapter)."""
    return isinstance(_unwrap(model), models.EgoACO) and data.synthetic


def write_first_clip(path: Path, outputs: dict[str, np.ndarray]) -> None:
    """``first_clip_<split>.npz`` (atomic): ``uid``, the logits of each task and, for EgoACO, each branch's
    float32 ``(N, T, h, w)`` attention maps."""
    with runs.atomic_open(path, "wb") as f:
        np.savez(f, **outputs)


def extra_outputs(result: dict[str, Any]) -> list[str]:
    """The files an evaluation wrote beyond ``runs.run_outputs`` (second-crop scores, first-clip outputs), as its
    ``metrics.json`` content (``result``) lists them."""
    protocol = result.get("protocol", {})
    return [*protocol.get("second_crop", {}).get("files", []), *protocol.get("first_clip", {}).get("files", [])]


def _score_second_crop(cfg: RunConfig, model: nn.Module, data: Data, dist: Dist, *, progress: bool
                       ) -> dict[str, Any] | None:
    """Score ``SECOND_CROP[cfg.test_crop]`` on the labelled splits and write ``scores_<split>_<crop>.npz``; returns
    what ``metrics.json`` records of it (None when the run's crop has no second one)."""
    crop = SECOND_CROP.get(cfg.test_crop) if cfg.method in SECOND_CROP_METHODS else None
    if crop is None:
        return None
    other = dataclasses.replace(cfg, test_crop=crop)
    files = []
    for split in data.test_splits:
        if not data.test_segments(split)[1]:  # unlabelled (EPIC-100's test split): nothing to compare
            continue
        s = test_scores(other, model, data, split, dist, progress=progress)
        files.append(f"scores_{split}_{crop}.npz")
        if dist.is_main:
            scores.write(cfg.run_path / files[-1], s)
    return {"crop": crop, "files": files}


def _write_submission(run_dir: Path, scores: dict[str, tuple[list[str], dict]], actions: list[tuple[int, int]]) -> None:
    """The EPIC-55 challenge zip (``seen.json`` = S1, ``unseen.json`` = S2) from the averaged logits.

    Each segment's 100 best actions of the action head go in when the head has at least 100 (verb, noun)
    pairs; otherwise ``action`` is left out and the server ranks verb x noun products itself.
    """
    docs = []
    for split in ("s1", "s2"):
        uids, s = scores[split]
        enough = s["action"].shape[1] >= min(100, s["verb"].shape[1] * s["noun"].shape[1])
        acts = action_dicts(s["action"], actions) if enough else None
        docs.append(submission.epic55_json(uids, s["verb"], s["noun"], action_scores=acts))
    submission.write_epic55_submission(run_dir / "submission.zip", *docs)


# --------------------------------------------------------------------------------------------------
# 9. run + CLI


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``getrusage`` maxrss, in MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(cfg: RunConfig, *, progress: bool = True) -> dict[str, Any]:
    """fit + evaluate + ``DONE`` (written last, with the hash of every output), all while this process owns the
    run folder; a complete, current run whose files all verify is skipped and its metrics returned.

    Raises:
        egolib.runs.FolderInUse: another process is working in the run folder.
        TrainingDiverged: a non-finite loss or gradient norm (the last good checkpoint is kept).
    """
    dist = setup_distributed(cfg)
    with _own(cfg.run_path, dist):
        return _run_owned(cfg, dist, progress=progress)


def _run_owned(cfg: RunConfig, dist: Dist, *, progress: bool) -> dict[str, Any]:
    run_dir = cfg.run_path
    if runs.is_complete(run_dir, cfg.to_dict()):
        log.info("%s is complete, current and verified: skipped", run_dir)
        return runs.read_json(run_dir / METRICS)
    if dist.is_main:
        if (run_dir / runs.DONE).exists():
            missing = runs.unverified(run_dir, runs.run_outputs(cfg.dataset))
            log.info("%s is not complete: %s", run_dir, "; ".join(missing))
        (run_dir / runs.DONE).unlink(missing_ok=True)
    _fit(cfg, dist, progress=progress)
    t_eval = time.perf_counter()
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    model = models.load_model(run_dir / CHECKPOINT)
    result = evaluate(cfg, model, progress=progress, dist=dist)
    if dist.is_main:
        # train_s adds up every process that trained the run (resumes included); total_s adds this evaluation to it
        train_s, eval_s = float(ckpt.get("train_s", 0.0)), time.perf_counter() - t_eval
        result["resources"] = {"train_s": train_s, "eval_s": eval_s, "total_s": train_s + eval_s,
                               "peak_rss_mb": peak_rss_mb(), "processes": dist.world, "device": str(dist.device)}
        runs.write_json(run_dir / METRICS, result)
        runs.write_done(run_dir, [*runs.run_outputs(cfg.dataset), *extra_outputs(result)])
    _barrier(dist)
    return result


def summary(result: dict[str, Any]) -> pd.DataFrame:
    """A (split x metric) table in percent from the content of ``metrics.json`` (EPIC-100: the validation row of
    ``egolib.metrics.epic100_table``)."""
    if result.get("dataset") == "epic100":
        return metrics.epic100_table({"validation": result["validation"]}) if "validation" in result else pd.DataFrame()
    rows = {}
    for split in ("s1", "s2"):
        if split in result:
            rows[split.upper()] = {f"{m} {t}": 100 * result[split][t][m]
                                   for m in ("top1", "top5", "precision", "recall") for t in TASKS}
    return pd.DataFrame.from_dict(rows, orient="index")


def main(argv: list[str] | None = None) -> None:
    """``python -m egolib.train --config runs/<name>/config.json`` (also under ``torchrun``)."""
    parser = argparse.ArgumentParser(description="Train and evaluate one run (fit + evaluate + DONE).")
    parser.add_argument("--config", required=True, help="a run's config.json (RunConfig fields)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        cfg = RunConfig.from_json(args.config)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    if Path(args.config).resolve().parent != cfg.run_path.resolve():
        log.warning("%s describes the run folder %s: training there", args.config, cfg.run_path)
    try:
        run(cfg, progress=not args.no_progress)
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


if __name__ == "__main__":
    main()
