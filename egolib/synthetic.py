"""SynthKitchens: the embedded, procedurally generated egocentric kitchen dataset.

SynthKitchens is written in the exact EPIC-Kitchens-55 layout and CSV formats, so ``egolib.epic`` reads it
unchanged; ``layout="epic100"`` (``--layout epic100``) writes it in the EPIC-KITCHENS-100 layout instead, with
EPIC-100's splits (see ``LAYOUTS``). It probes what the models claim: time-reversal verb pairs (temporal
order), an active object among distractors (attention), ego-motion, and unseen kitchens (S2). Rendering
(taxonomy, textures, motion programs, camera) lives in ``egolib.synthetic_render``; this file plans the dataset,
writes it and makes the two pretraining stand-ins.

Read top-down: sizes per preset -> the action prior -> planning (kitchens, videos, segments, splits) ->
rendering a video (the unit of work and of resumption) -> annotation files -> ``generate`` / ``ensure``
-> pretraining sets -> checking a dataset folder -> the command line.

Determinism: every random draw comes from ``numpy.random.default_rng([seed, stream, index])``; a video's
pixels depend only on (seed, video), never on the worker that renders it, so the output is byte-identical
for any worker count. Resumption: each video is marked done (``.progress/<video>.done``) after its frames
and boxes are written (every file atomically, ``egolib.runs``); ``DONE`` is written last.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import multiprocessing as mp
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from egolib import synthetic_render as R
from egolib.config import synthkitchens_path
from egolib.progress import tqdm
from egolib.runs import DONE, read_json, write_bytes, write_json, write_text

REVERSAL_PAIRS = R.REVERSAL_PAIRS  # verb pairs whose reversed motion programs are each other's (the order probe)

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump when the generator's output changes: folders made by another version are refused
TAXONOMY_SEED = 2020  # fixes the action prior (which verb-noun pairs are frequent); independent of --seed
JPEG_QUALITY = 90
PROGRESS = ".progress"  # per-video completion markers and box tables, inside the dataset folder
MANIFEST = "synthkitchens.json"
VALIDATION_MARKER = "validation_set.json"  # what write_validation_set leaves in its folder

# EPIC-55's many-shot threshold (100) relative to the geometric mean of its mean verb-class and noun-class
# sizes: 100 / (28472 / sqrt(125 * 352)) = 0.737. SynthKitchens keeps that ratio (see many_shot_threshold).
EPIC55_TRAIN_SEGMENTS, EPIC55_VERBS, EPIC55_NOUNS = 28472, 125, 352


# --------------------------------------------------------------------------------------------------
# Sizes per preset


@dataclass(frozen=True)
class SynthSize:
    """How much SynthKitchens to generate."""

    kitchens: int  # participants P01..Pnn
    unseen: tuple[str, ...]  # S2 kitchens: held out of training entirely
    train_videos: int  # per seen kitchen
    train_segments: int  # per training video
    s1_videos: int  # held-out videos per seen kitchen
    s1_segments: int
    s2_videos: int  # per unseen kitchen
    s2_segments: int
    width: int  # frame size (16:9)
    height: int
    fps: float  # nominal frame rate
    min_seconds: float  # segment length range
    max_seconds: float
    # More test videos of the same kind (s1_segments / s2_segments each), planned after the videos above from a
    # random stream of their own: the training videos and the first test videos stay those of a plan without them.
    s1_more_videos: int = 0  # per seen kitchen
    s2_more_videos: int = 0  # per unseen kitchen


PRESETS: dict[str, SynthSize] = {
    # tens of segments, tiny frames: seconds to generate (CI)
    "smoke": SynthSize(kitchens=5, unseen=("P05",), train_videos=2, train_segments=6, s1_videos=1, s1_segments=3,
                       s2_videos=2, s2_segments=6, width=114, height=64, fps=8, min_seconds=1.0, max_seconds=3.0),
    # 720 train / 1,008 S1 / 1,008 S2 segments at 228x128, 12 fps. The training set is sized for CPU training;
    # S1 (12 seen kitchens x 6 videos x 14) and S2 (4 unseen kitchens x 18 videos x 14) are large enough for a
    # standard error of top-1 accuracy <= 1.6 points (1.5 at 50 %).
    "demo": SynthSize(kitchens=16, unseen=("P04", "P09", "P11", "P16"), train_videos=3, train_segments=20,
                      s1_videos=1, s1_segments=14, s2_videos=3, s2_segments=14, width=228, height=128, fps=12,
                      min_seconds=1.0, max_seconds=4.0, s1_more_videos=5, s2_more_videos=15),
}


# The EPIC-100 layout (``--layout epic100``), by EPIC-100's rules: every seen kitchen keeps ``s1_videos`` videos out
# of training for validation and as many for test (test videos are numbered PXX_1YY, as EPIC-100's extension
# videos); the ``unseen`` kitchens are held out of training entirely and go, alternately, to validation and to test
# (EPIC-100: P18, P32 unseen in validation; P33, P34, P36 in test). Tail classes and unseen participants are then
# derived from the planned training split (``egolib.epic.tail_classes``, ``unseen_participants``).
LAYOUTS = ("epic55", "epic100")
EPIC100_PRESETS: dict[str, SynthSize] = {
    "smoke": SynthSize(kitchens=5, unseen=("P04", "P05"), train_videos=2, train_segments=6, s1_videos=1,
                       s1_segments=3, s2_videos=1, s2_segments=6, width=114, height=64, fps=8, min_seconds=1.0,
                       max_seconds=3.0),
    "demo": SynthSize(kitchens=16, unseen=("P04", "P09", "P11", "P16"), train_videos=3, train_segments=20,
                      s1_videos=1, s1_segments=14, s2_videos=2, s2_segments=14, width=228, height=128, fps=12,
                      min_seconds=1.0, max_seconds=4.0),
}


def preset_size(preset: str, layout: str = "epic55") -> SynthSize:
    """The SynthKitchens size of a preset and layout (``paper`` has none: it runs on the real EPIC-Kitchens)."""
    if layout not in LAYOUTS:
        raise ValueError(f"SynthKitchens has no layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    sizes = PRESETS if layout == "epic55" else EPIC100_PRESETS
    if preset not in sizes:
        raise ValueError(f"SynthKitchens has no preset {preset!r}; choose one of {', '.join(sizes)} "
                         "(the 'paper' preset trains on the real EPIC-Kitchens: pass data_root)")
    return sizes[preset]


def many_shot_threshold(num_train: int, num_verbs: int = len(R.VERBS), num_nouns: int = len(R.NOUNS)) -> int:
    """EPIC's rule "a class is many-shot if it has more than 100 training segments", scaled to this size.

    100 is 0.737 times the geometric mean of EPIC-55's mean verb-class size (28472/125) and mean noun-class
    size (28472/352); the same ratio is applied here.
    """
    ratio = 100 / (EPIC55_TRAIN_SEGMENTS / math.sqrt(EPIC55_VERBS * EPIC55_NOUNS))
    return max(1, round(ratio * num_train / math.sqrt(num_verbs * num_nouns)))


# --------------------------------------------------------------------------------------------------
# The action prior: long-tailed (Zipf-like) verbs and nouns, restricted to compatible pairs.


def action_prior() -> np.ndarray:
    """p(verb, noun), shape (V, N), summing to 1; zero where the verb does not apply to the noun.

    Verb and noun weights fall as 1/rank (ids are ranks); each compatible pair gets a fixed log-normal
    factor (``TAXONOMY_SEED``) so the pair distribution is sparse and uneven, as in EPIC.
    """
    rng = np.random.default_rng(TAXONOMY_SEED)
    V, N = len(R.VERBS), len(R.NOUNS)
    wv = 1.0 / (np.arange(V) + 1.0) ** 0.9
    wn = 1.0 / (np.arange(N) + 1.0) ** 0.7
    compat = np.zeros((V, N))
    for v, name in enumerate(R.VERB_NAMES):
        for noun in R.COMPATIBLE[name]:
            compat[v, R.NOUN_NAMES.index(noun)] = 1.0
    pair = rng.lognormal(0.0, 0.8, size=(V, N))
    p = compat * wn[None, :] * pair
    p = p / p.sum(1, keepdims=True) * wv[:, None]  # verb marginal = wv (normalised below)
    return p / p.sum()


# --------------------------------------------------------------------------------------------------
# Planning: kitchens, videos, segments and splits (cheap; done in the main process).


@dataclass(frozen=True)
class SegmentPlan:
    uid: int
    verb: int
    noun: int
    start_frame: int  # 1-based, inclusive
    stop_frame: int  # inclusive


@dataclass(frozen=True)
class VideoPlan:
    video_id: str
    participant: str
    split: str  # train | s1 | s2 (EPIC-55 layout); train | validation | test (EPIC-100 layout)
    index: int  # position in the dataset: seeds the video's pixels
    num_frames: int
    segments: tuple[SegmentPlan, ...]

    @property
    def frame_split(self) -> str:
        """Frame folder: ``train`` or ``test`` (S1 and S2 together, as EPIC-55 distributes them)."""
        return "train" if self.split == "train" else "test"


@dataclass(frozen=True)
class Kitchen:
    """A participant's kitchen: counter look, hand skin tone and camera height (object scale)."""

    participant: str
    texture: R.TextureSpec
    skin: tuple[int, int, int]
    scale: float


