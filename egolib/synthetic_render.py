"""SynthKitchens rendering: the taxonomy, textures, objects, hands, motion programs and the camera.

Everything here is numpy + PIL and deterministic given a ``numpy.random.Generator``. The dataset
planner and the file writer live in ``egolib.synthetic``; this file only turns a scene description
into frames and boxes.

Geometry. A frame is rendered at ``SUPERSAMPLE`` times its size and box-filtered down (anti-aliasing).
Scene coordinates are in *view units*: 1 unit = the frame's short side, origin at the centre of the
world canvas, x right, y down (towards the camera wearer: the bottom of the frame is "near"). The world
canvas is ``WORLD_MARGIN`` times the view so that the camera (ego-motion) can pan, rotate and zoom.

Read top-down: taxonomy -> colours and patterns -> textures -> sprites -> motion programs -> camera ->
frame renderer.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2  # render at 2x, then Image.reduce(2): cheap anti-aliasing
OBJECT_SCALE = 1.15  # all objects: large enough to be recognised in 80-px training crops
WORLD_MARGIN = 1.5  # world canvas / view, per side length


# --------------------------------------------------------------------------------------------------
# Taxonomy. A noun class is a (shape, colour family, pattern) combination; every single value is shared
# by at least two classes, so no single cue identifies a class (tested). Ids are ordered roughly by
# frequency, as in EPIC.


@dataclass(frozen=True)
class NounSpec:
    name: str
    shape: str  # disc | ring | rbox | bar | hexagon | handle
    colour: str  # a key of COLOURS
    pattern: str  # plain | stripes | dots | checker | rim
    size: float  # long side in view units (before per-instance and per-kitchen scaling)
    aspect: float  # width / height of the body (rbox, bar); 1 for round shapes
    synonyms: tuple[str, ...] = ()


NOUNS: tuple[NounSpec, ...] = (
    NounSpec("plate", "disc", "white", "rim", 0.34, 1.0, ("dish",)),
    NounSpec("cup", "ring", "blue", "plain", 0.26, 1.0, ("mug", "glass")),
    NounSpec("pan", "handle", "grey", "plain", 0.40, 1.0, ("saucepan", "wok")),
    NounSpec("bowl", "ring", "white", "dots", 0.32, 1.0, ()),
    NounSpec("knife", "bar", "grey", "plain", 0.40, 0.2, ()),
    NounSpec("tap", "hexagon", "grey", "rim", 0.26, 1.0, ("faucet",)),
    NounSpec("bottle", "rbox", "green", "plain", 0.36, 0.5, ()),
    NounSpec("onion", "disc", "yellow", "stripes", 0.26, 1.0, ()),
    NounSpec("tomato", "disc", "red", "plain", 0.26, 1.0, ()),
    NounSpec("lid", "disc", "grey", "rim", 0.30, 1.0, ("cover",)),
    NounSpec("drawer", "rbox", "brown", "rim", 0.42, 1.8, ()),
    NounSpec("board", "rbox", "brown", "stripes", 0.42, 1.5, ("chopping-board",)),
    NounSpec("sponge", "rbox", "yellow", "dots", 0.24, 1.4, ("scrubber",)),
    NounSpec("spoon", "handle", "green", "plain", 0.34, 1.0, ("ladle",)),
    NounSpec("jar", "rbox", "orange", "stripes", 0.28, 0.8, ()),
    NounSpec("container", "rbox", "blue", "checker", 0.32, 1.2, ("box", "tupperware")),
    NounSpec("carrot", "bar", "orange", "stripes", 0.38, 0.26, ()),
    NounSpec("fridge", "rbox", "white", "plain", 0.46, 0.7, ("freezer",)),
    NounSpec("bag", "hexagon", "red", "checker", 0.32, 1.0, ("packet",)),
    NounSpec("potato", "hexagon", "brown", "dots", 0.26, 1.0, ()),
)
NOUN_NAMES = tuple(n.name for n in NOUNS)

# Verbs: ids ordered roughly by frequency. The four time-reversal pairs: the reversed motion program of
# one verb is exactly the other's (motion_program below, tested on rendered boxes).
VERBS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("take", ("take", "grab", "pick-up")),
    ("put", ("put", "place", "put-down")),
    ("open", ("open", "open-up")),
    ("close", ("close", "shut")),
    ("wash", ("wash", "rinse")),
    ("cut", ("cut", "slice", "chop")),
    ("mix", ("mix", "stir")),
    ("pour", ("pour",)),
    ("move", ("move", "slide")),
    ("turn-on", ("turn-on", "switch-on")),
    ("turn-off", ("turn-off", "switch-off")),
    ("shake", ("shake",)),
    ("push", ("push",)),
    ("pull", ("pull",)),
)
VERB_NAMES = tuple(v for v, _ in VERBS)
REVERSAL_PAIRS: tuple[tuple[str, str], ...] = (("take", "put"), ("open", "close"), ("turn-on", "turn-off"),
                                               ("push", "pull"))

# Which verbs apply to which nouns: a sparse, EPIC-like action set.
_MOVABLE = ("plate", "cup", "pan", "bowl", "knife", "bottle", "onion", "tomato", "lid", "board", "sponge",
            "spoon", "jar", "container", "carrot", "bag", "potato")
COMPATIBLE: dict[str, tuple[str, ...]] = {
    "take": _MOVABLE,
    "put": _MOVABLE,
    "open": ("drawer", "fridge", "jar", "bottle", "container", "bag"),
    "close": ("drawer", "fridge", "jar", "bottle", "container", "bag"),
    "wash": ("plate", "cup", "pan", "bowl", "knife", "lid", "board", "spoon", "tomato", "carrot", "potato"),
    "cut": ("onion", "tomato", "carrot", "potato"),
    "mix": ("pan", "bowl", "cup", "container"),
    "pour": ("bottle", "cup", "jar", "pan", "bowl", "container"),
    "move": ("plate", "cup", "pan", "bowl", "board", "jar", "container", "bag", "lid", "sponge"),
    "turn-on": ("tap", "pan"),
    "turn-off": ("tap", "pan"),
    "shake": ("bottle", "jar", "bag", "pan", "container"),
    "push": ("drawer", "board", "plate", "bowl", "container", "pan"),
    "pull": ("drawer", "board", "plate", "bowl", "container", "pan"),
}


# --------------------------------------------------------------------------------------------------
# Colour families (HSV centre, jitter) and skin tones.

COLOURS: dict[str, tuple[float, float, float]] = {  # hue (0-1), saturation, value
    "red": (0.00, 0.80, 0.85),
    "orange": (0.08, 0.85, 0.95),
    "yellow": (0.15, 0.75, 0.95),
    "green": (0.33, 0.70, 0.70),
    "blue": (0.60, 0.70, 0.85),
    "white": (0.10, 0.05, 0.96),
    "grey": (0.60, 0.06, 0.55),
    "brown": (0.07, 0.60, 0.45),
    "purple": (0.80, 0.55, 0.70),  # used only by the pretraining vocabulary
}
SKIN_TONES = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 34))


def colour(family: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random RGB colour of a colour family (hue +-0.025, saturation and value +-0.08)."""
    h, s, v = COLOURS[family]
    h = (h + rng.uniform(-0.025, 0.025)) % 1.0
    s = float(np.clip(s + rng.uniform(-0.08, 0.08), 0, 1))
    v = float(np.clip(v + rng.uniform(-0.08, 0.08), 0, 1))
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _shade(rgb: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    """Darken (f < 1) or lighten (f > 1, towards white) a colour."""
    if f <= 1:
        return tuple(int(c * f) for c in rgb)  # type: ignore[return-value]
    return tuple(int(c + (255 - c) * (f - 1)) for c in rgb)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Counter textures (one family per kitchen): value noise, wood grain, tiles, marble, stripes, speckle.

TEXTURES = ("wood", "tiles", "marble", "stripes", "speckle")


def value_noise(h: int, w: int, cells: int, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Smooth noise in [0, 1], shape (h, w): random grids upsampled bicubically and summed over octaves."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = cells * 2**o
        grid = rng.random((n, max(2, round(n * w / h)))).astype(np.float32)
        img = Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC)
        out += amp * np.asarray(img)
        total += amp
        amp *= 0.5
    out /= total
    return np.clip((out - out.min()) / max(1e-6, float(out.max() - out.min())), 0, 1)


@dataclass(frozen=True)
class TextureSpec:
    """The look of one kitchen's counter: a texture family, two colours, a lighting gradient."""

    kind: str
    base: tuple[int, int, int]
    accent: tuple[int, int, int]
    scale: float  # feature size multiplier
    light_angle: float  # direction of the lighting gradient (radians)
    light_strength: float  # 0 = flat lighting


def random_texture_spec(rng: np.random.Generator) -> TextureSpec:
    """Draw a kitchen counter look: family, palette (muted colours), lighting."""
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    h = rng.random()
    s = rng.uniform(0.05, 0.45)
    v = rng.uniform(0.35, 0.85)
    base = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v))
    h2 = (h + rng.uniform(-0.15, 0.15)) % 1.0
    v2 = float(np.clip(v + rng.choice([-1, 1]) * rng.uniform(0.15, 0.35), 0.05, 1))
    accent = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h2, min(1.0, s + rng.uniform(0, 0.2)), v2))
    return TextureSpec(kind, base, accent, float(rng.uniform(0.7, 1.4)), float(rng.uniform(0, 2 * math.pi)),
                       float(rng.uniform(0.1, 0.35)))


