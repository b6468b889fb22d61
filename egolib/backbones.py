"""Backbones: ResNet-34/101/152, InceptionV3, BN-Inception and R(2+1)D-34, at any channel width.

Each builder keeps the standard structure and state-dict keys (torchvision ResNet / Inception3 / VideoResNet, the
TSN BN-Inception layer ids), so at ``width=1`` a backbone has exactly the standard parameter count and standard
checkpoints load with ``strict=True``. ``width`` multiplies every channel count (depth and topology unchanged), so
the ``demo`` preset trains narrow versions of the real networks on a CPU.

Every built backbone carries ``backbone.spec`` (``BackboneSpec``): its preprocessing, paper input sizes, feature
width and the names of its trunk / top stage / stage-3 layers. ``forward_features`` runs the trunk.

Width rule: every channel count ``c`` of the architecture becomes ``c * width``, which must be an integer (width a
multiple of 1/8 works for all backbones). Exact scaling keeps Inception concatenations consistent (the sum of
scaled branches is the scaled sum). Derived counts (the R(2+1)D mid-channels) follow their formulas; the
R(2+1)D stem's 45 mid-channels are rounded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import inception as tv_inception
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.video import resnet as tv_video

from egolib.transforms import CAFFE_BGR, IG65M_RGB, IMAGENET_RGB, INCEPTION_RGB, Normalization

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# What each backbone's input must be, known without building a network (read by train, pretrain and the
# builders below)


def scale_size(input_size: int) -> int:
    """Test-time short side for a training crop: ``input_size * 256 // 224`` (floored), i.e. 256 at 224 and 261
    for InceptionV3 at 229, as the report says, 128 for R(2+1)D at 112, and the same ratio at smaller crops."""
    return input_size * 256 // 224


@dataclass(frozen=True)
class InputSpec:
    """A backbone's input.

    Attributes:
        norm: the normalisation its weights expect.
        input_size: the paper training crop (224; 229 for InceptionV3 as in the GSM reference; 112 for R(2+1)D).
        is_3d: it takes snippets ``(N, 3, L, H, W)`` (R(2+1)D) instead of frames ``(N, 3, H, W)``.
    """

    norm: Normalization
    input_size: int
    is_3d: bool = False


INPUTS: dict[str, InputSpec] = {
    "bninc": InputSpec(CAFFE_BGR, 224),
    "incv3": InputSpec(INCEPTION_RGB, 229),
    "res34": InputSpec(IMAGENET_RGB, 224),
    "res101": InputSpec(IMAGENET_RGB, 224),
    "res152": InputSpec(IMAGENET_RGB, 224),
    "r2p1d34": InputSpec(IG65M_RGB, 112, is_3d=True),
}
NORMALIZATION: dict[str, Normalization] = {name: spec.norm for name, spec in INPUTS.items()}


def normalization(name: str) -> Normalization:
    """The normalisation of backbone ``name``; unknown names raise ValueError listing the valid ones."""
    if name not in INPUTS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(INPUTS)}")
    return INPUTS[name].norm


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of egolib needs to know about a built backbone.

    Attributes:
        name: registry name (``bninc``, ``incv3``, ``res34``, ``res101``, ``res152``, ``r2p1d34``).
        width: the channel-width multiplier it was built with.
        feature_dim: channels C of the last feature map (``forward_features`` output).
        norm: input normalisation.
        input_size: paper training crop (224; 229 for InceptionV3 as in the GSM reference; 112 for R(2+1)D).
        scale_size: paper test resize of the short side (``input_size * 256 // 224``).
        is_3d: True for R(2+1)D (input (N, 3, L, H, W)).
        trunk: top-level child names that compute the feature map, in order.
        top: the top stage(s) EgoACO clones (``("layer4",)`` for ResNets / R(2+1)D; for Inception the blocks at the
            final resolution, a [PROPOSAL] analogue of conv5_x).
        stage3: what EgoACO stage 3 unfreezes (``("layer3",)`` = conv4_x; the three Inception blocks below ``top``).
        classifier: name of the classification layer (``"fc"``).
    """

    name: str
    width: float
    feature_dim: int
    norm: Normalization
    input_size: int
    scale_size: int
    is_3d: bool
    trunk: tuple[str, ...]
    top: tuple[str, ...]
    stage3: tuple[str, ...]
    classifier: str = "fc"


