"""egolib.epic: readers on the real annotation CSVs, errors on bad files, frames, sampling, the dataset."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from egolib import epic
from egolib.backbones import NORMALIZATION
from egolib.transforms import train_transform

ANNOTATIONS = Path(__file__).resolve().parent / "epic-annotations"  # real EPIC annotation CSVs (their README)
EPIC55 = ANNOTATIONS / "epic55"
EPIC100 = ANNOTATIONS / "epic100"


@pytest.fixture(scope="module")
def epic55() -> epic.Epic55:
    return epic.load_epic55(EPIC55)


# --------------------------------------------------------------------------------------------------
# Real EPIC-55 files


def test_epic55_train_labels_real(epic55: epic.Epic55) -> None:
    train = epic55.train
    assert len(train) == 28_472
    assert list(train.columns) == list(epic.EPIC55_TRAIN_COLUMNS)
    for column in ("uid", "start_frame", "stop_frame", "verb_class", "noun_class"):
        assert train[column].dtype == np.int64
    first = train.iloc[0]
    assert (first.uid, first.video_id, first.start_frame, first.stop_frame) == (0, "P01_01", 8, 202)
    assert first.all_nouns == ["door"] and first.all_noun_classes == [8]
    assert train.participant_id.nunique() == 28 and train.video_id.nunique() == 272
    assert (train.stop_frame - train.start_frame + 1).min() == 31


def test_many_shot_recomputed_equals_shipped(epic55: epic.Epic55) -> None:
    recomputed = epic.many_shot(epic55.train)
    shipped = epic.ManyShot(
        verbs=epic.read_many_shot(EPIC55 / "EPIC_many_shot_verbs.csv"),
        nouns=epic.read_many_shot(EPIC55 / "EPIC_many_shot_nouns.csv"),
        actions=epic.read_many_shot(EPIC55 / "EPIC_many_shot_actions.csv"),
    )
    assert (len(recomputed.verbs), len(recomputed.nouns), len(recomputed.actions)) == (26, 71, 819)
    assert recomputed == shipped
    assert epic55.many_shot == recomputed and epic55.many_shot_shipped == shipped
    # The rule is "more than 100", and it matters for the threshold: a higher one gives fewer classes.
    assert len(epic.many_shot(epic55.train, threshold=1000).verbs) < 26


def test_epic55_test_timestamps_classes_and_split_real(epic55: epic.Epic55) -> None:
    assert len(epic55.test_s1) == 8_047 and len(epic55.test_s2) == 2_929
    assert list(epic55.test_s1.columns) == list(epic.EPIC55_TIMESTAMP_COLUMNS)
    assert sorted(epic55.test_s2.participant_id.unique()) == ["P09", "P11", "P18", "P32"]
    assert epic55.test_s1_labels is None and epic55.test_s2_labels is None  # EPIC hides the test labels
    assert len(epic55.verb_classes) == 125 and len(epic55.noun_classes) == 352
    assert epic55.noun_classes.class_key.iloc[0] == "Nothing"
    assert "grab" in epic55.verb_classes.verbs.iloc[0]

    train, val = epic.participant_split(epic55.train)
    assert sorted(val.participant_id.unique()) == ["P26", "P27", "P28", "P29", "P30", "P31"]
    assert max(train.participant_id) == "P25" and len(train) + len(val) == 28_472

    actions = epic.action_classes(epic55.train)
    assert actions == sorted(set(actions)) and len(actions) == len(
        set(zip(epic55.train.verb_class, epic55.train.noun_class, strict=True))
    )


def test_epic100_real() -> None:
    e = epic.load_epic100(EPIC100)
    assert list(e.validation.columns) == list(epic.EPIC100_LABEL_COLUMNS) and len(e.validation) == 9_668
    assert e.validation.narration_timestamp.isna().sum() > 0  # actions without a narration time
    assert e.validation.narration_id.iloc[0] == "P01_11_0"
    assert len(e.test) == 13_092 and list(e.test.columns) == list(epic.EPIC100_TIMESTAMP_COLUMNS)
    assert len(e.verb_classes) == 97 and len(e.noun_classes) == 300
    assert len(e.tail_verbs) == 86 and len(e.tail_nouns) == 228
    assert e.unseen_validation == ["P18", "P32"] and e.unseen_test == ["P33", "P34", "P36"]
    if not (EPIC100 / "EPIC_100_train.csv").is_file():
        assert e.train is None


# --------------------------------------------------------------------------------------------------
# Small written files, and bad ones

EPIC55_HEADER = ",".join(epic.EPIC55_TRAIN_COLUMNS)
EPIC55_ROWS = [
    "0,P01,P01_01,open door,00:00:00.14,00:00:03.37,8,202,open,2,door,8,['door'],[8]",
    "1,P01,P01_01,turn on light,00:00:04.37,00:00:06.17,262,370,turn-on,12,light,113,['light'],[113]",
    "2,P01,P01_01,put pan on hob,00:00:07.00,00:00:08.00,420,480,put,1,pan,5,\"['pan', 'hob']\",\"[5, 12]\"",
]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_epic55_reader_small_file(tmp_path: Path) -> None:
    df = epic.read_epic55_train(write_csv(tmp_path / "labels.csv", EPIC55_HEADER, EPIC55_ROWS))
    assert df.uid.tolist() == [0, 1, 2] and df.all_noun_classes.iloc[2] == [5, 12]
    assert df.all_nouns.iloc[2] == ["pan", "hob"]


def test_epic100_train_reader_small_file(tmp_path: Path) -> None:
    header = ",".join(epic.EPIC100_LABEL_COLUMNS)
    rows = [
        "P01_01_0,P01,P01_01,00:00:00.560,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,['door'],[3]",
        "P01_01_1,P01,P01_01,,00:00:04.37,00:00:06.17,262,370,turn on light,turn-on,6,light,114,['light'],[114]",
    ]
    write_csv(tmp_path / "EPIC_100_train.csv", header, rows)
    df = epic.read_epic100_train(tmp_path / "EPIC_100_train.csv")
    assert list(df.columns) == list(epic.EPIC100_LABEL_COLUMNS)
    assert df.narration_timestamp.iloc[0] == "00:00:00.560" and pd.isna(df.narration_timestamp.iloc[1])
    assert df.verb_class.tolist() == [3, 6] and df.verb_class.dtype == np.int64
    e = epic.load_epic100(tmp_path)  # a folder holding only the train file
    assert e.train is not None and len(e.train) == 2 and e.validation is None and e.tail_verbs is None


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("verb_class", "abc", "expected an integer >= 0, got 'abc'"),
        ("start_frame", "0", "integer >= 1"),
        ("stop_frame", "3.5", "got '3.5'"),
        ("start_timestamp", "7s", "timestamp HH:MM:SS"),
        ("all_noun_classes", "[5, 12", "list literal"),
        ("verb", "", "non-empty"),
    ],
)
def test_bad_value_names_file_line_and_column(tmp_path: Path, column: str, value: str, message: str) -> None:
    cells = EPIC55_ROWS[1].split(",")
    cells[list(epic.EPIC55_TRAIN_COLUMNS).index(column)] = f'"{value}"'
    path = write_csv(tmp_path / "bad.csv", EPIC55_HEADER, [EPIC55_ROWS[0], ",".join(cells), EPIC55_ROWS[2]])
    with pytest.raises(ValueError, match=r"bad\.csv, line 3, column '" + column + "'") as err:
        epic.read_epic55_train(path)
    assert message in str(err.value)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    keep = [c for c in epic.EPIC55_TRAIN_COLUMNS if c != "noun_class"]
    df = pd.DataFrame(
        [
            dict(
                zip(
                    epic.EPIC55_TRAIN_COLUMNS,
                    [
                        0,
                        "P01",
                        "P01_01",
                        "x",
                        "00:00:00.00",
                        "00:00:01.00",
                        1,
                        60,
                        "open",
                        2,
                        "door",
                        8,
                        "['door']",
                        "[8]",
                    ],
                    strict=True,
                )
            )
        ]
    )[keep]
    df.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"labels\.csv, line 1: missing column\(s\) noun_class"):
        epic.read_epic55_train(tmp_path / "labels.csv")
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        epic.read_epic55_train(tmp_path / "nowhere.csv")


def test_bad_rows_and_files(tmp_path: Path) -> None:
    swapped = EPIC55_ROWS[1].replace(",262,370,", ",370,262,")
    path = write_csv(tmp_path / "a.csv", EPIC55_HEADER, [EPIC55_ROWS[0], swapped])
    with pytest.raises(ValueError, match=r"a\.csv, line 3: stop_frame 262 is before start_frame 370"):
        epic.read_epic55_train(path)
    path = write_csv(tmp_path / "b.csv", EPIC55_HEADER, [EPIC55_ROWS[0], EPIC55_ROWS[0]])
    with pytest.raises(ValueError, match=r"b\.csv, line 3, column 'uid': duplicate id"):
        epic.read_epic55_train(path)
    for rows in ([EPIC55_ROWS[0] + ",extra"], [EPIC55_ROWS[0], EPIC55_ROWS[1] + ",extra"]):
        path = write_csv(tmp_path / "c.csv", EPIC55_HEADER, rows)  # a row with more fields than the header
        with pytest.raises(ValueError, match=r"c\.csv: cannot read"):
            epic.read_epic55_train(path)
    path = write_csv(tmp_path / "v.csv", "verb_id,class_key,verbs", ["0,take,['take']", "2,put,['put']"])
    with pytest.raises(ValueError, match=r"v\.csv, line 3, column 'verb_id': expected class id 1"):
        epic.read_classes(path)
    path = write_csv(tmp_path / "m.csv", "action_class,noun,noun_class,verb,verb_class", ['"(1, 2)",pan,3,put,1'])
    with pytest.raises(ValueError, match=r"m\.csv, line 2: action_class \(1, 2\) disagrees"):
        epic.read_many_shot(path)
    path = write_csv(tmp_path / "n.csv", "class,name", ["1,put"])
    with pytest.raises(ValueError, match=r"n\.csv, line 1: not a many-shot list"):
        epic.read_many_shot(path)


def test_many_shot_rule_on_a_small_table() -> None:
    # verb 0: 3 rows, verb 1: 2 rows, verb 2: 1 row; nouns 5: 3 rows, 6: 3 rows.
    train = pd.DataFrame({"verb_class": [0, 0, 0, 1, 1, 2], "noun_class": [5, 5, 6, 6, 6, 5]})
    ms = epic.many_shot(train, threshold=2)  # strictly more than 2
    assert ms.verbs == [0] and ms.nouns == [5, 6] and ms.actions == [(0, 5), (0, 6)]
    assert epic.many_shot(train, threshold=1).actions == [(0, 5), (0, 6), (1, 6)]  # (1, 5) never occurs
    assert epic.action_classes(train) == [(0, 5), (0, 6), (1, 6), (2, 5)]


def test_participant_split_needs_both_sides() -> None:
    train = pd.DataFrame({"participant_id": ["P01", "P02", "P03"], "uid": [0, 1, 2]})
    with pytest.raises(ValueError, match="participants present"):
        epic.participant_split(train)
    tr, va = epic.participant_split(train, val_participants=["P03"])
    assert tr.uid.tolist() == [0, 1] and va.uid.tolist() == [2]


# --------------------------------------------------------------------------------------------------
# Frames: tiny JPEGs whose red channel encodes the frame number (red = 4 * n)

NUM_FRAMES = 60


def jpeg(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 18), (4 * n, 255 - 4 * n, 128)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def frame_number(frame: torch.Tensor) -> int:
    """Decode the frame number written by ``jpeg`` back from a (3, H, W) frame."""
    return round(frame[0].float().mean().item() / 4)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A split folder with P01_01 extracted and P01_02 as a tar (members ./frame_*.jpg, as distributed)."""
    root = epic.frames_root(tmp_path, "train")
    folder = root / "P01" / "P01_01"
    folder.mkdir(parents=True)
    with tarfile.open(root / "P01" / "P01_02.tar", "w") as tar:
        for n in range(1, NUM_FRAMES + 1):
            data = jpeg(n)
            (folder / epic.frame_name(n)).write_bytes(data)
            info = tarfile.TarInfo(f"./{epic.frame_name(n)}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return root


def test_frame_paths(tmp_path: Path) -> None:
    assert epic.frames_root(tmp_path, "test") == tmp_path / "frames_rgb_flow" / "rgb" / "test"
    assert epic.frame_path("r", "P01", "P01_01", 8) == Path("r/P01/P01_01/frame_0000000008.jpg")
    with pytest.raises(ValueError, match="train, test"):
        epic.frames_root(tmp_path, "val")


def test_folder_and_tar_give_the_same_frames(root: Path) -> None:
    source = epic.FrameSource(root)
    wanted = [1, 7, 7, 60]
    a = source.read("P01", "P01_01", wanted, uid="0")
    b = source.read("P01", "P01_02", wanted, uid="1")
    assert a.shape == (4, 3, 18, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert [frame_number(f) for f in a] == wanted


@pytest.mark.parametrize("video", ["P01_01", "P01_02"])
def test_missing_frame_names_path_and_uid(root: Path, video: str) -> None:
    with pytest.raises(FileNotFoundError, match=rf"missing frame .*{video}.*frame_0000000061\.jpg \(segment uid 42\)"):
        epic.FrameSource(root).read("P01", video, [60, 61], uid="42")


def test_missing_video_names_both_places(root: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"P01_09 \(segment uid 3\).*P01_09.*P01_09\.tar"):
        epic.FrameSource(root).read("P01", "P01_09", [1], uid="3")


def test_corrupt_jpeg_names_path_and_uid(root: Path) -> None:
    path = root / "P01" / "P01_01" / epic.frame_name(5)
    path.write_bytes(jpeg(5)[:100])  # truncated
    with pytest.raises(ValueError, match=r"corrupt JPEG .*P01_01.*frame_0000000005\.jpg \(segment uid 7\)"):
        epic.FrameSource(root).read("P01", "P01_01", [4, 5], uid="7")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        epic.FrameSource(root).read("P01", "P01_01", [5], uid="7")


def test_corrupt_jpeg_in_tar(tmp_path: Path) -> None:
    root = tmp_path / "rgb"
    (root / "P02").mkdir(parents=True)
    with tarfile.open(root / "P02" / "P02_01.tar", "w") as tar:
        for n, data in ((1, jpeg(1)), (2, b"not a jpeg at all")):
            info = tarfile.TarInfo(f"./{epic.frame_name(n)}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = epic.FrameSource(root)
    assert frame_number(source.read("P02", "P02_01", [1])[0]) == 1
    with pytest.raises(ValueError, match=r"corrupt JPEG .*P02_01\.tar:frame_0000000002\.jpg \(segment uid 9\)"):
        source.read("P02", "P02_01", [1, 2], uid="9")


# --------------------------------------------------------------------------------------------------
# Sampling


def test_sampled_frames_stay_inside_the_segment() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for _ in range(300):
        start = int(rng.integers(1, 1000))
        stop = start + int(rng.integers(0, 40))
        K, L = int(rng.integers(1, 17)), int(rng.choice([1, 3]))
        for mode, clip in (("train", 0), ("val", 0), ("test", 0), ("test", 1)):
            frames = epic.sample_frames(start, stop, K, snippet_length=L, mode=mode, clip_index=clip)
            assert len(frames) == K * L
            assert all(start <= f <= stop for f in frames), (start, stop, K, L, mode, clip, frames)


def test_train_offsets_random_but_seeded() -> None:
    torch.manual_seed(1)
    a = epic.train_offsets(200, 8)
    torch.manual_seed(1)
    assert epic.train_offsets(200, 8) == a
    draws = {tuple(epic.train_offsets(200, 8)) for _ in range(10)}
    assert len(draws) > 1
    for offsets in draws:  # one offset in each chunk of avg = 25 frames
        assert [p // 25 for p in offsets] == list(range(8))


def test_test_offsets_centres_and_starts() -> None:
    state = torch.get_rng_state()
    assert epic.test_offsets(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]  # centres, tick 10
    assert epic.test_offsets(80, 8, clip_index=1) == [0, 10, 20, 30, 40, 50, 60, 70]  # starts
    assert torch.equal(torch.get_rng_state(), state)  # deterministic: no RNG draw
    clip0 = epic.sample_frames(101, 180, 8, mode="test", clip_index=0)
    clip1 = epic.sample_frames(101, 180, 8, mode="test", clip_index=1)
    assert clip0 == [106, 116, 126, 136, 146, 156, 166, 176] and clip0 != clip1
    assert epic.sample_frames(101, 180, 8, mode="val") == clip0
    with pytest.raises(ValueError, match="clip_index"):
        epic.test_offsets(80, 8, clip_index=2)


def test_snippets_are_consecutive_frames() -> None:
    torch.manual_seed(0)
    frames = epic.sample_frames(11, 110, 4, snippet_length=3, mode="train")
    snippets = [frames[i : i + 3] for i in range(0, 12, 3)]
    assert all(s[1] == s[0] + 1 and s[2] == s[0] + 2 for s in snippets)
    # test: tick = (100 - 3 + 1) / 4 = 24.5, centres int(12.25 + 24.5 i) = 12, 36, 61, 85
    assert epic.sample_frames(11, 110, 4, snippet_length=3, mode="test")[::3] == [23, 47, 72, 96]
    # a snippet at the very end is clamped to the last frame
    assert epic.snippet_positions([8], 10, 3) == [8, 9, 9]


def test_short_segments_as_the_reference() -> None:
    torch.manual_seed(0)
    assert epic.train_offsets(5, 8) == [0] * 8  # F <= K: all zeros (C1 _sample_indices)
    assert epic.train_offsets(10, 8) == list(range(8))  # avg = 1: one frame per chunk, no randomness
    assert epic.train_offsets(12, 8, 3) == list(range(8))  # avg = (12 - 3 + 1) // 8 = 1
    offsets = epic.train_offsets(9, 8, 3)  # avg = 0, F > K: sorted random starts in [0, 7)
    assert offsets == sorted(offsets) and all(0 <= p < 7 for p in offsets)
    assert epic.test_offsets(5, 8) == [0, 0, 1, 2, 2, 3, 4, 4]  # tick 0.625, repeats, no guard needed
    assert epic.test_offsets(2, 4, 3) == [0, 0, 0, 0]  # F < L: negative tick, clamped (deviation)
    assert epic.sample_frames(7, 8, 4, snippet_length=3, mode="test") == [7, 8, 8] * 4


# --------------------------------------------------------------------------------------------------
# The dataset

SEGMENTS = pd.DataFrame(
    {
        "uid": [10, 11, 12],
        "participant_id": ["P01", "P01", "P01"],
        "video_id": ["P01_01", "P01_02", "P01_02"],
        "start_frame": [3, 20, 50],
        "stop_frame": [40, 52, 51],
        "verb_class": [1, 2, 1],
        "noun_class": [5, 6, 6],
    }
)


def test_dataset_items_and_batches(root: Path) -> None:
    actions = [(1, 5), (2, 6)]
    ds = epic.EpicVideoDataset(SEGMENTS, epic.FrameSource(root), num_segments=4, mode="train", actions=actions)
    torch.manual_seed(0)
    item = ds[0]
    assert item["clip"].shape == (4, 3, 18, 32) and item["clip"].dtype == torch.uint8
    assert (item["verb"], item["noun"], item["action"], item["uid"]) == (1, 5, 0, "10")
    assert ds[2]["action"] == -1  # (1, 6) is not a training pair
    for i in range(len(ds)):
        numbers = [frame_number(f) for f in ds[i]["clip"]]
        assert all(SEGMENTS.start_frame[i] <= n <= SEGMENTS.stop_frame[i] for n in numbers)
        assert numbers == sorted(numbers)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["clip"].shape == (3, 4, 3, 18, 32)  # (B, T, C, H, W)
    assert batch["verb"].tolist() == [1, 2, 1] and batch["uid"] == ["10", "11", "12"]


def test_dataset_seeded_and_test_clips(root: Path) -> None:
    source = epic.FrameSource(root)
    ds = epic.EpicVideoDataset(SEGMENTS, source, num_segments=4, transform=train_transform(NORMALIZATION["res34"], 16))
    torch.manual_seed(3)
    a = ds[0]["clip"]
    torch.manual_seed(3)
    b = ds[0]["clip"]
    assert a.shape == (4, 3, 16, 16) and a.dtype == torch.float32 and torch.equal(a, b)
    clips = [
        epic.EpicVideoDataset(SEGMENTS, source, num_segments=4, mode="test", clip_index=c)[0]["clip"] for c in (0, 1)
    ]
    assert [frame_number(f) for f in clips[0]] == [7, 17, 26, 36]  # centres, tick 9.5
    assert [frame_number(f) for f in clips[1]] == [3, 12, 22, 31]  # starts
    assert not torch.equal(clips[0], clips[1])


def test_dataset_snippets(root: Path) -> None:
    ds = epic.EpicVideoDataset(SEGMENTS, epic.FrameSource(root), num_segments=4, snippet_length=3, mode="val")
    clip = ds[1]["clip"]
    assert clip.shape == (12, 3, 18, 32)  # (T*L, C, H, W)
    numbers = [frame_number(f) for f in clip]
    assert all(numbers[i + 1] == numbers[i] + 1 and numbers[i + 2] == numbers[i] + 2 for i in range(0, 12, 3))


def test_dataset_unlabelled_and_epic100_ids(root: Path) -> None:
    s1 = SEGMENTS.drop(columns=["verb_class", "noun_class"])
    item = epic.EpicVideoDataset(s1, epic.FrameSource(root), num_segments=2, mode="test")[0]
    assert (item["verb"], item["noun"], item["action"]) == (-1, -1, -1)
    e100 = SEGMENTS.drop(columns=["uid"]).assign(narration_id=["P01_01_0", "P01_02_0", "P01_02_1"])
    assert epic.EpicVideoDataset(e100, epic.FrameSource(root), num_segments=2, mode="val")[2]["uid"] == "P01_02_1"
    with pytest.raises(ValueError, match="mode"):
        epic.EpicVideoDataset(SEGMENTS, epic.FrameSource(root), num_segments=2, mode="eval")
    with pytest.raises(ValueError, match="video_id"):
        epic.EpicVideoDataset(SEGMENTS.drop(columns=["video_id"]), epic.FrameSource(root), num_segments=2)


def test_epic100_layout_reads_real_segments_by_their_frame_numbers(tmp_path: Path) -> None:
    """EPIC-100's layout: <root>/PXX/rgb_frames/<video>/ or <video>.tar, every split under the one root; the 50 fps
    extension videos (PXX_1YY) are read by the annotated frame numbers, as the 60 fps ones."""
    e = epic.load_epic100(EPIC100)
    validation = e.validation[e.validation.video_id == "P01_11"].head(2)  # an EPIC-55 video (60 fps)
    test = e.test[e.test.video_id.str.fullmatch(r"P\d\d_1\d\d")].head(2)  # extension videos (50 fps)
    assert len(validation) == 2 and len(test) == 2
    for split, segments, as_tar in (("validation", validation, False), ("test", test, True)):
        source = epic.frame_source(tmp_path, "epic100", split)
        video, participant = segments.video_id.iloc[0], segments.participant_id.iloc[0]
        last = int(segments.stop_frame.max())
        folder = tmp_path / participant / "rgb_frames" / video
        folder.mkdir(parents=True)
        for n in range(1, last + 1):
            (folder / epic.frame_name(n)).write_bytes(jpeg(n % 60))
        if as_tar:  # the tar as downloaded, folder removed
            with tarfile.open(folder.with_suffix(".tar"), "w") as tar:
                tar.add(folder, arcname=".")
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
        ds = epic.EpicVideoDataset(segments.reset_index(drop=True), source, num_segments=3, mode="test")
        for i in range(2):
            item = ds[i]
            assert item["uid"] == segments.narration_id.iloc[i]
            assert [frame_number(f) for f in item["clip"]] == [n % 60 for n in ds.frame_numbers(i)]
            row = segments.iloc[i]
            assert all(row.start_frame <= n <= row.stop_frame for n in ds.frame_numbers(i))
    with pytest.raises(ValueError, match="epic100 has no split 's1'; choose one of train, validation, test"):
        epic.frame_source(tmp_path, "epic100", "s1")
    assert epic.frame_source(tmp_path, "epic55", "s2").root == epic.frames_root(tmp_path, "test")


def test_corrupt_jpeg_reason_is_the_decoders(root: Path) -> None:
    # TorchCodec's decoder (torchvision.io's is deprecated) prefixes its C++ location: the message keeps the reason only
    path = root / "P01" / "P01_01" / epic.frame_name(3)
    path.write_bytes(jpeg(3)[:100])
    with pytest.raises(ValueError) as err:
        epic.FrameSource(root).read("P01", "P01_01", [3], uid="7")
    assert str(err.value) == (f"corrupt JPEG {path} (segment uid 7): Image is incomplete or truncated; "
                              "re-extract the frames")


def test_truncated_tar_names_the_archive(root: Path) -> None:
    tar_path = root / "P01" / "P01_02.tar"
    source = epic.FrameSource(root)
    assert frame_number(source.read("P01", "P01_02", [60])[0]) == 60  # indexed while whole
    offset, size = source._tar_index[tar_path][epic.frame_name(60)]
    with open(tar_path, "r+b") as f:
        f.truncate(offset + size // 2)  # the download stopped inside the last frame
    with pytest.raises(ValueError, match=rf"truncated frame archive {re.escape(str(tar_path))} \(segment uid 5\): "
                                         r"its member frame_0000000060\.jpg has \d+ of \d+ bytes"):
        source.read("P01", "P01_02", [1, 60], uid="5")
    with pytest.raises(ValueError, match=rf"cannot read frame archive {re.escape(str(tar_path))}"):
        epic.FrameSource(root).read("P01", "P01_02", [1], uid="5")  # indexed anew: the tar itself is cut


def test_cuda_batch_error_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # nvJPEG decodes a read as one batch and names no file; the CPU decoder then finds the culprit (no GPU needed)
    real = epic.decode_jpeg

    def batch_fails(source, **kwargs):
        if isinstance(source, list):
            raise RuntimeError("nvjpegDecodeBatched failed")
        return real(source, **kwargs)

    monkeypatch.setattr(epic, "decode_jpeg", batch_fails)
    files = [("a/frame_0000000001.jpg", jpeg(1)), ("a/frame_0000000002.jpg", jpeg(2)[:100])]
    with pytest.raises(ValueError, match=r"corrupt JPEG a/frame_0000000002\.jpg \(segment uid 4\): Image is"):
        epic.decode_frames(files, "4", device="cuda")
    with pytest.raises(ValueError, match=r"corrupt JPEG among a/frame_0000000001\.jpg, a/frame_0000000002\.jpg "
                                         r"\(segment uid 4\): nvjpegDecodeBatched failed"):
        epic.decode_frames([files[0], (files[1][0], jpeg(2))], "4", device="cuda")
    with pytest.raises(ValueError, match=r"a/frame_0000000001\.jpg \(segment uid 4\): the file is empty"):
        epic.decode_frames([(files[0][0], b"")], "4", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nvJPEG)")
def test_cuda_decoding_matches_the_cpu(root: Path) -> None:
    cpu = epic.FrameSource(root).read("P01", "P01_02", [1, 7, 7, 60], uid="0")
    cuda = epic.FrameSource(root, device="cuda").read("P01", "P01_02", [1, 7, 7, 60], uid="0")
    assert cuda.device.type == "cuda" and cuda.shape == cpu.shape and cuda.dtype == torch.uint8
    assert (cuda.cpu().int() - cpu.int()).abs().max() <= 4  # nvJPEG's IDCT rounds differently from libjpeg-turbo
    assert [frame_number(f) for f in cuda.cpu()] == [1, 7, 7, 60]
