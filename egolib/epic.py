"""EPIC-Kitchens data: annotation readers, frame files, TSN segment sampling and the video dataset.

The file reads top-down:

1. CSV readers for EPIC-Kitchens-55 and EPIC-100 (never the pickles: they break across pandas versions).
   Every column is checked; a missing column or a bad value raises ``ValueError`` naming the file, the
   line (1-based, the header is line 1) and the column.
2. What is derived from the training labels: many-shot lists (the official rule), action classes and the
   common EPIC-55 validation split (P01-P25 train, P26-P31 val).
3. ``load_epic55`` / ``load_epic100``: a whole annotation folder at once.
4. Frames: ``<frames_root>/<participant>/<video>/frame_%010d.jpg`` (EPIC-55) or
   ``<root>/<participant>/rgb_frames/<video>/frame_%010d.jpg`` (EPIC-100), numbered from 1, where
   ``start_frame`` and ``stop_frame`` are file numbers and both ends are inclusive. ``FrameSource``
   reads extracted folders or the per-video tar files as distributed, without unpacking them.
5. TSN sampling: K segments, a random offset per segment for training, segment centres for
   validation/test, segment starts for the second test clip; L consecutive frames per segment (L = 3:
   the R(2+1)D snippets).
6. ``EpicVideoDataset``: one segment -> a uint8 clip ``(T*L, C, H, W)`` (float32 once transformed),
   verb, noun, action and uid.
"""

from __future__ import annotations

import ast
import logging
import re
import tarfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torchcodec.decoders import decode_jpeg

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# 1. CSV readers
#
# A schema maps each column to a kind. Kinds:
#   int    integer >= 0            frame  integer >= 1 (frame files are numbered from 1)
#   str    non-empty string        text   any string (may be empty)
#   time   HH:MM:SS.ss...          time?  a timestamp or empty (-> NaN; EK100 narration_timestamp)
#   list   a Python list literal, e.g. "['door']" or "[8]" (parsed with ast.literal_eval)
#   pair   "(v, n)" -> tuple (EPIC_many_shot_actions.csv action_class)

EPIC55_TRAIN_COLUMNS = {
    "uid": "int",
    "participant_id": "str",
    "video_id": "str",
    "narration": "text",
    "start_timestamp": "time",
    "stop_timestamp": "time",
    "start_frame": "frame",
    "stop_frame": "frame",
    "verb": "str",
    "verb_class": "int",
    "noun": "str",
    "noun_class": "int",
    "all_nouns": "list",
    "all_noun_classes": "list",
}
EPIC55_TIMESTAMP_COLUMNS = {
    "uid": "int",
    "participant_id": "str",
    "video_id": "str",
    "start_timestamp": "time",
    "stop_timestamp": "time",
    "start_frame": "frame",
    "stop_frame": "frame",
}
EPIC55_CLASS_COLUMNS = {
    "verb": {"verb_id": "int", "class_key": "str", "verbs": "list"},
    "noun": {"noun_id": "int", "class_key": "str", "nouns": "list"},
}
EPIC55_MANY_SHOT_COLUMNS = {
    "verb": {"verb_class": "int", "verb": "str"},
    "noun": {"noun_class": "int", "noun": "str"},
    "action": {"action_class": "pair", "noun": "str", "noun_class": "int", "verb": "str", "verb_class": "int"},
}
EPIC100_LABEL_COLUMNS = {
    "narration_id": "str",
    "participant_id": "str",
    "video_id": "str",
    "narration_timestamp": "time?",
    "start_timestamp": "time",
    "stop_timestamp": "time",
    "start_frame": "frame",
    "stop_frame": "frame",
    "narration": "text",
    "verb": "str",
    "verb_class": "int",
    "noun": "str",
    "noun_class": "int",
    "all_nouns": "list",
    "all_noun_classes": "list",
}
EPIC100_TIMESTAMP_COLUMNS = {
    "narration_id": "str",
    "participant_id": "str",
    "video_id": "str",
    "narration_timestamp": "time?",
    "start_timestamp": "time",
    "stop_timestamp": "time",
    "start_frame": "frame",
    "stop_frame": "frame",
}
EPIC100_CLASS_COLUMNS = {"id": "int", "key": "str", "instances": "list", "category": "str"}

_INT = re.compile(r"\s*\d{1,18}\s*")  # up to 18 digits: always fits int64
_TIME = re.compile(r"\d{2,}:\d{2}:\d{2}(\.\d+)?")
_PAIR = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def _bad_value(path: Path, row: int, column: str, value: str, expected: str) -> ValueError:
    # row is the 0-based DataFrame position; line 1 is the header, so the row sits on line row + 2.
    return ValueError(f"{path}, line {row + 2}, column {column!r}: expected {expected}, got {value!r}")


