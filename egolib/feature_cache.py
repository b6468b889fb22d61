"""Stage-1 feature cache: the frozen backbone's maps of K augmented views of every training clip, computed once.

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
STORED_DTYPE = torch.float16
BRANCHES = ("act", "obj", "ctx")


# --------------------------------------------------------------------------------------------------
# What makes the maps


def frozen_hash(model: EgoACO) -> str:
    """SHA-256 of the weights and buffers that make the branch maps (the backbone and the cloned tops)."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(k for k in state if k.startswith(("backbone.", "tops."))):
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
          device: torch.device, num_workers: int = 0, progress: bool = True) -> dict[str, Tensor]:
    """The branch maps of ``views`` augmented views of every training clip, through the frozen stage-1 backbone.

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

    Returns:
        ``dict(maps=(N, K, G, T, C', h, w) float16, labels=(N, 3) int64 verb/noun/action, which=(3,) int64)``:
        G distinct branch maps, ``which[b]`` the one branch b reads (``distinct_branches``).
    """
    if views < 1:
        raise ValueError(f"the feature cache needs at least one view per clip, got {views}")
    model.set_stage(1)
    model.train()  # as stage 1 trains: the frozen BatchNorm layers in eval mode
    which = distinct_branches(model)
    G = max(which) + 1
    maps: Tensor | None = None
    labels = torch.empty(clips, 3, dtype=torch.int64)
    # the DataLoader's iterator draws a seed from torch's global RNG: fork it, so that training's dropout draws
    # are those of an uncached run
    with torch.random.fork_rng(devices=[]):
        loader = DataLoader(_Views(draw, clips, views), batch_size=batch_size, shuffle=False, num_workers=num_workers)
        for batch in tqdm(loader, desc="stage 1 feature cache", disable=not progress, leave=False, mininterval=1.0):
            branch = model.branch_maps(batch["clip"].to(device))  # 3 x (B, T, C', h, w)
            z = torch.stack(branch[:G], 1).to("cpu", STORED_DTYPE)  # (B, G, T, C', h, w)
            if not torch.isfinite(z).all():
                raise ValueError(f"branch maps exceed the float16 range (largest magnitude "
                                 f"{max(m.abs().max().item() for m in branch):.4g}): the feature cache cannot hold "
                                 "them; set stage1_feature_views=0")
            if maps is None:
                maps = torch.empty(clips, views, *z.shape[1:], dtype=STORED_DTYPE)
            maps[batch["index"], batch["view"]] = z
            labels[batch["index"]] = torch.stack([batch[t] for t in ("verb", "noun", "action")], 1)
    return {"maps": maps, "labels": labels, "which": torch.tensor(which)}


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
    return {k: data[k] for k in ("maps", "labels", "which")}


def ensure(path: str | Path, key: dict[str, Any], make: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
    """``read(path, key)``, or ``make()`` written to ``path`` (atomically, its SHA-256 recorded) with ``key``."""
    cache = read(path, key)
    if cache is None:
        t0 = time.perf_counter()
        cache = make()
        runs.save_torch(path, {"key": key, **cache})
        log.info("%s: %d clips x %d views, %.1f MB, built in %.1f s", path, cache["maps"].shape[0],
                 cache["maps"].shape[1], cache["maps"].numel() * cache["maps"].element_size() / 1e6,
                 time.perf_counter() - t0)
    return cache


def remove(path: str | Path) -> None:
    """Delete the cache file and its hash record (stage 1 is over)."""
    path = Path(path)
    for p in (path, path.with_name(path.name + runs.HASH_SUFFIX)):
        p.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Training items


class CachedViews(Dataset):
    """Stage-1 training items read from the cache: at epoch e, view ``e mod K`` of each clip.

    Items are dicts ``maps`` ``(3, T, C', h, w)`` float32 (act, obj, ctx) and ``verb``, ``noun``, ``action`` (ints);
    the default collate makes ``maps`` a ``(B, 3, T, C', h, w)`` batch.
    """

    def __init__(self, cache: dict[str, Tensor]) -> None:
        self.maps, self.labels, self.which = cache["maps"], cache["labels"], cache["which"]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.maps.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        k = self.epoch % self.maps.shape[1]
        verb, noun, action = self.labels[i].tolist()
        return {"maps": self.maps[i, k, self.which].float(), "verb": verb, "noun": noun, "action": action}
