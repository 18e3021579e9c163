"""Real training at a small 'test' setting: embeddings separate unseen identities better than pixels."""

from flows.validation import validate
from tasks_lib.core.data import read_info, read_manifest, write_prepared
from tasks_lib.core.registry import get_task
from tests import smoke

TASK = "face_verification"
DATA = {"n_train_ids": 100, "n_val_ids": 10, "n_test_ids": 20, "per_id": 5, "n_val_pairs": 200, "n_test_pairs": 400}
TRAIN = {"epochs": 12, "width": 16, "dim": 64, "batch_size": 32}


def test_arcface_embedding_beats_raw_pixels_on_unseen_identities(tmp_path):
    run = smoke.train(TASK, tmp_path, data=DATA, train=TRAIN)
    model = run.model
    m, base = run.task.evaluate(model, run.data), run.task.baseline(run.data)
    assert m["roc_auc"] > 0.8, m
    assert m["roc_auc"] > base["roc_auc"] + 0.1, (m, base)  # pixels: about 0.6
    assert 0 < float(model.threshold) < 1  # chosen on validation pairs and saved with the weights


def test_lfw_layout_prepares_and_validates(tmp_path):
    """A tiny LFW tree: pairs.txt persons become test identities; GX passes; a bad pair is caught."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "lfw"
    rng = np.random.default_rng(0)
    for p in range(8):
        name = f"Person_{p}"
        (root / name).mkdir(parents=True)
        for i in range(1, 4):
            img = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / name / f"{name}_{i:04d}.jpg")
    (root / "pairs.txt").write_text("1\t2\nPerson_0\t1\t2\nPerson_0\t1\tPerson_1\t3\nPerson_1\t2\t3\n")
    task = get_task(TASK)
    dcfg, _ = task.configs("smoke", data_overrides={"source": "lfw", "path": str(root), "val_fraction": 0.34})
    prepared = task.prepare(dcfg, tmp_path / "data")
    write_prepared(tmp_path / "data", prepared)
    info = read_info(tmp_path / "data")
    assert info["n_pairs"]["test"] == 3 and info["n_images"]["test"] == 6  # Person_0 and Person_1
    report = validate(read_manifest(tmp_path / "data"), task.expectations(info), TASK)
    assert report.success, report.summary()

    (root / "pairs.txt").write_text("1\t1\nPerson_0\t1\t9\n")  # image 9 does not exist
    prepared = task.prepare(dcfg, tmp_path / "bad")
    assert not validate(prepared.manifest, task.expectations(prepared.info), TASK).success
