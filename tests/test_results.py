"""egolib.results: the report's claims checked from run folders and chapter outputs; egolib.paper's numbers."""

import dataclasses
import json

import pandas as pd
import pytest

from egolib import paper, results
from egolib.config import RunConfig

VARIANTS = [{"method": "egoaco", "backbone": "r2p1d34", "pretrain": "ig65m_kinetics"},
            {"method": "gsm", "backbone": "bninc", "pretrain": "epic"}]
BASELINES = [{"method": "tsn", "backbone": "res34", "pretrain": "imagenet"}]


def _run(root, params, s1, s2, done=True):
    folder = root / RunConfig.from_params({**params, "preset": "smoke"}).name
    folder.mkdir(parents=True)
    metrics = {split: {t: {"top1": acc / 100, "top5": 0.9, "precision": 0.1, "recall": 0.1}
                       for t in ("verb", "noun", "action")} for split, acc in (("s1", s1), ("s2", s2))}
    metrics |= {"pretrain": {"source": "synthetic stand-in: motion clips"},
                "resources": {"train_s": 90.0, "peak_rss_mb": 700.0}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"code_version": "abc", "git_commit": "0123456789abcdef"}))
    if done:
        (folder / "DONE").write_text("")


def _summary(path, **values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: {"value": v, "unit": "%", "label": k} for k, v in values.items()}))


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
    _summary(book / "04_gsm_gates" / "summary.json", order_pairs_gsm=70.0, order_pairs_tsn=50.0,
             order_flip_gsm=60.0, order_flip_tsn=5.0)
    _summary(book / "05_lsta_attention" / "summary.json",
             **{f"pointing_{b}_{s}": v for (b, v) in (("obj", 40.0), ("centre", 45.0), ("random", 10.0),
                                                       ("act", 1.0), ("ctx", 1.0)) for s in ("s1", "s2")})
    _summary(book / "06_ensembles" / "summary.json", beats_best_member_ensemble1=1.0,
             beats_best_member_ensemble2=0.0, beats_best_member_ensemble3=1.0)
    pd.DataFrame([{"name": f"Ensemble {k}", "setting": s, "task": "action", "top1": v, "top5": 0, "precision": 0,
                   "recall": 0} for k, s, v in ((1, "S1", 30.0), (2, "S1", 38.5), (3, "S1", 37.0),
                                                (1, "S2", 20.0), (2, "S2", 21.0), (3, "S2", 22.0))]
                 + [{"name": "gsm-bninc-epic-smoke-s0", "setting": "S1", "task": "action", "top1": 39.0}]  # a member
                 ).to_csv(book / "06_ensembles" / "table2.csv", index=False)
    table = results.run_table(tmp_path, VARIANTS, BASELINES, preset="smoke", seed=0)
    measured = ["04_gsm_gates", "05_lsta_attention", "06_ensembles"]
    gsm, ego, beats, s2, best_ens, best_single = [
        dataclasses.replace(c, measured=c.measured.replace("\u00a0", " "))  # no-break space between number and unit
        for c in results.claims(tmp_path, table, measured)]
    assert gsm.verdict == "holds here" and "GSM 70.0 %, TSN 50.0 %" in gsm.measured
    assert ego.verdict == "partly"  # beats random peaks, not the centre prior
    assert "object branch S1 40.0 %" in ego.measured and "LSTA (act) attention S1 1.0 %" in ego.measured
    assert beats.verdict == "partly" and beats.measured.startswith("2 of 3 ensembles")
    assert s2.verdict == "holds here" and "S2 below S1 in 2 of 3 runs" in s2.measured
    assert best_ens.verdict == "does not hold here" and best_ens.measured.startswith("ensemble2: S1 38.5 %, S2 21.0 %")
    assert best_single.verdict == "does not hold here" and best_single.measured.startswith("GSM BN-Inception (EPIC)")
    # outputs of a chapter that did not run in this build (say, left over from another preset) are ignored
    assert results.claims(tmp_path, table, measured=[])[0].verdict == results.NOT_MEASURED
    page = results.results_page([gsm], table, results.read_table2(book / "06_ensembles" / "table2.csv"),
                                preset="demo", seed=0, in_book={"04_gsm_gates", "06_ensembles"})
    assert "[4. GSM gates](04_gsm_gates.ipynb)" in page and "| S1 | ensemble2 | 38.50 | 38.80 |" in page


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


def test_the_unseen_claim_reads_the_dataset_s_own_columns():
    runs = pd.DataFrame({"complete": [True, True, False], "validation_action": [30.0, 20.0, 99.0],
                         "unseen_action": [25.0, 22.0, 0.0]})  # the incomplete run is left out
    claim = results.claim_unseen_harder(runs, "epic100")
    measured = claim.measured.replace("\u00a0", " ")
    assert measured.startswith("unseen participants below validation in 1 of 2 runs")
    assert "validation 25.0 %, unseen participants 23.5 %" in measured and claim.verdict == "holds here"
    assert "no EPIC-100 numbers" in claim.report and "EPIC-100" in claim.claim
