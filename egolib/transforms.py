"""Clip transforms: normalisation, multi-scale crop + flip, centre crop, full frame.

Which normalisation a backbone's weights expect is a fact of the backbone: ``egolib.backbones.normalization``.

Every transform takes a uint8 clip ``(T, C, H, W)`` (RGB, as ``egolib.epic`` decodes it) and returns float32
``(T, C, h, w)``, with the same random parameters for all frames of the clip. Randomness draws from torch's
global RNG, so a seeded run is deterministic.

Written on plain tensors (crop = slicing, resize = ``torchvision.transforms.v2.functional.resize`` with
antialiasing, close to the PIL bilinear resize of the references) instead of torchvision's ``Random*``
transforms on purpose: the reference multi-scale crop (TSN ``GroupMultiScaleCrop``: scale pairs with aspect
jitter and 13 fixed offsets) has no torchvision equivalent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

# --------------------------------------------------------------------------------------------------
# Normalisation


@dataclass(frozen=True)
class Normalization:
    """What a backbone's weights expect: ``out = (flip_bgr(uint8 * scale) - mean) / std``.

    Attributes:
        mean, std: per output channel (so in BGR order when ``bgr``).
        bgr: reverse RGB to BGR (Caffe-trained weights).
        scale: 1.0 keeps 0-255 (Caffe), 1/255 gives [0, 1] (torchvision, IG-65M).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    scale: float

    def __call__(self, clip: Tensor) -> Tensor:
        """uint8 ``(..., 3, H, W)`` RGB -> float32 ``(..., 3, H, W)`` normalised."""
        x = clip.to(torch.float32) * self.scale
        if self.bgr:
            x = x.flip(-3)  # RGB -> BGR along the channel dim
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    def invert(self, x: Tensor) -> Tensor:
        """float ``(..., 3, H, W)`` normalised -> uint8 RGB (for figures)."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        y = (x * std + mean) / self.scale
        if self.bgr:
            y = y.flip(-3)
        return y.round().clamp(0, 255).to(torch.uint8)


# BN-Inception as trained by TSN/GSM (Caffe style): BGR, 0-255, mean [104, 117, 128], std 1.
CAFFE_BGR = Normalization(mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0), bgr=True, scale=1.0)
# torchvision ResNets (ImageNet), also LSTA's ResNet-34: RGB in [0, 1].
IMAGENET_RGB = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), bgr=False, scale=1 / 255)
# InceptionV3: torchvision's definition and its Google weights, RGB in [0, 1] mapped to [-1, 1]. Deviation: the
# GSM reference normalised InceptionV3 Caffe-style too, but its TSN/CUHK InceptionV3 is a different network (7x1
# before 1x7 in Mixed_6, conv biases) whose checkpoint cannot load into torchvision's; the weights that do load
# expect this normalisation, and the weights own their preprocessing.
INCEPTION_RGB = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), bgr=False, scale=1 / 255)
# R(2+1)D-34 IG-65M (ig65m-pytorch extract.py): RGB in [0, 1].
IG65M_RGB = Normalization(mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989), bgr=False, scale=1 / 255)

# --------------------------------------------------------------------------------------------------
# Geometry helpers on (T, C, H, W) tensors


def _check_clip(clip: Tensor) -> None:
    if clip.dim() != 4 or clip.shape[1] != 3 or clip.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 clip (T, 3, H, W), got {clip.dtype} {tuple(clip.shape)}")


def resize_short_side(clip: Tensor, size: int) -> Tensor:
    """Resize so the short side is ``size`` (aspect kept, bilinear, antialiased).

    Args:
        clip: ``(T, C, H, W)``, uint8 or float.

    Returns:
        ``(T, C, h, w)`` with ``min(h, w) == size``; the input itself when it already has that short side.
    """
    if min(clip.shape[-2:]) == size:
        return clip
    return TF.resize(clip, [size], antialias=True)


def centre_crop(clip: Tensor, size: int) -> Tensor:
    """Square centre crop (offsets rounded as torchvision's ``center_crop``): ``(T, C, H, W) -> (T, C, s, s)``."""
    H, W = clip.shape[-2:]
    if size > min(H, W):
        raise ValueError(f"crop size {size} is larger than the frame {H}x{W}")
    top, left = int(round((H - size) / 2.0)), int(round((W - size) / 2.0))
    return clip[..., top : top + size, left : left + size]


def _choice(options: list) -> object:
    return options[int(torch.randint(len(options), ()))]


def multiscale_crop_params(
    height: int,
    width: int,
    input_size: int,
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66),
    max_distort: int = 1,
    more_fix_crop: bool = True,
) -> tuple[int, int, int, int]:
    """Sample a crop as TSN/GSM ``GroupMultiScaleCrop`` does (torch's global RNG).

    Crop sides are ``int(short_side * s)`` for s in ``scales`` (snapped to ``input_size`` within 2 px); height
    and width take scale indices at most ``max_distort`` apart (aspect jitter); the corner is one of 5 fixed
    offsets (corners and centre), or 13 with ``more_fix_crop`` (plus edge centres and quarter points).

    Returns:
        ``(top, left, crop_height, crop_width)``.
    """
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    sizes = [input_size if abs(s - input_size) < 3 else s for s in sizes]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distort]
    crop_h, crop_w = _choice(pairs)
    h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]  # (row, column) in quarter steps: corners, centre
    if more_fix_crop:
        grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    row, col = _choice(grid)
    return row * h_step, col * w_step, crop_h, crop_w


