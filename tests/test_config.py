"""RunConfig: validation at the notebook boundary and preset defaults."""

import dataclasses
import json
import re

import pytest

from egolib import config
from egolib.config import BACKBONES, VALID_BACKBONES, RunConfig


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        RunConfig.from_params({"backbone": "res999"})
    assert str(err.value) == "unknown backbone 'res999'; choose one of bninc, incv3, res34, res101, res152, r2p1d34"


@pytest.mark.parametrize("name", ["method", "pretrain", "preset", "device", "test_crop", "egoaco_clone"])
def test_every_choice_field_rejects_an_invalid_value(name):
    with pytest.raises(ValueError, match=f"unknown {name} 'nope'; choose one of"):
        RunConfig.from_params({name: "nope"})


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'bakbone'; valid parameters are: method, backbone"):
        RunConfig.from_params({"bakbone": "res34"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", "ten"), ("epochs", 2.5), ("epochs", True), ("lr", "fast"), ("backbone", 3), ("seed", None)],
)
def test_wrong_type_is_named(name, value):
    with pytest.raises(ValueError, match=f"parameter '{name}' expects"):
        RunConfig.from_params({name: value})


def test_int_is_accepted_where_a_float_is_expected():
    assert RunConfig.from_params({"lr": 1, "preset": "smoke"}).lr == 1.0


def test_explicit_parameter_beats_the_preset():
    smoke = RunConfig.from_params({"preset": "smoke"})
    assert smoke.width == 0.125 and smoke.epochs == 1
    mine = RunConfig.from_params({"preset": "smoke", "width": 0.5, "epochs": 3})
    assert mine.width == 0.5 and mine.epochs == 3 and mine.num_segments == smoke.num_segments


def test_presets_fill_every_optional_field():
    for preset in ("smoke", "demo"):
        cfg = RunConfig.from_params({"preset": preset})
        missing = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is None]
        assert missing in ([], ["data_root"], ["data_root", "run_dir"], ["run_dir"]), missing
    paper = RunConfig.from_params({"preset": "paper", "data_root": "epic", "method": "gsm", "backbone": "incv3"})
    assert (paper.width, paper.input_size, paper.num_segments, paper.epochs) == (1.0, 229, 16, 60)
    assert paper.pretrain == "imagenet" and paper.test_crop == "full" and paper.warmup_epochs == 10


def test_report_pretraining_and_protocol_per_backbone():
    assert RunConfig.from_params({"method": "gsm", "backbone": "bninc"}).pretrain == "epic"
    r2p1d = RunConfig.from_params({"method": "egoaco", "backbone": "r2p1d34"})
    assert r2p1d.pretrain == "ig65m_kinetics" and r2p1d.snippet_length == 3 and r2p1d.test_crop == "centre"
    egoaco = RunConfig.from_params({"preset": "paper", "data_root": "x", "backbone": "res152"})
    assert (egoaco.num_segments, egoaco.epochs, egoaco.epochs_stage2, egoaco.epochs_stage3) == (20, 60, 60, 30)
    assert (egoaco.lr, egoaco.lr_stage2, egoaco.lr_stage3, egoaco.stages) == (0.01, 0.01, 1e-4, 3)


def test_paper_preset_needs_data_root():
    with pytest.raises(ValueError, match="set data_root"):
        RunConfig.from_params({"preset": "paper"})


