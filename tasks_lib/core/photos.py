"""Shared by the photo-restoration tasks (super-resolution, denoising, enhancement).

- the photo collection: the photographs bundled with scikit-image and scikit-learn
  (offline), or a folder of PNG/JPEG photos (Set5/Set14/BSD-style), split **by photo**
  (no photo in two splits); training uses random patches of the training photos,
  validation and test use whole held-out photos;
- the prepared layout: ``train_target.npy`` / ``train_input.npy`` patches (uint8 NHWC)
  and ``{split}/{photo}_target.png`` / ``{split}/{photo}_input.png`` whole photos;
  a manifest with one row per photo (sizes, pixel range, decode check, sha1 leak check);
- degradations (Gaussian noise, low light), PSNR / SSIM (Y channel or RGB),
  an image-to-image training loop, whole-photo inference, serving and review figures.

Everything generated is deterministic from the seeds in the data config.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from tasks_lib.core import expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, hash_split, read_info, sha1_bytes
from tasks_lib.core.engine import Recipe, one_cycle
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.images import decode_image, png_bytes
from tasks_lib.core.task import Expectation, Request

# Natural photographs shipped with the packages (no download). ``cat`` is ``chelsea``
# again and the synthetic/binary images (checkerboard, horse, logo ...) are left out.
COLOUR_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "retina",
    "immunohistochemistry",
    "hubble_deep_field",
    "china",  # scikit-learn load_sample_images
    "flower",  # scikit-learn load_sample_images
)
GRAY_PHOTOS = ("camera", "coins", "moon", "clock", "grass", "gravel", "brick", "page", "text")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class PhotoData(DataConfig):
    """What the photo tasks prepare. Sources: ``photos`` (bundled) or a folder at ``path``."""

    max_side: int = 256  # photos are downscaled (Lanczos) so that the longer side is at most this; 0 = keep
    patch_size: int = 48  # training patch side (of the target image)
    patches_per_photo: int = 64  # random training patches cut from each training photo
    val_photos: str = "chelsea"  # bundled source: comma-separated held-out photos
    test_photos: str = "astronaut,coffee,china"
    gray_photos: bool = True  # bundled source: also train on the grayscale photos (as RGB)
    degrade_seed: int = 0  # seeds every random degradation written by prepare


@dataclass(frozen=True)
class PhotoConfig(TaskConfig):
    """Training settings shared by the image-to-image tasks."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-3
    loss: str = "l1"  # "l1", "mse" or "log_mse" (see LOSSES)
    width: int = 32  # feature channels
    depth: int = 6  # convolution layers (or U-Net levels' blocks, per task)
    augment: bool = True  # random flips and 90-degree rotations of each batch
    max_input_pixels: int = 1_000_000  # serving: larger inputs are refused (413), the memory budget
    min_input_side: int = 8  # serving: smaller inputs are refused (422)


# -- photos -------------------------------------------------------------------------------
def load_bundled_photo(name: str) -> np.ndarray:
    """One bundled photo as uint8 HxWx3 (grayscale ones repeated over three channels)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        if name not in COLOUR_PHOTOS + GRAY_PHOTOS:
            raise ValueError(f"unknown bundled photo '{name}'; choose from {COLOUR_PHOTOS + GRAY_PHOTOS}")
        img = getattr(skimage.data, name)()
    return to_rgb(np.asarray(img))


def to_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (Lanczos, antialiased) so that the longer side is at most ``max_side``."""
    h, w = img.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return img
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def read_photo_folder(root: Path) -> dict[str, np.ndarray]:
    """Every PNG/JPEG under ``root`` (recursively), by path relative to root (without suffix)."""
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{root} holds no PNG/JPEG images")
    out = {}
    for f in files:
        with Image.open(f) as im:
            out[f.relative_to(root).with_suffix("").as_posix()] = to_rgb(np.asarray(im.convert("RGB")))
    return out


