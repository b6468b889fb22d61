"""Feature caches: the frozen backbone's maps of K augmented views of every training clip, computed once.

At EgoACO's stage 1 the backbone (the shared trunk and the cloned top stages) is frozen and its BatchNorm layers
stay in eval mode (``egolib.models.StagedModel.train``); nothing in it draws random numbers. The branch maps of a
clip therefore depend on its augmented frames alone: they are computed once per view and read back in every epoch,
instead of decoding, transforming and running the backbone each time. A cached stage-1 epoch costs LSTA, the
attention recurrence and the head only.

Which views. View k of clip i is the clip that uncached training draws at epoch k (``egolib.train.SeededClips``:
segment offsets, crop and flip seeded by (seed, k, i)); epoch e of stage 1 reads view ``e mod K``. With K at least
the stage-1 epochs every epoch sees exactly the views uncached training sees. With fewer, epoch e repeats the
augmentation of epoch ``e mod K``: K fixed augmentations per clip instead of a fresh one each epoch (the
departure the option makes). The maps are stored as float16 (relative rounding at most 2**-11). When the three
cloned tops hold the same weights (always so at stage 1, which trains none of them) the three branches' maps are
equal and stored once.

The file. ``stage1_features.pt`` in the run folder, written atomically with its SHA-256 recorded
(``egolib.runs.save_torch``) and keyed by what makes it: the run's config, the code version, a hash of the frozen
weights, the clips and the views. A file that does not verify, has no recorded hash or holds another key is built
again, never read. The run removes it when stage 1 ends.

Cost: ``clips x K x T x C' x h x w x 2`` bytes, in memory while stage 1 trains and on disk until it ends (the
demo's EgoACO ResNet-34, width 1/4, 80 px: 720 clips x 8 views x 8 frames x 128 x 3 x 3 x 2 bytes = 106 MB); the
build is K epochs of decoding, augmenting and running the backbone, without the rest of the model.

Stage 2 (``stage2_trunk_views``). Stage 2 trains the cloned tops, but the shared trunk below them (conv1 to conv4_x
of a ResNet, the Inception layers below the top stage, and their GSM gates) stays frozen, its BatchNorm in eval
mode: its output depends on the augmented clip alone as well. ``stage2_trunk.pt`` holds that output
(``EgoACO.trunk_maps``) for K views, drawn as above; stage-2 epoch g (counted over all stages) reads view g mod K and
runs the cloned tops, LSTA, the attention and the head on it, forward and backward. With K at least the epochs of
stages 1 and 2, every stage-2 epoch reads the view an uncached run draws; with fewer it repeats K augmentations.
Built in the same pass as the stage-1 maps when both caches hold the same views; removed when stage 2 ends. Only
with cloned tops: in "fc" mode stage 2 trains the top stage itself. Its key hashes the trunk's weights alone, so
that a run resumed in stage 2 (its tops trained since) still reads it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from egolib import runs
from egolib.models import EgoACO
from egolib.progress import tqdm

log = logging.getLogger(__name__)

FILE = "stage1_features.pt"
TRUNK_FILE = "stage2_trunk.pt"
STORED_DTYPE = torch.float16
BRANCHES = ("act", "obj", "ctx")


# --------------------------------------------------------------------------------------------------
# What makes the maps


def frozen_hash(model: EgoACO, parts: tuple[str, ...] = ("backbone.", "tops.")) -> str:
    """SHA-256 of the weights and buffers that make the branch maps (the backbone and the cloned tops), or with
    ``parts=("backbone.",)`` the trunk maps (the cloned top stage is not in the backbone)."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(k for k in state if k.startswith(parts)):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def distinct_branches(model: EgoACO) -> list[int]:
    """Which stored map each branch (act, obj, ctx) reads: ``[0, 0, 0]`` when the three branches are the same maps
    (the ``fc`` clone shares one top; cloned tops with equal weights compute equal maps), else ``[0, 1, 2]``."""
    if model.tops is None:
        return [0, 0, 0]
    states = [model.tops[k].state_dict() for k in BRANCHES]
    same = all(torch.equal(states[0][n], s[n]) for s in states[1:] for n in states[0])
    return [0, 0, 0] if same else [0, 1, 2]


# --------------------------------------------------------------------------------------------------
# Build


class _Views(Dataset):
    """Item ``k * clips + i``: clip ``i`` as epoch ``k`` draws it."""

    def __init__(self, draw: Callable[[int, int], dict[str, Any]], clips: int, views: int) -> None:
        self.draw, self.clips, self.views = draw, clips, views

    def __len__(self) -> int:
        return self.clips * self.views

    def __getitem__(self, j: int) -> dict[str, Any]:
        k, i = divmod(j, self.clips)
        return self.draw(i, k) | {"index": i, "view": k}


