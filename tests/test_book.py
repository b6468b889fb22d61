"""The book's sources: every book/*.py has its paired .ipynb, equal cell by cell, without outputs."""

import os
from pathlib import Path

import jupytext
import pytest
import yaml

from egolib.book import variants
from egolib.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "book").glob("*.py"))


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_pair_is_in_sync_and_has_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `jupytext --sync {source.relative_to(ROOT)}`"
    py, ipynb = jupytext.read(source), jupytext.read(paired)
    assert _cells(py) == _cells(ipynb), f"{source.name} and {paired.name} drifted: run `jupytext --sync`"
    assert ipynb.metadata["kernelspec"]["name"] == "python3"
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{paired.name} carries outputs"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_each_notebook_has_one_parameters_cell(source):
    nb = jupytext.read(source)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{source.name}: papermill needs exactly one cell tagged 'parameters'"


def test_toc_names_existing_sources():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert (ROOT / f"{toc['root']}.md").exists()
    chapters = [c for part in toc["parts"] for c in part["chapters"]]
    for chapter in chapters:
        file = chapter["file"]
        if file.startswith("runs/book/"):  # executed by `make book` from the source of the same name
            assert (ROOT / "book" / f"{Path(file).name}.py").exists(), file
        else:
            assert (ROOT / f"{file}.md").exists() or (ROOT / f"{file}.ipynb").exists(), file


def test_variants_are_valid_configs():
    for params in variants():
        for preset in ("smoke", "demo"):
            assert RunConfig.from_params({**params, "preset": preset}).pretrain == params["pretrain"]
    names = {RunConfig.from_params(p).name for p in variants()}
    assert len(names) == len(variants()), "two variants share a run folder"


def test_ensemble_members_are_trained_variants():
    data = yaml.safe_load((ROOT / "configs" / "ensembles.yaml").read_text())["ensembles"]
    trained = [dict(v) for v in variants()]
    for name, members in data.items():
        for member in members:
            if "ensemble" in member:
                assert member["ensemble"] in data and member["ensemble"] != name
            else:
                assert member in trained, f"{name}: {member} is not in configs/variants.yaml"
    assert [len(m) for m in data.values()] == [6, 9, 8]


def test_train_all_trains_gsm_egoaco_after_every_gsm_run(monkeypatch):
    from egolib import book

    order = []
    monkeypatch.setattr(book, "train_variant", lambda params: order.append(params["method"]))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    book.train_all([{**v, "preset": "smoke"} for v in variants()], jobs=2)
    assert sorted(order) == sorted(v["method"] for v in variants())
    assert set(order[-2:]) == {"gsm_egoaco"} and "gsm_egoaco" not in order[:-2]
    assert os.environ["OMP_NUM_THREADS"] == "1"  # one thread per kernel when two train at once


def test_execute_writes_the_output_atomically_with_its_own_title(tmp_path):
    import nbformat

    from egolib import book

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Training one variant\nbody"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x * 2)"),
        nbformat.v4.new_code_cell("import sys, time\nfor i in range(3):\n    sys.stderr.write(f'\\rbar {i}')\n"
                                  "    sys.stderr.flush()\n    time.sleep(0.05)\n_ = sys.stderr.write('\\n')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    out = book.execute(tmp_path / "in.ipynb", tmp_path / "run" / "out.ipynb", {"x": 21}, title="gsm · bninc")
    done = nbformat.read(out, as_version=4)
    assert done.cells[0].source == "# gsm · bninc\nbody"
    assert done.cells[-2].outputs[0]["text"] == "42\n"  # (papermill injected a parameters cell)
    assert [o["text"] for o in done.cells[-1].outputs] == ["bar 2\n"]  # a progress bar's last state, once
    assert [p.name for p in out.parent.iterdir()] == ["out.ipynb"]  # no temporary file left behind
