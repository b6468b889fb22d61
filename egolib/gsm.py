"""Gate-Shift Module (GSM): a learned, gated temporal shift inside a 2D backbone
(Sudhakaran, Escalera, Lanz, CVPR 2020).

A 2D backbone runs on ``B*T`` frames, the ``T`` frames of one video contiguous (index ``b*T + t``). A GSM sits
right after one convolution (before its BatchNorm) and mixes information between neighbouring frames::

    x (B*T, C, H, W) ──> (B, T, C, H, W) ───────────────────────────────┐
         │                                                               │ split C into two halves
         └─> BN3d ─> ReLU ─> gate conv 3x3x3 (C -> 2, groups=2) ─> tanh ─> g (B, T, 2, H, W)
                                                                         │
             half k: y = g_k * x_k ;  out_k = shift_k(y) + (x_k - y)  <──┘
             half 0: frame t receives y[t+1] (from the next frame), half 1: y[t-1] (from the previous frame),
             zero fill at the clip ends; then (reference quirk) the quarters of each half are interleaved.

The gate conv is a standard ``Conv3d`` with the reference's parameter names and shapes (``conv3D.*``, ``bn.*``;
a reference checkpoint needs only a key rename, which egolib does not ship), zero-initialised, so a fresh GSM
is a channel permutation of its input (the identity with ``interleave=False``). Two gate implementations
compute the same numbers:

* ``"conv2d"`` (default, fastest on CPU): the 3x3x3 conv as one grouped 3x3 ``conv2d`` with 6 outputs (one per
  group and temporal tap) over all frames, run channels-last, then a temporal shift-add of the three taps
  (``benchmarks/bench_gsm.py`` times the variants); on a 1x1 map, a matrix product with the kernels' centres;
* ``"conv3d"``: ``F.conv3d`` on the (B, C, T, H, W) view (channels-last-3d when the input is channels-last).

Cost. The gate adds well under 1 % of the backbone's multiply-adds (``egolib.efficiency.gsm_gate_count``), but
at small scale its wall time is element-wise work and per-op overhead, not arithmetic. Two pieces therefore have
hand-written backward passes (``_GateFromTaps``, ``_GateShiftFuse``): a few fused steps in place of a dozen
autograd nodes and their copies. Their forward is the plain-tensor arithmetic in the same order (bit for bit the same on
channels-last input; on NCHW input the gate conv runs channels-last, so float32 results differ in rounding only).
The tests check forward and backward against the reference equations in float64, and by ``gradcheck``.

``insert_gsm`` is the only function that edits a backbone: it wraps the host convolutions that ``gsm_positions``
lists and returns how many modules it inserted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

GATE_IMPLS = ("conv2d", "conv3d")


# --------------------------------------------------------------------------------------------------
# Pure tensor helpers


def shift_time(x: Tensor, step: int, dim: int = 1) -> Tensor:
    """Shift ``x`` by one step along the time axis ``dim`` with zero fill.

    Args:
        x: any tensor with time at ``dim``, e.g. (B, T, C, H, W).
        step: +1: ``out[t] = x[t+1]`` (frame t receives the next frame, last frame zero);
            -1: ``out[t] = x[t-1]`` (frame t receives the previous frame, first frame zero).
        dim: the time axis.

    Returns:
        A tensor of the shape of ``x``.
    """
    if step not in (1, -1):
        raise ValueError(f"step must be +1 or -1, got {step}")
    T = x.shape[dim]
    zero = torch.zeros_like(x.narrow(dim, 0, 1))  # same device, dtype and layout as x
    if step == 1:
        return torch.cat([x.narrow(dim, 1, T - 1), zero], dim=dim)
    return torch.cat([zero, x.narrow(dim, 0, T - 1)], dim=dim)


def interleave_permutation(C: int) -> list[int]:
    """The reference's output channel order: ``out[c] = in[perm[c]]`` (the last step of its shift).

    Inside each half, output channel ``2j + i`` takes quarter ``i``, channel ``j``; for C=8 the order is
    ``[0, 2, 1, 3, 4, 6, 5, 7]``.
    """
    half, quarter = C // 2, C // 4
    return [h * half + i * quarter + j for h in range(2) for j in range(quarter) for i in range(2)]


def gate_shift_fuse(x: Tensor, g: Tensor, *, interleave: bool = True) -> Tensor:
    """The GSM fusion: gate each half, shift the gated part in time, add the ungated residual.

    Args:
        x: features (B, T, C, H, W), C divisible by 4 (any strides; channels-last views are fine).
        g: gate (B, T, 2, H, W) in [-1, 1]; ``g[:, :, k]`` gates channel half k.
        interleave: apply the reference's quarter interleave to the output channels.

    Returns:
        (B, T, C, H, W) in the memory layout of ``x``: half 0 is ``shift(+1)(g*x) + (1-g)*x``,
        half 1 is ``shift(-1)(g*x) + (1-g)*x``.
    """
    return _GateShiftFuse.apply(x, g, interleave)


def _channel_views(x: Tensor, out: Tensor, interleave: bool) -> tuple[Tensor, Tensor]:
    """``x`` and ``out`` (B, T, C, H, W) as aligned 7-D views (B, T, half, a, b, H, W): ``out7[...]`` is the output
    channel that ``x7[...]`` feeds. Without the interleave both are (half, quarter, C/4); with it the output channel
    ``2j + i`` of a half takes quarter ``i``, channel ``j``, so ``x7`` is (half, C/4, quarter), a free transpose."""
    B, T, C, H, W = x.shape
    if interleave:
        return x.view(B, T, 2, 2, C // 4, H, W).transpose(3, 4), out.view(B, T, 2, C // 4, 2, H, W)
    return x.view(B, T, 2, 2, C // 4, H, W), out.view(B, T, 2, 2, C // 4, H, W)


class _GateShiftFuse(torch.autograd.Function):
    """``gate_shift_fuse`` with a hand-written backward.

    Autograd through the plain-tensor version records a dozen nodes per GSM (multiply, two zero-filled shifts,
    stack, subtract, add, the interleave copy) and replays each backward with its own copies. The fusion is
    linear in ``x`` given ``g``, so its backward is short::

        out = x - y + shift(y),  y = g * x      (per half; shift(+1) for half 0, shift(-1) for half 1)
        dL/dy = shift^T(gout) - gout =: d      (shift^T moves the other way, zero fill at the other end)
        dL/dx = gout + g * d                    dL/dg = sum over the half's channels of x * d

    Forward: one multiply, one subtract that writes the (interleaved) output, two in-place shifted adds;
    the arithmetic, and its order, is that of ``x - y + shift(y)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, g: Tensor, interleave: bool) -> Tensor:
        out = torch.empty_like(x, dtype=torch.result_type(x, g))  # x's strides (channels-last stays so)
        x7, out7 = _channel_views(x, out, interleave)
        y = x7 * g[:, :, :, None, None]  # gated part (B, T, 2, a, b, H, W)
        torch.sub(x7, y, out=out7)  # (1 - g) x, written in output channel order
        out7[:, :-1, 0] += y[:, 1:, 0]  # half 0: frame t receives y[t+1] (last frame: nothing)
        out7[:, 1:, 1] += y[:, :-1, 1]  # half 1: frame t receives y[t-1] (first frame: nothing)
        ctx.save_for_backward(x, g)
        ctx.interleave = interleave
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout: Tensor) -> tuple[Tensor, Tensor, None]:
        x, g = ctx.saved_tensors
        B, T, C, H, W = x.shape
        d = torch.empty_like(x, dtype=gout.dtype)  # dL/dy, laid out like x
        d7, gout7 = _channel_views(d, gout, ctx.interleave)
        torch.neg(gout7, out=d7)
        d7[:, 1:, 0] += gout7[:, :-1, 0]  # y0[t] went to out0[t-1]
        d7[:, :-1, 1] += gout7[:, 1:, 1]  # y1[t] went to out1[t+1]
        gg = (x * d).view(B, T, 2, C // 2, H, W).sum(3)  # (B, T, 2, H, W); channel order inside a half is free
        torch.addcmul(gout7, g[:, :, :, None, None], d7, out=d7)  # dL/dx = gout + g * d, in d's memory
        return d.to(x.dtype), gg.to(g.dtype), None


class _GateFromTaps(torch.autograd.Function):
    """The gate from the three temporal taps of the conv2d gate implementation, with a hand-written backward.

    conv3d is a cross-correlation with time padding 1, so ``g[t] = tanh(tap0[t-1] + tap1[t] + tap2[t+1] + bias)``
    (missing frames contribute nothing); summed in that order, as ``tap1 + shift(tap0) + shift(tap2)`` then the
    bias. Backward: ``p = dL/dg * (1 - g^2)``; ``dL/dtap1[t] = p[t]``, ``dL/dtap0[t] = p[t+1]``,
    ``dL/dtap2[t] = p[t-1]`` (zero where that frame does not exist), ``dL/dbias = sum of p`` per group.
    """

    @staticmethod
    def forward(ctx, taps: Tensor, bias: Tensor) -> Tensor:
        # taps: (B, T, 2, 3, H, W) (group, kt); bias: (2,)
        g = taps[:, :, :, 1].clone(memory_format=torch.contiguous_format)  # (B, T, 2, H, W)
        g[:, 1:] += taps[:, :-1, :, 0]
        g[:, :-1] += taps[:, 1:, :, 2]
        g += bias.to(g.dtype).view(1, 1, 2, 1, 1)
        g.tanh_()
        ctx.save_for_backward(g)
        ctx.bias_dtype = bias.dtype
        return g

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gg: Tensor) -> tuple[Tensor, Tensor]:
        (g,) = ctx.saved_tensors
        p = torch.ops.aten.tanh_backward(gg, g)  # gg * (1 - g^2)
        B, T, _, H, W = g.shape
        gtaps = p.new_empty(B, T, 2, 3, H, W)
        gtaps[:, :, :, 1] = p
        gtaps[:, :-1, :, 0] = p[:, 1:]
        gtaps[:, -1, :, 0] = 0
        gtaps[:, 1:, :, 2] = p[:, :-1]
        gtaps[:, 0, :, 2] = 0
        return gtaps, p.sum((0, 1, 3, 4)).to(ctx.bias_dtype)


