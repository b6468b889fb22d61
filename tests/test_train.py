"""egolib.train: the report's recipes, the loss, determinism, resume after a kill, and 2-process DDP (gloo)."""

import dataclasses
import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from egolib import runs, train
from egolib.config import RunConfig

# --------------------------------------------------------------------------------------------------
# Recipes and schedule


def paper(**params) -> RunConfig:
    return RunConfig.from_params({"preset": "paper", "data_root": "/nonexistent/EPIC", **params})


def test_gsm_paper_recipe_is_the_reports():
    for backbone, scale in (("bninc", 256), ("incv3", 261)):
        cfg = paper(method="gsm", backbone=backbone)
        assert train.recipe(cfg) == [train.Stage(1, 60, 0.01, 10, "everything")]
        assert (cfg.momentum, cfg.weight_decay, cfg.dropout, cfg.num_segments) == (0.9, 5e-4, 0.5, 16)
        assert cfg.clip_grad > 0 and cfg.test_crop == "full" and cfg.test_clips == 2
        assert train.scale_size(cfg) == scale  # full-frame test: shorter side 256 (BN-Inception) / 261 (InceptionV3)


def test_egoaco_paper_recipe_has_three_stages():
    cfg = paper(method="egoaco", backbone="res152")
    stages = train.recipe(cfg)
    assert [(s.index, s.epochs, s.lr) for s in stages] == [(1, 60, 0.01), (2, 60, 0.01), (3, 30, 1e-4)]
    assert "frozen" in stages[0].trains and "conv4_x" in stages[2].trains
    assert cfg.test_crop == "centre" and cfg.test_clips == 2 and cfg.num_segments == 20
    assert paper(method="gsm_egoaco", backbone="bninc").num_segments == 16


def test_demo_and_smoke_scale_the_epochs_down():
    for method, backbone in (("gsm", "incv3"), ("egoaco", "res34")):
        full = sum(s.epochs for s in train.recipe(paper(method=method, backbone=backbone)))
        demo = sum(s.epochs for s in train.recipe(RunConfig.from_params({"method": method, "backbone": backbone})))
        smoke = train.recipe(RunConfig.from_params({"method": method, "backbone": backbone, "preset": "smoke"}))
        assert 0 < sum(s.epochs for s in smoke) < demo < full
        assert len(smoke) == len(train.recipe(paper(method=method, backbone=backbone)))


def test_warmup_then_cosine_per_step():
    model = torch.nn.Linear(2, 2)
    cfg = paper(method="gsm", backbone="bninc")
    opt, sched = train.make_optimizer(model, cfg, train.Stage(1, 4, 0.01, 1, "x"), steps_per_epoch=10)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    lrs = []
    for _ in range(40):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.001) and lrs[9] == pytest.approx(0.01)  # linear warm-up over epoch 1
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # then a strictly decreasing cosine
    assert lrs[24] == pytest.approx(0.005 * (1 + math.cos(math.pi * 14 / 30)))
    state = sched.state_dict()  # the schedule object survives a checkpoint round trip
    _, again = train.make_optimizer(model, cfg, train.Stage(1, 4, 0.01, 1, "x"), steps_per_epoch=10)
    again.load_state_dict(state)
    assert again.get_last_lr() == sched.get_last_lr()


def test_adam_takes_lstas_settings_and_the_same_schedule():
    model = torch.nn.Linear(2, 2)
    cfg = RunConfig.from_params({"backbone": "res34", "optimizer": "adam", "lr": 1e-3})
    opt, sched = train.make_optimizer(model, cfg, train.Stage(1, 4, 1e-3, 1, "x"), steps_per_epoch=10)
    assert isinstance(opt, torch.optim.Adam)
    assert (opt.defaults["eps"], opt.defaults["weight_decay"]) == (1e-4, cfg.weight_decay)
    assert sched.get_last_lr()[0] == pytest.approx(1e-4)  # the warm-up starts at a tenth, as SGD's
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'; choose one of sgd, adam"):
        RunConfig.from_params({"optimizer": "adamw"})


