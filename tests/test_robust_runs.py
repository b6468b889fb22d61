"""Runs that fail loudly, never share a folder and never trust a corrupt file (smoke preset, one work folder)."""

import json
import os
import re
from pathlib import Path

import pytest
import torch

from egolib import runs, train
from egolib.config import RunConfig


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory shared by the module: data/synthkitchens-smoke and the smoke res34 stand-in are made
    once."""
    path = tmp_path_factory.mktemp("robust")
    old = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


def smoke(run_dir: Path, **params) -> RunConfig:
    return RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke", "device": "cpu",
                                  "run_dir": str(run_dir), **params})


# --------------------------------------------------------------------------------------------------
# 1. A diverging run stops at once, names where and why, keeps the last good checkpoint, writes no DONE


@pytest.mark.slow
def test_a_diverging_run_stops_at_once_and_keeps_the_last_good_checkpoint(workdir, monkeypatch):
    cfg = smoke(workdir / "runs" / "diverge", optimizer="sgd", lr_stage2=1e6)  # Adam's steps stay near lr in size
    steps = {"n": 0}
    real_step = train._train_step

    def counting(*args, **kwargs):
        steps["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "_train_step", counting)
    with pytest.raises(train.TrainingDiverged) as err:
        train.run(cfg, progress=False)
    message = str(err.value)
    assert re.search(r"training diverged at stage 2/3 epoch 1/1, step (\d+)/12, learning rate [0-9.e+]+: the loss "
                     r"is \S+, the gradient norm \S+\.", message), message
    assert "Lower the learning rate (lr_stage2=1e+06)" in message
    assert f"{cfg.run_path / 'checkpoint.pt'} (after stage 1 epoch 1), is kept" in message
    step = int(re.search(r"step (\d+)/12", message).group(1))
    assert steps["n"] == 12 + step  # stage 1 (12 steps) and stage 2 up to the first bad step: not one more
    ckpt = torch.load(cfg.run_path / "checkpoint.pt", weights_only=True)
    assert (ckpt["stage"], ckpt["epoch"]) == (1, 1)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (cfg.run_path / runs.DONE).exists()


def gsm(run_dir: Path, **params) -> RunConfig:
    """A one-stage run (12 steps per epoch at the smoke preset) on the module's res34 stand-in."""
    return smoke(run_dir, method="gsm", **params)


