"""egolib.weights: the shipped stand-ins match their manifest, a changed or missing file is refused by name, the
retraining command writes loadable files and manifest entries (and resumes after a kill), and runs that start from
a shipped file name it and never train a stand-in in its place."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from egolib import backbones, pretrain, runs, synthetic, train, weights
from egolib.config import RunConfig

MIB = 2**20


@pytest.fixture(scope="module")
def smoke_weights(tmp_path_factory):
    """res34 and r2p1d34 stand-ins retrained at the smoke size by the command line: ``(folder, state folder)``."""
    root = tmp_path_factory.mktemp("weights")
    out, state = root / "weights", root / "state"
    pretrain.main(["train", "--backbone", "res34,r2p1d34", "--preset", "smoke", "--out", str(out),
                  "--state-dir", str(state)])
    return out, state


def test_every_shipped_file_matches_its_manifest_entry():
    manifest = weights.read_manifest()
    for name, entry in manifest.items():
        path = weights.SHIPPED_DIR / name
        assert weights.verified(path, entry) == path
        assert path.stat().st_size == entry["bytes"] and runs.sha256_file(path) == entry["sha256"]
        log = weights.SHIPPED_DIR / entry["log"]
        assert runs.sha256_file(log) == entry["log_sha256"]
        assert set(weights.ENTRY_FIELDS) <= set(entry) <= set(weights.ENTRY_FIELDS + weights.OPTIONAL_FIELDS)
        assert (entry["width"], entry["input_size"]) == weights.demo_shape(entry["backbone"])
        assert len(pd.read_csv(log)) == entry["recipe"]["epochs"]
        assert entry["recipe"] == weights.recipe_of("demo", entry["backbone"])  # what `make weights` would train
    assert weights.verify_all() == []
    assert sum(e["bytes"] for e in manifest.values()) <= 40 * MIB  # all shipped weights together


def test_the_retrain_command_writes_a_loadable_file_and_its_manifest_entry(smoke_weights):
    out, _ = smoke_weights
    manifest = weights.read_manifest(out)
    assert set(manifest) == {weights.file_name(b, *weights.demo_shape(b, "smoke")) for b in ("res34", "r2p1d34")}
    for name, entry in manifest.items():
        assert set(weights.ENTRY_FIELDS) <= set(entry) <= set(weights.ENTRY_FIELDS + weights.OPTIONAL_FIELDS)
        assert entry["file"] == name
        assert weights.verified(out / name, entry) == out / name
        state = torch.load(out / name, weights_only=True)
        assert {v.dtype for k, v in state.items() if v.is_floating_point() and "running" not in k} == {torch.float16}
        assert {v.dtype for k, v in state.items() if k.endswith(("running_mean", "running_var"))} == {torch.float32}
        net = backbones.build_backbone(entry["backbone"], width=entry["width"], weights=out / name)
        assert all(p.dtype == torch.float32 for p in net.parameters())  # half on disk, float32 once loaded
        assert torch.equal(net.state_dict()["fc.weight"], state["fc.weight"].float())
        log = pd.read_csv(out / entry["log"])
        assert list(log["epoch"]) == list(range(1, entry["recipe"]["epochs"] + 1))
        assert 0.0 <= entry["held_out_top1"] <= 1.0 and entry["held_out_items"] > 0
    motion = manifest[weights.file_name("r2p1d34", 0.125, 64)]
    assert motion["recipe"]["window"] == 3
    # The motion stand-in also learns which object moves: its second task, logged and held out like the first.
    assert motion["classes"] == list(synthetic.MOTIONS) and "other_tasks" not in manifest[weights.file_name(
        "res34", *weights.demo_shape("res34", "smoke"))]
    objects = motion["other_tasks"]["object"]
    assert objects["classes"] == [c.name for c in synthetic.object_classes()]
    assert 0.0 <= objects["held_out_top1"] <= 1.0
    assert {"acc_object", "val_acc_object"} <= set(pd.read_csv(out / motion["log"]).columns)


def test_a_changed_byte_or_a_missing_file_is_refused_by_name(smoke_weights, tmp_path):
    out, _ = smoke_weights
    name, entry = next(iter(weights.read_manifest(out).items()))
    copy = tmp_path / name
    data = bytearray((out / name).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one changed byte
    copy.write_bytes(bytes(data))
    with pytest.raises(weights.WeightFileError, match="does not match.*git checkout -- weights/") as err:
        weights.verified(copy, entry)
    assert name in str(err.value) and "make weights" in str(err.value)
    with pytest.raises(weights.WeightFileError, match="is missing"):
        weights.verified(tmp_path / "gone" / name, entry)


def test_retraining_resumes_after_a_kill_from_its_last_epoch(tmp_path, monkeypatch):
    monkeypatch.setitem(weights.RECIPES["smoke"], "objects", weights.RECIPES["smoke"]["objects"] | {"epochs": 2})
    real_save = runs.save_torch

    def killed_after_first_epoch(path, obj):
        real_save(path, obj)
        raise KeyboardInterrupt  # the process dies right after saving its first epoch

    monkeypatch.setattr(runs, "save_torch", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        pretrain.retrain_standin("res34", preset="smoke", out=tmp_path / "w", state_dir=tmp_path / "s", progress=False)
    assert not (tmp_path / "w" / weights.MANIFEST).exists()  # nothing shipped from an unfinished training
    first = torch.load(next((tmp_path / "s").glob("*.state")), weights_only=True)["rows"]
    monkeypatch.setattr(runs, "save_torch", real_save)
    entry = pretrain.retrain_standin("res34", preset="smoke", out=tmp_path / "w", state_dir=tmp_path / "s",
                                     progress=False)
    log = pd.read_csv(tmp_path / "w" / entry["log"])
    assert len(first) == 1 and len(log) == 2
    assert log.loc[0, "loss"] == pytest.approx(first[0]["loss"])  # epoch 1 was kept, not trained again


def _shipped_at(monkeypatch, folder: Path) -> None:
    monkeypatch.setattr(weights, "SHIPPED_DIR", folder)


def test_a_run_from_a_shipped_file_names_it_and_trains_no_stand_in(smoke_weights, tmp_path, monkeypatch):
    out, _ = smoke_weights
    _shipped_at(monkeypatch, out)
    monkeypatch.chdir(tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("a stand-in was trained although one ships")

    monkeypatch.setattr(pretrain, "_pretrain_standin", no_training)
    cfg = RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke", "device": "cpu"})
    pre = pretrain.ensure(cfg, progress=False)
    entry = weights.read_manifest(out)[Path(pre.path).name]
    assert pre.ready and pre.sha256 == entry["sha256"] and pre.source.startswith("shipped")
    train._check_run_folder(cfg)
    started = json.loads((cfg.run_path / "config.json").read_text())["pretrained"]
    assert started["file"] == pre.path and started["sha256"] == entry["sha256"]
    assert RunConfig.from_json(cfg.run_path / "config.json") == cfg  # the record is bookkeeping
    assert pretrain.read_log(pre) is not None and pretrain.summary(pre)["details"]["backbone"] == "res34"


def test_a_missing_shipped_file_stops_the_run_before_anything_trains(smoke_weights, tmp_path, monkeypatch):
    out, _ = smoke_weights
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / weights.MANIFEST).write_text((out / weights.MANIFEST).read_text())  # the manifest, not the files
    _shipped_at(monkeypatch, folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pretrain, "_pretrain_standin", lambda *a, **k: pytest.fail("trained over a missing file"))
    cfg = RunConfig.from_params({"method": "tsn", "backbone": "r2p1d34", "preset": "smoke", "device": "cpu"})
    with pytest.raises(weights.WeightFileError, match="missing"):
        pretrain.ensure(cfg, progress=False)
    with pytest.raises(weights.WeightFileError):
        train._check_run_folder(cfg)


def test_at_the_demo_preset_every_shipped_backbone_trains_no_stand_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pretrain, "_pretrain_standin", lambda *a, **k: pytest.fail("a demo stand-in was trained"))
    shipped = {e["backbone"] for e in weights.read_manifest().values()}
    for backbone in sorted(shipped):
        method = "egoaco" if backbone != "bninc" else "tsn"
        cfg = RunConfig.from_params({"method": method, "backbone": backbone, "preset": "demo",
                                     "pretrain": weights.STANDIN_OF[backbone][1]})
        pre = pretrain.ensure(cfg, progress=False)
        assert pre.source.startswith("shipped") and Path(pre.path).parent == weights.SHIPPED_DIR


def test_a_change_to_the_shipped_manifest_makes_trained_runs_stale(tmp_path, monkeypatch):
    before = runs.code_version()
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / weights.MANIFEST).write_text(json.dumps({"format": 1, "weights": {}}))
    monkeypatch.setattr(runs, "SHIPPED_MANIFEST", folder / weights.MANIFEST)
    assert runs.code_version() != before
