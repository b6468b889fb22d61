"""The smoke book on SynthKitchens in the EPIC-100 layout (``python -m egolib.book --dataset epic100``): every chapter
executed on the EPIC-100 runs and rendered, chapter 06's EPIC-100 metrics table (in place of Table 2) equal to
``egolib.metrics.epic100_metrics`` on the averaged validation scores, each ensemble's EPIC-100 challenge zip, and the
results page and run index on validation. One build, shared by every test here (``smoke_book_epic100``)."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from egolib import ensemble, epic, metrics, scores, submission
from egolib.book import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("data") / "synthkitchens-epic100-smoke-s0"
TASKS = ("verb", "noun", "action")


def _outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/html", ""))
                     + o.get("text", "") for o in outputs)


def _expected(s: scores.Scores, annotations: epic.Epic100) -> dict:
    """``egolib.metrics.epic100_metrics`` computed here from a validation score file, independently of
    ``egolib.ensemble``: a softmax mean enters as its logarithm (the scores a challenge server receives)."""
    val = annotations.validation.set_index("narration_id").loc[s.uid.tolist()]
    verb, noun = ((np.log(s.verb.astype(np.float64)), np.log(s.noun.astype(np.float64))) if s.average == "softmax"
                  else (s.verb, s.noun))
    return metrics.epic100_metrics(verb, noun, val["verb_class"].to_numpy(), val["noun_class"].to_numpy(),
                                   val["participant_id"].tolist(), annotations.tail_verbs, annotations.tail_nouns,
                                   annotations.unseen_validation)


@pytest.mark.slow
def test_every_chapter_executes_on_the_epic100_runs_and_is_rendered(smoke_book_epic100):
    book = smoke_book_epic100
    for chapter in CHAPTERS:
        executed = book / "runs" / "book" / f"{chapter.stem}.ipynb"
        assert executed.is_file(), f"{chapter.stem} was not executed: see {book / '_build' / 'book.log'}"
        params = nbformat.read(executed, as_version=4).metadata["papermill"]["parameters"]
        assert params.get("dataset") == "epic100", (chapter.stem, params)
        assert (book / "_build" / "html" / "runs" / "book" / f"{chapter.stem}.html").is_file(), chapter.stem
    text = {c.stem: _outputs_text(book / "runs" / "book" / f"{c.stem}.ipynb") for c in CHAPTERS}
    assert "every referenced frame is present" in text["01_data_prep"] and "tail classes" in text["01_data_prep"]
    assert "validation" in text["04_gsm_gates"] and "S1+S2" not in text["04_gsm_gates"]
    pointing = json.loads((book / "runs" / "book" / "05_lsta_attention" / "summary.json").read_text())
    assert {k.rsplit("_", 1)[1] for k in pointing} == {"validation"}
    runs_csv = pd.read_csv(book / "runs" / "book" / "07_efficiency" / "runs.csv")
    assert runs_csv["top1_action_validation"].notna().all() and "top1_action_s1" not in runs_csv


@pytest.mark.slow
def test_chapter_06_gives_the_epic100_metrics_table_of_the_averaged_scores(smoke_book_epic100):
    book = smoke_book_epic100
    out = book / "runs" / "book" / "06_ensembles"
    assert not (out / "table2.csv").exists()
    table = pd.read_csv(out / "epic100_metrics.csv", index_col="name")
    cfg = ensemble.load_config(ROOT / "configs" / "ensembles.yaml")
    members = [m.run_name("smoke", 0, "epic100") for m in cfg.runs()]
    assert list(table.index) == [*cfg.ensembles, *members]
    annotations = epic.load_epic100(book / DATA / "annotations")
    for name in table.index:
        path = out / f"{name}_validation.npz" if name in cfg.ensembles else \
            book / "runs" / name / "scores_validation.npz"
        s = scores.read(path)
        assert s.average == ("softmax" if name in cfg.ensembles else "none")
        m = _expected(s, annotations)
        row = table.loc[name]
        for t in TASKS:
            assert row[f"overall {t} top1"] == pytest.approx(100 * m["overall"][t]["top1"], abs=1e-3), (name, t)
            assert row[f"overall {t} top5"] == pytest.approx(100 * m["overall"][t]["top5"], abs=1e-3), (name, t)
            assert row[f"tail {t} top1"] == pytest.approx(100 * m["tail"][t], abs=1e-3), (name, t)
            assert row[f"unseen {t} top1"] == pytest.approx(100 * m["unseen"][t], abs=1e-3), (name, t)
        if name in members:  # a run's row is its own metrics.json
            own = json.loads((book / "runs" / name / "metrics.json").read_text())["validation"]
            assert row["overall action top1"] == pytest.approx(100 * own["overall"]["action"]["top1"], abs=1e-3)
    for name in cfg.ensembles:  # the averaged test scores go into an EPIC-100 challenge zip
        zip_path = out / f"{name}_submission.zip"
        test = scores.read(out / f"{name}_test.npz")
        assert not test.labelled
        assert submission.check_submission(zip_path, fmt="epic100", expected_ids={"test.json": test.uid.tolist()},
                                           num_verbs=test.verb.shape[1], num_nouns=test.noun.shape[1]) == []
    shown = _outputs_text(book / "runs" / "book" / "06_ensembles.ipynb")
    assert "EPIC-100 metrics table" in shown and "in place of Table 2" in shown
    assert f"{table.loc['ensemble3', 'overall action top1']:.2f}" in shown
    beats = pd.read_csv(out / "beats_best_member.csv").set_index("ensemble")
    for name in cfg.ensembles:  # the ablations' action top-1 is EPIC-100's (verb x noun product), as in the table
        assert beats.loc[name, "top1"] == pytest.approx(table.loc[name, "overall action top1"], abs=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {f"beats_best_member_{n}" for n in cfg.ensembles}
    assert all("validation action top-1" in v["label"] for v in summary.values())
    for stem in ("beats_best_member", "leave_one_out", "greedy_selection", "size_curve", "averaging_and_nesting",
                 "protocol", "disagreement_validation_action", "unseen_drop"):
        assert (out / f"{stem}.csv").exists(), stem


@pytest.mark.slow
def test_results_page_and_run_index_are_on_validation(smoke_book_epic100):
    pages = smoke_book_epic100 / "runs" / "book"
    results_page = (pages / "results.md").read_text()
    assert "## EPIC-100 metrics, action top-1" in results_page and "## Table 2" not in results_page
    table = pd.read_csv(pages / "06_ensembles" / "epic100_metrics.csv", index_col="name")
    assert f"| ensemble3 | {table.loc['ensemble3', 'overall action top1']:.2f} |" in results_page
    assert "unseen participants" in results_page and "S2 below S1" not in results_page
    index = (pages / "appendix_runs.md").read_text()
    assert "validation top-1 (%)" in index and "epic100" in index and "(not trained)" not in index