def counting_steps(monkeypatch) -> dict[str, int]:
    steps = {"n": 0}
    real_step = train._train_step

    def counting(*args, **kwargs):
        steps["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "_train_step", counting)
    return steps


@pytest.fixture(scope="module")
def reference(workdir):
    """A complete smoke GSM run, trained once."""
    cfg = gsm(workdir / "runs" / "reference")
    train.run(cfg, progress=False)
    return cfg


# --------------------------------------------------------------------------------------------------
# 2. One process per run folder, for the run's whole life


_HOLD = """
import sys, time
from egolib import runs
with runs.exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_a_second_process_on_the_same_run_folder_is_refused_at_once(workdir, monkeypatch):
    import subprocess
    import sys

    cfg = gsm(workdir / "runs" / "busy")
    env = {**os.environ, "PYTHONPATH": str(Path(runs.__file__).resolve().parent.parent)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(cfg.run_path)], stdout=subprocess.PIPE, text=True,
                              env=env)
    steps = counting_steps(monkeypatch)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(runs.FolderInUse) as err:
            train.run(cfg, progress=False)
        assert str(err.value).startswith(f"run folder {cfg.run_path} is in use by process {holder.pid}")
        with pytest.raises(runs.FolderInUse):
            train.fit(cfg, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert steps["n"] == 0 and not (cfg.run_path / "config.json").exists()  # nothing trained, nothing written


# --------------------------------------------------------------------------------------------------
# 3. Corrupt files are named, moved aside, and never trusted


@pytest.mark.slow
def test_a_complete_run_with_a_truncated_checkpoint_is_retrained(workdir, reference, monkeypatch):
    cfg = gsm(workdir / "runs" / "truncated")
    train.run(cfg, progress=False)
    path = cfg.run_path / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (cfg.run_path / ".checkpoint.pt.x1y2z3.tmp").write_bytes(data[:100])  # a write killed half-way
    assert not runs.is_complete(cfg.run_path, cfg.to_dict())
    with pytest.raises(runs.CorruptFile, match=rf"^{path} is corrupt or truncated"):
        train.models.load_model(path)
    steps = counting_steps(monkeypatch)
    train.run(cfg, progress=False)
    assert steps["n"] == 12  # trained again from the start, not "complete and current: skipped"
    aside = [p for p in cfg.run_path.glob("checkpoint.pt.corrupt-*") if p.suffix != ".sha256"]
    assert len(aside) == 1 and aside[0].stat().st_size == len(data) // 2  # moved aside, never deleted
    assert not list(cfg.run_path.glob(".*.tmp"))  # the orphan is gone
    assert runs.is_complete(cfg.run_path, cfg.to_dict())
    assert _scores(cfg) == _scores(reference)


@pytest.mark.slow
def test_done_without_metrics_is_evaluated_again_without_training(workdir, reference, monkeypatch):
    cfg = gsm(workdir / "runs" / "no-metrics")
    train.run(cfg, progress=False)
    (cfg.run_path / "metrics.json").unlink()
    steps = counting_steps(monkeypatch)
    result = train.run(cfg, progress=False)  # evaluated again, not a FileNotFoundError
    assert steps["n"] == 0 and result["s1"] == json.loads((reference.run_path / "metrics.json").read_text())["s1"]
    assert runs.is_complete(cfg.run_path, cfg.to_dict())


@pytest.mark.slow
def test_a_truncated_cached_backbone_is_moved_aside_and_trained_again(workdir, reference):
    from egolib import pretrain

    pre = pretrain.resolve(reference)
    assert pre.ready
    path = Path(pre.path)
    good = path.read_bytes()
    path.write_bytes(good[:1000])
    assert not pretrain.resolve(reference).ready  # never trusted: its hash no longer matches DONE's
    again = pretrain.ensure(reference, fit=train.fit_model, progress=False)
    assert again.ready and path.read_bytes() == good  # trained again, the same bytes (seeded)
    assert [p.stat().st_size for p in path.parent.glob("backbone.pt.corrupt-*") if p.suffix != ".sha256"] == [1000]


def _scores(cfg: RunConfig) -> dict:
    return {k: json.loads((cfg.run_path / "metrics.json").read_text())[k] for k in ("s1", "s2")}


# --------------------------------------------------------------------------------------------------
# 5. --config files: unknown keys and bad values are errors


def test_the_command_line_rejects_unknown_config_keys(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"method": "gsm", "backbone": "bninc", "preset": "smoke", "epochz": 3}))
    with pytest.raises(SystemExit) as err:
        train.main(["--config", str(path), "--no-progress"])
    assert err.value.code == 2
    assert f"{path}: unknown parameter(s) 'epochz'; valid parameters are:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# 6. A run that failed before training does not block the folder


def test_a_folder_holding_only_a_failed_runs_config_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failed = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke", "run_dir": "runs/x",
                                    "lr": 0.5})
    runs.write_json(failed.run_path / "config.json", runs.manifest(failed.to_dict()))
    cfg = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke", "run_dir": "runs/x"})
    train._check_run_folder(cfg)
    assert runs.read_json(cfg.run_path / "config.json")["lr"] == 0.01
    runs.write_text(cfg.run_path / "log.csv", "stage,epoch\n1,1\n")  # a run that trained is never overwritten
    with pytest.raises(ValueError, match=r"holds a different run \(lr: 0.01 there, 0.5 now\)"):
        train._check_run_folder(failed)


# --------------------------------------------------------------------------------------------------
# 8. Leftovers: a read-only complete data set; train_s over resumes


@pytest.mark.slow
def test_a_complete_data_set_is_read_without_its_lock(workdir, reference, monkeypatch):
    def read_only(path):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(runs, "file_lock", read_only)  # what a read-only data/ does to the lock file
    data = train.load_data(reference, progress=False)
    assert len(data.epic.train) > 0


@pytest.mark.slow
def test_train_time_adds_up_across_resumes(workdir, monkeypatch):
    cfg = gsm(workdir / "runs" / "resumed", epochs=2)
    steps = {"n": 0}
    real_step = train._train_step

    def die_in_epoch_2(*args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 15:
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "_train_step", die_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg, progress=False)
    ckpt = runs.load_torch(cfg.run_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["train_s"] > 0
    runs.save_torch(cfg.run_path / "checkpoint.pt", ckpt | {"train_s": 1000.0})  # a first process that took long
    monkeypatch.setattr(train, "_train_step", real_step)
    result = train.run(cfg, progress=False)
    resources = result["resources"]
    assert resources["train_s"] > 1000.0  # the first process counts too, not only the time since the resume
    assert resources["eval_s"] > 0 and resources["total_s"] == resources["train_s"] + resources["eval_s"]


def test_a_corrupt_data_set_manifest_is_named(tmp_path):
    from egolib import synthetic

    out = tmp_path / "synthkitchens-smoke"
    out.mkdir()
    (out / synthetic.MANIFEST).write_text('{"dataset": "SynthKitchens", "pre')  # cut off mid-write by hand
    with pytest.raises(ValueError, match=rf"^{out / synthetic.MANIFEST} is not valid JSON \(Unterminated string"):
        synthetic.generate(out, preset="smoke", progress=False)
