"""Challenge submission files: the EPIC-55 seen/unseen zip, the EPIC-100 test zip, and a validator.

Formats, as the challenge servers read them:

    EPIC-55 (2019/2020 challenge, epic-lib ``submission_format.md``): a flat zip holding ``seen.json`` (S1) and
    ``unseen.json`` (S2), each
        {"version": "0.1", "challenge": "action_recognition",
         "results": {"<uid>": {"verb": {"0": s, ..., "124": s}, "noun": {"0": s, ..., "351": s},
                               "action": {"<verb>,<noun>": s, ... exactly 100}}}}      (action optional)
    EPIC-100 (C1-Action-Recognition ``create_submission.py``): a zip holding ``test.json``,
        {"version": "0.2", "challenge": "action_recognition", "sls_pt": 2, "sls_tl": 3, "sls_td": 4,
         "results": {"<narration_id>": {"verb": {"0": s, ..., "96": s}, "noun": {"0": s, ..., "299": s}}}}

Scores should be logits: without an ``action`` entry the server ranks actions by the softmax product of the
submitted verb and noun scores, and softmaxing probabilities changes that ranking.
The writers take the class counts from the score arrays (so SynthKitchens' smaller vocabularies work); the
validator checks against the official counts unless told otherwise. Zips are written atomically through
``egolib.runs`` with fixed timestamps, so the same scores give the same bytes.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egolib import runs
from egolib.metrics import ACTION_TOP_K, ActionKey, compute_action_scores


@dataclass(frozen=True)
class SubmissionFormat:
    """What one challenge expects: JSON files in the zip, schema version, class counts, id name."""

    name: str
    version: str
    files: tuple[str, ...]
    num_verbs: int
    num_nouns: int
    id_name: str
    sls: bool  # the supervision-level fields sls_pt, sls_tl, sls_td are required


FORMATS: dict[str, SubmissionFormat] = {
    "epic55": SubmissionFormat("epic55", "0.1", ("seen.json", "unseen.json"), 125, 352, "uid", sls=False),
    "epic100": SubmissionFormat("epic100", "0.2", ("test.json",), 97, 300, "narration_id", sls=True),
}
CHALLENGE = "action_recognition"
SLS_FIELDS = ("sls_pt", "sls_tl", "sls_td")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: byte-identical zips for identical scores
_MAX_ENTRY_PROBLEMS = 10  # per JSON file, then a count of the rest


class SubmissionError(ValueError):
    """A submission file that the challenge server would reject; ``problems`` lists every reason found."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path} is not a valid submission:\n  - " + "\n  - ".join(problems))


# ---------------------------------------------------------------------------------------------------------------
# Building the JSON objects
# ---------------------------------------------------------------------------------------------------------------


def _score_matrix(x: Any, name: str, ids: Sequence[str]) -> np.ndarray:
    """(N, C) float64 scores, one row per id, finite."""
    a = np.array(x, dtype=np.float64)
    if a.ndim != 2 or len(a) != len(ids):
        raise ValueError(f"{name} must have shape (N, num_classes) with N = {len(ids)} ids, got {a.shape}")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} has a non-finite score for id {ids[int(np.argmax(bad))]!r}; JSON cannot hold it")
    return a


def _ids(ids: Iterable[Any], integer: bool) -> list[str]:
    """Ids as the JSON keys the server expects (EPIC-55 uids as decimal strings), checked unique."""
    out = [str(int(i)) if integer else str(i) for i in ids]
    if len(set(out)) != len(out):
        dup = next(i for i in out if out.count(i) > 1)
        raise ValueError(f"id {dup!r} appears more than once; every segment needs exactly one row of scores")
    return out


def _class_scores(row: np.ndarray) -> dict[str, float]:
    return {str(c): float(s) for c, s in enumerate(row)}


def _top_actions(d: Mapping[ActionKey, float], k: int) -> dict[str, float]:
    """The k best entries of one action dict as ``{"v,n": score}`` (ties: later-inserted key first, as ranked)."""
    items = list(d.items())
    vals = np.array([float(v) for _, v in items], dtype=np.float64)
    order = np.argsort(vals, kind="stable")[::-1][:k]
    return {f"{int(items[i][0][0])},{int(items[i][0][1])}": float(vals[i]) for i in order}


