"""The MOTChallenge layout: read and write ``SEQ/img1/000001.png``, ``SEQ/gt/gt.txt``, ``SEQ/det/det.txt``
and ``SEQ/seqinfo.ini``.

``gt.txt`` rows are ``frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, visibility``
(MOT16/17: ``conf`` is the "consider" flag, 0 = ignore this box; ``class`` 1-based; coordinates
1-based pixels). ``det.txt`` rows are ``frame, -1, bb_left, bb_top, bb_width, bb_height, score[, x, y, z]``.
In memory a box table is float64 ``N x 9``: frame (1-based), id, x1, y1, x2, y2 (0-based pixels,
x2/y2 exclusive), conf, class, visibility; missing trailing columns read as conf 1, class -1,
visibility 1.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COLUMNS = ("frame", "id", "x1", "y1", "x2", "y2", "conf", "cls", "vis")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_DEFAULTS = (np.nan, -1.0, np.nan, np.nan, np.nan, np.nan, 1.0, -1.0, 1.0)


@dataclass
class Sequence:
    """One sequence in memory: frames uint8 T x H x W x 3, its box table (``COLUMNS``) and frame rate."""

    name: str
    frames: np.ndarray
    gt: np.ndarray
    fps: float
    det: np.ndarray | None = None  # public detections (det.txt), when the folder has them
    declared_length: int | None = None  # seqinfo.ini's seqLength, when it says

    def boxes_in(self, frame: int, table: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``table`` (default gt) for 1-based ``frame``."""
        t = self.gt if table is None else table
        return t[t[:, 0] == frame]


def read_mot_txt(path: Path) -> np.ndarray:
    """A MOT ``gt.txt`` / ``det.txt`` as the ``COLUMNS`` table (empty file: 0 x 9)."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        values = [float(v) for v in line.replace(" ", "").split(",")]
        if len(values) < 6:
            raise ValueError(f"{path}:{n}: a MOT row needs at least 6 columns (frame,id,x,y,w,h), got {len(values)}")
        frame, tid, x, y, w, h = values[:6]
        rest = values[6:9] + list(_DEFAULTS[6 + len(values[6:9]) :])  # missing trailing columns: defaults
        rows.append([frame, tid, x - 1, y - 1, x - 1 + w, y - 1 + h, *rest])
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))


def write_mot_txt(path: Path, table: np.ndarray, det: bool = False) -> None:
    """Write a ``COLUMNS`` table in MOT format (gt: 9 columns; det: 10, with -1 for id and x, y, z)."""
    lines = []
    for r in np.asarray(table).reshape(-1, len(COLUMNS)):
        f, tid, x1, y1, x2, y2, conf, cls, vis = r
        xywh = f"{x1 + 1:.2f},{y1 + 1:.2f},{x2 - x1:.2f},{y2 - y1:.2f}"
        if det:
            lines.append(f"{int(f)},-1,{xywh},{conf:.4f},-1,-1,-1")
        else:
            lines.append(f"{int(f)},{int(tid)},{xywh},{int(conf)},{int(cls)},{vis:.4f}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def read_seqinfo(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keys are camelCase (seqLength, frameRate)
    parser.read(path)
    if "Sequence" not in parser:
        raise ValueError(f"{path}: no [Sequence] section")
    return dict(parser["Sequence"])


def write_seqinfo(seq_dir: Path, name: str, length: int, fps: float, width: int, height: int, ext: str) -> None:
    text = (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps:g}\nseqLength={length}\n"
        f"imWidth={width}\nimHeight={height}\nimExt={ext}\n"
    )
    (Path(seq_dir) / "seqinfo.ini").write_text(text)


def write_sequence(seq_dir: Path, seq: Sequence) -> None:
    """Write ``seq`` in the MOTChallenge layout (PNG frames, gt.txt, det.txt when present, seqinfo.ini)."""
    seq_dir = Path(seq_dir)
    (seq_dir / "img1").mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(seq.frames, start=1):
        Image.fromarray(frame).save(seq_dir / "img1" / f"{t:06d}.png", compress_level=6)
    write_mot_txt(seq_dir / "gt" / "gt.txt", seq.gt)
    if seq.det is not None:
        write_mot_txt(seq_dir / "det" / "det.txt", seq.det, det=True)
    h, w = seq.frames.shape[1:3]
    write_seqinfo(seq_dir, seq.name, len(seq.frames), seq.fps, w, h, ".png")


def frame_files(seq_dir: Path) -> list[Path]:
    """The frame images of a sequence in frame order (``imDir`` of seqinfo.ini, default img1)."""
    seq_dir = Path(seq_dir)
    im_dir = "img1"
    if (seq_dir / "seqinfo.ini").exists():
        im_dir = read_seqinfo(seq_dir / "seqinfo.ini").get("imDir", "img1")
    return sorted(p for p in (seq_dir / im_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_sequence(seq_dir: Path, size: int | None = None) -> Sequence:
    """One MOTChallenge sequence folder; ``size`` resizes frames to a square and scales the boxes."""
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir / "seqinfo.ini") if (seq_dir / "seqinfo.ini").exists() else {}
    files = frame_files(seq_dir)
    if not files:
        raise ValueError(f"{seq_dir}: no frames in img1/ ({', '.join(IMAGE_SUFFIXES)})")
    frames = []
    sx = sy = 1.0
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                sx, sy = size / im.size[0], size / im.size[1]
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            frames.append(np.asarray(im, dtype=np.uint8))
    gt_path, det_path = seq_dir / "gt" / "gt.txt", seq_dir / "det" / "det.txt"
    gt = read_mot_txt(gt_path) if gt_path.exists() else np.zeros((0, len(COLUMNS)))
    det = read_mot_txt(det_path) if det_path.exists() else None
    for table in (gt, det):
        if table is not None and (sx != 1.0 or sy != 1.0):
            table[:, [2, 4]] *= sx
            table[:, [3, 5]] *= sy
    fps = float(info.get("frameRate", 0) or 0)
    declared = int(info["seqLength"]) if info.get("seqLength") else None
    return Sequence(info.get("name", seq_dir.name), np.stack(frames), gt, fps, det, declared)


def find_sequences(root: Path) -> list[Path]:
    """Sequence folders (holding ``img1/``) under ``root``, at any depth, in name order."""
    root = Path(root)
    if (root / "img1").is_dir():
        return [root]
    return sorted({p.parent for p in root.rglob("img1") if p.is_dir()}, key=lambda p: str(p))