# --------------------------------------------------------------------------------------------------
# Clip transforms


@dataclass(frozen=True)
class TrainTransform:
    """Training: [resize short side] -> multi-scale corner crop -> resize to a square -> random flip -> normalise.

    Attributes:
        norm: the backbone's normalisation.
        input_size: output side.
        scale_size: resize the short side to this first (None: crop the frames as stored, as GSM does with
            EPIC's 256-px frames; LSTA resizes to 256 first: the same thing when frames are stored at 256).
        scales, max_distort, more_fix_crop: see ``multiscale_crop_params``.
        flip: random horizontal flip with probability 0.5.
    """

    norm: Normalization
    input_size: int
    scale_size: int | None = None
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    more_fix_crop: bool = True
    flip: bool = True

    def sample(self, height: int, width: int) -> tuple[int, int, int, int, bool]:
        """Random parameters ``(top, left, crop_h, crop_w, flip)`` for a clip of frames ``height x width``
        (already resized to ``scale_size``)."""
        crop = multiscale_crop_params(height, width, self.input_size, self.scales, self.max_distort, self.more_fix_crop)
        flip = self.flip and bool(torch.rand(()) < 0.5)
        return (*crop, flip)

    def apply(self, clip: Tensor, params: tuple[int, int, int, int, bool]) -> Tensor:
        """Apply given parameters: uint8 ``(T, C, H, W)`` -> float32 ``(T, C, input_size, input_size)``."""
        top, left, crop_h, crop_w, flip = params
        x = clip[..., top : top + crop_h, left : left + crop_w]
        x = TF.resize(x, [self.input_size, self.input_size], antialias=True)  # (T, C, s, s), uint8
        if flip:
            x = x.flip(-1)
        return self.norm(x)

    def __call__(self, clip: Tensor) -> Tensor:
        """uint8 ``(T, C, H, W)`` -> float32 ``(T, C, input_size, input_size)``, one draw for the whole clip."""
        _check_clip(clip)
        if self.scale_size is not None:
            clip = resize_short_side(clip, self.scale_size)
        return self.apply(clip, self.sample(*clip.shape[-2:]))


@dataclass(frozen=True)
class CentreTransform:
    """Test: resize the short side to ``scale_size``, centre crop ``input_size``, normalise."""

    norm: Normalization
    input_size: int
    scale_size: int

    def __post_init__(self) -> None:
        if self.input_size > self.scale_size:
            raise ValueError(f"input_size {self.input_size} must be <= scale_size {self.scale_size}")

    def __call__(self, clip: Tensor) -> Tensor:
        """uint8 ``(T, C, H, W)`` -> float32 ``(T, C, input_size, input_size)``."""
        _check_clip(clip)
        return self.norm(centre_crop(resize_short_side(clip, self.scale_size), self.input_size))


@dataclass(frozen=True)
class FullFrameTransform:
    """Fully-convolutional test: resize the short side to ``scale_size``, no crop (16:9 stays 16:9), normalise."""

    norm: Normalization
    scale_size: int

    def __call__(self, clip: Tensor) -> Tensor:
        """uint8 ``(T, C, H, W)`` -> float32 ``(T, C, h, w)`` with ``min(h, w) == scale_size``."""
        _check_clip(clip)
        return self.norm(resize_short_side(clip, self.scale_size))


def train_transform(norm: Normalization, input_size: int, scale_size: int | None = None) -> TrainTransform:
    """Multi-scale crop ``[1, .875, .75, .66]`` + flip (GSM/TSN training augmentation)."""
    return TrainTransform(norm, input_size, scale_size)


def centre_transform(norm: Normalization, input_size: int, scale_size: int) -> CentreTransform:
    """Resize to ``scale_size`` + centre crop ``input_size`` (the references' test transform)."""
    return CentreTransform(norm, input_size, scale_size)


def full_frame_transform(norm: Normalization, scale_size: int) -> FullFrameTransform:
    """Resize to ``scale_size``, no crop (the report's fully-convolutional testing)."""
    return FullFrameTransform(norm, scale_size)
