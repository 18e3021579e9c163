"""Public captioning layouts: COCO captions JSON and Flickr8k, read into (images, captions, split).

COCO: ``annotations/captions_<split>.json`` (``{"images": [{"id", "file_name"}], "annotations":
[{"image_id", "caption"}]}``) with the images in ``<split>/``, ``images/`` or beside the JSON.
A ``captions_val*.json`` next to a ``captions_train*.json`` is the test split (COCO's own
practice for captioning); a single file leaves the split to the task.

Flickr8k: ``Flickr8k.token.txt`` (lines ``name.jpg#0<TAB>caption``, five per image) with the
images in ``Flicker8k_Dataset/`` (the upstream spelling), ``Flickr8k_Dataset/`` or ``Images/``;
``Flickr_8k.testImages.txt`` / ``Flickr_8k.devImages.txt``, when present, fix the test / val images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tasks_lib.core.coco import load_coco


def _load_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as pil:
            return np.asarray(pil.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except FileNotFoundError:
        raise FileNotFoundError(f"caption file names image {path}, which does not exist") from None
    except OSError as exc:
        raise ValueError(f"image {path} could not be decoded: {exc}") from None


def _find_image(roots: list[Path], name: str) -> Path:
    for root in roots:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"image '{name}' not found in any of {[str(r) for r in roots]}")


def read_coco_captions(path: Path, size: int) -> tuple[np.ndarray, list[list[str]], np.ndarray | None, list[str]]:
    """(images uint8 NxSxSx3, captions per image, upstream split or None, file names). ``path``: file or folder."""
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        files = sorted(path.glob("captions_*.json")) + sorted(path.glob("annotations/captions_*.json"))
        if not files:
            raise FileNotFoundError(f"no COCO captions JSON in {path} (annotations/captions_*.json)")
    train_files = [f for f in files if "train" in f.name]
    val_files = [f for f in files if "val" in f.name]
    upstream = bool(train_files and val_files)
    images, captions, split, names = [], [], [], []
    for f in files:
        coco = load_coco(f, required=("images", "annotations"))  # pycocotools, as every COCO file here
        per_image = {
            image_id: [
                " ".join(str(a["caption"]).split())
                for a in coco.imgToAnns[image_id]
                if str(a.get("caption", "")).strip()
            ]
            for image_id in coco.imgs
        }
        base = f.parent.parent if f.parent.name == "annotations" else f.parent
        stem = f.stem.removeprefix("captions_")
        roots = [base / stem, base / "images" / stem, base / "images", base, f.parent]
        for im in coco.loadImgs(sorted(coco.getImgIds())):
            if not per_image[im["id"]]:
                continue  # an image without a caption teaches nothing
            images.append(_load_image(_find_image(roots, im["file_name"]), size))
            captions.append(per_image[im["id"]])
            names.append(im["file_name"])
            split.append("test" if f in val_files else "")
    out = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return out, captions, (np.array(split, dtype=object) if upstream else None), names


FLICKR_TOKENS = "Flickr8k.token.txt"
FLICKR_IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")


def read_flickr8k(folder: Path, size: int) -> tuple[np.ndarray, list[list[str]], np.ndarray | None, list[str]]:
    """(images, captions per image, split from the upstream image lists or None, file names)."""
    folder = Path(folder)
    token_file = folder / FLICKR_TOKENS
    if not token_file.is_file():
        found = sorted(folder.glob(f"*/{FLICKR_TOKENS}"))
        if not found:
            raise FileNotFoundError(f"no {FLICKR_TOKENS} in {folder} (lines 'name.jpg#0<TAB>caption')")
        token_file = found[0]
    per_image: dict[str, list[str]] = {}
    for lineno, line in enumerate(token_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, tab, text = line.partition("\t")
        name, hash_, _ = key.partition("#")
        if not tab or not hash_:
            raise ValueError(f"{token_file}:{lineno}: expected 'name.jpg#N<TAB>caption', got {line[:80]!r}")
        if text.strip():
            per_image.setdefault(name.strip(), []).append(" ".join(text.split()))
    roots = [token_file.parent / d for d in FLICKR_IMAGE_DIRS] + [folder / d for d in FLICKR_IMAGE_DIRS]
    names = sorted(per_image)
    images = [_load_image(_find_image(roots, n), size) for n in names]

    def listed(fname: str) -> set[str]:
        f = token_file.parent / fname
        return {s.strip() for s in f.read_text().splitlines() if s.strip()} if f.is_file() else set()

    test, dev = listed("Flickr_8k.testImages.txt"), listed("Flickr_8k.devImages.txt")
    split = None
    if test:
        split = np.array(["test" if n in test else "val" if n in dev else "" for n in names], dtype=object)
    out = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return out, [per_image[n] for n in names], split, names