def epic55_json(uids: Iterable[Any], verb_scores: Any, noun_scores: Any, *, include_actions: bool = False,
                action_scores: Sequence[Mapping[ActionKey, float]] | None = None, action_priors: Any | None = None,
                challenge: str = CHALLENGE) -> dict[str, Any]:
    """One EPIC-55 submission object (``seen.json`` or ``unseen.json``, version 0.1).

    Args:
        uids: N segment uids (ints or decimal strings) of one test split.
        verb_scores: (N, V) verb logits, every class (125 on EPIC-55).
        noun_scores: (N, Nn) noun logits, every class (352 on EPIC-55).
        include_actions: also write each segment's top-100 actions of the verb x noun softmax product (what
            the server computes when ``action`` is absent; with ``action_priors`` it differs).
        action_scores: optional N dicts ``{(verb, noun): score}`` with at least 100 entries (all V*Nn when that
            is fewer); their best 100 are written as ``action``. Takes precedence over ``include_actions``.
        action_priors: optional (V, Nn) weights of the product (only with ``include_actions``).
        challenge: ``"action_recognition"``.

    Returns:
        ``{"version": "0.1", "challenge": ..., "results": {uid: {"verb": {...}, "noun": {...}[, "action"]}}}``.
    """
    keys = _ids(uids, integer=True)
    verb = _score_matrix(verb_scores, "verb_scores", keys)
    noun = _score_matrix(noun_scores, "noun_scores", keys)
    results = {k: {"verb": _class_scores(v), "noun": _class_scores(n)}
               for k, v, n in zip(keys, verb, noun, strict=True)}
    num_actions = min(ACTION_TOP_K, verb.shape[1] * noun.shape[1])
    if action_scores is not None:
        if len(action_scores) != len(keys):
            raise ValueError(f"action_scores has {len(action_scores)} dicts but there are {len(keys)} uids")
        for k, d in zip(keys, action_scores, strict=True):
            if len(d) < num_actions:
                raise ValueError(f"action_scores for uid {k} has {len(d)} entries; the format needs {num_actions}")
            results[k]["action"] = _top_actions(d, num_actions)
    elif include_actions:
        verbs, nouns, scores = compute_action_scores(verb, noun, ACTION_TOP_K, action_priors)  # (N, 100) each
        for k, vs, ns, ss in zip(keys, verbs, nouns, scores, strict=True):
            results[k]["action"] = {f"{v},{n}": float(s) for v, n, s in zip(vs, ns, ss, strict=True)}
    return {"version": FORMATS["epic55"].version, "challenge": challenge, "results": results}


def epic100_json(narration_ids: Iterable[Any], verb_scores: Any, noun_scores: Any, *, sls_pt: int = 2,
                 sls_tl: int = 3, sls_td: int = 4, challenge: str = CHALLENGE) -> dict[str, Any]:
    """The EPIC-100 submission object (``test.json``, version 0.2), as C1 ``create_submission.py``.

    Args:
        narration_ids: N narration ids, e.g. ``"P01_101_0"``.
        verb_scores: (N, V) verb logits (97 on EPIC-100).
        noun_scores: (N, Nn) noun logits (300 on EPIC-100).
        sls_pt: supervision level of pretraining, 0-5 (C1's default 2: public image and video datasets).
        sls_tl: supervision level of training labels, 0-5 (default 3: full temporal supervision).
        sls_td: supervision level of training data, 0-5 (default 4: train + val).
        challenge: ``"action_recognition"``.

    Returns:
        ``{"version": "0.2", "challenge": ..., "sls_pt": .., "sls_tl": .., "sls_td": .., "results": {...}}``.
    """
    for name, level in zip(SLS_FIELDS, (sls_pt, sls_tl, sls_td), strict=True):
        if not (isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 5):
            raise ValueError(f"{name} must be an int from 0 to 5 (see github.com/epic-kitchens/SLS), got {level!r}")
    keys = _ids(narration_ids, integer=False)
    verb = _score_matrix(verb_scores, "verb_scores", keys)
    noun = _score_matrix(noun_scores, "noun_scores", keys)
    results = {k: {"verb": _class_scores(v), "noun": _class_scores(n)}
               for k, v, n in zip(keys, verb, noun, strict=True)}
    return {"version": FORMATS["epic100"].version, "challenge": challenge, "sls_pt": sls_pt, "sls_tl": sls_tl,
            "sls_td": sls_td, "results": results}