def kitchen_look(seed: int, k: int) -> Kitchen:
    """The look of kitchen ``k`` (0-based) for dataset seed ``seed``."""
    rng = np.random.default_rng([seed, 1, k])
    texture = R.random_texture_spec(rng)
    base = np.asarray(R.SKIN_TONES[int(rng.integers(len(R.SKIN_TONES)))], float)
    skin = tuple(int(c) for c in np.clip(base * rng.uniform(0.92, 1.06), 0, 255))
    return Kitchen(f"P{k + 1:02d}", texture, skin, float(rng.uniform(0.85, 1.15)))  # type: ignore[arg-type]


def _video_splits(size: SynthSize, layout: str, participant: str, rng: np.random.Generator
                  ) -> list[tuple[str, str, int]]:
    """The videos of one kitchen as ``(video_id, split, segments)``, by the layout's rules (``LAYOUTS``)."""
    if layout == "epic55":
        if participant in size.unseen:
            splits = ["s2"] * size.s2_videos
        else:
            n = size.train_videos + size.s1_videos
            held = set(rng.choice(n, size=size.s1_videos, replace=False).tolist())
            splits = ["s1" if i in held else "train" for i in range(n)]
        count = {"train": size.train_segments, "s1": size.s1_segments, "s2": size.s2_segments}
        return [(f"{participant}_{i + 1:02d}", split, count[split]) for i, split in enumerate(splits)]
    if participant in size.unseen:
        split = "validation" if size.unseen.index(participant) % 2 == 0 else "test"
        plan = [(split, size.s2_segments)] * size.s2_videos
    else:
        n = size.train_videos + 2 * size.s1_videos
        held = rng.choice(n, size=2 * size.s1_videos, replace=False).tolist()
        validation, test = set(held[: size.s1_videos]), set(held[size.s1_videos :])
        plan = [("validation", size.s1_segments) if i in validation else ("test", size.s1_segments) if i in test
                else ("train", size.train_segments) for i in range(n)]
    videos, numbers = [], {"train": 1, "validation": 1, "test": 101}  # test: PXX_1YY, as EPIC-100's extension
    for split, count in plan:
        number = numbers["train" if split == "validation" else split]
        numbers["train" if split == "validation" else split] += 1
        videos.append((f"{participant}_{number:02d}", split, count))
    return videos


