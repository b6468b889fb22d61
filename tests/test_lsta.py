"""LSTA, CAP and the action-bias head: their invariants on tiny CPU tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egolib.heads import ActionBiasHead
from egolib.lsta import (
    LSTA,
    AttentionRecurrence,
    ClassActivationPooling,
    Dictionary,
    LSTACell,
    TemporallyCoherentAttention,
    class_activation_pooling,
)

C, M, K, KD = 8, 6, 5, 7  # input channels, memory channels, output-pooling classes, CAM dictionary size


def make_lsta(seed: int = 0, *, kernel_size: int = 3, selection: str = "hard") -> LSTA:
    torch.manual_seed(seed)
    return LSTA(LSTACell(C, M, K, kernel_size=kernel_size), Dictionary(C, KD, selection=selection)).double()


def clip(B: int = 2, T: int = 3, H: int = 3, W: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, C, H, W, generator=g, dtype=torch.float64)


def zero_attention_convs(att: AttentionRecurrence) -> None:
    with torch.no_grad():
        for p in att.parameters():
            p.zero_()


# --------------------------------------------------------------------------------------------------
# Shapes and the attention map (invariants 12, 16)


@pytest.mark.parametrize("H, W", [(7, 7), (14, 14), (3, 5), (1, 1)])
def test_lsta_shapes_and_attention_sums_to_one(H: int, W: int) -> None:
    lsta = make_lsta()
    d, u = lsta(clip(B=2, T=3, H=H, W=W))
    assert d.shape == (2, M) and u.shape == (2, 3, H, W)
    assert (u >= 0).all()
    torch.testing.assert_close(u.sum((2, 3)), torch.ones(2, 3, dtype=torch.float64))
    state = lsta.cell.initial_state(torch.zeros(2, C, H, W))
    assert [tuple(s.shape) for s in state] == [(2, 1, H, W), (2, 1, H, W), (2, M, H, W), (2, M, H, W)]
    assert all((s == 0).all() for s in state)


def test_uniform_attention_when_map_is_constant() -> None:
    """Zero attention convs and a zero CAM: u = 1/(H*W) everywhere and X^ = X/(H*W)."""
    torch.manual_seed(0)
    cell = LSTACell(C, M, K).double()
    zero_attention_convs(cell.attention)
    x = clip(B=2, T=1, H=3, W=4)[:, 0]
    u, _ = cell(x, torch.zeros(2, 1, 3, 4, dtype=torch.float64), cell.initial_state(x))
    torch.testing.assert_close(u, torch.full_like(u, 1 / 12))
    torch.testing.assert_close(x * u, x / 12)


def test_zero_attention_convs_give_softmax_of_cam() -> None:
    """Invariant 13: with all attention-recurrence convs zero, a_t = s_t = 0 and u_t = softmax(cam_t) exactly."""
    att = AttentionRecurrence().double()
    zero_attention_convs(att)
    g = torch.Generator().manual_seed(3)
    state = (torch.zeros(2, 1, 3, 4, dtype=torch.float64),) * 2
    for _ in range(3):
        cam = torch.randn(2, 1, 3, 4, generator=g, dtype=torch.float64)
        u, state = att(cam, state)
        assert (state[0] == 0).all() and (state[1] == 0).all()
        torch.testing.assert_close(u, cam.flatten(1).softmax(1).view_as(cam), rtol=0, atol=0)


def test_attention_convs_have_reference_parameter_count() -> None:
    """76 attention parameters; at C = M = 512 eight 3x3 512->512 memory convs."""
    assert sum(p.numel() for p in AttentionRecurrence().parameters()) == 76
    cell = LSTACell(512, 512, 300)
    convs = sum(m.weight.numel() for m in (cell.conv_x, cell.conv_h, cell.conv_oc))
    assert convs == 8 * 512 * 512 * 9
    assert cell.pool_dict.shape == (300, 512) and cell.coupling.shape == (300, 512)


# --------------------------------------------------------------------------------------------------
# Gradients (invariants 14, 15)


def test_t1_output_gate_and_pool_dictionary_get_no_gradient() -> None:
    """Invariant 14: at T=1 o_T is unused, so W_oc, b_o and D get no gradient; at T >= 2 they do.

    W_oh multiplies h_{t-1}, which is zero at t=1, so it first receives a gradient at T=3.
    """

    def has_grad(p: torch.Tensor) -> bool:
        return p.grad is not None and bool(p.grad.abs().sum() > 0)

    for T in (1, 2, 3):
        lsta = make_lsta()
        d, _ = lsta(clip(B=2, T=T))
        d.square().sum().backward()
        for p in (lsta.cell.conv_oc.weight, lsta.cell.conv_oc.bias, lsta.cell.pool_dict):
            assert has_grad(p) == (T >= 2), f"T={T}"
        w_oh = lsta.cell.conv_h.weight.grad
        assert (w_oh is not None and bool(w_oh[3 * M :].abs().sum() > 0)) == (T >= 3), f"T={T}"
        assert has_grad(lsta.cell.conv_x.weight) and has_grad(lsta.dictionary.weight)


def test_coupling_is_a_buffer_and_only_selected_rows_learn() -> None:
    """Invariant 15: D' is not a parameter; only the selected row of D and of the CAM dictionary get gradient."""
    lsta = make_lsta()
    names = dict(lsta.named_parameters())
    assert "cell.coupling" not in names and "cell.coupling" in lsta.state_dict()
    assert "dictionary.bias" not in names
    d, _ = lsta(clip(B=1, T=2))  # D is used at t=1 only (o_2 is unused): exactly one row
    d.sum().backward()
    assert int((lsta.cell.pool_dict.grad.abs().sum(1) > 0).sum()) == 1
    rows = int((lsta.dictionary.weight.grad.abs().sum(1) > 0).sum())
    assert 1 <= rows <= 2  # one selected row per frame

    soft = make_lsta(selection="soft")
    d, _ = soft(clip(B=1, T=2))
    d.sum().backward()
    assert int((soft.dictionary.weight.grad.abs().sum(1) > 0).sum()) == KD  # soft selection: every row


