"""Photo-restoration helpers: metrics on hand-computed cases, degradations, and the folder loaders
(Set5/Set14 flat, BSD train/test, LOL low/high, face ImageFolder) on tiny files in their exact layouts."""

import math

import numpy as np
import pytest
from PIL import Image

from tasks_lib.core import photos as ph
from tasks_lib.core.config import DataConfig
from tasks_lib.core.data import SPLITS
from tasks_lib.tasks.denoising.task import noise_sigma
from tasks_lib.tasks.face_recognition.task import binary_metrics, read_face_folder
from tasks_lib.tasks.image_enhancement.readers import read_pair_folder


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _photo(seed, h=40, w=48):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_psnr_hand_computed():
    a = np.zeros((4, 4), np.uint8)
    assert ph.psnr(a, a + 1) == pytest.approx(10 * math.log10(255**2 / 1))  # mse 1 -> 48.13 dB
    b = a.copy()
    b[0, 0] = 16  # mse = 256 / 16 = 16
    assert ph.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16))
    assert ph.psnr(a, a) == float("inf")


def test_y_channel_is_bt601_on_16_235():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    assert ph.rgb_to_y(img)[0].tolist() == pytest.approx([16.0, 235.0, 16 + 65.481])


def test_ssim_is_one_for_identical_and_lower_for_noise():
    img = np.repeat(np.linspace(40, 200, 48).astype(np.uint8)[None, :, None], 40, 0).repeat(3, 2)  # smooth ramp
    assert ph.ssim(img, img) == pytest.approx(1.0)
    assert ph.ssim(img, ph.add_noise(img, 25, np.random.default_rng(0))) < 0.9


def test_image_quality_shaves_borders_and_uses_y():
    t = np.full((10, 10, 3), 100, np.uint8)
    o = t.copy()
    o[0, :] = 0  # a wrong first row only
    assert ph.image_quality(t, o, shave=1)["psnr"] == float("inf")
    assert ph.image_quality(t, o, y_channel=True)["psnr"] < 40