def _draw_segments(rng: np.random.Generator, count: int, size: SynthSize,
                   prior: np.ndarray) -> tuple[int, list[tuple[int, int, int, int]]]:
    """``count`` consecutive segments of one video with idle gaps: ``(num_frames, [(verb, noun, start, stop)])``."""
    lo, hi = round(size.min_seconds * size.fps), round(size.max_seconds * size.fps)
    gap_lo, gap_hi = max(1, round(0.25 * size.fps)), max(1, round(0.75 * size.fps))
    actions = rng.choice(prior.size, size=count, p=prior.ravel())
    cursor, segs = 1, []
    for a in actions:
        cursor += int(rng.integers(gap_lo, gap_hi + 1))
        length = int(rng.integers(lo, hi + 1))
        segs.append((int(a) // prior.shape[1], int(a) % prior.shape[1], cursor, cursor + length - 1))
        cursor += length
    return cursor - 1 + int(rng.integers(gap_lo, gap_hi + 1)), segs


def plan_dataset(preset: str, seed: int, layout: str = "epic55") -> list[VideoPlan]:
    """Every video of the dataset with its segments (verb, noun, frames) and split.

    Stream ``[seed, 0]`` plans each kitchen's training and first test videos; stream ``[seed, 5]`` then plans
    the further S1/S2 videos of the EPIC-55 layout (``s1_more_videos``, ``s2_more_videos``), appended after all of
    them. Adding test videos therefore changes neither the training videos nor the first test videos (their
    segments, uids and pixels). uids follow video order, so train and first-test uids interleave as in EPIC.
    """
    size = preset_size(preset, layout)
    rng = np.random.default_rng([seed, 0])
    prior = action_prior()
    drafts = []
    for k in range(size.kitchens):
        participant = f"P{k + 1:02d}"
        for video_id, split, count in _video_splits(size, layout, participant, rng):
            drafts.append((video_id, participant, split, *_draw_segments(rng, count, size, prior)))
    if layout == "epic55":
        more = np.random.default_rng([seed, 5])
        for k in range(size.kitchens):
            participant = f"P{k + 1:02d}"
            unseen = participant in size.unseen
            first = size.s2_videos if unseen else size.train_videos + size.s1_videos
            split, count = ("s2", size.s2_segments) if unseen else ("s1", size.s1_segments)
            for i in range(first, first + (size.s2_more_videos if unseen else size.s1_more_videos)):
                drafts.append((f"{participant}_{i + 1:02d}", participant, split, *_draw_segments(more, count, size,
                                                                                                 prior)))
    videos, uid = [], 0
    for index, (video_id, participant, split, num_frames, segs) in enumerate(drafts):
        plans = []
        for v, n, start, stop in segs:
            plans.append(SegmentPlan(uid, v, n, start, stop))
            uid += 1
        videos.append(VideoPlan(video_id, participant, split, index, num_frames, tuple(plans)))
    return videos


# --------------------------------------------------------------------------------------------------
# Rendering a video: scenes per segment, frames, boxes.


def _place(rng: np.random.Generator, radius: float, taken: list[tuple[float, float, float]],
           x_range: tuple[float, float], y_range: tuple[float, float]) -> tuple[float, float] | None:
    """A position whose disc does not overlap those taken (x, y, r); None after 40 tries."""
    for _ in range(40):
        p = (rng.uniform(*x_range), rng.uniform(*y_range))
        if all(math.hypot(p[0] - x, p[1] - y) > 0.85 * (radius + r) for x, y, r in taken):
            return p
    return None


def build_scene(frame: R.Frame, texture: np.ndarray, kitchen: Kitchen, verb: int, noun: int,
                rng: np.random.Generator, *, distractors: bool = True, wobble: bool = True) -> R.Scene:
    """One segment's scene: the active object at rest, 2-4 distractors of other classes, motion constants."""
    verb_name = R.VERB_NAMES[verb]
    sprite = R.noun_sprite(noun, frame.px, kitchen.scale, rng)
    y_range = (0.0, 0.12) if verb_name in ("push", "pull") else (-0.18, 0.08)
    rest = (float(rng.uniform(-0.35, 0.35)), float(rng.uniform(*y_range)))
    if verb_name in ("open", "close", "turn-on", "turn-off"):
        angle = float(rng.uniform(-10, 10))
    elif R.NOUNS[noun].shape in ("bar", "handle"):
        angle = float(rng.uniform(-60, 60))
    else:
        angle = float(rng.uniform(-30, 30))
    th = math.radians(angle)
    sx, sy = sprite.part_shift[0] / frame.px, sprite.part_shift[1] / frame.px
    part_shift = (sx * math.cos(th) + sy * math.sin(th), -sx * math.sin(th) + sy * math.cos(th))
    context = R.MotionContext(rest, sprite.radius, float(rng.choice([-1.0, 1.0])), int(rng.integers(3, 6)),
                              part_shift)
    active = R.Placed(noun, sprite, rest, angle)
    taken = [(rest[0], rest[1], sprite.radius)]
    static, moving = [], []
    if distractors:
        half_w = 0.5 * frame.w / frame.h
        others = [n for n in range(len(R.NOUNS)) if n != noun]
        for _ in range(int(rng.integers(2, 5))):
            d_noun = int(rng.choice(others))
            d_sprite = R.noun_sprite(d_noun, frame.px, kitchen.scale, rng)
            pos = _place(rng, d_sprite.radius, taken, (-0.95 * half_w, 0.95 * half_w), (-0.42, 0.38))
            if pos is None:
                continue
            taken.append((pos[0], pos[1], d_sprite.radius))
            p = R.Placed(d_noun, d_sprite, pos, float(rng.uniform(-40, 40)))
            if wobble and rng.random() < 0.35:  # some distractors move slightly: the scene is not static
                p.wobble = (float(rng.uniform(0.01, 0.04)), float(rng.uniform(0.0, 0.02)),
                            float(rng.uniform(0.2, 0.6)), float(rng.uniform(0, 2 * math.pi)))
                moving.append(p)
            else:
                static.append(p)
    background, static_boxes = R.build_background(frame, texture, static)
    return R.Scene(background, active, moving, static, static_boxes, verb_name, context, kitchen.skin)


def render_video(video: VideoPlan, kitchen: Kitchen, size: SynthSize, seed: int):
    """Render a whole video, frame by frame.

    Yields:
        (frame_number (1-based), RGB image (size.width, size.height), segment uid or None for idle frames,
        boxes as ``synthetic_render.render_frame`` returns them).
    """
    rng = np.random.default_rng([seed, 2, video.index])
    frame = R.Frame(size.width, size.height)
    ww, wh = frame.world
    texture = R.render_texture(kitchen.texture, wh, ww, rng)
    cams = R.camera_trajectory(video.num_frames, size.fps, rng)
    scenes = [build_scene(frame, texture, kitchen, s.verb, s.noun, rng) for s in video.segments]
    f = 1
    for i, (seg, scene) in enumerate(zip(video.segments, scenes, strict=True)):
        for g in range(f, seg.start_frame):  # idle gap: the coming scene before the action
            img, _ = R.render_frame(frame, scene, 0.0, g / size.fps, cams[g - 1], hand=False)
            yield g, img, None, []
        n = seg.stop_frame - seg.start_frame
        for g in range(seg.start_frame, seg.stop_frame + 1):
            tau = (g - seg.start_frame) / n if n > 0 else 0.0
            img, boxes = R.render_frame(frame, scene, tau, g / size.fps, cams[g - 1])
            yield g, img, seg.uid, boxes
        f = seg.stop_frame + 1
        if i == len(scenes) - 1:
            for g in range(f, video.num_frames + 1):
                img, _ = R.render_frame(frame, scene, 1.0, g / size.fps, cams[g - 1], hand=False)
                yield g, img, None, []


BOX_COLUMNS = ["uid", "participant_id", "video_id", "frame", "role", "noun_class", "x1", "y1", "x2", "y2",
               "visible"]


def jpeg_bytes(img: Image.Image) -> bytes:
    """Encode a frame as JPEG (fixed quality, no optimisation passes: byte-deterministic)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def frame_folder(root: Path, video: VideoPlan, layout: str) -> Path:
    """Where a video's frames go: ``frames_rgb_flow/rgb/{train,test}/PXX/PXX_YY`` (EPIC-55) or
    ``PXX/rgb_frames/PXX_YY`` (EPIC-100)."""
    if layout == "epic100":
        return root / video.participant / "rgb_frames" / video.video_id
    return root / "frames_rgb_flow" / "rgb" / video.frame_split / video.participant / video.video_id


def segment_ids(video: VideoPlan, layout: str) -> dict[int, str]:
    """The id each segment has in the annotation files: the uid (EPIC-55) or ``<video_id>_<k>`` (EPIC-100's
    narration ids, k counting the video's segments from 0)."""
    if layout == "epic100":
        return {s.uid: f"{video.video_id}_{k}" for k, s in enumerate(video.segments)}
    return {s.uid: str(s.uid) for s in video.segments}


def _video_job(job: tuple[str, VideoPlan, Kitchen, SynthSize, int, str]) -> tuple[str, int]:
    """Worker: render one video, write its frames and its box table, then mark it done."""
    out, video, kitchen, size, seed, layout = job
    root = Path(out)
    folder = frame_folder(root, video, layout)
    ids = segment_ids(video, layout)
    rows = []
    for g, img, seg_uid, boxes in render_video(video, kitchen, size, seed):
        uid = None if seg_uid is None else ids[seg_uid]
        write_bytes(folder / f"frame_{g:010d}.jpg", jpeg_bytes(img))
        for role, noun, (x1, y1, x2, y2, vis) in boxes:
            rows.append(f"{uid},{video.participant},{video.video_id},{g},{role},{noun},"
                        f"{x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f},{vis}\n")
    write_text(root / PROGRESS / f"{video.video_id}.boxes.csv", "".join(rows))
    write_text(root / PROGRESS / f"{video.video_id}.done", f"{video.num_frames}\n")
    return video.video_id, video.num_frames


# --------------------------------------------------------------------------------------------------
# Annotation files, in the EPIC-55 formats.


def _timestamp(frame: int, fps: float) -> str:
    """``HH:MM:SS.ss`` of a frame, rounded up to the centisecond so that floor(seconds * fps) == frame
    (the relation EPIC-55's files satisfy)."""
    cs = math.ceil(round(frame / fps * 100, 6))
    h, rem = divmod(cs, 360000)
    m, rem = divmod(rem, 6000)
    return f"{h:02d}:{m:02d}:{rem // 100:02d}.{rem % 100:02d}"


TRAIN_COLUMNS = ["uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp",
                 "start_frame", "stop_frame", "verb", "verb_class", "noun", "noun_class", "all_nouns",
                 "all_noun_classes"]
TIMESTAMP_COLUMNS = ["uid", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "start_frame",
                     "stop_frame"]


def segment_table(videos: Sequence[VideoPlan], fps: float) -> pd.DataFrame:
    """All segments with the EPIC-55 train columns plus ``split`` (train | s1 | s2)."""
    rows = []
    for v in videos:
        for s in v.segments:
            verb, noun = R.VERB_NAMES[s.verb], R.NOUN_NAMES[s.noun]
            rows.append([s.uid, v.participant, v.video_id, f"{verb} {noun}", _timestamp(s.start_frame, fps),
                         _timestamp(s.stop_frame, fps), s.start_frame, s.stop_frame, verb, s.verb, noun, s.noun,
                         str([noun]), str([s.noun]), v.split])
    return pd.DataFrame(rows, columns=[*TRAIN_COLUMNS, "split"])


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def write_annotations(out: Path, videos: Sequence[VideoPlan], size: SynthSize) -> dict[str, Any]:
    """Write every ``annotations/*.csv`` (not the boxes); returns summary numbers for the README."""
    ann = out / "annotations"
    table = segment_table(videos, size.fps)
    train = table[table.split == "train"]
    write_text(ann / "EPIC_train_action_labels.csv", _csv(train[TRAIN_COLUMNS]))
    for s in (1, 2):
        part = table[table.split == f"s{s}"]
        write_text(ann / f"EPIC_test_s{s}_timestamps.csv", _csv(part[TIMESTAMP_COLUMNS]))
        write_text(ann / f"EPIC_test_s{s}_labels.csv", _csv(part[TRAIN_COLUMNS]))
    write_text(ann / "EPIC_verb_classes.csv", _csv(pd.DataFrame(
        [[i, name, str(list(syn))] for i, (name, syn) in enumerate(R.VERBS)],
        columns=["verb_id", "class_key", "verbs"])))
    write_text(ann / "EPIC_noun_classes.csv", _csv(pd.DataFrame(
        [[i, n.name, str([n.name, *n.synonyms])] for i, n in enumerate(R.NOUNS)],
        columns=["noun_id", "class_key", "nouns"])))
    # many-shot lists: the official rule (count > threshold; actions: both many-shot and seen in training)
    threshold = many_shot_threshold(len(train))
    verbs = train.verb_class.value_counts()
    nouns = train.noun_class.value_counts()
    many_v = [int(v) for v, c in verbs.items() if c > threshold]
    many_n = [int(n) for n, c in nouns.items() if c > threshold]
    pairs = train.groupby(["verb_class", "noun_class"]).size().sort_values(ascending=False, kind="stable")
    many_a = [(int(v), int(n)) for (v, n) in pairs.index if v in many_v and n in many_n]
    write_text(ann / "EPIC_many_shot_verbs.csv", _csv(pd.DataFrame(
        [[v, R.VERB_NAMES[v]] for v in many_v], columns=["verb_class", "verb"])))
    write_text(ann / "EPIC_many_shot_nouns.csv", _csv(pd.DataFrame(
        [[n, R.NOUN_NAMES[n]] for n in many_n], columns=["noun_class", "noun"])))
    write_text(ann / "EPIC_many_shot_actions.csv", _csv(pd.DataFrame(
        [[f"({v}, {n})", R.NOUN_NAMES[n], n, R.VERB_NAMES[v], v] for v, n in many_a],
        columns=["action_class", "noun", "noun_class", "verb", "verb_class"])))
    return {"threshold": threshold, "many_verbs": len(many_v), "many_nouns": len(many_n), "many_actions": len(many_a),
            "segments": table.split.value_counts().to_dict(),
            "videos": pd.Series([v.split for v in videos]).value_counts().to_dict(),
            "frames": sum(v.num_frames for v in videos)}


EPIC100_TRAIN_COLUMNS = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                         "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
                         "noun_class", "all_nouns", "all_noun_classes"]
EPIC100_TIMESTAMP_COLUMNS = EPIC100_TRAIN_COLUMNS[:8]


def write_epic100_annotations(out: Path, videos: Sequence[VideoPlan], size: SynthSize) -> dict[str, Any]:
    """Write the EPIC-100 ``annotations/EPIC_100_*.csv`` files (not the boxes); returns summary numbers.

    Train and validation carry labels, test only timestamps (as EPIC-100 ships them); tail classes and unseen
    participants follow EPIC-100's rules on the training split (``egolib.epic.tail_classes``,
    ``unseen_participants``).

    Raises:
        ValueError: the validation split has no tail verb or no tail noun segment (the EPIC-100 metrics need
            both): the size is too small for this seed.
    """
    from egolib import epic  # epic imports torch; only this writer needs its rules

    ann = out / "annotations"
    table = segment_table(videos, size.fps)
    ids = {uid: nid for v in videos for uid, nid in segment_ids(v, "epic100").items()}
    table = table.assign(narration_id=table.uid.map(ids), narration_timestamp=table.start_timestamp)
    parts = {split: table[table.split == split] for split in ("train", "validation", "test")}
    write_text(ann / "EPIC_100_train.csv", _csv(parts["train"][EPIC100_TRAIN_COLUMNS]))
    write_text(ann / "EPIC_100_validation.csv", _csv(parts["validation"][EPIC100_TRAIN_COLUMNS]))
    write_text(ann / "EPIC_100_test_timestamps.csv", _csv(parts["test"][EPIC100_TIMESTAMP_COLUMNS]))
    write_text(ann / "EPIC_100_verb_classes.csv", _csv(pd.DataFrame(
        [[i, name, str(list(syn)), "synthetic"] for i, (name, syn) in enumerate(R.VERBS)],
        columns=["id", "key", "instances", "category"])))
    write_text(ann / "EPIC_100_noun_classes.csv", _csv(pd.DataFrame(
        [[i, n.name, str([n.name, *n.synonyms]), "synthetic"] for i, n in enumerate(R.NOUNS)],
        columns=["id", "key", "instances", "category"])))
    tail = {"verb": epic.tail_classes(parts["train"], "verb", len(R.VERBS)),
            "noun": epic.tail_classes(parts["train"], "noun", len(R.NOUNS))}
    for task, ids_ in tail.items():
        write_text(ann / f"EPIC_100_tail_{task}s.csv", _csv(pd.DataFrame({task: ids_})))
        if not parts["validation"][f"{task}_class"].isin(ids_).any():
            raise ValueError(f"SynthKitchens (EPIC-100 layout): no validation segment has a tail {task}, so the "
                             "EPIC-100 metrics cannot be computed; use a larger preset or another seed")
    unseen = {split: epic.unseen_participants(parts["train"], parts[split]) for split in ("validation", "test")}
    for split, people in unseen.items():
        write_text(ann / f"EPIC_100_unseen_participant_ids_{split}.csv",
                   _csv(pd.DataFrame({"participant_id": people})))
    return {"tail_verbs": len(tail["verb"]), "tail_nouns": len(tail["noun"]), "unseen": unseen,
            "segments": table.split.value_counts().to_dict(),
            "videos": pd.Series([v.split for v in videos]).value_counts().to_dict(),
            "frames": sum(v.num_frames for v in videos)}


def _readme_epic100(preset: str, seed: int, size: SynthSize, summary: dict[str, Any]) -> str:
    seg, vid, unseen = summary["segments"], summary["videos"], summary["unseen"]
    return f"""# SynthKitchens, EPIC-100 layout ({preset}, seed {seed})

Generated by `python -m egolib.synthetic --layout epic100 --preset {preset} --seed {seed}` (generator version
{GENERATOR_VERSION}). EPIC-KITCHENS-100 layout and CSV formats; the docstring of `egolib.synthetic` describes it.

| split | videos | segments | unseen participants |
|---|---|---|---|
| train | {vid.get('train', 0)} | {seg.get('train', 0)} | |
| validation | {vid.get('validation', 0)} | {seg.get('validation', 0)} | {', '.join(unseen['validation'])} |
| test (videos PXX_1YY) | {vid.get('test', 0)} | {seg.get('test', 0)} | {', '.join(unseen['test'])} |

- frames: `PXX/rgb_frames/PXX_YY(Y)/frame_%010d.jpg`, {size.width}x{size.height} JPEG (quality {JPEG_QUALITY}),
  nominal {size.fps:g} fps, {summary['frames']} frames in all.
- classes: {len(R.VERBS)} verbs, {len(R.NOUNS)} nouns; tail classes (the smallest classes holding 20 % of the
  training segments): {summary['tail_verbs']} verbs, {summary['tail_nouns']} nouns.
- `annotations/EPIC_100_validation.csv` carries labels, `EPIC_100_test_timestamps.csv` does not (as EPIC-100).
- `annotations/synth_object_boxes.csv`: the active object's and the distractors' boxes per frame, keyed by
  narration id in the `uid` column.
"""


def _readme(preset: str, seed: int, size: SynthSize, summary: dict[str, Any]) -> str:
    seg, vid = summary["segments"], summary["videos"]
    return f"""# SynthKitchens ({preset}, seed {seed})

Generated by `python -m egolib.synthetic --preset {preset} --seed {seed}` (generator version {GENERATOR_VERSION}).
EPIC-Kitchens-55 layout and CSV formats; the docstring of `egolib.synthetic` describes it.

| split | videos | segments | frames folder |
|---|---|---|---|
| train | {vid.get('train', 0)} | {seg.get('train', 0)} | frames_rgb_flow/rgb/train |
| S1 (seen kitchens, held-out videos) | {vid.get('s1', 0)} | {seg.get('s1', 0)} | frames_rgb_flow/rgb/test |
| S2 (unseen kitchens {', '.join(size.unseen)}) | {vid.get('s2', 0)} | {seg.get('s2', 0)} | frames_rgb_flow/rgb/test |

- kitchens (participants): P01-P{size.kitchens:02d}; frames {size.width}x{size.height} JPEG (quality {JPEG_QUALITY}),
  nominal {size.fps:g} fps, {summary['frames']} frames in all; segments {size.min_seconds:g}-{size.max_seconds:g} s.
- classes: {len(R.VERBS)} verbs, {len(R.NOUNS)} nouns; time-reversal pairs:
  {', '.join('/'.join(p) for p in R.REVERSAL_PAIRS)}.
- **many-shot threshold: {summary['threshold']}** (a class is many-shot if it has more than {summary['threshold']}
  training segments; EPIC-55's 100, scaled to this size): {summary['many_verbs']} verbs, {summary['many_nouns']}
  nouns, {summary['many_actions']} actions.
- `annotations/EPIC_test_s{{1,2}}_labels.csv`: the test ground truth (train columns); EPIC hides it.
- `annotations/synth_object_boxes.csv`: per frame of every segment, the active object's box (role `active`)
  and the distractors' (role `distractor`), in frame pixels (x1, y1, x2, y2), clipped to the frame;
  `visible` is 0 where the object is out of view (its box is then 0, 0, 0, 0).
"""


# --------------------------------------------------------------------------------------------------
# generate / ensure: resumable, idempotent, refuses a folder made with other arguments.


def _claim(out: Path, manifest: dict[str, Any]) -> bool:
    """Make ``out`` ours: returns True when it is already complete with the same manifest.

    Raises:
        ValueError: ``out`` holds data made with other arguments (or something else entirely).
    """
    path = out / MANIFEST
    if path.is_file():
        have = read_json(path)
        if have != manifest:
            diff = ", ".join(f"{k}={have.get(k)!r} (asked {v!r})" for k, v in manifest.items() if have.get(k) != v)
            raise ValueError(f"{out} was generated with other arguments: {diff}. Refusing to mix them; choose "
                             f"another output folder or delete {out} to regenerate.")
        return (out / DONE).is_file()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no {MANIFEST}: not a folder this generator made. "
                         "Choose an empty or new output folder.")
    write_json(path, manifest)
    return False


def default_workers(num_frames: int) -> int:
    """Two processes (the machine's two cores) for big sets; one for small ones (no start-up cost)."""
    return min(2, os.cpu_count() or 1) if num_frames > 3000 else 1


def generate(out: str | Path, *, preset: str = "demo", seed: int = 0, progress: bool = True,
             workers: int | None = None, layout: str = "epic55") -> Path:
    """Generate SynthKitchens into ``out``; resumable and idempotent.

    Args:
        out: the dataset root (``annotations/``, ``frames_rgb_flow/rgb/{train,test}/`` or, EPIC-100 layout,
            ``PXX/rgb_frames/``, ``README.md``).
        preset: ``smoke`` or ``demo`` (``PRESETS``, ``EPIC100_PRESETS``).
        seed: dataset seed; the same (preset, seed) gives byte-identical files.
        progress: show a tqdm progress bar over frames.
        workers: rendering processes (None: ``default_workers``); the output does not depend on it.
        layout: ``epic55`` (train, S1, S2) or ``epic100`` (train, validation, test; ``LAYOUTS``).

    Returns:
        ``out``.

    Raises:
        ValueError: unknown preset, or ``out`` was generated with other arguments.
    """
    out = Path(out)
    size = preset_size(preset, layout)
    manifest = {"dataset": "SynthKitchens", "preset": preset, "seed": seed, "generator_version": GENERATOR_VERSION,
                "size": asdict(size) | {"unseen": list(size.unseen)}}
    if layout != "epic55":  # EPIC-55 manifests carry no layout key: folders generated before layouts stay valid
        manifest["layout"] = layout
    if _claim(out, manifest):
        log.info("%s is complete (SynthKitchens %s, seed %d): nothing to do", out, preset, seed)
        return out
    videos = plan_dataset(preset, seed, layout)
    kitchens = {f"P{k + 1:02d}": kitchen_look(seed, k) for k in range(size.kitchens)}
    todo = [v for v in videos if not (out / PROGRESS / f"{v.video_id}.done").is_file()]
    todo.sort(key=lambda v: -v.num_frames)  # longest first: balances the workers
    total = sum(v.num_frames for v in todo)
    log.info("SynthKitchens %s seed %d -> %s: %d of %d videos to render (%d frames)", preset, seed, out, len(todo),
             len(videos), total)
    jobs = [(str(out), v, kitchens[v.participant], size, seed, layout) for v in todo]
    workers = workers or default_workers(total)
    with tqdm(total=total, unit="frame", desc=f"SynthKitchens {preset}", disable=not progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                bar.update(_video_job(job)[1])
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for _, n in pool.imap_unordered(_video_job, jobs, chunksize=1):
                    bar.update(n)
    if layout == "epic100":
        readme = _readme_epic100(preset, seed, size, write_epic100_annotations(out, videos, size))
    else:
        readme = _readme(preset, seed, size, write_annotations(out, videos, size))
    boxes = [(out / PROGRESS / f"{v.video_id}.boxes.csv").read_text() for v in videos]
    write_text(out / "annotations" / "synth_object_boxes.csv", ",".join(BOX_COLUMNS) + "\n" + "".join(boxes))
    write_text(out / "README.md", readme)
    write_text(out / DONE, "")
    return out


def is_generated(out: str | Path, preset: str, seed: int = 0) -> bool:
    """True when ``out`` holds a complete SynthKitchens of this preset and seed."""
    out = Path(out)
    try:
        have = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return ((out / DONE).is_file() and have.get("preset") == preset and have.get("seed") == seed
            and have.get("generator_version") == GENERATOR_VERSION)


def read_draw(out: str | Path) -> dict[str, Any] | None:
    """Which draw a SynthKitchens folder holds, from its own manifest: ``{"preset", "seed", "generator_version",
    "layout", "complete"}``; None when ``out`` is not a folder this generator made (e.g. a real EPIC-Kitchens copy)."""
    out = Path(out)
    try:
        have = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if have.get("dataset") != "SynthKitchens":
        return None
    return ({k: have.get(k) for k in ("preset", "seed", "generator_version")} | {"layout": have.get("layout", "epic55")}
            | {"complete": (out / DONE).is_file()})


def ensure(out: str | Path, preset: str = "demo", seed: int = 0, progress: bool = True,
           layout: str = "epic55") -> Path:
    """``generate`` unless ``out`` is already complete (same call, spelled for readers of the notebooks)."""
    return generate(out, preset=preset, seed=seed, progress=progress, layout=layout)


# --------------------------------------------------------------------------------------------------
# Pretraining stand-ins: object images (for pretrain=imagenet) and motion clips (for ig65m_kinetics).
# Backgrounds are fresh random counter looks from their own random stream, never the kitchens' looks.


@dataclass(frozen=True)
class ObjectClass:
    name: str
    shape: str
    colour: str
    pattern: str
    size: float
    aspect: float


def object_classes() -> list[ObjectClass]:
    """The object-image vocabulary: the 20 noun classes, then 20 more (shape, colour, pattern) combinations."""
    classes = [ObjectClass(n.name, n.shape, n.colour, n.pattern, n.size, n.aspect) for n in R.NOUNS]
    used = {(c.shape, c.colour, c.pattern) for c in classes}
    rng = np.random.default_rng(TAXONOMY_SEED + 1)
    patterns = ("plain", "stripes", "dots", "checker", "rim")
    while len(classes) < 2 * len(R.NOUNS):
        combo = (R.SHAPES[int(rng.integers(len(R.SHAPES)))], list(R.COLOURS)[int(rng.integers(len(R.COLOURS)))],
                 patterns[int(rng.integers(len(patterns)))])
        if combo in used:
            continue
        used.add(combo)
        aspect = float(rng.choice([0.5, 1.0, 1.0, 1.5])) if combo[0] in ("rbox", "bar") else 1.0
        aspect = 0.25 if combo[0] == "bar" else aspect
        classes.append(ObjectClass("-".join((combo[1], combo[0], combo[2])), *combo, 0.3, aspect))
    return classes


MOTIONS = ("right", "left", "down", "up", "down-right", "up-left", "down-left", "up-right", "rotate-cw",
           "rotate-ccw", "grow", "shrink", "oscillate-x", "oscillate-y")

# Object images are rendered at 112 px so that every backbone's training crop (80 px; InceptionV3 107) is a
# downscale, as the kitchen frames are.
# ``weights``: the larger sets the shipped stand-ins are trained on (``egolib.weights``). Their clutter is at most
# 45 % of the main object's size, so that the labelled object is always the dominant one, as in an ImageNet photo:
# with clutter up to 70 % of its size, which object is "main" is often a close call (ResNet-34 reached 25 % held-out
# after 5 epochs of the 30-epoch recipe on such images).
OBJECT_PRESETS = {"smoke": {"per_class": 6, "size": 80}, "demo": {"per_class": 100, "size": 112},
                  "weights": {"per_class": 300, "size": 112, "clutter_scale": [0.2, 0.45]}}
# Motion clips carry two labels, as IG-65M's hashtags and Kinetics' classes name objects as well as movements: the
# motion (``labels.npy``) and the moving object's class (``objects.npy``). Trained on the motion alone, R(2+1)D
# learnt to ignore what moves, and EgoACO R(2+1)D fitted 30 % of its training nouns.
MOTION_PRESETS = {"smoke": {"per_class": 4, "frames": 8, "size": 64, "labels": "motion+object"},
                  "demo": {"per_class": 64, "frames": 8, "size": 64, "labels": "motion+object"},
                  "weights": {"per_class": 400, "frames": 8, "size": 64, "labels": "motion+object"}}


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _pretrain_canvas(size: int, rng: np.random.Generator) -> Image.Image:
    """A random background at render resolution (square)."""
    s = size * R.SUPERSAMPLE
    return Image.fromarray(R.render_texture(R.random_texture_spec(rng), s, s, rng))


def _sprite_of(c: ObjectClass, long_side: float, px: float, rng: np.random.Generator) -> R.Sprite:
    return R.make_sprite(c.shape, c.colour, c.pattern, long_side, c.aspect, px, rng)


def _paste_centre(canvas: Image.Image, img: Image.Image, centre: tuple[float, float]) -> None:
    x0, y0 = int(round(centre[0] - img.width / 2)), int(round(centre[1] - img.height / 2))
    canvas.paste(img, (x0, y0), img.getchannel("A"))


def _claim_set(out: Path, kind: str, preset: str, seed: int, sizes: dict[str, int]) -> bool:
    manifest = {"dataset": kind, "preset": preset, "seed": seed, "generator_version": GENERATOR_VERSION,
                "size": sizes}
    return _claim(out, manifest)


def _lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random global lighting of an ``(S, S, 3)`` uint8 image: gain, colour cast and a linear shading ramp."""
    S = img.shape[0]
    gain = rng.uniform(0.6, 1.35) * rng.uniform(0.88, 1.12, size=3)  # (3,) brightness and colour cast
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:S, 0:S] / (S - 1) - 0.5  # (S, S) each, in [-0.5, 0.5]
    ramp = 1.0 + rng.uniform(-0.5, 0.5) * (math.cos(theta) * xx + math.sin(theta) * yy)  # (S, S)
    return np.clip(img * gain[None, None, :] * ramp[:, :, None], 0, 255).round().astype(np.uint8)


def _jpeg_roundtrip(img: np.ndarray) -> np.ndarray:
    """Encode and decode as the kitchen frames are stored (JPEG at ``JPEG_QUALITY``): their artefacts too."""
    return np.asarray(Image.open(io.BytesIO(jpeg_bytes(Image.fromarray(img)))).convert("RGB"))


def object_image(index: int, label: int, classes: Sequence[ObjectClass], size: int, seed: int,
                 clutter_scale: Sequence[float] = (0.3, 0.7)) -> np.ndarray:
    """Object image ``index``: the main object (class ``label``) among clutter, partly occluded, random lighting.

    Background: a random counter texture (never a kitchen's: its own stream). Main object: long side 25-75 % of
    the image, anywhere within the middle 60 %, any rotation. Clutter: 0-4 objects of any class, ``clutter_scale``
    (a range) of the main object's size, behind it. Occlusion: in half of the images one more object is laid over
    the main object's edge. Then random lighting and a JPEG round trip.

    Returns:
        uint8 ``(size, size, 3)``.
    """
    rng = np.random.default_rng([seed, 3, index])
    px = size * R.SUPERSAMPLE
    canvas = _pretrain_canvas(size, rng)
    C = len(classes)
    long_side = rng.uniform(0.25, 0.75)  # the main object's
    for _ in range(int(rng.integers(0, 5))):  # clutter behind, smaller than the main object
        other = classes[int(rng.integers(C))]
        sp = _sprite_of(other, rng.uniform(*clutter_scale) * long_side, px, rng)
        _paste_centre(canvas, sp.image.rotate(rng.uniform(0, 360), Image.BICUBIC, expand=True),
                      (rng.uniform(0, px), rng.uniform(0, px)))
    sp = _sprite_of(classes[label], long_side, px, rng)
    centre = (px / 2 + rng.uniform(-0.2, 0.2) * px, px / 2 + rng.uniform(-0.2, 0.2) * px)
    _paste_centre(canvas, sp.image.rotate(rng.uniform(-180, 180), Image.BICUBIC, expand=True), centre)
    if rng.random() < 0.5:  # an occluder over the main object's edge (it stays mostly visible)
        other = classes[int(rng.integers(C))]
        occ = _sprite_of(other, rng.uniform(0.3, 0.6) * long_side, px, rng)
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.45, 0.7) * long_side * px
        _paste_centre(canvas, occ.image.rotate(rng.uniform(0, 360), Image.BICUBIC, expand=True),
                      (centre[0] + dist * math.cos(angle), centre[1] + dist * math.sin(angle)))
    img = np.asarray(canvas.reduce(R.SUPERSAMPLE).convert("RGB"))  # (S, S, 3)
    return _jpeg_roundtrip(_lighting(img, rng))


def generate_object_images(out: str | Path, *, preset: str = "demo", seed: int = 0, progress: bool = True) -> Path:
    """Object images (stand-in for ImageNet): one main object (the label) among clutter (``object_image``).

    Writes ``images.npy`` (N, 3, S, S) uint8, ``labels.npy`` (N,) int64, ``classes.json``, ``README.md``.
    """
    out = Path(out)
    if preset not in OBJECT_PRESETS:
        raise ValueError(f"no object-image preset {preset!r}; choose one of {', '.join(OBJECT_PRESETS)}")
    cfg = OBJECT_PRESETS[preset]
    if _claim_set(out, "SynthObjects", preset, seed, cfg):
        return out
    classes = object_classes()
    S, C = cfg["size"], len(classes)
    N = C * cfg["per_class"]
    images = np.zeros((N, 3, S, S), np.uint8)
    labels = np.arange(N, dtype=np.int64) % C
    for i in tqdm(range(N), desc="object images", disable=not progress):
        image = object_image(i, int(labels[i]), classes, S, seed, cfg.get("clutter_scale", (0.3, 0.7)))
        images[i] = image.transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S)
    write_bytes(out / "images.npy", _npy(images))
    write_bytes(out / "labels.npy", _npy(labels))
    write_json(out / "classes.json", [c.name for c in classes])
    write_text(out / "README.md", f"# SynthObjects ({preset}, seed {seed})\n\n{N} images {S}x{S}, {C} classes "
               "(the SynthKitchens nouns and 20 other shape/colour/pattern combinations), labelled by the main "
               "object, among clutter, partly occluded, under random lighting. Stand-in for ImageNet pretraining.\n")
    write_text(out / DONE, "")
    return out


def _motion_frame(t: float, motion: str) -> tuple[float, float, float, float]:
    """(dx, dy, angle, scale) of a motion at t in [0, 1]; displacements in units of the image side."""
    dirs = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1), "down-right": (0.7, 0.7),
            "up-left": (-0.7, -0.7), "down-left": (-0.7, 0.7), "up-right": (0.7, -0.7)}
    if motion in dirs:
        d = dirs[motion]
        return (0.4 * (t - 0.5) * d[0], 0.4 * (t - 0.5) * d[1], 0.0, 1.0)
    if motion in ("rotate-cw", "rotate-ccw"):
        return (0.0, 0.0, (-120 if motion == "rotate-cw" else 120) * t, 1.0)
    if motion in ("grow", "shrink"):
        u = t if motion == "grow" else 1 - t
        return (0.0, 0.0, 0.0, 0.6 + 0.8 * u)
    if motion == "oscillate-x":
        return (0.15 * math.sin(4 * math.pi * t), 0.0, 0.0, 1.0)
    if motion == "oscillate-y":
        return (0.0, 0.15 * math.sin(4 * math.pi * t), 0.0, 1.0)
    raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")


def motion_clip(index: int, label: int, shapes: Sequence[ObjectClass], size: int, frames: int,
                seed: int) -> tuple[np.ndarray, int]:
    """Motion clip ``index``: a random object of ``shapes`` moving as ``MOTIONS[label]`` over a random background
    texture.

    Returns:
        ``(clip, object)``: uint8 ``(frames, 3, size, size)`` and the index in ``shapes`` of the object that moves.
    """
    rng = np.random.default_rng([seed, 4, index])
    px = size * R.SUPERSAMPLE
    bg = _pretrain_canvas(size, rng)
    obj = int(rng.integers(len(shapes)))
    sp = _sprite_of(shapes[obj], rng.uniform(0.3, 0.45), px, rng)
    base_angle = rng.uniform(0, 360)
    centre = (px / 2 + rng.uniform(-0.08, 0.08) * px, px / 2 + rng.uniform(-0.08, 0.08) * px)
    clip = np.zeros((frames, 3, size, size), np.uint8)
    for t in range(frames):
        dx, dy, ang, scale = _motion_frame(t / (frames - 1), MOTIONS[label])
        img = sp.image.resize((max(1, round(sp.image.width * scale)), max(1, round(sp.image.height * scale))),
                              Image.BILINEAR).rotate(base_angle + ang, Image.BICUBIC, expand=True)
        canvas = bg.copy()
        _paste_centre(canvas, img, (centre[0] + dx * px, centre[1] + dy * px))
        clip[t] = np.asarray(canvas.reduce(R.SUPERSAMPLE)).transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S)
    return clip, obj


def generate_motion_clips(out: str | Path, *, preset: str = "demo", seed: int = 0, progress: bool = True) -> Path:
    """Motion clips (stand-in for IG-65M + Kinetics): a random object moving (MOTIONS) over a background.

    Writes ``clips.npy`` (N, T, 3, S, S) uint8, ``labels.npy`` (N,) int64 (the motion), ``objects.npy`` (N,) int64
    (the moving object's class), ``classes.json`` (the motions), ``object_classes.json``, ``README.md``.
    """
    out = Path(out)
    if preset not in MOTION_PRESETS:
        raise ValueError(f"no motion-clip preset {preset!r}; choose one of {', '.join(MOTION_PRESETS)}")
    cfg = MOTION_PRESETS[preset]
    if _claim_set(out, "SynthMotion", preset, seed, cfg):
        return out
    shapes = object_classes()
    S, T, C = cfg["size"], cfg["frames"], len(MOTIONS)
    N = C * cfg["per_class"]
    clips = np.zeros((N, T, 3, S, S), np.uint8)
    labels = np.arange(N, dtype=np.int64) % C
    objects = np.zeros(N, np.int64)
    for i in tqdm(range(N), desc="motion clips", disable=not progress):
        clips[i], objects[i] = motion_clip(i, int(labels[i]), shapes, S, T, seed)
    write_bytes(out / "clips.npy", _npy(clips))
    write_bytes(out / "labels.npy", _npy(labels))
    write_bytes(out / "objects.npy", _npy(objects))
    write_json(out / "classes.json", list(MOTIONS))
    write_json(out / "object_classes.json", [c.name for c in shapes])
    write_text(out / "README.md", f"# SynthMotion ({preset}, seed {seed})\n\n{N} clips of {T} frames {S}x{S}, "
               f"{C} motion classes, each clip also labelled with the class of the object that moves (one of "
               f"{len(shapes)}). Stand-in for IG-65M + Kinetics pretraining.\n")
    write_text(out / DONE, "")
    return out


def _load_set(path: str | Path, data: str):
    import torch  # only the loaders need torch

    path = Path(path)
    if not (path / DONE).is_file():
        raise FileNotFoundError(f"{path} is not a complete pretraining set (no {DONE}); generate it first")
    arr = torch.from_numpy(np.load(path / data))
    labels = torch.from_numpy(np.load(path / "labels.npy"))
    return arr, labels, json.loads((path / "classes.json").read_text())


def load_object_images(path: str | Path):
    """Read object images: ``(images uint8 (N, 3, H, W), labels int64 (N,), class_names)``."""
    return _load_set(path, "images.npy")


def load_motion_clips(path: str | Path):
    """Read motion clips: ``(clips uint8 (N, T, 3, H, W), labels int64 (N,), class_names)`` (the motions)."""
    return _load_set(path, "clips.npy")


def load_motion_objects(path: str | Path):
    """Read the motion clips' second labels: ``(objects int64 (N,), object_class_names)``."""
    import torch

    path = Path(path)
    return torch.from_numpy(np.load(path / "objects.npy")), json.loads((path / "object_classes.json").read_text())


# --------------------------------------------------------------------------------------------------
# Size on disk (whether every frame is there: ``egolib.epic.missing_frames``)


def write_validation_set(root: str | Path, out: str | Path) -> Path:
    """A validation set carved from the training videos of ``root``, in the same layout, for choosing recipes.

    Of each kitchen's training videos the last one (by id) is held out: ``out``'s training labels are the other
    training videos' segments, its S1 labels the held-out videos' (seen kitchens, held-out videos, as S1), and its
    S2 files repeat S1 (the training videos hold no unseen kitchen). The test splits of ``root`` are never read.
    Frames are not copied: ``frames_rgb_flow/rgb/{train,test}`` link to ``root``'s training frames.

    Returns:
        ``out``.

    Raises:
        FileNotFoundError: ``root`` has no training annotations.
    """
    from egolib import epic

    root, out = Path(root).resolve(), Path(out)
    labels = root / "annotations" / "EPIC_train_action_labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found: generate the data set first (python -m egolib.synthetic)")
    train = epic.read_epic55_train(labels)
    last = train.groupby("participant_id").video_id.max()
    held = train.video_id.isin(last.to_numpy())
    ann = out / "annotations"
    columns = pd.read_csv(labels, nrows=0).columns.tolist()
    write_text(ann / "EPIC_train_action_labels.csv", _csv(train.loc[~held, columns]))
    raw = pd.read_csv(labels)
    for s in (1, 2):
        write_text(ann / f"EPIC_test_s{s}_labels.csv", _csv(raw[held.to_numpy()]))
        write_text(ann / f"EPIC_test_s{s}_timestamps.csv", _csv(raw.loc[held.to_numpy(), TIMESTAMP_COLUMNS]))
    for name in ("EPIC_verb_classes.csv", "EPIC_noun_classes.csv", "EPIC_many_shot_verbs.csv",
                 "EPIC_many_shot_nouns.csv", "EPIC_many_shot_actions.csv"):
        write_text(ann / name, (root / "annotations" / name).read_text())
    for split in ("train", "test"):
        link = out / "frames_rgb_flow" / "rgb" / split
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(root / "frames_rgb_flow" / "rgb" / "train", target_is_directory=True)
    write_json(out / VALIDATION_MARKER, {"carved_from": str(root), "held_out_videos": sorted(last),
                                         "train_segments": int((~held).sum()), "validation_segments": int(held.sum())})
    write_text(out / "README.md", f"# Validation set carved from the training videos\n\nTraining: {int((~held).sum())} "
               f"segments; validation (S1, repeated as S2): {int(held.sum())} segments of the held-out videos "
               f"{', '.join(sorted(last))}.\n")
    return out


def ensure_validation_set(preset: str, seed: int = 0, progress: bool = True) -> Path:
    """The validation set carved from the training videos of the SynthKitchens draw (``validation_path``), carved
    (and the draw generated) first when missing."""
    out = validation_path(preset, seed)
    if not is_validation_set(out):
        root = synthkitchens_path(preset, seed)
        ensure(root, preset=preset, seed=seed, progress=progress)
        write_validation_set(root, out)
    return out


def is_validation_set(root: str | Path) -> bool:
    """Whether ``root`` was written by ``write_validation_set`` (its S1 is validation, not a test split)."""
    return (Path(root) / VALIDATION_MARKER).is_file()


def validation_path(preset: str, seed: int = 0) -> Path:
    """Where ``python -m egolib.synthetic --what validation`` carves the validation set of a SynthKitchens draw."""
    return Path(f"{synthkitchens_path(preset, seed)}-val")


def disk_usage(path: str | Path) -> int:
    """Bytes in all files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m egolib.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=list(PRESETS))
    parser.add_argument("--out", default=None, help="output folder (default data/synthkitchens-<preset>-s<seed>, "
                        "data/objects-<preset>, data/motion-<preset>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--what", default="kitchens", choices=["kitchens", "validation", "objects", "motion"],
                        help="SynthKitchens, the validation set carved from its training videos (for choosing "
                        "recipes: data_root of a run), or one of the pretraining stand-ins")
    parser.add_argument("--workers", type=int, default=None, help="rendering processes (default: 2 for big sets)")
    parser.add_argument("--layout", default="epic55", choices=list(LAYOUTS),
                        help="SynthKitchens in the EPIC-55 (train, S1, S2) or EPIC-100 (train, validation, test) "
                        "layout (default folder data/synthkitchens-epic100-<preset>-s<seed>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.out:
        out = Path(args.out)
    elif args.what == "kitchens":
        out = synthkitchens_path(args.preset, args.seed, args.layout)  # where a run of this preset and seed reads it
    elif args.what == "validation":
        out = validation_path(args.preset, args.seed)
    else:
        out = Path("data") / f"{args.what}-{args.preset}"
    if args.what == "kitchens":
        generate(out, preset=args.preset, seed=args.seed, workers=args.workers, layout=args.layout)
    elif args.what == "validation":
        if args.layout != "epic55":
            parser.error("--what validation carves the EPIC-55 layout; EPIC-100 ships its own validation split")
        if args.out:
            parser.error("--what validation carves where runs find it (data/synthkitchens-<preset>-s<seed>-val): "
                         "leave out --out")
        ensure_validation_set(args.preset, args.seed)
    elif args.what == "objects":
        generate_object_images(out, preset=args.preset, seed=args.seed)
    else:
        generate_motion_clips(out, preset=args.preset, seed=args.seed)
    log.info("%s: %.1f MB", out, disk_usage(out) / 1e6)


if __name__ == "__main__":
    main()

