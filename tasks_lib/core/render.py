"""Deterministic renderers shared by the temporal/pose tasks (numpy only, no display).

* :func:`texture_crop`: a patch of one of scikit-image's bundled real photographs and
  textures (grass, gravel, brick, coffee, ...), used as backgrounds and object surfaces.
* :func:`motion_clip`: a textured, asymmetric object moving over a textured background
  (translation, rotation or scaling), one class per motion, so no single frame tells the class.
* :func:`figure_joints` / :func:`render_figure` / :func:`action_joints`: an articulated
  stick figure with named joint coordinates (pose estimation, action recognition).

Everything is a pure function of its arguments and a ``numpy.random.Generator``, so
a data config's seeds fix every pixel (the DVC hash is reproducible).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

TEXTURES = (
    "grass",
    "gravel",
    "brick",
    "coffee",
    "chelsea",
    "astronaut",
    "rocket",
    "camera",
    "moon",
    "coins",
    "immunohistochemistry",
    "hubble_deep_field",
    "page",
    "text",
)


@cache
def _texture(name: str) -> np.ndarray:
    """A bundled scikit-image picture as float32 RGB in [0, 1] (grayscale replicated)."""
    from skimage import data as skdata

    img = np.asarray(getattr(skdata, name)(), dtype=np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def texture_crop(rng: np.random.Generator, size: int, names: tuple[str, ...] = TEXTURES) -> np.ndarray:
    """A random ``size`` x ``size`` RGB float patch of a random texture (random zoom, flip, tint)."""
    img = _texture(names[int(rng.integers(len(names)))])
    h, w = img.shape[:2]
    side = int(rng.integers(max(size, min(h, w) // 8), max(size + 1, min(h, w) // 2)))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    idx = (np.arange(size) * side / size).astype(int)
    patch = img[y0 + idx][:, x0 + idx]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    tint = rng.uniform(0.6, 1.2, size=3).astype(np.float32)
    return np.clip(patch * tint, 0, 1)


def _downsample(img: np.ndarray, k: int) -> np.ndarray:
    h, w = img.shape[0] // k, img.shape[1] // k
    return img.reshape(h, k, w, k, *img.shape[2:]).mean(axis=(1, 3))


# -- moving objects -------------------------------------------------------------------

SHAPES = ("L", "T", "triangle", "flag")
MOTIONS = ("right", "left", "down", "up", "rotate_cw", "rotate_ccw", "grow", "shrink")


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Asymmetric shapes on the [-1, 1]^2 square (so a rotation is visible)."""
    inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    if shape == "L":
        return inside & ~((u > -0.2) & (v < 0.3))
    if shape == "T":
        return inside & ((v < -0.45) | (np.abs(u) < 0.3))
    if shape == "triangle":
        return inside & (u + v > -0.6) & (u > -1) & (v > -1) & (u < 0.9) & (v < 0.9) & (u - v < 0.8)
    if shape == "flag":
        return inside & ((u < -0.6) | ((v < 0.0) & (u < 0.2 + 0.6 * (v + 1))))
    raise ValueError(f"unknown shape {shape}")


def motion_params(
    motion: str, rng: np.random.Generator, n_frames: int, size: int
) -> list[tuple[float, float, float, float]]:
    """Per-frame (cx, cy, angle, half-size) in pixels/radians for one motion class.

    The state at the middle frame (position, angle, size) is drawn from the same
    distribution for every class, so a single frame carries no class information.
    """
    t = np.arange(n_frames) - (n_frames - 1) / 2  # centred time
    half0 = rng.uniform(0.16, 0.24) * size  # half-size at the middle frame
    angle0 = rng.uniform(0, 2 * math.pi)
    cx0, cy0 = rng.uniform(0.35 * size, 0.65 * size, size=2)
    cx, cy = np.full(n_frames, cx0), np.full(n_frames, cy0)
    ang, half = np.full(n_frames, angle0), np.full(n_frames, half0)
    if motion in ("right", "left", "down", "up"):
        speed = rng.uniform(0.04, 0.06) * size  # pixels per frame
        d = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}[motion]
        cx, cy = cx0 + d[0] * speed * t, cy0 + d[1] * speed * t
    elif motion in ("rotate_cw", "rotate_ccw"):
        w = rng.uniform(0.25, 0.4) * (1 if motion == "rotate_cw" else -1)  # radians per frame (y down: cw)
        ang = angle0 + w * t
    elif motion in ("grow", "shrink"):
        r = rng.uniform(0.07, 0.1) * (1 if motion == "grow" else -1)
        half = half0 * np.exp(r * t)
    else:
        raise ValueError(f"unknown motion {motion}")
    return list(zip(cx, cy, ang, half, strict=True))