def test_hard_selection_picks_argmax_row() -> None:
    torch.manual_seed(0)
    dic = Dictionary(C, KD).double()
    with torch.no_grad():
        dic.bias.copy_(torch.arange(KD, dtype=torch.float64) * 100)  # bias decides: last row wins
    x = clip(B=2, T=1)[:, 0]
    torch.testing.assert_close(dic(x), torch.einsum("c,nchw->nhw", dic.weight[-1], x).unsqueeze(1))


# --------------------------------------------------------------------------------------------------
# Layout and order


def test_batch_first_equals_time_major_reference_loop() -> None:
    """LSTA on (B, T, ...) equals the reference's loop over a time-major (T, B, ...) tensor."""
    lsta = make_lsta()
    x = clip(B=3, T=3)
    d, _ = lsta(x)
    x_tm = x.transpose(0, 1).contiguous()  # (B, T, C, H, W) -> (T, B, C, H, W)
    state = lsta.cell.initial_state(x_tm[0])
    for t in range(x_tm.size(0)):
        _, state = lsta.cell(x_tm[t], lsta.dictionary(x_tm[t]), state)
    torch.testing.assert_close(d, state[2].mean((2, 3)))
    d_wrong, _ = lsta(x_tm)  # B == T here: reading time-major as batch-first must give something else
    assert not torch.allclose(d, d_wrong)


def test_no_cross_video_leakage() -> None:
    lsta = make_lsta()
    x = clip(B=3, T=3)
    d, _ = lsta(x)
    y = x.clone()
    y[1] += torch.randn_like(y[1])
    d2, _ = lsta(y)
    torch.testing.assert_close(d[[0, 2]], d2[[0, 2]], rtol=0, atol=0)
    assert not torch.allclose(d[1], d2[1])
    torch.testing.assert_close(lsta(x[1:2])[0], d[1:2])  # alone == in a batch


def test_reversing_frames_changes_lsta_but_not_cap() -> None:
    lsta = make_lsta()
    x = clip(B=2, T=4)
    assert not torch.allclose(lsta(x)[0], lsta(x.flip(1))[0])
    cap = ClassActivationPooling(lsta.dictionary)
    torch.testing.assert_close(cap(x)[0], cap(x.flip(1))[0])
    tca = TemporallyCoherentAttention(lsta.dictionary, AttentionRecurrence().double())
    assert not torch.allclose(tca(x)[0], tca(x.flip(1))[0])


def test_lsta_kernel_1() -> None:
    lsta = make_lsta(kernel_size=1)
    assert lsta.cell.conv_h.kernel_size == (1, 1)
    d, u = lsta(clip(B=2, T=2, H=2, W=2))
    assert d.shape == (2, M) and torch.isfinite(d).all()
    with pytest.raises(ValueError, match="odd"):
        LSTACell(C, M, K, kernel_size=2)


# --------------------------------------------------------------------------------------------------
# CAP (invariant 18) and the EgoACO poolers