@torch.no_grad()
def build(model: EgoACO, draw: Callable[[int, int], dict[str, Any]], clips: int, views: int, *, batch_size: int,
          device: torch.device, num_workers: int = 0, progress: bool = True,
          parts: tuple[str, ...] = ("maps",)) -> dict[str, Tensor]:
    """The branch maps (``parts`` "maps") and the shared trunk's maps ("trunk") of ``views`` augmented views of
    every training clip, through the frozen stage-1 backbone.

    Args:
        model: the EgoACO model; it is put at stage 1 in training mode (frozen BatchNorm in eval mode).
        draw: ``draw(i, epoch)``, training clip ``i`` as ``epoch`` draws it (``egolib.train.SeededClips.draw``):
            a dict with ``clip`` ``(T*L, C, H, W)`` and ``verb``, ``noun``, ``action``.
        clips: N, the training clips.
        views: K.
        batch_size: clips per backbone batch.
        device: where the backbone runs.
        num_workers: DataLoader workers that decode and augment.
        progress: show a progress bar.
        parts: what to keep, "maps" and / or "trunk".

    Returns:
        ``dict(maps=(N, K, G, T, C', h, w) float16, which=(3,) int64, trunk=(N, K, T, C'', h', w') float16,
        labels=(N, 3) int64 verb/noun/action)`` with the parts asked for: G distinct branch maps, ``which[b]`` the
        one branch b reads (``distinct_branches``); the trunk maps of 3D backbones have a time axis more.
    """
    if views < 1:
        raise ValueError(f"the feature cache needs at least one view per clip, got {views}")
    if not parts or set(parts) - {"maps", "trunk"}:
        raise ValueError(f"the feature cache keeps 'maps' and / or 'trunk', not {parts!r}")
    model.set_stage(1)
    model.train()  # as stage 1 trains: the frozen BatchNorm layers in eval mode
    which = distinct_branches(model)
    G = max(which) + 1
    kept: dict[str, Tensor] = {}
    labels = torch.empty(clips, 3, dtype=torch.int64)
    # the DataLoader's iterator draws a seed from torch's global RNG: fork it, so that training's dropout draws
    # are those of an uncached run
    with torch.random.fork_rng(devices=[]):
        loader = DataLoader(_Views(draw, clips, views), batch_size=batch_size, shuffle=False, num_workers=num_workers)
        for batch in tqdm(loader, desc="stage 1 feature cache", disable=not progress, leave=False, mininterval=1.0):
            trunk = model.trunk_maps(batch["clip"].to(device))  # (B, T, C'', [t,] h', w')
            made = {"trunk": trunk}
            if "maps" in parts:
                made["maps"] = torch.stack(model.branch_maps(trunk=trunk)[:G], 1)  # (B, G, T, C', h, w)
            for part in parts:
                z = made[part].to("cpu", STORED_DTYPE)
                if not torch.isfinite(z).all():
                    option = "stage1_feature_views" if part == "maps" else "stage2_trunk_views"
                    raise ValueError(f"{part} maps exceed the float16 range (largest magnitude "
                                     f"{made[part].abs().max().item():.4g}): the feature cache cannot hold them; "
                                     f"set {option}=0")
                if part not in kept:
                    kept[part] = torch.empty(clips, views, *z.shape[1:], dtype=STORED_DTYPE)
                kept[part][batch["index"], batch["view"]] = z
            labels[batch["index"]] = torch.stack([batch[t] for t in ("verb", "noun", "action")], 1)
    return kept | {"labels": labels} | ({"which": torch.tensor(which)} if "maps" in parts else {})


# --------------------------------------------------------------------------------------------------
# The file: keyed, verified, rebuilt when in doubt


def read(path: str | Path, key: dict[str, Any]) -> dict[str, Tensor] | None:
    """The cache in ``path`` when it verifies against its recorded SHA-256 and was made for ``key``; else None."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.with_name(path.name + runs.HASH_SUFFIX).is_file():
        log.warning("%s has no recorded SHA-256: not trusted, built again", path)
        return None
    try:
        data = runs.load_torch(path)
    except runs.CorruptFile as e:
        log.warning("%s: built again", e)
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        log.warning("%s was made for another run, code, backbone or number of views: built again", path)
        return None
    return {k: v for k, v in data.items() if k != "key"}


def part_of(built: dict[str, Tensor], part: str) -> dict[str, Tensor]:
    """The stage-1 ("maps") or stage-2 ("trunk") cache within what ``build`` returned, as a run keeps it."""
    return {k: v for k, v in built.items() if k in (part, "labels") or (part == "maps" and k == "which")}


def save(path: str | Path, key: dict[str, Any], cache: dict[str, Tensor], seconds: float) -> None:
    """Write ``cache`` to ``path`` with ``key`` (atomically, its SHA-256 recorded)."""
    runs.save_torch(path, {"key": key, **cache})
    part = cache["maps"] if "maps" in cache else cache["trunk"]
    log.info("%s: %d clips x %d views, %.1f MB, built in %.1f s", path, part.shape[0], part.shape[1],
             part.numel() * part.element_size() / 1e6, seconds)


def ensure(path: str | Path, key: dict[str, Any], make: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
    """``read(path, key)``, or ``make()`` written to ``path`` (atomically, its SHA-256 recorded) with ``key``."""
    cache = read(path, key)
    if cache is None:
        t0 = time.perf_counter()
        cache = make()
        save(path, key, cache, time.perf_counter() - t0)
    return cache


def remove(path: str | Path) -> None:
    """Delete the cache file and its hash record (its stage is over)."""
    path = Path(path)
    for p in (path, path.with_name(path.name + runs.HASH_SUFFIX)):
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Training items


class CachedViews(Dataset):
    """Training items read from a cache: at epoch e, view ``e mod K`` of each clip.

    Items are dicts ``maps`` ``(3, T, C', h, w)`` float32 (act, obj, ctx; a stage-1 cache) or ``trunk``
    ``(T, C'', [t,] h', w')`` float32 (a stage-2 cache), and ``verb``, ``noun``, ``action`` (ints); the default
    collate makes batches of them.
    """

    def __init__(self, cache: dict[str, Tensor]) -> None:
        self.part = "maps" if "maps" in cache else "trunk"
        self.maps, self.labels = cache[self.part], cache["labels"]
        self.which = cache.get("which")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.maps.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        k = self.epoch % self.maps.shape[1]
        verb, noun, action = self.labels[i].tolist()
        view = self.maps[i, k] if self.which is None else self.maps[i, k, self.which]
        return {self.part: view.float(), "verb": verb, "noun": noun, "action": action}
