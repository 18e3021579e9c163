"""Generated scenes: objects pasted on real textures, with exact per-pixel class masks.

Shared by the segmentation tasks (and meant for object detection later). Backgrounds
are crops of the photographs scikit-image bundles (grass, gravel, brick, camera, coins,
moon, coffee, ...), so no download is needed. Objects are of four kinds:

- ``disc``: a filled, rotated ellipse;
- ``polygon``: a rotated triangle or quadrilateral;
- ``digit``: one of scikit-learn's 1,797 real handwritten digits, scaled up, in ink;
- ``face``: one of scikit-image's ``lfw_subset`` face crops, in an elliptical frame.

Discs, polygons and digits are filled with a random colour modulated by another
texture; every pasted pixel is hard (no blending), so the mask is exact: the class
index of the object drawn last at that pixel, 0 for background. Everything is drawn
from a NumPy generator, so a (spec, split, seed) triple always gives the same scenes.
Digit and face instances are partitioned between splits: the test scenes show
digits and faces never seen in training.

Also here: segmentation metrics from a confusion matrix (IoU per class, mIoU, pixel
accuracy, with an ignore index) used by both segmentation tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SCENE_CLASSES = ("background", "disc", "polygon", "digit", "face")
OBJECT_KINDS = SCENE_CLASSES[1:]
TEXTURES = (
    "grass",
    "gravel",
    "brick",
    "camera",
    "coins",
    "moon",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "page",
)
IGNORE_INDEX = 255
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SceneSpec:
    """What a scene looks like: image size, objects per scene and their size range (pixels)."""

    size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    min_object: int = 18
    max_object: int = 34
    kinds: tuple[str, ...] = OBJECT_KINDS
    noise: float = 0.03  # std of additive Gaussian pixel noise (0-1 scale)
    min_contrast: float = 0.2  # least RGB distance between an object's fill and the background under it


@lru_cache(maxsize=1)
def texture_bank() -> tuple[np.ndarray, ...]:
    """The bundled scikit-image photographs as float32 HxWx3 arrays in [0, 1]."""
    import skimage.data

    out = []
    for name in TEXTURES:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255
        out.append(np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3])
    return tuple(out)


@lru_cache(maxsize=1)
def _sources() -> tuple[np.ndarray, np.ndarray]:
    """Digit images (1797x8x8 in [0, 1]) and face crops (100x25x25 in [0, 1])."""
    from skimage.data import lfw_subset
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32) / 16
    faces = lfw_subset()[:100].astype(np.float32)  # the first 100 are faces, the rest non-faces
    return digits, faces


def instance_pools(split: str, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0):
    """The digit and face indices a split may draw from; disjoint between splits.

    The packaged digit and face sets never grow, so this fixed permutation is stable; each split's
    scenes are then generated from its own seed, and no instance or scene crosses splits."""
    digits, faces = _sources()
    pools = []
    for n in (len(digits), len(faces)):
        order = np.random.default_rng(seed).permutation(n)
        cut = np.cumsum([round(f * n) for f in fractions[:2]])
        pools.append(np.split(order, cut)[SPLIT_INDEX[split]])
    return pools[0], pools[1]


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D or HxWxC float array to size x size."""
    from skimage.transform import resize

    shape = (size, size) + img.shape[2:]
    return resize(img, shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True).astype(np.float32)