def _parse_column(raw: pd.Series, kind: str, path: Path, column: str) -> pd.Series:
    """Parse one all-string column; raise on the first value that does not fit ``kind``."""
    if kind in ("int", "frame"):
        ok = raw.str.fullmatch(_INT.pattern).to_numpy(dtype=bool, copy=True)
        values = np.zeros(len(raw), dtype=np.int64)
        values[ok] = raw[ok].astype(np.int64).to_numpy()
        ok = ok & (values >= (1 if kind == "frame" else 0))
        if not ok.all():
            row = int(np.argmin(ok))
            expected = "an integer >= 1 (frame files are numbered from 1)" if kind == "frame" else "an integer >= 0"
            raise _bad_value(path, row, column, raw.iloc[row], expected)
        return pd.Series(values, name=column)
    if kind in ("str", "text"):
        if kind == "str":
            empty = (raw.str.strip() == "").to_numpy(dtype=bool)
            if empty.any():
                row = int(np.argmax(empty))
                raise _bad_value(path, row, column, raw.iloc[row], "a non-empty value")
        return raw.rename(column)
    if kind in ("time", "time?"):
        ok = raw.str.fullmatch(_TIME.pattern).to_numpy(dtype=bool)
        if kind == "time?":
            ok = ok | (raw == "").to_numpy(dtype=bool)
        if not ok.all():
            row = int(np.argmin(ok))
            raise _bad_value(path, row, column, raw.iloc[row], "a timestamp HH:MM:SS.ss")
        return raw.where(raw != "", np.nan).rename(column) if kind == "time?" else raw.rename(column)
    if kind == "list":
        parsed: dict[str, list] = {}  # many rows repeat the same literal; parse each once
        for row, text in enumerate(raw.tolist()):
            if text not in parsed:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    value = None
                if not isinstance(value, list):
                    raise _bad_value(path, row, column, text, "a list literal such as ['door'] or [8]")
                parsed[text] = value
        return pd.Series([list(parsed[t]) for t in raw.tolist()], name=column, dtype=object)
    if kind == "pair":
        pairs = []
        for row, text in enumerate(raw.tolist()):
            m = _PAIR.fullmatch(text.strip())
            if m is None:
                raise _bad_value(path, row, column, text, "a pair '(verb_class, noun_class)'")
            pairs.append((int(m.group(1)), int(m.group(2))))
        return pd.Series(pairs, name=column, dtype=object)
    raise ValueError(f"unknown column kind {kind!r}")  # a bug in a schema above, not in the file