def test_noise_is_seeded_clipped_and_of_the_right_strength():
    clean = np.full((64, 64, 3), 128, np.uint8)
    a, b = (ph.add_noise(clean, 25, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a, b) and a.dtype == np.uint8
    assert a.astype(float).std() == pytest.approx(25, rel=0.05)
    assert noise_sigma(a) == pytest.approx(25, rel=0.1)  # the MAD estimator used by the classical baselines


def test_low_light_darkens_and_is_seeded():
    clean = _photo(1, 64, 64)
    low = ph.low_light(clean, np.random.default_rng(3))
    assert np.array_equal(low, ph.low_light(clean, np.random.default_rng(3)))
    assert low.mean() < 0.6 * clean.mean()


def test_split_by_photo_is_disjoint_complete_and_stable_when_photos_are_added():
    photos = {f"p{i}": _photo(i) for i in range(40)}
    s = ph.split_photos(photos, 0.1, 0.2, seed=0)
    assert sorted(sum(s.values(), [])) == sorted(photos) and all(s[sp] for sp in SPLITS)
    grown = ph.split_photos({**photos, **{f"q{i}": _photo(100 + i) for i in range(20)}}, 0.1, 0.2, seed=0)
    assert all(set(s[sp]) <= set(grown[sp]) for sp in SPLITS)  # the hash of its pixels decides a photo's split


def test_set5_style_flat_folder(tmp_path):
    for i, name in enumerate(["baby", "bird", "butterfly", "head", "woman"]):
        _png(tmp_path / f"{name}.png", _photo(i))
    photos = ph.read_photo_folder(tmp_path)
    assert sorted(photos) == ["baby", "bird", "butterfly", "head", "woman"]
    assert photos["bird"].shape == (40, 48, 3) and np.array_equal(photos["bird"], _photo(1))
    splits = ph.folder_splits(tmp_path, DataConfig(val_fraction=0.2, test_fraction=0.2))
    assert sorted(sum(splits.values(), [])) == sorted(photos)
    # five photos are too few for hash bucketing to fill every split for sure: the split is still by photo
    assert splits == ph.split_photos(photos, 0.2, 0.2, 0)


def test_bsd_style_train_test_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for i in range(4):
        Image.fromarray(_photo(i)).save(tmp_path / "train" / f"{i}.jpg", quality=95)
    Image.fromarray(_photo(9)).save(tmp_path / "test" / "100.jpg", quality=95)
    splits = ph.folder_splits(tmp_path, DataConfig(val_fraction=0.25))
    assert splits["test"] == ["test/100"]  # the folder's own test split wins
    assert sorted(splits["val"] + splits["train"]) == [f"train/{i}" for i in range(4)]  # val carved from train
    assert ph.read_photo_folder(tmp_path)["test/100"].shape == (40, 48, 3)


def test_lol_pairs_layout(tmp_path):
    for part, n in (("our485", 4), ("eval15", 2)):
        for i in range(n):
            high = _photo(i + 10 * len(part))
            _png(tmp_path / part / "high" / f"{i}.png", high)
            _png(tmp_path / part / "low" / f"{i}.png", high // 8)
    pairs = read_pair_folder(tmp_path, 0.25, 0.2, seed=0)
    assert sorted(pairs["test"]) == ["eval15/0", "eval15/1"]  # eval15/ is LOL's test split
    assert sorted([*pairs["val"], *pairs["train"]]) == [f"our485/{i}" for i in range(4)]  # val carved from train
    low, high = pairs["test"]["eval15/1"]
    assert np.array_equal(low, high // 8)


def test_lol_pairs_refuse_unpartnered_images(tmp_path):
    _png(tmp_path / "high" / "1.png", _photo(0))
    _png(tmp_path / "low" / "2.png", _photo(0))
    with pytest.raises(ValueError, match="partner"):
        read_pair_folder(tmp_path, 0.1, 0.2, 0)


def test_face_imagefolder_layout(tmp_path):
    _png(tmp_path / "face" / "a.png", np.full((30, 30), 200, np.uint8))
    _png(tmp_path / "face" / "b.jpg", np.full((50, 40, 3), 90, np.uint8))
    _png(tmp_path / "non_face" / "c.png", np.zeros((25, 25), np.uint8))
    x, y = read_face_folder(tmp_path, 25)
    assert x.shape == (3, 25, 25) and y.tolist() == [0, 1, 1]  # class order non_face (0), face (1)
    assert x[0].max() == 0 and x[1].mean() == pytest.approx(200, abs=1) and x[2].mean() == pytest.approx(90, abs=1)


def test_face_folder_needs_both_classes(tmp_path):
    _png(tmp_path / "face" / "a.png", np.zeros((25, 25), np.uint8))
    with pytest.raises(ValueError, match="non_face"):
        read_face_folder(tmp_path, 25)


def test_binary_metrics_hand_computed():
    m = binary_metrics(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.6, 0.1]))
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5


def test_blind_denoising_holds_out_every_noise_level_and_estimates_it(tmp_path):
    """Blind mode writes each held-out photo at every level of the range (named by it), and the
    model, given no level, estimates it from the image (FFDNet-style noise map)."""
    import torch

    from tasks_lib.core.data import write_prepared
    from tasks_lib.core.registry import get_task
    from tasks_lib.tasks.denoising.model import DnCNN
    from tasks_lib.tasks.denoising.task import BLIND_LEVELS, quality, sigma_of

    task = get_task("denoising")
    dcfg, cfg = task.configs("smoke", data_overrides={"blind": True, "sigma_max": 40})
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    d = task.load(tmp_path)
    names = [n for n, _, _ in d.photos["test"]]
    assert sorted({sigma_of(n) for n in names}) == [round(f * 40) for f in BLIND_LEVELS]
    for n, noisy, clean in d.photos["test"]:  # the stored noise has the level in the name
        assert noise_sigma(noisy.astype(float) - clean + 128) == pytest.approx(sigma_of(n), rel=0.2, abs=1)
    q = quality([(n, c, c) for n, _, c in d.photos["test"]])
    assert q["psnr"] == float("inf") or q["psnr"] > 90
    assert {f"sigma{s:02d}_psnr" for s in (4, 12, 20, 28, 40)} <= set(q)

    model = task.build_model(cfg, d.info)
    assert isinstance(model, DnCNN) and model.noise_map and model.body[0].in_channels == 4
    x = torch.rand(2, 3, 32, 32)
    given = torch.cat([x, torch.full((2, 1, 32, 32), 0.3)], 1)
    assert model(x).shape == model(given).shape == x.shape
    assert not torch.allclose(model(x), model(given))  # the given level is used, not the estimate
    assert sigma_of("astronaut") is None and not get_task("denoising").build_model(cfg, {"blind": False}).noise_map


def test_log_mse_is_the_mean_of_per_image_log_mse():
    """Each image counts by its own PSNR: MSEs 1e-2 and 1e-4 give (-2 + -4) / 2, where plain
    MSE would be dominated by the first image."""
    import torch

    target = torch.zeros(2, 3, 4, 4)
    output = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    assert float(ph.log_mse(output, target)) == pytest.approx(-3.0, abs=1e-4)
    assert float(ph.log_mse(target, target)) == pytest.approx(-8.0)