def texture_crop(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size RGB crop of a random texture at a random scale (block-averaged), tinted."""
    bank = texture_bank()
    tex = bank[rng.integers(len(bank))]
    h, w = tex.shape[:2]
    step = int(rng.integers(1, max(2, min(4, min(h, w) // size) + 1)))
    side = size * step
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = tex[y : y + side, x : x + side].reshape(size, step, size, step, 3).mean(axis=(1, 3))
    gain = rng.uniform(0.6, 1.3, size=3).astype(np.float32)
    return np.clip(crop * gain, 0, 1)


def _object_mask(rng: np.random.Generator, kind: str, k: int, digit: np.ndarray, face: np.ndarray):
    """(mask k x k bool, luminance pattern k x k or None) of one object."""
    yy, xx = np.mgrid[0:k, 0:k].astype(np.float32) + 0.5
    c = k / 2
    if kind == "disc":
        a, b = rng.uniform(0.3, 0.5) * k, rng.uniform(0.3, 0.5) * k
        t = rng.uniform(0, np.pi)
        u = (xx - c) * np.cos(t) + (yy - c) * np.sin(t)
        v = -(xx - c) * np.sin(t) + (yy - c) * np.cos(t)
        return (u / a) ** 2 + (v / b) ** 2 <= 1, None
    if kind == "polygon":
        from skimage.draw import polygon

        n = int(rng.choice([3, 4]))
        angles = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n + rng.uniform(-0.25, 0.25, n)
        r = rng.uniform(0.42, 0.5) * k
        rows, cols = polygon(c + r * np.sin(angles), c + r * np.cos(angles), shape=(k, k))
        mask = np.zeros((k, k), bool)
        mask[rows, cols] = True
        return mask, None
    if kind == "digit":
        ink = _resize(digit, k)
        return ink > 0.45, None
    if kind == "face":
        mask = ((xx - c) / (0.42 * k)) ** 2 + ((yy - c) / (0.5 * k)) ** 2 <= 1
        return mask, _resize(face, k)
    raise ValueError(f"unknown object kind '{kind}'; choose from {OBJECT_KINDS}")


def render_scene(
    rng: np.random.Generator, spec: SceneSpec, digit_pool: np.ndarray, face_pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 HxWx3 image, uint8 HxW class-index mask)."""
    digits, faces = _sources()
    s = spec.size
    img = texture_crop(rng, s)
    # a slow brightness gradient: lighting, not content
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    img = np.clip(img * (1 + rng.uniform(-0.3, 0.3) * gx + rng.uniform(-0.3, 0.3) * gy)[:, :, None], 0, 1)
    mask = np.zeros((s, s), np.uint8)
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        kind = spec.kinds[int(rng.integers(len(spec.kinds)))]
        k = int(rng.integers(spec.min_object, min(spec.max_object, s) + 1))
        obj, pattern = _object_mask(rng, kind, k, digits[rng.choice(digit_pool)], faces[rng.choice(face_pool)])
        for _try in range(10):  # keep most of each earlier object visible
            y, x = int(rng.integers(0, s - k + 1)), int(rng.integers(0, s - k + 1))
            if (mask[y : y + k, x : x + k][obj] > 0).mean() < 0.15:
                break
        under = img[y : y + k, x : x + k]
        bg_mean = under[obj].mean(axis=0)
        if pattern is None:
            for _try in range(20):  # a fill colour that stands out from what it covers
                colour = rng.uniform(0, 1, 3).astype(np.float32)
                if np.linalg.norm(colour - bg_mean) >= spec.min_contrast:
                    break
            fill = colour * (0.75 + 0.25 * texture_crop(rng, k).mean(axis=2, keepdims=True))
        else:
            tint = rng.uniform(0.8, 1.0, 3).astype(np.float32)
            fill = pattern[:, :, None] * tint
        under[obj] = np.clip(fill, 0, 1)[obj]
        mask[y : y + k, x : x + k][obj] = SCENE_CLASSES.index(kind)
    img = img + rng.normal(0, spec.noise, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), mask


def generate_scenes(n: int, spec: SceneSpec, split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes of ``split`` (its own digit/face instances): uint8 (n,S,S,3) images, (n,S,S) masks."""
    digit_pool, face_pool = instance_pools(split, seed=seed)
    rng = np.random.default_rng([seed, SPLIT_INDEX[split]])
    images = np.empty((n, spec.size, spec.size, 3), np.uint8)
    masks = np.empty((n, spec.size, spec.size), np.uint8)
    for i in range(n):
        images[i], masks[i] = render_scene(rng, spec, digit_pool, face_pool)
    return images, masks


# -- metrics ------------------------------------------------------------------------
def pixel_confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """n x n pixel counts, rows true class, columns predicted; ``ignore`` pixels are skipped.

    One ``np.bincount`` on ``true * n + pred``, kept instead of ``sklearn.metrics.confusion_matrix``:
    the same counts (checked on 0.8 M pixels), but sklearn validates and builds a sparse matrix
    first, 1.3x slower here, and segmentation counts millions of pixels per evaluation.
    """
    t, p = np.asarray(y_true).ravel().astype(np.int64), np.asarray(y_pred).ravel().astype(np.int64)
    keep = t != ignore
    t, p = t[keep], np.clip(p[keep], 0, n_classes - 1)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def segmentation_scores(cm: np.ndarray) -> dict[str, float]:
    """IoU per class (``iou_class_<i>``), mIoU over classes present in truth or prediction, pixel accuracy."""
    tp = np.diag(cm).astype(float)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), 0.0)
    out = {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / max(cm.sum(), 1)),
    }
    out.update({f"iou_class_{i}": float(v) for i, v in enumerate(iou)})
    return out