def test_multitask_loss_sums_three_cross_entropies_and_splits_exactly():
    V, N, A, B = 5, 7, 11, 4
    out = {"verb": torch.zeros(B, V), "noun": torch.zeros(B, N), "action": torch.zeros(B, A)}
    labels = {t: torch.tensor([0, 1, 2, 3]) for t in ("verb", "noun", "action")}
    loss, parts = train.multitask_loss(out, labels)
    assert loss.item() == pytest.approx(math.log(V) + math.log(N) + math.log(A))  # uniform logits
    torch.manual_seed(0)
    out = {k: torch.randn_like(v) for k, v in out.items()}
    labels["action"] = torch.tensor([0, -1, 2, -1])  # pairs unseen in training are ignored
    full, _ = train.multitask_loss(out, labels)
    halves = [train.multitask_loss({k: v[s] for k, v in out.items()}, {k: v[s] for k, v in labels.items()})[0]
              for s in (slice(0, 2), slice(2, 4))]
    assert full.item() == pytest.approx((halves[0] + halves[1]).item() / 2)  # what DDP's gradient mean assumes


def test_seeded_clips_depend_on_seed_epoch_index_only():
    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(2)

    ds = train.SeededClips(Noise(), seed=7)
    first = ds[1]
    torch.rand(100)  # the global RNG moves on: the clip does not change
    assert torch.equal(ds[1], first) and not torch.equal(ds[0], first)
    ds.set_epoch(1)
    assert not torch.equal(ds[1], first)


def test_notebook_params_catch_names_papermill_injected():
    namespace = {f: None for f in RunConfig.__dataclass_fields__} | {"backbone": "res152", "backbne": "res152"}
    namespace["In"] = ["import x", "method: str = 'egoaco'", "# Parameters\nbackbne = \"res152\"\n"]
    params = train.notebook_params(namespace)
    assert params["backbne"] == "res152" and params["backbone"] == "res152"
    with pytest.raises(ValueError, match="unknown parameter.*'backbne'"):
        RunConfig.from_params(params)
    del namespace["In"]
    assert "backbne" not in train.notebook_params(namespace)  # outside papermill only the fields count


# --------------------------------------------------------------------------------------------------
# End to end at the smoke preset (one SynthKitchens smoke set and one pretrained backbone per module)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with data/synthkitchens-smoke-s0 and the smoke res34 stand-in under runs/pretrain."""
    path = tmp_path_factory.mktemp("train")
    old = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


def smoke(run_dir: Path, **params) -> RunConfig:
    return RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke", "device": "cpu",
                                  "run_dir": str(run_dir), **params})


