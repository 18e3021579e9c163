"""Procedurally rendered identities: a face is fixed geometry and colours; samples vary.

An identity (``draw_identity``) fixes the face outline, skin, hair style and colour,
eye spacing, size and colour, brows, nose, mouth, and whether it wears glasses or a
beard. A sample (``render_face``) of that identity varies what a camera and a mood
vary: in-plane rotation, scale, shift, a little yaw (features slide sideways),
lighting direction and strength, expression (smile, open mouth, eye openness),
background (a texture crop from ``tasks_lib.core.scenes``) and sensor noise.
Faces are drawn at twice the output size and block-averaged (anti-aliased).
Everything is drawn from the generator passed in, so a seed fixes the data set.
"""

from __future__ import annotations

import numpy as np

from tasks_lib.core.scenes import texture_crop

SKIN = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.53], [0.76, 0.57, 0.42], [0.55, 0.38, 0.26], [0.36, 0.24, 0.16]])
HAIR = np.array(
    [[0.1, 0.08, 0.06], [0.35, 0.22, 0.1], [0.65, 0.5, 0.25], [0.9, 0.8, 0.5], [0.6, 0.6, 0.6], [0.5, 0.15, 0.05]]
)
IRIS = np.array([[0.3, 0.2, 0.1], [0.2, 0.4, 0.7], [0.3, 0.5, 0.3], [0.15, 0.1, 0.05]])