def _read_csv(path: str | Path, schema: dict[str, str], what: str) -> pd.DataFrame:
    """Read ``path`` as all-strings, check the header against ``schema`` and parse every column.

    The schema's columns come first, in schema order; any extra columns follow, unparsed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            # index_col=False: a row with more fields than the header must not turn column 1 into the index;
            # pandas then only warns (and drops data), so the warning becomes an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read {what} as CSV: {e}") from e
    missing = [c for c in schema if c not in raw.columns]
    if missing:
        raise ValueError(
            f"{path}, line 1: missing column(s) {', '.join(missing)} in the {what}; "
            f"expected columns {', '.join(schema)}; the header has {', '.join(map(str, raw.columns))}"
        )
    parsed = {c: _parse_column(raw[c].reset_index(drop=True), kind, path, c) for c, kind in schema.items()}
    extra = {c: raw[c].reset_index(drop=True) for c in raw.columns if c not in schema}
    return pd.DataFrame({**parsed, **extra})


def _check_segments(df: pd.DataFrame, path: Path, key: str) -> pd.DataFrame:
    """Segment files: ``stop_frame >= start_frame`` (inclusive ends) and unique ids in ``key``."""
    reversed_rows = np.flatnonzero((df["stop_frame"] < df["start_frame"]).to_numpy())
    if len(reversed_rows):
        row = int(reversed_rows[0])
        raise ValueError(
            f"{path}, line {row + 2}: stop_frame {df['stop_frame'].iloc[row]} is before start_frame "
            f"{df['start_frame'].iloc[row]} (both ends are inclusive, so stop_frame >= start_frame)"
        )
    duplicated = np.flatnonzero(df[key].duplicated().to_numpy())
    if len(duplicated):
        row = int(duplicated[0])
        raise ValueError(f"{path}, line {row + 2}, column {key!r}: duplicate id {df[key].iloc[row]!r}")
    return df


def read_epic55_train(path: str | Path) -> pd.DataFrame:
    """Read ``EPIC_train_action_labels.csv`` (also SynthKitchens' ``EPIC_test_s{1,2}_labels.csv``).

    Returns:
        One row per segment, columns exactly as the file: ``uid, participant_id, video_id, narration,
        start_timestamp, stop_timestamp, start_frame, stop_frame, verb, verb_class, noun, noun_class,
        all_nouns, all_noun_classes`` (integers as int64, the two ``all_*`` columns as Python lists).
    """
    path = Path(path)
    return _check_segments(_read_csv(path, EPIC55_TRAIN_COLUMNS, "EPIC-55 action labels"), path, "uid")


def read_epic55_timestamps(path: str | Path) -> pd.DataFrame:
    """Read ``EPIC_test_s1_timestamps.csv`` / ``EPIC_test_s2_timestamps.csv`` (unlabelled test segments).

    Returns:
        Columns ``uid, participant_id, video_id, start_timestamp, stop_timestamp, start_frame, stop_frame``.
    """
    path = Path(path)
    return _check_segments(_read_csv(path, EPIC55_TIMESTAMP_COLUMNS, "EPIC-55 test timestamps"), path, "uid")


def _check_ids(df: pd.DataFrame, path: Path, column: str) -> pd.DataFrame:
    """Class ids must be 0..N-1 in file order: the id is a row index of the classifier."""
    wrong = np.flatnonzero(df[column].to_numpy() != np.arange(len(df)))
    if len(wrong):
        row = int(wrong[0])
        got = df[column].iloc[row]
        raise ValueError(f"{path}, line {row + 2}, column {column!r}: expected class id {row} (ids 0..N-1), got {got}")
    return df


def read_classes(path: str | Path) -> pd.DataFrame:
    """Read ``EPIC_verb_classes.csv`` (``verb_id, class_key, verbs``) or ``EPIC_noun_classes.csv``
    (``noun_id, class_key, nouns``); which one is told by the header's first column.

    Returns:
        One row per class in id order (ids 0..N-1 are checked); the member list parsed into a list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EPIC-55 class file not found: {path}")
    first = pd.read_csv(path, nrows=0).columns[:1].tolist()
    kind = {"verb_id": "verb", "noun_id": "noun"}.get(first[0] if first else "")
    if kind is None:
        raise ValueError(
            f"{path}, line 1: not an EPIC-55 class file: the header must start with verb_id (verb classes) "
            f"or noun_id (noun classes), got {first}"
        )
    df = _read_csv(path, EPIC55_CLASS_COLUMNS[kind], f"EPIC-55 {kind} classes")
    return _check_ids(df, path, f"{kind}_id")


def read_many_shot(path: str | Path) -> list[int] | list[tuple[int, int]]:
    """Read a shipped many-shot list: ``EPIC_many_shot_{verbs,nouns,actions}.csv`` (told by the header).

    Returns:
        Sorted verb or noun class ids, or sorted ``(verb_class, noun_class)`` pairs for actions (the
        ``action_class`` string ``"(v, n)"`` is checked against the ``verb_class``/``noun_class`` columns).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"many-shot list not found: {path}")
    header = pd.read_csv(path, nrows=0).columns.tolist()
    kind = next((k for k, cols in EPIC55_MANY_SHOT_COLUMNS.items() if header[:1] == list(cols)[:1]), None)
    if kind is None:
        raise ValueError(
            f"{path}, line 1: not a many-shot list: the header must start with verb_class, noun_class or "
            f"action_class, got {header}"
        )
    df = _read_csv(path, EPIC55_MANY_SHOT_COLUMNS[kind], f"many-shot {kind} list")
    if kind != "action":
        return sorted(df[f"{kind}_class"].astype(int).tolist())
    pairs = list(zip(df["verb_class"].astype(int), df["noun_class"].astype(int), strict=True))
    for row, (pair, stated) in enumerate(zip(pairs, df["action_class"], strict=True)):
        if pair != stated:
            raise ValueError(
                f"{path}, line {row + 2}: action_class {stated} disagrees with (verb_class, noun_class) {pair}"
            )
    return sorted(pairs)


def read_epic100_labels(path: str | Path) -> pd.DataFrame:
    """Read ``EPIC_100_train.csv`` or ``EPIC_100_validation.csv``.

    Returns:
        Columns exactly as the file (15): ``narration_id, participant_id, video_id, narration_timestamp,
        start_timestamp, stop_timestamp, start_frame, stop_frame, narration, verb, verb_class, noun,
        noun_class, all_nouns, all_noun_classes``; ``narration_timestamp`` is NaN where the file leaves it
        empty (actions without a narration time).
    """
    path = Path(path)
    return _check_segments(_read_csv(path, EPIC100_LABEL_COLUMNS, "EPIC-100 labels"), path, "narration_id")


read_epic100_train = read_epic100_labels
read_epic100_validation = read_epic100_labels


def read_epic100_timestamps(path: str | Path) -> pd.DataFrame:
    """Read ``EPIC_100_test_timestamps.csv``: the 8 columns of the labels file up to ``stop_frame``."""
    path = Path(path)
    return _check_segments(_read_csv(path, EPIC100_TIMESTAMP_COLUMNS, "EPIC-100 test timestamps"), path, "narration_id")


def read_epic100_classes(path: str | Path) -> pd.DataFrame:
    """Read ``EPIC_100_verb_classes.csv`` / ``EPIC_100_noun_classes.csv`` (``id, key, instances, category``)."""
    path = Path(path)
    return _check_ids(_read_csv(path, EPIC100_CLASS_COLUMNS, "EPIC-100 class file"), path, "id")


def read_tail_classes(path: str | Path) -> list[int]:
    """Read ``EPIC_100_tail_verbs.csv`` (column ``verb``) or ``EPIC_100_tail_nouns.csv`` (column ``noun``).

    Returns:
        The tail class ids, sorted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tail class list not found: {path}")
    header = pd.read_csv(path, nrows=0).columns.tolist()
    column = next((c for c in ("verb", "noun") if c in header), "verb or noun")
    return sorted(_read_csv(path, {column: "int"}, "tail class list")[column].astype(int).tolist())


def read_unseen_participants(path: str | Path) -> list[str]:
    """Read ``EPIC_100_unseen_participant_ids_{validation,test}.csv`` (column ``participant_id``)."""
    return sorted(_read_csv(path, {"participant_id": "str"}, "unseen participant list")["participant_id"].tolist())


# --------------------------------------------------------------------------------------------------
# 2. Derived from the training labels


@dataclass(frozen=True)
class ManyShot:
    """Many-shot classes: sorted verb ids, noun ids and (verb, noun) pairs."""

    verbs: list[int]
    nouns: list[int]
    actions: list[tuple[int, int]]


def many_shot(train: pd.DataFrame, threshold: int = 100) -> ManyShot:
    """The official many-shot rule (EPIC-55 README, epic-lib ``meta.py``).

    A verb or noun class is many-shot when it labels **more than** ``threshold`` training segments; an action
    (v, n) is many-shot when v and n are both many-shot and the pair occurs at least once in training.

    Args:
        train: training labels with ``verb_class`` and ``noun_class``.
        threshold: 100 for EPIC-55; SynthKitchens scales it to its size (its README says by how much).
    """
    verb_counts = train["verb_class"].value_counts()
    noun_counts = train["noun_class"].value_counts()
    verbs = sorted(int(v) for v, count in verb_counts.items() if count > threshold)
    nouns = sorted(int(n) for n, count in noun_counts.items() if count > threshold)
    verb_set, noun_set = set(verbs), set(nouns)
    actions = sorted(
        {
            (int(v), int(n))
            for v, n in zip(train["verb_class"], train["noun_class"], strict=True)
            if v in verb_set and n in noun_set
        }
    )
    return ManyShot(verbs=verbs, nouns=nouns, actions=actions)


def action_classes(train: pd.DataFrame) -> list[tuple[int, int]]:
    """The distinct (verb_class, noun_class) pairs of the training split, sorted.

    The action label of a segment is the index of its pair in this list (-1 when the pair is absent).
    """
    return sorted({(int(v), int(n)) for v, n in zip(train["verb_class"], train["noun_class"], strict=True)})


def tail_classes(train: pd.DataFrame, task: str, num_classes: int, share: float = 0.2) -> list[int]:
    """EPIC-100's tail rule (annotations README): the smallest classes that together account for ``share`` (20 %)
    of the training instances.

    Classes are taken from the smallest count up (ties: lower id first) while their cumulative count stays within
    ``share`` of all training segments; classes without a training segment count 0 and are therefore tail.

    Args:
        train: training labels with ``<task>_class``.
        task: ``verb`` or ``noun``.
        num_classes: the vocabulary size (97 verbs / 300 nouns on EPIC-100).
        share: the fraction of training instances the tail holds.

    Returns:
        The tail class ids, sorted.
    """
    counts = train[f"{task}_class"].value_counts().reindex(range(num_classes), fill_value=0)
    ascending = counts.sort_values(kind="stable")  # (num_classes,) smallest first, ids ascending within ties
    within = ascending.cumsum().to_numpy() <= share * len(train)
    return sorted(int(c) for c in ascending.index[within])


def unseen_participants(train: pd.DataFrame, split: pd.DataFrame) -> list[str]:
    """The participants of ``split`` that have no training segment (EPIC-100's unseen participants), sorted."""
    return sorted(set(split["participant_id"]) - set(train["participant_id"]))


# Participants held out for validation in the split most EPIC-55 papers use (annotations#17: Baradel et al.).
EPIC55_VAL_PARTICIPANTS = ("P26", "P27", "P28", "P29", "P30", "P31")


def participant_split(
    train: pd.DataFrame, val_participants: Sequence[str] = EPIC55_VAL_PARTICIPANTS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split EPIC-55 training labels by participant: P01-P25 train, P26-P31 validation (the common split).

    Returns:
        ``(train_part, val_part)``, each with the original row order and a fresh 0..n-1 index.

    Raises:
        ValueError: when either part would be empty (e.g. a data set without participants P26-P31: pass
            ``val_participants``).
    """
    is_val = train["participant_id"].isin(list(val_participants)).to_numpy()
    if is_val.all() or not is_val.any():
        present = sorted(train["participant_id"].unique().tolist())
        raise ValueError(
            f"participant split is empty on one side: validation participants {list(val_participants)}, "
            f"participants present {present}; pass val_participants= that names some but not all of them"
        )
    return train[~is_val].reset_index(drop=True), train[is_val].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# 3. Whole annotation folders


@dataclass(frozen=True)
class Epic55:
    """EPIC-Kitchens-55 (or SynthKitchens) annotations.

    Attributes:
        train: training labels (``read_epic55_train``).
        test_s1, test_s2: seen / unseen kitchens test segments (timestamps only).
        verb_classes, noun_classes: class tables (125 / 352 rows for EPIC-55).
        many_shot: recomputed from ``train`` with the official rule and the given threshold.
        many_shot_shipped: the shipped ``EPIC_many_shot_*.csv`` lists, or None when absent.
        test_s1_labels, test_s2_labels: test labels with the train columns: SynthKitchens ships them, EPIC does
            not (None).
    """

    train: pd.DataFrame
    test_s1: pd.DataFrame
    test_s2: pd.DataFrame
    verb_classes: pd.DataFrame
    noun_classes: pd.DataFrame
    many_shot: ManyShot
    many_shot_shipped: ManyShot | None = None
    test_s1_labels: pd.DataFrame | None = None
    test_s2_labels: pd.DataFrame | None = None

    @property
    def many_shot_for_metrics(self) -> ManyShot:
        """The lists the metrics use: the shipped ones when present (SynthKitchens scales the threshold to its
        size), else ``many_shot``."""
        return self.many_shot_shipped or self.many_shot


def load_epic55(annotations_dir: str | Path, many_shot_threshold: int = 100) -> Epic55:
    """Read an EPIC-55-layout annotation folder (the real one or SynthKitchens' ``annotations/``)."""
    d = Path(annotations_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"EPIC-55 annotation folder not found: {d}")
    train = read_epic55_train(d / "EPIC_train_action_labels.csv")
    names = [d / f"EPIC_many_shot_{k}.csv" for k in ("verbs", "nouns", "actions")]
    shipped = ManyShot(*(read_many_shot(p) for p in names)) if all(p.is_file() for p in names) else None
    labels = [d / f"EPIC_test_s{s}_labels.csv" for s in (1, 2)]
    return Epic55(
        train=train,
        test_s1=read_epic55_timestamps(d / "EPIC_test_s1_timestamps.csv"),
        test_s2=read_epic55_timestamps(d / "EPIC_test_s2_timestamps.csv"),
        verb_classes=read_classes(d / "EPIC_verb_classes.csv"),
        noun_classes=read_classes(d / "EPIC_noun_classes.csv"),
        many_shot=many_shot(train, many_shot_threshold),
        many_shot_shipped=shipped,
        test_s1_labels=read_epic55_train(labels[0]) if labels[0].is_file() else None,
        test_s2_labels=read_epic55_train(labels[1]) if labels[1].is_file() else None,
    )


@dataclass(frozen=True)
class Epic100:
    """EPIC-Kitchens-100 annotations; a field is None when its file is not in the folder.

    Attributes:
        train, validation: labels (``read_epic100_labels``); test: ``EPIC_100_test_timestamps.csv``.
        verb_classes, noun_classes: 97 / 300 classes. tail_verbs, tail_nouns: tail class ids.
        unseen_validation, unseen_test: participant ids unseen in training.
    """

    train: pd.DataFrame | None
    validation: pd.DataFrame | None
    test: pd.DataFrame | None
    verb_classes: pd.DataFrame | None
    noun_classes: pd.DataFrame | None
    tail_verbs: list[int] | None
    tail_nouns: list[int] | None
    unseen_validation: list[str] | None
    unseen_test: list[str] | None


EPIC100_FILES = {
    "train": ("EPIC_100_train.csv", read_epic100_labels),
    "validation": ("EPIC_100_validation.csv", read_epic100_labels),
    "test": ("EPIC_100_test_timestamps.csv", read_epic100_timestamps),
    "verb_classes": ("EPIC_100_verb_classes.csv", read_epic100_classes),
    "noun_classes": ("EPIC_100_noun_classes.csv", read_epic100_classes),
    "tail_verbs": ("EPIC_100_tail_verbs.csv", read_tail_classes),
    "tail_nouns": ("EPIC_100_tail_nouns.csv", read_tail_classes),
    "unseen_validation": ("EPIC_100_unseen_participant_ids_validation.csv", read_unseen_participants),
    "unseen_test": ("EPIC_100_unseen_participant_ids_test.csv", read_unseen_participants),
}


def load_epic100(annotations_dir: str | Path) -> Epic100:
    """Read the EPIC-100 files present in ``annotations_dir`` (``EPIC_100_train.csv`` is often absent:
    it is too large for the annotation repository's snapshot). Absent files give None fields."""
    d = Path(annotations_dir)
    paths = {name: d / fname for name, (fname, _) in EPIC100_FILES.items()}
    if not any(p.is_file() for p in paths.values()):
        names = ", ".join(p.name for p in paths.values())
        raise FileNotFoundError(f"no EPIC-100 annotation file in {d}; expected some of: {names}")
    fields = {}
    for name, path in paths.items():
        if path.is_file():
            fields[name] = EPIC100_FILES[name][1](path)
        else:
            log.info("EPIC-100 %s: %s is not in %s", name, path.name, d)
            fields[name] = None
    return Epic100(**fields)


# --------------------------------------------------------------------------------------------------
# 4. Frames on disk


EPIC100_RGB = "rgb_frames"  # <root>/PXX/rgb_frames/PXX_YY(Y)[.tar], as epic_downloader.py writes EPIC-100


def frames_root(dataset_root: str | Path, split: str) -> Path:
    """``<dataset_root>/frames_rgb_flow/rgb/<split>``, split ``train`` or ``test`` (the EPIC-55 layout)."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown frame split {split!r}; choose one of train, test")
    return Path(dataset_root) / "frames_rgb_flow" / "rgb" / split


def frame_name(frame: int) -> str:
    """File name of RGB frame ``frame`` (1-based, as ffmpeg's ``%010d`` numbers them)."""
    return f"frame_{frame:010d}.jpg"


def frame_path(root: str | Path, participant_id: str, video_id: str, frame: int) -> Path:
    """``<root>/<participant>/<video>/frame_%010d.jpg`` for an extracted video folder."""
    return Path(root) / participant_id / video_id / frame_name(frame)


def _decode_error(e: RuntimeError, where: str, uid: str) -> ValueError:
    reason = str(e).rsplit(", ", 1)[-1].rstrip(".")  # the decoder prefixes its C++ function and source location
    return ValueError(f"corrupt JPEG {where} (segment uid {uid}): {reason}; re-extract the frames")


def _check_not_empty(data: bytes, where: str, uid: str) -> None:
    if not data:
        raise ValueError(f"corrupt JPEG {where} (segment uid {uid}): the file is empty; re-extract the frames")


def decode_frame(data: bytes, where: str, uid: str) -> Tensor:
    """Decode one JPEG to RGB uint8 ``(3, H, W)`` on the CPU with TorchCodec's ``decode_jpeg`` (libjpeg-turbo).

    TorchCodec's image decoders replace ``torchvision.io``'s, deprecated since torchvision 0.29.

    Raises:
        ValueError: a corrupt or truncated JPEG; the message names ``where`` (the file) and the segment uid.
    """
    _check_not_empty(data, where, uid)
    try:
        return decode_jpeg(data, mode="RGB")
    except RuntimeError as e:
        raise _decode_error(e, where, uid) from e


def decode_frames(files: Sequence[tuple[str, bytes]], uid: str, device: str | torch.device = "cpu") -> list[Tensor]:
    """Decode JPEGs to RGB uint8 ``(3, H, W)`` tensors on ``device``: one by one on the CPU, as one nvJPEG batch
    on a CUDA device (TorchCodec's ``decode_jpeg``).

    Args:
        files: ``(where, data)`` pairs: the file's name for messages and its bytes.
        uid: the segment id, for error messages.
        device: ``"cpu"`` or a CUDA device.

    Raises:
        ValueError: a corrupt or truncated JPEG, named with the segment uid (on CUDA, the batch's first file that
            the CPU decoder also refuses; every file of the batch when it refuses none).
    """
    device = torch.device(device)
    if device.type == "cpu":
        return [decode_frame(data, where, uid) for where, data in files]
    for where, data in files:
        _check_not_empty(data, where, uid)
    try:
        return decode_jpeg([data for _, data in files], mode="RGB", device=device)
    except RuntimeError as e:
        for where, data in files:  # nvJPEG names no file: find the culprit with the CPU decoder
            decode_frame(data, where, uid)
        names = ", ".join(where for where, _ in files)
        raise ValueError(f"corrupt JPEG among {names} (segment uid {uid}): {e}; re-extract the frames") from e


class FrameSource:
    """RGB frames of one split, read from extracted folders or per-video tar files.

    For each video it looks for the folder ``<root>/<participant>/<subfolder>/<video>/`` first, then the tar
    ``<root>/<participant>/<subfolder>/<video>.tar`` as distributed (members ``./frame_0000000001.jpg`` ...). A tar
    is indexed once (member name -> byte offset and size, plain data, so forked DataLoader workers share it
    safely) and frames are read with one seek each; nothing is unpacked.

    Args:
        root: the split's frame folder, usually ``frames_root(dataset_root, "train" | "test")`` (EPIC-55), or the
            dataset root (EPIC-100, every split).
        subfolder: between participant and video: ``""`` (EPIC-55) or ``"rgb_frames"`` (EPIC-100).
        device: where frames are decoded: ``"cpu"`` (libjpeg-turbo, in DataLoader workers too) or a CUDA device
            (nvJPEG, one batch per ``read``; in the main process only, ``num_workers=0``: CUDA does not survive a
            forked worker).
    """

    def __init__(self, root: str | Path, subfolder: str = "", device: str | torch.device = "cpu") -> None:
        self.root = Path(root)
        self.subfolder = subfolder
        self.device = torch.device(device)
        self._tar_index: dict[Path, dict[str, tuple[int, int]]] = {}

    def __repr__(self) -> str:
        return f"FrameSource({str(self.root)!r}, subfolder={self.subfolder!r}, device={str(self.device)!r})"

    def _places(self, participant_id: str, video_id: str) -> tuple[Path, Path]:
        """The video's extracted folder and its tar."""
        parent = self.root / participant_id / self.subfolder
        return parent / video_id, parent / f"{video_id}.tar"

    def _index_tar(self, tar_path: Path, video_id: str) -> dict[str, tuple[int, int]]:
        if tar_path not in self._tar_index:
            index = {}
            try:
                with tarfile.open(tar_path, "r:") as tar:  # "r:": uncompressed only (offsets must be file offsets)
                    for member in tar:
                        if member.isfile():
                            name = member.name.removeprefix("./").removeprefix(f"{video_id}/")
                            index[name] = (member.offset_data, member.size)
            except tarfile.TarError as e:
                raise ValueError(f"cannot read frame archive {tar_path}: {e} (expected an uncompressed .tar)") from e
            self._tar_index[tar_path] = index
        return self._tar_index[tar_path]

    def frame_numbers(self, participant_id: str, video_id: str) -> set[int] | None:
        """The frame numbers a video has: the files of its folder, else the members of its tar (indexed once).

        Returns:
            The numbers of the ``frame_<10 digits>.jpg`` files, or None when neither the folder nor the tar exists.
        """
        folder, tar_path = self._places(participant_id, video_id)
        if folder.is_dir():
            names = [p.name for p in folder.iterdir()]
        elif tar_path.is_file():
            names = [Path(n).name for n in self._index_tar(tar_path, video_id)]
        else:
            return None
        return {int(n[6:16]) for n in names if n.startswith("frame_") and n.endswith(".jpg") and n[6:16].isdigit()}

    def read(self, participant_id: str, video_id: str, frames: Sequence[int], uid: str = "?") -> Tensor:
        """Read and decode frames by file number.

        Args:
            participant_id, video_id: e.g. ``"P01"``, ``"P01_01"``.
            frames: 1-based frame numbers (repeats allowed; each distinct file is decoded once).
            uid: the segment id, for error messages.

        Returns:
            uint8 ``(N, 3, H, W)`` RGB, N = ``len(frames)``, in the order given, on ``self.device``.

        Raises:
            FileNotFoundError: no folder or tar for the video, or a frame missing from it.
            ValueError: a corrupt JPEG or frames of different sizes.
        """
        folder, tar_path = self._places(participant_id, video_id)
        wanted = sorted(set(frames))
        files = []  # (where, bytes) of each wanted frame
        if folder.is_dir():
            for n in wanted:
                path = folder / frame_name(n)
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    raise FileNotFoundError(
                        f"missing frame {path} (segment uid {uid}); the video folder has no such file: "
                        "check start_frame/stop_frame and that the frames were fully extracted"
                    ) from None
                files.append((str(path), data))
        elif tar_path.is_file():
            index = self._index_tar(tar_path, video_id)
            with open(tar_path, "rb") as f:
                for n in wanted:
                    where = f"{tar_path}:{frame_name(n)}"
                    if frame_name(n) not in index:
                        raise FileNotFoundError(
                            f"missing frame {where} (segment uid {uid}); the archive has no such member: "
                            "check start_frame/stop_frame and the download"
                        )
                    offset, size = index[frame_name(n)]
                    f.seek(offset)
                    data = f.read(size)
                    if len(data) < size:
                        raise ValueError(
                            f"truncated frame archive {tar_path} (segment uid {uid}): its member {frame_name(n)} has "
                            f"{len(data)} of {size} bytes; download the tar again"
                        )
                    files.append((where, data))
        else:
            raise FileNotFoundError(
                f"no frames for video {video_id} (segment uid {uid}): neither the folder {folder} nor the archive "
                f"{tar_path} exists; put the extracted frames or the downloaded tar there"
            )
        decoded = dict(zip(wanted, decode_frames(files, uid, self.device), strict=True))
        sizes = {tuple(x.shape) for x in decoded.values()}
        if len(sizes) > 1:
            raise ValueError(f"frames of video {folder} (segment uid {uid}) differ in size: {sorted(sizes)}")
        return torch.stack([decoded[n] for n in frames])  # (N, 3, H, W)


def frame_source(dataset_root: str | Path, dataset: str, split: str, device: str | torch.device = "cpu"
                 ) -> FrameSource:
    """The frames of one split of a dataset root.

    EPIC-55 (and SynthKitchens in its layout): ``frames_rgb_flow/rgb/train`` for ``train``, ``.../test`` for
    ``s1``/``s2``. EPIC-100: ``<root>/PXX/rgb_frames/<video>`` for every split; its 50 fps extension videos
    (``PXX_1YY``) are read by the frame numbers of the annotations, as the 60 fps ones.

    Args:
        dataset_root: the dataset root.
        dataset: ``epic55`` or ``epic100``.
        split: ``train``, ``s1``, ``s2`` (EPIC-55) or ``train``, ``validation``, ``test`` (EPIC-100).
        device: where frames are decoded (``FrameSource``).
    """
    splits = {"epic55": ("train", "s1", "s2"), "epic100": ("train", "validation", "test")}
    if dataset not in splits:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(splits)}")
    if split not in splits[dataset]:
        raise ValueError(f"{dataset} has no split {split!r}; choose one of {', '.join(splits[dataset])}")
    if dataset == "epic100":
        return FrameSource(dataset_root, EPIC100_RGB, device)
    return FrameSource(frames_root(dataset_root, "train" if split == "train" else "test"), device=device)


def missing_frames(root: str | Path, annotations_dir: str | Path | None = None) -> pd.DataFrame:
    """Check that every frame referenced by the train, S1 and S2 segments of a data set exists.

    Works on SynthKitchens and on a real EPIC-Kitchens-55 copy (extracted folders or per-video tars, read
    through ``FrameSource``).

    Args:
        root: the data set root (``annotations/``, ``frames_rgb_flow/rgb/{train,test}/``).
        annotations_dir: the annotation folder, when not ``<root>/annotations``.

    Returns:
        One row per segment with missing frames: ``split, uid, participant_id, video_id, start_frame,
        stop_frame, missing`` (count), ``first_missing`` (path); empty when complete.

    Raises:
        ValueError / FileNotFoundError: an annotation file is unreadable.
    """
    root = Path(root)
    ann = load_epic55(Path(annotations_dir) if annotations_dir else root / "annotations")
    rows, present = [], {}
    for split, df, folder in (("train", ann.train, "train"), ("s1", ann.test_s1, "test"), ("s2", ann.test_s2, "test")):
        source = FrameSource(frames_root(root, folder))
        for r in df.itertuples(index=False):
            key = (folder, r.participant_id, r.video_id)
            if key not in present:
                present[key] = source.frame_numbers(r.participant_id, r.video_id) or set()
            missing = [f for f in range(int(r.start_frame), int(r.stop_frame) + 1) if f not in present[key]]
            if missing:
                first = frame_path(source.root, r.participant_id, r.video_id, missing[0])
                rows.append([split, int(r.uid), r.participant_id, r.video_id, int(r.start_frame), int(r.stop_frame),
                             len(missing), str(first)])
    return pd.DataFrame(rows, columns=["split", "uid", "participant_id", "video_id", "start_frame", "stop_frame",
                                       "missing", "first_missing"])


# --------------------------------------------------------------------------------------------------
# 5. TSN segment sampling (C1 TsnDataset). Offsets are 0-based positions in the segment's
# own frame list of F frames (offset k = file start_frame + k); L is the snippet length.


def train_offsets(num_frames: int, num_segments: int, snippet_length: int = 1) -> list[int]:
    """Training offsets: a random frame in each of K equal chunks (torch's global RNG).

    As C1 ``_sample_indices``: ``avg = (F - L + 1) // K``; if ``avg > 0``, offset_i = ``i * avg + randint(avg)``;
    else if ``F > K``, K sorted random integers in ``[0, F - L + 1)``; else all zeros.
    """
    F, K, L = num_frames, num_segments, snippet_length
    avg = (F - L + 1) // K
    if avg > 0:
        return [i * avg + int(r) for i, r in enumerate(torch.randint(avg, (K,)).tolist())]
    if F > K and F - L + 1 > 0:  # the second test guards F < L, which the reference does not reach
        return sorted(torch.randint(F - L + 1, (K,)).tolist())
    return [0] * K


def test_offsets(num_frames: int, num_segments: int, snippet_length: int = 1, clip_index: int = 0) -> list[int]:
    """Validation/test offsets: ``tick = (F - L + 1) / K``; clip 0 takes the centre of each chunk,
    ``int(tick / 2 + tick * i)`` (C1 ``_get_test_indices``), clip 1 its start, ``int(tick * i)`` (the second
    clip of the GSM reference's 2-clip test).

    Deviation: the reference has no guard for F < L (negative tick); offsets are clamped into ``[0, F - 1]``.
    """
    if clip_index not in (0, 1):
        raise ValueError(f"clip_index must be 0 (segment centres) or 1 (segment starts), got {clip_index}")
    F, K, L = num_frames, num_segments, snippet_length
    tick = (F - L + 1) / K
    shift = tick / 2 if clip_index == 0 else 0.0
    return [min(max(int(shift + tick * i), 0), F - 1) for i in range(K)]


def snippet_positions(offsets: Sequence[int], num_frames: int, snippet_length: int) -> list[int]:
    """Expand each offset p to the L consecutive positions p, p+1, ..., clamped at the last frame.

    Deviation: C1 ``_get_frame_idxs`` lets the position reach F (one past the last frame) before it stops
    advancing; here it stops at F - 1 so every index stays inside [start_frame, stop_frame].
    """
    return [min(p + j, num_frames - 1) for p in offsets for j in range(snippet_length)]


SAMPLING_MODES = ("train", "val", "test")


def sample_frames(
    start_frame: int,
    stop_frame: int,
    num_segments: int,
    *,
    snippet_length: int = 1,
    mode: str = "train",
    clip_index: int = 0,
) -> list[int]:
    """Frame file numbers of one clip of a segment (``start_frame``..``stop_frame``, 1-based, inclusive).

    Args:
        start_frame, stop_frame: the segment's first and last frame files.
        num_segments: K, segments per clip (T).
        snippet_length: L consecutive frames per segment (1 for 2D backbones, 3 for R(2+1)D).
        mode: ``train`` (random offset per segment) or ``val`` / ``test`` (deterministic, see ``test_offsets``).
        clip_index: 0 or 1, the test clip (ignored in training).

    Returns:
        K * L file numbers, snippet-major: ``[s0f0, s0f1, ..., s1f0, ...]``.
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling mode {mode!r}; choose one of {', '.join(SAMPLING_MODES)}")
    if num_segments < 1 or snippet_length < 1:
        raise ValueError(f"num_segments and snippet_length must be >= 1, got {num_segments}, {snippet_length}")
    F = stop_frame - start_frame + 1
    if F < 1:
        raise ValueError(f"stop_frame {stop_frame} is before start_frame {start_frame}")
    if mode == "train":
        offsets = train_offsets(F, num_segments, snippet_length)
    else:
        offsets = test_offsets(F, num_segments, snippet_length, clip_index)
    return [start_frame + p for p in snippet_positions(offsets, F, snippet_length)]


# --------------------------------------------------------------------------------------------------
# 6. The dataset


class EpicVideoDataset(torch.utils.data.Dataset):
    """Segments of an EPIC-style table as TSN clips.

    Args:
        segments: rows with ``participant_id, video_id, start_frame, stop_frame`` and ``uid`` (EPIC-55) or
            ``narration_id`` (EPIC-100); ``verb_class``/``noun_class`` when labelled (else labels are -1).
        frames: where the frames are (``FrameSource`` of the segments' split).
        num_segments: T, segments (frames or snippets) per clip.
        snippet_length: L consecutive frames per segment (3 for R(2+1)D).
        mode: ``train`` | ``val`` | ``test`` (sampling, see ``sample_frames``).
        clip_index: the test clip, 0 (centres) or 1 (starts).
        transform: called on the uint8 ``(T*L, C, H, W)`` clip (``egolib.transforms``); None keeps uint8.
        actions: the action classes (``action_classes(train)``); None gives action -1.

    Items are dicts ``clip`` (``(T*L, C, H, W)``), ``verb``, ``noun``, ``action`` (ints, -1 where unlabelled)
    and ``uid`` (str); the default collate makes ``clip`` a ``(B, T*L, C, H, W)`` batch. Training randomness
    (offsets here, crops and flips in the transform) draws from torch's global RNG, so a seeded run with
    ``num_workers=0`` is deterministic.
    """

    def __init__(
        self,
        segments: pd.DataFrame,
        frames: FrameSource,
        *,
        num_segments: int,
        snippet_length: int = 1,
        mode: str = "train",
        clip_index: int = 0,
        transform: Callable[[Tensor], Tensor] | None = None,
        actions: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if mode not in SAMPLING_MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(SAMPLING_MODES)}")
        if clip_index not in (0, 1):
            raise ValueError(f"clip_index must be 0 (segment centres) or 1 (segment starts), got {clip_index}")
        if num_segments < 1 or snippet_length < 1:
            raise ValueError(f"num_segments and snippet_length must be >= 1, got {num_segments}, {snippet_length}")
        key = "uid" if "uid" in segments.columns else "narration_id"
        needed = [key, "participant_id", "video_id", "start_frame", "stop_frame"]
        missing = [c for c in needed if c not in segments.columns]
        if missing:
            raise ValueError(
                f"segments table lacks column(s) {', '.join(missing)} (needs uid or narration_id, "
                f"participant_id, video_id, start_frame, stop_frame)"
            )
        self.frames = frames
        self.num_segments, self.snippet_length = num_segments, snippet_length
        self.mode, self.clip_index, self.transform = mode, clip_index, transform
        self.uids = [str(u) for u in segments[key].tolist()]
        self.participants = segments["participant_id"].astype(str).tolist()
        self.videos = segments["video_id"].astype(str).tolist()
        self.starts = segments["start_frame"].astype(int).tolist()
        self.stops = segments["stop_frame"].astype(int).tolist()
        n = len(segments)
        labelled = "verb_class" in segments.columns and "noun_class" in segments.columns
        self.verbs = segments["verb_class"].astype(int).tolist() if labelled else [-1] * n
        self.nouns = segments["noun_class"].astype(int).tolist() if labelled else [-1] * n
        lookup = {tuple(map(int, a)): i for i, a in enumerate(actions or [])}
        self.actions = [lookup.get((v, w), -1) for v, w in zip(self.verbs, self.nouns, strict=True)]

    def __len__(self) -> int:
        return len(self.uids)

    def frame_numbers(self, i: int) -> list[int]:
        """The T*L frame file numbers of item ``i`` (random in training)."""
        return sample_frames(
            self.starts[i],
            self.stops[i],
            self.num_segments,
            snippet_length=self.snippet_length,
            mode=self.mode,
            clip_index=self.clip_index,
        )

    def __getitem__(self, i: int) -> dict[str, Tensor | int | str]:
        clip = self.frames.read(self.participants[i], self.videos[i], self.frame_numbers(i), uid=self.uids[i])
        if self.transform is not None:
            clip = self.transform(clip)  # (T*L, C, H, W) uint8 -> (T*L, C, h, w) float32
        return {
            "clip": clip,
            "verb": self.verbs[i],
            "noun": self.nouns[i],
            "action": self.actions[i],
            "uid": self.uids[i],
        }
