"""egolib.convergence: a recipe's study on the carved validation set, recorded where the run page finds it."""

import pandas as pd
import pytest

from egolib import convergence, synthetic, train
from egolib.config import RunConfig


def test_the_plateau_is_where_the_smoothed_curve_comes_within_a_point_of_its_best():
    assert convergence.plateau_epoch([0.1, 0.2, 0.3, 0.4, 0.5]) == 5  # still improving at the end
    assert convergence.plateau_epoch([0.1, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]) == 5  # running mean reaches 0.6 at 5
    assert convergence.plateau_epoch([0.2, 0.6, 0.6, 0.6, 0.6, 0.6], tolerance=0.1) == 4  # mean 0.47, 0.6


def test_a_study_trains_the_same_recipe_on_the_carved_validation_set():
    cfg = RunConfig.from_params({"backbone": "res34", "preset": "demo", "epochs": 20})
    study = convergence.study_config(cfg)
    assert study.data_root == str(synthetic.validation_path("demo", 0)) and study.val_curve
    assert (study.epochs, study.lr, study.batch_size) == (20, cfg.lr, cfg.batch_size)
    assert convergence.curve_path(cfg).name == f"{cfg.name}.csv"
    with pytest.raises(ValueError, match="convergence studies carve the embedded SynthKitchens draw"):
        convergence.study_config(RunConfig.from_params({"backbone": "res34", "data_root": "elsewhere"}))


def test_a_smoke_study_records_training_and_validation_curves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(convergence, "STUDIES", tmp_path / "convergence")
    cfg = RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke", "pretrain": "scratch",
                                 "device": "cpu"})
    curves = convergence.run_study(cfg, progress=False)
    recorded = convergence.read_curves(cfg)
    assert recorded is not None and len(recorded) == len(curves) == 3  # one epoch per stage at smoke
    pd.testing.assert_frame_equal(recorded, train.read_log(convergence.study_config(cfg).run_path))
    table = convergence.summary(recorded)
    assert list(table.index) == ["verb", "noun", "action"]
    assert list(table["validation (last)"]) == pytest.approx([100 * recorded[f"val_{t}"].iloc[-1]
                                                              for t in convergence.TASKS])
    # another recipe's study stays in its run folder: convergence/ holds the presets' recipes only
    other = RunConfig.from_params({**{k: getattr(cfg, k) for k in ("method", "backbone", "preset", "pretrain")},
                                   "device": "cpu", "dropout": 0.2})
    convergence.run_study(other, progress=False)
    assert convergence.read_curves(other) is None


def test_the_recorded_studies_are_of_the_current_recipes():
    """Each CSV in convergence/ is named after a run whose preset recipe has exactly its epochs (a changed recipe
    needs a new study), and the demo EgoACO recipe has one."""
    recorded = sorted(convergence.STUDIES.glob("*.csv"))
    assert convergence.STUDIES / "egoaco-res34-imagenet-demo-s0.csv" in recorded
    for path in recorded:
        method, backbone, pretrain, preset, seed = path.stem.split("-")
        cfg = RunConfig.from_params({"method": method, "backbone": backbone, "pretrain": pretrain, "preset": preset,
                                     "seed": int(seed.removeprefix("s"))})
        assert cfg.name == path.stem
        curves = convergence.read_curves(cfg)
        assert len(curves) == cfg.epochs + cfg.epochs_stage2 + cfg.epochs_stage3
        peak = curves.groupby("stage")["lr"].max()  # each stage's peak learning rate, reached after its warm-up
        stages = zip((cfg.lr, cfg.lr_stage2, cfg.lr_stage3), (cfg.epochs, cfg.epochs_stage2, cfg.epochs_stage3),
                     strict=True)
        assert list(peak) == pytest.approx([lr for lr, e in stages if e])  # a stage of 0 epochs is skipped
        assert curves[[f"val_{t}" for t in convergence.TASKS]].notna().all().all()
