"""object_tracking: the MOTChallenge reader on tiny files in that exact format, MOT metrics on
hand-computed cases, the Kalman / Hungarian tracker on crossing objects, and the generator."""

import numpy as np
import pytest
from PIL import Image

from tasks_lib.core.data import hash_split
from tasks_lib.tasks.object_tracking.metrics import mot_metrics
from tasks_lib.tasks.object_tracking.mot import Sequence, find_sequences, read_mot_txt, read_sequence, write_sequence
from tasks_lib.tasks.object_tracking.sequences import generate_sequence
from tasks_lib.tasks.object_tracking.tracker import KalmanBox, TrackerParams, greedy_iou_tracks, select, track

# -- the MOTChallenge layout ---------------------------------------------------------------

GT_TXT = """1,1,11,21,30,40,1,1,1
1,2,101.5,51,20,20,0,1,0.12
2,1,14,21,30,40,1,1,0.875
"""
DET_TXT = """1,-1,10.5,20.5,31,41,0.93,-1,-1,-1
2,-1,200,100,10,12,0.2,-1,-1,-1
"""
SEQINFO = """[Sequence]
name=MOT17-02-DPM
imDir=img1
frameRate=30
seqLength=2
imWidth=320
imHeight=160
imExt=.jpg
"""


def _mot_sequence(root):
    seq = root / "train" / "MOT17-02-DPM"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "det").mkdir()
    for t in (1, 2):
        Image.new("RGB", (320, 160), (t * 40, 0, 0)).save(seq / "img1" / f"{t:06d}.jpg")
    (seq / "gt" / "gt.txt").write_text(GT_TXT)
    (seq / "det" / "det.txt").write_text(DET_TXT)
    (seq / "seqinfo.ini").write_text(SEQINFO)
    return seq


