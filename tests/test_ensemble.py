"""egolib.scores and egolib.ensemble on hand-made score files: averaging (both modes) and nesting with known
results, the consistency checks that name the member, Table 2 equal to egolib.metrics, the CLI."""

import itertools
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from egolib import ensemble, metrics, paper, scores
from egolib.epic import ManyShot

RUN_A = {"method": "gsm", "backbone": "bninc", "pretrain": "epic"}
RUN_B = {"method": "egoaco", "backbone": "res34", "pretrain": "imagenet"}
RUN_C = {"method": "egoaco", "backbone": "res101", "pretrain": "imagenet"}
NAME = {k: f"{r['method']}-{r['backbone']}-{r['pretrain']}-smoke-s0" for k, r in
        (("a", RUN_A), ("b", RUN_B), ("c", RUN_C))}
PAIRS = [(0, 0), (1, 1), (2, 0)]  # the action vocabulary: 3 (verb, noun) pairs over 3 verbs x 2 nouns
MANY_SHOT = ManyShot(verbs=[0, 1], nouns=[0, 1], actions=[(0, 0), (1, 1)])


def make(verb, noun=None, action=None, *, uid=("1", "2"), pairs=PAIRS, labels=((0, 0), (1, 1))):
    """Scores of len(uid) segments; noun and action logits default to zeros (no preference)."""
    verb = np.array(verb, dtype=np.float32)
    n = len(verb)
    noun = np.zeros((n, 2), np.float32) if noun is None else np.array(noun, np.float32)
    action = np.zeros((n, len(pairs)), np.float32) if action is None else np.array(action, np.float32)
    v, w = zip(*labels, strict=True) if labels is not None else (None, None)
    return scores.make(list(uid), {"verb": verb, "noun": noun, "action": action}, pairs, v, w, MANY_SHOT,
                       "SynthKitchens smoke")


def write_run(root: Path, name: str, s1: scores.Scores, s2: scores.Scores | None = None) -> Path:
    for split, s in (("s1", s1), ("s2", s2 if s2 is not None else s1)):
        scores.write(root / name / f"scores_{split}.npz", s)
    return root / name


def write_config(path: Path, ensembles: dict) -> Path:
    path.write_text(yaml.safe_dump({"ensembles": ensembles}))
    return path


