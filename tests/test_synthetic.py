"""SynthKitchens: determinism, EPIC-55 format, splits, frames, reversal pairs, boxes, resumption, stand-ins."""

import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from egolib import epic
from egolib import synthetic as S
from egolib import synthetic_render as R

REAL55 = Path(__file__).resolve().parent / "epic-annotations" / "epic55"  # real EPIC-55 annotation CSVs


def folder_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return S.generate(tmp_path_factory.mktemp("sk") / "smoke", preset="smoke", seed=0, progress=False, workers=1)


# --------------------------------------------------------------------------------------------------
# Determinism, idempotency, resumption, refusal


# a smaller size than smoke keeps three generations cheap (the jobs carry their size to the workers)
TINY = S.SynthSize(kitchens=2, unseen=("P02",), train_videos=1, train_segments=3, s1_videos=1, s1_segments=2,
                   s2_videos=1, s2_segments=3, width=114, height=64, fps=8, min_seconds=1.0, max_seconds=2.0,
                   s1_more_videos=1, s2_more_videos=1)


def test_same_seed_is_byte_identical_for_any_worker_count_and_other_seed_differs(tmp_path, monkeypatch):
    monkeypatch.setitem(S.PRESETS, "smoke", TINY)
    one = S.generate(tmp_path / "one", preset="smoke", seed=0, progress=False, workers=1)
    two = S.generate(tmp_path / "two", preset="smoke", seed=0, progress=False, workers=2)
    assert folder_hash(one) == folder_hash(two)
    other = S.generate(tmp_path / "other", preset="smoke", seed=1, progress=False, workers=1)
    assert folder_hash(other) != folder_hash(one)
    first = "frames_rgb_flow/rgb/test/P02/P02_01/frame_0000000001.jpg"  # S2: the same video for any seed
    assert (other / first).read_bytes() != (one / first).read_bytes()


def test_complete_folder_is_left_untouched(smoke):
    before = {p: p.stat().st_mtime_ns for p in smoke.rglob("*")}
    S.generate(smoke, preset="smoke", seed=0, progress=False)
    assert {p: p.stat().st_mtime_ns for p in smoke.rglob("*")} == before