def test_read_mot_txt_gt_and_det_columns(tmp_path):
    seq = _mot_sequence(tmp_path)
    gt = read_mot_txt(seq / "gt" / "gt.txt")
    assert gt.shape == (3, 9)
    # frame, id, x1 y1 x2 y2 (1-based bb_left/top -> 0-based, x2 = left + width), conf flag, class, visibility
    np.testing.assert_allclose(gt[0], [1, 1, 10, 20, 40, 60, 1, 1, 1])
    np.testing.assert_allclose(gt[1], [1, 2, 100.5, 50, 120.5, 70, 0, 1, 0.12])
    det = read_mot_txt(seq / "det" / "det.txt")
    np.testing.assert_allclose(det[:, 6], [0.93, 0.2])  # det.txt column 7 is the score
    np.testing.assert_allclose(det[0, 2:6], [9.5, 19.5, 40.5, 60.5])
    (tmp_path / "short.txt").write_text("3,7,1,1,5,5\n")  # six columns: conf 1, class -1, visibility 1
    np.testing.assert_allclose(read_mot_txt(tmp_path / "short.txt")[0, 6:], [1, -1, 1])
    (tmp_path / "bad.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="at least 6 columns"):
        read_mot_txt(tmp_path / "bad.txt")


def test_read_sequence_folder_with_seqinfo_and_resize(tmp_path):
    seq_dir = _mot_sequence(tmp_path)
    assert find_sequences(tmp_path) == [seq_dir]
    seq = read_sequence(seq_dir)
    assert seq.name == "MOT17-02-DPM" and seq.fps == 30 and seq.frames.shape == (2, 160, 320, 3)
    assert seq.det is not None and len(seq.det) == 2 and seq.declared_length == 2
    small = read_sequence(seq_dir, size=64)  # 320 x 160 -> 64 x 64: x scaled by 0.2, y by 0.4
    assert small.frames.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(small.gt[0, 2:6], [2, 8, 8, 24])


def test_write_then_read_round_trip(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    gt = np.array([[1, 1, 2, 3, 12, 13, 1, 4, 1.0], [3, 2, 0, 0, 5.5, 7.25, 0, 2, 0.25]])
    write_sequence(tmp_path / "S", Sequence("S", frames, gt, 7.5))
    back = read_sequence(tmp_path / "S")
    assert np.array_equal(back.frames, frames) and back.fps == 7.5 and back.name == "S"
    np.testing.assert_allclose(back.gt, gt)
    assert (tmp_path / "S" / "img1" / "000003.png").exists()


# -- metrics on hand-computed cases ----------------------------------------------------------


def _box(x, y, s=10):
    return np.array([x, y, x + s, y + s], dtype=float)


def _gt(rows):
    """rows: (frame 1-based, id, x, y[, conf])."""
    return np.array([[f, i, *_box(x, y), c, 1, 1] for f, i, x, y, *rest in rows for c in [rest[0] if rest else 1]])


def test_perfect_tracks_score_mota_and_idf1_one():
    gt = _gt([(1, 1, 0, 0), (2, 1, 2, 0), (1, 2, 50, 50), (2, 2, 52, 50)])
    tracks = [(7, [(0, _box(0, 0), 0.9), (1, _box(2, 0), 0.9)]), (3, [(0, _box(50, 50), 0.9), (1, _box(52, 50), 0.9)])]
    m = mot_metrics([(gt, tracks, 2)])
    assert m["mota"] == 1 and m["idf1"] == 1 and m["id_switches"] == 0 and m["motp"] == pytest.approx(1)
    assert m["precision"] == 1 and m["recall"] == 1


def test_an_id_change_counts_one_switch():
    gt = _gt([(f, 1, 4 * f, 0) for f in (1, 2, 3, 4)])
    tracks = [(1, [(0, _box(4, 0), 1), (1, _box(8, 0), 1)]), (2, [(2, _box(12, 0), 1), (3, _box(16, 0), 1)])]
    m = mot_metrics([(gt, tracks, 4)])
    assert m["id_switches"] == 1 and m["false_positives"] == 0 and m["misses"] == 0
    assert m["mota"] == pytest.approx(1 - 1 / 4)
    assert m["idf1"] == pytest.approx(0.5)  # the best single id covers 2 of 4 boxes: IDTP 2, IDFP 2, IDFN 2


def test_a_missed_box_and_a_false_box():
    gt = _gt([(1, 1, 0, 0), (2, 1, 2, 0), (3, 1, 4, 0)])
    tracks = [(1, [(0, _box(0, 0), 1), (2, _box(4, 0), 1)]), (2, [(1, _box(80, 80), 1)])]  # frame 2: wrong place
    m = mot_metrics([(gt, tracks, 3)])
    assert m["misses"] == 1 and m["false_positives"] == 1 and m["id_switches"] == 0
    assert m["mota"] == pytest.approx(1 - 2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(2 / 3)


def test_a_box_on_an_ignored_object_is_neither_hit_nor_false_positive():
    gt = _gt([(1, 1, 0, 0), (1, 2, 50, 50, 0)])  # object 2 mostly hidden: conf 0
    tracks = [(1, [(0, _box(0, 0), 1)]), (2, [(0, _box(50, 50), 1)])]
    m = mot_metrics([(gt, tracks, 1)])
    assert m["mota"] == 1 and m["false_positives"] == 0 and m["gt_boxes"] == 1


def test_a_box_below_iou_half_is_a_miss_and_a_false_positive():
    gt = _gt([(1, 1, 0, 0)])
    m = mot_metrics([(gt, [(1, [(0, _box(6, 0), 1)])], 1)])  # IoU 4/16 = 0.25
    assert m["misses"] == 1 and m["false_positives"] == 1 and m["mota"] == pytest.approx(-1)


# -- the tracker -----------------------------------------------------------------------------


def _crossing(n=30, hide=range(13, 18)):
    """Object 1 moves right, object 2 left on nearly the same row; while they overlap the back
    one (2) is not detected. Returns (ground truth table, detections per frame)."""
    gt, dets = [], []
    for t in range(n):
        a, b = _box(10 + 3 * t, 50, 20), _box(100 - 3 * t, 54, 20)
        gt += [[t + 1, 1, *a, 1, 1, 1]] + ([[t + 1, 2, *b, 1, 1, 1]] if t not in hide else [])
        noise = np.random.default_rng(t).normal(0, 0.4, (2, 4))
        d = np.stack([a, b]) + noise
        dets.append((d[:1], np.array([0.9])) if t in hide else (d, np.array([0.9, 0.8])))
    return np.array(gt), dets


def test_two_crossing_objects_keep_their_ids_through_an_occlusion():
    gt, dets = _crossing()
    tracks = track(dets, TrackerParams())
    assert len(tracks) == 2
    m = mot_metrics([(gt, tracks, 30)])
    assert m["id_switches"] == 0 and m["mota"] == 1 and m["idf1"] == 1
    greedy = greedy_iou_tracks(dets, 0.4)
    assert len(greedy) == 3  # no memory: the hidden object comes back as a new track
    assert mot_metrics([(gt, greedy, 30)])["idf1"] < 1


def test_kalman_filter_learns_a_constant_velocity():
    p = TrackerParams()
    kf = KalmanBox(_box(0, 0, 20), p)
    for t in range(1, 15):
        kf.predict()
        kf.update(_box(2 * t, t, 20))
    np.testing.assert_allclose(kf.predict(), _box(30, 15, 20), atol=0.3)
    np.testing.assert_allclose(kf.x[4:6], [2, 1], atol=0.05)


def test_unconfirmed_tracks_are_dropped_and_confirmed_ones_keep_their_first_frames():
    dets = [(np.stack([_box(0, 0), _box(60, 60)]), np.array([0.9, 0.9]))] + [
        (_box(t, 0)[None], np.array([0.9])) for t in range(1, 5)
    ]
    tracks = track(dets, TrackerParams(min_hits=3))
    assert len(tracks) == 1 and [f for f, _, _ in tracks[0][1]] == [0, 1, 2, 3, 4]


def test_select_thresholds_scores_and_suppresses_duplicates_across_classes():
    boxes = np.stack([_box(0, 0), _box(1, 0), _box(40, 40), _box(80, 80)])
    b, s = select(boxes, np.array([0.9, 0.8, 0.7, 0.1]), 0.4, 0.5)
    assert len(b) == 2 and list(s) == [0.9, 0.7]


# -- the generator ---------------------------------------------------------------------------


def _generate(seed=13):
    return generate_sequence(np.random.default_rng(seed), "S", 96, 24, 4, 4, 0.15, 0.3, 0.01, 0.03, 0.5, 0.3, 10)


def test_generated_sequences_are_deterministic_cross_and_occlude():
    a, b = _generate(), _generate()
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.gt, b.gt)
    assert a.frames.shape == (24, 96, 96, 3) and a.fps == 10
    gt = a.gt
    assert set(gt[:, 1].astype(int)) <= {1, 2, 3, 4}
    assert (gt[:, 2:4] >= 0).all() and (gt[:, 4:6] <= 96).all() and (gt[:, 4] > gt[:, 2]).all()
    for f in range(1, 25):  # one box per (frame, id)
        ids = gt[gt[:, 0] == f, 1]
        assert len(ids) == len(set(ids))
    # occlusion happens over a few seeds: some boxes partly hidden, some objects hidden enough to be ignored
    vis = np.concatenate([_generate(s).gt[:, 8] for s in range(6)])
    assert (vis < 0.9).any() and (vis < 0.3).any()


# -- a MOTChallenge folder as the task's source ------------------------------------------------


def test_prepare_keeps_mot_test_sequences_in_test_when_they_carry_gt(tmp_path):
    from tasks_lib.core.registry import get_task

    for part, names in (("train", [f"SEQ-{k}" for k in range(4)]), ("test", ["SEQ-9"])):
        for k, name in enumerate(names):
            seq = tmp_path / "MOT" / part / name
            (seq / "img1").mkdir(parents=True)
            for t in (1, 2):
                Image.new("RGB", (32, 32), (30 * k + (100 if part == "test" else 0), 20 * t, 0)).save(
                    seq / "img1" / f"{t:06d}.jpg"
                )
            (seq / "gt").mkdir()
            (seq / "gt" / "gt.txt").write_text("1,1,2,2,8,8,1,1,1\n2,1,4,2,8,8,1,1,1\n")
    task = get_task("object_tracking")
    dcfg, _ = task.configs("smoke", data_overrides={"source": "mot", "path": str(tmp_path / "MOT"), "image_size": 32})
    m = task.prepare(dcfg, tmp_path / "out").manifest
    by_seq = m.groupby("sequence")["split"].agg(set).to_dict()
    assert by_seq.pop("SEQ-9") == {"test"}  # the shipped test split wins
    assert all(len(v) == 1 and v <= {"train", "val"} for v in by_seq.values())  # val carved out of train


def test_prepare_reads_a_mot_folder_and_its_manifest_flags_broken_tracks(tmp_path):
    from tasks_lib.core.data import write_prepared
    from tasks_lib.core.registry import get_task

    root = tmp_path / "MOT"
    for k in range(3):
        seq = root / "train" / f"SEQ-{k}"
        (seq / "img1").mkdir(parents=True)
        for t in (1, 2, 3):
            Image.new("RGB", (64, 32), (40 * k, 20 * t, 0)).save(seq / "img1" / f"{t:06d}.jpg")
        rows = [f"{t},1,{2 + 2 * t},5,10,8,1,1,1" for t in (1, 2, 3)] + ["2,2,40,10,6,6,0,8,0.1"]
        if k == 2:
            rows.append("3,1,30,20,5,5,1,1,1")  # id 1 twice in frame 3
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
        length = 4 if k == 1 else 3  # SEQ-1 announces a frame that is not in img1/
        (seq / "seqinfo.ini").write_text(
            SEQINFO.replace("seqLength=2", f"seqLength={length}").replace("-02-", f"-{k}-")
        )
    test_seq = root / "test" / "SEQ-9" / "img1"  # a test sequence without gt.txt is skipped
    test_seq.mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(test_seq / "000001.jpg")

    task = get_task("object_tracking")
    dcfg, _ = task.configs("smoke", data_overrides={"source": "mot", "path": str(root), "image_size": 32})
    prepared = task.prepare(dcfg, tmp_path / "out")
    m = prepared.manifest
    assert prepared.info["classes"] == ["object"] and sorted(m["sequence"].unique()) == ["SEQ-0", "SEQ-1", "SEQ-2"]
    assert (m["fps"] == 30).all()
    # three sequences are too few for hash bucketing to fill every split for sure; each goes whole to the
    # split of its frames' hash (MOT's test/ holds no gt here, so its train/test split cannot win)
    per_seq = m.groupby("sequence").agg(split=("split", "unique"), key=("seq_sha1", "first"))
    assert per_seq["split"].map(len).eq(1).all()
    expected = hash_split(per_seq["key"].to_numpy(), dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
    assert per_seq["split"].map(lambda v: v[0]).tolist() == list(expected)
    by_seq = m.groupby("sequence")
    assert by_seq["repeated_ids"].max().to_dict() == {"SEQ-0": 0, "SEQ-1": 0, "SEQ-2": 1}
    assert by_seq["missing_frames"].max().to_dict() == {"SEQ-0": 0, "SEQ-1": 1, "SEQ-2": 0}
    assert m["n_ignored"].sum() == 3  # the conf-0 rows stay as ignore regions
    write_prepared(tmp_path / "out", prepared)
    back = task.load(tmp_path / "out")
    seq = next(q for sp in back.seqs.values() for q in sp if q.name == "SEQ-0")
    np.testing.assert_allclose(seq.gt[0, 2:6], [1.5, 4, 6.5, 12])  # x scaled by 32/64, y by 32/32