def split_photos(
    photos: dict[str, np.ndarray], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Split by photo, keyed by the hash of its full-size pixels (:func:`hash_split`): a photo keeps its
    split when others are added or ``max_side`` changes. A very small folder may leave a split empty
    (validation then says so); another ``split_seed`` or more photos fixes that."""
    names = sorted(photos)
    split = hash_split([sha1_bytes(photos[n].tobytes()) for n in names], val_fraction, test_fraction, seed)
    return {s: [n for n, sp in zip(names, split, strict=True) if sp == s] for s in SPLITS}


def folder_splits(root: Path, dcfg: DataConfig, photos: dict[str, np.ndarray] | None = None) -> dict[str, list[str]]:
    """Splits of a photo folder: its ``train/`` ``val/`` ``test/`` subfolders (BSD style) when it has them,
    else a split by photo content hash (Set5/Set14 style: one flat folder). ``photos``: the folder already read."""
    photos = read_photo_folder(root) if photos is None else photos
    names = sorted(photos)
    tops = {n.split("/")[0] for n in names if "/" in n}
    if tops & {"train", "test"}:
        by = {s: sorted(n for n in names if n.startswith(f"{s}/")) for s in SPLITS}
        if not by["val"]:  # carve validation out of train
            sub = split_photos({n: photos[n] for n in by["train"]}, dcfg.val_fraction, 0.0, dcfg.split_seed)
            by["train"], by["val"] = sub["train"], sub["val"]
        return by
    return split_photos(photos, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)


def collect_photos(dcfg: PhotoData) -> dict[str, dict[str, np.ndarray]]:
    """split -> {photo name: uint8 HxWx3}, downscaled to ``max_side``; no photo in two splits."""
    if dcfg.source == "photos":
        val = [n for n in dcfg.val_photos.split(",") if n]
        test = [n for n in dcfg.test_photos.split(",") if n]
        pool = list(COLOUR_PHOTOS) + (list(GRAY_PHOTOS) if dcfg.gray_photos else [])
        both = set(val) & set(test)
        if both:
            raise ValueError(f"photos {sorted(both)} are in both val_photos and test_photos")
        train = [n for n in pool if n not in val and n not in test]
        if dcfg.max_samples:
            train = train[: dcfg.max_samples]
        names = {"train": train, "val": val, "test": test}
        return {s: {n: shrink(load_bundled_photo(n), dcfg.max_side) for n in names[s]} for s in SPLITS}
    if not dcfg.path:
        raise ValueError(f"source '{dcfg.source}' needs --path pointing at a folder of PNG/JPEG photos")
    photos = read_photo_folder(Path(dcfg.path))
    names = folder_splits(Path(dcfg.path), dcfg, photos)
    if dcfg.max_samples:
        names["train"] = names["train"][: dcfg.max_samples]
    return {s: {n: shrink(photos[n], dcfg.max_side) for n in names[s]} for s in SPLITS}


def random_patches(img: np.ndarray, size: int, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corners of ``n`` random ``size`` x ``size`` crops of ``img``."""
    h, w = img.shape[:2]
    if h < size or w < size:
        return []
    return [(int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))) for _ in range(n)]


# -- prepared data ----------------------------------------------------------------------------
Degrade = Callable[[np.ndarray, np.random.Generator, str], tuple[np.ndarray, np.ndarray]]
"""``degrade(clean, rng, photo_name) -> (target, input)`` (the target may be cropped, e.g. to a
multiple of the scale)."""


@dataclass
class PhotoPairs:
    """Prepared photo pairs in memory."""

    info: dict[str, Any]
    train_target: torch.Tensor  # uint8 N x P x P x 3
    train_input: torch.Tensor | None  # uint8 N x p x p x 3, or None when degraded on the fly
    photos: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = field(default_factory=dict)  # (name, input, target)


def _safe(name: str) -> str:
    return name.replace("/", "__")


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 (any failure means the file is unusable)
        return False


