"""Probes inside trained models: GSM gates, EgoACO attention, the pointing game and the order probe.

SynthKitchens was built so that two claims of the report can be measured (``egolib.synthetic``): GSM models
time (its verbs come in time-reversal pairs that an order-blind model cannot tell apart) and EgoACO looks at
the active object (every frame has the active object's box). This module computes; ``egolib.figures`` draws.

Read top-down:

    capture          one forward pass with hooks: the logits, every GSM gate, every EgoACO attention map
    pointing game    the peak of a map inside a box, and the centre-prior and random-peak baselines
    run folders      a trained run, its test clips as the model sees them, the active-object boxes in that view
    order probe      S1/S2 clips of the reversal pairs played forward and backward
    gate statistics  per GSM layer: mean |gate|, past vs future, correlation with motion and with the object
    attention probe  the pointing game of each EgoACO branch on S1/S2

GSM gate directions (``egolib.gsm``): channel group 0 of a GSM sends the gated features of frame ``t + 1`` to
frame ``t`` (frame t receives from the future), group 1 those of frame ``t - 1`` (from the past).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from egolib import ensemble, gsm, models, runs, train, transforms
from egolib.config import DATASETS, RunConfig
from egolib.synthetic_render import REVERSAL_PAIRS

BRANCHES = models.ATTENTION_BRANCHES
BOXES_CSV = "synth_object_boxes.csv"

# --------------------------------------------------------------------------------------------------
# 1. capture: hooks that record, never change


@dataclass
class Capture:
    """What one forward pass of ``capture`` recorded.

    Attributes:
        outputs: the model's logits, ``dict(verb=(B, V), noun=(B, N), action=(B, A))``, equal to ``model(clip)``.
        gates: one tensor per GSM module in forward order, each ``(B, T, 2, h, w)`` in [-1, 1]: the tanh gate of
            channel group 0 (frame t receives from t + 1) and group 1 (from t - 1); ``[]`` without GSM.
        gate_names: the dotted module names of the GSMs, in the order of ``gates``.
        attention: EgoACO models: ``dict(act=, obj=, ctx=)``, each ``(B, T, h, w)`` summing to 1 over ``h*w``;
            ``{}`` for other models.
    """

    outputs: dict[str, Tensor]
    gates: list[Tensor] = field(default_factory=list)
    gate_names: list[str] = field(default_factory=list)
    attention: dict[str, Tensor] = field(default_factory=dict)


def _gate_from_bn(module: gsm.GateShift, bn_out: Tensor) -> Tensor:
    """The gate ``tanh(conv3d(relu(bn)))`` of ``module`` from the output of its own BN3d (computed once, in
    the module's forward, so train-mode statistics are not updated twice).

    Args:
        module: the GSM.
        bn_out: ``(B*T, C, 1, H, W)``, what ``module.bn`` returned in this forward pass.

    Returns:
        ``(B, T, 2, H, W)``.
    """
    N, C, _, H, W = bn_out.shape
    T = module.num_segments
    v = F.relu(bn_out).view(N // T, T, C, H, W).transpose(1, 2)  # (B, C, T, H, W)
    conv = module.conv3D
    g = F.conv3d(v, conv.weight, conv.bias, padding=1, groups=2)  # (B, 2, T, H, W)
    return torch.tanh(g).transpose(1, 2)  # (B, T, 2, H, W)


@torch.no_grad()
def capture(model: nn.Module, clip: Tensor) -> Capture:
    """One forward pass (no grad) that records the logits, the GSM gates and the EgoACO attention maps.

    Forward hooks only read: the outputs are those of ``model(clip)`` (bit-identical in eval mode; in train
    mode dropout draws as usual). Gates are recomputed from what each GSM's BN3d returned in this pass.

    Args:
        model: a video model (``egolib.models``), usually from ``models.load_model`` (eval mode).
        clip: ``(B, T*L, C, H, W)``.

    Returns:
        A ``Capture``.
    """
    names = {id(m): n for n, m in model.named_modules()}
    gsms = [m for m in model.modules() if isinstance(m, gsm.GateShift)]
    pending: dict[int, Tensor] = {}
    rec = Capture(outputs={})
    handles = []

    def bn_hook(owner: gsm.GateShift):
        def hook(_m: nn.Module, _inp: tuple, out: Tensor) -> None:
            pending[id(owner)] = out

        return hook

    def gsm_hook(m: nn.Module, _inp: tuple, _out: Tensor) -> None:
        rec.gates.append(_gate_from_bn(m, pending.pop(id(m))).detach())
        rec.gate_names.append(names[id(m)])

    taps = models.attention_taps(model) if isinstance(model, models.EgoACO) else contextlib.nullcontext({})
    try:
        for m in gsms:
            handles.append(m.bn.register_forward_hook(bn_hook(m)))
            handles.append(m.register_forward_hook(gsm_hook))
        with taps as maps:
            rec.outputs = model(clip)
        rec.attention = {b: m[-1] for b, m in maps.items()}
    finally:
        for h in handles:
            h.remove()
    return rec


# --------------------------------------------------------------------------------------------------
# 2. The pointing game and its baselines


def peak_centres(maps: np.ndarray) -> np.ndarray:
    """The centre of each map's peak cell, as fractions of the width and height.

    The peak is the first maximum in row-major order (``np.argmax``) at row ``i``, column ``j``; its centre is
    ``((j + 0.5) / W, (i + 0.5) / H)``.

    Args:
        maps: ``(N, H, W)``.

    Returns:
        ``(N, 2)`` float64 ``(x, y)``.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    N, H, W = maps.shape
    i, j = np.divmod(maps.reshape(N, H * W).argmax(1), W)  # (N, H, W) -> (N, H*W): first maximum -> row i, col j
    return np.stack([(j + 0.5) / W, (i + 0.5) / H], 1)


def pointing_hits(maps: np.ndarray, boxes: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Which maps point inside their box: the peak's cell centre lies in the box grown by ``tolerance``.

    Args:
        maps: ``(N, H, W)``.
        boxes: ``(N, 4)`` ``(x0, y0, x1, y1)`` in fractions of the frame's width and height.
        tolerance: grows the box on every side (a fraction of the frame); edges count as inside.

    Returns:
        ``(N,)`` bool.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    centres = peak_centres(maps)
    if boxes.shape != (len(centres), 4):
        raise ValueError(f"boxes must be (N, 4) with N = {len(centres)} maps, got shape {boxes.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    x, y = centres[:, 0], centres[:, 1]
    x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
    t = tolerance
    return (x0 - t <= x) & (x <= x1 + t) & (y0 - t <= y) & (y <= y1 + t)


def pointing_game(maps: np.ndarray, boxes: np.ndarray, tolerance: float = 0.0) -> float:
    """The pointing game: the fraction of maps whose peak falls inside the box (``pointing_hits``).

    Args:
        maps: ``(N, H, W)``, N >= 1.
        boxes: ``(N, 4)`` ``(x0, y0, x1, y1)`` in fractions of the frame.
        tolerance: grows each box on every side.

    Returns:
        Hits / N, in [0, 1].
    """
    hits = pointing_hits(maps, boxes, tolerance)
    if len(hits) == 0:
        raise ValueError("the pointing game needs at least one map (no frame with a visible box?)")
    return float(hits.mean())


def centre_prior(n: int, height: int, width: int) -> np.ndarray:
    """A centre-biased baseline map: minus the squared distance of each cell centre to the frame centre.

    Args:
        n: maps (one per frame scored).
        height: H, rows of the grid.
        width: W, columns of the grid.

    Returns:
        ``(n, height, width)``; with an even side the first of the central cells (row-major) is the peak.
    """
    y = (np.arange(height) + 0.5) / height - 0.5
    x = (np.arange(width) + 0.5) / width - 0.5
    m = -(y[:, None] ** 2 + x[None, :] ** 2)  # (H, W)
    return np.broadcast_to(m, (n, height, width)).copy()


def random_peaks(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uniform-random baseline: each map is one-hot at a cell drawn uniformly (seeded).

    Args:
        n: maps (one per frame scored).
        height: H, rows of the grid.
        width: W, columns of the grid.
        seed: the generator's seed.

    Returns:
        ``(n, height, width)`` float32.
    """
    rng = np.random.default_rng(seed)
    maps = np.zeros((n, height * width), dtype=np.float32)
    maps[np.arange(n), rng.integers(height * width, size=n)] = 1.0
    return maps.reshape(n, height, width)  # (n, H*W) -> (n, H, W)


# --------------------------------------------------------------------------------------------------
# 3. Run folders and clips as the model sees them


def train_command(name: str, runs: str | Path = "runs") -> str:
    """The papermill command that trains the run ``<method>-<backbone>-<pretrain>-<preset>[-<dataset>]-s<seed>``
    (``egolib.ensemble.train_command``; a name of another shape gets a command with the parameters to fill in)."""
    parts = name.split("-")
    if len(parts) == 5:
        parts.insert(4, "epic55")
    if len(parts) != 6 or parts[4] not in DATASETS or not parts[5].startswith("s") or not parts[5][1:].isdigit():
        return f"papermill book/03_train.ipynb {Path(runs) / name / 'train.ipynb'} -p method ... (see book/03_train)"
    method, backbone, pretrain, preset, dataset, seed = parts
    member = ensemble.Member(method=method, backbone=backbone, pretrain=pretrain)
    return ensemble.train_command(member, preset, int(seed[1:]), runs, dataset)


@dataclass
class ProbeClip:
    """One test clip, as the model sees it and as a reader sees it.

    Attributes:
        uid: the segment id. verb, noun: its labels (-1 when unlabelled).
        clip: the model input ``(T*L, C, h, w)`` (normalised).
        frames: the view the model gets, uint8 ``(T, h, w, 3)`` (middle frame of each snippet).
        boxes: the active object's box per segment ``(T, 4)`` in fractions of the view, NaN when not visible.
        frame_numbers: the frame file of each of the T views.
    """

    uid: str
    verb: int
    noun: int
    clip: Tensor
    frames: np.ndarray
    boxes: np.ndarray
    frame_numbers: list[int]

    @property
    def visible(self) -> np.ndarray:
        """``(T,)`` bool: the active object is in view."""
        return ~np.isnan(self.boxes).any(1)


@dataclass
class ProbeRun:
    """A trained run folder opened for probing: config, data, model (eval mode) and the object boxes."""

    path: Path
    cfg: RunConfig
    data: train.Data
    model: nn.Module
    boxes: pd.DataFrame | None
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def labelled_splits(self) -> tuple[str, ...]:
        """The test splits whose labels the probes can use: ``s1, s2`` (EPIC-55 SynthKitchens), ``validation``
        (EPIC-100; its test labels are hidden)."""
        splits = tuple(s for s in self.data.test_splits if self.data.test_segments(s)[1])
        if not splits:
            raise ValueError(f"run {self.name}: no test split of its dataset has public labels (EPIC-55's S1/S2 "
                             "labels are hidden), and the probes need them: run this chapter on SynthKitchens or on "
                             "EPIC-100, whose validation split is labelled")
        return splits

    def class_names(self, task: str) -> list[str]:
        """The ``verb`` or ``noun`` class keys in id order, whatever the dataset (``train.Data.class_names``)."""
        return self.data.class_names(task)

    def dataset(self, split: str) -> Dataset:
        """The test clips (segment centres) of ``split`` (``s1``/``s2``, ``validation``), as ``train.evaluate``
        reads its first clip; built once per split)."""
        if split not in self._datasets:
            self._datasets[split] = train.test_dataset(self.cfg, self.data, split, clip_index=0)
        return self._datasets[split]

    def segments(self, split: str) -> pd.DataFrame:
        """The labelled test segments of ``split``, in dataset order, with a ``uid`` column (EPIC-100: the
        narration id, as its clips and boxes name a segment)."""
        segments, labelled = self.data.test_segments(split)
        if not labelled:
            raise ValueError(f"{self.data.root}: the {split} test labels are not public; the probes need them")
        segments = segments.reset_index(drop=True)
        return segments if "uid" in segments else segments.assign(uid=segments["narration_id"].astype(str))

    def view(self, raw: Tensor) -> Tensor:
        """The test transform's geometry without normalisation: uint8 ``(N, 3, H, W)`` -> ``(N, 3, h, w)``."""
        x = transforms.resize_short_side(raw, train.scale_size(self.cfg))
        return x if self.cfg.test_crop == "full" else transforms.centre_crop(x, self.cfg.input_size)

    def view_boxes(self, boxes_px: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """Frame-pixel boxes ``(N, 4)`` -> fractions of the test view (resized, centre-cropped for EgoACO),
        clipped to it; NaN rows stay NaN and boxes left with no area become NaN."""
        H, W = frame_hw
        s = train.scale_size(self.cfg)
        h, w = (s, int(s * W / H)) if H <= W else (int(s * H / W), s)  # torchvision's resize of the short side
        top = left = 0
        vh, vw = h, w
        if self.cfg.test_crop != "full":
            vh = vw = self.cfg.input_size
            top, left = int(round((h - vh) / 2.0)), int(round((w - vw) / 2.0))
        b = np.asarray(boxes_px, dtype=np.float64)
        out = np.stack([(b[:, 0] * w / W - left) / vw, (b[:, 1] * h / H - top) / vh,
                        (b[:, 2] * w / W - left) / vw, (b[:, 3] * h / H - top) / vh], 1).clip(0, 1)
        empty = (out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1])
        out[empty] = np.nan
        return out

    def clip(self, split: str, index: int) -> ProbeClip:
        """Test clip ``index`` of ``split`` (dataset order) with its frames and active-object boxes.

        The model input is the dataset's item (``clip`` equals ``dataset(split)[index]["clip"]``); the frames are
        decoded once.
        """
        ds = self.dataset(split)
        numbers = ds.frame_numbers(index)
        raw = ds.frames.read(ds.participants[index], ds.videos[index], numbers, uid=ds.uids[index])  # (T*L, 3, H, W)
        middle = raw[self.cfg.snippet_length // 2 :: self.cfg.snippet_length]  # (T, 3, H, W): each snippet's middle
        frames = self.view(middle).permute(0, 2, 3, 1).numpy()  # (T, h, w, 3)
        shown, boxes = self.clip_boxes(split, index, tuple(raw.shape[-2:]))
        return ProbeClip(ds.uids[index], ds.verbs[index], ds.nouns[index], ds.transform(raw), frames, boxes, shown)

    def clip_boxes(self, split: str, index: int, frame_hw: tuple[int, int]) -> tuple[list[int], np.ndarray]:
        """The frame numbers shown by test clip ``index`` of ``split`` (the middle frame of each snippet) and the
        active object's box in each, ``(T, 4)`` in fractions of the view (NaN where not visible), without decoding
        a frame (``frame_hw``: the frames' size)."""
        ds = self.dataset(split)
        shown = ds.frame_numbers(index)[self.cfg.snippet_length // 2 :: self.cfg.snippet_length]
        boxes = np.full((len(shown), 4), np.nan)
        if self.boxes is not None:
            rows = self.boxes[self.boxes.uid == ds.uids[index]].set_index("frame")
            px = rows.reindex(shown)[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)  # NaN where absent
            boxes = self.view_boxes(px, frame_hw)
        return shown, boxes


def read_active_boxes(dataset_root: str | Path) -> pd.DataFrame | None:
    """The visible active-object boxes of a SynthKitchens set (``annotations/synth_object_boxes.csv``), or None
    for a data set without them (EPIC-Kitchens). Columns ``uid`` (str), ``frame, x1, y1, x2, y2`` (frame pixels)."""
    path = Path(dataset_root) / "annotations" / BOXES_CSV
    if not path.is_file():
        return None
    boxes = pd.read_csv(path)
    boxes = boxes[(boxes.role == "active") & (boxes.visible == 1)]
    boxes = boxes[["uid", "frame", "x1", "y1", "x2", "y2"]].drop_duplicates(["uid", "frame"]).reset_index(drop=True)
    return boxes.assign(uid=boxes.uid.astype(str))


def open_run(runs: str | Path, name: str) -> ProbeRun:
    """Open the trained run ``<runs>/<name>`` (its ``config.json`` and ``checkpoint.pt``).

    Raises:
        FileNotFoundError: the run is missing or unfinished; the message names the command that trains it.
    """
    path = Path(runs) / name
    missing = [f for f in ("config.json", "checkpoint.pt", "DONE") if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"run {path} is missing or unfinished (no {', '.join(missing)}); train it first with:\n"
            f"    {train_command(name, runs)}"
        )
    cfg = RunConfig.from_json(path / "config.json")
    data = train.load_data(cfg, progress=False)
    model = models.load_model(path / "checkpoint.pt")
    return ProbeRun(path, cfg, data, model, read_active_boxes(data.root))


# --------------------------------------------------------------------------------------------------
# 4. The order probe


def reversal_pairs(
    verb_names: Sequence[str], pairs: Sequence[tuple[str, str]] = REVERSAL_PAIRS
) -> list[tuple[int, int]]:
    """Class ids of the time-reversal verb pairs whose two verbs are both in ``verb_names`` (by class key).

    Args:
        verb_names: verb class keys in id order (``epic.verb_classes["class_key"]``).
        pairs: verb-name pairs; default SynthKitchens' (take/put, open/close, turn-on/turn-off, push/pull).

    Returns:
        ``[(id_a, id_b), ...]``.
    """
    index = {str(n): i for i, n in enumerate(verb_names)}
    return [(index[a], index[b]) for a, b in pairs if a in index and b in index]


@torch.no_grad()
def order_predictions(model: nn.Module, dataset: Dataset, *, batch_size: int = 8,
                      forward: Sequence[int] | None = None) -> pd.DataFrame:
    """Top-1 verb of every clip played forward and played backward (the clip's frames in reverse order).

    Args:
        model: a video model returning ``dict(verb=(B, V), ...)``.
        dataset: items with ``clip`` ``(T*L, C, H, W)``, ``verb`` and ``uid``.
        batch_size: clips per forward pass.
        forward: the forward top-1 of every item, computed earlier (the run's own test pass): only the backward
            passes run.

    Returns:
        One row per clip: ``uid, verb, forward, backward``.
    """
    model.eval()
    rows = []
    for first, batch in zip(range(0, len(dataset), batch_size),
                            DataLoader(dataset, batch_size=batch_size, shuffle=False), strict=True):
        clip = batch["clip"]  # (B, T*L, C, H, W)
        ahead = (model(clip)["verb"].argmax(1).tolist() if forward is None
                 else [int(f) for f in forward[first:first + len(clip)]])
        backward = model(clip.flip(1))["verb"].argmax(1)  # time reversed, snippets included
        for u, v, f, b in zip(batch["uid"], batch["verb"].tolist(), ahead, backward.tolist(), strict=True):
            rows.append({"uid": str(u), "verb": int(v), "forward": int(f), "backward": int(b)})
    return pd.DataFrame(rows, columns=["uid", "verb", "forward", "backward"])


def order_table(predictions: pd.DataFrame, pairs: Sequence[tuple[int, int]], verb_names: Sequence[str]) -> pd.DataFrame:
    """Accuracy and within-pair confusion per reversal pair, forward and backward, in %.

    Columns: ``clips``; ``acc_forward`` (top-1 on the true verb); ``acc_backward`` (backward play, true verb:
    an order-blind model scores ``acc_forward`` here); ``acc_backward_swapped`` (backward play against the
    partner verb, the label a reversed clip deserves, which is also the % of backward plays predicted as the
    pair's other verb); ``partner_forward`` (% of forward plays predicted as the pair's other verb); ``flip``
    (% whose predicted verb changes when played backward). One row per pair (``"take/put"``) and a last row
    ``"all pairs"``.

    Args:
        predictions: from ``order_predictions`` (``verb, forward, backward``).
        pairs: verb-id pairs (``reversal_pairs``).
        verb_names: verb class keys in id order.
    """
    rows = {}
    partner = {}
    for a, b in pairs:
        partner[a], partner[b] = b, a
    for label, members in [(f"{verb_names[a]}/{verb_names[b]}", (a, b)) for a, b in pairs] + [
        ("all pairs", tuple(partner))
    ]:
        p = predictions[predictions.verb.isin(members)]
        other = p.verb.map(partner)
        n = len(p)

        def pct(mask: pd.Series, n: int = n) -> float:
            return 100.0 * float(mask.sum()) / n if n else float("nan")

        rows[label] = {
            "clips": n,
            "acc_forward": pct(p.forward == p.verb),
            "acc_backward": pct(p.backward == p.verb),
            "acc_backward_swapped": pct(p.backward == other),
            "partner_forward": pct(p.forward == other),
            "flip": pct(p.forward != p.backward),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def order_probe(run: ProbeRun, splits: Sequence[str] | None = None) -> pd.DataFrame:
    """``order_predictions`` on the reversal-pair clips of each split of a run (segment-centre clips).

    Args:
        run: an opened run (``open_run``) whose verb classes hold reversal pairs.
        splits: test splits to probe (None: the run's labelled splits, ``ProbeRun.labelled_splits``).

    Returns:
        Rows ``split, uid, verb, partner, forward, backward`` (``partner``: the other verb of the clip's pair). The
        forward predictions are those of the run's own test pass when it kept them (``stored_first_clip``).
    """
    splits = run.labelled_splits if splits is None else splits
    names = run.class_names("verb")
    partner = {a: b for pair in reversal_pairs(names) for a, b in (pair, pair[::-1])}
    verbs = set(partner)
    if not verbs:
        raise ValueError(f"{run.data.root}: no time-reversal verb pair ({REVERSAL_PAIRS}) among the verb classes")
    parts = []
    for split in splits:
        segments = run.segments(split)
        keep = np.flatnonzero(segments.verb_class.isin(verbs).to_numpy())
        kept = stored_first_clip(run, split)  # the forward pass of the run's own test, when it kept it
        forward = None if kept is None else kept["verb"][keep].argmax(1)
        pred = order_predictions(run.model, Subset(run.dataset(split), keep.tolist()), batch_size=run.cfg.batch_size,
                                 forward=forward)
        parts.append(pred.assign(split=split, partner=pred.verb.map(partner)))
    return pd.concat(parts, ignore_index=True)[["split", "uid", "verb", "partner", "forward", "backward"]]


# --------------------------------------------------------------------------------------------------
# 5. Gate statistics


def motion_map(clip: Tensor) -> Tensor:
    """Per-frame motion: mean absolute difference to the neighbouring frames, averaged over channels.

    Args:
        clip: ``(T, C, H, W)`` (T >= 2).

    Returns:
        ``(T, H, W)``: frame t averages ``|x[t] - x[t-1]|`` and ``|x[t+1] - x[t]|`` (one of them at the ends).
    """
    d = (clip[1:] - clip[:-1]).abs().mean(1)  # (T-1, H, W)
    before = torch.cat([d[:1], d])  # (T, H, W): difference to the previous frame (first frame: to the next)
    after = torch.cat([d, d[-1:]])
    return (before + after) / 2


def box_coverage(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """The fraction of each cell of an ``height x width`` grid covered by a box.

    Args:
        boxes: ``(T, 4)`` fractions ``(x0, y0, x1, y1)``; NaN rows give zero coverage.

    Returns:
        ``(T, height, width)`` in [0, 1].
    """
    b = np.nan_to_num(np.asarray(boxes, dtype=np.float64), nan=0.0)
    xs, ys = np.arange(width + 1) / width, np.arange(height + 1) / height

    def overlap(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:  # (T,) x (n+1,) -> (T, n)
        left = np.maximum(lo[:, None], edges[None, :-1])
        right = np.minimum(hi[:, None], edges[None, 1:])
        return np.clip(right - left, 0, None) * (len(edges) - 1)

    return overlap(b[:, 1], b[:, 3], ys)[:, :, None] * overlap(b[:, 0], b[:, 2], xs)[:, None, :]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def gate_statistics(
    gates: Sequence[Sequence[Tensor]], motions: Sequence[Tensor], boxes: Sequence[np.ndarray], names: Sequence[str]
) -> pd.DataFrame:
    """Per GSM layer over a set of clips: gate strength, direction and what it correlates with.

    Args:
        gates: per clip, the ``Capture.gates`` of that clip (batch of one): tensors ``(1, T, 2, h, w)``.
        motions: per clip, ``motion_map`` of its model input ``(T, H, W)``.
        boxes: per clip, the active-object boxes ``(T, 4)`` in fractions of the view (NaN: not visible).
        names: the GSM module names (``Capture.gate_names``).

    Returns:
        One row per layer (in forward order): ``name, h, w, mean_abs_gate``, ``from_past`` / ``from_future``
        (share of the total |gate| in group 1 / group 0, i.e. of what frames receive from the previous / the
        next frame), ``corr_motion`` (Pearson over frames and cells of |gate| averaged over the two groups
        with the motion pooled to the cell) and ``corr_object`` (the same with the cell's coverage by the
        active object's box, over frames where it is visible).
    """
    if not (len(gates) == len(motions) == len(boxes)):
        raise ValueError(f"{len(gates)} gate sets, {len(motions)} motion maps and {len(boxes)} box sets differ")
    rows = []
    for layer, name in enumerate(names):
        strength, past, future, g_all, m_all, g_vis, c_vis = [], 0.0, 0.0, [], [], [], []
        for clip_gates, motion, box in zip(gates, motions, boxes, strict=True):
            g = clip_gates[layer][0].abs().float()  # (T, 2, h, w)
            T, _, h, w = g.shape
            strength.append(g.mean().item())
            future += g[:, 0].sum().item()
            past += g[:, 1].sum().item()
            gm = g.mean(1)  # (T, h, w)
            pooled = F.adaptive_avg_pool2d(motion[:, None].float(), (h, w))[:, 0]  # (T, h, w)
            g_all.append(gm.flatten().numpy())
            m_all.append(pooled.flatten().numpy())
            visible = ~np.isnan(np.asarray(box)).any(1)
            cover = box_coverage(box, h, w)  # (T, h, w)
            g_vis.append(gm.numpy()[visible].ravel())
            c_vis.append(cover[visible].ravel())
        total = past + future
        rows.append({
            "layer": layer, "name": name, "h": h, "w": w,
            "mean_abs_gate": float(np.mean(strength)),
            "from_past": past / total if total else float("nan"),
            "from_future": future / total if total else float("nan"),
            "corr_motion": _corr(np.concatenate(g_all), np.concatenate(m_all)),
            "corr_object": _corr(np.concatenate(g_vis), np.concatenate(c_vis)),
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("layer")


# --------------------------------------------------------------------------------------------------
# 6. The attention probe


@torch.no_grad()
def attention_probe(run: ProbeRun, split: str, *, limit: int | None = None,
                    batch_size: int | None = None) -> pd.DataFrame:
    """Each EgoACO branch's attention peak against the active object's box, per frame of every test clip.

    Args:
        run: an EgoACO or GSM + EgoACO run on a data set with boxes (SynthKitchens).
        split: a labelled split: ``s1`` or ``s2`` (EPIC-55), ``validation`` (EPIC-100).
        limit: probe only the first ``limit`` clips (None: all).
        batch_size: clips per forward pass (None: the run's training batch). In eval mode a clip's maps do not
            depend on the batch it runs in (to float rounding), and a batch costs about a third per clip of
            single clips on the CPU (``benchmarks/bench_levers.py``).

    The maps are those the run kept when it was tested (``stored_attention``: no forward pass, no frame decoded),
    else they are computed from the checkpoint.

    Returns:
        One row per (clip, segment t) whose box is visible: ``uid, t, x0, y0, x1, y1`` (the box in fractions
        of the view), ``h, w`` (the map size) and, per branch in ``BRANCHES``, ``peak_x_<b>, peak_y_<b>`` (the
        peak cell's centre) and ``hit_<b>`` (``pointing_hits``, tolerance 0).
    """
    if not isinstance(run.model, models.EgoACO):
        raise ValueError(f"{run.name} is a {type(run.model).__name__}, not an EgoACO model: it has no attention")
    if run.boxes is None:
        raise ValueError(f"{run.data.root} has no {BOXES_CSV}: the attention probe needs the active-object boxes")
    n = len(run.dataset(split))
    n = n if limit is None else min(n, limit)
    stored = stored_attention(run, split)
    rows = []
    if stored is not None:  # the maps the run kept from the pass that scored these clips
        frame_hw = _frame_hw(run, split)
        for i in range(n):
            uid = run.dataset(split).uids[i]
            _, boxes = run.clip_boxes(split, i, frame_hw)
            rows.append(_pointing_rows(uid, boxes, {b: stored[b][i] for b in BRANCHES}))
    else:
        batch_size = batch_size or run.cfg.batch_size
        for first in range(0, n, batch_size):
            pcs = [run.clip(split, i) for i in range(first, min(first + batch_size, n))]
            att = capture(run.model, torch.stack([pc.clip for pc in pcs])).attention  # each (B, T, h, w)
            rows += [_pointing_rows(pc.uid, pc.boxes, {b: att[b][k].numpy() for b in BRANCHES})
                     for k, pc in enumerate(pcs)]
    rows = [r for r in rows if r is not None]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def stored_first_clip(run: ProbeRun, split: str) -> dict[str, np.ndarray] | None:
    """What the run kept of the pass over ``split``'s first test clips when it was tested
    (``train.FIRST_CLIP_FILE``): ``uid``, the logits of each task and, for EgoACO, each branch's ``(N, T, h, w)``
    attention maps, in dataset order; None for a run tested before runs kept them, or whose file no longer verifies
    against ``DONE`` (the probes then compute from the checkpoint)."""
    name = train.FIRST_CLIP_FILE.format(split=split)
    metrics = run.path / train.METRICS
    listed = train.extra_outputs(json.loads(metrics.read_text())) if metrics.is_file() else []
    if name not in listed or runs.unverified(run.path, [name]):
        return None
    with np.load(run.path / name) as f:
        kept = {k: f[k] for k in f.files}
    if kept["uid"].tolist() != [str(u) for u in run.dataset(split).uids]:
        return None  # another order of segments than this data set's: not these clips
    return kept


def stored_attention(run: ProbeRun, split: str) -> dict[str, np.ndarray] | None:
    """The attention maps of ``stored_first_clip`` (one ``(N, T, h, w)`` array per branch), or None."""
    kept = stored_first_clip(run, split)
    if kept is None or not set(BRANCHES) <= set(kept):
        return None
    return {b: kept[b] for b in BRANCHES}


def _frame_hw(run: ProbeRun, split: str) -> tuple[int, int]:
    """The frame size of ``split``'s first test clip (its frames are decoded once)."""
    ds = run.dataset(split)
    raw = ds.frames.read(ds.participants[0], ds.videos[0], ds.frame_numbers(0)[:1], uid=ds.uids[0])  # (1, 3, H, W)
    return tuple(raw.shape[-2:])


def _pointing_rows(uid: str, boxes: np.ndarray, att: dict[str, np.ndarray]) -> pd.DataFrame | None:
    """``attention_probe``'s rows of one clip from its boxes ``(T, 4)`` (fractions of the view, NaN when not
    visible) and its branches' maps (each ``(T, h, w)``); None when its box is never visible."""
    vis = ~np.isnan(boxes).any(1)
    if not vis.any():
        return None
    row = {"uid": uid, "t": np.flatnonzero(vis)}
    for k, name in enumerate(("x0", "y0", "x1", "y1")):
        row[name] = boxes[vis, k]
    for b in BRANCHES:
        maps = att[b][vis]  # (n_vis, h, w)
        centres = peak_centres(maps)
        row[f"peak_x_{b}"], row[f"peak_y_{b}"] = centres[:, 0], centres[:, 1]
        row[f"hit_{b}"] = pointing_hits(maps, boxes[vis])
        row["h"], row["w"] = maps.shape[1:]
    return pd.DataFrame(row)


def baseline_hits(frames: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The frames of ``attention_probe`` with the two baselines' hits added: ``hit_centre`` (the centre prior) and
    ``hit_random`` (a seeded random peak per frame), on the branches' map size (``h, w``).

    Args:
        frames: ``attention_probe``'s rows (one per frame with a visible box).
        seed: the random peaks' seed.
    """
    if frames.empty:
        raise ValueError("no frame with a visible active object: the pointing game has nothing to score")
    boxes = frames[["x0", "y0", "x1", "y1"]].to_numpy()
    (h, w), n = (int(v) for v in frames[["h", "w"]].iloc[0]), len(frames)
    return frames.assign(hit_centre=pointing_hits(centre_prior(n, h, w), boxes),
                         hit_random=pointing_hits(random_peaks(n, h, w, seed), boxes))


def pointing_table(frames: pd.DataFrame, *, seed: int = 0) -> pd.Series:
    """Pointing-game accuracy (%) of each branch and of the two baselines (``baseline_hits``) on the frames of
    ``attention_probe``.

    Args:
        frames: ``attention_probe``'s rows (one per frame with a visible box).
        seed: the random peaks' seed.

    Returns:
        ``act, obj, ctx, centre, random`` in %.
    """
    frames = baseline_hits(frames, seed=seed)
    return pd.Series({b: 100.0 * float(frames[f"hit_{b}"].mean()) for b in (*BRANCHES, "centre", "random")})
