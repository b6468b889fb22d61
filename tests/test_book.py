"""The book's sources: every book/*.py has its paired .ipynb, equal cell by cell, without outputs."""

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


@pytest.mark.parametrize("source", [*SOURCES, ROOT / "book" / "03_train_runs.md"], ids=lambda p: p.name)
def test_each_chapter_title_carries_its_number(source):
    """``# 4. ...`` for book/04_*.py; the first cell is the '# ' heading that ``execute(..., title=...)`` rewrites."""
    first = jupytext.read(source).cells[0]
    heading = first.source.splitlines()[0]
    assert first.cell_type == "markdown" and heading.startswith(f"# {int(source.name[:2])}. "), heading



def _toc_files(toc):
    def walk(entries):
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from walk(entry.get("sections", []))

    return [f for part in toc["parts"] for f in walk(part["chapters"])]


def test_toc_names_existing_sources_and_every_chapter_of_the_driver():
    from egolib.book import CHAPTERS, GENERATED_PAGES

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert (ROOT / f"{toc['root']}.md").exists()
    executed = []
    for file in _toc_files(toc):
        if file.startswith("runs/book/"):  # executed by `make book` from the source of the same name, or written
            stem = Path(file).name
            assert stem in {c.stem for c in CHAPTERS} | set(GENERATED_PAGES), f"{file}: the driver never writes it"
            if stem not in GENERATED_PAGES:
                executed.append(stem)
                assert (ROOT / "book" / f"{stem}.py").exists(), f"{file}: no book/{stem}.py"
        else:
            assert (ROOT / f"{file}.md").exists() or (ROOT / f"{file}.ipynb").exists(), file
    assert executed == [c.stem for c in CHAPTERS], "the toc and egolib.book.CHAPTERS list the chapters in one order"
    assert [p["caption"] for p in toc["parts"]][:2] == ["The report's claims", "Data and pre-training"]


def test_every_chapter_source_is_in_the_driver():
    from egolib.book import CHAPTERS

    sources = {p.stem for p in SOURCES} - {"03_train"}  # 03 is executed once per run
    assert sources == {c.stem for c in CHAPTERS}


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


def _ordered_steps(monkeypatch, jobs, fail=()):
    from egolib import book

    order = []

    def fake(step):
        order.append(step.name)
        if step.name in fail:
            raise RuntimeError("boom")
        return "run"

    b = book.Book(preset="smoke")
    steps = b.steps()
    for s in steps:
        if s.status == "pending":
            s.action = fake
    return book.run_steps(steps, jobs=jobs), order


@pytest.mark.parametrize("jobs", [1, 2])
def test_steps_run_in_dependency_order(monkeypatch, jobs):
    steps, order = _ordered_steps(monkeypatch, jobs)
    names = [RunConfig.from_params({**v, "preset": "smoke"}).name for v in variants()]
    trains = [order.index(f"train {n}") for n in names]
    assert order[0] == "01_data_prep"
    assert order.index("02_pretrain") > max(trains)  # the runs pretrain what they need; 02 renders the caches
    gsm_runs = [order.index(f"train gsm-{bb}-epic-smoke-s0") for bb in ("bninc", "incv3")]
    assert max(gsm_runs) < min(order.index(f"train {n}") for n in names if "gsm" not in n)  # waited for: first
    for bb in ("bninc", "incv3"):  # GSM + EgoACO starts from the GSM run of its backbone
        assert order.index(f"train gsm_egoaco-{bb}-epic-smoke-s0") > order.index(f"train gsm-{bb}-epic-smoke-s0")
    from egolib.book import CHAPTERS

    readers = [c.stem for c in CHAPTERS if c.reads_runs]  # 04-07: they read every run folder
    assert len(readers) == 4 and all(order.index(stem) > max(trains) for stem in readers)
    assert order[-2:] == ["results and run index", "html"]
    assert all(s.status == "run" for s in steps)
    pages = {s.name: s for s in steps}["results and run index"]
    assert set(pages.after) == {s.name for s in steps} - {"results and run index", "html"}  # waits for everything


def test_a_failed_step_blocks_what_needs_it_and_the_pages_still_get_written(monkeypatch):
    steps, order = _ordered_steps(monkeypatch, 2, fail={"train gsm-bninc-epic-smoke-s0"})
    status = {s.name: s.status for s in steps}
    assert status["train gsm-bninc-epic-smoke-s0"] == "failed"
    assert status["train gsm_egoaco-bninc-epic-smoke-s0"] == "blocked"
    assert status["train gsm_egoaco-incv3-epic-smoke-s0"] == "run"  # does not need the failed run
    assert status["results and run index"] == "run" and status["html"] == "run"  # soft: the rest is shown