def scale_channels(c: int, width: float) -> int:
    """``c * width`` as an int; raises ValueError when it is not a whole number of channels."""
    v = c * width
    if v < 1 or abs(v - round(v)) > 1e-9:
        raise ValueError(
            f"width {width} turns {c} channels into {v}: use a width that is a multiple of 1/8 (e.g. 0.125, 0.25, "
            "0.5, 1) so every channel count scales to a whole number"
        )
    return int(round(v))


# --------------------------------------------------------------------------------------------------
# ResNet-34/101/152: torchvision's ResNet with scaled stage widths


class WidthResNet(ResNet):
    """torchvision ``ResNet`` (same modules, keys and forward) with stage widths ``64/128/256/512 * width``."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], *, width: float = 1.0,
                 num_classes: int = 1000):  # fmt: skip
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes the widths; this mirrors it with scaled ones
        c = partial(scale_channels, width=width)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = c(64), 1, 1, 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, c(64), layers[0])
        self.layer2 = self._make_layer(block, c(128), layers[1], stride=2)
        self.layer3 = self._make_layer(block, c(256), layers[2], stride=2)
        self.layer4 = self._make_layer(block, c(512), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c(512) * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


_RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


# --------------------------------------------------------------------------------------------------
# InceptionV3: torchvision's Inception3 built with a width-scaling conv block, no auxiliary classifier


def _scaled_conv_block(width: float) -> Callable[..., nn.Module]:
    def conv_block(in_channels: int, out_channels: int, **kwargs) -> nn.Module:
        # in_channels == 3 only for the first conv (the image); every other count is an architecture width.
        c_in = in_channels if in_channels == 3 else scale_channels(in_channels, width)
        return tv_inception.BasicConv2d(c_in, scale_channels(out_channels, width), **kwargs)

    return conv_block


def inception_v3(*, width: float = 1.0, num_classes: int = 1000) -> tv_inception.Inception3:
    """torchvision ``Inception3`` (``aux_logits=False``, ``transform_input=False``) with channels scaled by width.

    The auxiliary classifier is left out (the GSM/TSN reference has none); ``load_weights`` drops the
    ``AuxLogits.*`` keys of torchvision checkpoints by name.
    """
    conv = _scaled_conv_block(width)
    blocks = [conv] + [partial(b, conv_block=conv) for b in (
        tv_inception.InceptionA, tv_inception.InceptionB, tv_inception.InceptionC, tv_inception.InceptionD,
        tv_inception.InceptionE, tv_inception.InceptionAux)]  # fmt: skip
    model = tv_inception.Inception3(
        num_classes=num_classes, aux_logits=False, transform_input=False, inception_blocks=blocks, init_weights=True
    )
    if width != 1:
        model.fc = nn.Linear(scale_channels(2048, width), num_classes)
    return model


_INCV3_TRUNK = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# BN-Inception (Inception v2 with BN, Ioffe & Szegedy 2015), TSN layout. torchvision has none.
#
# Layout: the TSN yaml (GSM repo model_zoo/bninception/bn_inception.yaml) names every layer at the top level
# (``inception_3a_1x1``, ``inception_3a_1x1_bn``, ...). Here each Inception block is a module, so its layers are
# ``inception_3a.1x1``, ``inception_3a.1x1_bn``, ...: the TSN key with the first ``_`` after the block name
# turned into ``.``. ``load_weights`` converts TSN files. Conv biases on (TSN builds it with conv_bias=True),
# Caffe ceil-mode pooling, a 7x7 AvgPool at 224 px replaced by global average pooling (the same at 224).


class BNInceptionBlock(nn.Module):
    """One BN-Inception block: [1x1] | 3x3_reduce -> 3x3 | double_3x3_reduce -> 3x3 -> 3x3 | pool [-> pool_proj].

    Args:
        in_channels: input channels.
        c1x1: channels of the plain 1x1 branch (0: no such branch, the stride-2 blocks 3c and 4e).
        c3x3: (reduce, out) of the 3x3 branch.
        cdouble: (reduce, out) of the double-3x3 branch.
        pool: "avg" or "max" (3x3).
        pool_proj: channels of the 1x1 after the pool (0: none, the pool output is concatenated directly).
        stride: 2 for the reduction blocks (the last 3x3 of each conv branch and the pool).
    """

    def __init__(self, in_channels: int, c1x1: int, c3x3: tuple[int, int], cdouble: tuple[int, int], pool: str,
                 pool_proj: int, stride: int = 1):  # fmt: skip
        super().__init__()
        self.has_1x1, self.has_proj, self.stride = c1x1 > 0, pool_proj > 0, stride
        if self.has_1x1:
            self._conv_bn("1x1", in_channels, c1x1, 1)
        self._conv_bn("3x3_reduce", in_channels, c3x3[0], 1)
        self._conv_bn("3x3", c3x3[0], c3x3[1], 3, stride)
        self._conv_bn("double_3x3_reduce", in_channels, cdouble[0], 1)
        self._conv_bn("double_3x3_1", cdouble[0], cdouble[1], 3)
        self._conv_bn("double_3x3_2", cdouble[1], cdouble[1], 3, stride)
        if pool == "avg":
            self.pool = nn.AvgPool2d(3, stride, padding=1, ceil_mode=True)
        else:
            self.pool = nn.MaxPool2d(3, stride, padding=1 if stride == 1 else 0, ceil_mode=True)
        if self.has_proj:
            self._conv_bn("pool_proj", in_channels, pool_proj, 1)
        self.out_channels = c1x1 + c3x3[1] + cdouble[1] + (pool_proj if self.has_proj else in_channels)

    def _conv_bn(self, name: str, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        self.add_module(name, nn.Conv2d(c_in, c_out, k, stride, padding=k // 2))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(c_out))

    def _cbr(self, name: str, x: Tensor) -> Tensor:
        return F.relu(self._modules[f"{name}_bn"](self._modules[name](x)), inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, out_channels, H/stride, W/stride)."""
        outs = [self._cbr("1x1", x)] if self.has_1x1 else []
        outs.append(self._cbr("3x3", self._cbr("3x3_reduce", x)))
        outs.append(self._cbr("double_3x3_2", self._cbr("double_3x3_1", self._cbr("double_3x3_reduce", x))))
        if self.stride == 2 and (x.shape[-2] % 2 or x.shape[-1] % 2):
            # Deviation: an odd input makes the reference's ceil-mode max pool one smaller than the stride-2 convs
            # (the reference crashes, e.g. on 256x455 full frames). Pad bottom/right with -inf: even sizes (224 px)
            # are untouched, odd ones get ceil(H/2) like the conv branches.
            x_pool = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), value=float("-inf"))
        else:
            x_pool = x
        p = self.pool(x_pool)
        outs.append(self._cbr("pool_proj", p) if self.has_proj else p)
        return torch.cat(outs, dim=1)