def motion_clip(
    motion: str, rng: np.random.Generator, n_frames: int = 8, size: int = 32, supersample: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """A clip (T x H x W x 3 uint8) of a textured object doing ``motion`` on a textured background.

    Returns the clip and the object's area in pixels per frame (for data checks).
    """
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    big = size * supersample
    bg = texture_crop(rng, big)
    bg = 0.25 + 0.5 * bg  # lower-contrast background: the object stays the salient thing
    skin = texture_crop(rng, 64)
    colour = rng.uniform(0.3, 1.0, size=3).astype(np.float32)
    skin = np.clip(0.4 * skin + 0.6 * colour, 0, 1)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) + 0.5
    frames, areas = [], []
    for cx, cy, ang, half in motion_params(motion, rng, n_frames, size):
        cx, cy, half = cx * supersample, cy * supersample, half * supersample
        dx, dy = xx - cx, yy - cy
        c, s = math.cos(ang), math.sin(ang)
        u = (c * dx + s * dy) / half
        v = (-s * dx + c * dy) / half
        mask = _shape_mask(shape, u, v)
        iu = np.clip(((u + 1) * 32).astype(int), 0, 63)
        iv = np.clip(((v + 1) * 32).astype(int), 0, 63)
        img = np.where(mask[:, :, None], skin[iv, iu], bg)
        frames.append(_downsample(img, supersample))
        areas.append(mask.sum() / supersample**2)
    clip = np.clip(np.stack(frames) * 255 + 0.5, 0, 255).astype(np.uint8)
    return clip, np.asarray(areas, dtype=np.float64)


# -- articulated stick figures ---------------------------------------------------------

JOINTS = (
    "head",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
)
BONES = (
    ("head", "neck"),
    ("neck", "r_shoulder"),
    ("r_shoulder", "r_elbow"),
    ("r_elbow", "r_wrist"),
    ("neck", "l_shoulder"),
    ("l_shoulder", "l_elbow"),
    ("l_elbow", "l_wrist"),
    ("neck", "pelvis"),
    ("pelvis", "r_hip"),
    ("r_hip", "r_knee"),
    ("r_knee", "r_ankle"),
    ("pelvis", "l_hip"),
    ("l_hip", "l_knee"),
    ("l_knee", "l_ankle"),
)
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13))  # right <-> left joint indices
# Limb lengths in units of the figure's height (head top to feet, standing straight).
_LEN = {"torso": 0.32, "neck_head": 0.11, "shoulder": 0.11, "hip": 0.07, "upper": 0.15, "fore": 0.14}
_LEN.update({"thigh": 0.2, "shin": 0.2, "head_r": 0.065})
POSE_KEYS = ("lean", "r_arm", "r_elbow", "l_arm", "l_elbow", "r_leg", "r_knee", "l_leg", "l_knee")


def random_pose(rng: np.random.Generator) -> dict[str, float]:
    """Joint angles (radians) of a varied, plausible front-facing pose."""
    deg = np.radians
    return {
        "lean": float(rng.uniform(deg(-20), deg(20))),
        "r_arm": float(rng.uniform(deg(-10), deg(175))),
        "r_elbow": float(rng.uniform(deg(-20), deg(150))),
        "l_arm": float(rng.uniform(deg(-10), deg(175))),
        "l_elbow": float(rng.uniform(deg(-20), deg(150))),
        "r_leg": float(rng.uniform(deg(-8), deg(60))),
        "r_knee": float(rng.uniform(deg(0), deg(120))),
        "l_leg": float(rng.uniform(deg(-8), deg(60))),
        "l_knee": float(rng.uniform(deg(0), deg(120))),
    }


