"""egolib.transforms: normalisation (per backbone from egolib.backbones), multi-scale crop + flip, centre crop,
full frame."""

from __future__ import annotations

import pytest
import torch

from egolib import backbones, config, transforms
from egolib.backbones import NORMALIZATION


def pixel_clip(r: int, g: int, b: int, T: int = 2, H: int = 4, W: int = 6) -> torch.Tensor:
    """A uint8 clip (T, 3, H, W) of one RGB colour."""
    return torch.tensor([r, g, b], dtype=torch.uint8).view(1, 3, 1, 1).expand(T, 3, H, W).contiguous()


def random_clip(T: int = 3, H: int = 128, W: int = 228, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8, generator=g)


# --------------------------------------------------------------------------------------------------
# Normalisation


def test_caffe_style_for_bn_inception_is_bgr_0_255_mean_subtracted() -> None:
    out = NORMALIZATION["bninc"](pixel_clip(10, 20, 30))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 6)
    # channel 0 is blue (30 - 104), 1 green (20 - 117), 2 red (10 - 128); std 1, no division by 255
    assert out[0, :, 0, 0].tolist() == [30 - 104, 20 - 117, 10 - 128]


def test_inception_v3_follows_torchvision_weights() -> None:
    out = NORMALIZATION["incv3"](pixel_clip(0, 255, 51))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-1.0, 1.0, 51 / 255 * 2 - 1]))


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [
        ("res34", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("res152", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("r2p1d34", (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)),
    ],
)
def test_rgb_mean_std_on_unit_range(name: str, mean: tuple, std: tuple) -> None:
    out = NORMALIZATION[name](pixel_clip(10, 20, 30))
    expected = [(v / 255 - m) / s for v, m, s in zip((10, 20, 30), mean, std, strict=True)]
    assert out[1, :, 2, 3].tolist() == pytest.approx(expected, rel=1e-5)


def test_invert_round_trips_and_registry_matches_backbones() -> None:
    clip = random_clip(T=2, H=8, W=8)
    for norm in NORMALIZATION.values():
        assert torch.equal(norm.invert(norm(clip)), clip)
    assert set(NORMALIZATION) == set(config.BACKBONES)
    assert backbones.normalization("bninc") is transforms.CAFFE_BGR
    with pytest.raises(ValueError, match="bninc, incv3, res34"):
        backbones.normalization("vgg16")


# --------------------------------------------------------------------------------------------------
# Multi-scale crop


def test_multiscale_crop_params_follow_the_reference() -> None:
    torch.manual_seed(0)
    H, W, size = 128, 228, 80
    sides = [128, 112, 96, 84]  # int(128 * s) for s in (1, .875, .75, .66); none within 2 px of 80
    seen_sides, seen_corners = set(), set()
    for _ in range(400):
        top, left, ch, cw = transforms.multiscale_crop_params(H, W, size)
        assert ch in sides and cw in sides and abs(sides.index(ch) - sides.index(cw)) <= 1  # aspect jitter
        assert 0 <= top and top + ch <= H and 0 <= left and left + cw <= W
        h_step, w_step = (H - ch) // 4, (W - cw) // 4
        assert top in {k * h_step for k in range(5)} and left in {k * w_step for k in range(5)}
        seen_sides.add((ch, cw))
        if h_step and w_step:
            seen_corners.add((top // h_step, left // w_step))
    assert len(seen_sides) == 10  # 4 squares + 3 * 2 neighbours
    assert len(seen_corners) == 13  # the 13 fixed offsets of more_fix_crop
    # a side within 2 px of the input size is snapped to it (TSN GroupMultiScaleCrop)
    assert all(transforms.multiscale_crop_params(91, 162, 80)[2] in {91, 80, 68, 60} for _ in range(50))


def test_train_transform_one_draw_for_the_whole_clip() -> None:
    torch.manual_seed(0)
    frame = random_clip(T=1)
    clip = frame.expand(5, -1, -1, -1).contiguous()  # five identical frames
    t = transforms.train_transform(NORMALIZATION["res34"], 80)
    for _ in range(10):
        out = t(clip)
        assert out.shape == (5, 3, 80, 80) and out.dtype == torch.float32
        assert all(torch.equal(out[0], out[i]) for i in range(1, 5))  # same crop and flip for every frame


def test_train_transform_flip_and_seed() -> None:
    clip = random_clip()
    t = transforms.train_transform(NORMALIZATION["bninc"], 64)
    params = (8, 20, 96, 112)
    assert torch.equal(t.apply(clip, (*params, True)), t.apply(clip, (*params, False)).flip(-1))
    torch.manual_seed(5)
    a = t(clip)
    torch.manual_seed(5)
    assert torch.equal(t(clip), a)
    torch.manual_seed(0)
    flips = {t.sample(128, 228)[4] for _ in range(30)}
    assert flips == {True, False}
    assert not transforms.TrainTransform(NORMALIZATION["bninc"], 64, flip=False).sample(128, 228)[4]


def test_train_transform_with_scale_size_resizes_first() -> None:
    torch.manual_seed(0)
    t = transforms.train_transform(NORMALIZATION["res34"], 80, scale_size=91)
    assert t(random_clip()).shape == (3, 3, 80, 80)
    # the crop is drawn on the resized frame: sides come from the 91-px short side
    assert transforms.resize_short_side(random_clip(), 91).shape == (3, 3, 91, 162)


# --------------------------------------------------------------------------------------------------
# Test-time transforms


def test_centre_transform() -> None:
    clip = random_clip(H=96, W=170)
    norm = NORMALIZATION["res101"]
    # short side already at scale_size: no resize, so the output is exactly the normalised centre slice
    out = transforms.centre_transform(norm, 80, 96)(clip)
    top, left = 8, 45  # round((96 - 80) / 2), round((170 - 80) / 2)
    assert torch.equal(out, norm(clip[..., top : top + 80, left : left + 80]))
    assert transforms.centre_transform(norm, 80, 91)(random_clip()).shape == (3, 3, 80, 80)
    with pytest.raises(ValueError, match="input_size 100 must be <= scale_size 91"):
        transforms.centre_transform(norm, 100, 91)


def test_full_frame_keeps_the_aspect() -> None:
    out = transforms.full_frame_transform(NORMALIZATION["incv3"], 91)(random_clip())
    assert out.shape == (3, 3, 91, 162)  # 128 x 228 (16:9) -> short side 91, no crop
    flat = transforms.full_frame_transform(NORMALIZATION["incv3"], 64)(pixel_clip(10, 20, 30, H=128, W=228))
    assert flat.shape[-2:] == (64, 114) and torch.allclose(flat, flat[..., :1, :1].expand_as(flat))


def test_bad_clips_are_rejected() -> None:
    t = transforms.full_frame_transform(NORMALIZATION["res34"], 64)
    with pytest.raises(ValueError, match=r"uint8 clip \(T, 3, H, W\)"):
        t(random_clip().float())
    with pytest.raises(ValueError, match=r"uint8 clip"):
        t(random_clip()[0])
