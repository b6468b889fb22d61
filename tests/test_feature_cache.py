"""egolib.feature_cache: stages 1 and 2 of EgoACO on the frozen backbone's (trunk's) maps of K cached augmented
views.

The cached maps are the backbone's maps of the view uncached training draws; a step on them is the step on the
clips; the file is keyed and verified (a partial, altered or foreign file is built again); a run killed in stage 1
or 2 resumes through it and ends where an uninterrupted run ends; each preset's recipe is listed in config.json.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import default_collate

from egolib import feature_cache, train
from egolib.config import METHODS, PRESETS, VALID_BACKBONES, RunConfig

# float16 storage: relative rounding <= 2**-11, plus float32 noise from other conv batch shapes
HALF = {"rtol": 2e-3, "atol": 1e-5}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory where the SynthKitchens smoke set is generated once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("feature_cache")
        mp.chdir(path)
        yield path


def smoke(run_dir: Path, **params) -> RunConfig:
    """EgoACO ResNet-34 at the smoke preset from a random backbone (no stand-in to pretrain)."""
    return RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke", "pretrain": "scratch",
                                  "device": "cpu", "run_dir": str(run_dir), **params})


@pytest.fixture(scope="module")
def stage1(workdir):
    """A smoke EgoACO model at stage 1, its training clips and a cache of 2 views of the first 8 clips."""
    cfg = smoke(workdir / "runs" / "unit")
    data = train.load_data(cfg, progress=False)
    torch.manual_seed(0)
    model = train.build(cfg, data, None)
    clips = train.train_dataset(cfg, data)
    cache = feature_cache.build(model, clips.draw, 8, 2, batch_size=3, device=torch.device("cpu"), progress=False,
                                parts=("maps", "trunk"))
    return cfg, model, clips, cache




# --------------------------------------------------------------------------------------------------
# The maps


def test_cached_maps_are_the_backbones_maps_of_the_same_augmented_view(stage1):
    cfg, model, clips, cache = stage1
    N, K, G, T = cache["maps"].shape[:4]
    assert (N, K, G, T) == (8, 2, 1, cfg.num_segments) and cache["maps"].dtype == torch.float16
    assert cache["which"].tolist() == [0, 0, 0]  # the three cloned tops are equal at stage 1: one map stored
    model.train()
    with torch.no_grad():
        for i, k in [(0, 0), (5, 0), (2, 1), (7, 1)]:
            clips.set_epoch(k)  # the clip uncached training draws at epoch k
            item = clips[i]
            maps = model.branch_maps(item["clip"][None])  # 3 x (1, T, C', h, w)
            for b in range(3):
                torch.testing.assert_close(cache["maps"][i, k, cache["which"][b]].float(), maps[b][0], **HALF)
            torch.testing.assert_close(cache["trunk"][i, k].float(), model.trunk_maps(item["clip"][None])[0], **HALF)
            assert cache["labels"][i].tolist() == [item["verb"], item["noun"], item["action"]]
    # two views of one clip are two augmentations, not one stored twice
    assert not torch.allclose(cache["maps"][0, 0].float(), cache["maps"][0, 1].float(), **HALF)


def test_cached_views_cycle_with_the_epoch(stage1):
    *_, cache = stage1
    views = feature_cache.CachedViews(feature_cache.part_of(cache, "maps"))
    trunk = feature_cache.CachedViews(feature_cache.part_of(cache, "trunk"))
    for epoch in range(5):
        trunk.set_epoch(epoch)
        assert set(trunk[3]) == {"trunk", *train.TASKS}
        assert torch.equal(trunk[3]["trunk"], cache["trunk"][3, epoch % 2].float())
        views.set_epoch(epoch)
        item = views[3]
        assert item["maps"].shape == (3, *cache["maps"].shape[3:]) and item["maps"].dtype == torch.float32
        assert torch.equal(item["maps"][1], cache["maps"][3, epoch % 2, 0].float())


def test_a_stage1_step_on_cached_maps_matches_the_step_on_clips(stage1, monkeypatch):
    cfg, model, clips, cache = stage1
    batch = default_collate([clips.draw(i, 1) for i in (4, 1, 6, 2)])
    views = feature_cache.CachedViews(feature_cache.part_of(cache, "maps"))
    views.set_epoch(1)
    cached = default_collate([views[i] for i in (4, 1, 6, 2)])
    assert all(torch.equal(batch[t], cached[t]) for t in train.TASKS)

    def step(b, net):
        stage = train.recipe(cfg)[0]
        opt, scheduler = train.make_optimizer(net, cfg, stage, steps_per_epoch=1)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        torch.manual_seed(3)  # the same dropout draws
        net.train()
        loss, parts, out = train._train_step(net, b, opt, scheduler, scaler, cfg, torch.device("cpu"))
        return loss, {n: p.grad for n, p in net.named_parameters() if p.grad is not None}

    loss, grads = step(batch, copy.deepcopy(model))
    loss_c, grads_c = step(cached, copy.deepcopy(model))
    assert sorted(grads) == sorted(grads_c) and grads  # the same parameters train
    assert not any(n.startswith(("backbone.", "tops.")) for n in grads)  # the backbone is frozen at stage 1
    torch.testing.assert_close(loss_c, loss, **HALF)
    for n in grads:  # float16 maps: each gradient within 0.2 % of its norm (measured: at most 0.1 %)
        assert (grads_c[n] - grads[n]).norm() <= 2e-3 * grads[n].norm(), n

    # stored as float32, the cache is the backbone's output: the same step to float32 noise
    monkeypatch.setattr(feature_cache, "STORED_DTYPE", torch.float32)
    exact = feature_cache.build(model, clips.draw, 8, 2, batch_size=3, device=torch.device("cpu"), progress=False)
    assert set(exact) == {"maps", "labels", "which"}  # the stage-1 maps alone unless asked for more
    views = feature_cache.CachedViews(exact)
    views.set_epoch(1)
    loss_f, grads_f = step(default_collate([views[i] for i in (4, 1, 6, 2)]), copy.deepcopy(model))
    torch.testing.assert_close(loss_f, loss, rtol=1e-5, atol=1e-6)
    for n in grads:
        torch.testing.assert_close(grads_f[n], grads[n], rtol=1e-4, atol=1e-7, msg=n)


def test_a_stage2_step_on_cached_trunk_maps_matches_the_step_on_clips(stage1, monkeypatch):
    cfg, model, clips, cache = stage1
    batch = default_collate([clips.draw(i, 1) for i in (4, 1, 6, 2)])

    def step(b, net):
        net.set_stage(2)
        opt, scheduler = train.make_optimizer(net, cfg, train.recipe(cfg)[1], steps_per_epoch=1)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        torch.manual_seed(3)  # the same dropout draws
        net.train()
        loss, parts, out = train._train_step(net, b, opt, scheduler, scaler, cfg, torch.device("cpu"))
        return loss, {n: p.grad for n, p in net.named_parameters() if p.grad is not None}

    def cached_batch(stored):
        views = feature_cache.CachedViews(feature_cache.part_of(stored, "trunk"))
        views.set_epoch(1)
        return default_collate([views[i] for i in (4, 1, 6, 2)])

    loss, grads = step(batch, copy.deepcopy(model))
    loss_c, grads_c = step(cached_batch(cache), copy.deepcopy(model))
    assert sorted(grads) == sorted(grads_c) and any(n.startswith("tops.") for n in grads)  # the tops train
    assert not any(n.startswith("backbone.") for n in grads)  # the shared trunk is frozen at stage 2
    torch.testing.assert_close(loss_c, loss, **HALF)
    # float16 trunk maps, then three stages in training mode (BatchNorm over 4 clips of a random smoke model):
    # each gradient within 15 % of its norm and half of them within 2 % (measured: at most 8 %, median 0.7 %)
    rel = {n: float((grads_c[n] - grads[n]).norm() / grads[n].norm()) for n in grads}
    assert max(rel.values()) <= 0.15 and np.median(list(rel.values())) <= 0.02
    monkeypatch.setattr(feature_cache, "STORED_DTYPE", torch.float32)  # float32: the same step to float32 noise
    exact = feature_cache.build(model, clips.draw, 8, 2, batch_size=3, device=torch.device("cpu"), progress=False,
                                parts=("trunk",))
    assert set(exact) == {"trunk", "labels"}
    loss_f, grads_f = step(cached_batch(exact), copy.deepcopy(model))
    torch.testing.assert_close(loss_f, loss, rtol=1e-5, atol=1e-6)
    for n in grads:
        torch.testing.assert_close(grads_f[n], grads[n], rtol=1e-4, atol=1e-6, msg=n)


def test_maps_stand_in_for_the_clip_only_at_stage_1(stage1):
    _, model, _, cache = stage1
    m = copy.deepcopy(model)
    maps = feature_cache.CachedViews(feature_cache.part_of(cache, "maps"))[0]["maps"][None].unbind(1)  # 3 x (1, T, ...)
    trunk = cache["trunk"][:1, 0].float()  # (1, T, C'', h', w')
    m.eval()
    assert m(maps=maps)["verb"].shape[0] == 1
    with pytest.raises(ValueError, match="one of a clip x, its branch maps or its trunk maps"):
        m()
    m.set_stage(2)
    with pytest.raises(ValueError, match="only at stage 1"):
        m(maps=maps)
    assert m(trunk=trunk)["verb"].shape[0] == 1  # trunk maps: at stages 1 and 2, not 3
    m.set_stage(3)
    with pytest.raises(ValueError, match="only at stages 1 and 2"):
        m(trunk=trunk)


# --------------------------------------------------------------------------------------------------
# The file


def test_a_cache_file_is_read_only_when_it_verifies_and_holds_its_key(tmp_path):
    path = tmp_path / feature_cache.FILE
    key = {"views": 2, "frozen": "abc"}
    made = {"maps": torch.randn(3, 2, 1, 4, 5, 2, 2).half(), "labels": torch.zeros(3, 3, dtype=torch.int64),
            "which": torch.tensor([0, 0, 0])}
    calls = []

    def make():
        calls.append(1)
        return made

    feature_cache.ensure(path, key, make)
    again = feature_cache.ensure(path, key, make)
    assert len(calls) == 1 and torch.equal(again["maps"], made["maps"])
    assert feature_cache.read(path, key | {"views": 3}) is None  # made for another key
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # partial
    assert feature_cache.read(path, key) is None
    feature_cache.ensure(path, key, make)
    assert len(calls) == 2 and feature_cache.read(path, key) is not None
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit changed
    assert feature_cache.read(path, key) is None
    feature_cache.ensure(path, key, make)
    path.with_name(path.name + ".sha256").unlink()  # no recorded hash: never trusted
    assert feature_cache.read(path, key) is None
    feature_cache.remove(path)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------
# Runs


def fit_log(cfg: RunConfig) -> pd.DataFrame:
    train.fit(cfg, progress=False)
    return train.read_log(cfg.run_path).drop(columns="time_s")


def killed_after(cfg: RunConfig, steps: int, monkeypatch) -> None:
    """Fit ``cfg`` and kill it at its ``steps + 1``-th optimiser step."""
    real_step, count = train._train_step, {"n": 0}

    def step_then_die(*args, **kwargs):
        count["n"] += 1
        if count["n"] > steps:
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(train, "_train_step", step_then_die)
        with pytest.raises(KeyboardInterrupt):
            train.fit(cfg, progress=False)


def test_a_run_killed_in_stage_1_resumes_and_builds_a_corrupt_cache_again(workdir, monkeypatch):
    params = {"epochs": 3, "epochs_stage2": 1, "epochs_stage3": 0, "stage1_feature_views": 2, "stage2_trunk_views": 0}
    reference = smoke(workdir / "runs" / "uninterrupted", **params)
    log_ref = fit_log(reference)
    assert not (reference.run_path / feature_cache.FILE).exists()  # removed when stage 1 ended
    assert log_ref[["stage", "epoch"]].values.tolist() == [[1, 1], [1, 2], [1, 3], [2, 1]]

    cfg = smoke(workdir / "runs" / "killed", **params)
    per_epoch = log_ref["clips"].iloc[0] // cfg.batch_size
    path = cfg.run_path / feature_cache.FILE
    built = []
    real_build = feature_cache.build
    monkeypatch.setattr(feature_cache, "build", lambda *a, **k: built.append(1) or real_build(*a, **k))
    killed_after(cfg, per_epoch + 2, monkeypatch)  # in stage 1 epoch 2
    assert built == [1] and path.exists()
    killed_after(cfg, 2, monkeypatch)  # resumed, killed again in epoch 2: the intact cache was read, not built
    assert built == [1] and torch.load(cfg.run_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # a partial cache file
    pd.testing.assert_frame_equal(fit_log(cfg), log_ref)
    assert built == [1, 1] and not path.exists()

    # with a view for every stage-1 epoch, stored as float32, the cache trains exactly as the cache off does: the
    # same views, the same dropout draws, the same batches
    monkeypatch.setattr(feature_cache, "STORED_DTYPE", torch.float32)
    off = fit_log(smoke(workdir / "runs" / "off", **params | {"stage1_feature_views": 0}))
    on = fit_log(smoke(workdir / "runs" / "on", **params | {"stage1_feature_views": 3}))
    pd.testing.assert_frame_equal(on, off)
    # 2 float16 views for 3 epochs: epochs 1 and 2 are the uncached ones to float16 rounding, epoch 3 repeats view 0
    loss, loss_ref = off["loss"].to_numpy(), log_ref["loss"].to_numpy()
    np.testing.assert_allclose(loss_ref[:2], loss[:2], rtol=2e-3)
    assert abs(loss_ref[2] - loss[2]) > 0.02 * loss[2]


# --------------------------------------------------------------------------------------------------
# The recipe in config.json

RECIPE_FIELDS = ("epochs", "epochs_stage2", "epochs_stage3", "lr", "lr_stage2", "lr_stage3", "warmup_epochs",
                 "optimizer", "batch_size", "input_size", "num_segments", "stage1_feature_views", "stage2_trunk_views")


@pytest.mark.parametrize("preset", PRESETS)
def test_each_presets_recipe_is_listed_in_the_runs_config_json(preset, tmp_path):
    for method in METHODS:
        params = {"method": method, "backbone": VALID_BACKBONES[method][-1], "preset": preset,
                  "run_dir": str(tmp_path / method)} | ({"data_root": "/nonexistent/EPIC"} if preset == "paper" else {})
        cfg = RunConfig.from_params(params)
        train._check_run_folder(cfg)
        saved = json.loads((cfg.run_path / "config.json").read_text())
        assert {f: saved[f] for f in RECIPE_FIELDS} == {f: getattr(cfg, f) for f in RECIPE_FIELDS}
        stages = saved["recipe"]["stages"]
        assert [(s["epochs"], s["lr"], s["warmup_epochs"]) for s in stages] == [
            (st.epochs, st.lr, st.warmup_epochs) for st in train.recipe(cfg)]
        assert len(stages) == cfg.stages and all(s["trains"] for s in stages)
        assert saved["recipe"]["stage1_feature_views"] == cfg.stage1_feature_views
        assert saved["recipe"]["stage2_trunk_views"] == cfg.stage2_trunk_views
        assert saved["recipe"]["optimizer"] == cfg.optimizer == ("sgd" if preset == "paper" or cfg.stages == 1
                                                                  else "adam")
        assert (cfg.stage1_feature_views > 0) == (cfg.stages == 3 and preset != "paper")
        assert RunConfig.from_json(cfg.run_path / "config.json") == cfg  # the recipe is bookkeeping


def test_the_cache_is_refused_where_no_stage_freezes_the_backbone():
    with pytest.raises(ValueError, match="stage1_feature_views caches the frozen backbone"):
        RunConfig.from_params({"method": "gsm", "backbone": "res34", "stage1_feature_views": 4})
    with pytest.raises(ValueError, match="stage1_feature_views must be >= 0"):
        RunConfig.from_params({"method": "egoaco", "stage1_feature_views": -1})


def test_a_run_killed_in_stage_2_resumes_on_its_trunk_cache(workdir, monkeypatch):
    params = {"epochs": 1, "epochs_stage2": 2, "epochs_stage3": 1, "stage1_feature_views": 1}
    monkeypatch.setattr(feature_cache, "STORED_DTYPE", torch.float32)
    # with a view for every epoch of stages 1 and 2, stored as float32, the caches train as no cache does
    off = fit_log(smoke(workdir / "runs" / "s2-off", **params | {"stage1_feature_views": 0, "stage2_trunk_views": 0}))
    on = smoke(workdir / "runs" / "s2-on", **params | {"stage2_trunk_views": 3})
    pd.testing.assert_frame_equal(fit_log(on), off, rtol=1e-4)
    assert not (on.run_path / feature_cache.TRUNK_FILE).exists()  # removed when stage 2 ended

    cfg = smoke(workdir / "runs" / "s2-killed", **params | {"stage2_trunk_views": 1})
    built = []
    real_build = feature_cache.build
    monkeypatch.setattr(feature_cache, "build", lambda *a, **k: built.append(k["parts"]) or real_build(*a, **k))
    per_epoch = off["clips"].iloc[0] // cfg.batch_size
    killed_after(cfg, per_epoch + 1, monkeypatch)  # in stage 2 epoch 1
    assert built == [("maps", "trunk")]  # one pass for both caches (the same single view)
    assert (cfg.run_path / feature_cache.TRUNK_FILE).exists() and not (cfg.run_path / feature_cache.FILE).exists()
    log_resumed = fit_log(cfg)  # resumed in stage 2: its tops have trained since, its trunk cache still holds
    assert built == [("maps", "trunk")] and not (cfg.run_path / feature_cache.TRUNK_FILE).exists()
    uninterrupted = fit_log(smoke(workdir / "runs" / "s2-uninterrupted", **params | {"stage2_trunk_views": 1}))
    pd.testing.assert_frame_equal(log_resumed, uninterrupted)
    # one view for two stage-2 epochs: the second repeats it, where an uncached run draws a fresh one
    assert log_resumed["loss"].iloc[2] != off["loss"].iloc[2]


def test_the_trunk_cache_is_refused_where_stage_2_trains_the_trunk():
    with pytest.raises(ValueError, match="stage2_trunk_views caches the trunk"):
        RunConfig.from_params({"method": "egoaco", "egoaco_clone": "fc", "stage2_trunk_views": 4})
    with pytest.raises(ValueError, match="stage2_trunk_views caches the trunk"):
        RunConfig.from_params({"method": "tsn", "stage2_trunk_views": 4})
    assert RunConfig.from_params({"method": "egoaco", "egoaco_clone": "fc", "preset": "smoke"}).stage2_trunk_views == 0
