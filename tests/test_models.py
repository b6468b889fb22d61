"""Video models: every registry pair forward/backward, stages, order sensitivity, EgoACO and GSM invariants,
fully-convolutional inference, checkpoints and cost. Tiny seeded CPU inputs (width 1/8, 64-107 px, T=2-4)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from egolib import backbones, gsm, models
from egolib.config import VALID_BACKBONES

V, N, A = 5, 6, 7
PAIRS = [(m, b) for m, names in VALID_BACKBONES.items() for b in names]
SMALL = {"width": 0.125, "lsta_memory": 16, "lsta_pool": 8}


def snippet(backbone: str) -> int:
    return 3 if backbone == "r2p1d34" else 1


def pixels(backbone: str) -> int:
    # InceptionV3 needs >= 75 px; at 80 px its final map is 1x1 (attention trivially 1), at 107 px 2x2.
    return 107 if backbone == "incv3" else 64


def build(method: str, backbone: str, T: int = 2, **kw) -> models.StagedModel:
    torch.manual_seed(0)
    opts = SMALL | {"num_segments": T, "snippet_length": snippet(backbone)} | kw
    return models.build_model(method, backbone, V, N, A, **opts)


def clip(backbone: str, B: int = 2, T: int = 2, seed: int = 1, H: int | None = None, W: int | None = None):
    g = torch.Generator().manual_seed(seed)
    px = pixels(backbone)
    return torch.randn(B, T * snippet(backbone), 3, H or px, W or px, generator=g)


def randomise_gsm_gates(model: torch.nn.Module, seed: int = 0) -> int:
    """Zero-initialised gates make a GSM a fixed permutation (and block gradients into its BN): perturb them."""
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, gsm.GateShift):
                m.conv3D.weight.copy_(torch.randn(m.conv3D.weight.shape, generator=g) * 0.5)
                n += 1
    return n


def loss_of(out: dict[str, torch.Tensor]) -> torch.Tensor:
    y = torch.tensor([1, 3])
    return sum(F.cross_entropy(out[k], y) for k in ("verb", "noun", "action"))


# --------------------------------------------------------------------------------------------------
# Registry sweep


@pytest.mark.parametrize("method, backbone", PAIRS)
def test_forward_backward_every_pair(method: str, backbone: str) -> None:
    model = build(method, backbone)
    assert randomise_gsm_gates(model) > 0 if "gsm" in method else True
    model.set_stage(model.num_stages)
    model.train()
    out = model(clip(backbone))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"verb": (2, V), "noun": (2, N), "action": (2, A)}
    assert all(torch.isfinite(v).all() for v in out.values())
    loss_of(out).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    silent = [n for n, p in trainable if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"no gradient: {silent}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    json.dumps(model.model_args)


def test_unknown_names_and_pairs_fail_with_the_valid_list() -> None:
    with pytest.raises(ValueError, match="tsn, gsm, egoaco, gsm_egoaco"):
        models.build_model("i3d", "res34", V, N, A)
    with pytest.raises(ValueError, match="bninc, incv3"):
        models.build_model("gsm_egoaco", "res34", V, N, A)
    with pytest.raises(ValueError, match="top_stage, fc"):
        build("egoaco", "res34", egoaco_clone="layer4")
    with pytest.raises(ValueError, match="report, context, concat"):
        build("egoaco", "res34", egoaco_wiring="verb_only")
    with pytest.raises(ValueError, match="no GSM"):
        build("tsn", "res34", gsm_options={"interleave": False})


# --------------------------------------------------------------------------------------------------
# Order: TSN averages (order-invariant), GSM shifts in time, EgoACO recurs


@pytest.mark.parametrize("method, sensitive", [("tsn", False), ("gsm", True), ("egoaco", True)])
def test_frame_order(method: str, sensitive: bool) -> None:
    model = build(method, "res34", T=4)
    randomise_gsm_gates(model)
    model.eval()
    x = clip("res34", T=4)
    with torch.no_grad():
        a, b = model(x)["verb"], model(x.flip(1))["verb"]
    if sensitive:
        assert not torch.allclose(a, b, atol=1e-6)
    else:
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------------------
# Layout and leakage


@pytest.mark.parametrize("method", ["gsm", "egoaco"])
def test_no_cross_video_leakage_in_eval(method: str) -> None:
    model = build(method, "res34", T=3).eval()
    randomise_gsm_gates(model)
    x = clip("res34", B=3, T=3)
    y = x.clone()
    y[1] += torch.randn_like(y[1])
    with torch.no_grad():
        a, b = model(x)["action"], model(y)["action"]
        alone = model(x[2:3])["action"]
    torch.testing.assert_close(a[[0, 2]], b[[0, 2]])
    assert not torch.allclose(a[1], b[1])
    torch.testing.assert_close(alone, a[2:3], atol=1e-5, rtol=1e-4)


def test_fold_clip_layouts() -> None:
    x = torch.arange(2 * 6).float().view(2, 6, 1, 1, 1).expand(2, 6, 3, 2, 2)  # frame index in every pixel
    frames = models.fold_clip(x, 1, is_3d=False)
    assert frames.shape == (12, 3, 2, 2) and frames[7, 0, 0, 0] == 7  # video 1, frame 1
    snippets = models.fold_clip(x, 3, is_3d=True)  # (B*T, C, L, H, W), T = 2 snippets of 3 frames
    assert snippets.shape == (4, 3, 3, 2, 2)
    assert snippets[:, 0, :, 0, 0].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    with pytest.raises(ValueError, match="multiple of snippet_length"):
        models.fold_clip(x[:, :5], 3, is_3d=True)
    with pytest.raises(ValueError, match="single frames"):
        models.fold_clip(x, 3, is_3d=False)


def test_gsm_model_rejects_other_segment_counts() -> None:
    model = build("gsm", "res34", T=2)
    with pytest.raises(ValueError, match="num_segments=2"):
        model(clip("res34", T=3))


# --------------------------------------------------------------------------------------------------
# EgoACO: cloning, stages, options


@pytest.mark.parametrize("clone", ["top_stage", "fc"])
def test_cloned_branches_equal_at_clone_time_then_independent(clone: str) -> None:
    model = build("egoaco", "res34", egoaco_clone=clone).eval()
    x = clip("res34")
    with torch.no_grad():
        x_act, x_obj, x_ctx = model.branch_maps(x)
    torch.testing.assert_close(x_act, x_obj, rtol=0, atol=0)
    torch.testing.assert_close(x_act, x_ctx, rtol=0, atol=0)
    dicts = [model.lsta.dictionary, model.obj_pool.dictionary, model.ctx_pool.dictionary]
    for d in dicts[1:]:
        torch.testing.assert_close(d.weight, dicts[0].weight, rtol=0, atol=0)
    if clone == "fc":
        assert model.tops is None
        return
    # One SGD step on a loss that touches only the action branch changes it, not the other two.
    model.set_stage(2)
    before = {k: [p.detach().clone() for p in model.tops[k].parameters()] for k in ("act", "obj", "ctx")}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.lsta(model.branch_maps(x)[0])[0].sum().backward()
    opt.step()
    for k, changed in (("act", True), ("obj", False), ("ctx", False)):
        same = all(torch.equal(a, b) for a, b in zip(before[k], model.tops[k].parameters(), strict=True))
        assert same != changed, k


def trainable_prefixes(model: torch.nn.Module) -> set[str]:
    return {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("backbone.") else "")
            for n, p in model.named_parameters() if p.requires_grad}  # fmt: skip


def test_egoaco_stages_and_frozen_batchnorm() -> None:
    model = build("egoaco", "res34")
    assert model.num_stages == 3 and model.stage == 1
    assert trainable_prefixes(model) == {"lsta", "obj_pool", "head"}
    assert not model.lsta.dictionary.weight.requires_grad  # the dictionaries come with the cloned heads
    model.train()
    assert not model.tops["act"][0][0].bn1.training and not model.backbone.bn1.training
    model.set_stage(2)
    assert trainable_prefixes(model) == {"lsta", "obj_pool", "ctx_pool", "head", "tops"}
    assert model.tops["act"][0][0].bn1.training and not model.backbone.layer3[0].bn1.training
    model.set_stage(3)
    assert trainable_prefixes(model) == {"lsta", "obj_pool", "ctx_pool", "head", "tops", "backbone.layer3"}
    assert model.backbone.layer3[0].bn1.training and not model.backbone.layer2[0].bn1.training
    model.eval()
    assert not any(m.training for m in model.modules() if isinstance(m, _BatchNorm))
    with pytest.raises(ValueError, match="1..3"):
        model.set_stage(4)

    fc = build("egoaco", "res34", egoaco_clone="fc")
    fc.set_stage(2)
    assert "backbone.layer4" in trainable_prefixes(fc) and "backbone.layer3" not in trainable_prefixes(fc)

    tsn = build("tsn", "res34")
    assert tsn.num_stages == 1 and not tsn.backbone.fc.weight.requires_grad  # kept (plain state dict), unused
    assert {n for n, p in tsn.named_parameters() if not p.requires_grad} == {"backbone.fc.weight", "backbone.fc.bias"}


def test_inception_egoaco_clones_last_blocks_and_stage3() -> None:
    model = build("gsm_egoaco", "bninc")
    assert list(model.tops["obj"]._modules) == ["inception_5a", "inception_5b"]
    assert model.stage3 == ("inception_4c", "inception_4d", "inception_4e")
    assert sum(isinstance(m, gsm.GateShift) for m in model.tops["ctx"].modules()) == 2  # each clone has its own


@pytest.mark.parametrize("wiring", ["report", "context", "concat"])
def test_egoaco_wiring(wiring: str) -> None:
    """report: the verb logits depend on d_act only, the noun logits on d_obj only (with zero bias maps)."""
    model = build("egoaco", "res34", egoaco_wiring=wiring, cap_selection="soft").eval()
    d = model.descriptors(clip("res34"))
    for k in ("act", "obj", "ctx"):
        d[k].requires_grad_(True)
    dims = models.egoaco_head_dims(wiring, 16, 64)
    assert (model.head.verb.in_features, model.head.noun.in_features, model.head.action.in_features) == dims
    act, obj, ctx = d["act"], d["obj"], d["ctx"]
    everything = torch.cat([act, obj, ctx], 1)
    feeds = {"report": (act, obj), "context": (torch.cat([act, ctx], 1), torch.cat([obj, ctx], 1)),
             "concat": (everything, everything)}[wiring]  # fmt: skip
    out = model.head(*feeds, everything)
    grads = torch.autograd.grad(out["verb"].sum(), (act, obj, ctx))
    uses = [bool(g.abs().sum() > 0) for g in grads]
    assert uses == {"report": [True, False, False], "context": [True, False, True], "concat": [True] * 3}[wiring]
    torch.testing.assert_close(model(clip("res34"))["verb"], out["verb"])  # forward wires the same way


def test_egoaco_attention_maps_sum_to_one() -> None:
    model = build("egoaco", "r2p1d34").eval()
    with torch.no_grad():
        d = model.descriptors(clip("r2p1d34", T=3))
    assert d["act"].shape == (2, 16) and d["obj"].shape == (2, 64) and d["ctx"].shape == (2, 64)
    for k in ("att_act", "att_obj", "att_ctx"):
        assert d[k].shape == (2, 3, 4, 4)  # 64 px -> 4x4 at layer4
        assert (d[k] >= 0).all()
        torch.testing.assert_close(d[k].sum((2, 3)), torch.ones(2, 3))
    with torch.no_grad():  # a 3-frame snippet leaves time 1 at layer4, squeezed per snippet
        shared = backbones.run_children(model.backbone, model.shared, models.fold_clip(clip("r2p1d34", T=3), 3, True))
        assert model.tops["act"](shared).shape == (6, 64, 1, 4, 4)


def test_dictionaries_start_from_the_backbone_classifier(tmp_path) -> None:
    from egolib import backbones, runs

    torch.manual_seed(3)
    net = backbones.build_backbone("res34", width=0.125)
    net.fc = torch.nn.Linear(64, 11)  # e.g. a stand-in pretraining with 11 object classes
    runs.save_torch(tmp_path / "backbone.pt", net.state_dict())
    model = build("egoaco", "res34", backbone_weights=str(tmp_path / "backbone.pt"), pretrain="imagenet")
    assert model.model_args["dictionary_size"] == 11
    for d in (model.lsta.dictionary, model.obj_pool.dictionary, model.ctx_pool.dictionary):
        torch.testing.assert_close(d.weight, net.fc.weight)
    torch.testing.assert_close(model.tops["act"][0][0].conv1.weight, net.layer4[0].conv1.weight)


# --------------------------------------------------------------------------------------------------
# Fully-convolutional inference and the head's linearity


def test_full_frame_inference_equals_mean_of_per_position_logits() -> None:
    """On a full 64x96 frame, GAP + head == mean over positions and frames of head logits."""
    model = build("gsm", "res34", T=2).eval()
    randomise_gsm_gates(model)
    with torch.no_grad():
        torch.nn.init.normal_(model.head.action_to_verb.weight)
        x = clip("res34", H=64, W=96)
        out = model(x)
        f = model.frame_features(x)  # (B, T, C, h, w)
        assert f.shape[-2:] == (2, 3)
        per_position = model.head(*(f.permute(0, 1, 3, 4, 2),) * 3)  # (B, T, h, w, .)
    for k in ("verb", "noun", "action"):
        torch.testing.assert_close(out[k], per_position[k].mean((1, 2, 3)), atol=1e-5, rtol=1e-4)


def test_224px_map_is_7x7_so_global_pooling_equals_the_fixed_avgpool() -> None:
    """At 224 px the final map is 7x7, where adaptive GAP == the reference AvgPool(7)."""
    model = build("gsm", "bninc", T=2).eval()
    with torch.no_grad():
        f = model.frame_features(clip("bninc", H=224, W=224))  # (B, T, C, h, w)
    assert f.shape[-2:] == (7, 7)
    fixed = F.avg_pool2d(f.flatten(0, 1), 7).flatten(1)  # (B*T, C)
    torch.testing.assert_close(f.mean((3, 4)).flatten(0, 1), fixed)


# --------------------------------------------------------------------------------------------------
# Checkpoints and cost


@pytest.mark.parametrize("method, backbone", [("tsn", "r2p1d34"), ("gsm_egoaco", "bninc")])
def test_load_model_round_trip(tmp_path, method: str, backbone: str) -> None:
    model = build(method, backbone)
    randomise_gsm_gates(model)
    model.set_stage(2 if model.num_stages > 1 else 1)
    models.save_model(tmp_path / "ckpt.pt", model, epoch=3)
    again = models.load_model(tmp_path / "ckpt.pt")
    assert again.model_args == model.model_args and again.stage == model.stage and not again.training
    x = clip(backbone)
    with torch.no_grad():
        a, b = model.eval()(x), again(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_load_model_keeps_a_pretrained_classifier_size(tmp_path) -> None:
    """A backbone file with a non-default fc (stand-in / IG-65M classes) round-trips through load_model."""
    from egolib import backbones, runs

    net = backbones.build_backbone("res34", width=0.125)
    net.fc = torch.nn.Linear(64, 11)
    runs.save_torch(tmp_path / "backbone.pt", net.state_dict())
    model = build("tsn", "res34", backbone_weights=str(tmp_path / "backbone.pt"), pretrain="imagenet")
    assert model.backbone.fc.out_features == 11
    models.save_model(tmp_path / "ckpt.pt", model)
    again = models.load_model(tmp_path / "ckpt.pt")
    assert again.backbone.fc.out_features == 11 and not again.backbone.fc.weight.requires_grad
    torch.testing.assert_close(again.backbone.fc.weight, net.fc.weight, rtol=0, atol=0)


def test_gsm_egoaco_starts_from_a_gsm_trained_backbone(tmp_path) -> None:
    """The report's GSM + EgoACO starts from an EPIC-trained GSM backbone: its gates load after insertion."""
    from egolib import runs

    trained = build("gsm", "bninc", T=4)
    for name, p in trained.backbone.named_parameters():
        if ".gsm." in name:
            torch.nn.init.normal_(p)  # as if trained: gates no longer zero
    runs.save_torch(tmp_path / "gsm_backbone.pt", trained.backbone.state_dict())
    model = build("gsm_egoaco", "bninc", T=4, backbone_weights=str(tmp_path / "gsm_backbone.pt"), pretrain="epic")
    own = dict(model.named_parameters())
    gates = {k: v for k, v in trained.backbone.named_parameters() if ".gsm." in k and k.startswith("inception_3")}
    assert gates, "no GSM gate parameters found"
    for k, v in gates.items():
        torch.testing.assert_close(own[f"backbone.{k}"], v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds a GSM backbone"):
        build("egoaco", "incv3", T=4, backbone_weights=str(tmp_path / "gsm_backbone.pt"))


def test_load_model_rejects_other_files(tmp_path) -> None:
    from egolib import runs

    runs.save_torch(tmp_path / "x.pt", {"weights": torch.zeros(1)})
    with pytest.raises(ValueError, match="model_args"):
        models.load_model(tmp_path / "x.pt")


def test_params_and_flops() -> None:
    tsn, gsm_model = build("tsn", "res34", T=4), build("gsm", "res34", T=4)
    assert models.count_params(gsm_model) > models.count_params(tsn) > models.count_params(tsn, trainable=True) > 0
    f_tsn = models.flops_per_clip(tsn, (4, 3, 64, 64))
    f_gsm = models.flops_per_clip(gsm_model, (4, 3, 64, 64))
    assert 0 < f_tsn < f_gsm < 1.1 * f_tsn
    assert models.flops_per_clip(tsn, (8, 3, 64, 64)) == 2 * f_tsn  # per-clip cost = T x per-frame
    assert tsn.training  # restored


def test_gsm_adds_under_one_percent_flops_at_width_1() -> None:
    """BN-Inception at 224 px: the 10 GSMs add under 1 % FLOPs (only convs/matmuls are counted).

    The extra cost is exactly the gate convs: 27 C H W MACs per GSM and frame, C and H x W of each GSM's host conv.
    """
    table = [(64, 28), (64, 28), (128, 28), (224, 14), (192, 14), (160, 14), (96, 14), (128, 14), (352, 7), (352, 7)]
    T = 2
    tsn, gsm_model = build("tsn", "bninc", T=T, width=1.0), build("gsm", "bninc", T=T, width=1.0)
    f_tsn = models.flops_per_clip(tsn, (T, 3, 224, 224))
    f_gsm = models.flops_per_clip(gsm_model, (T, 3, 224, 224))
    assert f_gsm - f_tsn == 2 * T * sum(27 * c * hw * hw for c, hw in table)  # 2 FLOPs per MAC
    assert 1.002 < f_gsm / f_tsn < 1.01
