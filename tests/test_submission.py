"""Submission zips: written files read back valid and unchanged; the validator names what is wrong with bad ones."""

import io
import json
import zipfile

import numpy as np
import pytest

from egolib import runs
from egolib.metrics import epic55_metrics
from egolib.submission import (
    SubmissionError,
    check_submission,
    epic55_json,
    epic100_json,
    read_submission,
    results_to_arrays,
    write_epic55_submission,
    write_epic100_submission,
)

SEEN_UIDS = [1924, 1925, 1930]
UNSEEN_UIDS = [15582, 15583]
EXPECTED = {"seen.json": [str(u) for u in SEEN_UIDS], "unseen.json": [str(u) for u in UNSEEN_UIDS]}


def logits(n: int, num_classes: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, num_classes)) * 3).astype(np.float32)  # as models save them


@pytest.fixture
def epic55_zip(tmp_path):
    seen = epic55_json(SEEN_UIDS, logits(3, 125, 0), logits(3, 352, 1), include_actions=True)
    unseen = epic55_json(np.array(UNSEEN_UIDS), logits(2, 125, 2), logits(2, 352, 3))  # np.int64 uids are fine
    return write_epic55_submission(tmp_path / "sub.zip", seen, unseen)


def rewrite(src, dst, edit=None, *, raw: dict | None = None, drop: str | None = None):
    """Copy a submission zip, applying edit(name, doc) to each parsed JSON, or replacing members by raw bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w") as zout:
        for name in zin.namelist():
            if name == drop:
                continue
            data = zin.read(name)
            if edit is not None:
                doc = json.loads(data)
                edit(name, doc)
                data = json.dumps(doc).encode()
            zout.writestr(name, (raw or {}).get(name, data))
    runs.write_bytes(dst, buf.getvalue())
    return dst


def test_epic55_round_trip(epic55_zip, tmp_path):
    assert check_submission(epic55_zip, expected_ids=EXPECTED) == []
    with zipfile.ZipFile(epic55_zip) as zf:
        assert zf.namelist() == ["seen.json", "unseen.json"]  # flat, both files
    docs = read_submission(epic55_zip, expected_ids=EXPECTED)
    assert {d["version"] for d in docs.values()} == {"0.1"}
    ids, verb, noun, actions = results_to_arrays(docs["seen.json"])
    assert ids == ["1924", "1925", "1930"]
    assert np.array_equal(verb, logits(3, 125, 0).astype(np.float64))  # float32 logits survive exactly
    assert np.array_equal(noun, logits(3, 352, 1).astype(np.float64))
    assert len(actions) == 3 and {len(a) for a in actions} == {100}
    assert results_to_arrays(docs["unseen.json"])[3] is None  # written without actions
    # The written top-100 actions rank exactly as the server's own verb x noun product would.
    top_verb, top_noun = int(verb[0].argmax()), int(noun[0].argmax())
    labels = dict(verb_labels=[top_verb, 5, 9], noun_labels=[top_noun, 2, 3], many_shot_verbs=[0, 5],
                  many_shot_nouns=[1, 3], many_shot_actions=[(top_verb, top_noun)])
    from_file = epic55_metrics(verb, noun, action_scores=actions, **labels)
    from_scores = epic55_metrics(verb, noun, **labels)
    assert from_file == from_scores and from_file["action"]["top1"] >= 1 / 3
    # Same scores, same bytes; and no temporary file is left beside the zip.
    again = write_epic55_submission(tmp_path / "again.zip", docs["seen.json"], docs["unseen.json"])
    assert again.read_bytes() == epic55_zip.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.zip", "sub.zip"]


def test_epic55_supplied_actions_keep_the_best_100(tmp_path):
    rng = np.random.default_rng(0)
    dicts = [{(v, n): float(rng.normal()) for v in range(12) for n in range(20)} for _ in range(2)]  # 240 each
    doc = epic55_json([1, 2], logits(2, 12, 0), logits(2, 20, 1), action_scores=dicts)
    best = sorted(dicts[0], key=dicts[0].get, reverse=True)[:100]
    assert list(doc["results"]["1"]["action"]) == [f"{v},{n}" for v, n in best]
    path = write_epic55_submission(tmp_path / "synth.zip", doc, doc)
    assert check_submission(path, num_verbs=12, num_nouns=20) == []
    problems = check_submission(path)  # against the official 125 / 352 classes
    assert any("results['1'].verb has 12 classes, expected 125" in p for p in problems)


def test_epic100_round_trip(tmp_path):
    ids = ["P01_101_0", "P01_101_1"]
    doc = epic100_json(ids, logits(2, 97, 0), logits(2, 300, 1), sls_pt=1, sls_tl=3, sls_td=3)
    path = write_epic100_submission(tmp_path / "test.zip", doc)
    docs = read_submission(path, expected_ids={"test.json": ids})
    assert list(docs) == ["test.json"]
    test = docs["test.json"]
    assert (test["version"], test["challenge"], test["sls_pt"], test["sls_tl"], test["sls_td"]) == (
        "0.2", "action_recognition", 1, 3, 3)
    assert set(test["results"]["P01_101_0"]) == {"verb", "noun"}  # no action entry: the server derives it
    assert np.array_equal(results_to_arrays(test)[2], logits(2, 300, 1).astype(np.float64))


def test_validator_reports_a_missing_uid(epic55_zip, tmp_path):
    bad = rewrite(epic55_zip, tmp_path / "bad.zip",
                  lambda name, doc: doc["results"].pop("1925") if name == "seen.json" else None)
    problems = check_submission(bad, expected_ids=EXPECTED)
    assert problems == ["seen.json: 1 of 3 expected uids are missing from results, e.g. ['1925']"]
    with pytest.raises(SubmissionError, match="1925") as err:
        read_submission(bad, expected_ids=EXPECTED)
    assert err.value.problems == problems


def test_validator_reports_a_wrong_class_count(epic55_zip, tmp_path):
    def drop_verb(name, doc):
        if name == "unseen.json":
            del doc["results"]["15583"]["verb"]["124"]

    problems = check_submission(rewrite(epic55_zip, tmp_path / "bad.zip", drop_verb))
    assert len(problems) == 1
    assert "unseen.json: results['15583'].verb has 124 classes, expected 125" in problems[0]
    assert "missing ['124']" in problems[0]


def test_validator_reports_a_wrong_version(epic55_zip, tmp_path):
    def version(name, doc):
        doc["version"] = "0.2"

    problems = check_submission(rewrite(epic55_zip, tmp_path / "bad.zip", version))
    assert problems == [f"{name}: version is '0.2', the epic55 format needs the string '0.1'"
                        for name in ("seen.json", "unseen.json")]


def test_validator_reports_bad_json(epic55_zip, tmp_path):
    with zipfile.ZipFile(epic55_zip) as zf:
        text = zf.read("seen.json")
    bad = rewrite(epic55_zip, tmp_path / "bad.zip", raw={"seen.json": text[:-10]})
    problems = check_submission(bad)
    assert len(problems) == 1 and problems[0].startswith("seen.json: not valid JSON (")
    nan = rewrite(epic55_zip, tmp_path / "nan.zip", raw={"seen.json": text.replace(b'"7": ', b'"7": NaN, "x": ', 1)})
    assert any("NaN is not valid JSON" in p for p in check_submission(nan))


def test_validator_reports_archive_problems(epic55_zip, tmp_path):
    runs.write_text(tmp_path / "plain.zip", "{}")
    assert "not a zip archive" in check_submission(tmp_path / "plain.zip")[0]
    assert "no such file" in check_submission(tmp_path / "nowhere.zip")[0]
    missing = check_submission(rewrite(epic55_zip, tmp_path / "one.zip", drop="unseen.json"))
    assert missing == [f"{tmp_path / 'one.zip'}: unseen.json is missing (the epic55 zip holds "
                       "['seen.json', 'unseen.json'])"]
    buf = io.BytesIO()
    with zipfile.ZipFile(epic55_zip) as zin, zipfile.ZipFile(buf, "w") as zout:
        for name in zin.namelist():
            zout.writestr(f"sub/{name}", zin.read(name))
    runs.write_bytes(tmp_path / "nested.zip", buf.getvalue())
    assert "must be flat" in check_submission(tmp_path / "nested.zip")[0]


def test_validator_reports_entry_and_field_problems(epic55_zip, tmp_path):
    def damage(name, doc):
        if name == "seen.json":
            entry = doc["results"]["1924"]
            entry["action"].pop(next(iter(entry["action"])))  # 99 actions
            doc["results"]["1930"]["noun"]["3"] = "high"
            doc["challenge"] = "action_anticipation"

    problems = check_submission(rewrite(epic55_zip, tmp_path / "bad.zip", damage))
    assert "seen.json: challenge is 'action_anticipation', expected 'action_recognition'" in problems
    assert "seen.json: results['1924'].action has 99 entries, expected exactly 100" in problems
    assert "seen.json: results['1930'].noun['3'] = 'high' is not a finite number" in problems

    doc = epic100_json(["P01_101_0"], logits(1, 97, 0), logits(1, 300, 1))
    path = write_epic100_submission(tmp_path / "t.zip", doc)

    def sls(name, doc):
        del doc["sls_pt"]
        doc["sls_td"] = 7

    problems = check_submission(rewrite(path, tmp_path / "t_bad.zip", sls))
    assert "test.json: missing the top-level key 'sls_pt'" in problems
    assert "test.json: sls_td is 7, expected an int from 0 to 5" in problems


def test_writers_refuse_what_the_server_would_reject(tmp_path):
    with pytest.raises(ValueError, match="non-finite score for id '1925'"):
        epic55_json([1924, 1925], np.array([[0.0, 1.0], [np.nan, 1.0]]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="id '1924' appears more than once"):
        epic55_json([1924, 1924], np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        epic55_json([1924, 1925], np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sls_pt must be an int from 0 to 5"):
        epic100_json(["a"], np.zeros((1, 2)), np.zeros((1, 3)), sls_pt=6)
    with pytest.raises(ValueError, match="has 5 entries; the format needs 6"):
        epic55_json([1], np.zeros((1, 2)), np.zeros((1, 3)), action_scores=[{(0, n): 1.0 for n in range(3)} |
                                                                            {(1, 0): 0.0, (1, 1): 0.0}])
    seen = epic55_json([1], np.zeros((1, 2)), np.zeros((1, 3)))
    seen["version"] = "0.3"
    with pytest.raises(SubmissionError, match="version is '0.3'"):
        write_epic55_submission(tmp_path / "x.zip", seen, seen)
    assert list(tmp_path.iterdir()) == []  # nothing written


# --------------------------------------------------------------------------------------------------
# Coverage checked by default when the data set is at hand; halves must agree


def test_the_writer_refuses_halves_with_other_class_counts(tmp_path):
    seen = epic55_json([1], np.zeros((1, 12)), np.zeros((1, 20)))
    unseen = epic55_json([2], np.zeros((1, 12)), np.zeros((1, 21)))
    with pytest.raises(SubmissionError) as err:
        write_epic55_submission(tmp_path / "x.zip", seen, unseen)
    assert err.value.problems == ["seen.json and unseen.json must score the same classes: seen.json has 12 verbs x "
                                  "20 nouns, unseen.json 12 x 21"]
    assert list(tmp_path.iterdir()) == []


def _tiny_dataset(root):
    """The annotation files the validator reads: test uids and class lists (EPIC-55 layout)."""
    import pandas as pd

    ann = root / "annotations"
    ann.mkdir(parents=True)
    cols = ["uid", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "start_frame", "stop_frame"]
    for split, uids in (("s1", SEEN_UIDS), ("s2", UNSEEN_UIDS)):
        rows = [[u, "P01", "P01_01", "00:00:00.00", "00:00:01.00", 1, 60] for u in uids]
        pd.DataFrame(rows, columns=cols).to_csv(ann / f"EPIC_test_{split}_timestamps.csv", index=False)
    pd.DataFrame([[0, "P01", "P01_01", "open tap", "00:00:00.00", "00:00:01.00", 1, 60, "open", 0, "tap", 0,
                   "['tap']", "[0]"]],
                 columns=["uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp",
                          "start_frame", "stop_frame", "verb", "verb_class", "noun", "noun_class", "all_nouns",
                          "all_noun_classes"]).to_csv(ann / "EPIC_train_action_labels.csv", index=False)
    for kind, n in (("verb", 125), ("noun", 352)):
        pd.DataFrame({f"{kind}_id": range(n), "class_key": [f"{kind}{i}" for i in range(n)],
                      f"{kind}s": [f"['{kind}{i}']" for i in range(n)]}
                     ).to_csv(ann / f"EPIC_{kind}_classes.csv", index=False)


def test_the_validator_checks_coverage_against_the_data_set_by_default(epic55_zip, tmp_path):
    from egolib.config import RunConfig

    bad = rewrite(epic55_zip, tmp_path / "run" / "submission.zip",
                  lambda name, doc: doc["results"].pop("1925") if name == "seen.json" else None)
    missing = "seen.json: 1 of 3 expected uids are missing from results, e.g. ['1925']"
    data = tmp_path / "EPIC"
    _tiny_dataset(data)
    assert check_submission(bad, dataset=data) == [missing]
    cfg = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "paper", "data_root": str(data)})
    runs.write_json(tmp_path / "run" / "config.json", runs.manifest(cfg.to_dict()))
    assert check_submission(bad) == [missing]  # the run folder's data set, found through its config.json
    assert check_submission(bad, expected_ids={}) == []  # asked not to check coverage
    assert check_submission(epic55_zip) == []
