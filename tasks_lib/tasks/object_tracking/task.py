"""Multi-object tracking (seed example 13): the platform's detector + a Kalman / Hungarian tracker.

Sources: generated sequences (default, offline; see ``sequences.py``: objects that move, cross
and occlude on real textures) or any MOTChallenge folder (``--path``: sequence folders with
``img1/``, ``gt/gt.txt`` and ``seqinfo.ini``). Either way ``prepare`` writes the MOTChallenge
layout, ``data/object_tracking/SPLIT/SEQ/...``, read back by the same reader; sequences, never
frames, are split, so no sequence is in two splits.

Model: object_detection's FCOS (``build_fcos``), initialised in ``fit`` from
``detector: models:/object_detection@champion`` (pinned by the flow as lineage) and fine-tuned
briefly on the training sequences' frames, so it sees occlusions and objects at the border;
with no detector given (smoke) it trains from scratch. The tracker (``tracker.py``) is plain
numpy and holds no weights: its parameters are config fields, kept in the bundle.
Baseline: greedy IoU linking of the same detections (``evaluate`` leaves them on the data).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from tasks_lib.core import engine, expect, refs
from tasks_lib.core.coco import coco_map
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, hash_split, read_info, sha1_bytes, split_sizes
from tasks_lib.core.detector import build_fcos, detect, to_tensors
from tasks_lib.core.images import frames_from_array
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer
from tasks_lib.core.synthetic import KINDS
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.object_tracking.metrics import mot_metrics
from tasks_lib.tasks.object_tracking.mot import Sequence, find_sequences, read_sequence, write_sequence
from tasks_lib.tasks.object_tracking.sequences import generate_sequence
from tasks_lib.tasks.object_tracking.tracker import Track, TrackerParams, greedy_iou_tracks, track

UPSTREAM = "object_detection"
MAX_FRAMES = 120  # frames per request; longer clips: split them client-side
MAX_SIDE = 1024
MIN_SIDE = 16


@dataclass(frozen=True)
class TrackingData(DataConfig):
    image_size: int = 128  # frame side (the detector's input); folder sequences are resized to it
    n_sequences: int = 64  # generated sequences over all splits
    n_frames: int = 32  # generated: frames per sequence
    fps: float = 10.0  # generated: frame rate written to seqinfo.ini
    min_objects: int = 2  # generated: objects per sequence
    max_objects: int = 5
    min_object: float = 0.15  # generated object side, fraction of image_size (log-uniform)
    max_object: float = 0.3
    min_speed: float = 0.008  # generated speed, fraction of image_size per frame
    max_speed: float = 0.025
    jitter: float = 0.5  # generated: per-frame position noise, pixels
    min_visible: float = 0.3  # less visible than this: an ignored ground-truth box (MOT's conf = 0)
    scene_seed: int = 0


@dataclass(frozen=True)
class TrackingConfig(TaskConfig):
    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-3  # fine-tuning a trained detector: lower than object_detection's 3e-3
    weight_decay: float = 1e-4
    # the detector: a models:/ reference (pinned by the flow, recorded as tag upstream.detector) or a
    # local bundle folder; "" = train the detector from scratch (the smoke fallback)
    detector: str = ""
    # the detector's architecture, that of object_detection's profile of the same name (checked in fit)
    width: int = 16
    fpn_channels: int = 32
    head_convs: int = 1
    # the tracker (tracker.TrackerParams)
    det_score: float = 0.4
    nms_iou: float = 0.5
    iou_gate: float = 0.2
    min_hits: int = 3
    max_age: int = 6
    fill_gaps: int = 6  # whole clips are tracked offline: bridge a track's gaps of up to this many frames
    pos_noise: float = 0.05
    vel_noise: float = 0.01
    meas_noise: float = 0.05


class TrackingModel(nn.Module):
    """The FCOS detector (the only weights) and the tracker's parameters."""

    def __init__(self, detector: nn.Module, params: TrackerParams):
        super().__init__()
        self.detector = detector
        self.params = params


@dataclass
class TrackingSet:
    seqs: dict[str, list[Sequence]]
    info: dict[str, Any]
    detections: dict[str, list[list[tuple]]] = field(default_factory=dict)  # per split, left by evaluate
    selection: dict[str, tuple[float, float]] = field(default_factory=dict)  # (det_score, nms_iou) evaluate used