def write_pairs(
    out: Path,
    dcfg: PhotoData,
    degrade: Degrade | None,
    *,
    photos: dict[str, dict[str, np.ndarray]] | None = None,
    pairs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None,
    train_inputs: bool = True,
    input_scale: int = 1,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Write patches and whole held-out photos; return the manifest (one row per photo) and info.

    Either ``photos`` (clean photos, degraded here by ``degrade`` with seeded randomness) or
    ``pairs`` ((input, target) photos given by the source, e.g. LOL). ``train_inputs=False``
    stores only clean training patches (the task degrades them on the fly).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows, targets, inputs = [], [], []
    patch_rng = np.random.default_rng(dcfg.split_seed)
    for si, split in enumerate(SPLITS):
        items = pairs[split] if pairs is not None else photos[split]
        (out / split).mkdir(exist_ok=True)
        for pi, name in enumerate(sorted(items)):
            rng = np.random.default_rng([dcfg.degrade_seed, si, pi])  # this photo's degradations
            if pairs is not None:
                inp, target = items[name]
                clean = target
            else:
                clean = items[name]
            n_patches = 0
            if split == "train":
                p = dcfg.patch_size
                if pairs is not None:
                    p_in = p // input_scale
                    for y, x in random_patches(target, p, dcfg.patches_per_photo, patch_rng):
                        targets.append(target[y : y + p, x : x + p])
                        yi, xi = y // input_scale, x // input_scale
                        inputs.append(inp[yi : yi + p_in, xi : xi + p_in])
                        n_patches += 1
                else:
                    for y, x in random_patches(clean, p, dcfg.patches_per_photo, patch_rng):
                        patch = clean[y : y + p, x : x + p]
                        if train_inputs:
                            t, i = degrade(patch, rng, name)
                            targets.append(t)
                            inputs.append(i)
                        else:
                            targets.append(patch)
                        n_patches += 1
                target = inp = None
                t_shape = i_shape = (p, p)
                if train_inputs or pairs is not None:
                    i_shape = (p // input_scale, p // input_scale)
                decoded = True
            else:
                if pairs is None:
                    target, inp = degrade(clean, rng, name)
                tpath, ipath = out / split / f"{_safe(name)}_target.png", out / split / f"{_safe(name)}_input.png"
                tpath.write_bytes(png_bytes(target))
                ipath.write_bytes(png_bytes(inp))
                t_shape, i_shape = target.shape[:2], inp.shape[:2]
                decoded = _decodes(tpath) and _decodes(ipath)
            shown = clean if target is None else target
            rows.append(
                {
                    "sample_id": f"{split}/{name}",
                    "split": split,
                    "photo": name,
                    "height": clean.shape[0],
                    "width": clean.shape[1],
                    "channels": clean.shape[2],
                    "dtype": str(clean.dtype),
                    "pixel_min": int(shown.min()),
                    "pixel_max": int(shown.max()),
                    "input_pixel_min": int(inp.min()) if inp is not None else 0,
                    "input_pixel_max": int(inp.max()) if inp is not None else 255,
                    "target_height": t_shape[0],
                    "target_width": t_shape[1],
                    "input_height": i_shape[0],
                    "input_width": i_shape[1],
                    "size_ratio": t_shape[0] / max(i_shape[0], 1),
                    "n_patches": n_patches,
                    "decodes": decoded,
                    "sha1": sha1_bytes(clean.tobytes()),
                }
            )
    p = dcfg.patch_size
    np.save(out / "train_target.npy", np.stack(targets) if targets else np.zeros((0, p, p, 3), np.uint8))
    if inputs:
        np.save(out / "train_input.npy", np.stack(inputs))
    manifest = add_leak_column(pd.DataFrame(rows))
    info = {
        "source": dcfg.source,
        "patch_size": p,
        "n_train_patches": len(targets),
        "photos": {s: sorted((pairs or photos)[s]) for s in SPLITS},
        "channels": 3,
    }
    return manifest, info


def load_pairs(data_dir: Path) -> PhotoPairs:
    data_dir = Path(data_dir)
    info = read_info(data_dir)
    target = torch.from_numpy(np.load(data_dir / "train_target.npy"))
    inp_path = data_dir / "train_input.npy"
    inp = torch.from_numpy(np.load(inp_path)) if inp_path.exists() else None
    photos = {}
    for s in SPLITS:
        photos[s] = [
            (
                n,
                np.asarray(Image.open(data_dir / s / f"{_safe(n)}_input.png").convert("RGB")),
                np.asarray(Image.open(data_dir / s / f"{_safe(n)}_target.png").convert("RGB")),
            )
            for n in info["photos"][s]
            if s != "train"
        ]
    return PhotoPairs(info=info, train_target=target, train_input=inp, photos=photos)


def photo_expectations(info: dict[str, Any], ratio: int = 1, min_side: int = 16) -> list[Expectation]:
    """What must hold of a prepared photo set (manifest rows are photos)."""
    return [
        expect.min_rows(3, "at least one photo per split"),
        Expectation(
            "expect_column_distinct_values_to_equal_set",
            {"column": "split", "value_set": list(SPLITS)},
            "train, val and test photos all present",
        ),
        Expectation("expect_column_values_to_be_unique", {"column": "photo"}, "a photo is in one split only"),
        expect.no_leak("no photo content in two splits (test photos are held out, not patches of training photos)"),
        expect.in_set("channels", [3], "RGB"),
        expect.in_set("dtype", ["uint8"], "8-bit"),
        expect.between("pixel_min", 0, 255),
        expect.between("pixel_max", 1, 255),
        expect.between("input_pixel_min", 0, 255),
        expect.between("input_pixel_max", 1, 255, "an input that is all black carries nothing to restore"),
        expect.in_set("decodes", [True], "every written PNG decodes again"),
        expect.between("height", min_side, None, f"photos at least {min_side} px"),
        expect.between("width", min_side, None, f"photos at least {min_side} px"),
        expect.between("size_ratio", ratio, ratio, f"target is {ratio}x the input in size"),
        expect.between(
            "n_patches", 1, None, "every training photo is large enough to give patches", {"split": "train"}
        ),
    ]


# -- degradations ------------------------------------------------------------------------------
def add_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise of std ``sigma`` (0-255 scale), clipped and rounded to uint8."""
    noisy = clean.astype(np.float32) + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def low_light(
    clean: np.ndarray, rng: np.random.Generator, gamma=(2.0, 3.0), gain=(0.5, 0.9), cast=(0.7, 1.0), noise=(2.0, 6.0)
) -> np.ndarray:
    """The documented low-light degradation, parameters drawn per image from ``rng``:

    ``low = gain * cast_c * clean ** gamma + N(0, noise)`` on [0, 1] pixels, per channel c, then
    clipped and rounded to uint8. ``gamma`` darkens mid-tones (a non-linear exposure drop),
    ``gain`` lowers the overall exposure, ``cast`` (one factor per RGB channel, the largest
    rescaled to 1) tints the image, ``noise`` (0-255 scale) is sensor noise amplified in the dark.
    """
    g = rng.uniform(*gamma)
    k = rng.uniform(*gain)
    c = rng.uniform(*cast, size=3)
    c = c / c.max()
    s = rng.uniform(*noise)
    x = clean.astype(np.float32) / 255
    low = k * c.astype(np.float32) * x**g + rng.normal(0.0, s / 255, x.shape).astype(np.float32)
    return np.clip(np.round(low * 255), 0, 255).astype(np.uint8)


def bicubic_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bicubic (antialiased when shrinking) to ``size`` = (height, width), uint8 in and out."""
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.Resampling.BICUBIC))