def figure_joints(pose: dict[str, float], height: float = 1.0) -> dict[str, np.ndarray]:
    """Joint (x, y) positions (y down, pelvis at the origin) of a front-facing figure.

    Arm angles are measured from hanging straight down, raising sideways; elbow and knee
    angles bend the lower segment. The figure's right side is on the image's left.
    """

    def unit(a: float) -> np.ndarray:  # angle from "down", rotating towards +x
        return np.array([math.sin(a), math.cos(a)])

    L = {k: v * height for k, v in _LEN.items()}  # noqa: N806
    lean = pose.get("lean", 0.0)
    up = -unit(lean)  # pelvis -> neck
    side = np.array([-up[1], up[0]])  # towards the figure's left (image right)
    j = {"pelvis": np.zeros(2)}
    j["neck"] = j["pelvis"] + L["torso"] * up
    j["head"] = j["neck"] + L["neck_head"] * up
    for s, sign in (("r", -1.0), ("l", 1.0)):
        j[f"{s}_shoulder"] = j["neck"] + sign * L["shoulder"] * side
        a = lean + sign * pose.get(f"{s}_arm", 0.0)
        j[f"{s}_elbow"] = j[f"{s}_shoulder"] + L["upper"] * unit(a)
        j[f"{s}_wrist"] = j[f"{s}_elbow"] + L["fore"] * unit(a + sign * pose.get(f"{s}_elbow", 0.0))
        j[f"{s}_hip"] = j["pelvis"] + sign * L["hip"] * side
        a = lean + sign * pose.get(f"{s}_leg", 0.0)
        j[f"{s}_knee"] = j[f"{s}_hip"] + L["thigh"] * unit(a)
        j[f"{s}_ankle"] = j[f"{s}_knee"] + L["shin"] * unit(a - sign * pose.get(f"{s}_knee", 0.0))
    return j


def joints_array(j: dict[str, np.ndarray]) -> np.ndarray:
    """The :data:`JOINTS` of a joint dict as a (K, 2) array."""
    return np.stack([j[k] for k in JOINTS])


def place_joints(j: dict[str, np.ndarray], angle: float, scale: float, offset: np.ndarray) -> dict[str, np.ndarray]:
    """Rotate by ``angle``, scale and shift every joint (a similarity transform)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]]) * scale
    return {k: rot @ v + offset for k, v in j.items()}


def figure_extent(j: dict[str, np.ndarray], head_r: float) -> tuple[np.ndarray, np.ndarray]:
    """(min xy, max xy) of the joints, the head's circle and the limbs' thickness included."""
    pts = np.stack(list(j.values()))
    lo, hi = pts.min(axis=0) - head_r * 0.6, pts.max(axis=0) + head_r * 0.6
    lo = np.minimum(lo, j["head"] - head_r)
    hi = np.maximum(hi, j["head"] + head_r)
    return lo, hi


def figure_colours(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Clothes colours: the figure's right side greenish-blue, its left side reddish (so sides are visible)."""
    return {
        "r": np.array([rng.uniform(0.0, 0.3), rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.0)], dtype=np.float32),
        "l": np.array([rng.uniform(0.7, 1.0), rng.uniform(0.1, 0.5), rng.uniform(0.0, 0.3)], dtype=np.float32),
        "torso": rng.uniform(0.2, 0.9, size=3).astype(np.float32),
        "skin": np.array([rng.uniform(0.6, 1.0), rng.uniform(0.45, 0.8), rng.uniform(0.3, 0.6)], dtype=np.float32),
    }


