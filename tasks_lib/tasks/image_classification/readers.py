"""Readers of the standard image-classification layouts: CIFAR-10 python batches and ImageFolder."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from tasks_lib.core.data import datasets_mirror
from tasks_lib.core.download import fetch, is_url
from tasks_lib.core.images import image_folder_files

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_HASH = "md5:c58f30108f718f92721af3b95e74349a"  # published with the archive (torchvision checks it too)
CIFAR_DIR = "cifar-10-batches-py"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches, refusing every global but the numpy array builders."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles; harmless
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}: refused")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> dict:
    with open(path, "rb") as fh:
        return _ArrayUnpickler(fh, encoding="bytes").load()


def locate_cifar(path: str, workdir: Path) -> Path:
    """The ``cifar-10-batches-py`` folder: given, inside the given folder, in the mirror, or downloaded
    (``core.download.fetch``: cached, the official archive checked against its MD5) and extracted in ``workdir``."""
    if is_url(path) or not path:
        mirror = datasets_mirror()
        if not path and mirror and (mirror / CIFAR_DIR).is_dir():
            return mirror / CIFAR_DIR
        url = path or CIFAR_URL
        with tarfile.open(fetch(url, CIFAR_HASH if url == CIFAR_URL else None)) as tar:
            tar.extractall(workdir, filter="data")
        return workdir / CIFAR_DIR
    root = Path(path)
    return root / CIFAR_DIR if (root / CIFAR_DIR).is_dir() else root


def read_cifar10(folder: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Read the python-batch layout: ``data_batch_1..5`` (train) and ``test_batch``."""
    meta = _read_cifar_batch(folder / "batches.meta")
    names = [n.decode() for n in meta[b"label_names"]]
    parts = {}
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        xs, ys = [], []
        for fname in files:
            batch = _read_cifar_batch(folder / fname)
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        parts[split] = (np.concatenate(xs), np.concatenate(ys))
    return parts, names


def read_image_folder(root: Path, image_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read ``root/class_name/*.png|jpg``; classes are the sorted folder names (torchvision's ImageFolder rules).

    Files are opened one at a time (a first pass reads only headers, for the common mode: grey
    when every image is grey, RGB otherwise), so a folder of any size stays within the open-files limit.
    """
    files, classes = image_folder_files(root)
    modes = set()
    for f, _ in files:
        with Image.open(f) as im:
            modes.add(im.mode)
    mode = "RGB" if modes - {"L", "1", "LA"} else "L"
    arrays = []
    for f, _ in files:
        with Image.open(f) as im:
            im = im.convert(mode)
            if image_size:
                im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        arrays.append(arr[:, :, None] if arr.ndim == 2 else arr)
    if not arrays:
        raise ValueError(f"{root}: no PNG/JPEG images in its class folders")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images in {root} differ in size {sorted(shapes)[:3]}...; set data.image_size")
    return np.stack(arrays), np.array([label for _, label in files], dtype=np.int64), classes