# -- metrics ------------------------------------------------------------------------------------
def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma Y of ITU-R BT.601 on the 16-235 scale (MATLAB ``rgb2ycbcr``), float64, from uint8 RGB."""
    x = img.astype(np.float64) / 255
    return 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def psnr(target: np.ndarray, output: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    mse = np.mean((np.asarray(target, np.float64) - np.asarray(output, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * math.log10(data_range**2 / mse))


def ssim(target: np.ndarray, output: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity (scikit-image; channels averaged for colour)."""
    from skimage.metrics import structural_similarity

    t, o = np.asarray(target, np.float64), np.asarray(output, np.float64)
    win = min(7, *(d if d % 2 else d - 1 for d in t.shape[:2]))
    kw = {"channel_axis": -1} if t.ndim == 3 else {}
    return float(structural_similarity(t, o, data_range=data_range, win_size=win, **kw))


def image_quality(target: np.ndarray, output: np.ndarray, y_channel: bool = False, shave: int = 0) -> dict[str, float]:
    """PSNR and SSIM of uint8 RGB images, on the Y channel (super-resolution convention) or RGB,
    ignoring ``shave`` pixels at each border."""
    if shave:
        target, output = target[shave:-shave, shave:-shave], output[shave:-shave, shave:-shave]
    if y_channel:
        t, o = rgb_to_y(target), rgb_to_y(output)
        return {"psnr": psnr(t, o), "ssim": ssim(t, o)}
    return {"psnr": psnr(target, output), "ssim": ssim(target, output)}