# ---------------------------------------------------------------------------------------------------------------
# Checking a submission object
# ---------------------------------------------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_scores(where: str, scores: Any, want: set[str], task: str) -> str | None:
    """The problem with one ``verb``/``noun`` score object (``want``: its class keys '0'..), or None."""
    if not isinstance(scores, dict):
        return f"{where}.{task} must be an object of class scores, got {type(scores).__name__}"
    num_classes = len(want)
    got = set(scores)
    if got != want:
        missing = sorted(want - got, key=int)
        extra = sorted(got - want)
        detail = []
        if missing:
            detail.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            detail.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        return (f"{where}.{task} has {len(got)} classes, expected {num_classes} (keys '0'..'{num_classes - 1}'): "
                + ", ".join(detail))
    bad = next((c for c, s in scores.items() if not _is_number(s)), None)
    if bad is not None:
        return f"{where}.{task}[{bad!r}] = {scores[bad]!r} is not a finite number"
    return None


def _check_actions(where: str, actions: Any, num_verbs: int, num_nouns: int) -> str | None:
    """The problem with one EPIC-55 ``action`` object (exactly 100 ``"v,n"`` keys), or None."""
    want = min(ACTION_TOP_K, num_verbs * num_nouns)
    if not isinstance(actions, dict):
        return f"{where}.action must be an object of action scores, got {type(actions).__name__}"
    if len(actions) != want:
        return f"{where}.action has {len(actions)} entries, expected exactly {want}"
    for key, score in actions.items():
        parts = key.split(",")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return f"{where}.action key {key!r} is not '<verb_class>,<noun_class>'"
        verb, noun = (int(p) for p in parts)
        if verb >= num_verbs or noun >= num_nouns:
            return f"{where}.action key {key!r} is outside {num_verbs} verbs x {num_nouns} nouns"
        if not _is_number(score):
            return f"{where}.action[{key!r}] = {score!r} is not a finite number"
    return None


