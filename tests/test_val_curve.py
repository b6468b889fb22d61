"""Validation curves (``val_curve``): the validation split carved from the training videos, scored after every
epoch; never a test split."""

import json

import pytest

from egolib import synthetic, train
from egolib.config import RunConfig


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory holding the SynthKitchens smoke draw and the validation set carved from it."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("val_curve")
        mp.chdir(path)
        synthetic.main(["--what", "validation", "--preset", "smoke"])
        yield path


def smoke(workdir, **params) -> RunConfig:
    return RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke", "pretrain": "scratch",
                                  "device": "cpu", "test_clips": 1, **params})


def test_the_command_line_carves_the_validation_set_where_runs_find_it(workdir):
    val = synthetic.validation_path("smoke")
    assert synthetic.is_validation_set(val)
    assert not synthetic.is_validation_set(synthetic.synthkitchens_path("smoke", 0))
    marker = json.loads((val / synthetic.VALIDATION_MARKER).read_text())
    assert marker["train_segments"] + marker["validation_segments"] == len(
        train.load_data(smoke(workdir)).epic.train)


def test_every_epoch_logs_the_validation_top1_and_the_last_equals_the_evaluation(workdir):
    cfg = smoke(workdir, data_root=str(synthetic.validation_path("smoke")), val_curve=True,
                run_dir=str(workdir / "runs" / "curve"))
    result = train.run(cfg, progress=False)
    log = train.read_log(cfg.run_path)
    assert len(log) == cfg.epochs + cfg.epochs_stage2 + cfg.epochs_stage3
    for task in ("verb", "noun", "action"):
        assert log[f"val_{task}"].between(0, 1).all()
        # the last epoch's checkpoint is what the run evaluates, with the same single clip per segment
        assert log[f"val_{task}"].iloc[-1] == pytest.approx(result["s1"][task]["top1"])


def test_the_test_splits_are_refused(workdir):
    cfg = smoke(workdir, val_curve=True, run_dir=str(workdir / "runs" / "refused"))
    with pytest.raises(ValueError, match="carved from its training videos"):
        train.fit(cfg, progress=False)
    assert not (cfg.run_path / "checkpoint.pt").exists()
