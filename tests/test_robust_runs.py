"""Runs that fail loudly, never share a folder and never trust a corrupt file (smoke preset, one work folder)."""

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
    cfg = smoke(workdir / "runs" / "diverge", lr_stage2=1e6)
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