def check_json(doc: Any, fmt: str | SubmissionFormat, *, name: str = "submission",
               expected_ids: Iterable[Any] | None = None, num_verbs: int | None = None,
               num_nouns: int | None = None) -> list[str]:
    """Everything wrong with one parsed submission object; an empty list when it is valid.

    Args:
        doc: the parsed JSON of ``seen.json``, ``unseen.json`` or ``test.json``.
        fmt: ``"epic55"`` or ``"epic100"`` (or a ``SubmissionFormat``).
        name: the file name used in the messages.
        expected_ids: the ids every results entry must cover (uids / narration ids); unchecked when None.
        num_verbs: verb classes expected per entry (default: the format's official count).
        num_nouns: noun classes expected per entry (default: the format's official count).

    Returns:
        Messages naming the file, the field and what is wrong.
    """
    fmt = _format(fmt)
    num_verbs = fmt.num_verbs if num_verbs is None else num_verbs
    num_nouns = fmt.num_nouns if num_nouns is None else num_nouns
    if not isinstance(doc, dict):
        return [f"{name}: the top level must be a JSON object, got {type(doc).__name__}"]
    problems = []
    required = ("version", "challenge", *(SLS_FIELDS if fmt.sls else ()), "results")
    for key in required:
        if key not in doc:
            problems.append(f"{name}: missing the top-level key {key!r}")
    for key in sorted(set(doc) - set(required)):
        problems.append(f"{name}: unexpected top-level key {key!r} (the {fmt.name} format has {list(required)})")
    if "version" in doc and doc["version"] != fmt.version:
        problems.append(f"{name}: version is {doc['version']!r}, the {fmt.name} format needs the string "
                        f"{fmt.version!r}")
    if "challenge" in doc and doc["challenge"] != CHALLENGE:
        problems.append(f"{name}: challenge is {doc['challenge']!r}, expected {CHALLENGE!r}")
    for key in SLS_FIELDS if fmt.sls else ():
        level = doc.get(key, 0)
        if not (isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 5):
            problems.append(f"{name}: {key} is {level!r}, expected an int from 0 to 5")
    results = doc.get("results")
    if results is None:
        return problems
    if not isinstance(results, dict):
        return problems + [f"{name}: results must be an object keyed by {fmt.id_name}, got {type(results).__name__}"]

    if expected_ids is not None:
        want = [str(i) for i in expected_ids]
        missing = [i for i in want if i not in results]
        extra = sorted(set(results) - set(want))
        if missing:
            problems.append(f"{name}: {len(missing)} of {len(want)} expected {fmt.id_name}s are missing from "
                            f"results, e.g. {missing[:5]}")
        if extra:
            problems.append(f"{name}: results has {len(extra)} {fmt.id_name}s that are not in this split, "
                            f"e.g. {extra[:5]}")
    entry_keys = {"verb", "noun", "action"} if fmt.name == "epic55" else {"verb", "noun"}
    verb_keys = {str(c) for c in range(num_verbs)}
    noun_keys = {str(c) for c in range(num_nouns)}
    entry_problems = []
    for key, entry in results.items():
        where = f"{name}: results[{key!r}]"
        if fmt.name == "epic55" and not key.isdigit():
            entry_problems.append(f"{where}: the key must be the segment uid as a decimal string")
        if not isinstance(entry, dict):
            entry_problems.append(f"{where} must be an object with 'verb' and 'noun', got {type(entry).__name__}")
            continue
        for task in ("verb", "noun"):
            if task not in entry:
                entry_problems.append(f"{where} has no {task!r} scores")
        for extra_key in sorted(set(entry) - entry_keys):
            entry_problems.append(f"{where} has an unexpected key {extra_key!r} (allowed: {sorted(entry_keys)})")
        found = [
            _check_scores(where, entry["verb"], verb_keys, "verb") if "verb" in entry else None,
            _check_scores(where, entry["noun"], noun_keys, "noun") if "noun" in entry else None,
            _check_actions(where, entry["action"], num_verbs, num_nouns) if "action" in entry_keys & set(entry)
            else None,
        ]
        entry_problems.extend(p for p in found if p)
    if len(entry_problems) > _MAX_ENTRY_PROBLEMS:
        more = len(entry_problems) - _MAX_ENTRY_PROBLEMS
        entry_problems = entry_problems[:_MAX_ENTRY_PROBLEMS] + [f"{name}: ... and {more} more problems in results"]
    return problems + entry_problems


def _format(fmt: str | SubmissionFormat) -> SubmissionFormat:
    if isinstance(fmt, SubmissionFormat):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown submission format {fmt!r}; valid: {sorted(FORMATS)}")
    return FORMATS[fmt]


# ---------------------------------------------------------------------------------------------------------------
# Writing and reading zips
# ---------------------------------------------------------------------------------------------------------------


def _write_zip(path: str | Path, members: dict[str, dict[str, Any]], fmt: SubmissionFormat) -> Path:
    """Check each object against its own class counts, then write a flat deflate zip atomically."""
    for member, doc in members.items():
        entry = next(iter(doc["results"].values()), {"verb": {}, "noun": {}})
        problems = check_json(doc, fmt, name=member, num_verbs=len(entry["verb"]), num_nouns=len(entry["noun"]))
        if problems:
            raise SubmissionError(member, problems)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, doc in members.items():
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            data = json.dumps(doc, allow_nan=False).encode()
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=5)
    runs.write_bytes(path, buf.getvalue())
    return Path(path)


