"""egolib.results: the report's claims checked from run folders and chapter outputs; egolib.paper's numbers."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from egolib import convergence, paper, results, scores, verdicts
from egolib.config import RunConfig
from egolib.epic import ManyShot

VARIANTS = [{"method": "egoaco", "backbone": "r2p1d34", "pretrain": "ig65m_kinetics"},
            {"method": "gsm", "backbone": "bninc", "pretrain": "epic"}]
BASELINES = [{"method": "tsn", "backbone": "res34", "pretrain": "imagenet"}]
SEGMENTS = 200  # test segments per split in the hand-built score files
PAIRS = [(0, 0), (1, 1)]  # the action vocabulary: action 0 is (verb 0, noun 0), every segment's label
BOOK = Path(__file__).resolve().parent.parent / "book"


def _scores(acc: float) -> scores.Scores:
    """Score file of SEGMENTS segments, all labelled action (0, 0), right on the first ``acc`` % of them."""
    right = np.arange(SEGMENTS) < round(acc / 100 * SEGMENTS)
    logits = np.where(right[:, None], [[1.0, 0.0]], [[0.0, 1.0]])  # (N, 2): action 0 or action 1 on top
    zeros = np.zeros(SEGMENTS, dtype=int)
    return scores.make([f"u{i}" for i in range(SEGMENTS)], {"verb": logits, "noun": logits, "action": logits}, PAIRS,
                       zeros, zeros, ManyShot([0, 1], [0, 1], PAIRS), "SynthKitchens smoke seed 0")


def _run(root, params, s1, s2, done=True):
    folder = root / RunConfig.from_params({**params, "preset": "smoke"}).name
    folder.mkdir(parents=True)
    metrics = {split: {t: {"top1": acc / 100, "top5": 0.9, "precision": 0.1, "recall": 0.1}
                       for t in ("verb", "noun", "action")} for split, acc in (("s1", s1), ("s2", s2))}
    metrics |= {"pretrain": {"source": "synthetic stand-in: motion clips"},
                "resources": {"train_s": 90.0, "peak_rss_mb": 700.0}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"code_version": "abc", "git_commit": "0123456789abcdef"}))
    for split, acc in (("s1", s1), ("s2", s2)):
        scores.write(folder / f"scores_{split}.npz", _scores(acc))
    if done:
        (folder / "DONE").write_text("")


def _summary(path, **values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: {"value": v, "unit": "%", "label": k} for k, v in values.items()}))


def _flags(k: int, n: int = SEGMENTS) -> np.ndarray:
    """(n,) 0/1, the first k set."""
    return (np.arange(n) < k).astype(int)


def _order_predictions(path, follows: int, clips: int = SEGMENTS):
    """Chapter 04's file: GSM follows the order of the first ``follows`` clips; TSN names the verb both ways."""
    rows = [{"split": "s1", "uid": f"u{i}", "verb": 0, "partner": 1, "forward": 0, "backward": int(i < follows),
             "model": model, "run": model.lower()} for i in range(clips) for model in ("GSM", "TSN")]
    frame = pd.DataFrame(rows)
    frame.loc[frame.model == "TSN", "backward"] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _pointing_frames(path, obj: float, centre: float, random: float, clips: int = 60):
    """Chapter 05's file: 4 frames per clip of S1 and S2; each branch hits on its share of the clips."""
    rows = [{"split": split, "uid": f"{split}-{c}", "t": t, "hit_obj": c < obj * clips, "hit_act": c < clips // 60,
             "hit_ctx": False, "hit_centre": c < centre * clips, "hit_random": c < random * clips}
            for split in ("s1", "s2") for c in range(clips) for t in range(4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def _ensemble_outputs(folder, members: dict[str, tuple[str, int, int]]):
    """Chapter 06's ``beats_best_member.csv`` and ``action_correct.csv`` (S1 only): ``{ensemble: (best member,
    segments the ensemble gets right, segments the member gets right)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    correct = pd.DataFrame({"split": "s1", "uid": [f"u{i}" for i in range(SEGMENTS)]})
    for name, (member, own, best) in members.items():
        correct[name], correct[member] = _flags(own), _flags(best)
    correct.to_csv(folder / "action_correct.csv", index=False)
    pd.DataFrame([{"ensemble": e, "best_member": m} for e, (m, _, _) in members.items()]).to_csv(
        folder / "beats_best_member.csv", index=False)


def test_paper_table2_is_the_reports():
    table = paper.table2()
    assert len(table) == 18 and set(table.columns) == {"setting", "name", "task", "top1", "top5", "precision",
                                                       "recall"}
    assert paper.action_top1("S1", "ensemble3") == paper.BEST_ENSEMBLE["s1"] == 40.00
    assert paper.action_top1("s2", "ensemble3") == paper.BEST_ENSEMBLE["s2"] == 25.71
    row = table[(table.setting == "S2") & (table.name == "ensemble1") & (table.task == "noun")].iloc[0]
    assert (row.top1, row.top5, row.precision, row.recall) == (31.38, 56.54, 24.43, 28.46)


def test_run_table_reads_complete_runs_in_percent(tmp_path):
    _run(tmp_path, VARIANTS[0], s1=30.0, s2=20.0)
    _run(tmp_path, VARIANTS[1], s1=35.0, s2=36.0, done=False)  # interrupted: not counted
    table = results.run_table(tmp_path, VARIANTS, BASELINES, preset="smoke", seed=0)
    assert list(table["complete"]) == [True, False, False] and list(table["baseline"]) == [False, False, True]
    assert table.loc[0, "s1_action"] == pytest.approx(30.0) and pd.isna(table.loc[1, "s1_action"])
    assert table.loc[0, "train_min"] == pytest.approx(1.5) and table.loc[0, "code_version"] == "abc"


def test_claims_not_measured_when_nothing_was_produced(tmp_path):
    table = results.run_table(tmp_path, VARIANTS, BASELINES, preset="smoke", seed=0)
    found = results.claims(tmp_path, table, measured=[])
    assert len(found) == 6 and {c.verdict for c in found} == {results.NOT_MEASURED}
    page = results.results_page(found, table, None, preset="smoke", seed=0, in_book={"03_train_runs"})
    assert page.count("not measured") >= 6 + 6  # six claims, six Table 2 cells
    assert "40.00" in page and "25.71" in page and "{cite:p}`sudhakaran2020fbk`" in page
    assert "04_gsm_gates.ipynb" not in page  # no link to a chapter outside the build


def test_claims_from_run_folders_and_chapter_outputs(tmp_path):
    _run(tmp_path, VARIANTS[0], s1=30.0, s2=20.0)
    _run(tmp_path, VARIANTS[1], s1=35.0, s2=36.0)
    _run(tmp_path, BASELINES[0], s1=50.0, s2=10.0)  # a baseline is never "the best single model"
    book = tmp_path / "book"
    _order_predictions(book / "04_gsm_gates" / "order_predictions.csv", follows=60)
    _pointing_frames(book / "05_lsta_attention" / "pointing_frames.csv", obj=0.4, centre=0.45, random=0.1)
    _ensemble_outputs(book / "06_ensembles", {"ensemble1": ("gsm-run", 120, 80), "ensemble2": ("tsn-run", 77, 77),
                                              "ensemble3": ("ensemble1", 60, 120)})
    pd.DataFrame([{"name": f"Ensemble {k}", "setting": "S1", "task": "action", "top1": v, "top5": 0, "precision": 0,
                   "recall": 0} for k, v in ((1, 60.0), (2, 38.5), (3, 30.0))]
                 ).to_csv(book / "06_ensembles" / "table2.csv", index=False)
    table = results.run_table(tmp_path, VARIANTS, BASELINES, preset="smoke", seed=0)
    measured = ["04_gsm_gates", "05_lsta_attention", "06_ensembles"]
    gsm, ego, beats, s2, best_ens, best_single = [
        dataclasses.replace(c, measured=c.measured.replace("\u00a0", " "),
                            difference=c.difference.replace("\u00a0", " "))
        for c in results.claims(tmp_path, table, measured)]
    assert gsm.verdict == verdicts.HOLDS and "mean order score: GSM 30.0 %, TSN 0.0 %" in gsm.measured
    assert gsm.difference.startswith("GSM - TSN order score +30.0 points (95 % CI")
    assert ego.verdict == verdicts.CANNOT_TELL  # beats random peaks, not clearly different from the centre prior
    assert "object branch S1 40.0 %, S2 40.0 %" in ego.measured and "LSTA (act) attention S1 1.7 %" in ego.measured
    assert beats.verdict == verdicts.DOES_NOT_HOLD  # ensemble3 is below ensemble1
    assert "ensemble1 60.0 % vs gsm-run 40.0 %" in beats.measured
    assert "ensemble1 - gsm-run +20.0 points" in beats.difference
    assert s2.verdict == verdicts.HOLDS and "S2 below S1 in 2 of 3 runs" in s2.measured
    assert s2.difference.startswith("S1 - S2 +16.3 points")  # (30 + 35 + 50) / 3 - (20 + 36 + 10) / 3
    assert best_ens.verdict == verdicts.DOES_NOT_HOLD and "ensemble3 - ensemble1 -30.0 points" in best_ens.difference
    assert best_single.verdict == verdicts.DOES_NOT_HOLD and best_single.measured.startswith("best: GSM BN-Inception")
    assert "EgoACO R(2+1)D-34 (IG-65M + Kinetics)" not in best_single.measured
    assert best_single.criterion == verdicts.BEST_IS and gsm.criterion == verdicts.GSM_MODELS_TIME
    # outputs of a chapter that did not run in this build (say, left over from another preset) are ignored
    assert results.claims(tmp_path, table, measured=[])[0].verdict == results.NOT_MEASURED
    page = results.results_page([gsm, ego], table, results.read_table2(book / "06_ensembles" / "table2.csv"),
                                preset="demo", seed=0, in_book={"04_gsm_gates", "06_ensembles"})
    assert "[4. GSM gates](04_gsm_gates.ipynb)" in page and "| S1 | ensemble2 | 38.50 | 38.80 |" in page
    assert f"| {gsm.difference} | holds |" in page and "| cannot tell at this size |" in page
    assert f"{verdicts.N_RESAMPLES} resamples" in page and verdicts.EGOACO_ATTENDS in page


CHAPTER_FILES = [  # (claim on the page, its chapter, the file it reads, the verdict function, the chapter's call)
    (results.claim_gsm_models_time, "04_gsm_gates", "order_predictions.csv", verdicts.gsm_models_time,
     'verdicts.gsm_models_time(pd.read_csv(out_dir / "order_predictions.csv"))'),
    (results.claim_egoaco_attends_to_object, "05_lsta_attention", "pointing_frames.csv",
     verdicts.egoaco_attends_to_object,
     'verdicts.egoaco_attends_to_object(pd.read_csv(out_dir / "pointing_frames.csv"))'),
]


@pytest.mark.parametrize("claim, chapter, file, verdict, call", CHAPTER_FILES, ids=["04", "05"])
def test_the_chapter_and_the_page_give_the_same_verdict_on_the_same_file(tmp_path, claim, chapter, file, verdict,
                                                                         call):
    folder = tmp_path / chapter
    for strength in (0.0, 0.5):
        if chapter == "04_gsm_gates":
            _order_predictions(folder / file, follows=int(strength * SEGMENTS))
        else:
            _pointing_frames(folder / file, obj=0.2 + strength, centre=0.2, random=0.1)
        on_page, in_chapter = claim(folder), verdict(pd.read_csv(folder / file))
        assert on_page.verdict == in_chapter.outcome and on_page.difference == in_chapter.text()
    assert on_page.verdict == verdicts.HOLDS
    assert call in (BOOK / f"{chapter}.py").read_text()  # the chapter calls the same function on the same file


def test_chapter_06_and_the_page_give_the_same_verdicts(tmp_path):
    folder = tmp_path / "06_ensembles"
    _ensemble_outputs(folder, {"ensemble1": ("a", 120, 80), "ensemble2": ("b", 90, 80), "ensemble3": ("ensemble1",
                                                                                                       130, 120)})
    correct, beats = (pd.read_csv(folder / f) for f in ("action_correct.csv", "beats_best_member.csv"))
    chapter = verdicts.ensemble_beats_best_member(correct, dict(zip(beats.ensemble, beats.best_member, strict=True)))
    page = results.claim_ensembles_beat_members(folder)
    assert page.verdict == chapter.outcome == verdicts.HOLDS and page.difference == chapter.text()
    best = results.claim_best_ensemble(folder)
    assert best.verdict == verdicts.best_is(correct[["ensemble1", "ensemble2", "ensemble3"]], "ensemble3").outcome
    source = (BOOK / "06_ensembles.py").read_text()
    assert 'ensemble.save_table(out, "action_correct", correct)' in source
    assert "verdicts.ensemble_beats_best_member(" in source and "verdicts.best_is(" in source


def test_a_malformed_summary_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"order_pairs_gsm": 71.0}))
    with pytest.raises(ValueError, match=r"summary.json: entry 'order_pairs_gsm' must be"):
        results.read_summary(path)


def test_run_index_links_the_pages_that_exist(tmp_path):
    _run(tmp_path, VARIANTS[0], s1=30.0, s2=20.0)
    table = results.run_table(tmp_path, VARIANTS, BASELINES, preset="smoke", seed=0)
    page = results.run_index_page(table, preset="smoke", seed=0, pages={table.loc[0, "name"]})
    name = table.loc[0, "name"]
    assert f"[{name}](../{name}/train.ipynb)" in page and "(not trained)" in page
    row = "IG-65M + Kinetics (synthetic stand-in: motion clips) | 30.0 / 30.0 / 30.0 | 20.0 / 20.0 / 20.0 | 1.5 | 700 |"
    assert row in page
    assert "| – / – / – | – / – / – | – | – |" in page and "Training code version: `abc`." in page


def test_the_run_index_shows_how_far_each_run_and_its_recipe_s_study_trained(tmp_path, monkeypatch):
    _run(tmp_path, VARIANTS[0], s1=30.0, s2=20.0)
    name = RunConfig.from_params({**VARIANTS[0], "preset": "smoke"}).name
    verb = [0.2, 0.7, 0.7, 0.7, 0.7, 0.7]  # its 3-epoch mean reaches its best, 70 %, at epoch 4
    pd.DataFrame({"acc_verb": verb, "acc_noun": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "acc_action": 0.1}).to_csv(
        tmp_path / name / "log.csv", index=False)
    studies = tmp_path / "convergence"
    studies.mkdir()
    monkeypatch.setattr(convergence, "STUDIES", studies)
    pd.DataFrame({"acc_verb": [0.5, 0.6], "acc_noun": 0.5, "acc_action": 0.5, "val_verb": [0.55, 0.65],
                  "val_noun": [0.45, 0.44], "val_action": [0.3, 0.35]}).to_csv(studies / f"{name}.csv", index=False)
    table = results.run_table(tmp_path, VARIANTS, BASELINES, preset="smoke", seed=0)
    first = table.iloc[0]
    assert (first.epochs, first.train_verb, first.train_stop_verb, first.train_stop_noun) == (6, 70.0, 4, 6)
    assert (first.val_verb, first.val_noun, first.val_stop_verb, first.val_stop_noun) == (65.0, 44.0, 2, 1)
    assert table.iloc[1][["epochs", "train_verb", "val_verb"]].isna().all()  # no run folder, no study
    page = results.run_index_page(table, preset="smoke", seed=0, pages={name})
    assert f"| {name} | 6 | 70.0 / 60.0 | 4 / 6 | 65.0 / 44.0 / 35.0 | 2 / 1 / 2 |" in page
    assert f"| {table.iloc[1]['name']} | – | – / – | – / – | – / – / – | – / – / – |" in page


def test_the_unseen_claim_reads_the_dataset_s_own_columns(tmp_path, monkeypatch):
    _run(tmp_path, VARIANTS[0], s1=30.0, s2=0.0)
    _run(tmp_path, VARIANTS[1], s1=20.0, s2=0.0)
    _run(tmp_path, BASELINES[0], s1=99.0, s2=0.0, done=False)  # the incomplete run is left out
    for name in ("egoaco-r2p1d34-ig65m_kinetics-smoke-s0", "gsm-bninc-epic-smoke-s0", "tsn-res34-imagenet-smoke-s0"):
        folder = tmp_path / name
        for old, new in (("s1", "validation"), ("s2", "test")):
            (folder / f"scores_{old}.npz").rename(folder / f"scores_{new}.npz")
    runs = pd.DataFrame({"name": ["egoaco-r2p1d34-ig65m_kinetics-smoke-s0", "gsm-bninc-epic-smoke-s0",
                                  "tsn-res34-imagenet-smoke-s0"], "complete": [True, True, False],
                         "validation_action": [30.0, 20.0, 99.0], "unseen_action": [25.0, 22.0, 0.0]})
    unseen = np.arange(SEGMENTS) >= SEGMENTS // 2  # the second half: unseen participants, never right here
    monkeypatch.setattr(results, "_unseen_participants", lambda run_dir, uids: unseen[:len(uids)])
    claim = results.claim_unseen_harder(tmp_path, runs, "epic100")
    measured = claim.measured.replace("\u00a0", " ")
    assert measured.startswith("unseen participants below validation in 1 of 2 runs")
    assert "validation 25.0 %, unseen participants 23.5 %" in measured
    assert claim.verdict == verdicts.HOLDS and claim.difference.startswith("validation - unseen participants +25.0")
    assert "no EPIC-100 numbers" in claim.report and "EPIC-100" in claim.claim
    assert claim.criterion == verdicts.UNSEEN_HARDER_100


def test_unseen_participants_come_from_the_run_s_epic100_annotations(tmp_path, monkeypatch):
    real = Path(__file__).resolve().parent / "epic-annotations" / "epic100"
    annotations = tmp_path / "data" / "epic100-copy" / "annotations"
    annotations.mkdir(parents=True)
    for name in ("EPIC_100_validation.csv", "EPIC_100_unseen_participant_ids_validation.csv"):
        (annotations / name).write_bytes((real / name).read_bytes())
    cfg = RunConfig.from_params({**VARIANTS[1], "preset": "smoke", "dataset": "epic100",
                                 "data_root": "data/epic100-copy"})  # relative: to the folder holding runs/
    run_dir = tmp_path / "runs" / cfg.name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(cfg.to_json())
    monkeypatch.chdir(tmp_path / "runs")  # the working directory does not hold data/
    validation = pd.read_csv(annotations / "EPIC_100_validation.csv")
    uids = list(validation.narration_id.iloc[[0, 1]]) + list(validation[validation.participant_id == "P18"]
                                                             .narration_id.iloc[:2])
    assert results._unseen_participants(run_dir, uids).tolist() == [False, False, True, True]  # P18 is unseen