def test_summary_table_names_each_step_its_status_time_and_memory():
    from egolib.book import Step, summary_table

    table = summary_table([Step("01_data_prep", None, status="reused", wall_s=0.2, cpu_s=0.1, peak_mib=None,
                                last_s=460.0, finished="2026-01-02T10:00:00"),
                           Step("train x", None, status="run", wall_s=61.0, cpu_s=118.0, peak_mib=812.4, last_s=60.5,
                                finished="2026-01-02T11:00:00"),
                           Step("04_gsm_gates", None, status="failed", wall_s=3.0, cpu_s=None, error="boom"),
                           Step("html", None, status="run", wall_s=5.0, cpu_s=4.5)])
    lines = table.splitlines()
    assert lines[0].split() == ["step", "status", "wall", "(s)", "CPU", "(s)", "executed", "(s)", "finished", "peak",
                                "memory", "(MiB)"]
    assert lines[1].split() == ["01_data_prep", "reused", "0.2", "0.1", "460.0", "2026-01-02T10:00:00", "-"]
    assert lines[2].split() == ["train", "x", "run", "61.0", "118.0", "60.5", "2026-01-02T11:00:00", "812"]
    assert lines[3].split() == ["04_gsm_gates", "failed", "(boom)", "3.0", "?", "-", "-", "-"]  # CPU not measured
    assert lines[4].split() == ["html", "run", "5.0", "4.5", "-", "-", "-"]
    assert lines[-2].split() == ["total", "69.2", "122.6", "520.5"] and lines[-1].startswith("(reused: ")


def test_toc_of_a_build_lists_its_own_run_pages_and_leaves_out_chapters_not_executed(tmp_path, monkeypatch):
    from egolib import book

    monkeypatch.setattr(book, "ROOT", tmp_path)
    (tmp_path / "_toc.yml").write_text((ROOT / "_toc.yml").read_text())
    for name in ("gsm-bninc-epic-smoke-s0", "gsm-bninc-epic-demo-s0"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "train.ipynb").write_text("{}")
    toc = yaml.safe_load(book.write_toc(["gsm-bninc-epic-smoke-s0", "tsn-res34-imagenet-smoke-s0"],
                                        available={"01_data_prep", "02_pretrain", "05_lsta_attention"}).read_text())
    files = _toc_files(toc)
    assert [f for f in files if f.endswith("/train")] == ["runs/gsm-bninc-epic-smoke-s0/train"]
    assert "runs/book/05_lsta_attention" in files and "runs/book/04_gsm_gates" not in files
    assert {"runs/book/results", "runs/book/appendix_runs", "book/references"} <= set(files)


def test_setup_cells_are_recognised():
    from egolib.book import is_setup

    assert is_setup("%matplotlib inline\nimport logging\nfrom egolib import train\nlogging.basicConfig(level=20)")
    assert not is_setup("import numpy as np\nx = np.zeros(3)")  # computes something: stays visible
    assert not is_setup("display(table)") and not is_setup("") and not is_setup("not python (")


def test_offline_html_drops_remote_scripts_only():
    from egolib.book import offline_html

    html = ('<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/3.2.2/es5/tex-svg.min.js"></script>'
            '<script>window.PlotlyConfig = {};</script>'
            '<script charset="utf-8" src="https://cdn.plot.ly/plotly-4.1.1.min.js" integrity="x"></script>'
            '<script type="module">import "https://cdn.plot.ly/plotly-4.1.1.min"</script>'
            '<div id="f"></div><script>Plotly.newPlot("f", [])</script>')
    assert offline_html(html) == ('<script>window.PlotlyConfig = {};</script><div id="f"></div>'
                                  '<script>Plotly.newPlot("f", [])</script>')


def _notebook(tmp_path, *cells, name="in.ipynb"):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / name)
    return tmp_path / name


def test_execute_writes_the_output_atomically_with_its_own_title(tmp_path):
    import nbformat

    from egolib import book

    notebook = _notebook(
        tmp_path,
        nbformat.v4.new_markdown_cell("# Training one variant\nbody"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x * 2)"),
        nbformat.v4.new_code_cell("import sys, time\nfor i in range(3):\n    sys.stderr.write(f'\\rbar {i}')\n"
                                  "    sys.stderr.flush()\n    time.sleep(0.05)\n_ = sys.stderr.write('\\n')"),
        nbformat.v4.new_code_cell("big = bytearray(64 << 20)"),
    )
    out = tmp_path / "run" / "out.ipynb"
    usage = book.execute(notebook, out, {"x": 21}, title="gsm · bninc")
    done = nbformat.read(out, as_version=4)
    assert done.cells[0].source == "# gsm · bninc\nbody"
    assert done.cells[-3].outputs[0]["text"] == "42\n"  # (papermill injected a parameters cell)
    assert [o["text"] for o in done.cells[-2].outputs] == ["bar 2\n"]  # a progress bar's last state, once
    assert done.cells[-1].source == "big = bytearray(64 << 20)"  # the peak-memory cell is not kept
    assert 64 < usage.peak_mib < 4096  # the kernel's own peak, which held the 64 MiB buffer
    assert 0 < usage.cpu_s < 600  # the kernel's CPU seconds (it started, imported and slept 0.15 s)
    hidden = [c.source.splitlines()[0] for c in done.cells if "hide-input" in c.metadata.get("tags", [])]
    assert hidden == ["x = 1", "# Parameters"]  # the parameters cell and papermill's injected one
    assert [p.name for p in out.parent.iterdir()] == ["out.ipynb"]  # no temporary file left behind