def test_cap_of_constant_map_is_that_vector_and_lies_in_convex_hull() -> None:
    torch.manual_seed(0)
    dic = Dictionary(C, KD).double()
    v = torch.randn(2, C, 1, 1, dtype=torch.float64)
    d, alpha = class_activation_pooling(v.expand(2, C, 3, 4), dic)
    torch.testing.assert_close(d, v[:, :, 0, 0])
    x = clip(B=2, T=1)[:, 0]
    d, alpha = class_activation_pooling(x, dic)
    torch.testing.assert_close(alpha.sum((2, 3)), torch.ones(2, 1, dtype=torch.float64))
    assert (d <= x.amax((2, 3)) + 1e-12).all() and (d >= x.amin((2, 3)) - 1e-12).all()


def test_temporal_poolers_shapes_and_attention() -> None:
    torch.manual_seed(0)
    dic = Dictionary(C, KD).double()
    x = clip(B=2, T=3, H=3, W=5)
    for pool in (ClassActivationPooling(dic), TemporallyCoherentAttention(dic, AttentionRecurrence().double())):
        d, u = pool(x)
        assert d.shape == (2, C) and u.shape == (2, 3, 3, 5)
        torch.testing.assert_close(u.sum((2, 3)), torch.ones(2, 3, dtype=torch.float64))


def test_dictionary_copy_from_linear() -> None:
    fc = torch.nn.Linear(C, KD)
    dic = Dictionary(C, KD)
    dic.copy_from_linear(fc)
    torch.testing.assert_close(dic.weight, fc.weight)
    torch.testing.assert_close(dic.bias, fc.bias)
    with pytest.raises(ValueError, match="classifier"):
        Dictionary(C, KD + 1).copy_from_linear(fc)
    with pytest.raises(ValueError, match="hard, soft"):
        Dictionary(C, KD, selection="top2")


# --------------------------------------------------------------------------------------------------
# The action-bias head (invariants 11, 19)


def make_head(**kw) -> ActionBiasHead:
    torch.manual_seed(0)
    head = ActionBiasHead(C, C, C, 4, 5, 6, init_std=0.1, **kw).double()
    with torch.no_grad():  # non-zero bias maps, so the coupling is really exercised
        head.action_to_verb.weight.normal_()
        head.action_to_noun.weight.normal_()
    return head


def test_head_is_linear_per_frame_then_consensus() -> None:
    """Invariant 11: per-frame head then mean over T == mean feature then head (default raw-logit bias)."""
    head = make_head()
    f = clip(B=2, T=4, H=1, W=1)[..., 0, 0]  # (B, T, C)
    per_frame = {k: v.mean(1) for k, v in head(f, f, f).items()}
    pooled = head(f.mean(1), f.mean(1), f.mean(1))
    for k in ("verb", "noun", "action"):
        torch.testing.assert_close(per_frame[k], pooled[k])
    soft = make_head(bias_input="softmax")  # the softmax variant is not linear: documents the order matters
    per_frame = soft(f, f, f)["verb"].mean(1)
    assert not torch.allclose(per_frame, soft(f.mean(1), f.mean(1), f.mean(1))["verb"])


def test_zero_bias_maps_decouple_verb_from_action() -> None:
    """Invariant 19: with M_v = M_n = 0 the verb loss gives W_a no gradient; with M_v != 0 it does."""
    f = clip(B=2, T=1, H=1, W=1)[:, 0, :, 0, 0]
    y = torch.tensor([1, 3])
    for zero, detach, expect in ((True, False, False), (False, False, True), (False, True, False)):
        head = make_head(detach_action=detach)
        if zero:
            torch.nn.init.zeros_(head.action_to_verb.weight)
        F.cross_entropy(head(f, f, f)["verb"], y).backward()
        got = head.action.weight.grad is not None and bool(head.action.weight.grad.abs().sum() > 0)
        assert got == expect, (zero, detach)


def test_head_defaults_and_options() -> None:
    head = ActionBiasHead(C, 3, 5, 4, 5, 6)
    assert (head.action_to_verb.weight == 0).all() and head.action_to_verb.bias is None
    out = head(torch.randn(2, C), torch.randn(2, 3), torch.randn(2, 5))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"verb": (2, 4), "noun": (2, 5), "action": (2, 6)}
    assert ActionBiasHead(C, C, C, 4, 5, 6, bias_affine=True).action_to_noun.bias is not None
    head.init_bias_from_pairs([(0, 0), (0, 1), (1, 1), (2, 4), (3, 2), (3, 3)])
    assert head.action_to_verb.weight.sum(0).tolist() == [1.0] * 6
    assert head.action_to_verb.weight[3].tolist() == [0, 0, 0, 0, 1, 1]
    assert head.action_to_noun.weight[1].tolist() == [0, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="6 action classes"):
        head.init_bias_from_pairs([(0, 0)])
    with pytest.raises(ValueError, match="logits, softmax"):
        ActionBiasHead(C, C, C, 4, 5, 6, bias_input="probs")