def softmax(x):
    e = np.exp(np.asarray(x, np.float64) - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------------
# Score files


def test_score_file_round_trip_keeps_every_field(tmp_path):
    s = make([[1, 2, 3], [3, 2, 1]], action=[[0.5, 0, 1], [1, 0, 0]])
    back = scores.read(scores.write(tmp_path / "scores_s1.npz", s))
    for field in ("uid", "verb", "noun", "action", "action_pairs", "verb_label", "noun_label", "many_shot_verbs",
                  "many_shot_nouns", "many_shot_actions"):
        assert np.array_equal(getattr(back, field), getattr(s, field)), field
    assert (back.dataset, back.average, back.members) == ("SynthKitchens smoke", "none", ())
    assert back.action_pairs.tolist() == [list(p) for p in PAIRS] and back.labelled


def test_hidden_labels_are_minus_one_and_refuse_metrics():
    s = make([[1, 2, 3], [3, 2, 1]], labels=None)
    assert s.verb_label.tolist() == [-1, -1] and not s.labelled
    with pytest.raises(ValueError, match="no test labels"):
        s.metrics()


def test_old_score_file_names_the_rescore_command(tmp_path):
    run = tmp_path / "runs" / NAME["a"]
    run.mkdir(parents=True)
    np.savez(run / "scores_s1.npz", uid=np.array(["1"]), verb=np.zeros((1, 3)), noun=np.zeros((1, 2)),
             action=np.zeros((1, 3)))
    with pytest.raises(scores.ScoreFileError) as err:
        scores.read(run / "scores_s1.npz")
    assert "written before score files described themselves" in str(err.value)
    assert f"python -m egolib.ensemble rescore {run}" in str(err.value)


def test_inconsistent_score_file_is_refused():
    with pytest.raises(scores.ScoreFileError, match="action_pairs must have shape"):
        make([[1, 2, 3]], uid=("1",), labels=((0, 0),), pairs=[(0, 0)], action=[[0, 0, 0]])
    with pytest.raises(scores.ScoreFileError, match="duplicate"):
        make([[1, 2, 3], [1, 2, 3]], uid=("1", "1"))


# --------------------------------------------------------------------------------------------------
# Averaging: known results in both modes


# Segment 1 (label verb 0): run A is sure of verb 0; run B rules verb 0 out by a huge margin and leans to verb 1.
# Softmax averaging saturates (B's "no" costs at most its probability), logit averaging does not: the two
# modes predict different verbs. Segment 2 (label verb 1) agrees in both modes.
A_VERB = [[10.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
B_VERB = [[-100.0, 1.0, 0.0], [0.0, 1.0, 0.0]]


def test_softmax_and_logit_means_have_the_known_values_and_predictions():
    a, b = make(A_VERB), make(B_VERB)
    soft = ensemble.combine({"a": a, "b": b}, "softmax")
    logit = ensemble.combine({"a": a, "b": b}, "logits")
    np.testing.assert_allclose(soft.verb, (softmax(A_VERB) + softmax(B_VERB)) / 2, rtol=1e-6)
    np.testing.assert_allclose(logit.verb, (np.array(A_VERB) + np.array(B_VERB)) / 2, rtol=1e-6)
    np.testing.assert_allclose(soft.noun, np.full((2, 2), 0.5))  # zero logits -> uniform probabilities
    assert soft.average == "softmax" and logit.average == "logits" and soft.members == ("a", "b")
    assert soft.verb.argmax(1).tolist() == [0, 1] and logit.verb.argmax(1).tolist() == [1, 1]
    assert ensemble.top1(soft)["verb"] == 1.0 and ensemble.top1(logit)["verb"] == 0.5
    assert soft.metrics()["verb"]["top1"] == 1.0 and logit.metrics()["verb"]["top1"] == 0.5


def test_actions_are_ranked_from_the_averaged_action_scores():
    a = make(A_VERB, action=[[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    b = make(B_VERB, action=[[4.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    mean = ensemble.combine({"a": a, "b": b}, "logits")
    np.testing.assert_allclose(mean.action, [[2.0, 1.5, 0.0], [0.0, 2.5, 0.0]])
    ranks = mean.action_ranks()
    assert list(ranks[0]) == [(0, 0), (1, 1), (2, 0)] and list(ranks[1])[0] == (1, 1)
    assert mean.metrics()["action"]["top1"] == 1.0  # labels (0, 0) and (1, 1)


def test_rows_are_aligned_by_uid():
    a = make(A_VERB)
    b_swapped = make(B_VERB[::-1], uid=("2", "1"), labels=((1, 1), (0, 0)))
    mean = ensemble.combine({"a": a, "b": b_swapped}, "logits")
    np.testing.assert_allclose(mean.verb, (np.array(A_VERB) + np.array(B_VERB)) / 2, rtol=1e-6)


def test_nested_ensemble_weighs_its_inner_runs_less_than_flat(tmp_path):
    runs = tmp_path / "runs"
    c_verb = [[0.0, 0.0, 3.0], [1.0, 0.0, 0.0]]
    for key, verb in (("a", A_VERB), ("b", B_VERB), ("c", c_verb)):
        write_run(runs, NAME[key], make(verb))
    cfg = ensemble.load_config(write_config(tmp_path / "e.yaml", {
        "inner": [RUN_A, RUN_B], "outer": [RUN_C, {"ensemble": "inner"}]}))
    assert {m.label(): w for m, w in cfg.leaf_weights("outer").items()} == {
        "egoaco-res101-imagenet": 0.5, "gsm-bninc-epic": 0.25, "egoaco-res34-imagenet": 0.25}
    run_scores = ensemble.load_runs(cfg, runs, "smoke")
    for average, space in (("softmax", softmax), ("logits", lambda x: np.asarray(x, np.float64))):
        results = ensemble.evaluate_ensembles(cfg, run_scores, "smoke", average=average)
        expected = 0.5 * space(c_verb) + 0.25 * space(A_VERB) + 0.25 * space(B_VERB)
        np.testing.assert_allclose(results["outer"]["s1"].verb, expected, rtol=1e-6)
        assert results["outer"]["s1"].members == (NAME["c"], "inner")
        flat = ensemble.flat(run_scores, [NAME["a"], NAME["b"], NAME["c"]], average)
        np.testing.assert_allclose(flat["s1"].verb, (space(c_verb) + space(A_VERB) + space(B_VERB)) / 3, rtol=1e-6)


def test_an_ensemble_mean_joins_only_a_mean_in_the_same_space():
    inner = ensemble.combine({"a": make(A_VERB), "b": make(B_VERB)}, "logits")
    with pytest.raises(ValueError, match="inner holds a mean of logits scores; it cannot join a mean of softmax"):
        ensemble.combine({"inner": inner, "c": make(A_VERB)}, "softmax")


# --------------------------------------------------------------------------------------------------
# Consistency checks name the member


def test_missing_uids_name_the_members_and_the_uids():
    a = make(A_VERB)
    b = make([[0, 1, 0], [1, 0, 0]], uid=("1", "3"))
    with pytest.raises(ValueError, match=r"members gsm-a and ego-b score different segments: 1 uid\(s\) only in "
                                         r"gsm-a \(first: \['2'\]\), 1 only in ego-b \(first: \['3'\]\)"):
        ensemble.combine({"gsm-a": a, "ego-b": b})


def test_another_class_count_names_the_member():
    b = make([[0, 1, 0, 0], [1, 0, 0, 0]])  # 4 verbs instead of 3
    with pytest.raises(ValueError, match="members a and other have different verb class counts: 3 and 4"):
        ensemble.combine({"a": make(A_VERB), "other": b})


def test_another_action_vocabulary_names_the_member():
    b = make(B_VERB, pairs=[(0, 0), (1, 0), (2, 0)])
    with pytest.raises(ValueError, match=r"members a and vocab have different action vocabularies: action 1 is "
                                         r"\(1, 1\) in a and \(1, 0\) in vocab"):
        ensemble.combine({"a": make(A_VERB), "vocab": b})


def test_other_labels_name_the_member():
    b = make(B_VERB, labels=((0, 0), (2, 1)))
    with pytest.raises(ValueError, match=r"members a and b disagree on verb_label of uid\(s\) \['2'\]"):
        ensemble.combine({"a": make(A_VERB), "b": b})


# --------------------------------------------------------------------------------------------------
# Config


def test_cycles_are_refused_and_named(tmp_path):
    path = write_config(tmp_path / "e.yaml", {"x": [RUN_A, {"ensemble": "y"}], "y": [RUN_B, {"ensemble": "z"}],
                                              "z": [{"ensemble": "x"}]})
    with pytest.raises(ValueError, match="ensembles form a cycle x -> y -> z -> x"):
        ensemble.load_config(path)
    with pytest.raises(ValueError, match="ensembles form a cycle s -> s"):
        ensemble.load_config(write_config(tmp_path / "s.yaml", {"s": [RUN_A, {"ensemble": "s"}]}))


def test_bad_members_are_refused(tmp_path):
    with pytest.raises(ValueError, match="member ensemble 'nope', which is not defined"):
        ensemble.load_config(write_config(tmp_path / "a.yaml", {"x": [RUN_A, {"ensemble": "nope"}]}))
    with pytest.raises(ValueError, match="unknown backbone 'res999'; choose one of"):
        ensemble.load_config(write_config(tmp_path / "b.yaml", {"x": [{**RUN_A, "backbone": "res999"}]}))
    with pytest.raises(ValueError, match="lists gsm-bninc-epic twice"):
        ensemble.load_config(write_config(tmp_path / "c.yaml", {"x": [RUN_A, RUN_A]}))


def test_table1_is_the_reports_membership():
    # the report's Table 1, rows in its order: (method, backbone, pretrain, Ens. 1, Ens. 2, Ens. 3)
    report = [
        ("egoaco", "incv3", "imagenet", 1, 1, 0), ("egoaco", "res34", "imagenet", 1, 1, 0),
        ("egoaco", "res101", "imagenet", 1, 1, 1), ("egoaco", "res152", "imagenet", 0, 0, 1),
        ("egoaco", "r2p1d34", "ig65m_kinetics", 0, 1, 1), ("gsm", "bninc", "epic", 1, 1, 1),
        ("gsm", "incv3", "imagenet", 1, 1, 0), ("gsm", "incv3", "epic", 0, 1, 1),
        ("gsm_egoaco", "bninc", "epic", 1, 1, 0), ("gsm_egoaco", "incv3", "epic", 0, 1, 1),
        ("ensemble1", "-", "-", 0, 0, 1), ("ensemble2", "-", "-", 0, 0, 1),
    ]
    table = ensemble.table1(ensemble.load_config())
    assert [(*idx, *map(int, row)) for idx, row in zip(table.index, table.to_numpy(), strict=True)] == report


def test_report_table2_transcribes_the_headline():
    t = ensemble.report_table2().set_index(["name", "setting", "task"])
    assert t.loc[("ensemble3", "S1", "action"), "top1"] == 40.00
    assert t.loc[("ensemble3", "S2", "action"), "top1"] == 25.71
    assert t.loc[("ensemble1", "S2", "noun"), "recall"] == 28.46 and len(t) == 18
    for (setting, name), values in paper.TABLE2.items():  # one source: egolib.paper
        for task in scores.TASKS:
            row = t.loc[(name, setting, task)]
            assert [row[m] for m in ("top1", "top5", "precision", "recall")] == [
                values[paper.TABLE2_COLUMNS.index(f"{m}_{task}")] for m in ("top1", "top5", "precision", "recall")]


# --------------------------------------------------------------------------------------------------
# Runs on disk, Table 2 and the CLI


def random_runs(root: Path, names: list[str], seed: int = 0, n: int = 40, verbs: int = 5, nouns: int = 4) -> None:
    rng = np.random.default_rng(seed)
    pairs = [(v, w) for v in range(verbs) for w in range(nouns)][:12]
    uid = [str(100 + i) for i in range(n)]
    labels = [pairs[i] for i in rng.integers(len(pairs), size=n)]
    ms = ManyShot(verbs=[0, 1, 2], nouns=[0, 1], actions=pairs[:4])
    for name in names:
        split_scores = []
        for _ in range(2):
            logits = {"verb": rng.normal(size=(n, verbs)) * 2, "noun": rng.normal(size=(n, nouns)) * 2,
                      "action": rng.normal(size=(n, len(pairs))) * 2}
            v, w = zip(*labels, strict=True)
            split_scores.append(scores.make(uid, logits, pairs, v, w, ms, "SynthKitchens smoke"))
        write_run(root, name, *split_scores)


def test_missing_run_names_the_run_and_the_command(tmp_path):
    runs = tmp_path / "runs"
    random_runs(runs, [NAME["a"]])
    cfg = ensemble.load_config(write_config(tmp_path / "e.yaml", {"x": [RUN_A, RUN_B]}))
    with pytest.raises(ensemble.MissingRunError) as err:
        ensemble.load_runs(cfg, runs, "smoke")
    msg = str(err.value)
    assert f"{runs / NAME['b']}: papermill book/03_train.ipynb {runs / NAME['b'] / 'train.ipynb'} -p method egoaco " \
           f"-p backbone res34 -p pretrain imagenet -p preset smoke -p seed 0 -p run_dir {runs / NAME['b']}" in msg
    assert NAME["a"] not in msg


@pytest.mark.parametrize("average", ["softmax", "logits"])
def test_cli_writes_score_files_and_a_table2_equal_to_egolib_metrics(tmp_path, average, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    random_runs(runs, [NAME["a"], NAME["b"], NAME["c"]])
    config = write_config(tmp_path / "e.yaml", {"pair": [RUN_A, RUN_B], "all": [RUN_C, {"ensemble": "pair"}]})
    ensemble.main(["--runs", str(runs), "--preset", "smoke", "--config", str(config), "--average", average,
                   "--out", str(out)])
    table = pd.read_csv(out / "table2.csv")
    assert list(table.columns) == ensemble.TABLE2_COLUMNS
    assert set(table["name"]) == {"pair", "all", NAME["a"], NAME["b"], NAME["c"]} and len(table) == 5 * 2 * 3
    assert set(table["setting"]) == {"S1", "S2"} and set(table["task"]) == {"verb", "noun", "action"}
    for name, split in itertools.product(["pair", "all"], ["s1", "s2"]):
        s = scores.read(out / f"{name}_{split}.npz")
        assert s.average == average
        if average == "softmax":
            np.testing.assert_allclose(s.verb.sum(1), 1.0, rtol=1e-5)
        expected = metrics.epic55_metrics(s.verb, s.noun, s.verb_label, s.noun_label, [0, 1, 2], [0, 1],
                                          [tuple(p) for p in s.many_shot_actions.tolist()],
                                          action_scores=scores.action_dicts(s.action, s.action_pairs))
        rows = table[(table["name"] == name) & (table["setting"] == split.upper())].set_index("task")
        for task in ("verb", "noun", "action"):
            for m in ("top1", "top5", "precision", "recall"):
                assert rows.loc[task, m] == pytest.approx(100 * expected[task][m], abs=1e-4), (name, task, m)
        assert ensemble.top1(s)["action"] == pytest.approx(expected["action"]["top1"])
    assert not list(out.glob("*.zip"))  # labelled test set: no challenge zip
    assert "top1" in capsys.readouterr().out


def test_cli_on_a_hidden_test_set_writes_challenge_zips(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    for name in (NAME["a"], NAME["b"]):
        write_run(runs, name, make(A_VERB if name == NAME["a"] else B_VERB, labels=None))
    config = write_config(tmp_path / "e.yaml", {"pair": [RUN_A, RUN_B]})
    table = ensemble.run(runs, "smoke", out, config=config)
    assert table.empty and list(pd.read_csv(out / "table2.csv").columns) == ensemble.TABLE2_COLUMNS
    seen, _ = _read_zip(out / "pair_submission.zip")
    verb = np.array([[seen["results"][u]["verb"][str(c)] for c in range(3)] for u in ("1", "2")])
    mean = (softmax(A_VERB) + softmax(B_VERB)) / 2
    np.testing.assert_allclose(softmax(verb), mean, rtol=1e-5)  # the server's softmax gives the mean back


def _read_zip(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("seen.json")), json.loads(z.read("unseen.json"))


def test_quick_top1_equals_the_metrics_top1():
    rng = np.random.default_rng(3)
    n = 200
    pairs = [(v, w) for v in range(6) for w in range(5)]
    labels = [pairs[i] for i in rng.integers(len(pairs), size=n)]
    v, w = zip(*labels, strict=True)
    s = scores.make([str(i) for i in range(n)], {"verb": np.round(rng.normal(size=(n, 6)), 1),
                                                 "noun": np.round(rng.normal(size=(n, 5)), 1),
                                                 "action": np.round(rng.normal(size=(n, 30)), 1)},
                    pairs, v, w, ManyShot([0], [0], [(0, 0)]), "x")  # rounded: ties happen
    full = s.metrics()
    assert ensemble.top1(s) == pytest.approx({t: full[t]["top1"] for t in ("verb", "noun", "action")})


def test_ablations_on_random_runs(tmp_path):
    runs = tmp_path / "runs"
    random_runs(runs, [NAME["a"], NAME["b"], NAME["c"]])
    cfg = ensemble.load_config(write_config(tmp_path / "e.yaml", {"pair": [RUN_A, RUN_B],
                                                                   "all": [RUN_C, {"ensemble": "pair"}]}))
    run_scores = ensemble.load_runs(cfg, runs, "smoke")
    loo = ensemble.leave_one_out(cfg, "all", run_scores, "smoke")
    assert set(loo["dropped"]) == {"none", NAME["c"], "pair"}
    without_pair = loo[(loo["dropped"] == "pair") & (loo["setting"] == "S1") & (loo["task"] == "verb")]["top1"]
    assert without_pair.item() == pytest.approx(100 * ensemble.top1(run_scores[NAME["c"]]["s1"])["verb"])
    greedy = ensemble.greedy_selection(run_scores)
    assert sorted(greedy["added"]) == sorted(run_scores) and greedy["step"].tolist() == [1, 2, 3]
    best_single = max(100 * ensemble.top1(v["s1"])["action"] for v in run_scores.values())
    assert greedy.loc[0, "S1 action"] == pytest.approx(best_single)
    curve = ensemble.size_curve(run_scores)
    assert curve.groupby("size")["subset"].nunique().tolist() == [3, 3, 1]
    dis, ora = ensemble.pairwise(run_scores)
    assert np.allclose(np.diag(dis), 0) and np.allclose(dis, dis.T) and (ora.to_numpy() >= np.diag(ora)[:, None]).all()
    assert math.isclose(np.diag(ora)[0], 100 * ensemble.top1(run_scores[list(run_scores)[0]]["s1"])["action"])


# --------------------------------------------------------------------------------------------------
# EPIC-100: validation and test score files, the EPIC-100 metrics table, the EPIC-100 challenge zip


def _epic100_annotations():
    """Hand-made EPIC-100 annotations of two validation segments: P01 seen, P02 unseen; verb 2 and noun 1 tail."""
    from egolib.epic import Epic100

    validation = pd.DataFrame({"narration_id": ["P01_01_0", "P02_01_0"], "participant_id": ["P01", "P02"],
                               "verb_class": [0, 2], "noun_class": [0, 1]})
    return Epic100(train=None, validation=validation, test=None, verb_classes=None, noun_classes=None,
                   tail_verbs=[2], tail_nouns=[1], unseen_validation=["P02"], unseen_test=[])


def _epic100_scores(verb, noun, labels=((0, 0), (2, 1))):
    """Validation (labels) or test (``labels=None``) scores as an EPIC-100 run writes them; the action head's
    logits favour the wrong pair, which EPIC-100's evaluation never reads."""
    uid = ["P01_01_0", "P02_01_0"] if labels is not None else ["P03_101_0", "P03_101_1"]
    v, w = zip(*labels, strict=True) if labels is not None else (None, None)
    action = np.array([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]], np.float32)
    return scores.make(uid, {"verb": np.array(verb, np.float32), "noun": np.array(noun, np.float32),
                             "action": action}, PAIRS, v, w, ManyShot([], [], []),
                       "SynthKitchens smoke seed 0, EPIC-100 layout")


def test_epic100_table_is_epic100_metrics_of_the_averaged_scores_and_ablations_agree(tmp_path):
    ann = _epic100_annotations()
    a = _epic100_scores([[3, 0, 0], [0, 0, 1]], [[2, 0], [0, 1]])  # right on both segments
    b = _epic100_scores([[0, 3, 0], [0, 2, 0]], [[0, 1], [0, 2]])  # wrong verbs
    mean = ensemble.combine({"a": a, "b": b}, "softmax")
    table = ensemble.epic100_table({"mean": {"validation": mean}, "a": {"validation": a}}, ann)
    verb, noun = np.log(mean.verb.astype(np.float64)), np.log(mean.noun.astype(np.float64))
    want = metrics.epic100_metrics(verb, noun, [0, 2], [0, 1], ["P01", "P02"], [2], [1], ["P02"])
    assert table.loc["mean", "overall action top1"] == pytest.approx(100 * want["overall"]["action"]["top1"])
    assert table.loc["mean", "unseen verb top1"] == pytest.approx(100 * want["unseen"]["verb"])
    assert table.loc["a", "overall action top1"] == 100.0 and table.loc["a", "tail action top1"] == 100.0
    # the ablations' quick top-1 ranks EPIC-100 actions by the verb x noun product too, not by the action head
    assert 100 * ensemble.top1(a)["action"] == table.loc["a", "overall action top1"]
    assert 100 * ensemble.top1(mean)["action"] == pytest.approx(table.loc["mean", "overall action top1"])
    with pytest.raises(ValueError, match="another dataset"):
        ensemble.epic100_metrics(_epic100_scores([[1, 0, 0]] * 2, [[1, 0]] * 2).replace(
            uid=np.array(["P09_01_0", "P09_01_1"])), ann)


def test_epic100_run_scores_validation_and_writes_each_ensembles_epic100_zip(tmp_path, monkeypatch):
    cfg = write_config(tmp_path / "ens.yaml", {"e1": [RUN_A, RUN_B]})
    for run, shift in ((RUN_A, 0.0), (RUN_B, 1.0)):
        folder = tmp_path / "runs" / ensemble.Member(**run).run_name("smoke", 0, "epic100")
        assert folder.name.endswith("-smoke-epic100-s0")
        scores.write(folder / "scores_validation.npz", _epic100_scores([[3, shift, 0], [0, 0, 1]], [[2, 0], [0, 1]]))
        scores.write(folder / "scores_test.npz", _epic100_scores([[1, shift, 0], [0, 1, 0]], [[1, 0], [0, 1]],
                                                                labels=None))
    monkeypatch.setattr(ensemble, "annotations_of", lambda *a: _epic100_annotations())
    table = ensemble.run(tmp_path / "runs", "smoke", tmp_path / "out", config=cfg, dataset="epic100")
    assert list(table.index) == ["e1", *[ensemble.Member(**r).run_name("smoke", 0, "epic100") for r in (RUN_A, RUN_B)]]
    assert (tmp_path / "out" / "epic100_metrics.csv").exists() and not (tmp_path / "out" / "table2.csv").exists()
    assert {p.name for p in (tmp_path / "out").glob("e1_*")} == {"e1_validation.npz", "e1_test.npz",
                                                                 "e1_submission.zip"}
    with zipfile.ZipFile(tmp_path / "out" / "e1_submission.zip") as z:
        doc = json.loads(z.read("test.json"))
    assert doc["version"] == "0.2" and set(doc["results"]) == {"P03_101_0", "P03_101_1"}
    test = scores.read(tmp_path / "out" / "e1_test.npz")
    assert doc["results"]["P03_101_0"]["verb"]["0"] == pytest.approx(float(np.log(test.verb[0, 0])), rel=1e-6)
    with pytest.raises(ensemble.MissingRunError, match="-p dataset epic100"):
        ensemble.load_runs(ensemble.load_config(cfg), tmp_path / "runs", "smoke", seed=1, dataset="epic100")


def test_epic100_runs_on_a_data_root_are_read_from_their_own_folders_with_its_annotations(tmp_path, monkeypatch):
    root = tmp_path / "EPIC-KITCHENS"  # a real copy's root (never read here: the annotations are patched)
    cfg = write_config(tmp_path / "ens.yaml", {"e1": [RUN_A, RUN_B]})
    for run in (RUN_A, RUN_B):
        folder = tmp_path / "runs" / ensemble.Member(**run).run_name("paper", 0, "epic100", str(root))
        assert "-paper-epic100-s0-data=" in folder.name
        scores.write(folder / "scores_validation.npz", _epic100_scores([[3, 0, 0], [0, 0, 1]], [[2, 0], [0, 1]]))
        scores.write(folder / "scores_test.npz", _epic100_scores([[1, 0, 0], [0, 1, 0]], [[1, 0], [0, 1]],
                                                                labels=None))
    with pytest.raises(ensemble.MissingRunError, match="-p data_root <EPIC-KITCHENS-100 root>"):
        ensemble.run(tmp_path / "runs", "paper", tmp_path / "out", config=cfg, dataset="epic100")  # no data_root
    asked = []
    monkeypatch.setattr(ensemble, "annotations_of", lambda *a: asked.append(a) or _epic100_annotations())
    table = ensemble.run(tmp_path / "runs", "paper", tmp_path / "out", config=cfg, dataset="epic100",
                         data_root=str(root))
    assert asked == [("paper", 0, "epic100", str(root))]
    assert list(table.index)[1:] == [ensemble.Member(**r).run_name("paper", 0, "epic100", str(root))
                                     for r in (RUN_A, RUN_B)]
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="data_root must be the EPIC-KITCHENS-100 root"):
        ensemble.annotations_of("paper", 0, "epic100", str(root))


# --------------------------------------------------------------------------------------------------
# per-segment outcomes and the ablation tables, by hand


def test_correct_table_has_one_right_or_wrong_column_per_name_in_the_first_name_s_order():
    a = make([[2, 0, 0], [0, 0, 2]], uid=("1", "2"))  # right on segment 1 (verb 0), wrong on 2 (verb 2, label 1)
    b = make([[0, 2, 0], [0, 2, 0]], uid=("2", "1"), labels=((1, 1), (0, 0)))  # rows in the other order
    table = ensemble.correct_table({"a": {"s1": a}, "b": {"s1": b}}, task="verb")
    assert table.to_dict("list") == {"split": ["s1", "s1"], "uid": ["1", "2"], "a": [1, 0], "b": [0, 1]}


def test_family_summary_by_hand():
    names = ["gsm-a", "gsm-b", "egoaco-c"]
    table = pd.DataFrame([[0, 10, 30], [10, 0, 50], [30, 50, 0]], index=names, columns=names, dtype=float)
    out = ensemble.family_summary(table).set_index("pair")
    assert out.loc["GSM / GSM", "mean"] == 10 and out.loc["GSM / GSM", "count"] == 1
    assert out.loc["EgoACO / GSM", "mean"] == 40 and out.loc["EgoACO / GSM", "count"] == 2  # (30 + 50) / 2
    assert set(out.index) == {"GSM / GSM", "EgoACO / GSM"}  # the diagonal is left out


def test_s1_s2_drop_by_hand():
    table = pd.DataFrame([{"name": n, "setting": s, "task": t, "top1": v}
                          for n, s, t, v in (("e1", "S1", "action", 40.0), ("e1", "S2", "action", 25.5),
                                             ("e1", "S1", "verb", 60.0), ("e1", "S2", "verb", 61.0))])
    drop = ensemble.s1_s2_drop(table).set_index(["name", "task"])["drop"]
    assert drop[("e1", "action")] == pytest.approx(14.5) and drop[("e1", "verb")] == pytest.approx(-1.0)


def test_unseen_drop_by_hand():
    row = {f"{subset} {t} top1": v for t, (overall, unseen) in
           {"verb": (50.0, 40.0), "noun": (30.0, 31.0), "action": (20.0, 12.5)}.items()
           for subset, v in (("overall", overall), ("unseen", unseen))}
    out = ensemble.unseen_drop(pd.DataFrame([row], index=pd.Index(["ensemble1"], name="name")))
    assert out.to_dict("records") == [
        {"name": "ensemble1", "task": "verb", "overall": 50.0, "unseen": 40.0, "drop": 10.0},
        {"name": "ensemble1", "task": "noun", "overall": 30.0, "unseen": 31.0, "drop": -1.0},
        {"name": "ensemble1", "task": "action", "overall": 20.0, "unseen": 12.5, "drop": 7.5}]