# (block, 1x1, (3x3 reduce, 3x3), (double reduce, double), pool, pool_proj, stride) from bn_inception.yaml
_BNI_BLOCKS = (
    ("inception_3a", 64, (64, 64), (64, 96), "avg", 32, 1),
    ("inception_3b", 64, (64, 96), (64, 96), "avg", 64, 1),
    ("inception_3c", 0, (128, 160), (64, 96), "max", 0, 2),
    ("inception_4a", 224, (64, 96), (96, 128), "avg", 128, 1),
    ("inception_4b", 192, (96, 128), (96, 128), "avg", 128, 1),
    ("inception_4c", 160, (128, 160), (128, 160), "avg", 128, 1),
    ("inception_4d", 96, (128, 192), (160, 192), "avg", 128, 1),
    ("inception_4e", 0, (128, 192), (192, 256), "max", 0, 2),
    ("inception_5a", 352, (192, 320), (160, 224), "avg", 128, 1),
    ("inception_5b", 352, (192, 320), (192, 224), "max", 128, 1),
)
_BNI_STEM = (
    "conv1_7x7_s2", "conv1_7x7_s2_bn", "conv1_relu_7x7", "pool1_3x3_s2", "conv2_3x3_reduce", "conv2_3x3_reduce_bn",
    "conv2_relu_3x3_reduce", "conv2_3x3", "conv2_3x3_bn", "conv2_relu_3x3", "pool2_3x3_s2",
)  # fmt: skip


