"""Deterministic synthetic scenes: coloured objects on real textures, with exact boxes and attributes.

Shared by object detection, image captioning and object tracking. Backgrounds are random
crops of the photographs and textures bundled with scikit-image (``skimage.data``; nothing is
downloaded), turned grey and contrast-jittered; objects are shapes and digit glyphs in
saturated colours, drawn in order so that later objects occlude earlier ones. Every box is
the tight box of the object's *visible* pixels (as in COCO), so occlusion is exact.

Everything is a pure function of a ``numpy.random.Generator`` (or explicit object lists),
so the same seed gives the same bytes on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Bundled scikit-image pictures (offline); grey-level textures and photographs alike.
TEXTURES = (
    "grass",
    "gravel",
    "brick",
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "rocket",
    "coffee",
    "chelsea",
    "astronaut",
    "hubble_deep_field",
    "immunohistochemistry",
    "clock",
)
SHAPES = ("circle", "square", "triangle", "cross")
DIGITS = ("2", "5", "7")
KINDS = SHAPES + tuple(f"digit {d}" for d in DIGITS)
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 40),
    "blue": (40, 70, 230),
    "yellow": (240, 220, 20),
    "magenta": (210, 40, 200),
    "cyan": (20, 210, 220),
}
_MASK_RES = 64  # shapes are drawn at this resolution once, then resized (anti-aliased)


@dataclass(frozen=True)
class SceneObject:
    """One object to draw: what it is, its colour, its size in pixels and its top-left corner."""

    kind: str
    color: str
    size: int
    x: int
    y: int


@cache
def _texture(name: str) -> np.ndarray:
    """A bundled skimage picture as float32 grey levels in [0, 1]."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / max(hi - lo, 1e-3), 0, 1)