def results(run_dir: Path) -> tuple[dict, pd.DataFrame, dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = pd.read_csv(run_dir / "log.csv").drop(columns="time_s")
    scores = dict(np.load(run_dir / "scores_s1.npz"))
    return {k: metrics[k] for k in ("s1", "s2")}, log, scores


@pytest.mark.slow
def test_run_writes_a_complete_folder_and_is_deterministic(workdir):
    a = smoke(workdir / "runs" / "a")
    train.run(a, progress=False)
    names = {p.name for p in a.run_path.iterdir()}
    assert {"config.json", "checkpoint.pt", "log.csv", "scores_s1.npz", "scores_s2.npz", "metrics.json",
            "submission.zip", "first_clip_s1.npz", "first_clip_s2.npz", "DONE"} <= names
    mtimes = {p.name: p.stat().st_mtime_ns for p in a.run_path.iterdir()}
    assert mtimes["DONE"] == max(mtimes.values())  # written last
    metrics = json.loads((a.run_path / "metrics.json").read_text())
    assert metrics["pretrain"]["source"] == "synthetic stand-in: object images"
    assert metrics["protocol"] == {"clips": 2, "crop": "centre", "scale_size": 73, "input_size": 64,
                                   "num_segments": 4, "action_scores": "action head (top-100 pairs)",
                                   "untrained_taps": 0,
                                   "first_clip": {"files": ["first_clip_s1.npz", "first_clip_s2.npz"],
                                                  "attention": True}}
    assert runs.unverified(a.run_path, metrics["protocol"]["first_clip"]["files"]) == []  # hashed in DONE
    log = pd.read_csv(a.run_path / "log.csv")
    assert log[["stage", "epoch"]].values.tolist() == [[1, 1], [2, 1], [3, 1]]
    ckpt = torch.load(a.run_path / "checkpoint.pt", weights_only=True)
    assert {"model_args", "model", "optimizer", "scheduler", "stage", "epoch", "rng"} <= set(ckpt)
    assert runs.is_complete(a.run_path, a.to_dict())

    b = smoke(workdir / "runs" / "b")  # the same run again, elsewhere: the same numbers
    train.run(b, progress=False)
    ma, la, sa = results(a.run_path)
    mb, lb, sb = results(b.run_path)
    assert ma == mb
    pd.testing.assert_frame_equal(la, lb)
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_killed_mid_epoch_then_rerun_ends_like_an_uninterrupted_run(workdir, monkeypatch):
    reference = smoke(workdir / "runs" / "a")
    if not (reference.run_path / "DONE").exists():
        train.run(reference, progress=False)
    cfg = smoke(workdir / "runs" / "killed")
    steps = {"n": 0}
    real_step = train._train_step

    def step_then_die(*args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 16:  # stage 2 (12 steps per epoch at batch 4), mid-epoch
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "_train_step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg, progress=False)
    ckpt = torch.load(cfg.run_path / "checkpoint.pt", weights_only=True)
    assert (ckpt["stage"], ckpt["epoch"]) == (1, 1) and not (cfg.run_path / "DONE").exists()
    assert not list(cfg.run_path.glob(".*.tmp"))  # no half-written file

    monkeypatch.setattr(train, "_train_step", real_step)
    train.run(cfg, progress=False)
    m_ref, log_ref, s_ref = results(reference.run_path)
    m, log, s = results(cfg.run_path)
    assert m == m_ref
    pd.testing.assert_frame_equal(log, log_ref)
    assert all(np.array_equal(s[k], s_ref[k]) for k in s)


@pytest.mark.slow
def test_a_checkpoint_from_other_code_is_not_resumed(workdir, monkeypatch):
    cfg = smoke(workdir / "runs" / "other-code", method="gsm", epochs=2)
    train.fit(cfg, progress=False)
    assert len(train.read_log(cfg.run_path)) == 2
    monkeypatch.setattr(runs, "code_version", lambda: "0" * 16)  # the library changed since
    steps = {"n": 0}
    real_step = train._train_step

    def counting(*args, **kwargs):
        steps["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "_train_step", counting)
    train.fit(cfg, progress=False)
    assert steps["n"] == 2 * 12  # both epochs trained again (12 steps each), not resumed at the end
    assert len(train.read_log(cfg.run_path)) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(workdir):
    # EgoACO stage 1 with dropout 0: the trained part is batch-independent (frozen backbone, eval-mode BN), so
    # 2 processes x 2 clips must equal 1 process x 4 clips up to float rounding. (On CPUs DDP keeps BatchNorm
    # statistics per process, SyncBatchNorm being CUDA-only; train.fit uses SyncBatchNorm on GPUs.)
    common = {"epochs": 2, "epochs_stage2": 0, "epochs_stage3": 0, "dropout": 0.0}
    one = smoke(workdir / "runs" / "one", batch_size=4, **common)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train.run(one, progress=False)
    finally:
        torch.set_num_threads(threads)

    two = smoke(workdir / "runs" / "two", batch_size=2, **common)
    runs.write_json(two.run_path / "config.json", runs.manifest(two.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "egolib.train", "--config", str(two.run_path / "config.json"), "--no-progress"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (two.run_path / "DONE").exists()
    metrics = json.loads((two.run_path / "metrics.json").read_text())
    assert metrics["resources"]["processes"] == 2

    _, log1, s1 = results(one.run_path)
    _, log2, s2 = results(two.run_path)
    assert log1["clips"].tolist() == log2["clips"].tolist() == [48, 48]
    np.testing.assert_allclose(log2["loss"], log1["loss"], rtol=1e-4)
    assert list(s2["uid"]) == list(s1["uid"])
    for task in ("verb", "noun", "action"):
        np.testing.assert_allclose(s2[task], s1[task], rtol=1e-3, atol=1e-4)


def test_pretraining_resolves_real_weights_at_width_one_else_a_cached_stand_in(tmp_path, monkeypatch):
    from egolib import pretrain

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(pretrain.weights, "SHIPPED_DIR", tmp_path / "shipped")  # none shipped (test_weights: some)
    full = paper(method="egoaco", backbone="res34")
    assert pretrain.resolve(full).source == "synthetic stand-in: object images"  # no file: the stand-in
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "res34-imagenet.pth").write_bytes(b"")
    real = pretrain.Pretraining("imagenet", "real weights", "weights/res34-imagenet.pth", True)
    assert pretrain.resolve(full) == real
    narrow = RunConfig.from_params({"method": "egoaco", "backbone": "res34"})  # width 0.25: real weights do not fit
    pre = pretrain.resolve(narrow)
    assert pre.source == "synthetic stand-in: object images" and not pre.ready
    assert re.fullmatch(r"runs/pretrain/imagenet-res34-w0\.25-demo-[0-9a-f]{10}/backbone\.pt", pre.path)
    assert pretrain.resolve(paper(method="gsm", backbone="bninc")).source == "EPIC TSN-style (training split)"
    r2p1d = pretrain.resolve(RunConfig.from_params({"method": "egoaco", "backbone": "r2p1d34"}))
    assert r2p1d.source == "synthetic stand-in: motion clips"
    assert pretrain.resolve(dataclasses.replace(narrow, pretrain="scratch")).path is None


@pytest.mark.slow
def test_gsm_egoaco_starts_from_the_gsm_runs_trained_backbone(workdir):
    from egolib import models, pretrain

    cfg = RunConfig.from_params({"method": "gsm_egoaco", "backbone": "bninc", "preset": "smoke", "device": "cpu"})
    variant = RunConfig.from_params({"method": "gsm", "backbone": "bninc", "preset": "smoke", "device": "cpu"})
    train.run(variant, progress=False)  # the Table 1 GSM run, complete: GSM + EgoACO must reuse it
    pre = pretrain.ensure(cfg, fit=train.fit_model, progress=False)
    assert pre.ready and "GSM backbone" in pre.source
    info = json.loads((Path(pre.path).parent / "config.json").read_text())
    assert info["gsm_run"] == str(variant.run_path)
    trained = models.load_model(variant.run_path / "checkpoint.pt").backbone.state_dict()
    model = train.build(cfg, train.load_data(cfg, progress=False), pre.path)
    gates = [k for k in trained if ".gsm." in k and k.endswith("conv3D.weight")]
    assert len(gates) == 10
    own = model.state_dict()
    shared = [k for k in gates if f"backbone.{k}" in own]  # gates below the cloned top stage (5a, 5b are cloned)
    assert len(shared) == 8
    for k in shared:
        torch.testing.assert_close(own[f"backbone.{k}"], trained[k], rtol=0, atol=0)
    assert any(torch.count_nonzero(trained[k]) for k in gates)  # trained gates, not the zero init


# frames as stored: SynthKitchens smoke / demo, EPIC-Kitchens-55 (paper)
FRAME_SIZES = {"smoke": (64, 114), "demo": (128, 228), "paper": (256, 456)}


@pytest.mark.parametrize("preset", list(FRAME_SIZES))
def test_every_preset_tests_only_through_trained_kernel_taps(preset):
    """InceptionV3 trained at 80 px (1x1 last maps) and tested on full frames scored through untrained weights."""
    from egolib.config import VALID_BACKBONES

    seen = set()
    for method, names in VALID_BACKBONES.items():
        for backbone in names:
            cfg = RunConfig.from_params({"method": method, "backbone": backbone, "preset": preset,
                                         "data_root": "EPIC" if preset == "paper" else None})
            frame = torch.zeros(1, 3, *FRAME_SIZES[preset], dtype=torch.uint8)
            test_size = tuple(train.test_transform(cfg)(frame).shape[-2:])
            key = (backbone, cfg.width, cfg.input_size, test_size)
            if key not in seen:
                seen.add(key)
                assert train.untrained_test_taps(cfg, test_size) == [], (method, backbone)
