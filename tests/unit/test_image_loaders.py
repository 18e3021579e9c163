"""The standard-format loaders, proven on tiny files written in the exact upstream layout."""

import pickle

import numpy as np
import pytest
from PIL import Image

from tasks_lib.core.data import read_manifest, write_prepared
from tasks_lib.core.registry import get_task
from tasks_lib.tasks.image_classification import read_cifar10

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_cifar(root, per_class_per_batch=3):
    """python-batch layout: pickled dicts with bytes keys, data N x 3072 uint8 (R, G, B planes)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), per_class_per_batch)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": data,
            b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": len(labels)}, fh)
    return folder


def test_cifar10_reader_reads_the_python_batch_layout(tmp_path):
    folder = _write_cifar(tmp_path)
    parts, names = read_cifar10(folder)
    assert names == NAMES
    assert parts["train"][0].shape == (150, 32, 32, 3) and parts["test"][0].shape == (30, 32, 32, 3)
    # first pixel's red value is the first byte of the row: planes are R, G, B
    with open(folder / "data_batch_1", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")[b"data"]
    assert parts["train"][0][0, 0, 0, 0] == raw[0, 0] and parts["train"][0][0, 0, 0, 1] == raw[0, 1024]


def test_cifar10_reader_refuses_a_pickle_that_runs_code(tmp_path):
    folder = _write_cifar(tmp_path)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [print]}, fh)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        read_cifar10(folder)


def test_cifar10_source_prepares_official_test_split(tmp_path):
    _write_cifar(tmp_path)
    task = get_task("image_classification")
    dcfg, _ = task.configs("quick", data_overrides={"source": "cifar10", "path": str(tmp_path)})
    out = tmp_path / "prepared"
    prep = task.prepare(dcfg, out)
    write_prepared(out, prep)
    m = read_manifest(out)
    assert (m["split"] == "test").sum() == 30  # the test_batch, untouched
    assert set(m["split"]) == {"train", "val", "test"}
    assert prep.info["classes"] == NAMES and prep.info["image_shape"] == [32, 32, 3] and prep.info["hflip"]


def test_imagefolder_source(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
                tmp_path / "tree" / cls / f"{i}.png"
            )
    task = get_task("image_classification")
    dcfg, _ = task.configs("quick", data_overrides={"source": "imagefolder", "path": str(tmp_path / "tree")})
    prep = task.prepare(dcfg, tmp_path / "out")
    assert prep.info["classes"] == ["cat", "dog"] and prep.info["image_shape"] == [10, 12, 3]
    assert len(prep.manifest) == 24
    dcfg = dcfg.replace(image_size=8)
    assert task.prepare(dcfg, tmp_path / "out8").info["image_shape"] == [8, 8, 3]


def test_digits_prepare_is_deterministic(tmp_path):
    task = get_task("image_classification")
    dcfg, _ = task.configs("smoke")
    a = task.prepare(dcfg, tmp_path / "a").manifest
    b = task.prepare(dcfg, tmp_path / "b").manifest
    assert a.equals(b)
    assert (tmp_path / "a" / "test_x.npy").read_bytes() == (tmp_path / "b" / "test_x.npy").read_bytes()
    assert (a["splits_with_same_content"] == 1).all()


def test_cifar10_source_downloads_the_archive_from_a_url(tmp_path):
    """The URL path for real: the upstream tar.gz layout served over loopback HTTP."""
    import functools
    import http.server
    import tarfile
    import threading

    (tmp_path / "src").mkdir()
    _write_cifar(tmp_path / "src")
    (tmp_path / "www").mkdir()
    with tarfile.open(tmp_path / "www" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
        task = get_task("image_classification")
        dcfg, _ = task.configs("quick", data_overrides={"source": "cifar10", "path": url})
        prep = task.prepare(dcfg, tmp_path / "out")
    finally:
        server.shutdown()
    assert prep.info["classes"] == NAMES and (prep.manifest["split"] == "test").sum() == 30


def test_imagefolder_readers_open_one_file_at_a_time(tmp_path):
    """1,100 tiny images under an open-files limit of 1,024 (a common ``ulimit -n``): a reader that holds
    every file open fails with "too many open files"; these read them all and leave no file open."""
    import os
    import resource

    from tasks_lib.tasks.face_recognition import read_face_folder
    from tasks_lib.tasks.image_classification import read_image_folder

    rng = np.random.default_rng(0)
    for i in range(1100):
        cls = ("non_face", "face")[i % 2]
        (tmp_path / cls).mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8)).save(tmp_path / cls / f"{i:04d}.png")
    fds = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        x, y, classes = read_image_folder(tmp_path, 0)
        faces, labels = read_face_folder(tmp_path, 4)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(os.listdir("/proc/self/fd")) == fds  # every file closed again
    assert x.shape == (1100, 4, 4, 1) and classes == ["face", "non_face"]  # sorted folder names
    assert (y == 1).sum() == 550 and faces.shape == (1100, 4, 4) and labels.sum() == 550  # face = 1 there
    assert labels[:550].sum() == 0  # in its own class order: non_face (0) first
    with Image.open(tmp_path / "face" / "0001.png") as first:
        np.testing.assert_array_equal(x[0, :, :, 0], np.asarray(first))  # sorted file names within a class