def mean_quality(per_photo: list[dict[str, float]], prefix: str = "") -> dict[str, float]:
    if not per_photo:
        return {f"{prefix}psnr": float("nan"), f"{prefix}ssim": float("nan")}
    keys = per_photo[0].keys()
    return {f"{prefix}{k}": float(np.mean([m[k] for m in per_photo])) for k in keys}


# -- training and inference ---------------------------------------------------------------------
def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]."""
    return x.permute(0, 3, 1, 2).float() / 255


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float NCHW (one image) in [0, 1] -> uint8 HWC."""
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def augment_pair(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flip / 90-degree rotation of input and target (whole batch, NCHW)."""
    r = torch.randint(0, 8, (1,), generator=gen).item()
    if r & 1:
        x, y = x.flip(3), y.flip(3)
    if r & 2:
        x, y = x.flip(2), y.flip(2)
    if r & 4:
        x, y = x.transpose(2, 3), y.transpose(2, 3)
    return x, y


def log_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over images of log10 of each image's MSE (= -PSNR / 10 on [0, 1] images): every image
    counts by its PSNR, so lightly degraded images are not drowned out by heavily degraded ones
    (plain MSE is dominated by the noisiest images of a batch when the noise level varies)."""
    return torch.log10((output - target).pow(2).flatten(1).mean(1) + 1e-8).mean()


LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss, "log_mse": log_mse}

MakeBatch = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def pair_training(
    model: nn.Module,
    n_train: int,
    make_batch: MakeBatch,
    cfg: PhotoConfig,
    validate: Callable[[], dict[str, float]] | None = None,
) -> Recipe:
    """Image-to-image training: ``make_batch(indices, gen) -> (input, target)`` float NCHW on CPU.

    The default optimiser with a one-cycle schedule (15 % warm-up), L1, MSE or log-MSE loss
    (``cfg.loss``), the same random flip / rotation of input and target when ``cfg.augment``.
    """
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got '{cfg.loss}'")
    loss_fn = LOSSES[cfg.loss]
    n_batches = max(1, n_train // cfg.batch_size)

    def batches(gen: torch.Generator):
        perm = torch.randperm(n_train, generator=gen)
        for i in range(n_batches):
            x, y = make_batch(perm[i * cfg.batch_size : (i + 1) * cfg.batch_size], gen)
            yield augment_pair(x, y, gen) if cfg.augment else (x, y)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"loss": loss_fn(model(x).float(), y)}

    return Recipe(batches, step, n_batches, schedule=one_cycle(0.15), validate=validate)


