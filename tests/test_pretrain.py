"""egolib.pretrain's cache: keyed by everything that makes it (recipe, data, code), so a backbone trained on
one data set is never handed to a run on another."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from egolib import backbones, pretrain, runs, synthetic, train, weights
from egolib.config import RunConfig


def gsm_smoke(**params) -> RunConfig:
    """The GSM BN-Inception smoke run: its backbone comes from an EPIC (TSN) pretraining on the run's data."""
    return RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke", "device": "cpu", **params})


def fake_root(path: Path, train_csv: str) -> str:
    (path / "annotations").mkdir(parents=True)
    (path / "annotations" / "EPIC_train_action_labels.csv").write_text(train_csv)
    return str(path)


def test_the_cache_folder_changes_with_the_data_the_recipe_and_the_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = pretrain.resolve(gsm_smoke(data_root=fake_root(tmp_path / "a", "uid\n1\n")))
    b = pretrain.resolve(gsm_smoke(data_root=fake_root(tmp_path / "b", "uid\n1\n2\n")))
    embedded = pretrain.resolve(gsm_smoke())
    assert len({a.path, b.path, embedded.path}) == 3  # three data sets, three caches
    assert a.path == pretrain.resolve(gsm_smoke(data_root=str(tmp_path / "a"))).path  # the same data: the same one
    on_gsm = [pretrain.resolve(gsm_smoke(method="gsm_egoaco", input_size=size)) for size in (80, 96)]
    assert on_gsm[0].path != on_gsm[1].path  # another GSM run to start from
    standin = pretrain.resolve(RunConfig.from_params({"backbone": "res34", "preset": "smoke"}))
    assert standin.path != pretrain.resolve(RunConfig.from_params({"backbone": "res34", "preset": "smoke",
                                                                   "input_size": 72})).path
    monkeypatch.setattr(runs, "code_version", lambda: "0" * 16)
    assert pretrain.resolve(gsm_smoke()).path != embedded.path  # other library code


@pytest.mark.parametrize("backbone", ["res34", "r2p1d34"])
def test_a_changed_stand_in_recipe_or_set_invalidates_the_cached_backbone(tmp_path, monkeypatch, backbone):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runs, "code_version", lambda: "0" * 16)  # the same code: only the recipe changes
    monkeypatch.setattr(pretrain.weights, "SHIPPED_DIR", tmp_path / "shipped")  # a stand-in trained in the run
    cfg = RunConfig.from_params({"method": "egoaco", "backbone": backbone, "preset": "demo"})
    before = pretrain.resolve(cfg)
    out = Path(before.path).parent
    runs.save_torch(out / pretrain.BACKBONE_FILE, {})
    runs.write_text(out / "log.csv", "epoch\n1\n")
    runs.write_json(out / "config.json", {"cache_key": pretrain.cache_key(cfg)})
    runs.write_done(out, pretrain.CACHE_FILES)
    assert pretrain.resolve(cfg).ready and pretrain.resolve(cfg).path == before.path
    sets = synthetic.MOTION_PRESETS if backbone == "r2p1d34" else synthetic.OBJECT_PRESETS
    epochs = ((pretrain.OBJECT_EPOCHS if backbone == "res34" else pretrain.MOTION_EPOCHS), "demo", 99)
    for table, name, change in (epochs, (pretrain.STANDIN_RECIPES, "demo", {"lr": 0.5}),
                                (sets, "demo", {"per_class": 7})):
        with monkeypatch.context() as m:
            m.setitem(table, name, {**table[name], **change} if isinstance(change, dict) else change)
            changed = pretrain.resolve(cfg)
            assert changed.path != before.path and not changed.ready, change
    with monkeypatch.context() as m:
        m.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
        assert pretrain.resolve(cfg).path != before.path
    assert pretrain.resolve(cfg).ready  # back to the recipe it was made with


def test_a_done_folder_made_with_another_key_is_not_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig.from_params({"backbone": "res34", "preset": "smoke"})
    out = Path(pretrain.resolve(cfg).path).parent
    runs.save_torch(out / pretrain.BACKBONE_FILE, {})
    runs.write_text(out / "log.csv", "epoch\n1\n")
    runs.write_json(out / "config.json", {"cache_key": {**pretrain.cache_key(cfg), "data": "another set"}})
    runs.write_done(out, pretrain.CACHE_FILES)
    assert not pretrain.resolve(cfg).ready
    runs.write_json(out / "config.json", {"cache_key": pretrain.cache_key(cfg)})
    assert not pretrain.resolve(cfg).ready  # config.json no longer matches the hash DONE recorded
    runs.write_done(out, pretrain.CACHE_FILES)
    assert pretrain.resolve(cfg).ready


def test_an_epic_backbone_to_train_needs_the_fit_function(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="pass fit=egolib.train.fit_model"):
        pretrain.ensure(gsm_smoke(data_root=fake_root(tmp_path / "a", "uid\n")), progress=False)