def render_texture(spec: TextureSpec, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Render a counter texture.

    Returns:
        uint8 array (h, w, 3).
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / h  # (h, w), in units of the height
    s = spec.scale
    if spec.kind == "wood":
        warp = value_noise(h, w, 3, rng)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (yy * 9 / s + 2.5 * warp))
        t = t**3 + 0.25 * value_noise(h, w, 12, rng, octaves=2)
    elif spec.kind == "tiles":
        n = 4.0 / s
        fx, fy = (xx * n) % 1, (yy * n) % 1
        grout = (np.minimum(fx, 1 - fx) < 0.04) | (np.minimum(fy, 1 - fy) < 0.04)
        tile_id = np.floor(xx * n) * 31 + np.floor(yy * n) * 17
        jitter = (np.sin(tile_id * 12.9898) * 43758.5453) % 1
        t = np.where(grout, 1.0, 0.15 * jitter)
    elif spec.kind == "marble":
        n = value_noise(h, w, 2, rng, octaves=4)
        t = np.abs(np.sin(2 * math.pi * (xx * 2 / s + yy * 1.3 / s + 3 * n))) ** 0.3
        t = 1 - t
    elif spec.kind == "stripes":
        ang = rng.uniform(0, math.pi)
        u = xx * math.cos(ang) + yy * math.sin(ang)
        t = ((u * 6 / s) % 1 < 0.5).astype(np.float32) * 0.8 + 0.2 * value_noise(h, w, 6, rng, octaves=1)
    elif spec.kind == "speckle":
        t = (rng.random((h, w)) < 0.08).astype(np.float32) * 0.9
        t += 0.3 * value_noise(h, w, 5, rng, octaves=2)
    else:
        raise ValueError(f"unknown texture {spec.kind!r}; choose one of {', '.join(TEXTURES)}")
    t = np.clip(t, 0, 1)[..., None]  # (h, w, 1)
    img = (1 - t) * np.asarray(spec.base, np.float32) + t * np.asarray(spec.accent, np.float32)  # (h, w, 3)
    light = 1 + spec.light_strength * ((xx - xx.mean()) * math.cos(spec.light_angle)
                                       + (yy - yy.mean()) * math.sin(spec.light_angle))
    img *= light[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Object sprites: an RGBA image of the object at rest (pattern included) and the part that opens.


@dataclass
class Sprite:
    """A rendered object instance (RGBA, at render resolution).

    ``part_box`` is the region (x1, y1, x2, y2) in sprite pixels of the part that separates on ``open``
    (a lid, a door, a drawer front); ``part_shift`` its displacement when fully open, in sprite pixels.
    """

    image: Image.Image
    part_box: tuple[int, int, int, int]
    part_shift: tuple[float, float]
    colour: tuple[int, int, int]
    radius: float  # half of the long side, in view units


def _pattern(size: tuple[int, int], pattern: str, rgb: tuple[int, int, int], cell: float,
             rng: np.random.Generator) -> Image.Image:
    """The fill of an object: its colour with a surface pattern, RGB image of ``size`` (w, h)."""
    w, h = size
    img = Image.new("RGB", size, rgb)
    d = ImageDraw.Draw(img)
    dark, light = _shade(rgb, 0.55), _shade(rgb, 1.5)
    step = max(3.0, cell)
    if pattern == "stripes":
        off = rng.uniform(0, step)
        x = -h + off
        while x < w + h:
            d.line([(x, 0), (x + h * 0.6, h)], fill=dark, width=max(1, int(step * 0.35)))
            x += step
    elif pattern == "dots":
        r = step * 0.22
        for yi, y in enumerate(np.arange(step / 2, h, step)):
            for x in np.arange(step / 2 + (yi % 2) * step / 2, w, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=light if sum(rgb) < 400 else dark)
    elif pattern == "checker":
        for yi, y in enumerate(np.arange(0, h, step)):
            for xi, x in enumerate(np.arange(0, w, step)):
                if (xi + yi) % 2:
                    d.rectangle([x, y, x + step, y + step], fill=dark)
    elif pattern in ("plain", "rim"):
        pass  # rim is drawn as an outline on the mask below
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return img


def _shape_mask(shape: str, w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """An 'L' mask of a shape filling a (w, h) box, and its draw handle."""
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    if shape == "disc":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif shape == "ring":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
        t = 0.22 * min(w, h)
        d.ellipse([t, t, w - 1 - t, h - 1 - t], fill=110)  # a darker inside, not a hole: a cup seen from above
    elif shape == "rbox":
        d.rounded_rectangle([0, 0, w - 1, h - 1], radius=int(0.18 * min(w, h)), fill=255)
    elif shape == "bar":
        d.rounded_rectangle([0, 0, w - 1, h - 1], radius=int(0.45 * min(w, h)), fill=255)
    elif shape == "hexagon":
        cx, cy, r = w / 2, h / 2, min(w, h) / 2 - 1
        rot = rng.uniform(0, math.pi / 3)
        d.polygon([(cx + r * math.cos(rot + k * math.pi / 3), cy + r * math.sin(rot + k * math.pi / 3))
                   for k in range(6)], fill=255)
    elif shape == "handle":  # a disc with a long handle: pan, spoon
        r = 0.3 * h
        d.ellipse([w / 2 - r * 1.0, 0, w / 2 + r * 1.0, 2 * r], fill=255)
        d.rounded_rectangle([w / 2 - 0.07 * h, r, w / 2 + 0.07 * h, h - 1], radius=int(0.06 * h), fill=255)
    elif shape == "triangle":
        d.polygon([(w / 2, 0), (w - 1, h - 1), (0, h - 1)], fill=255)
    elif shape == "star":
        cx, cy = w / 2, h / 2
        pts = []
        for k in range(10):
            r = (min(w, h) / 2 - 1) * (1.0 if k % 2 == 0 else 0.45)
            a = k * math.pi / 5 - math.pi / 2
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        d.polygon(pts, fill=255)
    elif shape == "cross":
        t = 0.3
        d.rectangle([w * (0.5 - t / 2), 0, w * (0.5 + t / 2), h - 1], fill=255)
        d.rectangle([0, h * (0.5 - t / 2), w - 1, h * (0.5 + t / 2)], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask, d


SHAPES = ("disc", "ring", "rbox", "bar", "hexagon", "handle", "triangle", "star", "cross")


def make_sprite(shape: str, colour_family: str, pattern: str, size: float, aspect: float, px_per_unit: float,
                rng: np.random.Generator) -> Sprite:
    """Render one object instance; size, hue, aspect vary within the class.

    Args:
        size: long side in view units. aspect: body width / height.
        px_per_unit: render pixels per view unit.

    Returns:
        the Sprite (RGBA image whose alpha is the object mask).
    """
    size = size * rng.uniform(0.88, 1.12)
    aspect = aspect * rng.uniform(0.88, 1.12)
    if shape == "handle":
        aspect = 0.5
    long_px = max(6.0, size * px_per_unit)
    if aspect >= 1:
        w, h = long_px, long_px / aspect
    else:
        w, h = long_px * aspect, long_px
    w, h = max(4, int(round(w))), max(4, int(round(h)))
    rgb = colour(colour_family, rng)
    mask, d = _shape_mask(shape, w, h, rng)
    fill = _pattern((w, h), pattern, rgb, cell=max(w, h) / 5, rng=rng)
    if pattern == "rim" or shape == "ring":  # a darker outline band
        edge = Image.new("L", (w, h), 0)
        ed = ImageDraw.Draw(edge)
        t = max(2, int(0.12 * min(w, h)))
        inner, _ = _shape_mask(shape, max(1, w - 2 * t), max(1, h - 2 * t), np.random.default_rng(0))
        ring = Image.new("L", (w, h), 255)
        ring.paste(0, (t, t), inner.point(lambda v: 255 if v > 0 else 0))
        del ed
        fill.paste(_shade(rgb, 0.6 if pattern == "rim" else 0.8), (0, 0), ring)
    if shape == "ring":  # the darker inside
        inside = mask.point(lambda v: 255 if 0 < v < 200 else 0)
        fill.paste(_shade(rgb, 0.7), (0, 0), inside)
        mask = mask.point(lambda v: 255 if v > 0 else 0)
    img = fill.convert("RGBA")
    img.putalpha(mask)
    # the part that opens: the top 35 % of the body (a lid, a door, a drawer front)
    ph = max(2, int(0.35 * h))
    part_box = (0, 0, w, ph)
    part_shift = (0.45 * w, -1.1 * ph - 0.15 * h)
    return Sprite(img, part_box, part_shift, rgb, 0.5 * max(w, h) / px_per_unit)


def noun_sprite(noun: int, px_per_unit: float, scale: float, rng: np.random.Generator) -> Sprite:
    """A random instance of noun class ``noun`` (size scaled by the kitchen's camera height)."""
    n = NOUNS[noun]
    return make_sprite(n.shape, n.colour, n.pattern, n.size * scale * OBJECT_SCALE, n.aspect, px_per_unit, rng)


# --------------------------------------------------------------------------------------------------
# Motion programs. A verb is a function of normalised time tau in [0, 1] that returns the pose of the
# active object, of the hand (None: out of view below the frame) and of the effects. Reversal pairs are
# defined as pair(tau) = other(1 - tau), which is what "the reversed video of one is the other" means.


@dataclass(frozen=True)
class Pose:
    """Where things are at one instant; positions are absolute, in view units."""

    obj: tuple[float, float]
    scale: float = 1.0
    angle: float = 0.0  # degrees, counter-clockwise
    part: float = 0.0  # 0 closed .. 1 fully open
    stream: float = 0.0  # 0 .. 1: water (tap, wash, pour) or flame (pan)
    pieces: int = 0  # cut pieces so far
    hand: tuple[float, float] | None = None
    tool: tuple[float, float] | None = None  # knife or spoon tip (cut, mix)


@dataclass(frozen=True)
class MotionContext:
    """Per-segment constants of a motion program."""

    rest: tuple[float, float]  # rest position of the active object
    radius: float  # half long side of the object, view units
    direction: float  # +1 or -1 (move, mix, pour side)
    strokes: int  # cut strokes, mix turns, shake cycles
    part_shift: tuple[float, float]  # displacement of the opening part when open (view units)


def _ramp(t: float, a: float, b: float) -> float:
    """Smoothstep from 0 (t <= a) to 1 (t >= b)."""
    x = min(1.0, max(0.0, (t - a) / (b - a)))
    return x * x * (3 - 2 * x)


def _lerp(p: tuple[float, float], q: tuple[float, float], a: float) -> tuple[float, float]:
    return (p[0] + (q[0] - p[0]) * a, p[1] + (q[1] - p[1]) * a)


def _off(c: MotionContext) -> tuple[float, float]:
    """Where the hand waits: below the bottom of the view (y = +0.5) whatever the head does."""
    return (c.rest[0] + 0.25, 1.2)


def _reach(t: float, c: MotionContext, target: tuple[float, float], a: float, b: float, e: float, f: float
           ) -> tuple[float, float] | None:
    """The hand enters from the bottom during [a, b], stays at ``target``, leaves during [e, f]."""
    if t <= a or t >= f:
        return None
    return _lerp(_off(c), target, _ramp(t, a, b) * (1 - _ramp(t, e, f)))


def _take(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    grasp = (x, y + 0.3 * c.radius)
    carry = _ramp(t, 0.35, 0.92)
    end = (x + 0.12, 0.7 + 1.4 * c.radius)  # fully below the view
    obj = _lerp((x, y), end, carry)
    hand = _reach(t, c, grasp, 0.0, 0.3, 2, 3) if t < 0.35 else (grasp[0] + obj[0] - x, grasp[1] + obj[1] - y)
    return Pose(obj, scale=1 + 0.25 * carry, hand=hand)


def _open(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    a = _ramp(t, 0.35, 0.7)
    top = (x, y - 0.6 * c.radius)
    grip = (top[0] + a * c.part_shift[0], top[1] + a * c.part_shift[1])
    if t < 0.35:
        hand = _reach(t, c, top, 0.0, 0.3, 2, 3)
    elif t <= 0.75:
        hand = grip
    else:
        hand = _reach(t, c, grip, -1, 0, 0.75, 1.0)
    return Pose((x, y), part=a, hand=hand)


def _turn_on(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    knob = (x, y + 0.2 * c.radius)
    return Pose((x, y), angle=-35 * _ramp(t, 0.3, 0.45), stream=_ramp(t, 0.45, 0.6),
                hand=_reach(t, c, knob, 0.0, 0.3, 0.6, 0.9))


def _push(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    a = _ramp(t, 0.3, 0.75)
    obj = (x, y - 0.28 * a)
    near = (obj[0], obj[1] + 0.9 * c.radius)
    hand = _reach(t, c, (x, y + 0.9 * c.radius), 0.0, 0.3, 2, 3) if t < 0.3 else (
        near if t <= 0.75 else _reach(t, c, near, -1, 0, 0.75, 1.0))
    return Pose(obj, scale=1 - 0.2 * a, hand=hand)


def _wash(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    env = _ramp(t, 0.2, 0.3) * (1 - _ramp(t, 0.7, 0.8))
    u = 2 * math.pi * c.strokes * t
    obj = (x + 0.05 * math.sin(u) * env, y + 0.02 * math.cos(u) * env)
    grip = (obj[0] + 0.3 * c.radius, obj[1] + 0.4 * c.radius)
    hand = _reach(t, c, grip, 0.0, 0.2, 0.8, 1.0) if (t < 0.2 or t > 0.8) else grip
    return Pose(obj, angle=15 * math.sin(u + 1) * env, stream=_ramp(t, 0.05, 0.15) * (1 - _ramp(t, 0.85, 0.95)),
                hand=hand)


def _cut(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    u = _ramp(t, 0.15, 0.9)
    work = 0.15 < t < 0.9
    tool = (x - 0.6 * c.radius + 1.2 * c.radius * u, y - 0.4 * c.radius + 0.7 * c.radius * abs(math.sin(
        math.pi * c.strokes * u))) if work else (x - 0.6 * c.radius, y - 0.4 * c.radius)
    hand_at = (tool[0] + 0.05, tool[1] + 0.3)
    hand = hand_at if work else _reach(t, c, hand_at, 0.0, 0.15, 0.9, 1.0)
    return Pose((x, y), pieces=int(c.strokes * u + 1e-6) if t > 0.15 else 0, hand=hand,
                tool=tool if hand is not None else None)


def _mix(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    u = _ramp(t, 0.2, 0.8)
    ang = 2 * math.pi * c.strokes * u * c.direction
    tool = (x + 0.45 * c.radius * math.cos(ang), y + 0.45 * c.radius * math.sin(ang))
    hand_at = (tool[0] + 0.05, tool[1] + 0.3)
    hand = hand_at if 0.2 <= t <= 0.8 else _reach(t, c, hand_at, 0.0, 0.2, 0.8, 1.0)
    return Pose((x, y), hand=hand, tool=tool if hand is not None else None)


def _pour(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    tilt = _ramp(t, 0.25, 0.45) * (1 - _ramp(t, 0.7, 0.85))
    obj = (x, y - 0.05 * tilt)
    grip = (obj[0], obj[1] + 0.5 * c.radius)
    hand = grip if 0.2 <= t <= 0.85 else _reach(t, c, grip, 0.0, 0.2, 0.85, 1.0)
    return Pose(obj, angle=70 * tilt * c.direction, stream=_ramp(t, 0.4, 0.5) * (1 - _ramp(t, 0.62, 0.72)),
                hand=hand)


def _shake(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    env = _ramp(t, 0.25, 0.3) * (1 - _ramp(t, 0.75, 0.8))
    u = 2 * math.pi * (c.strokes + 2) * t
    obj = (x + 0.07 * math.sin(u) * env, y - 0.05 * env + 0.02 * math.sin(2 * u) * env)
    grip = (obj[0], obj[1] + 0.5 * c.radius)
    hand = grip if 0.2 <= t <= 0.8 else _reach(t, c, grip, 0.0, 0.2, 0.8, 1.0)
    return Pose(obj, angle=10 * math.sin(u) * env, hand=hand)


def _move(t: float, c: MotionContext) -> Pose:
    x, y = c.rest
    a = _ramp(t, 0.3, 0.75)
    obj = (x + 0.32 * a * c.direction, y)
    grip = (obj[0] - 0.5 * c.radius * c.direction, obj[1] + 0.4 * c.radius)
    hand = grip if 0.3 <= t <= 0.75 else _reach(t, c, grip, 0.0, 0.3, 0.75, 1.0)
    return Pose(obj, hand=hand)


def _reversed(program):
    def run(t: float, c: MotionContext) -> Pose:
        return program(1.0 - t, c)

    return run


MOTION_PROGRAMS = {
    "take": _take,
    "put": _reversed(_take),
    "open": _open,
    "close": _reversed(_open),
    "turn-on": _turn_on,
    "turn-off": _reversed(_turn_on),
    "push": _push,
    "pull": _reversed(_push),
    "wash": _wash,
    "cut": _cut,
    "mix": _mix,
    "pour": _pour,
    "shake": _shake,
    "move": _move,
}


def motion_program(verb: str):
    """The motion program of a verb: ``f(tau, MotionContext) -> Pose``."""
    if verb not in MOTION_PROGRAMS:
        raise ValueError(f"unknown verb {verb!r}; choose one of {', '.join(MOTION_PROGRAMS)}")
    return MOTION_PROGRAMS[verb]


# --------------------------------------------------------------------------------------------------
# Camera (ego-motion): a smooth random trajectory plus occasional fast head turns.


@dataclass(frozen=True)
class Camera:
    """One frame's camera: pan (view units), rotation (degrees) and zoom."""

    x: float = 0.0
    y: float = 0.0
    angle: float = 0.0
    zoom: float = 1.0


def camera_trajectory(n: int, fps: float, rng: np.random.Generator, *, head_turns_per_min: float = 6.0
                      ) -> list[Camera]:
    """A camera per frame: sums of slow sinusoids plus head turns (fast rise over ~0.25 s, hold, return)."""
    t = np.arange(n) / fps

    def smooth(amp: float) -> np.ndarray:
        out = np.zeros(n)
        for _ in range(3):
            out += amp / 3 * np.sin(2 * math.pi * rng.uniform(0.05, 0.35) * t + rng.uniform(0, 2 * math.pi))
        return out

    x, y, ang, zoom = smooth(0.08), smooth(0.05), smooth(2.5), 1 + smooth(0.05)
    n_turns = rng.poisson(head_turns_per_min * n / fps / 60)
    for _ in range(n_turns):
        t0 = rng.uniform(0, t[-1] if n > 1 else 1)
        amp = rng.choice([-1, 1]) * rng.uniform(0.12, 0.28)
        rise, hold, back = 0.25, rng.uniform(0.3, 0.8), rng.uniform(0.6, 1.2)
        up = np.clip((t - t0) / rise, 0, 1)
        down = np.clip((t - t0 - rise - hold) / back, 0, 1)
        shape = up * (1 - down)
        x += amp * shape
        ang += amp * 8 * shape
    return [Camera(float(a), float(b), float(c), float(d)) for a, b, c, d in zip(x, y, ang, zoom, strict=True)]


@dataclass(frozen=True)
class Frame:
    """Frame geometry: output size (w, h) and world canvas size at render resolution."""

    w: int
    h: int

    @property
    def px(self) -> float:  # render pixels per view unit
        return self.h * SUPERSAMPLE

    @property
    def world(self) -> tuple[int, int]:
        return (int(round(self.w * SUPERSAMPLE * WORLD_MARGIN)), int(round(self.h * SUPERSAMPLE * WORLD_MARGIN)))

    def to_world_px(self, p: tuple[float, float]) -> tuple[float, float]:
        ww, wh = self.world
        return (ww / 2 + p[0] * self.px, wh / 2 + p[1] * self.px)

    def affine(self, cam: Camera) -> tuple[float, ...]:
        """PIL AFFINE data mapping output (render-res view) pixels to world pixels."""
        vw, vh = self.w * SUPERSAMPLE, self.h * SUPERSAMPLE
        cx, cy = self.to_world_px((cam.x, cam.y))
        th = math.radians(cam.angle)
        a, b = math.cos(th) / cam.zoom, -math.sin(th) / cam.zoom
        d, e = math.sin(th) / cam.zoom, math.cos(th) / cam.zoom
        return (a, b, cx - a * vw / 2 - b * vh / 2, d, e, cy - d * vw / 2 - e * vh / 2)

    def world_to_frame(self, pts: np.ndarray, cam: Camera) -> np.ndarray:
        """Map world pixels (N, 2) to output frame pixels (N, 2) (the inverse of ``affine``)."""
        a, b, c, d, e, f = self.affine(cam)
        m = np.array([[a, b], [d, e]])
        v = np.linalg.solve(m, (pts - np.array([c, f])).T).T  # (N, 2) render-res view pixels
        return v / SUPERSAMPLE


# --------------------------------------------------------------------------------------------------
# Placing and drawing objects, hands and effects on the world canvas.


@dataclass
class Placed:
    """An object instance in a scene: its sprite, rest position, and (distractors) a slow wobble."""

    noun: int
    sprite: Sprite
    rest: tuple[float, float]
    angle: float = 0.0
    wobble: tuple[float, float, float, float] | None = None  # amplitude x, y (view units), freq (Hz), phase


def _transformed(sprite: Sprite, angle: float, scale: float, part: float) -> Image.Image:
    """The sprite with its part opened by ``part`` (0..1), scaled and rotated (RGBA, expanded canvas)."""
    img = sprite.image
    if part > 0:
        x1, y1, x2, y2 = sprite.part_box
        sx, sy = sprite.part_shift[0] * part, sprite.part_shift[1] * part
        pad_l, pad_t = int(math.ceil(max(0.0, -sx))), int(math.ceil(max(0.0, -sy)))
        pad_r, pad_b = int(math.ceil(max(0.0, sx))), int(math.ceil(max(0.0, sy)))
        canvas = Image.new("RGBA", (img.width + pad_l + pad_r, img.height + pad_t + pad_b), (0, 0, 0, 0))
        canvas.alpha_composite(img, (pad_l, pad_t))
        part_img = img.crop((x1, y1, x2, y2))
        hole = Image.new("RGBA", part_img.size, (25, 20, 18, 255))
        hole.putalpha(part_img.getchannel("A"))
        canvas.alpha_composite(hole, (pad_l + x1, pad_t + y1))  # the dark inside
        canvas.alpha_composite(part_img, (int(round(pad_l + x1 + sx)), int(round(pad_t + y1 + sy))))
        # keep the body centred where it was: crop symmetric padding
        img = canvas
        px_, py_ = max(pad_l, pad_r), max(pad_t, pad_b)
        img = img.crop((pad_l - px_, pad_t - py_, pad_l + sprite.image.width + px_, pad_t + sprite.image.height + py_))
    if scale != 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    if angle:
        img = img.rotate(angle, resample=Image.BICUBIC, expand=True)
    return img


def paste_object(world: Image.Image, frame: Frame, img: Image.Image, centre: tuple[float, float]
                 ) -> tuple[float, float, float, float] | None:
    """Paste an RGBA object image centred at ``centre`` (view units) with a soft shadow.

    Returns:
        the object's tight box in world pixels (x1, y1, x2, y2), or None when the image is empty.
    """
    cx, cy = frame.to_world_px(centre)
    x0, y0 = int(round(cx - img.width / 2)), int(round(cy - img.height / 2))
    alpha = img.getchannel("A")
    sh = max(1, int(frame.px * 0.012))
    world.paste((0, 0, 0), (x0 + sh, y0 + 2 * sh), alpha.point(lambda v: v * 2 // 5))
    world.paste(img, (x0, y0), alpha)
    bb = alpha.getbbox()
    if bb is None:
        return None
    return (x0 + bb[0], y0 + bb[1], x0 + bb[2], y0 + bb[3])


def draw_hand(draw: ImageDraw.ImageDraw, frame: Frame, hand: tuple[float, float], skin: tuple[int, int, int]
              ) -> None:
    """An arm from below the bottom edge to the hand, and the hand (palm and fingers)."""
    hx, hy = frame.to_world_px(hand)
    ww, wh = frame.world
    ax, ay = hx + 0.35 * frame.px, wh + 0.3 * frame.px  # shoulder side: bottom right, off the canvas
    width = 0.11 * frame.px
    dx, dy = hx - ax, hy - ay
    n = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / n * width / 2, dx / n * width / 2
    draw.polygon([(ax + nx, ay + ny), (hx + nx, hy + ny), (hx - nx, hy - ny), (ax - nx, ay - ny)],
                 fill=_shade(skin, 0.85))
    r = 0.075 * frame.px
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=skin)
    fx, fy = hx - dx / n * r * 1.1, hy - dy / n * r * 1.1  # fingers point along the arm
    draw.ellipse([fx - 0.6 * r, fy - 0.6 * r, fx + 0.6 * r, fy + 0.6 * r], fill=_shade(skin, 0.92))


def draw_stream(draw: ImageDraw.ImageDraw, frame: Frame, noun: str, pose: Pose, verb: str, radius: float) -> None:
    """Water (tap, wash, pour) or a flame ring (pan on the hob), its size proportional to ``pose.stream``."""
    if pose.stream <= 0.01:
        return
    x, y = frame.to_world_px(pose.obj)
    r = radius * frame.px * pose.scale
    if noun == "pan" and verb in ("turn-on", "turn-off"):
        w = max(1, int(0.06 * frame.px * pose.stream))
        draw.ellipse([x - r * 1.15, y - r * 1.15, x + r * 1.15, y + r * 1.15], outline=(255, 120, 20), width=w)
        return
    w = 0.07 * frame.px * pose.stream
    if verb == "pour":
        sx = x + pose.angle / 70 * r * 0.9
        top, bot = (sx, y), (sx + 0.05 * frame.px, y + 0.45 * frame.px)
    elif verb == "wash":
        top, bot = (x, y - 0.9 * frame.px), (x, y)
    else:  # tap
        top, bot = (x, y), (x, y + 0.4 * frame.px)
    draw.line([top, bot], fill=(150, 200, 255), width=max(1, int(w)))
    draw.line([top, bot], fill=(210, 235, 255), width=max(1, int(w / 3)))


def draw_tool(draw: ImageDraw.ImageDraw, frame: Frame, pose: Pose, verb: str) -> None:
    """The knife (cut) or spoon (mix) held by the hand."""
    if pose.tool is None or pose.hand is None:
        return
    tx, ty = frame.to_world_px(pose.tool)
    hx, hy = frame.to_world_px(pose.hand)
    colour_ = (200, 200, 210) if verb == "cut" else (120, 80, 40)
    draw.line([(hx, hy), (tx, ty)], fill=colour_, width=max(2, int(0.03 * frame.px)))


def draw_pieces(world: Image.Image, frame: Frame, sprite: Sprite, pose: Pose) -> None:
    """Cut pieces accumulate beside the object."""
    if pose.pieces <= 0:
        return
    d = ImageDraw.Draw(world)
    x, y = frame.to_world_px(pose.obj)
    r = sprite.radius * frame.px
    s = 0.05 * frame.px
    for i in range(pose.pieces):
        px, py = x + r + 0.6 * s + (i % 3) * 1.3 * s, y - r * 0.5 + (i // 3) * 1.3 * s
        d.rectangle([px - s / 2, py - s / 2, px + s / 2, py + s / 2], fill=sprite.colour,
                    outline=_shade(sprite.colour, 0.6))


# --------------------------------------------------------------------------------------------------
# The frame renderer.


@dataclass
class Scene:
    """A segment's scene: background, active object and distractors, the verb and its constants."""

    background: Image.Image  # world canvas (RGB) with the counter texture and static distractors
    active: Placed
    moving: list[Placed]  # distractors that wobble (drawn each frame)
    static: list[Placed]  # distractors baked into ``background``
    static_boxes: list[tuple[float, float, float, float]]  # their world boxes
    verb: str
    context: MotionContext
    skin: tuple[int, int, int]
    distractor_nouns: list[int] = field(default_factory=list)


def build_background(frame: Frame, texture: np.ndarray, static: list[Placed]
                     ) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """The world canvas with the counter and the static distractors; returns it and their world boxes."""
    bg = Image.fromarray(texture)
    boxes = []
    for p in static:
        img = _transformed(p.sprite, p.angle, 1.0, 0.0)
        boxes.append(paste_object(bg, frame, img, p.rest))
    return bg, boxes


def _box_to_frame(frame: Frame, box: tuple[float, float, float, float] | None, cam: Camera
                  ) -> tuple[float, float, float, float, int]:
    """A world-pixel box -> frame-pixel box (x1, y1, x2, y2) clipped to the frame, plus visible 0/1."""
    if box is None:
        return (0.0, 0.0, 0.0, 0.0, 0)
    x1, y1, x2, y2 = box
    pts = frame.world_to_frame(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], float), cam)
    lo, hi = pts.min(0), pts.max(0)
    cx1, cy1 = float(np.clip(lo[0], 0, frame.w)), float(np.clip(lo[1], 0, frame.h))
    cx2, cy2 = float(np.clip(hi[0], 0, frame.w)), float(np.clip(hi[1], 0, frame.h))
    visible = int((cx2 - cx1) >= 1 and (cy2 - cy1) >= 1)
    if not visible:
        return (0.0, 0.0, 0.0, 0.0, 0)
    return (cx1, cy1, cx2, cy2, visible)


def render_frame(frame: Frame, scene: Scene, tau: float, t_sec: float, cam: Camera, *, hand: bool = True
                 ) -> tuple[Image.Image, list[tuple[str, int, tuple[float, float, float, float, int]]]]:
    """Render one frame of a scene at normalised action time ``tau`` and video time ``t_sec``.

    Args:
        hand: False for idle frames (between segments): the scene without the action's hand.

    Returns:
        the RGB frame (frame.w, frame.h) and its boxes: (role, noun, (x1, y1, x2, y2, visible)) with the
        active object first, then the distractors, in frame pixels.
    """
    world = scene.background.copy()
    boxes: list[tuple[str, int, tuple[float, float, float, float, int]]] = []
    dist_boxes = list(zip(scene.static, scene.static_boxes, strict=True))
    for p in scene.moving:
        ax, ay, f, ph = p.wobble  # type: ignore[misc]
        s = math.sin(2 * math.pi * f * t_sec + ph)
        img = _transformed(p.sprite, p.angle + 6 * s, 1.0, 0.0)
        dist_boxes.append((p, paste_object(world, frame, img, (p.rest[0] + ax * s, p.rest[1] + ay * s))))
    pose = motion_program(scene.verb)(tau, scene.context)
    act = scene.active
    draw = ImageDraw.Draw(world)
    noun_name = NOUNS[act.noun].name
    if scene.verb == "wash":
        draw_stream(draw, frame, noun_name, pose, scene.verb, act.sprite.radius)
    draw_pieces(world, frame, act.sprite, pose)
    img = _transformed(act.sprite, act.angle + pose.angle, pose.scale, pose.part)
    act_box = paste_object(world, frame, img, pose.obj)
    if scene.verb != "wash":
        draw_stream(draw, frame, noun_name, pose, scene.verb, act.sprite.radius)
    if hand and pose.hand is not None:
        draw_tool(draw, frame, pose, scene.verb)
        draw_hand(draw, frame, pose.hand, scene.skin)
    vw, vh = frame.w * SUPERSAMPLE, frame.h * SUPERSAMPLE
    view = world.transform((vw, vh), Image.AFFINE, frame.affine(cam), resample=Image.BILINEAR,
                           fillcolor=(40, 40, 40))
    out = view.reduce(SUPERSAMPLE)
    boxes.append(("active", act.noun, _box_to_frame(frame, act_box, cam)))
    for p, b in dist_boxes:
        boxes.append(("distractor", p.noun, _box_to_frame(frame, b, cam)))
    return out, boxes