def test_half_written_folder_is_completed_to_the_same_bytes(smoke, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(smoke, half)
    (half / "DONE").unlink()
    shutil.rmtree(half / "annotations")
    video = half / "frames_rgb_flow" / "rgb" / "train" / "P02" / "P02_01"
    for p in sorted(video.iterdir())[5:]:  # an interrupted video: some frames written, not marked done
        p.unlink()
    (half / S.PROGRESS / "P02_01.done").unlink()
    (half / S.PROGRESS / "P02_01.boxes.csv").unlink()
    S.generate(half, preset="smoke", seed=0, progress=False)
    assert folder_hash(half) == folder_hash(smoke)


def test_folder_made_with_other_arguments_is_refused(smoke, tmp_path):
    with pytest.raises(ValueError, match="seed=0 .asked 1."):
        S.generate(smoke, preset="smoke", seed=1, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a folder this generator made"):
        S.generate(foreign, preset="smoke", seed=0, progress=False)
    with pytest.raises(ValueError, match="choose one of smoke, demo"):
        S.generate(tmp_path / "x", preset="paper")


# --------------------------------------------------------------------------------------------------
# EPIC-55 format and splits


def test_annotations_read_back_through_egolib_epic_with_the_real_columns(smoke):
    ann = epic.load_epic55(smoke / "annotations")
    assert len(ann.train) == 48 and len(ann.test_s1) == 12 and len(ann.test_s2) == 12
    assert ann.test_s1_labels is not None and ann.test_s2_labels is not None
    assert list(ann.test_s1_labels.uid) == list(ann.test_s1.uid)
    assert len(ann.verb_classes) == len(R.VERBS) and len(ann.noun_classes) == len(R.NOUNS)
    assert ann.many_shot_shipped is not None
    threshold = S.many_shot_threshold(len(ann.train))
    assert ann.many_shot_shipped == epic.many_shot(ann.train, threshold)  # the official rule, scaled threshold
    assert f"many-shot threshold: {threshold}" in (smoke / "README.md").read_text()
    # narration = "verb noun", all_nouns holds the noun
    row = ann.train.iloc[0]
    assert row.narration == f"{row.verb} {row.noun}" and row.all_nouns == [row.noun]
    for name in ("EPIC_train_action_labels.csv", "EPIC_test_s1_timestamps.csv", "EPIC_test_s2_timestamps.csv",
                 "EPIC_verb_classes.csv", "EPIC_noun_classes.csv", "EPIC_many_shot_verbs.csv",
                 "EPIC_many_shot_nouns.csv", "EPIC_many_shot_actions.csv"):
        real = pd.read_csv(REAL55 / name, nrows=0).columns.tolist()
        ours = pd.read_csv(smoke / "annotations" / name, nrows=0).columns.tolist()
        assert ours == real, name
    real_train = pd.read_csv(REAL55 / "EPIC_train_action_labels.csv", nrows=0).columns.tolist()
    for s in (1, 2):
        assert pd.read_csv(smoke / "annotations" / f"EPIC_test_s{s}_labels.csv", nrows=0).columns.tolist() == real_train


def test_s2_kitchens_never_in_train_and_s1_videos_held_out(smoke):
    ann = epic.load_epic55(smoke / "annotations")
    assert set(ann.test_s2.participant_id) == {"P05"}
    assert not set(ann.test_s2.participant_id) & set(ann.train.participant_id)
    assert set(ann.test_s1.participant_id) <= set(ann.train.participant_id)
    assert not set(ann.test_s1.video_id) & set(ann.train.video_id)
    uids = pd.concat([ann.train.uid, ann.test_s1.uid, ann.test_s2.uid])
    assert uids.is_unique


# The plan as the generator made it before the extra test videos (GENERATOR_VERSION 1), hashed by plan_hash:
# (seed, train videos, train segments, hash) and the hash of every video of that plan (train + first S1/S2).
PLAN_V1 = {
    ("demo", 0): (720, "209b2376803f28e9", 60, "ade103987a116b64"),
    ("demo", 1): (720, "80dca8c6f347505c", 60, "9bd43aac34f9acef"),
    ("smoke", 0): (48, "c6350661355215e3", 14, "c7359256fb2129ec"),
}


def plan_hash(videos: list[S.VideoPlan]) -> str:
    text = repr([(v.video_id, v.participant, v.split, v.index, v.num_frames, v.segments) for v in videos])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("preset,seed", list(PLAN_V1))
def test_more_test_videos_leave_training_and_first_test_videos_unchanged(preset, seed):
    videos = S.plan_dataset(preset, seed)
    train = [v for v in videos if v.split == "train"]
    segments, train_hash, first, all_hash = PLAN_V1[(preset, seed)]
    assert sum(len(v.segments) for v in train) == segments
    assert plan_hash(train) == train_hash
    assert plan_hash(videos[:first]) == all_hash  # the first test videos too: same segments, uids and pixel seeds
    assert all(v.split in ("s1", "s2") for v in videos[first:])


def test_demo_test_splits_hold_1000_segments_each_from_the_training_distribution():
    size = S.preset_size("demo")
    videos = S.plan_dataset("demo", 0)
    assert videos == S.plan_dataset("demo", 0)  # deterministic
    assert plan_hash(videos) != plan_hash(S.plan_dataset("demo", 1))
    assert len({v.video_id for v in videos}) == len(videos)
    assert [v.index for v in videos] == list(range(len(videos)))  # every video its own pixel seed
    uids = [s.uid for v in videos for s in v.segments]
    assert uids == list(range(len(uids)))
    prior = S.action_prior()
    lo, hi = round(size.min_seconds * size.fps), round(size.max_seconds * size.fps)
    for split, kitchens, per_video in (("s1", {v.participant for v in videos if v.split == "train"}, 14),
                                       ("s2", set(size.unseen), 14)):
        mine = [v for v in videos if v.split == split]
        segs = [s for v in mine for s in v.segments]
        assert len(segs) >= 1000, split  # standard error of a top-1 accuracy <= 1.6 points
        assert {v.participant for v in mine} == kitchens
        assert {len(v.segments) for v in mine} == {per_video}
        assert all(lo <= s.stop_frame - s.start_frame + 1 <= hi for s in segs)
        for axis, labels in ((1, [s.verb for s in segs]), (0, [s.noun for s in segs])):
            freq = np.bincount(labels, minlength=prior.shape[1 - axis]) / len(segs)
            assert 0.5 * np.abs(freq - prior.sum(axis)).sum() < 0.1, (split, axis)  # uniform would be 0.32


def test_every_segment_has_its_frames_inside_its_video(smoke):
    assert epic.missing_frames(smoke).empty
    ann = epic.load_epic55(smoke / "annotations")
    for split, df in (("train", ann.train), ("test", ann.test_s1), ("test", ann.test_s2)):
        for video_id, segs in df.groupby("video_id"):
            folder = epic.frames_root(smoke, split) / segs.participant_id.iloc[0] / video_id
            numbers = sorted(int(p.name[6:16]) for p in folder.glob("frame_*.jpg"))
            assert numbers == list(range(1, len(numbers) + 1)), f"{video_id}: frames not contiguous from 1"
            segs = segs.sort_values("start_frame")
            assert segs.start_frame.min() >= 1 and segs.stop_frame.max() <= len(numbers)
            assert (segs.start_frame.to_numpy()[1:] > segs.stop_frame.to_numpy()[:-1]).all(), "segments overlap"
            length_s = (segs.stop_frame - segs.start_frame + 1) / S.PRESETS["smoke"].fps
            assert length_s.between(1.0, 3.0 + 1e-9).all()
    with Image.open(epic.frame_path(epic.frames_root(smoke, "train"), "P01", "P01_01", 1)) as im:
        assert im.size == (114, 64) and im.mode == "RGB"


def test_missing_frames_are_reported(smoke, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(smoke, broken)
    seg = epic.load_epic55(broken / "annotations").test_s2.iloc[0]
    gone = epic.frame_path(epic.frames_root(broken, "test"), seg.participant_id, seg.video_id, int(seg.stop_frame))
    gone.unlink()
    report = epic.missing_frames(broken)
    assert list(report.uid) == [int(seg.uid)] and report.first_missing.iloc[0] == str(gone)


# --------------------------------------------------------------------------------------------------
# Taxonomy and frequencies


def test_no_single_cue_identifies_a_noun_class():
    triples = [(n.shape, n.colour, n.pattern) for n in R.NOUNS]
    assert len(set(triples)) == len(triples)
    for i in range(3):
        counts = Counter(t[i] for t in triples)
        assert min(counts.values()) >= 2, counts


def test_action_prior_is_long_tailed_and_respects_compatibility():
    p = S.action_prior()
    assert np.isclose(p.sum(), 1)
    for v, verb in enumerate(R.VERB_NAMES):
        allowed = {R.NOUN_NAMES.index(n) for n in R.COMPATIBLE[verb]}
        assert set(np.flatnonzero(p[v])) == allowed
    verbs = p.sum(1)
    assert verbs[0] > 5 * verbs[-1]  # long tail
    for a, b in R.REVERSAL_PAIRS:
        assert set(R.COMPATIBLE[a]) == set(R.COMPATIBLE[b])
    assert S.many_shot_threshold(28472, 125, 352) == 100  # EPIC-55's own numbers give its threshold


# --------------------------------------------------------------------------------------------------
# Rendering: reversal pairs, boxes


def _scene(verb: str, noun: str, frame: R.Frame, seed: int = 3) -> R.Scene:
    rng = np.random.default_rng(seed)
    ww, wh = frame.world
    texture = R.render_texture(R.random_texture_spec(rng), wh, ww, rng)
    return S.build_scene(frame, texture, S.kitchen_look(0, 0), R.VERB_NAMES.index(verb), R.NOUN_NAMES.index(noun),
                         np.random.default_rng(seed), wobble=False)


def _play(verb: str, noun: str, n: int = 9, *, hand: bool = True):
    """Render a segment with a still camera: frames (n, H, W, 3) and active boxes (n, 5)."""
    frame = R.Frame(228, 128)
    scene = _scene(verb, noun, frame=frame)
    frames, boxes = [], []
    for i in range(n):
        img, b = R.render_frame(frame, scene, i / (n - 1), 0.0, R.Camera(), hand=hand)
        frames.append(np.asarray(img))
        boxes.append(b[0][2])
    return np.stack(frames), np.array(boxes)


@pytest.mark.parametrize("pair", R.REVERSAL_PAIRS, ids="/".join)
def test_reversal_pair_played_backwards_is_the_other_verb(pair):
    a, b = pair
    noun = R.COMPATIBLE[a][0]
    frames_a, boxes_a = _play(a, noun)
    frames_b, boxes_b = _play(b, noun)
    np.testing.assert_allclose(boxes_b, boxes_a[::-1], atol=1e-6)  # the active object's box trajectory
    assert np.array_equal(frames_b, frames_a[::-1])  # and every rendered pixel
    # and the motion is not its own reverse: the two verbs look different played forwards
    assert not np.array_equal(frames_a, frames_b)


@pytest.mark.parametrize("verb", ["take", "push", "open", "pour", "mix", "cut"])
def test_active_box_is_inside_the_frame_and_on_the_object(verb):
    """The box agrees with the pixels the active object covers (rendered with vs without the object)."""
    frame = R.Frame(228, 128)
    noun = R.COMPATIBLE[verb][-1]
    scene = _scene(verb, noun, frame=frame)
    empty = R.Scene(**{**scene.__dict__, "active": R.Placed(scene.active.noun, R.Sprite(
        Image.new("RGBA", scene.active.sprite.image.size, (0, 0, 0, 0)), scene.active.sprite.part_box,
        scene.active.sprite.part_shift, scene.active.sprite.colour, scene.active.sprite.radius),
        scene.active.rest, scene.active.angle)})
    cam = R.Camera(x=0.05, y=-0.03, angle=2.0, zoom=1.03)
    checked = 0
    for tau in np.linspace(0, 1, 7):
        with_obj, boxes = R.render_frame(frame, scene, tau, 0.0, cam, hand=False)
        without, _ = R.render_frame(frame, empty, tau, 0.0, cam, hand=False)
        x1, y1, x2, y2, vis = boxes[0][2]
        assert 0 <= x1 <= x2 <= frame.w and 0 <= y1 <= y2 <= frame.h
        diff = np.abs(np.asarray(with_obj, int) - np.asarray(without, int)).max(-1) > 40  # (H, W)
        if not vis:
            assert diff.sum() < 5
            continue
        ys, xs = np.nonzero(diff)
        mask_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        ix = max(0, min(x2, mask_box[2]) - max(x1, mask_box[0]))
        iy = max(0, min(y2, mask_box[3]) - max(y1, mask_box[1]))
        inter = ix * iy
        union = (x2 - x1) * (y2 - y1) + (mask_box[2] - mask_box[0]) * (mask_box[3] - mask_box[1]) - inter
        assert inter / union > 0.7, (verb, tau, (x1, y1, x2, y2), mask_box)
        checked += 1
    assert checked >= 4


def test_generated_boxes_lie_inside_frames_and_cover_every_segment_frame(smoke):
    boxes = pd.read_csv(smoke / "annotations" / "synth_object_boxes.csv")
    assert boxes.columns.tolist() == S.BOX_COLUMNS
    vis = boxes[boxes.visible == 1]
    assert (vis.x1 >= 0).all() and (vis.y1 >= 0).all() and (vis.x2 <= 114).all() and (vis.y2 <= 64).all()
    assert ((vis.x2 - vis.x1) >= 1).all() and ((vis.y2 - vis.y1) >= 1).all()
    ann = epic.load_epic55(smoke / "annotations")
    segs = pd.concat([ann.train, ann.test_s1_labels, ann.test_s2_labels])
    active = boxes[boxes.role == "active"]
    assert len(active) == int((segs.stop_frame - segs.start_frame + 1).sum())  # one per frame of every segment
    merged = active.merge(segs[["uid", "noun_class", "start_frame", "stop_frame"]], on="uid", suffixes=("", "_seg"))
    assert (merged.noun_class == merged.noun_class_seg).all()
    assert merged.frame.between(merged.start_frame, merged.stop_frame).all()
    assert active.visible.mean() > 0.7
    distractors = boxes[boxes.role == "distractor"].merge(segs[["uid", "noun_class"]], on="uid", suffixes=("", "_a"))
    assert (distractors.noun_class != distractors.noun_class_a).all()  # distractors are other classes
    assert distractors.groupby(["uid", "frame"]).size().between(1, 4).all()


# --------------------------------------------------------------------------------------------------
# Pretraining stand-ins


def test_object_images_and_motion_clips(tmp_path):
    out = S.generate_object_images(tmp_path / "objects", preset="smoke", seed=0, progress=False)
    images, labels, names = S.load_object_images(out)
    assert images.shape == (6 * 40, 3, 80, 80) and str(images.dtype) == "torch.uint8"
    assert names[: len(R.NOUNS)] == list(R.NOUN_NAMES) and len(set(names)) == 40
    assert sorted(Counter(labels.tolist()).values()) == [6] * 40
    assert images.float().std() > 20  # not blank
    mtime = (out / "images.npy").stat().st_mtime_ns
    S.generate_object_images(out, preset="smoke", seed=0, progress=False)  # complete: untouched
    assert (out / "images.npy").stat().st_mtime_ns == mtime
    clips_dir = S.generate_motion_clips(tmp_path / "motion", preset="smoke", seed=0, progress=False)
    clips, labels, names = S.load_motion_clips(clips_dir)
    assert clips.shape == (4 * len(S.MOTIONS), 8, 3, 64, 64) and names == list(S.MOTIONS)
    objects, object_names = S.load_motion_objects(clips_dir)
    assert object_names == [c.name for c in S.object_classes()] and objects.shape == labels.shape
    assert 0 <= int(objects.min()) and int(objects.max()) < len(object_names) and len(set(objects.tolist())) > 10
    clip, obj = S.motion_clip(5, int(labels[5]), S.object_classes(), 64, 8, 0)  # the label is the object drawn
    assert obj == int(objects[5]) and torch.equal(torch.from_numpy(clip), clips[5])
    moving = (clips[:, 1:].float() - clips[:, :-1].float()).abs().mean(dim=(1, 2, 3, 4))
    assert (moving > 0).all()  # every clip moves
    with pytest.raises(ValueError, match="other arguments"):
        S.generate_motion_clips(clips_dir, preset="smoke", seed=1, progress=False)


@pytest.mark.parametrize("make,data", [(S.generate_object_images, "images.npy"),
                                       (S.generate_motion_clips, "clips.npy")])
def test_stand_in_sets_are_deterministic(tmp_path, make, data):
    one = make(tmp_path / "one", preset="smoke", seed=0, progress=False)
    two = make(tmp_path / "two", preset="smoke", seed=0, progress=False)
    other = make(tmp_path / "other", preset="smoke", seed=1, progress=False)
    for name in (data, "labels.npy", "classes.json", *(["objects.npy"] if data == "clips.npy" else [])):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert (one / data).read_bytes() != (other / data).read_bytes()


def test_object_images_vary_lighting_scale_and_clutter():
    classes = S.object_classes()
    images = np.stack([S.object_image(i, 0, classes, 112, 0) for i in range(24)])  # (24, 112, 112, 3), one class
    brightness = images.reshape(24, -1).mean(1)
    assert brightness.max() - brightness.min() > 40  # lighting varies
    assert images.shape == (24, 112, 112, 3) and images.dtype == np.uint8


def test_cli_writes_the_smoke_set(tmp_path):
    S.main(["--preset", "smoke", "--out", str(tmp_path / "cli"), "--what", "objects"])
    assert (tmp_path / "cli" / "DONE").is_file() and (tmp_path / "cli" / "images.npy").is_file()
    assert os.path.getsize(tmp_path / "cli" / "labels.npy") > 0


# --------------------------------------------------------------------------------------------------
# The EPIC-100 layout


def test_epic100_plan_follows_the_epic100_split_rules():
    videos = S.plan_dataset("smoke", 0, layout="epic100")
    by_split = {s: [v for v in videos if v.split == s] for s in ("train", "validation", "test")}
    train_people = {v.participant for v in by_split["train"]}
    assert train_people == {"P01", "P02", "P03"}  # P04 and P05 never in training
    assert {v.participant for v in by_split["validation"]} == {"P01", "P02", "P03", "P04"}
    assert {v.participant for v in by_split["test"]} == {"P01", "P02", "P03", "P05"}
    assert all(v.video_id.split("_")[1].startswith("1") and len(v.video_id.split("_")[1]) == 3
               for v in by_split["test"])  # PXX_1YY, as EPIC-100's extension videos
    assert len({v.video_id for v in videos}) == len(videos)
    assert repr(S.plan_dataset("smoke", 0)) == repr(S.plan_dataset("smoke", 0, layout="epic55"))
    with pytest.raises(ValueError, match="no layout 'epic200'; choose one of epic55, epic100"):
        S.plan_dataset("smoke", 0, layout="epic200")


def test_tail_rule_on_a_small_table():
    from egolib import epic

    train = pd.DataFrame({"verb_class": [0] * 6 + [1] * 2 + [2] * 1 + [3] * 1})  # 10 segments, class 4 absent
    # smallest first: 4 (0), 2 (1), 3 (1) hold 2 of 10 segments = 20 %; adding 1 (2 more) would exceed it
    assert epic.tail_classes(train, "verb", 5) == [2, 3, 4]
    assert epic.unseen_participants(pd.DataFrame({"participant_id": ["P01", "P02"]}),
                                    pd.DataFrame({"participant_id": ["P02", "P09", "P09", "P07"]})) == ["P07", "P09"]


def test_validation_set_holds_out_the_last_training_video_of_each_kitchen(smoke, tmp_path):
    val = S.write_validation_set(smoke, tmp_path / "val")
    full, ann = epic.load_epic55(smoke / "annotations"), epic.load_epic55(val / "annotations")
    held = set(ann.test_s1_labels.video_id)
    assert held == set(full.train.groupby("participant_id").video_id.max())
    assert not held & set(ann.train.video_id)
    assert len(ann.train) + len(ann.test_s1_labels) == len(full.train)
    assert not set(ann.test_s1_labels.uid) & (set(full.test_s1.uid) | set(full.test_s2.uid))  # never S1/S2
    assert ann.test_s2_labels.equals(ann.test_s1_labels)
    assert epic.missing_frames(val).empty  # every segment's frames readable through the links
