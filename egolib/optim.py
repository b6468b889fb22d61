"""What training and pretraining share: the warm-up + cosine schedule, seeding, and the RNG state of a checkpoint.

Neither ``egolib.train`` nor ``egolib.pretrain`` owns these, so both import them from here and never each other.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch


class WarmupCosine:
    """LR factor per optimiser step: linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0.

    A plain callable object (not a lambda) so that ``LambdaLR.state_dict`` saves it with the checkpoint.
    """

    def __init__(self, total: int, warmup: int) -> None:
        self.total, self.warmup = max(total, 1), min(warmup, total)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(self.total - self.warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, numpy and Python RNG states as plain tensors and containers (``weights_only`` loads it)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