def write_epic55_submission(path: str | Path, seen: dict[str, Any], unseen: dict[str, Any]) -> Path:
    """Write the EPIC-55 challenge zip: ``seen.json`` (S1) and ``unseen.json`` (S2), flat, atomically.

    Args:
        path: the ``.zip`` to write.
        seen: ``epic55_json(...)`` of the S1 test split.
        unseen: ``epic55_json(...)`` of the S2 test split.

    Returns:
        ``path``.

    Raises:
        SubmissionError: either half would be rejected, or the halves score other verb or noun class counts.
    """
    halves = {"seen.json": seen, "unseen.json": unseen}
    counts = {}
    for member, doc in halves.items():
        entry = next(iter(doc.get("results", {}).values()), None) if isinstance(doc, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("verb"), dict) and isinstance(entry.get("noun"), dict):
            counts[member] = (len(entry["verb"]), len(entry["noun"]))
    problems = []
    if len(set(counts.values())) > 1:
        problems.append("seen.json and unseen.json must score the same classes: seen.json has {} verbs x {} nouns, "
                        "unseen.json {} x {}".format(*counts["seen.json"], *counts["unseen.json"]))
    if problems:
        raise SubmissionError(path, problems)
    return _write_zip(path, halves, FORMATS["epic55"])


def write_epic100_submission(path: str | Path, test: dict[str, Any]) -> Path:
    """Write the EPIC-100 challenge zip holding ``test.json``, atomically.

    Args:
        path: the ``.zip`` to write.
        test: ``epic100_json(...)`` of the test split.

    Returns:
        ``path``.
    """
    return _write_zip(path, {"test.json": test}, FORMATS["epic100"])


def _load_zip(path: Path, fmt: str | None) -> tuple[SubmissionFormat | None, dict[str, Any], list[str]]:
    """Open the zip, pick the format, parse its JSON files: (format, {member: doc}, problems)."""
    if not path.is_file():
        return None, {}, [f"{path}: no such file"]
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return None, {}, [f"{path}: not a zip archive (make one with `zip -j {path.name} <json files>`)"]
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        problems = []
        nested = [n for n in names if "/" in n]
        if nested:
            problems.append(f"{path}: the zip must be flat (no folders), found {nested}; use `zip -j`")
        base = {n.rsplit("/", 1)[-1]: n for n in names}
        if fmt is None:
            fmt = "epic100" if "test.json" in base else "epic55" if {"seen.json", "unseen.json"} & set(base) else None
            if fmt is None:
                return None, {}, problems + [f"{path}: cannot tell the challenge: expected seen.json and unseen.json "
                                             f"(EPIC-55) or test.json (EPIC-100), found {names}"]
        spec = _format(fmt)
        for name in spec.files:
            if name not in base:
                problems.append(f"{path}: {name} is missing (the {spec.name} zip holds {list(spec.files)})")
        for name in sorted(set(base) - set(spec.files)):
            problems.append(f"{path}: unexpected file {name} (the {spec.name} zip holds {list(spec.files)})")
        docs = {}
        for name in spec.files:
            if name not in base:
                continue
            try:
                docs[name] = json.loads(zf.read(base[name]), parse_constant=_reject_constant)
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
                problems.append(f"{name}: not valid JSON ({e})")
    return spec, docs, problems


def _reject_constant(token: str) -> None:
    raise ValueError(f"{token} is not valid JSON; scores must be finite numbers")


def dataset_expectations(dataset: str | Path, fmt: str | SubmissionFormat = "epic55"
                         ) -> tuple[dict[str, list[str]], int, int] | None:
    """What a submission for ``dataset`` (a root holding ``annotations/``) must cover.

    Returns:
        ``({file: ids}, verb classes, noun classes)``: ``seen.json`` / ``unseen.json`` with the S1 / S2 uids
        (EPIC-55), or ``test.json`` with the test narration ids (EPIC-100); None when an EPIC-100 folder lacks
        its test or class files.
    """
    from egolib import epic

    annotations = Path(dataset) / "annotations"
    if _format(fmt).name == "epic55":
        ep = epic.load_epic55(annotations)
        ids = {"seen.json": [str(u) for u in ep.test_s1["uid"]], "unseen.json": [str(u) for u in ep.test_s2["uid"]]}
        return ids, len(ep.verb_classes), len(ep.noun_classes)
    ep = epic.load_epic100(annotations)
    if ep.test is None or ep.verb_classes is None or ep.noun_classes is None:
        return None
    return {"test.json": [str(u) for u in ep.test["narration_id"]]}, len(ep.verb_classes), len(ep.noun_classes)