def tracker_params(cfg: TrackingConfig) -> TrackerParams:
    return TrackerParams(**{f.name: getattr(cfg, f.name) for f in fields(TrackerParams)})


def frames_from_request(request: Request) -> tuple[np.ndarray, tuple[int, int]]:
    """The JSON ``array`` (T x H x W x 3 or T x H x W, values 0-255) as uint8 and its (H, W), or a 4xx."""
    frames = frames_from_array(request.get("array"), 2, MAX_FRAMES, MIN_SIDE, MAX_SIDE)
    return frames, (int(frames.shape[1]), int(frames.shape[2]))


class TrackFrame(Answer):
    frame: int = Field(description="index in the request, 0-based")
    box: list[float] = Field(description="x1, y1, x2, y2")
    score: float


class TrackAnswer(Answer):
    id: int
    frames: list[TrackFrame]


class TrackingAnswer(Answer):
    tracks: list[TrackAnswer]


@register
class ObjectTracking(Task):
    """Tracks (id, box per frame) of every object in a clip (seed example 13)."""

    name = "object_tracking"
    seed_sections = (13,)
    metric = "mota"
    request_fields = ("array",)
    answer_model = TrackingAnswer
    batchable = False  # clips differ in length and frame size
    config_cls = TrackingConfig
    data_config_cls = TrackingData
    default_source = "sequences"
    profiles = {
        "smoke": {
            # 20, not fewer: sequences are hash-bucketed whole, and val/test need one each
            "data": {"n_sequences": 20, "n_frames": 8, "image_size": 64, "max_objects": 3},
            "train": {"epochs": 1, "batch_size": 8, "width": 8, "fpn_channels": 32, "head_convs": 1, "lr": 3e-3},
        },
        "quick": {"data": {"n_sequences": 64}, "train": {"epochs": 6, "detector": f"models:/{UPSTREAM}@champion"}},
        "full": {
            "data": {"n_sequences": 400, "n_frames": 40},
            "train": {
                "epochs": 8,
                "batch_size": 32,
                "width": 32,
                "fpn_channels": 128,
                "head_convs": 4,
                "detector": f"models:/{UPSTREAM}@champion",
            },
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "sequences": DataSource(
                "sequences",
                "generated sequences of moving, crossing, occluding shapes and digits on scikit-image textures",
                "generator",
            ),
            "mot": DataSource(
                "mot", "a MOTChallenge folder at --path (SEQ/img1, SEQ/gt/gt.txt, seqinfo.ini)", "folder", True
            ),
        }

    # -- data -------------------------------------------------------------------
    def _read(self, dcfg: TrackingData) -> tuple[list[Sequence], list[str], list[str | None]]:
        """(sequences, classes, the split each sequence's source folder ships it in: 'train', 'test' or None)."""
        if dcfg.source == "sequences":
            rng = np.random.default_rng(dcfg.scene_seed)
            seqs = [
                generate_sequence(
                    rng,
                    f"SYN-{i:03d}",
                    dcfg.image_size,
                    dcfg.n_frames,
                    dcfg.min_objects,
                    dcfg.max_objects,
                    dcfg.min_object,
                    dcfg.max_object,
                    dcfg.min_speed,
                    dcfg.max_speed,
                    dcfg.jitter,
                    dcfg.min_visible,
                    dcfg.fps,
                )
                for i in range(dcfg.n_sequences)
            ]
            return seqs, list(KINDS), [None] * len(seqs)
        if dcfg.source == "mot":
            if not dcfg.path:
                raise ValueError("source 'mot' needs --path: a folder of MOTChallenge sequences")
            seqs, shipped = [], []
            for d in find_sequences(Path(dcfg.path)):
                s = read_sequence(d, dcfg.image_size)
                if not len(s.gt):
                    continue  # a test sequence without ground truth
                s.gt[:, 7] = np.where(s.gt[:, 6] > 0, 1, 0)  # one class, "object"; conf 0 rows are ignore regions
                s.det = None
                s.name = d.name  # the folder names the sequence in the MOT layout (seqinfo names may repeat)
                seqs.append(s)
                parts = d.relative_to(dcfg.path).parts[:-1]
                shipped.append("test" if "test" in parts else "train" if "train" in parts else None)
            names = [s.name for s in seqs]
            if len(set(names)) < len(names):
                dup = sorted({n for n in names if names.count(n) > 1})
                raise ValueError(f"{dcfg.path}: sequence folders {dup} occur twice (with gt/gt.txt); keep one of each")
            if len(seqs) < 3:
                raise ValueError(
                    f"{dcfg.path}: {len(seqs)} sequence(s) with gt/gt.txt; need at least 3 (train/val/test)"
                )
            return seqs, ["object"], shipped
        raise ValueError(f"unknown source {dcfg.source}")

    def prepare(self, dcfg: TrackingData, out: Path) -> Prepared:
        seqs, classes, shipped = self._read(dcfg)
        if dcfg.max_samples:
            seqs, shipped = seqs[: dcfg.max_samples], shipped[: dcfg.max_samples]
        # A whole sequence goes to one split (its frames are near duplicates), keyed by the hash of its
        # frames: stable however many sequences there are, and MOT17's copies of one sequence (one per
        # detector) land together. MOT's own train/test split wins where both halves carry gt.txt.
        keys = np.array([sha1_bytes(q.frames.tobytes()) for q in seqs])
        if {"train", "test"} <= set(shipped):
            split = np.array(["test" if sh == "test" else "train" for sh in shipped], dtype=object)
            tr = np.flatnonzero(split == "train")
            split[tr] = hash_split(keys[tr], dcfg.val_fraction, 0.0, dcfg.split_seed)
        else:
            split = hash_split(keys, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
        s = dcfg.image_size
        rows = []
        for seq, sp in zip(seqs, split, strict=True):
            write_sequence(Path(out) / sp / seq.name, seq)
            rows.append(self._manifest_rows(seq, sp, s))
        manifest = add_leak_column(pd.concat(rows, ignore_index=True), key="seq_sha1")
        per_name = manifest.groupby("sequence")["split"].transform("nunique")
        manifest = manifest.assign(splits_with_same_name=per_name.astype(int))
        info = {
            "source": dcfg.source,
            "classes": classes,
            "image_size": s,
            "n_frames": dcfg.n_frames if dcfg.source == "sequences" else None,
            "n_sequences": split_sizes(split),
            "n_frames_per_split": {
                sp: int(sum(len(q.frames) for q, x in zip(seqs, split, strict=True) if x == sp)) for sp in SPLITS
            },
            "max_objects": int(manifest["n_boxes"].max()),
        }
        return Prepared(manifest=manifest, info=info)

    @staticmethod
    def _manifest_rows(seq: Sequence, sp: str, s: int) -> pd.DataFrame:
        """One row per frame: what GX can check cheaply about its boxes and ids."""
        seq_sha1 = sha1_bytes(seq.frames.tobytes())
        n = len(seq.frames)
        missing = (seq.declared_length if seq.declared_length is not None else n) - n
        outside = int(((seq.gt[:, 0] < 1) | (seq.gt[:, 0] > n)).sum())
        recs, prev = [], {}
        for t in range(1, len(seq.frames) + 1):
            rows = seq.boxes_in(t)
            care = rows[rows[:, 6] > 0]
            ids = rows[:, 1].astype(int)
            centres = {int(r[1]): ((r[2] + r[4]) / 2, (r[3] + r[5]) / 2) for r in rows}
            jumps = [np.hypot(c[0] - prev[i][0], c[1] - prev[i][1]) for i, c in centres.items() if i in prev]
            prev = centres

            def stat(fn, default=np.nan, rows=rows):
                return float(fn(rows)) if len(rows) else default

            recs.append(
                {
                    "sample_id": f"{sp}/{seq.name}/{t:06d}",
                    "split": sp,
                    "sequence": seq.name,
                    "frame": t,
                    "seq_length": n,
                    "missing_frames": missing,  # seqinfo.ini's seqLength - frames in img1/
                    "gt_rows_outside": outside,  # gt.txt rows whose frame is not in the sequence
                    "fps": seq.fps,
                    "height": seq.frames.shape[1],
                    "width": seq.frames.shape[2],
                    "n_boxes": len(care),
                    "n_ignored": len(rows) - len(care),
                    "repeated_ids": len(ids) - len(np.unique(ids)),
                    "max_id_jump": round(max(jumps), 3) if jumps else 0.0,
                    "min_class": stat(lambda r: r[:, 7].min(), 1.0, care),
                    "max_class": stat(lambda r: r[:, 7].max(), 1.0, care),
                    "box_x_min": stat(lambda r: r[:, 2].min()),
                    "box_y_min": stat(lambda r: r[:, 3].min()),
                    "box_x_max": stat(lambda r: r[:, 4].max()),
                    "box_y_max": stat(lambda r: r[:, 5].max()),
                    "min_box_width": stat(lambda r: (r[:, 4] - r[:, 2]).min()),
                    "min_box_height": stat(lambda r: (r[:, 5] - r[:, 3]).min()),
                    "seq_sha1": seq_sha1,  # the key of the split
                    "sha1": sha1_bytes(seq.frames[t - 1].tobytes()),  # this frame as stored
                }
            )
        return pd.DataFrame(recs)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        s, n = info["image_size"], len(info["classes"])

        def between(col: str, lo: float, hi: float, why: str, **kw) -> Expectation:
            return Expectation(
                "expect_column_values_to_be_between", {"column": col, "min_value": lo, "max_value": hi, **kw}, why
            )

        exp = [
            expect.min_rows(20, "too few frames to train on"),
            expect.all_splits(),
            *expect.frame_size(s, s, "one frame size"),
            between("fps", 1, 240, "a plausible frame rate (seqinfo.ini frameRate)"),
            between("frame", 1, 100000, "frames are numbered from 1"),
            between("seq_length", 2, 100000, "a sequence has at least two frames to track over"),
            between("n_boxes", 0, 200, "at most 200 objects in a frame"),
            expect.in_set("missing_frames", [0], "every frame seqinfo.ini announces (seqLength) is in img1/"),
            expect.in_set("gt_rows_outside", [0], "every gt.txt row belongs to a frame of the sequence"),
            between("min_class", 1, n, f"classes index the {n} classes (1-based, as in MOT)"),
            between("max_class", 1, n, f"classes index the {n} classes (1-based, as in MOT)"),
            expect.in_set("repeated_ids", [0], "one box per (frame, id): an id twice in a frame breaks tracks"),
            between("max_id_jump", 0, 0.5 * s, "an id does not jump across the image between consecutive frames"),
            expect.no_leak("no sequence in two splits (test leakage)"),
            expect.in_set("splits_with_same_name", [1], "no sequence name in two splits"),
        ]
        if info.get("n_frames"):
            exp.append(
                expect.in_set("seq_length", [info["n_frames"]], "every generated sequence has its configured length")
            )
        for col in ("box_x_min", "box_y_min", "box_x_max", "box_y_max"):
            exp.append(between(col, 0, s, "boxes lie inside the image"))
        for col in ("min_box_width", "min_box_height"):
            exp.append(between(col, 0, s, "every box has a positive area", strict_min=True))
        return exp

    def load(self, data_dir: Path) -> TrackingSet:
        data_dir = Path(data_dir)
        seqs = {}
        for sp in SPLITS:
            root = data_dir / sp
            seqs[sp] = [read_sequence(d) for d in sorted(root.iterdir()) if d.is_dir()] if root.is_dir() else []
        return TrackingSet(seqs, read_info(data_dir))

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: TrackingConfig, info: dict[str, Any]) -> nn.Module:
        s = info["image_size"]
        detector = build_fcos(
            len(info["classes"]), s, cfg.width, cfg.fpn_channels, cfg.head_convs, 3.0 * s / 128, detections=50
        )  # object_detection's build_model, so its champion's weights fit
        return TrackingModel(detector, tracker_params(cfg))

    def load_detector(self, model: TrackingModel, ref: str) -> None:
        """Copy the upstream detector's weights; every backbone tensor must fit (the class head may not)."""
        up = refs.load(ref)
        if up.task.name != UPSTREAM:
            raise ValueError(f"detector '{ref}' is a '{up.task.name}' model; expected '{UPSTREAM}'")
        theirs, ours = up.module.state_dict(), model.detector.state_dict()
        usable = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
        missing = sorted(k for k in ours if k.startswith("backbone.") and k not in usable)
        if missing or up.info["image_size"] != model.detector.transform.min_size[0]:
            c = up.cfg.to_dict()
            raise ValueError(
                f"detector '{ref}' (image_size {up.info['image_size']}, width={c.get('width')}, "
                f"fpn_channels={c.get('fpn_channels')}) does not fit this model: mismatched {missing[:4]}; "
                "set width / fpn_channels / head_convs and the data's image_size to the upstream's"
            )
        model.detector.load_state_dict(usable, strict=False)

    def training(self, model: TrackingModel, data: TrackingSet, cfg: TrackingConfig) -> Recipe:
        if cfg.detector:
            self.load_detector(model, cfg.detector)
        device = engine.pick_device()
        x = np.concatenate([q.frames for q in data.seqs["train"]])
        targets = []
        for q in data.seqs["train"]:
            for t in range(1, len(q.frames) + 1):
                r = q.boxes_in(t)
                r = r[(r[:, 6] > 0) & (r[:, 4] > r[:, 2]) & (r[:, 5] > r[:, 3])]
                targets.append(
                    (r[:, 2:6].astype(np.float32), r[:, 7].astype(np.int64))
                )  # MOT class = torchvision label
        n = len(x)
        n_batches = max(1, n // cfg.batch_size)

        def batches(gen: torch.Generator):
            perm = torch.randperm(n, generator=gen).numpy()
            for i in range(n_batches):
                idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                tg = [
                    {"boxes": torch.from_numpy(targets[j][0]), "labels": torch.from_numpy(targets[j][1])} for j in idx
                ]
                yield to_tensors(x[idx], device), tg

        def step(batch) -> dict[str, torch.Tensor]:
            losses = model.detector(*batch)
            return {"loss": sum(losses.values()), **losses}

        return Recipe(
            batches,
            step,
            n_batches,
            schedule=engine.one_cycle(0.2),
            validate=lambda: self.evaluate(model, data, "val"),
            parallel_module=model.detector,  # the step trains the detector through its own forward
        )

    # -- evaluation -------------------------------------------------------------
    def detect(self, model: TrackingModel, frames: np.ndarray) -> list[tuple]:
        """(boxes, scores, labels 0-based) per frame, in the frames' pixels."""
        return detect(model.detector, frames)

    def _score(self, data: TrackingSet, split: str, tracks: list[list[Track]]) -> dict[str, float]:
        seqs = data.seqs[split]
        return mot_metrics([(q.gt, tr, len(q.frames)) for q, tr in zip(seqs, tracks, strict=True)])

    def _det_map(self, data: TrackingSet, split: str) -> dict[str, float]:
        preds, targets = [], []
        for q, dets in zip(data.seqs[split], data.detections[split], strict=True):
            for t, d in enumerate(dets, start=1):
                r = q.boxes_in(t)
                r = r[r[:, 6] > 0]
                preds.append(d)
                targets.append((r[:, 2:6], r[:, 7].astype(np.int64) - 1))
        m = coco_map(preds, targets, len(data.info["classes"]))
        return {"det_map_50": m["map_50"], "det_map": m["map"]}

    def evaluate(self, model: TrackingModel, data: TrackingSet, split: str = "test") -> dict[str, float]:
        """MOT metrics of the tracker on the split's sequences (+ the detector's mAP on their frames).

        The detections are left on ``data`` for :meth:`baseline`, which links the same ones greedily.
        """
        data.detections[split] = [self.detect(model, q.frames) for q in data.seqs[split]]
        data.selection[split] = (model.params.det_score, model.params.nms_iou)
        tracks = [track([(b, s) for b, s, _ in dets], model.params) for dets in data.detections[split]]
        return self._score(data, split, tracks) | self._det_map(data, split)

    def baseline(self, data: TrackingSet, split: str = "test") -> dict[str, float]:
        """Greedy IoU linking (no motion model, no memory) of the detections ``evaluate`` made on this split,
        selected as the tracker selects them (score threshold, class-agnostic NMS)."""
        if split not in data.detections:
            raise ValueError(
                "the baseline links the detections of the evaluated model: call evaluate(model, data, split) first"
            )
        thr, nms_iou = data.selection[split]
        tracks = [greedy_iou_tracks([(b, s) for b, s, _ in d], thr, nms_iou) for d in data.detections[split]]
        return self._score(data, split, tracks) | self._det_map(data, split)

    def examples(self, model: TrackingModel, data: TrackingSet) -> dict[str, Any]:
        from tasks_lib.tasks.object_tracking.figures import trails_figure

        m = self.evaluate(model, data, "test")
        b = self.baseline(data, "test")
        seqs = data.seqs["test"][:3]
        tracks = [track([(bx, s) for bx, s, _ in dets], model.params) for dets in data.detections["test"][:3]]
        p = model.params
        greedy = [
            greedy_iou_tracks([(bx, s) for bx, s, _ in d], p.det_score, p.nms_iou) for d in data.detections["test"][:3]
        ]
        keys = ("mota", "idf1", "id_switches", "motp", "precision", "recall", "false_positives", "misses", "det_map_50")
        lines = ["| metric (test) | Kalman + Hungarian | greedy IoU (same detections) |", "|---|---|---|"]
        lines += [f"| {k} | {m[k]:.4g} | {b[k]:.4g} |" for k in keys]
        return {
            "test_tracks.png": trails_figure(seqs, tracks, "Kalman + Hungarian tracker"),
            "test_tracks_greedy_baseline.png": trails_figure(seqs, greedy, "greedy IoU baseline"),
            "tracking_metrics.md": "\n".join(lines) + "\n",
        }

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: TrackingSet, n: int) -> list[Request]:
        seqs = data.seqs["test"] or data.seqs["val"]
        return [{"array": seqs[i % len(seqs)].frames[i // len(seqs) : 16 + i // len(seqs)].tolist()} for i in range(n)]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        ok = np.zeros((4, 16, 16, 3), dtype=int)
        nan = ok.tolist()
        nan[1][2][3][0] = None  # JSON null: NaN once decoded
        high = ok.copy()
        high[2, 3, 4, 1] = 300
        return [
            ({"array": ok[:1].tolist()}, 422, "at least 2 frames"),
            ({"array": ok[0].tolist()}, 422, "shape"),  # one RGB image, not a clip
            ({"array": ok[:, :, :, :2].tolist()}, 422, "shape"),
            ({"array": np.zeros((MAX_FRAMES + 1, 16, 16), dtype=int).tolist()}, 413, "at most"),
            ({"array": np.zeros((3, 8, 8, 3), dtype=int).tolist()}, 422, "too small"),
            ({"array": nan}, 422, "NaN"),
            ({"array": high.tolist()}, 422, "0-255"),
            ({"array": [[1, 2], [3]]}, 422, "rectangular"),
            ({"array": [[[[1, 2, 3, 4, 5]]]]}, 422, "shape"),
            ({"image": b"\x89PNG not really"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """One item: the clip resized to the detector's square input, and its own frame size."""
        from PIL import Image

        frames, (h, w) = frames_from_request(request)
        s = loaded.info["image_size"]
        if (h, w) != (s, s):
            frames = np.stack(
                [np.asarray(Image.fromarray(f).resize((s, s), Image.Resampling.BILINEAR)) for f in frames]
            )
        return [(frames, (h, w))]

    def forward(self, loaded: LoadedModel, batch: list) -> list[list[Track]]:
        s = loaded.info["image_size"]
        out = []
        for frames, (h, w) in batch:
            dets = self.detect(loaded.module, frames)
            tracks = track([(b, sc) for b, sc, _ in dets], loaded.module.params)
            scale = np.array([w / s, h / s, w / s, h / s])
            out.append([(tid, [(t, box * scale, sc) for t, box, sc in fr]) for tid, fr in tracks])
        return out

    def postprocess(self, loaded: LoadedModel, output: list[Track]) -> dict[str, Any]:
        """``{"tracks": [{"id", "frames": [{"frame" (index in the request, 0-based), "box" x1y1x2y2, "score"}]}]}``."""
        return {
            "tracks": [
                {
                    "id": int(tid),
                    "frames": [
                        {"frame": int(t), "box": [round(float(v), 2) for v in box], "score": round(float(sc), 4)}
                        for t, box, sc in frames
                    ],
                }
                for tid, frames in output
            ]
        }