class BNInception(nn.Module):
    """BN-Inception as in TSN/GSM (10 Inception blocks, 1024 features at width 1), channels scaled by width.

    Input (N, 3, H, W) (Caffe-style BGR 0-255, mean-subtracted); ``forward`` returns (N, num_classes) logits.
    """

    def __init__(self, *, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        c = partial(scale_channels, width=width)
        self.conv1_7x7_s2 = nn.Conv2d(3, c(64), 7, stride=2, padding=3)
        self.conv1_7x7_s2_bn = nn.BatchNorm2d(c(64))
        self.conv1_relu_7x7 = nn.ReLU(inplace=True)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_3x3_reduce = nn.Conv2d(c(64), c(64), 1)
        self.conv2_3x3_reduce_bn = nn.BatchNorm2d(c(64))
        self.conv2_relu_3x3_reduce = nn.ReLU(inplace=True)
        self.conv2_3x3 = nn.Conv2d(c(64), c(192), 3, padding=1)
        self.conv2_3x3_bn = nn.BatchNorm2d(c(192))
        self.conv2_relu_3x3 = nn.ReLU(inplace=True)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = c(192)
        for name, c1, c3, cd, pool, proj, stride in _BNI_BLOCKS:
            block = BNInceptionBlock(channels, c(c1) if c1 else 0, (c(c3[0]), c(c3[1])), (c(cd[0]), c(cd[1])), pool,
                                     c(proj) if proj else 0, stride)  # fmt: skip
            self.add_module(name, block)
            channels = block.out_channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, num_classes)."""
        for name in _BNI_STEM + tuple(b[0] for b in _BNI_BLOCKS):
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.global_pool(x), 1))


# --------------------------------------------------------------------------------------------------
# R(2+1)D-34 (IG-65M): torchvision VideoResNet(BasicBlock, Conv2Plus1D, [3, 4, 6, 3], R(2+1)D stem) with the
# Caffe2 mid-channel fix and the Caffe2 BN eps of ig65m-pytorch (BN momentum: see below).


def _midplanes(c_in: int, c_out: int) -> int:
    """torchvision's (2+1)D mid-channel count: the 3x3x3 conv's parameter count split into (1x3x3, 3x1x1)."""
    return (c_in * c_out * 27) // (c_in * 9 + 3 * c_out)


class R2Plus1D34(tv_video.VideoResNet):
    """R(2+1)D-34 as in ig65m-pytorch, stage widths ``64/128/256/512 * width``; input (N, 3, L, H, W)."""

    def __init__(self, *, width: float = 1.0, num_classes: int = 400):
        nn.Module.__init__(self)  # VideoResNet.__init__ hard-codes the widths; this mirrors it with scaled ones
        c = partial(scale_channels, width=width)
        stem_mid = max(1, round(45 * width))  # torchvision's R2Plus1dStem: 45 mid-channels
        self.stem = nn.Sequential(  # same modules (and keys stem.0/1/3/4) as tv_video.R2Plus1dStem
            nn.Conv3d(3, stem_mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, c(64), (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(c(64)),
            nn.ReLU(inplace=True),
        )
        self.inplanes = c(64)
        block, conv = tv_video.BasicBlock, tv_video.Conv2Plus1D
        self.layer1 = self._make_layer(block, conv, c(64), 3, stride=1)
        self.layer2 = self._make_layer(block, conv, c(128), 4, stride=2)
        self.layer3 = self._make_layer(block, conv, c(256), 6, stride=2)
        self.layer4 = self._make_layer(block, conv, c(512), 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(c(512), num_classes)
        # Caffe2 fix (ig65m-pytorch): the first block's conv2 of layer2-4 uses mid = midplanes(planes, planes)
        # (288/576/1152 at width 1) instead of torchvision's midplanes(inplanes, planes).
        for layer in (self.layer2, self.layer3, self.layer4):
            p = layer[0].conv2[0][0].in_channels
            layer[0].conv2[0] = conv(p, p, _midplanes(p, p))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                # Caffe2 BN: eps 1e-3 (it changes the outputs of the IG-65M weights). ig65m-pytorch also sets
                # momentum = 0.9 literally, but PyTorch's momentum weighs the *new* batch (Caffe2's weighs the old
                # running value), so that makes the running statistics ~ the last batch.
                # Deviation: the PyTorch equivalent of Caffe2's 0.9, i.e. 0.1 (torchvision's default), because
                # egolib fine-tunes this network (TSN, EgoACO stages 2-3, stand-in pretraining). Momentum only
                # affects running-statistic updates in training, never a loaded network's outputs.
                m.eps, m.momentum = 1e-3, 0.1
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)


# --------------------------------------------------------------------------------------------------
# Pretrained weight files: a local path, or a file in the torch hub cache (<torch.hub.get_dir()>/checkpoints).

PRETRAINED_FILES: dict[str, dict[str, tuple[str, str]]] = {
    # backbone -> alias -> (file name, where to download it)
    "res34": {"imagenet": ("resnet34-b627a593.pth", "https://download.pytorch.org/models/resnet34-b627a593.pth")},
    "res101": {"imagenet": ("resnet101-63fe2227.pth", "https://download.pytorch.org/models/resnet101-63fe2227.pth")},
    "res152": {"imagenet": ("resnet152-394f9c45.pth", "https://download.pytorch.org/models/resnet152-394f9c45.pth")},
    "incv3": {
        "imagenet": (
            "inception_v3_google-0cc3c7bd.pth",
            "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        )
    },
    "bninc": {
        "imagenet": (
            "bn_inception-9f5701afb96c8044.pth",
            "https://yjxiong.blob.core.windows.net/models/bn_inception-9f5701afb96c8044.pth (reported dead; TSM "
            "hosts a converted copy)",
        )
    },
    "r2p1d34": {
        "ig65m": (
            "r2plus1d_34_clip8_ig65m_from_scratch-9bae36ae.pth",
            "https://github.com/moabitcoin/ig65m-pytorch/releases/download/v1.0.0/"
            "r2plus1d_34_clip8_ig65m_from_scratch-9bae36ae.pth",
        ),
        "ig65m_kinetics": (
            "r2plus1d_34_clip8_ft_kinetics_from_ig65m-0aa0550b.pth",
            "https://github.com/moabitcoin/ig65m-pytorch/releases/download/v1.0.0/"
            "r2plus1d_34_clip8_ft_kinetics_from_ig65m-0aa0550b.pth",
        ),
    },
}


def resolve_weights(name: str, weights: str | Path) -> Path:
    """Find a weight file: an existing path, else a file name or an alias of ``PRETRAINED_FILES[name]`` in the
    torch hub cache.

    Raises:
        FileNotFoundError: naming every place looked at and where to put the file (and where to get it).
    """
    path = Path(weights)
    if path.is_file():
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    known = PRETRAINED_FILES.get(name, {})
    file_name, url = known.get(str(weights), (path.name, None))
    cached = hub / file_name
    if cached.is_file():
        return cached
    where = f"download {url} and " if url else ""
    raise FileNotFoundError(
        f"weights for backbone {name!r} not found: looked for {str(path)!r} and {str(cached)!r}. To use them, "
        f"{where}put the file at {cached} (the torch hub cache) or pass its path as weights=. Known aliases for "
        f"{name}: {', '.join(known) or 'none'}."
    )


_TSN_BLOCK_KEY = re.compile(r"^(inception_\d[a-e])_")


def _adapt_state_dict(name: str, state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map a standard checkpoint onto egolib's keys (each change named; nothing silently skipped)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if name == "bninc":
        # TSN file: top-level ids inception_3a_1x1.* -> inception_3a.1x1.*; tensors stored with an extra leading
        # singleton dimension are squeezed.
        own = model.state_dict()
        state = {_TSN_BLOCK_KEY.sub(r"\1.", k): v for k, v in state.items()}
        state = {k: v.squeeze(0) if k in own and v.dim() == own[k].dim() + 1 and v.shape[0] == 1 else v
                 for k, v in state.items()}  # fmt: skip
    if name == "incv3":
        aux = sorted(k for k in state if k.startswith("AuxLogits."))
        if aux:
            log.info("dropping %d AuxLogits.* keys (the auxiliary classifier is not built)", len(aux))
            state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    return state


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A checkpoint file's state dict: the file itself, or the dict it holds under ``state_dict`` / ``model``.

    Raises:
        ValueError: torch cannot read the file (truncated or corrupt); the message names it. A cached pretraining
            is also checked against the hash recorded when it was written (``egolib.pretrain``).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is corrupt or truncated (torch cannot read it: {str(e).splitlines()[0]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    return state


def load_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a checkpoint file into ``backbone`` strictly.

    Accepts a plain state dict, or a dict holding one under ``state_dict`` / ``model``; TSN BN-Inception files
    and torchvision InceptionV3 files are adapted (``_adapt_state_dict``). The classifier ``fc`` adopts the
    checkpoint's class count (e.g. 359 for the 8-frame IG-65M file, 487 for the 32-frame one, 400 for Kinetics):
    class metadata belongs to the weights.
    """
    spec: BackboneSpec = backbone.spec
    state = _adapt_state_dict(spec.name, read_state_dict(path), backbone)
    fc_w = state.get(f"{spec.classifier}.weight")
    fc: nn.Linear = getattr(backbone, spec.classifier)
    if fc_w is not None and tuple(fc_w.shape) != tuple(fc.weight.shape):
        log.info("classifier %s: %s -> %s classes from %s", spec.classifier, fc.out_features, fc_w.shape[0], path)
        setattr(backbone, spec.classifier, nn.Linear(fc_w.shape[1], fc_w.shape[0]).to(fc.weight.device))
    backbone.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------------
