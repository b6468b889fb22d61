"""egolib.launch: the book's variants as Slurm jobs through submitit, run here with submitit's local executor."""

import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from egolib import launch, synthetic
from egolib.config import RunConfig


def test_time_limits_and_job_parameters():
    assert launch.time_minutes("48:00:00") == 48 * 60 and launch.time_minutes("1-00:00:30") == 24 * 60 + 1
    for bad in ("48h", "00:00:00", "1:2:3"):
        with pytest.raises(ValueError, match="time limit"):
            launch.time_minutes(bad)
    options = launch.SlurmOptions(partition="gpu", gpus_per_run=4, nodes_per_run=2, time="12:00:00")
    assert options.parameters() == {"name": "egobook", "timeout_min": 720, "nodes": 2, "tasks_per_node": 4,
                                    "gpus_per_node": 4, "slurm_partition": "gpu"}
    assert launch.SlurmOptions(gpus_per_run=0).parameters()["tasks_per_node"] == 1  # CPUs: one process
    with pytest.raises(ValueError, match="one node"):
        launch.SlurmOptions(cluster="local", nodes_per_run=2)


def test_slurm_build_submits_each_variant_and_shows_pretraining_after_training(monkeypatch):
    from egolib import book

    options = launch.SlurmOptions(folder=Path("unused"))
    b = book.Book(preset="smoke", dataset="epic100", slurm=options)
    steps = {s.name: s for s in b.steps()}
    trains = [n for n in steps if n.startswith("train ")]
    assert all(n.endswith("-smoke-epic100-s0") for n in trains) and len(trains) == len(book.variants())
    assert set(steps["02_pretrain"].after) == set(trains)  # the jobs pretrain; the chapter then renders the cache
    assert all("02_pretrain" not in steps[n].after for n in trains)
    assert steps["train gsm_egoaco-bninc-epic-smoke-epic100-s0"].after[-1] == "train gsm-bninc-epic-smoke-epic100-s0"
    assert book.Book(preset="smoke").chapter_parameters(book.ROOT / "book" / "02_pretrain.ipynb") == {
        "preset": "smoke", "seed": 0}  # EPIC-55 builds pass what they passed before
    assert b.chapter_parameters(book.ROOT / "book" / "02_pretrain.ipynb") == {
        "preset": "smoke", "seed": 0, "dataset": "epic100"}

    submitted, executed = [], []
    monkeypatch.setattr(launch, "run_slurm_job", lambda params, opts, workdir: submitted.append((params, opts)))
    monkeypatch.setattr(book, "execute", lambda notebook, output, params, title=None:
                        executed.append(output) or book.Usage(peak_mib=1.0, cpu_s=0.5))
    monkeypatch.setattr(book.runs, "write_json", lambda path, obj: None)
    params = b.run_params[0]
    b.run_training(params, book.Step("train", None))
    assert submitted == [(params, options)] and len(executed) == 1  # the job trains, the page renders after it


def _task_pids(controller_pid: int) -> list[int]:
    """The processes submitit's local controller started (its children)."""
    children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.slow
def test_slurm_path_trains_dependent_variants_and_resumes_an_interrupted_job(tmp_path):
    submitit = pytest.importorskip("submitit")
    from egolib import book

    data = synthetic.generate(tmp_path / "data", preset="smoke", layout="epic100", progress=False)
    common = {"preset": "smoke", "dataset": "epic100", "data_root": str(data), "pretrain": "scratch",
              "device": "cpu"}
    first = {"method": "tsn", "backbone": "res34", **common, "epochs": 3}  # the signal comes after epoch 1: two to go
    second = {"method": "gsm_egoaco", "backbone": "bninc", **common, "epochs_stage2": 0, "epochs_stage3": 0}
    for p in (first, second):
        p["run_dir"] = str(tmp_path / "runs" / RunConfig.from_params(p).name)
    first_run, second_run = Path(first["run_dir"]), Path(second["run_dir"])
    signalled = []

    def preempt_after_first_epoch(jobs):
        if signalled:  # only the first job
            return
        signalled.append(None)

        def watch():  # Slurm's warning signal before a preemption, sent to the job's task once epoch 1 is saved
            log = first_run / "log.csv"
            while not (log.exists() and len(pd.read_csv(log)) >= 1):
                time.sleep(0.05)
            for pid in _task_pids(int(jobs[0].job_id)):
                os.kill(pid, submitit.local.local.LocalJobEnvironment._usr_sig())
                signalled.append(pid)

        threading.Thread(target=watch, daemon=True).start()

    options = launch.SlurmOptions(folder=tmp_path / "slurm", cluster="local", gpus_per_run=0, time="00:30:00",
                                  on_submit=preempt_after_first_epoch)
    b = book.Book(preset="smoke", slurm=options)
    steps = [book.Step("train first", lambda s: b.run_training(first, s)),
             book.Step("train second", lambda s: b.run_training(second, s), after=("train first",))]
    steps = book.run_steps(steps, jobs=2)  # the driver's scheduler: the second waits for the first
    assert [s.status for s in steps] == ["run", "run"], [s.error for s in steps]

    for run in (first_run, second_run):
        assert (run / "DONE").exists() and (run / "train.ipynb").exists()  # trained by the job, then rendered
        metrics = json.loads((run / "metrics.json").read_text())
        assert set(metrics["validation"]) == {"overall", "tail", "unseen"}
    assert (second_run / "config.json").stat().st_mtime >= (first_run / "DONE").stat().st_mtime  # after the first
    assert len(signalled) == 2  # the task was signalled once
    assert pd.read_csv(first_run / "log.csv")["epoch"].tolist() == [1, 2, 3]  # each epoch trained once
    out = "".join(p.read_text() for p in (tmp_path / "slurm").glob("*_log.out"))
    err = "".join(p.read_text() for p in (tmp_path / "slurm").glob("*_log.err"))
    assert "preempted" in out + err and "Requeued" in out + err  # submitit checkpointed and requeued the job
    assert "resuming" in err  # ... which resumed from checkpoint.pt