def render_figure(
    bg: np.ndarray, j: dict[str, np.ndarray], height_px: float, colours: dict[str, np.ndarray], supersample: int = 2
) -> np.ndarray:
    """Draw the figure (thick limbs, a head disc) over ``bg`` (H x W x 3 float in [0, 1]); returns uint8."""
    h, w = bg.shape[:2]
    k = supersample
    big = np.repeat(np.repeat(bg, k, axis=0), k, axis=1).copy()

    def paint(lo: np.ndarray, hi: np.ndarray, inside, colour: np.ndarray) -> None:
        """Colour the supersampled pixels of the window [lo, hi] (image px) where ``inside(px, py)``."""
        x0, y0 = (np.floor(np.maximum(lo, 0) * k)).astype(int)
        x1 = int(min(np.ceil(hi[0] * k) + 1, w * k))
        y1 = int(min(np.ceil(hi[1] * k) + 1, h * k))
        if x1 <= x0 or y1 <= y0:
            return
        px = ((np.arange(x0, x1, dtype=np.float32) + 0.5) / k)[None, :]  # broadcast, no full grids
        py = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / k)[:, None]
        big[y0:y1, x0:x1][np.broadcast_to(inside(px, py), (y1 - y0, x1 - x0))] = colour

    limb_r = max(0.7, 0.028 * height_px)
    for a, b in BONES:
        if a == "head":
            continue
        limb = b if b[:2] in ("r_", "l_") and not b.endswith(("shoulder", "hip")) else ""
        colour = colours[limb[0]] if limb else colours["torso"]
        radius = limb_r * (1.0 if limb else 1.6)
        pa, pb = j[a], j[b]
        d = pb - pa
        dd = max(float(d @ d), 1e-6)

        def seg(px, py, pa=pa, d=d, dd=dd, radius=radius):
            t = np.clip(((px - pa[0]) * d[0] + (py - pa[1]) * d[1]) / dd, 0, 1)
            return (px - pa[0] - t * d[0]) ** 2 + (py - pa[1] - t * d[1]) ** 2 <= radius**2

        paint(np.minimum(pa, pb) - radius, np.maximum(pa, pb) + radius, seg, colour)
    head_r = _LEN["head_r"] * height_px
    hc = j["head"]
    paint(hc - head_r, hc + head_r, lambda px, py: (px - hc[0]) ** 2 + (py - hc[1]) ** 2 <= head_r**2, colours["skin"])
    img = _downsample(big, k)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _fit_shift(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, size: int) -> np.ndarray:
    """A random offset putting the extent [lo, hi] inside [1, size - 1] (centred when it only just fits)."""
    a, b = 1 - lo, size - 1 - hi
    return np.where(b > a, a + rng.random(2) * np.maximum(b - a, 0), (a + b) / 2)


