"""The LFW layout: ``root/<person_name>/<person_name>_<NNNN>.jpg`` and a ``pairs.txt``.

``pairs.txt`` (LFW format): an optional header line (``N`` or ``folds<TAB>N``), then
same-person lines ``name<TAB>i<TAB>j`` and different-person lines
``name1<TAB>i<TAB>name2<TAB>j`` (image numbers are 1-based, as in the file names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def lfw_file(root: Path, name: str, number: int) -> Path:
    return Path(root) / name / f"{name}_{number:04d}.jpg"


def read_lfw_pairs(path: Path) -> list[tuple[str, int, str, int]]:
    """(name1, number1, name2, number2) per pair; same-person lines repeat the name."""
    pairs = []
    for k, line in enumerate(Path(path).read_text().splitlines()):
        parts = line.split()
        if not parts:
            continue
        if k == 0 and all(p.isdigit() for p in parts):
            continue  # header
        if len(parts) == 3:
            pairs.append((parts[0], int(parts[1]), parts[0], int(parts[2])))
        elif len(parts) == 4:
            pairs.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
        else:
            raise ValueError(f"{path}: line {k + 1} is neither 'name i j' nor 'name1 i name2 j': {line!r}")
    return pairs


def find_lfw_root(path: Path) -> Path:
    """``path`` itself, or its ``lfw``/``lfw_funneled`` child, whichever holds person folders and pairs.txt."""
    path = Path(path)
    for cand in (path, path / "lfw", path / "lfw_funneled", path / "lfw-deepfunneled"):
        if (
            cand.is_dir()
            and any(p.is_dir() for p in cand.iterdir())
            and ((cand / "pairs.txt").exists() or (cand.parent / "pairs.txt").exists())
        ):
            return cand
    raise FileNotFoundError(f"no LFW layout (person_name/person_name_0001.jpg and pairs.txt) under {path}")


def read_lfw_image(file: Path, size: int, crop: float) -> np.ndarray | None:
    """The central ``crop`` share of the photo, resized to size x size RGB; None if it does not decode."""
    try:
        with Image.open(file) as img:
            img = img.convert("RGB")
            w, h = img.size
            cw, ch = w * crop, h * crop
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=box))
    except OSError:
        return None


def read_lfw(path: Path, size: int, crop: float = 0.5):
    """(persons: name -> list of (number, image or None), pairs from pairs.txt)."""
    root = find_lfw_root(Path(path))
    pairs_file = root / "pairs.txt" if (root / "pairs.txt").exists() else root.parent / "pairs.txt"
    persons = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob(f"{folder.name}_*.jpg"))
        persons[folder.name] = [(int(f.stem.rsplit("_", 1)[1]), read_lfw_image(f, size, crop)) for f in files]
    return persons, read_lfw_pairs(pairs_file)