def test_a_chapter_is_executed_again_only_when_its_key_changes(tmp_path, monkeypatch):
    import nbformat

    from egolib import book

    monkeypatch.setattr(book, "ROOT", tmp_path)
    (tmp_path / "book").mkdir()
    (tmp_path / "inputs.txt").write_text("one")
    src = ("from pathlib import Path\nfrom egolib import paper\n"
           "print(paper.BEST_ENSEMBLE['s1'], open('inputs.txt').read())\n"
           "cache = Path('cache.txt')\nif not cache.exists():\n    cache.write_text('measured')")
    _notebook(tmp_path / "book", nbformat.v4.new_markdown_cell("# A chapter"),
              nbformat.v4.new_code_cell('preset: str = "demo"  # which\nlimit: int = 3  # its own',
                                        metadata={"tags": ["parameters"]}),
              nbformat.v4.new_code_cell(src), name="09_probe.ipynb")
    chapter = book.Chapter("09_probe", reads=("inputs.txt", "cache.txt"))  # cache.txt: written by its first run
    b = book.Book(preset="smoke")

    def status():
        return b.run_chapter(chapter, book.Step("09_probe", None))

    assert status() == "run"
    out = tmp_path / "runs" / "book" / "09_probe.ipynb"
    assert nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"] == "40.0 one\n"
    assert status() == "reused"  # its own cache counts as it was after the execution
    first, again = book.Step("09_probe", None), book.Step("09_probe", None)
    (tmp_path / "inputs.txt").write_text("one again")
    assert b.run_chapter(chapter, first) == "run" and b.run_chapter(chapter, again) == "reused"
    assert again.last_s == first.last_s > 0 and again.finished == first.finished  # the execution it reuses
    (tmp_path / "inputs.txt").write_text("two")  # a file it reads
    assert status() == "run" and status() == "reused"
    b.seed = 1  # a parameter it does not declare: not passed, not part of its key
    assert status() == "reused"
    b.preset = "demo"  # one it declares
    assert status() == "run"
    monkeypatch.setattr(book.codehash, "source_hash", lambda modules: "changed" if "paper" in modules else "x")
    assert status() == "run"  # the library code it imports changed
    out.unlink()
    assert status() == "run"


# --------------------------------------------------------------------------------------------------
# One-off runs never block the book; --jobs checked before anything runs


def test_jobs_zero_is_refused_before_any_step_runs(monkeypatch, capsys):
    from egolib import book

    monkeypatch.setattr(book, "execute", lambda *a, **k: pytest.fail("a chapter ran"))
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as err:
            book.main(["--jobs", bad])
        assert err.value.code == 2
        assert "argument --jobs" in capsys.readouterr().err


def test_a_missing_chapter_notebook_stops_the_build_before_any_step_runs(monkeypatch, capsys):
    from egolib import book

    monkeypatch.setattr(book, "CHAPTERS", book.CHAPTERS + (book.Chapter("99_not_written", after=(book.TRAIN,)),))
    monkeypatch.setattr(book, "run_steps", lambda *a, **k: pytest.fail("a step ran"))
    with pytest.raises(SystemExit) as err:
        book.main(["--preset", "smoke", "--no-html"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "book/99_not_written.ipynb is missing" in message and "git checkout -- book/99_not_written.ipynb" in message


def test_a_variant_folder_holding_another_run_is_set_aside_not_fatal(tmp_path):
    from egolib import book, runs
    from egolib.config import RunConfig

    variant = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke"})
    folder = tmp_path / variant.run_path
    assert book.set_aside_other_run(variant, tmp_path) is None  # nothing there
    # what older code left: `-p lr 0.02` trained into the variant's folder
    runs.write_json(folder / "config.json", runs.manifest(variant.to_dict() | {"lr": 0.02}))
    runs.write_text(folder / "log.csv", "stage,epoch\n1,1\n")
    moved = book.set_aside_other_run(variant, tmp_path)
    assert moved.parent == tmp_path / "runs" / "set-aside" and moved.name.startswith(variant.name + "-")
    assert not folder.exists() and (moved / "log.csv").exists()  # kept, out of the book's way
    runs.write_json(folder / "config.json", runs.manifest(variant.to_dict()))
    assert book.set_aside_other_run(variant, tmp_path) is None  # the variant's own run stays
    # today a one-off run has a folder of its own
    one_off = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke", "lr": 0.02})
    assert one_off.run_path != variant.run_path


def test_seeds_with_epic100_is_refused_before_any_step_runs(monkeypatch, capsys):
    from egolib import book

    monkeypatch.setattr(book, "run_steps", lambda *a, **k: pytest.fail("a step ran"))
    with pytest.raises(SystemExit) as err:
        book.main(["--preset", "smoke", "--dataset", "epic100", "--seeds", "0,1", "--no-html"])
    assert err.value.code == 2
    assert "--seeds works with --dataset epic55 only" in capsys.readouterr().err