def pose_sample(
    rng: np.random.Generator, size: int = 64, pose: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image of a figure in a random (or given) pose, scale, tilt and place on a real texture.

    Returns (uint8 image, (K, 2) joint xy in pixels, box [x0, y0, x1, y1] of the figure).
    Every joint lies inside the image.
    """
    pose = pose or random_pose(rng)
    height = rng.uniform(0.55, 0.95) * size
    tilt = rng.uniform(-0.35, 0.35)
    j = place_joints(figure_joints(pose), tilt, height, np.zeros(2))
    lo, hi = figure_extent(j, _LEN["head_r"] * height)
    span = hi - lo
    if (span > size - 2).any():  # too big for the frame at this pose: shrink to fit
        f = (size - 2) / span.max()
        height *= f
        j = {k: v * f for k, v in j.items()}
        lo, hi, span = lo * f, hi * f, span * f
    shift = _fit_shift(rng, lo, hi, size)
    j = {k: v + shift for k, v in j.items()}
    bg = 0.15 + 0.7 * texture_crop(rng, size)
    img = render_figure(bg, j, height, figure_colours(rng))
    box = np.concatenate([lo + shift, hi + shift])
    return img, joints_array(j), box


# -- animated figures (actions) -----------------------------------------------------------

ACTIONS = ("wave", "clap", "jump", "squat", "walk", "jumping_jack", "raise_arms", "lower_arms")


def action_poses(action: str, rng: np.random.Generator, n_frames: int) -> list[tuple[dict[str, float], float, float]]:
    """Per-frame (pose, dx, dy): joint angles and a body offset in figure heights (y down).

    Periodic actions start at a random phase and run 1-1.5 cycles per clip; raise_arms and
    lower_arms (one monotonic sweep) are each other's time reversal, squat is down and up.
    """
    deg = np.radians
    base = {k: float(rng.normal(0, deg(4))) for k in POSE_KEYS}
    base["r_arm"] += deg(10)
    base["l_arm"] += deg(10)
    base["r_leg"] += deg(6)
    base["l_leg"] += deg(6)
    t = np.arange(n_frames) / max(n_frames - 1, 1)  # 0..1 over the clip
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * rng.uniform(1.0, 1.5) * t
    osc = np.sin(phase)
    out = []
    direction = rng.choice([-1.0, 1.0])
    for i in range(n_frames):
        p, dx, dy = dict(base), 0.0, 0.0
        if action == "wave":
            p["r_arm"] = deg(140) + base["r_arm"]
            p["r_elbow"] = deg(25) + deg(40) * osc[i]
        elif action == "clap":
            s = 0.5 + 0.5 * osc[i]  # 1 = hands together
            for side in ("r", "l"):
                p[f"{side}_arm"] = deg(70) - deg(35) * s + base[f"{side}_arm"]
                p[f"{side}_elbow"] = -deg(40) - deg(80) * s
        elif action == "jump":
            s = abs(osc[i])  # height of the hop
            dy = -0.22 * s
            for side in ("r", "l"):
                p[f"{side}_knee"] = deg(70) * (1 - s) + base[f"{side}_knee"]
                p[f"{side}_leg"] = deg(15) * (1 - s) + base[f"{side}_leg"]
                p[f"{side}_arm"] = deg(30) + deg(100) * s
        elif action == "squat":
            s = math.sin(math.pi * t[i]) ** 2 * rng.uniform(0.95, 1.0)  # 0 -> 1 -> 0
            for side in ("r", "l"):
                p[f"{side}_leg"] = deg(50) * s + base[f"{side}_leg"]
                p[f"{side}_knee"] = deg(110) * s
                p[f"{side}_arm"] = deg(80) * s + base[f"{side}_arm"]
        elif action == "walk":
            dx = direction * 0.05 * i
            p["r_leg"] = deg(20) * osc[i] + deg(8)
            p["l_leg"] = -deg(20) * osc[i] + deg(8)
            p["r_knee"] = deg(35) * max(osc[i], 0)
            p["l_knee"] = deg(35) * max(-osc[i], 0)
            p["r_arm"] = deg(12) - deg(15) * osc[i]
            p["l_arm"] = deg(12) + deg(15) * osc[i]
        elif action == "jumping_jack":
            s = 0.5 + 0.5 * osc[i]
            dy = -0.06 * abs(math.cos(phase[i]))
            for side in ("r", "l"):
                p[f"{side}_arm"] = deg(15) + deg(150) * s
                p[f"{side}_leg"] = deg(3) + deg(28) * s
        elif action in ("raise_arms", "lower_arms"):
            s = t[i] if action == "raise_arms" else 1 - t[i]
            for side in ("r", "l"):
                p[f"{side}_arm"] = deg(10) + deg(160) * s + base[f"{side}_arm"]
        else:
            raise ValueError(f"unknown action {action}")
        out.append((p, dx, dy))
    return out


def action_clip(
    action: str, rng: np.random.Generator, n_frames: int = 8, size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A figure doing ``action`` on a real texture: (T x S x S x 3 uint8, (T, K, 2) joints, figure box area per frame).

    The feet stand on one ground line (a jump lifts them); the whole animation fits in the frame.
    """
    frames_pose = action_poses(action, rng, n_frames)
    height = rng.uniform(0.6, 0.85) * size
    joints = []
    for p, dx, dy in frames_pose:
        j = figure_joints(p)
        ground = max(j["r_ankle"][1], j["l_ankle"][1])
        joints.append({k: (v + np.array([dx, dy - ground])) * height for k, v in j.items()})
    head_r = _LEN["head_r"] * height
    ext = [figure_extent(j, head_r) for j in joints]
    lo = np.min([e[0] for e in ext], axis=0)
    hi = np.max([e[1] for e in ext], axis=0)
    span = hi - lo
    if (span > size - 2).any():
        f = (size - 2) / span.max()
        height, head_r = height * f, head_r * f
        joints = [{k: v * f for k, v in j.items()} for j in joints]
        ext = [(a * f, b * f) for a, b in ext]
        lo, hi = lo * f, hi * f
    shift = _fit_shift(rng, lo, hi, size)
    bg = 0.15 + 0.7 * texture_crop(rng, size)
    colours = figure_colours(rng)
    frames, kps, areas = [], [], []
    for j, (a, b) in zip(joints, ext, strict=True):
        j = {k: v + shift for k, v in j.items()}
        frames.append(render_figure(bg, j, height, colours))
        kps.append(joints_array(j))
        areas.append(float(np.prod(b - a)))
    return np.stack(frames), np.stack(kps), np.asarray(areas)