# --------------------------------------------------------------------------------------------------
# The module


class GateShift(nn.Module):
    """Gate-Shift Module on ``(B*T, C, H, W)`` frames; shape-preserving.

    Args:
        channels: C, divisible by 4.
        num_segments: T, the frames per video; the batch must be a multiple of T, each video's frames contiguous.
        interleave: the reference's channel interleave (on by default for checkpoint compatibility; off gives a
            module that is exactly the identity at initialisation).
        gate_impl: ``"conv2d"`` (fast, default) or ``"conv3d"``; both compute the same gate.

    Parameters (reference names): ``conv3D`` = Conv3d(C, 2, 3x3x3, padding 1, groups=2, bias), zero-initialised;
    ``bn`` = BatchNorm3d(C) on the gate path only.
    """

    def __init__(self, channels: int, num_segments: int, *, interleave: bool = True, gate_impl: str = "conv2d"):
        super().__init__()
        if channels % 4 != 0 or channels <= 0:
            raise ValueError(f"GateShift needs channels divisible by 4, got {channels}")
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        if gate_impl not in GATE_IMPLS:
            raise ValueError(f"unknown gate_impl {gate_impl!r}; choose one of {', '.join(GATE_IMPLS)}")
        self.channels = channels
        self.num_segments = num_segments
        self.interleave = interleave
        self.gate_impl = gate_impl
        self.bn = nn.BatchNorm3d(channels)
        self.conv3D = nn.Conv3d(channels, 2, kernel_size=3, padding=1, groups=2, bias=True)
        nn.init.zeros_(self.conv3D.weight)
        nn.init.zeros_(self.conv3D.bias)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, num_segments={self.num_segments}, interleave={self.interleave}, "
            f"gate_impl={self.gate_impl!r}"
        )

    # ----------------------------------------------------------------------------------------------
    def gate(self, x: Tensor) -> Tensor:
        """The gate ``tanh(conv3d(relu(bn3d(x))))``.

        Args:
            x: (B*T, C, H, W) frames.

        Returns:
            (B, T, 2, H, W), in [-1, 1].
        """
        T = self.num_segments
        N, C, H, W = x.shape
        B = N // T
        if self.gate_impl == "conv3d":
            # BN3d over (B, C, T, H, W) has the same per-channel statistics as over (B*T, C, 1, H, W).
            a = F.relu(self.bn(x.unsqueeze(2))).squeeze(2)  # (B*T, C, H, W)
            v = a.view(B, T, C, H, W).transpose(1, 2)  # (B, C, T, H, W); channels-last-3d if x is channels-last
            g = F.conv3d(v, self.conv3D.weight, self.conv3D.bias, padding=1, groups=2)  # (B, 2, T, H, W)
            return torch.tanh(g).transpose(1, 2)  # (B, T, 2, H, W)
        # The gate path runs channels-last: oneDNN's grouped conv with 3 outputs per group is 2-3x faster on
        # channels-last input than on NCHW, where it reorders the input to its blocked format on every call
        # (benchmarks/bench_gsm.py). The routed features keep the caller's layout.
        x_cl = x.contiguous(memory_format=torch.channels_last)
        a = F.relu(self.bn(x_cl.unsqueeze(2)), inplace=True).squeeze(2)  # (B*T, C, H, W); BN's backward needs x only
        weight = self.conv3D.weight  # (group, C/2, kt, 3, 3)
        if H == 1 and W == 1:
            # A 1x1 map: only the centre of each 3x3 kernel meets data (the rest meets the zero padding), so the
            # conv is a matrix product with the block-diagonal (group, kt) x (group, C/2) centre weights; oneDNN's
            # grouped 3x3 conv takes 3-5x longer on such a map (InceptionV3's last blocks at 80 px).
            centre = torch.block_diag(*weight[:, :, :, 1, 1].transpose(1, 2))  # (2*3, C)
            taps = F.linear(a.flatten(1), centre).view(B, T, 2, 3, H, W)  # (B, T, group, kt, 1, 1)
        else:
            # conv3d weight -> conv2d weight (2*3, C/2, 3, 3), output index = group*3 + kt
            w2 = weight.permute(0, 2, 1, 3, 4).reshape(6, C // 2, 3, 3)
            taps = F.conv2d(a, w2, padding=1, groups=2).view(B, T, 2, 3, H, W)  # (B, T, group, kt, H, W)
        return _GateFromTaps.apply(taps, self.conv3D.bias)  # (B, T, 2, H, W)

    def forward(self, x: Tensor) -> Tensor:
        """Gate, shift and fuse.

        Args:
            x: (B*T, C, H, W) frames, video-major.

        Returns:
            (B*T, C, H, W), same memory format as ``x``.
        """
        N, C, H, W = x.shape
        T = self.num_segments
        if C != self.channels:
            raise ValueError(f"GateShift built for {self.channels} channels got {C}")
        if N % T != 0:
            raise ValueError(f"GateShift: batch of {N} frames is not a multiple of num_segments={T}")
        g = self.gate(x)  # (B, T, 2, H, W)
        out = gate_shift_fuse(x.view(N // T, T, C, H, W), g, interleave=self.interleave)  # (B, T, C, H, W)
        out = out.reshape(N, C, H, W)  # (B, T, C, H, W) -> (B*T, C, H, W)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            out = out.contiguous(memory_format=torch.channels_last)  # keep the caller's layout
        return out


class ConvGSM(nn.Module):
    """A host convolution followed by its GSM (what ``insert_gsm`` puts in place of the convolution).

    State-dict keys: the host's ``<name>.weight`` becomes ``<name>.conv.weight``, the GSM's are ``<name>.gsm.*``.
    """

    def __init__(self, conv: nn.Conv2d, gsm: GateShift):
        super().__init__()
        self.conv = conv
        self.gsm = gsm

    def forward(self, x: Tensor) -> Tensor:
        """(B*T, C_in, H, W) -> (B*T, C, H', W')."""
        return self.gsm(self.conv(x))


# --------------------------------------------------------------------------------------------------
# The reference equations (an oracle for tests and benchmarks)


def reference_gate_shift(gsm: GateShift, x: Tensor) -> Tensor:
    """The GSM equations transcribed literally, as the released code lays them out: the
    oracle that the tests and ``benchmarks/bench_gsm.py`` compare ``GateShift`` with (not used by the models).

    ``(B, C, T, H, W)`` layout, ``F.conv3d`` gate, zero-padded shifts by concatenation, quarter interleave.

    Args:
        gsm: the module whose weights (``bn``, ``conv3D``) and settings (``num_segments``, ``interleave``) to use.
        x: ``(B*T, C, H, W)``, segments of one video contiguous.

    Returns:
        ``(B*T, C, H, W)``.
    """
    T = gsm.num_segments
    N, C, H, W = x.shape
    B = N // T
    v = x.reshape(B, T, C, H, W).transpose(1, 2).contiguous()  # (B*T, C, H, W) -> (B, C, T, H, W)
    g = torch.tanh(F.conv3d(F.relu(gsm.bn(v)), gsm.conv3D.weight, gsm.conv3D.bias, padding=1, groups=2))
    out = []
    for k in range(2):
        xk = v[:, k * C // 2 : (k + 1) * C // 2]  # (B, C/2, T, H, W)
        yk = g[:, k : k + 1] * xk
        zero = torch.zeros_like(yk[:, :, :1])
        sk = torch.cat([yk[:, :, 1:], zero], 2) if k == 0 else torch.cat([zero, yk[:, :, :-1]], 2)
        ok = sk + xk - yk
        if gsm.interleave:  # output channel 2j+i <- quarter i, channel j
            ok = ok.reshape(B, 2, C // 4, T, H, W).transpose(1, 2).reshape(B, C // 2, T, H, W)  # quarters interleaved
        out.append(ok)
    return torch.cat(out, 1).transpose(1, 2).reshape(N, C, H, W)  # (B, C, T, H, W) -> (B*T, C, H, W)


# --------------------------------------------------------------------------------------------------
# Where GSMs go

# BN-Inception (egolib layout, backbones.BNInception): one per Inception block, in its plain 1x1 branch; the
# stride-2 blocks 3c and 4e have none and use their 3x3_reduce 1x1 conv.
BNINCEPTION_POSITIONS = (
    "inception_3a.1x1", "inception_3b.1x1", "inception_3c.3x3_reduce", "inception_4a.1x1", "inception_4b.1x1",
    "inception_4c.1x1", "inception_4d.1x1", "inception_4e.3x3_reduce", "inception_5a.1x1", "inception_5b.1x1",
)  # fmt: skip

# InceptionV3 (torchvision names). The reference yaml has no GSM in Mixed_6d (mixed_6); kept as an option.
# Mixed_6a/7a (reductions) host it in the 1x1 of their first tower (reference: mixed_3/mixed_8 tower_conv).
INCEPTIONV3_POSITIONS = (
    "Mixed_5b.branch1x1.conv", "Mixed_5c.branch1x1.conv", "Mixed_5d.branch1x1.conv", "Mixed_6a.branch3x3dbl_1.conv",
    "Mixed_6b.branch1x1.conv", "Mixed_6c.branch1x1.conv", "Mixed_6d.branch1x1.conv", "Mixed_6e.branch1x1.conv",
    "Mixed_7a.branch3x3_1.conv", "Mixed_7b.branch1x1.conv", "Mixed_7c.branch1x1.conv",
)  # fmt: skip

RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def gsm_positions(
    backbone: nn.Module, *, skip_mixed_6d: bool = True, resnet_convs: Sequence[str] | None = None
) -> list[str]:
    """The dotted names of the convolutions that host a GSM in ``backbone``.

    Args:
        backbone: a module from ``egolib.backbones.build_backbone`` (reads ``backbone.spec.name``).
        skip_mixed_6d: InceptionV3: leave Mixed_6d without a GSM, as the released reference does (10 GSMs);
            False puts one in all 11 Mixed blocks.
        resnet_convs: ResNets: the conv names inside every residual block of layer1-4 that host a GSM.
            Default: the last conv of the block, before its BN: ``("conv3",)`` for Bottleneck (the placement of
            the author's GSF/GSM-ResNet code, a choice made here) and, by the same rule,
            ``("conv2",)`` for the BasicBlocks of ResNet-34 (its last 3x3 conv; a BasicBlock has no 1x1).

    Returns:
        Names for ``backbone.get_submodule``, in network order.
    """
    name = _backbone_name(backbone)
    if name == "bninc":
        return list(BNINCEPTION_POSITIONS)
    if name == "incv3":
        return [p for p in INCEPTIONV3_POSITIONS if not (skip_mixed_6d and p.startswith("Mixed_6d."))]
    if name in ("res34", "res101", "res152"):
        positions = []
        for layer in RESNET_LAYERS:
            for i, block in enumerate(backbone.get_submodule(layer)):
                convs = resnet_convs if resnet_convs is not None else ("conv3" if hasattr(block, "conv3") else "conv2",)
                positions += [f"{layer}.{i}.{c}" for c in convs]
        return positions
    raise ValueError(f"GSM goes into 2D backbones only (bninc, incv3, res34, res101, res152), not {name!r}")


def insert_gsm(
    backbone: nn.Module,
    num_segments: int,
    *,
    positions: Sequence[str] | None = None,
    skip_mixed_6d: bool = True,
    resnet_convs: Sequence[str] | None = None,
    interleave: bool = True,
    gate_impl: str = "conv2d",
) -> int:
    """Wrap each host convolution of ``backbone`` in a ``ConvGSM`` (in place); call after loading weights.

    Args:
        backbone: a 2D backbone from ``build_backbone`` (or any module when ``positions`` is given).
        num_segments: T, frames per video.
        positions: dotted names of the ``nn.Conv2d`` hosts; default ``gsm_positions(backbone, ...)``.
        skip_mixed_6d: see ``gsm_positions``.
        resnet_convs: see ``gsm_positions``.
        interleave: see ``GateShift``.
        gate_impl: see ``GateShift``.

    Returns:
        The number of GSMs inserted (10 for BN-Inception and InceptionV3 by default, one per residual block for
        ResNets: 16 / 33 / 50 for ResNet-34 / 101 / 152).

    Raises:
        ValueError: a position that is not an ``nn.Conv2d`` (e.g. already wrapped), or channels not divisible by 4.
    """
    if positions is None:
        positions = gsm_positions(backbone, skip_mixed_6d=skip_mixed_6d, resnet_convs=resnet_convs)
    for pos in positions:
        parent_name, _, child = pos.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        conv = getattr(parent, child, None)
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"GSM position {pos!r} is {type(conv).__name__}, not an nn.Conv2d (already inserted?)")
        gsm = GateShift(conv.out_channels, num_segments, interleave=interleave, gate_impl=gate_impl)
        gsm.to(device=conv.weight.device, dtype=conv.weight.dtype)
        setattr(parent, child, ConvGSM(conv, gsm))
    log.info("inserted %d GSMs (T=%d, interleave=%s, gate=%s)", len(positions), num_segments, interleave, gate_impl)
    return len(positions)


def _backbone_name(backbone: nn.Module) -> str:
    spec = getattr(backbone, "spec", None)
    if spec is None:
        raise ValueError(
            "cannot tell where GSMs go in a module without a .spec (build it with egolib.backbones.build_backbone) "
            "-- or pass positions=[...] explicitly"
        )
    return spec.name
