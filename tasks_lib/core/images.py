"""Image decoding and checks shared by image tasks, with errors that name the problem."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tasks_lib.core.errors import InvalidInput

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
MIN_IMAGE_SIDE = 4
ACCEPTED_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}
IMAGE_FORMATS = ("PNG", "JPEG")  # the only Pillow decoders a request reaches
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def decode_image(data: bytes) -> Image.Image:
    """Decode PNG/JPEG bytes fully (so truncation is caught here), or raise InvalidInput.

    Only Pillow's PNG and JPEG plugins ever see the bytes (``formats=``), and the size is
    checked from the header before any pixel is decoded, so a small file that claims a huge
    image (a decompression bomb) costs nothing.
    """
    if not data:
        raise InvalidInput("image is empty (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput(f"image is too large: {len(data)} bytes, the limit is {MAX_IMAGE_BYTES}", status=413)
    if not data.startswith(IMAGE_SIGNATURES):
        raise InvalidInput("not an image: expected PNG or JPEG bytes", status=415)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            fmt = img.format
            if img.width > MAX_IMAGE_SIDE or img.height > MAX_IMAGE_SIDE:
                raise InvalidInput(
                    f"image is too large: {img.width}x{img.height}, the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}",
                    status=413,
                )
            img.load()
    except InvalidInput:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"image is too large: {exc}", status=413) from None
    except UnidentifiedImageError:
        raise InvalidInput("not an image: expected PNG or JPEG bytes", status=415) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"image could not be decoded (truncated or corrupt?): {exc}") from None
    if fmt not in IMAGE_FORMATS:
        raise InvalidInput(f"unsupported image format {fmt}: send PNG or JPEG", status=415)
    return check_image(img)


def check_image(img: Image.Image) -> Image.Image:
    """Reject images whose channels or size no image model here can use."""
    if img.mode not in ACCEPTED_MODES:
        raise InvalidInput(f"unsupported image mode '{img.mode}': send grayscale, RGB or RGBA", status=422)
    if min(img.size) < MIN_IMAGE_SIDE:
        raise InvalidInput(
            f"image is too small: {img.width}x{img.height}, each side must be at least {MIN_IMAGE_SIDE} pixels",
            status=422,
        )
    return img


def array_to_image(values: object) -> Image.Image:
    """Turn a nested list (H x W or H x W x C, values 0-255) into an image, or raise."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("array must be a rectangular nested list of numbers", status=422) from None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise InvalidInput(
            f"array must have shape HxW or HxWx3 (values 0-255), got shape {list(arr.shape)}",
            status=422,
        )
    if not np.isfinite(arr).all():
        raise InvalidInput("array contains NaN or infinite values", status=422)
    if arr.min() < 0 or arr.max() > 255:
        raise InvalidInput(f"array values must lie in 0-255, got {arr.min():g} to {arr.max():g}", status=422)
    if max(arr.shape[:2]) > MAX_IMAGE_SIDE:
        raise InvalidInput(f"array is too large: {list(arr.shape)}", status=413)
    img = Image.fromarray(arr.round().astype(np.uint8), mode="L" if arr.ndim == 2 else "RGB")
    return check_image(img)