# Builders and registry


def _spec(name: str, width: float, feature_dim: int, *, trunk: tuple[str, ...], top: tuple[str, ...],
          stage3: tuple[str, ...]) -> BackboneSpec:
    """A built backbone's spec: its layer names here, its input facts from ``INPUTS``."""
    facts = INPUTS[name]
    return BackboneSpec(name=name, width=width, feature_dim=feature_dim, norm=facts.norm, input_size=facts.input_size,
                        scale_size=scale_size(facts.input_size), is_3d=facts.is_3d, trunk=trunk, top=top,
                        stage3=stage3)


def _resnet(block: type[BasicBlock | Bottleneck], layers: list[int], name: str, width: float) -> nn.Module:
    model = WidthResNet(block, layers, width=width)
    model.spec = _spec(name, width, scale_channels(512, width) * block.expansion, trunk=_RESNET_TRUNK,
                       top=("layer4",), stage3=("layer3",))
    return model


def res34(*, width: float = 1.0) -> nn.Module:
    """ResNet-34 (BasicBlock [3, 4, 6, 3])."""
    return _resnet(BasicBlock, [3, 4, 6, 3], "res34", width)


def res101(*, width: float = 1.0) -> nn.Module:
    """ResNet-101 (Bottleneck [3, 4, 23, 3])."""
    return _resnet(Bottleneck, [3, 4, 23, 3], "res101", width)


