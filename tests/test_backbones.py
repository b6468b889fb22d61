"""Backbones: standard parameter counts and strict checkpoint loading at width 1, depth-preserving narrow widths."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.video import resnet as tv_video

from egolib.backbones import BACKBONES, build_backbone, forward_features, kernel_taps_used, untrained_taps
from egolib.gsm import insert_gsm
from egolib.runs import save_torch


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def n_convs(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Conv3d)) for m in model.modules())


# --------------------------------------------------------------------------------------------------
# Width 1: the standard networks


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("res34", torchvision.models.resnet34),
        ("res101", torchvision.models.resnet101),
        ("res152", torchvision.models.resnet152),
        ("incv3", lambda: torchvision.models.inception_v3(aux_logits=False, init_weights=False)),
    ],
)
def test_width1_parameter_count_equals_torchvision(name, reference):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        ours, theirs = build_backbone(name), reference()
    assert n_params(ours) == n_params(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_bninception_size_and_tsn_layout():
    """11.295 M params with 1000 classes (conv biases on), 10.449 M with 174."""
    with torch.device("meta"):
        model = build_backbone("bninc")
    assert n_params(model) == 11_295_240
    assert n_params(model) - 1025 * (1000 - 174) == 10_448_590
    keys = model.state_dict().keys()
    for key in ("conv1_7x7_s2.bias", "conv2_3x3_bn.running_var", "inception_3c.3x3_reduce.weight",
                "inception_5b.pool_proj_bn.weight", "fc.weight"):  # fmt: skip
        assert key in keys
    assert model.spec.feature_dim == 1024


def test_r2p1d34_ig65m_definition():
    with torch.device("meta"):
        model = build_backbone("r2p1d34")
    mids = [model.get_submodule(f"layer{i}").get_submodule("0.conv2.0.0").out_channels for i in (2, 3, 4)]
    assert mids == [288, 576, 1152]  # the Caffe2 mid-channel fix
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    # eps as Caffe2; momentum 0.1 in PyTorch terms = Caffe2's 0.9 (ig65m-pytorch's literal 0.9 is a deviation we fix)
    assert len(bns) > 0 and all(m.eps == 1e-3 and m.momentum == 0.1 for m in bns)


# --------------------------------------------------------------------------------------------------
# Checkpoints


def test_torchvision_resnet_loads_strictly_and_survives_gsm(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet34()
    path = tmp_path / "resnet34.pth"
    save_torch(path, reference.state_dict())
    model = build_backbone("res34", weights=path)
    want = reference.state_dict()
    got = model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert insert_gsm(model, 4) == 16
    after = model.state_dict()
    for k, v in want.items():  # host convs moved to <name>.conv.weight, everything else in place
        k2 = k.replace(".conv2.weight", ".conv2.conv.weight") if k.startswith("layer") else k
        assert torch.equal(after[k2], v), k
    model.eval()
    x = torch.randn(4, 3, 64, 64)
    reference.eval()
    with torch.no_grad():
        plain = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))  # fmt: skip
        for m in model.modules():
            if hasattr(m, "interleave"):
                m.interleave = False
        torch.testing.assert_close(forward_features(model, x), plain, rtol=0, atol=0)


def test_torchvision_inceptionv3_loads_without_aux(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.inception_v3(aux_logits=True, init_weights=False)
    path = tmp_path / "incv3.pth"
    save_torch(path, {"state_dict": reference.state_dict()})
    model = build_backbone("incv3", weights=path)
    want = {k: v for k, v in reference.state_dict().items() if not k.startswith("AuxLogits.")}
    got = model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_tsn_bninception_file_loads(tmp_path):
    """A file in the TSN layout (top-level ids, a leading singleton dim on every tensor) loads strictly."""
    torch.manual_seed(0)
    source = build_backbone("bninc")
    tsn = {}
    for k, v in source.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # the TSN file predates this buffer
        k = k.replace(".", "_", 1) if k.startswith("inception_") else k
        tsn[k] = v.unsqueeze(0)
    assert "inception_3a_1x1.weight" in tsn and "inception_4e_double_3x3_2_bn.running_mean" in tsn
    path = tmp_path / "bn_inception.pth"
    save_torch(path, tsn)
    model = build_backbone("bninc", weights=path)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked"))


def test_ig65m_r2p1d34_loads_with_its_classifier(tmp_path):
    """The ig65m-pytorch definition (torchvision VideoResNet + fix, 359 classes) loads strictly; fc adopts 359."""
    torch.manual_seed(0)
    ref = tv_video.VideoResNet(tv_video.BasicBlock, [tv_video.Conv2Plus1D] * 4, [3, 4, 6, 3], tv_video.R2Plus1dStem)
    ref.fc = nn.Linear(512, 359)  # the 8-frame IG-65M file
    for layer, p in ((ref.layer2, 128), (ref.layer3, 256), (ref.layer4, 512)):
        layer[0].conv2[0] = tv_video.Conv2Plus1D(p, p, {128: 288, 256: 576, 512: 1152}[p])
    path = tmp_path / "r2plus1d_34_clip8_ig65m_from_scratch.pth"
    save_torch(path, ref.state_dict())
    model = build_backbone("r2p1d34", weights=path)
    assert model.fc.out_features == 359
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in ref.state_dict().items())


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="resnet34-b627a593.pth") as err:
        build_backbone("res34", weights="imagenet")
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value) and "download.pytorch.org" in str(err.value)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_backbone("bninc", weights=tmp_path / "nope.pth")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    save_torch(tmp_path / "hub" / "checkpoints" / "resnet34-b627a593.pth", torchvision.models.resnet34().state_dict())
    assert build_backbone("res34", weights="imagenet").fc.out_features == 1000  # found in the hub cache


def test_registry_and_width_errors():
    with pytest.raises(ValueError, match="choose one of bninc, incv3, res34"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="multiple of 1/8"):
        build_backbone("incv3", width=0.3)


# --------------------------------------------------------------------------------------------------
# Narrow widths: same depth, runs on small inputs


@pytest.mark.parametrize("name", list(BACKBONES))
def test_narrow_widths_keep_depth_and_run(name):
    with torch.device("meta"):
        depth = n_convs(build_backbone(name))
    for width in (0.25, 0.125):
        torch.manual_seed(0)
        model = build_backbone(name, width=width).eval()
        assert n_convs(model) == depth
        spec = model.spec
        if spec.is_3d:
            x = torch.randn(2, 3, 3, 64, 64)
        else:
            x = torch.randn(2, 3, 80, 80).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            feats = forward_features(model, x)
            logits = model(x)
        assert feats.shape[:2] == (2, spec.feature_dim) and feats.dim() == 4 and torch.isfinite(feats).all()
        assert logits.shape == (2, 400 if spec.is_3d else 1000)
        assert set(spec.top) <= set(spec.trunk) and set(spec.stage3) <= set(spec.trunk)
        assert spec.trunk.index(spec.stage3[-1]) < spec.trunk.index(spec.top[0])


def test_bninception_full_frame_odd_sizes():
    """Full-frame inference: 256x455 frames work (the reference's ceil pooling would not)."""
    model = build_backbone("bninc", width=0.125).eval()
    with torch.no_grad():
        assert forward_features(model, torch.randn(1, 3, 256, 455)).shape == (1, 128, 8, 15)


# --------------------------------------------------------------------------------------------------
# Geometry: kernel taps that read the image at a given input size


def test_kernel_taps_used_are_the_taps_that_get_a_gradient():
    torch.manual_seed(0)
    net = build_backbone("incv3", width=0.125)
    x = torch.randn(2, 3, 80, 80)
    forward_features(net, x).square().sum().backward()
    used = kernel_taps_used(net, (3, 80, 80))
    for name in ("Mixed_7b.branch3x3_2a.conv", "Mixed_7c.branch3x3dbl_2.conv", "Mixed_6b.branch7x7_2.conv",
                 "Conv2d_1a_3x3.conv"):
        grad = net.get_submodule(name).weight.grad.abs().sum((0, 1))  # (kh, kw)
        mask = torch.tensor(used[name][0])[:, None] & torch.tensor(used[name][1])[None, :]
        assert torch.equal(grad > 0, mask), name
    assert used["Mixed_7b.branch3x3_2a.conv"] == ((True,), (False, True, False))  # 1x1 map: the centre tap only


def test_untrained_taps_flag_inceptionv3_at_80px_tested_on_full_frames():
    net = build_backbone("incv3", width=0.25)
    bad = untrained_taps(net, (3, 80, 80), (3, 91, 162))
    assert any(b.startswith("Mixed_7b.") for b in bad) and any(b.startswith("Mixed_6b.") for b in bad)
    assert untrained_taps(net, (3, 80, 80), (3, 80, 80)) == []  # the centre crop reads what training trained
    assert untrained_taps(net, (3, 107, 107), (3, 122, 217)) == []
    assert untrained_taps(build_backbone("res34", width=0.25), (3, 80, 80), (3, 91, 162)) == []