def test_method_backbone_pairs():
    for method, backbones in VALID_BACKBONES.items():
        for backbone in BACKBONES:
            params = {"method": method, "backbone": backbone, "preset": "smoke"}
            if backbone in backbones:
                assert RunConfig.from_params(params).backbone == backbone
            else:
                with pytest.raises(ValueError, match=f"does not take backbone '{backbone}'"):
                    RunConfig.from_params(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"width": 0.0}, "width must be"),
        ({"dropout": 1.0}, "dropout must be"),
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"backbone": "incv3", "input_size": 64}, "InceptionV3 needs input_size >= 75"),
    ],
)
def test_ranges(params, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_params({"preset": "smoke", **params})


def test_name_paths_and_json_round_trip(tmp_path):
    cfg = RunConfig.from_params({"backbone": "res152", "preset": "smoke", "seed": 3})
    assert cfg.name == "egoaco-res152-imagenet-smoke-s3"
    assert str(cfg.run_path) == "runs/egoaco-res152-imagenet-smoke-s3"
    assert str(cfg.dataset_path) == "data/synthkitchens-smoke-s3"  # the draw of the run's seed
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert RunConfig.from_json(path) == cfg


def test_config_is_frozen():
    cfg = RunConfig.from_params({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_dataset_choice_names_the_run_and_data_folders():
    ek55 = RunConfig.from_params({"preset": "smoke", "method": "gsm", "backbone": "bninc"})
    ek100 = RunConfig.from_params({"preset": "smoke", "method": "gsm", "backbone": "bninc", "dataset": "epic100"})
    assert ek55.dataset == "epic55" and ek55.name == "gsm-bninc-epic-smoke-s0"  # EPIC-55 names carry no dataset
    assert ek100.name == "gsm-bninc-epic-smoke-epic100-s0" and ek100.run_path != ek55.run_path
    assert str(ek55.dataset_path) == "data/synthkitchens-smoke-s0"
    assert str(ek100.dataset_path) == "data/synthkitchens-epic100-smoke-s0"
    with pytest.raises(ValueError, match="unknown dataset 'epic200'; choose one of epic55, epic100"):
        RunConfig.from_params({"dataset": "epic200"})
    with pytest.raises(ValueError, match="real epic100 frames: set data_root"):
        RunConfig.from_params({"preset": "paper", "dataset": "epic100"})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": -1.0}, "lr must be a finite learning rate > 0, got -1.0"),
        ({"lr": float("nan")}, "lr must be a finite learning rate > 0, got nan"),
        ({"lr_stage2": 0.0}, "lr_stage2 must be a finite learning rate > 0"),
        ({"lr_stage3": float("inf")}, "lr_stage3 must be a finite learning rate > 0"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"momentum": -0.1}, r"momentum must be in \[0, 1\)"),
        ({"weight_decay": -1e-4}, "weight_decay must be finite and >= 0"),
        ({"clip_grad": float("nan")}, "clip_grad must be finite and >= 0"),
        ({"seed": -1}, r"seed must be in \[0, 2\*\*63\)"),
    ],
)
def test_every_numeric_parameter_has_a_range(params, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_params({"preset": "smoke", **params})


def test_backbone_pretrain_pairs():
    with pytest.raises(ValueError) as err:
        RunConfig.from_params({"method": "gsm", "backbone": "bninc", "pretrain": "ig65m_kinetics"})
    assert str(err.value) == ("backbone 'bninc' does not take pretrain 'ig65m_kinetics'; "
                              "choose one of imagenet, epic, scratch")
    with pytest.raises(ValueError, match="choose one of ig65m_kinetics, epic, scratch"):
        RunConfig.from_params({"method": "egoaco", "backbone": "r2p1d34", "pretrain": "imagenet"})
    for backbone, pretrains in config.VALID_PRETRAINS.items():
        for pretrain in pretrains:
            cfg = RunConfig.from_params({"method": "tsn", "backbone": backbone, "pretrain": pretrain})
            assert cfg.pretrain == pretrain
    for backbone in config.BACKBONES:  # every default (the report's choice) is valid
        cfg = RunConfig.from_params({"method": "tsn", "backbone": backbone})
        assert cfg.pretrain in config.VALID_PRETRAINS[backbone]


# --------------------------------------------------------------------------------------------------
# Run folder names never collide across data roots or hyperparameters


def test_run_names_tell_data_roots_and_non_default_hyperparameters_apart(tmp_path, monkeypatch):
    base = {"method": "gsm", "backbone": "bninc", "preset": "smoke"}
    default = RunConfig.from_params(base)
    assert default.name == "gsm-bninc-epic-smoke-s0"  # the embedded data and the preset's values: the short name
    explicit = RunConfig.from_params({**base, "lr": 0.01, "epochs": 1, "device": "cpu", "num_workers": 0})
    assert explicit.name == default.name  # the preset's own values, and where it runs, change nothing
    assert RunConfig.from_params({**base, "lr": 0.02}).name == "gsm-bninc-epic-smoke-s0-lr=0.02"
    assert RunConfig.from_params({**base, "lr": 1e-5, "epochs": 3}).name == "gsm-bninc-epic-smoke-s0-epochs=3-lr=1e-05"
    many = RunConfig.from_params({**base, "lr": 0.02, "momentum": 0.5, "weight_decay": 0.1, "dropout": 0.2,
                                  "clip_grad": 3.0})
    assert re.fullmatch(r"gsm-bninc-epic-smoke-s0-h=[0-9a-f]{8}", many.name)
    monkeypatch.chdir(tmp_path)
    a = RunConfig.from_params({**base, "data_root": "EPIC_A"})
    b = RunConfig.from_params({**base, "data_root": "EPIC_B"})
    assert re.fullmatch(r"gsm-bninc-epic-smoke-s0-data=[0-9a-f]{8}", a.name)
    assert len({a.run_path, b.run_path, default.run_path}) == 3
    assert RunConfig.from_params({**base, "data_root": str(tmp_path / "EPIC_A")}).name == a.name  # one root, one name
    assert config.data_tag(default) == "" and config.data_tag(a) == a.name.rsplit("-", 1)[1]


# --------------------------------------------------------------------------------------------------
# Config files are read as strictly as the notebooks' parameters


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"method": "gsm", "backbone": "bninc", "epochz": 3}, "unknown parameter(s) 'epochz'"),
        ({"method": "egoaco", "lr_stage_2": 0.1}, "unknown parameter(s) 'lr_stage_2'"),
        ({"method": "gsm", "lr": "fast"}, "parameter 'lr' expects float or None, got str 'fast'"),
        ({"method": "gsm", "lr": -1}, "lr must be a finite learning rate > 0"),
    ],
)
def test_config_files_reject_unknown_keys_and_bad_values(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as err:
        RunConfig.from_json(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_a_corrupt_config_file_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"method": "gsm", ')
    with pytest.raises(ValueError, match=rf"^{path} is not valid JSON \(Expecting property name"):
        RunConfig.from_json(path)


def test_a_run_config_json_keeps_its_bookkeeping_keys(tmp_path):
    from egolib import runs

    cfg = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke"})
    runs.write_json(tmp_path / "config.json", runs.manifest(cfg.to_dict()))
    assert RunConfig.from_json(tmp_path / "config.json") == cfg


@pytest.mark.parametrize("preset", ["smoke", "demo", "paper"])
def test_every_preset_keeps_the_reports_learning_rate_ratios(preset):
    """The paper preset trains with the report's SGD learning rates; demo and smoke train EgoACO with Adam (a named
    departure, chosen on the validation split) at a tenth of them, keeping the report's ratios between stages."""
    data_root = "EPIC" if preset == "paper" else None
    cfg = RunConfig.from_params({"method": "egoaco", "preset": preset, "data_root": data_root})
    scale = 1.0 if preset == "paper" else 0.1
    assert cfg.optimizer == ("sgd" if preset == "paper" else "adam")
    assert (cfg.lr, cfg.lr_stage2, cfg.lr_stage3) == pytest.approx((0.01 * scale, 0.01 * scale, 1e-4 * scale))
    gsm = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": preset, "data_root": data_root})
    assert (gsm.optimizer, gsm.lr) == ("sgd", 0.01)