def res152(*, width: float = 1.0) -> nn.Module:
    """ResNet-152 (Bottleneck [3, 8, 36, 3])."""
    return _resnet(Bottleneck, [3, 8, 36, 3], "res152", width)


def incv3(*, width: float = 1.0) -> nn.Module:
    """InceptionV3 (torchvision's definition, no auxiliary classifier); paper input 229 px as in GSM."""
    model = inception_v3(width=width)
    model.spec = _spec("incv3", width, scale_channels(2048, width), trunk=_INCV3_TRUNK,
                       top=("Mixed_7b", "Mixed_7c"), stage3=("Mixed_6d", "Mixed_6e", "Mixed_7a"))
    return model


def bninc(*, width: float = 1.0) -> nn.Module:
    """BN-Inception (TSN layout)."""
    model = BNInception(width=width)
    blocks = tuple(b[0] for b in _BNI_BLOCKS)
    model.spec = _spec("bninc", width, model.fc.in_features, trunk=_BNI_STEM + blocks,
                       top=("inception_5a", "inception_5b"), stage3=("inception_4c", "inception_4d", "inception_4e"))
    return model


def r2p1d34(*, width: float = 1.0) -> nn.Module:
    """R(2+1)D-34 (IG-65M definition); 400-class fc until a checkpoint says otherwise."""
    model = R2Plus1D34(width=width)
    model.spec = _spec("r2p1d34", width, scale_channels(512, width),
                       trunk=("stem", "layer1", "layer2", "layer3", "layer4"), top=("layer4",), stage3=("layer3",))
    return model


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "bninc": bninc,
    "incv3": incv3,
    "res34": res34,
    "res101": res101,
    "res152": res152,
    "r2p1d34": r2p1d34,
}