def dataset_beside(path: str | Path) -> Path | None:
    """The data set of the run whose folder holds ``path`` (its ``config.json``), when it is on this machine."""
    from egolib.config import RunConfig

    config = Path(path).parent / "config.json"
    try:
        root = RunConfig.from_json(config).dataset_path
    except (OSError, ValueError):
        return None
    return root if (root / "annotations").is_dir() else None


def check_submission(path: str | Path, *, fmt: str | None = None,
                     expected_ids: Mapping[str, Iterable[Any]] | None = None, num_verbs: int | None = None,
                     num_nouns: int | None = None, dataset: str | Path | None = None) -> list[str]:
    """Everything wrong with a submission zip; an empty list when the server should accept it.

    Coverage is checked by default: without ``expected_ids``, the zip is checked against the test ids and class
    counts of ``dataset``, or of the run whose folder holds the zip (``dataset_beside``) when its data set is on
    this machine (``dataset_expectations``). Pass ``expected_ids={}`` to skip it.

    Args:
        path: the submission ``.zip``.
        fmt: ``"epic55"`` or ``"epic100"``; guessed from the file names inside when None.
        expected_ids: ids per JSON file, e.g. ``{"seen.json": s1_uids, "unseen.json": s2_uids}``; files not named
            are not checked for coverage.
        num_verbs: verb classes per entry (default: the data set's, else 125 for EPIC-55, 97 for EPIC-100).
        num_nouns: noun classes per entry (default: the data set's, else 352 for EPIC-55, 300 for EPIC-100).
        dataset: the EPIC-55 or EPIC-100 root (``annotations/``) the zip is for.

    Returns:
        Messages, each naming the file and field and saying what is wrong.
    """
    spec, docs, problems = _load_zip(Path(path), fmt)
    root = dataset if dataset is not None else dataset_beside(path)
    found = dataset_expectations(root, spec) if expected_ids is None and spec is not None and root else None
    if found is not None:
        expected_ids, verbs, nouns = found
        num_verbs = verbs if num_verbs is None else num_verbs
        num_nouns = nouns if num_nouns is None else num_nouns
    expected_ids = expected_ids or {}
    for name, doc in docs.items():
        problems += check_json(doc, spec, name=name, expected_ids=expected_ids.get(name), num_verbs=num_verbs,
                               num_nouns=num_nouns)
    return problems


def read_submission(path: str | Path, *, fmt: str | None = None,
                    expected_ids: Mapping[str, Iterable[Any]] | None = None, num_verbs: int | None = None,
                    num_nouns: int | None = None, dataset: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate a submission zip (arguments as ``check_submission``).

    Returns:
        ``{file name: parsed JSON}``.

    Raises:
        SubmissionError: listing every problem ``check_submission`` finds.
    """
    problems = check_submission(path, fmt=fmt, expected_ids=expected_ids, num_verbs=num_verbs, num_nouns=num_nouns,
                                dataset=dataset)
    if problems:
        raise SubmissionError(path, problems)
    return _load_zip(Path(path), fmt)[1]


def results_to_arrays(doc: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray,
                                                    list[dict[ActionKey, float]] | None]:
    """Turn a (validated) submission object back into score arrays, e.g. to score it with ``egolib.metrics``.

    Args:
        doc: a parsed ``seen.json`` / ``unseen.json`` / ``test.json``.

    Returns:
        ``(ids, verb (N, V), noun (N, Nn), actions)``: ids in file order; ``actions`` is the list of
        ``{(verb, noun): score}`` dicts when every entry has ``action``, else None.
    """
    results = doc["results"]
    ids = list(results)
    num_verbs = len(next(iter(results.values()))["verb"]) if ids else 0
    num_nouns = len(next(iter(results.values()))["noun"]) if ids else 0
    verb = np.array([[e["verb"][str(c)] for c in range(num_verbs)] for e in results.values()], dtype=np.float64)
    noun = np.array([[e["noun"][str(c)] for c in range(num_nouns)] for e in results.values()], dtype=np.float64)
    actions = None
    if ids and all("action" in e for e in results.values()):
        actions = [{tuple(int(p) for p in k.split(",")): float(s) for k, s in e["action"].items()}
                   for e in results.values()]
    return ids, verb.reshape(len(ids), num_verbs), noun.reshape(len(ids), num_nouns), actions
