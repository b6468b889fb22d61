"""The smoke book with ``--data-root`` (``python -m egolib.book --data-root DIR``), as a user with a real
EPIC-Kitchens-55 copy builds it: the run folders are named by the root (``...-s0-data=<hash>``), and every chapter,
the results page and the run index read those folders, not the embedded set's. A SynthKitchens smoke draw written
outside ``data/`` stands in for the real copy. One build, shared by every test here (``smoke_book_data_root``)."""

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from egolib import ensemble
from egolib.book import CHAPTERS, Book

ROOT = Path(__file__).resolve().parents[1]


def _names(data_root: Path) -> list[str]:
    return Book(preset="smoke", data_root=str(data_root)).run_names


def test_run_names_carry_the_data_root(tmp_path):
    names = _names(tmp_path)
    assert names and all("-smoke-s0-data=" in n for n in names)
    cfg = ensemble.load_config(ROOT / "configs" / "ensembles.yaml")
    member = cfg.runs()[0]
    assert member.run_name("smoke", 0, data_root=str(tmp_path)) in names
    assert member.run_name("smoke", 0) not in names
    command = ensemble.train_command(member, "paper", 0, dataset="epic55", data_root=str(tmp_path))
    assert f"-p data_root {tmp_path}" in command and "<" not in command


@pytest.mark.slow
def test_every_chapter_reads_the_data_root_runs(smoke_book_data_root):
    book, data_root = smoke_book_data_root
    names = _names(data_root)
    # the pretraining stand-ins (data/objects-*, data/motion-*) are made here; the embedded kitchens never are
    assert not list((book / "data").glob("synthkitchens*")), "the embedded set was generated"
    for name in names:
        assert (book / "runs" / name / "DONE").is_file(), name
        assert json.loads((book / "runs" / name / "config.json").read_text())["data_root"] == str(data_root)
    for chapter in CHAPTERS:
        executed = book / "runs" / "book" / f"{chapter.stem}.ipynb"
        assert executed.is_file(), f"{chapter.stem} was not executed: see {book / '_build' / 'book.log'}"
        params = nbformat.read(executed, as_version=4).metadata["papermill"]["parameters"]
        assert params.get("data_root") == str(data_root), (chapter.stem, params)
        assert (book / "_build" / "html" / "runs" / "book" / f"{chapter.stem}.html").is_file(), chapter.stem
    cfg = ensemble.load_config(ROOT / "configs" / "ensembles.yaml")
    table2 = pd.read_csv(book / "runs" / "book" / "06_ensembles" / "table2.csv")
    assert set(table2["name"]) == {*cfg.ensembles, *(m.run_name("smoke", 0, data_root=str(data_root))
                                                     for m in cfg.runs())}
    efficiency_runs = pd.read_csv(book / "runs" / "book" / "07_efficiency" / "runs.csv")
    assert set(efficiency_runs["run"]) <= set(names) and len(efficiency_runs) == len(names)
    for stem in ("04_gsm_gates", "05_lsta_attention"):
        summary = json.loads((book / "runs" / "book" / stem / "summary.json").read_text())
        assert summary, stem
    index = (book / "runs" / "book" / "appendix_runs.md").read_text()
    assert "(not trained)" not in index and all(n in index for n in names)
    for name in names:  # every run page is in the rendered book
        assert (book / "_build" / "html" / "runs" / name / "train.html").is_file(), name