@cache
def _mask(kind: str) -> np.ndarray:
    """The kind's silhouette as float32 coverage in [0, 1] at _MASK_RES (square canvas, tight)."""
    r = _MASK_RES * 4  # draw 4x larger and downsample: smooth edges
    canvas = Image.new("L", (r, r), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse((0, 0, r - 1, r - 1), fill=255)
    elif kind == "square":
        draw.rectangle((0, 0, r - 1, r - 1), fill=255)
    elif kind == "triangle":
        draw.polygon([(r / 2, 0), (r - 1, r - 1), (0, r - 1)], fill=255)
    elif kind == "cross":
        t = r // 3
        draw.rectangle((t, 0, r - 1 - t, r - 1), fill=255)
        draw.rectangle((0, t, r - 1, r - 1 - t), fill=255)
    elif kind.startswith("digit "):
        font = ImageFont.load_default(size=r)
        glyph = Image.new("L", (2 * r, 2 * r), 0)
        ImageDraw.Draw(glyph).text((r // 4, r // 4), kind[-1], font=font, fill=255)
        box = glyph.getbbox()
        crop = glyph.crop(box)
        # thicken the strokes a little so small digits stay legible, then fit the square canvas
        w, h = crop.size
        scale = r / max(w, h)
        crop = crop.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
        canvas.paste(crop, ((r - crop.size[0]) // 2, (r - crop.size[1]) // 2))
        arr = np.asarray(canvas, dtype=np.float32) / 255
        from scipy.ndimage import grey_dilation

        canvas = Image.fromarray((grey_dilation(arr, size=(r // 16, r // 16)) * 255).astype(np.uint8))
    else:
        raise ValueError(f"unknown object kind '{kind}'; known: {KINDS}")
    small = canvas.resize((_MASK_RES, _MASK_RES), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255


def object_alpha(kind: str, size: int) -> np.ndarray:
    """Coverage (0-1) of a ``size`` x ``size`` object of this kind."""
    m = Image.fromarray((_mask(kind) * 255).astype(np.uint8))
    return np.asarray(m.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255


def background(rng: np.random.Generator, size: int, textures: tuple[str, ...] = TEXTURES) -> np.ndarray:
    """A grey, contrast-jittered random crop of a random bundled texture, as uint8 HxWx3."""
    tex = _texture(textures[int(rng.integers(len(textures)))])
    h, w = tex.shape
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray((tex[y0 : y0 + side, x0 : x0 + side] * 255).astype(np.uint8))
    g = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    if rng.random() < 0.5:
        g = g[:, ::-1]
    lo = rng.uniform(0.1, 0.4)
    hi = rng.uniform(0.6, 0.9)
    g = lo + (hi - lo) * g
    tint = 1 + rng.uniform(-0.06, 0.06, size=3)  # a faint colour cast, far from the objects' saturation
    rgb = g[:, :, None] * tint[None, None, :] * 255
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render(bg: np.ndarray, objects: list[SceneObject], rng: np.random.Generator | None = None) -> tuple:
    """Draw ``objects`` in order on a copy of ``bg``.

    Returns ``(image uint8 HxWx3, boxes float32 Nx4 [x1, y1, x2, y2] of visible pixels (x2, y2
    exclusive), visible fraction per object float32 N)``; an object hidden entirely gets a
    zero box and visible fraction 0.
    """
    img = bg.astype(np.float32)
    H, W = bg.shape[:2]
    owner = np.full((H, W), -1, dtype=np.int32)
    full_area = np.zeros(len(objects), dtype=np.float32)
    for i, o in enumerate(objects):
        a = object_alpha(o.kind, o.size)
        y0, x0 = o.y, o.x
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(H, y0 + o.size), min(W, x0 + o.size)
        if ye <= ys or xe <= xs:
            continue
        a = a[ys - y0 : ye - y0, xs - x0 : xe - x0]
        color = np.asarray(COLORS[o.color], dtype=np.float32)
        shade = 0.8 + 0.2 * np.linspace(1, 0, a.shape[0], dtype=np.float32)[:, None, None]  # light from above
        paint = color[None, None, :] * shade
        if rng is not None:
            paint = paint + rng.normal(0, 6, size=paint.shape).astype(np.float32)
        region = img[ys:ye, xs:xe]
        img[ys:ye, xs:xe] = region * (1 - a[..., None]) + paint * a[..., None]
        solid = a > 0.5
        owner[ys:ye, xs:xe][solid] = i
        full_area[i] = (object_alpha(o.kind, o.size) > 0.5).sum()
    boxes = np.zeros((len(objects), 4), dtype=np.float32)
    visible = np.zeros(len(objects), dtype=np.float32)
    for i in range(len(objects)):
        yy, xx = np.nonzero(owner == i)
        if len(yy):
            boxes[i] = (xx.min(), yy.min(), xx.max() + 1, yy.max() + 1)
            visible[i] = len(yy) / max(full_area[i], 1)
    return np.clip(img, 0, 255).round().astype(np.uint8), boxes, visible


def random_objects(
    rng: np.random.Generator,
    size: int,
    n: int,
    kinds: tuple[str, ...] = KINDS,
    colors: tuple[str, ...] = tuple(COLORS),
    min_size: int = 12,
    max_size: int = 44,
) -> list[SceneObject]:
    """``n`` objects with random kind, colour, size (log-uniform: scale variety) and position."""
    out = []
    for _ in range(n):
        s = int(round(np.exp(rng.uniform(np.log(min_size), np.log(max_size)))))
        out.append(
            SceneObject(
                kind=kinds[int(rng.integers(len(kinds)))],
                color=colors[int(rng.integers(len(colors)))],
                size=s,
                x=int(rng.integers(0, size - s + 1)),
                y=int(rng.integers(0, size - s + 1)),
            )
        )
    return out


def detection_scene(
    rng: np.random.Generator,
    size: int,
    max_objects: int,
    min_visible: float = 0.5,
    kinds: tuple[str, ...] = KINDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One detection sample: (image, boxes Nx4, labels N as indices into ``kinds``).

    1..max_objects objects may overlap (occlusion); an object less than ``min_visible`` visible
    is redrawn elsewhere (up to a few tries, then dropped), so every label is findable.
    """
    bg = background(rng, size)
    n = int(rng.integers(1, max_objects + 1))
    objects: list[SceneObject] = []
    for _ in range(n):
        for _try in range(6):
            cand = objects + random_objects(rng, size, 1, kinds)
            _, _, vis = render(bg, cand)
            if (vis >= min_visible).all():
                objects = cand
                break
    img, boxes, _ = render(bg, objects, rng)
    labels = np.array([kinds.index(o.kind) for o in objects], dtype=np.int64)
    return img, boxes.reshape(-1, 4), labels