def to_model_array(img: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    """Convert to the model's channels and size; returns uint8 HxWxC."""
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def image_from_request(request: dict, field: str = "image") -> Image.Image:
    """The image a request carries: file field ``field`` or, for single-image tasks, JSON ``array``."""
    has_file, has_array = request.get(field) is not None, request.get("array") is not None
    if field != "image" and request.get(field) is None:
        raise InvalidInput(f"field '{field}' is missing: send it as a PNG or JPEG file", status=422)
    if field == "image" and has_file == has_array:
        raise InvalidInput("send exactly one of: multipart field 'image', JSON field 'array'", status=422)
    source = field if has_file else "array"
    try:
        return decode_image(request[field]) if has_file else array_to_image(request["array"])
    except InvalidInput as exc:
        exc.field = exc.field or source
        raise


def png_bytes(img: Image.Image | np.ndarray) -> bytes:
    """Encode an image (PIL, or uint8 HxW / HxWx1 / HxWx3 array) as PNG bytes."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def frames_from_array(values: object, min_frames: int, max_frames: int, min_side: int, max_side: int) -> np.ndarray:
    """A JSON ``array`` of frames (T x H x W x C with C = 1 or 3, or grey T x H x W; values 0-255)
    as uint8 (T, H, W, 3), or InvalidInput naming the problem (413 for too many or too large)."""
    if values is None:
        raise InvalidInput("field 'array' is missing: send frames as a T x H x W x 3 nested list (0-255)", 422)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("array must be a rectangular nested list of numbers (frames T x H x W x C)", 422) from None
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3):
        arr = arr[..., None]  # grey frames T x H x W
    if arr.ndim != 4 or arr.shape[3] not in (1, 3):
        raise InvalidInput(
            f"array must have shape T x H x W x C with C = 1 or 3 (frames, values 0-255), got shape {list(arr.shape)}",
            422,
        )
    n = arr.shape[0]
    if min_frames == max_frames and n != min_frames:
        raise InvalidInput(f"array has {n} frames: the model takes exactly {min_frames} frames", 422)
    if n < min_frames:
        raise InvalidInput(f"array has {n} frame(s): at least {min_frames} frames are needed", 422)
    if n > max_frames:
        raise InvalidInput(f"array has {n} frames: at most {max_frames} per request", 413)
    if max(arr.shape[1:3]) > max_side:
        raise InvalidInput(f"frames are too large: {arr.shape[1]}x{arr.shape[2]}, the limit is {max_side}", 413)
    if min(arr.shape[1:3]) < min_side:
        raise InvalidInput(f"frames are too small: {arr.shape[1]}x{arr.shape[2]}, at least {min_side} pixels", 422)
    if not np.isfinite(arr).all():
        raise InvalidInput("array contains NaN, null or infinite values", 422)
    if arr.min() < 0 or arr.max() > 255:
        raise InvalidInput(f"array values must lie in 0-255, got {arr.min():g} to {arr.max():g}", 422)
    frames = np.repeat(arr, 3, axis=3) if arr.shape[3] == 1 else arr
    return frames.round().astype(np.uint8)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def image_folder_files(root, classes: list[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """The files of an ImageFolder tree ``root/class_name/**/*.png|jpg`` as (path, class index), and the classes.

    ``torchvision.datasets.folder``: ``find_classes`` (sorted folder names) unless ``classes`` fixes
    them and their order, ``make_dataset`` for the files (sorted, case-insensitive suffixes). Only
    paths are listed: callers open one file at a time, so any number of images stays within the
    open-files limit. A class folder without images is allowed (validation reports empty classes).
    """
    from torchvision.datasets.folder import find_classes, make_dataset

    if classes is None:
        try:
            classes, _ = find_classes(root)
        except FileNotFoundError:
            classes = []
        if not classes:
            raise ValueError(f"{root} has no class folders (expected class_name/*.png|jpg)")
    files = make_dataset(root, {c: i for i, c in enumerate(classes)}, extensions=IMAGE_EXTENSIONS, allow_empty=True)
    # make_dataset walks the class folders by name; keep the order of ``classes`` (stable: files stay sorted)
    return sorted(files, key=lambda f: f[1]), list(classes)


def normalise_nhwc(x: torch.Tensor, info: dict) -> torch.Tensor:
    """uint8 NHWC images -> float NCHW, each channel standardised by the training split's
    ``info["mean"]`` and ``info["std"]`` (of pixels scaled to [0, 1])."""
    mean = torch.tensor(info["mean"], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info["std"], device=x.device).view(1, -1, 1, 1)
    return (x.permute(0, 3, 1, 2).float() / 255 - mean) / std