@torch.no_grad()
def run_model(model: nn.Module, x: torch.Tensor, multiple: int = 1) -> torch.Tensor:
    """Model on one float NCHW image, reflect-padded to a multiple of ``multiple`` and cropped back."""
    model.eval()
    device = next(model.parameters()).device
    h, w = x.shape[2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = x.to(device)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    out = model(x).float()
    f = out.shape[2] // x.shape[2]
    return out[:, :, : h * f, : w * f].cpu()


# -- serving --------------------------------------------------------------------------------------
def parse_photo(request: Request, cfg: PhotoConfig, pixel_factor: int = 1) -> np.ndarray:
    """The request's image as uint8 HxWx3, refusing what the model cannot take.

    ``pixel_factor``: output pixels per input pixel (scale**2 for super-resolution), so the
    memory budget ``cfg.max_input_pixels`` bounds the output.
    """
    img = decode_image(request["image"])
    w, h = img.size
    if min(w, h) < cfg.min_input_side:
        raise InvalidInput(
            f"image is too small: {w}x{h}, each side must be at least {cfg.min_input_side} pixels", status=422
        )
    if w * h * pixel_factor > cfg.max_input_pixels:
        limit = cfg.max_input_pixels // pixel_factor
        raise InvalidInput(
            f"image is too large for this model's memory budget: {w}x{h} = {w * h} pixels, the limit is {limit}",
            status=413,
        )
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def photo_answer(img: np.ndarray) -> dict[str, Any]:
    return {"media": png_bytes(img), "width": int(img.shape[1]), "height": int(img.shape[0])}


def photo_bad_requests(cfg: PhotoConfig, pixel_factor: int = 1) -> list[tuple[Request, int, str]]:
    good = png_bytes(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    side = math.isqrt(cfg.max_input_pixels // pixel_factor) + 8
    return [
        ({"image": b"just some text"}, 415, "not an image"),
        ({"image": good[: len(good) // 2]}, 400, "could not be decoded"),
        ({"image": png_bytes(np.zeros((cfg.min_input_side - 2, 32, 3), np.uint8))}, 422, "too small"),
        ({"image": png_bytes(np.zeros((side, side), np.uint8))}, 413, "too large"),
        ({"text": "a photo"}, 422, "not used"),
    ]


def photo_requests(data: PhotoPairs, n: int, max_side: int = 64) -> list[Request]:
    """``n`` requests from the test photos' inputs (centre crops of at most ``max_side``, cycling)."""
    out = []
    photos = data.photos["test"] or data.photos["val"]
    for i in range(n):
        inp = photos[i % len(photos)][1]
        h, w = inp.shape[:2]
        s = min(max_side, h, w) - (i // len(photos)) * 4
        y, x = (h - s) // 2, (w - s) // 2
        out.append({"image": png_bytes(np.ascontiguousarray(inp[y : y + s, x : x + s]))})
    return out


# -- review figures --------------------------------------------------------------------------------
def review_examples(
    photos: list[tuple[str, np.ndarray, np.ndarray]],
    classical: Callable[[np.ndarray], dict[str, np.ndarray]],
    restore: Callable[[np.ndarray], np.ndarray],
    input_name: str,
    prefix: str,
    title: str,
) -> dict[str, Any]:
    """Review artifacts of a restoration task on its test photos: per photo the degraded input,
    the best classical method, the model and the target side by side, and a PSNR / SSIM table."""
    rows, lines = [], []
    for name, degraded, target in photos:
        classic = classical(degraded)
        outputs = {input_name: degraded, **classic, "model": restore(degraded)}
        q = {k: image_quality(target, v) for k, v in outputs.items()}
        best = max(classic, key=lambda k: q[k]["psnr"])
        rows.append(
            [
                (degraded, f"{name}: {input_name} {q[input_name]['psnr']:.2f} dB"),
                (classic[best], f"{best} {q[best]['psnr']:.2f} dB"),
                (outputs["model"], f"model {q['model']['psnr']:.2f} dB"),
                (target, "target"),
            ]
        )
        if not lines:
            lines = ["| photo | " + " | ".join(q) + " |", "|---" * (len(q) + 1) + "|"]
        lines.append(f"| {name} | " + " | ".join(f"{v['psnr']:.2f} / {v['ssim']:.3f}" for v in q.values()) + " |")
    return {
        f"{prefix}_test_photos.png": comparison_figure(rows, title),
        f"{prefix}_per_photo.md": "PSNR (dB) / SSIM per test photo\n\n" + "\n".join(lines) + "\n",
    }


def comparison_figure(rows: list[list[tuple[np.ndarray, str]]], suptitle: str = ""):
    """One row per photo: images side by side with their titles (e.g. input, baseline, model, target)."""
    from tasks_lib.core.figures import blank_grid

    cols = max(len(r) for r in rows)
    fig, axes = blank_grid(len(rows) * cols, cols, 3.2, 3.0)
    for r, row in enumerate(rows):
        for c, (img, title) in enumerate(row):
            axes[r, c].imshow(img, interpolation="nearest")
            axes[r, c].set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size