def build_backbone(name: str, *, width: float = 1.0, weights: str | Path | None = None) -> nn.Module:
    """Build a backbone by name, optionally loading a checkpoint.

    Args:
        name: one of ``BACKBONES``.
        width: channel-width multiplier (1.0 = the standard network).
        weights: None (random init), a checkpoint path, or a file name / alias (``PRETRAINED_FILES``) looked up
            in the torch hub cache. Width must be 1 for standard checkpoints (any width for egolib's own files).

    Returns:
        The module, with ``.spec`` (``BackboneSpec``).

    Raises:
        ValueError: unknown name (lists the valid ones) or a width that does not scale to whole channels.
        FileNotFoundError: ``weights`` not found (says where to put it).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    path = resolve_weights(name, weights) if weights is not None else None
    model = BACKBONES[name](width=width)
    if path is not None:
        load_weights(model, path)
    return model


def run_children(module: nn.Module, names: tuple[str, ...], x: Tensor) -> Tensor:
    """Apply the named children of ``module`` in order (a trunk, or the shared part of one)."""
    for name in names:
        x = getattr(module, name)(x)
    return x


def squeeze_time(x: Tensor) -> Tensor:
    """``(N, C, t, h, w) -> (N, C, h, w)`` (mean over the remaining time), 4D maps unchanged."""
    return x.mean(2) if x.dim() == 5 else x


def forward_features(backbone: nn.Module, x: Tensor) -> Tensor:
    """Run the trunk (``backbone.spec.trunk``) and return the last feature map.

    Args:
        backbone: a module from ``build_backbone``.
        x: 2D backbones (N, 3, H, W); R(2+1)D (N, 3, L, H, W).

    Returns:
        (N, C, h, w) with C = ``spec.feature_dim``; for R(2+1)D the remaining time is averaged out
        ((N, C, t, h, w) -> (N, C, h, w); t = 1 for 3-frame snippets).
    """
    return squeeze_time(run_children(backbone, backbone.spec.trunk, x))


# --------------------------------------------------------------------------------------------------
# Geometry: which kernel taps of the trunk's convolutions read the image (not padding) at a given input size.
# A tap that never reads the image at the training size gets no gradient and keeps its random initial value; if a
# larger test input makes it read the image, the test features carry that noise. InceptionV3 at 80 px is the case:
# its last maps are 1x1, so the 3x3 / 1x3 / 3x1 convolutions of Mixed_7b/c train only their centre taps, while a
# 91x162 full frame gives 1x3 maps that read the side taps too.


def _taps_reading_input(n: int, kernel: int, stride: int, padding: int, dilation: int) -> tuple[bool, ...]:
    """Along one axis of length ``n``: does tap ``j`` read a real input position for some output position?"""
    out = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    return tuple(any(0 <= o * stride - padding + j * dilation < n for o in range(out)) for j in range(kernel))


def kernel_taps_used(backbone: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[tuple[bool, ...], ...]]:
    """For every convolution of the trunk, the kernel taps that read the input (not padding), per spatial axis.

    The trunk runs on a copy on the ``meta`` device (shapes only, no arithmetic), BatchNorm layers replaced by
    identities (they keep shapes, and are slow on ``meta``).

    Args:
        backbone: a module from ``build_backbone``.
        input_shape: one input without the batch dim: ``(3, H, W)``, or ``(3, L, H, W)`` for R(2+1)D.

    Returns:
        ``{conv name: (taps along axis 1, taps along axis 2[, axis 3]))}``; tap ``(j1, j2)`` of a 2D kernel is
        used when ``taps[0][j1] and taps[1][j2]``.
    """
    import copy

    net = copy.deepcopy(backbone).to("meta").eval()
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, child_name, nn.Identity())
    used: dict[str, tuple[tuple[bool, ...], ...]] = {}
    hooks = []
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            def hook(m: nn.Module, args: tuple[Tensor, ...], _out: Tensor, name: str = name) -> None:
                if isinstance(m.padding, str):
                    raise ValueError(f"{name}: string padding {m.padding!r} is not supported here")
                sizes = args[0].shape[2:]
                used[name] = tuple(_taps_reading_input(n, k, s, p, d) for n, k, s, p, d in zip(
                    sizes, m.kernel_size, m.stride, m.padding, m.dilation, strict=True))
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward_features(net, torch.zeros((1, *input_shape), device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return used


def untrained_taps(backbone: nn.Module, train_shape: tuple[int, ...], test_shape: tuple[int, ...]) -> list[str]:
    """Convolutions whose kernel taps read the image at ``test_shape`` but never at ``train_shape``.

    Such taps receive no gradient in training (they keep their initialisation) yet shape the test features; a
    training / test geometry with any is broken (raise the training input size, or test on crops of it).

    Returns:
        ``"<conv name> axis <a> taps <j...>"`` for each offending axis (empty: the geometry is sound).
    """
    train, test = kernel_taps_used(backbone, train_shape), kernel_taps_used(backbone, test_shape)
    bad = []
    for name, axes in test.items():
        for a, (seen, wanted) in enumerate(zip(train[name], axes, strict=True)):
            missing = [j for j, (s, w) in enumerate(zip(seen, wanted, strict=True)) if w and not s]
            if missing:
                bad.append(f"{name} axis {a} taps {missing}")
    return bad
