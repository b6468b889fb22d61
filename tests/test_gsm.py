"""Gate-Shift Module: its invariants and the insertion positions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egolib.backbones import build_backbone, forward_features
from egolib.gsm import (
    ConvGSM,
    GateShift,
    gate_shift_fuse,
    gsm_positions,
    insert_gsm,
    interleave_permutation,
    reference_gate_shift,
    shift_time,
)

IMPLS = ("conv2d", "conv3d")


def random_gsm(C: int, T: int, *, interleave: bool = True, impl: str = "conv2d", seed: int = 0) -> GateShift:
    torch.manual_seed(seed)
    gsm = GateShift(C, T, interleave=interleave, gate_impl=impl).double()
    with torch.no_grad():
        gsm.conv3D.weight.normal_(0, 0.3)
        gsm.conv3D.bias.normal_(0, 0.3)
        gsm.bn.running_mean.normal_(0, 0.5)
        gsm.bn.running_var.uniform_(0.5, 2.0)
        gsm.bn.weight.uniform_(0.5, 1.5)
        gsm.bn.bias.normal_(0, 0.3)
    return gsm


def frames(B: int, T: int, C: int, H: int = 5, W: int = 6, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(B * T, C, H, W, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# Pure helpers


def test_shift_time_directions_and_zero_fill():
    x = torch.arange(1.0, 5.0).view(1, 4)  # time on dim 1
    assert shift_time(x, +1).tolist() == [[2.0, 3.0, 4.0, 0.0]]
    assert shift_time(x, -1).tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert shift_time(x[:, :1], +1).tolist() == [[0.0]]  # T = 1: everything shifts out


def test_interleave_permutation_matches_spec():
    assert interleave_permutation(8) == [0, 2, 1, 3, 4, 6, 5, 7]


def test_fuse_rejects_nothing_silently_on_T1():
    x = torch.randn(2, 1, 8, 3, 3, dtype=torch.float64)
    g = torch.full((2, 1, 2, 3, 3), 0.25, dtype=torch.float64)
    out = gate_shift_fuse(x, g, interleave=False)  # §8.9: shift terms vanish, out = (1 - g) x
    torch.testing.assert_close(out, 0.75 * x, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Module invariants


@pytest.mark.parametrize("impl", IMPLS)
def test_shape_and_validation(impl):
    gsm = GateShift(8, 3, gate_impl=impl)
    x = torch.randn(6, 8, 7, 9)
    assert gsm(x).shape == x.shape
    with pytest.raises(ValueError, match="divisible by 4"):
        GateShift(6, 3)
    with pytest.raises(ValueError, match="multiple of num_segments"):
        gsm(torch.randn(5, 8, 7, 9))
    with pytest.raises(ValueError, match="gate_impl"):
        GateShift(8, 3, gate_impl="fft")


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_gate_is_permutation_or_identity(impl):
    x = frames(2, 4, 8)
    out_perm = GateShift(8, 4, gate_impl=impl).double()(x)
    torch.testing.assert_close(out_perm, x[:, [0, 2, 1, 3, 4, 6, 5, 7]], rtol=0, atol=0)
    out_id = GateShift(8, 4, interleave=False, gate_impl=impl).double()(x)
    torch.testing.assert_close(out_id, x, rtol=0, atol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("interleave", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_matches_reference_equations(impl, interleave, train):
    gsm = random_gsm(16, 4, interleave=interleave, impl=impl).train(train)
    x = frames(3, 4, 16)
    ref = reference_gate_shift(random_gsm(16, 4, interleave=interleave, impl=impl).train(train), x)
    torch.testing.assert_close(gsm(x), ref, rtol=1e-12, atol=1e-12)


def test_fast_gate_equals_conv3d():
    """The conv2d(C -> 6) + temporal shift-add gate is exactly F.conv3d (float64, random weights)."""
    gsm = random_gsm(16, 5).eval()
    x = frames(2, 5, 16, 6, 7)
    fast = gsm.gate(x)
    gsm.gate_impl = "conv3d"
    native = gsm.gate(x)
    B, T, C, H, W = 2, 5, 16, 6, 7
    v = F.relu(gsm.bn(x.view(B, T, C, H, W).transpose(1, 2)))
    direct = torch.tanh(F.conv3d(v, gsm.conv3D.weight, gsm.conv3D.bias, padding=1, groups=2)).transpose(1, 2)
    torch.testing.assert_close(fast, direct, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(native, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_forced_gates_shift_the_right_way(impl):
    B, T, C = 2, 4, 8
    x = frames(B, T, C)
    gsm = GateShift(C, T, interleave=False, gate_impl=impl).double()
    v = x.view(B, T, C, 5, 6)
    shifted = torch.cat([shift_time(v[:, :, : C // 2], +1), shift_time(v[:, :, C // 2 :], -1)], dim=2)
    with torch.no_grad():
        gsm.conv3D.bias.fill_(50.0)  # tanh(50) == 1.0 in float64: gate +1
    out = gsm(x).view(B, T, C, 5, 6)
    torch.testing.assert_close(out, shifted, rtol=0, atol=0)
    assert torch.equal(out[:, :-1, : C // 2], v[:, 1:, : C // 2])  # half 0 at t = input at t+1
    assert out[:, -1, : C // 2].abs().max() == 0  # ... last frame zero
    assert torch.equal(out[:, 1:, C // 2 :], v[:, :-1, C // 2 :])  # half 1 at t = input at t-1
    assert out[:, 0, C // 2 :].abs().max() == 0  # ... first frame zero
    with torch.no_grad():
        gsm.conv3D.bias.fill_(-50.0)  # gate -1: 2x - shift(x)
    torch.testing.assert_close(gsm(x).view(B, T, C, 5, 6), 2 * v - shifted, rtol=0, atol=1e-15)
    # with the interleave on, undoing the permutation gives the same
    gsm.interleave = True
    undo = torch.argsort(torch.tensor(interleave_permutation(C)))
    torch.testing.assert_close(gsm(x)[:, undo].view(B, T, C, 5, 6), 2 * v - shifted, rtol=0, atol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
def test_gate_grouping(impl):
    """Gate map 0 depends only on channels [0, C/2), map 1 only on [C/2, C) (groups=2)."""
    gsm = random_gsm(16, 3, impl=impl).eval()
    x = frames(2, 3, 16)
    g = gsm.gate(x)
    x_hi, x_lo = x.clone(), x.clone()
    x_hi[:, 8:] += torch.randn_like(x_hi[:, 8:])
    x_lo[:, :8] += torch.randn_like(x_lo[:, :8])
    g_hi, g_lo = gsm.gate(x_hi), gsm.gate(x_lo)
    torch.testing.assert_close(g_hi[:, :, 0], g[:, :, 0], rtol=0, atol=0)
    torch.testing.assert_close(g_lo[:, :, 1], g[:, :, 1], rtol=0, atol=0)
    assert not torch.allclose(g_hi[:, :, 1], g[:, :, 1]) and not torch.allclose(g_lo[:, :, 0], g[:, :, 0])


@pytest.mark.parametrize("impl", IMPLS)
def test_temporal_receptive_field_is_t_minus_2_to_t_plus_2(impl):
    B, T, C, t = 1, 9, 8, 4
    gsm = random_gsm(C, T, impl=impl).eval()
    x = frames(B, T, C)
    out = gsm(x)
    outside = x.clone()
    for s in [0, 1, 7, 8]:  # frames outside [t-2, t+2]
        outside[s] += torch.randn_like(outside[s])
    torch.testing.assert_close(gsm(outside)[t], out[t], rtol=0, atol=0)
    for s in [t - 2, t + 2]:  # the window's edges do reach frame t
        inside = x.clone()
        inside[s] += torch.randn_like(inside[s])
        assert not torch.allclose(gsm(inside)[t], out[t])


@pytest.mark.parametrize("impl", IMPLS)
def test_no_cross_video_leakage_in_eval(impl):
    B, T, C = 2, 4, 8
    gsm = random_gsm(C, T, impl=impl).eval()
    x = frames(B, T, C)
    out = gsm(x)
    x2 = x.clone()
    x2[T:] += torch.randn_like(x2[T:])  # perturb video 1 only
    out2 = gsm(x2)
    torch.testing.assert_close(out2[:T], out[:T], rtol=0, atol=0)
    assert not torch.allclose(out2[T:], out[T:])


@pytest.mark.parametrize("T", [1, 4])
def test_gradients_reach_gate_at_zero_init(T):
    gsm = GateShift(8, T, interleave=False).double()
    x = frames(2, T, 8).requires_grad_(True)
    out = gsm(x)
    if T == 1:
        torch.testing.assert_close(out, x, rtol=0, atol=0)
    (out * torch.randn_like(out)).sum().backward()
    assert gsm.conv3D.weight.grad.abs().sum() > 0 and gsm.conv3D.bias.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_channels_last_in_channels_last_out(impl):
    gsm = random_gsm(16, 4, impl=impl).float().eval()
    x = frames(2, 4, 16).float()
    out = gsm(x)
    out_cl = gsm(x.contiguous(memory_format=torch.channels_last))
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, out, rtol=1e-5, atol=1e-5)


def test_dtypes_float64_and_bfloat16_autocast():
    gsm = random_gsm(16, 4).float().eval()
    x = frames(2, 4, 16).float()
    ref = gsm(x)
    out64 = gsm.double()(x.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), ref, rtol=1e-5, atol=1e-5)
    gsm.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16 = gsm(x.bfloat16())
        loss = out16.float().square().mean()
    assert out16.dtype == torch.bfloat16 and torch.isfinite(out16).all()
    torch.testing.assert_close(out16.float(), ref, rtol=0.05, atol=0.05)
    loss.backward()
    assert torch.isfinite(gsm.conv3D.weight.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    gsm = random_gsm(16, 4).float().eval()
    x = frames(2, 4, 16).float()
    torch.testing.assert_close(gsm.cuda()(x.cuda()).cpu(), gsm.cpu()(x), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# Insertion into backbones


def _gsm_params(model) -> list[int]:
    return [sum(p.numel() for p in m.parameters()) for m in model.modules() if isinstance(m, GateShift)]


def test_parameter_overhead_width1_bninception_and_inceptionv3():
    """Counted as params(backbone with GSMs) - params(backbone), same backbone object, at width 1.

    The reference replaces the backbone's fc by Dropout + a new fc; the GSMs sit in the trunk,
    so the difference does not depend on the head (here the backbone's own 1000-class fc is kept on both sides).
    """
    expected = {"bninc": (51_060, [64, 64, 128, 224, 192, 160, 96, 128, 352, 352]),
                "incv3": (48_276, [64, 64, 64, 64, 192, 192, 192, 192, 320, 320])}  # fmt: skip
    for name, (delta, channels) in expected.items():
        model = build_backbone(name)
        before = sum(p.numel() for p in model.parameters())
        assert insert_gsm(model, 8) == 10
        assert sum(p.numel() for p in model.parameters()) - before == delta
        assert _gsm_params(model) == [29 * c + 2 for c in channels]  # per module 29C + 2, in §1.3 order


def test_insertion_counts_and_positions():
    bni = build_backbone("bninc", width=0.125)
    assert gsm_positions(bni)[2] == "inception_3c.3x3_reduce" and len(gsm_positions(bni)) == 10
    inc = build_backbone("incv3", width=0.125)
    assert not any(p.startswith("Mixed_6d") for p in gsm_positions(inc))
    assert insert_gsm(inc, 4, skip_mixed_6d=False) == 11
    assert isinstance(inc.Mixed_6d.branch1x1.conv, ConvGSM) and isinstance(inc.Mixed_6a.branch3x3dbl_1.conv, ConvGSM)
    counts = {"res34": 16, "res101": 33, "res152": 50}  # one per residual block, every stage
    for name, n in counts.items():
        net = build_backbone(name, width=0.125)
        assert insert_gsm(net, 4) == n
        last = "conv3" if name != "res34" else "conv2"
        assert all(
            isinstance(getattr(b, last), ConvGSM) for layer in ("layer1", "layer4") for b in net.get_submodule(layer)
        )
    r101 = build_backbone("res101", width=0.125)
    assert insert_gsm(r101, 4, resnet_convs=("conv1", "conv2", "conv3")) == 99
    with pytest.raises(ValueError, match="already inserted"):
        insert_gsm(r101, 4)
    with pytest.raises(ValueError, match="2D backbones only"):
        insert_gsm(build_backbone("r2p1d34", width=0.125), 4)


@pytest.mark.parametrize("name", ["bninc", "incv3", "res34", "res101"])
def test_zero_gate_without_interleave_reproduces_backbone(name):
    """§8.8: interleave off + zero gate == the plain backbone exactly; interleave on does not (quirk 7.1-1)."""
    torch.manual_seed(0)
    T = 3
    net = build_backbone(name, width=0.125).eval()
    x = torch.randn(2 * T, 3, 80, 80).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        plain = forward_features(net, x)
        insert_gsm(net, T, interleave=False)
        same = forward_features(net.eval(), x)
        for m in net.modules():
            if isinstance(m, GateShift):
                m.interleave = True
        permuted = forward_features(net, x)
    torch.testing.assert_close(same, plain, rtol=0, atol=0)
    assert (permuted - plain).abs().max() > 1e-3 * plain.abs().max()


def test_backbone_with_gsm_trains_one_step():
    torch.manual_seed(0)
    net = build_backbone("res34", width=0.125)
    insert_gsm(net, 4)
    x = torch.randn(8, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    forward_features(net, x).mean().backward()
    assert all(m.conv3D.weight.grad.abs().sum() > 0 for m in net.modules() if isinstance(m, GateShift))


# --------------------------------------------------------------------------------------------------
# The hand-written backward passes (egolib computes the gate and the fusion outside autograd's node-per-op graph)


@pytest.mark.parametrize("hw", [(5, 6), (1, 1), (1, 3)])
@pytest.mark.parametrize("interleave", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_gradients_match_reference(hw, interleave, train):
    """Input and parameter gradients equal autograd through the literal reference (float64), 1x1 maps included."""
    H, W = hw
    ours, ref = (random_gsm(16, 4, interleave=interleave).train(train) for _ in range(2))
    x = frames(3, 4, 16, H, W)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    weights = torch.randn_like(x)
    out = ours(xa)
    torch.testing.assert_close(
        out, reference_gate_shift(random_gsm(16, 4, interleave=interleave).train(train), x), rtol=1e-12, atol=1e-12
    )
    (out * weights).sum().backward()
    (reference_gate_shift(ref, xb) * weights).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)
    for (name, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("interleave", [True, False])
def test_fuse_gradcheck(interleave):
    x = torch.randn(2, 3, 8, 2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.rand(2, 3, 2, 2, 3, dtype=torch.float64).mul(2).sub(1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: gate_shift_fuse(a, b, interleave=interleave), (x, g))
    x_cl = x.detach().reshape(6, 8, 2, 3).contiguous(memory_format=torch.channels_last).view(2, 3, 8, 2, 3)
    assert torch.autograd.gradcheck(
        lambda a, b: gate_shift_fuse(a, b, interleave=interleave), (x_cl.requires_grad_(True), g)
    )


def test_gate_gradcheck_both_impls():
    gsm = random_gsm(8, 3).train()
    x = frames(2, 3, 8, 3, 4).requires_grad_(True)
    for impl in IMPLS:
        gsm.gate_impl = impl
        assert torch.autograd.gradcheck(gsm.gate, (x,))