def draw_identity(rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    """The fixed traits of one identity (coordinates in face units: the image spans -1..1)."""

    def mix(palette: np.ndarray) -> np.ndarray:
        i = rng.integers(len(palette) - 1)
        t = rng.uniform()
        return (palette[i] * (1 - t) + palette[i + 1] * t + rng.normal(0, 0.03, 3)).clip(0, 1)

    return {
        "face_w": rng.uniform(0.5, 0.72),
        "face_h": rng.uniform(0.68, 0.86),
        "skin": mix(SKIN),
        "hair": mix(HAIR),
        "hairline": rng.uniform(-0.75, -0.35),  # y of the hair edge on the forehead
        "hair_side": rng.uniform(0.0, 0.5),  # how far hair falls beside the face (0 = short)
        "fringe": float(rng.uniform() < 0.3),
        "eye_dx": rng.uniform(0.2, 0.34),
        "eye_y": rng.uniform(-0.25, -0.05),
        "eye_r": rng.uniform(0.07, 0.12),
        "iris": mix(IRIS),
        "brow_dy": rng.uniform(0.12, 0.22),
        "brow_w": rng.uniform(0.03, 0.07),
        "brow_tilt": rng.uniform(-0.25, 0.25),
        "nose_len": rng.uniform(0.12, 0.3),
        "nose_w": rng.uniform(0.05, 0.12),
        "mouth_y": rng.uniform(0.3, 0.5),
        "mouth_w": rng.uniform(0.18, 0.36),
        "lips": (np.array([0.75, 0.3, 0.3]) * rng.uniform(0.6, 1.1) + rng.normal(0, 0.05, 3)).clip(0, 1),
        "glasses": float(rng.uniform() < 0.25),
        "beard": float(rng.uniform() < 0.2),
    }


def render_face(rng: np.random.Generator, ident: dict, size: int = 32, noise: float = 0.04) -> np.ndarray:
    """One photo of ``ident``: uint8 size x size x 3."""
    s2 = size * 2
    yy, xx = (np.mgrid[0:s2, 0:s2].astype(np.float32) + 0.5) / s2 * 2 - 1
    # pose: rotate, scale, shift the face frame; yaw slides the inner features sideways
    angle = rng.uniform(-0.22, 0.22)
    scale = rng.uniform(0.88, 1.1)
    sx, sy = rng.uniform(-0.1, 0.1, 2)
    yaw = rng.uniform(-0.12, 0.12)
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - sx) * c + (yy - sy) * s) / scale
    v = (-(xx - sx) * s + (yy - sy) * c) / scale
    # expression
    smile = rng.uniform(-0.4, 1.0)
    mouth_open = rng.uniform(0, 1) ** 3 * 0.08
    eye_open = rng.uniform(0.45, 1.0)

    img = texture_crop(rng, s2).mean(axis=2, keepdims=True) * rng.uniform(0.3, 1.0, 3).astype(np.float32)

    def paint(mask: np.ndarray, colour: np.ndarray) -> None:
        img[mask] = colour

    fw, fh = ident["face_w"], ident["face_h"]
    head = (u / fw) ** 2 + (v / fh) ** 2 <= 1
    if ident["hair_side"] > 0.05:  # long hair behind the head
        back = ((u / (fw + 0.12)) ** 2 + ((v + 0.05) / (fh + 0.1)) ** 2 <= 1) & (v < ident["hair_side"] * 1.5)
        paint(back, ident["hair"])
    paint(head, ident["skin"])
    if ident["beard"]:
        paint(
            head & (v > ident["mouth_y"] - 0.12) & ((u / fw) ** 2 + ((v - 0.1) / fh) ** 2 > 0.25), ident["hair"] * 0.8
        )
    cap = ((u / (fw + 0.06)) ** 2 + ((v + 0.04) / (fh + 0.08)) ** 2 <= 1) & (v < ident["hairline"] + 0.08 * u**2 / fw)
    if ident["fringe"]:
        cap |= head & (v < ident["hairline"] + 0.25) & (np.abs(u + 0.3 * fw) < 0.4 * fw)
    paint(cap, ident["hair"])

    ux = u - yaw  # inner features follow the yaw
    for side in (-1, 1):
        ex, ey, er = side * ident["eye_dx"] * (1 - side * yaw), ident["eye_y"], ident["eye_r"]
        white = ((ux - ex) / er) ** 2 + ((v - ey) / (er * 0.6 * eye_open)) ** 2 <= 1
        paint(white, np.array([0.95, 0.95, 0.92]))
        paint(white & ((ux - ex) ** 2 + (v - ey) ** 2 <= (er * 0.55) ** 2), ident["iris"])
        paint(white & ((ux - ex) ** 2 + (v - ey) ** 2 <= (er * 0.25) ** 2), np.zeros(3))
        by = ey - ident["brow_dy"] + side * ident["brow_tilt"] * (ux - ex)
        paint((np.abs(v - by) < ident["brow_w"]) & (np.abs(ux - ex) < er * 1.3), ident["hair"] * 0.7)
        if ident["glasses"]:
            r = np.sqrt((ux - ex) ** 2 + (v - ey) ** 2)
            paint((r > er * 1.45) & (r < er * 1.75), np.array([0.08, 0.08, 0.1]))
    if ident["glasses"]:
        paint((np.abs(v - ident["eye_y"]) < 0.025) & (np.abs(ux) < ident["eye_dx"] - ident["eye_r"] * 1.5), np.zeros(3))
    nose = (
        (np.abs(ux) < ident["nose_w"] * (v - ident["eye_y"]) / ident["nose_len"])
        & (v > ident["eye_y"])
        & (v < ident["eye_y"] + ident["nose_len"])
    )
    paint(nose, ident["skin"] * 0.78)
    mx, my, mw = 0, ident["mouth_y"], ident["mouth_w"]
    curve = my - smile * 0.5 * ((ux - mx) ** 2 / mw - mw / 2)
    lips = (np.abs(ux - mx) < mw) & (np.abs(v - curve) < 0.025 + mouth_open)
    paint(lips, ident["lips"])
    paint((np.abs(ux - mx) < mw * 0.8) & (np.abs(v - curve) < mouth_open * 0.7), np.array([0.2, 0.05, 0.05]))

    # light: a directional gradient and a global level
    theta = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0.7, 1.2) * (1 + rng.uniform(0.1, 0.45) * (np.cos(theta) * xx + np.sin(theta) * yy))
    img = img * light[:, :, None]
    img = img.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    img = img + rng.normal(0, noise, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def render_identities(n_ids: int, per_id: int, size: int, seed: int, noise: float = 0.04):
    """``n_ids`` new identities x ``per_id`` samples: (uint8 images, identity index per image)."""
    rng = np.random.default_rng(seed)
    idents = [draw_identity(rng) for _ in range(n_ids)]
    x = np.empty((n_ids * per_id, size, size, 3), np.uint8)
    y = np.repeat(np.arange(n_ids), per_id)
    for i, ident in enumerate(idents):
        for j in range(per_id):
            x[i * per_id + j] = render_face(rng, ident, size, noise)
    return x, y
