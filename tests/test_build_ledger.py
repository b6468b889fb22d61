"""The build's ledger (issue 28): ``runs/book/build.json``, the plan printed before a build, and its estimate.

Fake steps stand in for notebooks: the scheduler, the ledger and the estimates are tested without a kernel.
"""

import time
from datetime import datetime

import pytest

from egolib import book, runs
from egolib.config import RunConfig


def _busy(cpu_s: float) -> None:
    """Spend ``cpu_s`` CPU seconds in this thread."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def _fake_steps() -> list[book.Step]:
    """A run step that computes, a reused one, a notebook that fails and a step that needs it (blocked)."""

    def compute(step):
        _busy(0.05)
        step.peak_mib, step.last_s, step.finished = 300.0, 0.06, "2026-12-06T10:00:00"
        return "run"

    def reuse(step):
        step.peak_mib, step.last_s, step.last_cpu_s, step.finished = 800.0, 1200.0, 2300.0, "2026-12-01T09:00:00"
        return "reused"

    def fail(step):
        step.child_cpu_s = None  # as a notebook step does before its kernel starts; a failed kernel never reports
        raise RuntimeError("cell 3 raised")

    return [book.Step("01_data_prep", compute),
            book.Step("train a", reuse, ("01_data_prep",), will_run=lambda: False),
            book.Step("04_gsm_gates", fail, ("train a",)),
            book.Step("05_lsta_attention", lambda s: "run", ("04_gsm_gates",)),
            book.Step("results and run index", lambda s: "run", ("05_lsta_attention",), soft=True)]


def test_the_scheduler_records_each_steps_start_end_wall_and_cpu():
    steps = {s.name: s for s in book.run_steps(_fake_steps(), jobs=2)}
    run, reused, failed, blocked = (steps[n] for n in ("01_data_prep", "train a", "04_gsm_gates",
                                                         "05_lsta_attention"))
    assert run.status == "run" and run.cpu_s >= 0.05  # the thread's CPU, measured
    assert run.wall_s >= 0.04 and datetime.fromisoformat(run.started) <= datetime.fromisoformat(run.ended)
    assert datetime.fromisoformat(run.ended) <= datetime.fromisoformat(failed.started)  # it waited for 01
    assert reused.status == "reused" and reused.cpu_s < 0.05
    assert failed.status == "failed" and failed.cpu_s is None and "cell 3 raised" in failed.error
    assert blocked.status == "blocked" and blocked.started == "" and blocked.cpu_s is None


def test_build_json_has_every_step_run_reused_failed_and_blocked(tmp_path):
    steps = book.run_steps(_fake_steps(), jobs=1)
    estimate = book.Estimate(1800.0, "ledger", "each step's wall time in the last build")
    options = {"preset": "demo", "seed": 0, "seeds": [0], "dataset": "epic55", "data_root": None, "jobs": 1,
               "launcher": "local", "html": True}
    path = tmp_path / "runs" / "book" / "build.json"
    runs.write_json(path, book.build_ledger(steps, "2026-12-06T10:00:00+00:00", "2026-12-06T10:00:01+00:00",
                                            1.25, options, estimate))
    ledger = runs.read_json(path)
    assert [p.name for p in path.parent.iterdir()] == ["build.json"]  # written atomically: no temporary file left
    assert ledger["preset"] == "demo" and ledger["jobs"] == 1 and ledger["wall_s"] == 1.25
    assert ledger["start"] == "2026-12-06T10:00:00+00:00" and ledger["end"] == "2026-12-06T10:00:01+00:00"
    assert ledger["all_run_in_this_build"] is False
    assert ledger["counts"] == {"run": 2, "reused": 1, "failed": 1, "blocked": 1}
    assert ledger["estimate"] == {"seconds": 1800.0, "source": "ledger",
                                  "note": "each step's wall time in the last build"}
    assert ledger["peak_rss_mib"] > 10  # this test process at least
    entries = {e["name"]: e for e in ledger["steps"]}
    assert list(entries) == [s.name for s in steps]
    fields = {"name", "status", "error", "wall_s", "cpu_s", "peak_rss_mib", "start", "end", "executed"}
    assert all(set(e) == fields for e in entries.values())
    run = entries["01_data_prep"]
    assert run["status"] == "run" and run["cpu_s"] >= 0.05 and run["peak_rss_mib"] == 300.0
    assert run["executed"] == {"wall_s": 0.06, "cpu_s": None, "peak_rss_mib": 300.0,
                               "finished": "2026-12-06T10:00:00"}
    reused = entries["train a"]
    assert reused["status"] == "reused" and reused["peak_rss_mib"] is None  # no process in this build
    assert reused["executed"] == {"wall_s": 1200.0, "cpu_s": 2300.0, "peak_rss_mib": 800.0,
                                  "finished": "2026-12-01T09:00:00"}  # the earlier execution it reuses
    failed = entries["04_gsm_gates"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: cell 3 raised"
    assert failed["cpu_s"] is None and failed["executed"] is None and failed["start"] and failed["end"]
    blocked = entries["05_lsta_attention"]
    assert blocked["status"] == "blocked" and blocked["start"] is None and blocked["error"] == "needs 04_gsm_gates"
    assert ledger["cpu_s"] == pytest.approx(sum(e["cpu_s"] or 0 for e in entries.values()), abs=0.01)
    pages = entries["results and run index"]  # no notebook: the execution that produced it is this build's
    assert pages["status"] == "run" and pages["executed"]["finished"] == pages["end"]
    summary = book.ledger_summary(ledger)
    assert "every step run in this build: no (1 reused, 1 failed, 1 blocked)" in summary
    assert "estimated 30 min" in summary


def test_all_run_in_this_build_only_when_every_step_ran():
    steps = book.run_steps([book.Step("a", lambda s: "run"), book.Step("b", lambda s: "run", ("a",))])
    ledger = book.build_ledger(steps, "s", "e", 0.1, {"jobs": 1}, book.Estimate(None, "none", "no estimate"))
    assert ledger["all_run_in_this_build"] is True
    assert "every step run in this build: yes" in book.ledger_summary(ledger)


# a hand-written ledger of an earlier build
PREVIOUS = {
    "preset": "demo", "dataset": "epic55", "jobs": 2, "end": "2026-12-05T12:00:00+00:00", "host": "laptop",
    "steps": [
        {"name": "01_data_prep", "status": "run", "wall_s": 600.0, "executed": {"wall_s": 600.0}},
        {"name": "train a", "status": "reused", "wall_s": 0.3, "executed": {"wall_s": 1200.0}},
        {"name": "train b", "status": "failed", "wall_s": 50.0, "executed": None},
        {"name": "html", "status": "run", "wall_s": 60.0, "executed": {"wall_s": 60.0}},
    ],
}
OPTIONS = {"preset": "demo", "dataset": "epic55", "jobs": 2}


def test_the_estimate_comes_from_the_last_builds_ledger():
    to_run = ["01_data_prep", "train a", "train b", "train c"]
    estimate = book.estimate_from_ledger(PREVIOUS, to_run, jobs=2)
    # 01 ran (600 s); train a was reused, from an execution of 1200 s; train b failed, train c is new: not timed
    assert estimate.source == "ledger" and estimate.seconds == 1200.0  # (600 + 1200) / 2 < the longest, 1200
    assert "not counted: train b, train c" in estimate.note and "2026-12-05T12:00:00" in estimate.note
    assert book.estimate_from_ledger(PREVIOUS, to_run, jobs=1).seconds == 1800.0
    assert book.estimate_from_ledger(PREVIOUS, ["01_data_prep", "html"], jobs=1).seconds == 660.0
    assert book.estimate_from_ledger(PREVIOUS, ["train c"], jobs=1) is None  # it times none of them


def _planned_steps(names_to_run, names_reused):
    steps = [book.Step(n, None) for n in [*names_to_run, *names_reused]]
    return steps, {n: n in names_to_run for n in [*names_to_run, *names_reused]}


def test_the_plan_and_its_estimate_are_printed_before_the_build():
    steps, planned = _planned_steps(["01_data_prep", "html"], ["train a"])
    estimate = book.build_estimate(steps, planned, OPTIONS, PREVIOUS, None, None)
    assert estimate.seconds == 600.0  # max(660 / 2, 600)
    text = book.plan_text(steps, planned, estimate, jobs=2)
    assert "The build: 3 steps, 2 at a time." in text
    assert "to run (2): 01_data_prep, html" in text and "to reuse, unchanged (1): train a" in text
    assert "estimate: about 10 min on this machine, from each step's wall time in the last build" in text


def test_without_a_usable_ledger_or_benchmark_there_is_no_estimate():
    steps, planned = _planned_steps(["01_data_prep"], [])
    none = book.build_estimate(steps, planned, OPTIONS, None, None, None)
    assert none.seconds is None and none.note == "no estimate: no earlier build"
    assert "  no estimate: no earlier build" in book.plan_text(steps, planned, none, jobs=1).splitlines()
    other = book.build_estimate(steps, planned, {**OPTIONS, "preset": "smoke"}, PREVIOUS, None, None)
    assert other.seconds is None and "the last build was preset demo" in other.note  # another preset's ledger
    nothing = book.build_estimate(steps, {"01_data_prep": False}, OPTIONS, None, None, None)
    assert nothing.seconds == 0.0 and "every step is reused" in nothing.note


def _bench_row(method, backbone, preset, train, infer):
    return {"method": method, "backbone": backbone, "preset": preset, "train_clips_per_s": train,
            "infer_clips_per_s": infer}


BENCH = {"meta": {"date": "2026-12-01T08:00:00", "threads": 1},
         "variants": [_bench_row("gsm", "bninc", "smoke", 10.0, 30.0),
                      _bench_row("egoaco", "res34", "smoke", 5.0, 20.0),
                      _bench_row("gsm", "bninc", "demo", 1.0, 3.0)]}
SEGMENTS = {"train": 100, "s1": 10, "s2": 20}


def test_without_a_ledger_the_estimate_comes_from_the_benchmark():
    gsm = {"method": "gsm", "backbone": "bninc", "preset": "smoke"}
    egoaco = {"method": "egoaco", "backbone": "res34", "preset": "smoke"}
    configs = {"train gsm": RunConfig.from_params(gsm), "train egoaco": RunConfig.from_params(egoaco)}
    estimate = book.estimate_from_benchmark(BENCH, configs, SEGMENTS, jobs=1, others=["html"])
    # smoke: GSM 1 epoch, 100 clips at 10/s + 2 test clips x 30 segments at 30/s = 12 s;
    # EgoACO 1 + 1 + 1 epochs, 300 clips at 5/s + 60 test clips at 20/s = 63 s
    assert estimate.source == "benchmark" and estimate.seconds == pytest.approx(75.0)
    assert "not counted: html" in estimate.note and "100 training segments, 30 test segments" in estimate.note
    assert book.estimate_from_benchmark(BENCH, configs, SEGMENTS, jobs=2, others=[]).seconds == pytest.approx(63.0)
    res152 = {"train res152": RunConfig.from_params({"method": "gsm", "backbone": "res152", "preset": "smoke"})}
    assert book.estimate_from_benchmark(BENCH, res152, SEGMENTS, jobs=1, others=[]) is None  # not benchmarked

    steps = [book.Step("01_data_prep", None), book.Step("train gsm", None, run_params=gsm),
             book.Step("train egoaco", None, run_params=egoaco)]
    planned = {"01_data_prep": False, "train gsm": True, "train egoaco": True}
    chosen = book.build_estimate(steps, planned, {**OPTIONS, "preset": "smoke", "jobs": 1}, None, BENCH, SEGMENTS)
    assert chosen.source == "benchmark" and chosen.seconds == pytest.approx(75.0)
    other = book.build_estimate(steps, planned, {**OPTIONS, "preset": "smoke", "jobs": 1},
                                {**PREVIOUS, "preset": "demo"}, BENCH, SEGMENTS)
    assert other.source == "benchmark"  # the last build was another preset: the benchmark instead
    smoke = {**OPTIONS, "preset": "smoke", "jobs": 1}
    chapters = book.build_estimate(steps, {"01_data_prep": True, "train gsm": False, "train egoaco": False}, smoke,
                                   None, BENCH, SEGMENTS)
    assert chapters.seconds is None and "the benchmark times training runs, and none is to run" in chapters.note
    demo_only = {**BENCH, "variants": BENCH["variants"][2:]}
    unmeasured = book.build_estimate(steps, planned, smoke, None, demo_only, SEGMENTS)
    assert unmeasured.seconds is None and "the benchmark has no smoke runs" in unmeasured.note


def test_dataset_segments_are_synthkitchens_plan():
    assert book.dataset_segments("demo", 0, "epic55") == {"train": 720, "s1": 1008, "s2": 1008}


def test_plan_asks_each_step_and_counts_an_unanswerable_one_as_run():
    def broken():
        raise OSError("unreadable key")

    steps = [book.Step("a", None, will_run=lambda: False), book.Step("b", None, will_run=broken),
             book.Step("html", None)]
    assert book.plan(steps) == {"a": False, "b": True, "html": True}


def test_a_chapter_is_planned_to_run_when_its_key_is_stale_or_a_run_will_train(tmp_path, monkeypatch):
    import nbformat

    monkeypatch.setattr(book, "ROOT", tmp_path)
    (tmp_path / "book").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter"),
                                         nbformat.v4.new_code_cell('preset: str = "demo"',
                                                                   metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(open('inputs.txt').read())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "book" / "09_probe.ipynb")
    (tmp_path / "inputs.txt").write_text("one")
    chapter = book.Chapter("09_probe", reads=("inputs.txt",))
    b = book.Book(preset="smoke")
    assert b.chapter_will_run(chapter)  # never executed
    output = tmp_path / "runs" / "book" / "09_probe.ipynb"
    output.parent.mkdir(parents=True)
    output.write_text("{}")  # as if executed, with the key of today's inputs
    key = b.chapter_key(chapter, b.chapter_parameters(tmp_path / "book" / "09_probe.ipynb"))
    runs.write_json(book.key_path(output), {"key": key})
    assert not b.chapter_will_run(chapter)
    (tmp_path / "inputs.txt").write_text("two")
    assert b.chapter_will_run(chapter)  # a file it reads changed
    (tmp_path / "inputs.txt").write_text("one")
    reader = book.Chapter("09_probe", reads=("inputs.txt",), reads_runs=True)
    assert b.chapter_will_run(reader)  # the runs under tmp_path are not trained: they will be, so it runs again


def test_main_prints_the_plan_and_writes_build_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(book, "ROOT", tmp_path)
    monkeypatch.setattr(book.Book, "steps", lambda self: _fake_steps())
    assert book.main(["--preset", "smoke", "--no-html"]) == 1  # a step failed
    out = capsys.readouterr().out
    assert "The build: 5 steps, 1 at a time." in out
    assert "to reuse, unchanged (1): train a" in out and "no estimate: no earlier build" in out
    ledger = runs.read_json(tmp_path / book.LEDGER)
    assert ledger["preset"] == "smoke" and ledger["html"] is False and not ledger["all_run_in_this_build"]
    assert {e["name"]: e["status"] for e in ledger["steps"]}["04_gsm_gates"] == "failed"
    assert "every step run in this build: no (1 reused, 1 failed, 1 blocked)" in out
    assert "ledger: runs/book/build.json" in out

    assert book.main(["--preset", "smoke", "--no-html"]) == 1  # again: estimated from the ledger just written
    out = capsys.readouterr().out
    assert "estimate: about" in out and "from each step's wall time in the last build" in out
    assert book.main(["--preset", "demo", "--no-html"]) == 1  # another preset: its ledger does not count
    assert "no estimate: no earlier build (the last build was preset smoke)" in capsys.readouterr().out