@pytest.mark.slow
def test_two_data_roots_give_two_different_cached_backbones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    smoke = synthetic.ensure(tmp_path / "data" / "synthkitchens-smoke-s0", preset="smoke", seed=0, progress=False)
    roots = [tmp_path / "kitchens-a", tmp_path / "kitchens-b"]
    for root in roots:
        shutil.copytree(smoke, root)
    labels = roots[1] / "annotations" / "EPIC_train_action_labels.csv"
    table = pd.read_csv(labels)
    table.iloc[: len(table) - 8].to_csv(labels, index=False)  # the second copy lacks its last 8 training segments

    made = [pretrain.ensure(gsm_smoke(data_root=str(root)), fit=train.fit_model, progress=False) for root in roots]
    assert all(p.ready for p in made) and made[0].path != made[1].path
    states = [torch.load(p.path, weights_only=True) for p in made]
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])  # trained on different data
    tsn_runs = [json.loads((Path(p.path).parent / "config.json").read_text())["tsn_run"] for p in made]
    assert [r["data_root"] for r in tsn_runs] == [str(root) for root in roots]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached backbone was trained again")

    again = pretrain.ensure(gsm_smoke(data_root=str(roots[0])), fit=no_training, progress=False)
    assert again == made[0]  # the first data root's cache, reused


def test_the_demo_stand_ins_train_longer_than_the_preset_recipe_says():
    objects, motion = (pretrain.standin_recipe("demo", video=v) for v in (False, True))
    recipe = pretrain.STANDIN_RECIPES["demo"]
    assert objects == recipe | {"epochs": pretrain.OBJECT_EPOCHS["demo"]}
    assert motion == recipe | {"epochs": pretrain.MOTION_EPOCHS["demo"], "others_from_epoch": 6}
    assert min(objects["epochs"], motion["epochs"]) > recipe["epochs"]
    for video in (False, True):  # the other presets keep their epochs
        assert pretrain.standin_recipe("smoke", video=video) == pretrain.STANDIN_RECIPES["smoke"]


def test_a_stand_in_set_made_by_an_older_generator_is_made_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Path("data/motion-smoke")
    old = dict(synthetic.MOTION_PRESETS["smoke"])
    old.pop("labels")  # the motion-only clips, before they named the object that moves
    path.mkdir(parents=True)
    runs.write_json(path / synthetic.MANIFEST, {"dataset": "SynthMotion", "preset": "smoke", "seed": 0,
                                                "generator_version": synthetic.GENERATOR_VERSION, "size": old})
    x, y, tasks = pretrain.standin_set("smoke", video=True, progress=False)
    assert y.shape == (len(x), 2) and list(tasks) == ["motion", "object"]
    assert runs.read_json(path / synthetic.MANIFEST)["size"] == synthetic.MOTION_PRESETS["smoke"]
    other = Path("data/objects-smoke")  # a folder some other generator made is refused, never deleted
    other.mkdir(parents=True)
    runs.write_json(other / synthetic.MANIFEST, {"dataset": "SynthKitchens", "size": {}})
    with pytest.raises(ValueError, match="other arguments"):
        pretrain.standin_set("smoke", video=False, progress=False)
    assert (other / synthetic.MANIFEST).is_file()


def test_the_motion_stand_in_learns_the_motion_and_the_object_that_moves():
    net = backbones.build_backbone("r2p1d34", width=0.125)
    x = torch.randn(2, 3, 3, 64, 64)  # (N, C, L, H, W)
    motion, objects = pretrain._logits(net, x, {"motion": 14, "object": 40})
    assert motion.shape == (2, 14) and objects.shape == (2, 40)
    whole = getattr(net, net.spec.classifier)(backbones.forward_features(net, x).mean((2, 3)))
    assert torch.equal(torch.cat([motion, objects], 1), whole[:, :54])  # two slices of the one classifier


def test_the_other_tasks_join_the_loss_from_their_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y, tasks = pretrain.standin_set("smoke", video=True, progress=False)
    heads = pretrain.heads_of(tasks)
    split = pretrain.held_out_split(len(y))
    recipe = weights.recipe_of("smoke", "r2p1d34") | {"epochs": 1, "batch_size": 8}
    losses = {}
    for start in (1, 2):  # both losses from epoch 1; the motion alone in epoch 1
        torch.manual_seed(0)
        net = backbones.build_backbone("r2p1d34", width=0.125)
        rows = pretrain.fit_standin(net, x, y, split, heads, recipe=recipe | {"others_from_epoch": start}, video=True,
                                    input_size=64, progress=False)
        losses[start] = rows[0]["loss"]
        assert {"acc_object", "val_acc_object"} <= set(rows[0])
    # near chance: ln 14 + ln 40 = 6.3 for the two tasks, ln 14 = 2.6 for the motion alone
    assert losses[1] > 5.0 and losses[2] < 4.0
    assert "main task alone for the first 5 epochs" in pretrain.training_notes(
        True, recipe | {"others_from_epoch": 6})["schedule"]
