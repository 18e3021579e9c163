"""Reader of COCO keypoint annotations (``person_keypoints_*.json`` + the image folder).

Each annotated person becomes one sample: its box widened by 25 % to a square, cropped
(padded with the border colour where it leaves the image), resized to ``size``; the
keypoints follow the same transform. Visibility 0 (not labelled) joints are kept with v=0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tasks_lib.core.coco import load_coco


def crop_person(img: Image.Image, box: list[float], size: int, pad: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Square crop around ``box`` (x, y, w, h) resized to ``size``; returns (uint8 array, [x0, y0, scale])."""
    x, y, w, h = box
    side = max(w, h, 1.0) * pad
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = cx - side / 2, cy - side / 2
    scale = size / side
    out = img.convert("RGB").transform(
        (size, size), Image.Transform.AFFINE, (1 / scale, 0, x0, 0, 1 / scale, y0), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.uint8), np.array([x0, y0, scale])


def _person_sample(photo: Image.Image, ann: dict, n_joints: int, size: int) -> tuple:
    """(crop, keypoints x/y/visible in crop pixels, box x1y1x2y2 in crop pixels, annotation id) of one person."""
    crop, (x0, y0, scale) = crop_person(photo, ann["bbox"], size)
    k = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    if len(k) != n_joints:
        raise ValueError(f"annotation {ann['id']}: {len(k)} keypoints, the category names {n_joints}")
    vis = (k[:, 2] > 0).astype(np.float64)
    # COCO keypoints are pixel indices; +0.5 gives the pixel centre in continuous coordinates
    xy = np.stack([(k[:, 0] + 0.5 - x0) * scale, (k[:, 1] + 0.5 - y0) * scale], 1)
    bx, by, bw, bh = ann["bbox"]
    box = np.array([(bx - x0) * scale, (by - y0) * scale, (bx + bw - x0) * scale, (by + bh - y0) * scale])
    return crop, np.concatenate([xy, vis[:, None]], 1), box, int(ann["id"])


def read_coco_keypoints(annotation_file: Path, image_dir: Path, size: int) -> dict:
    """All non-crowd person annotations with at least one labelled keypoint, as fixed-size crops.

    Read through ``pycocotools.coco.COCO``; samples keep the annotations' file order, and each
    photo is opened once, one at a time (with all its people), so memory holds one decoded photo.
    """
    coco = load_coco(annotation_file)
    cats = [c for c in coco.loadCats(coco.getCatIds()) if c.get("keypoints")]
    if not cats:
        raise ValueError(f"{annotation_file}: no category with 'keypoints' names (not a COCO keypoints file?)")
    names = list(cats[0]["keypoints"])
    usable = [
        ann
        for ann in coco.dataset["annotations"]
        if not ann.get("iscrowd", 0) and ann.get("num_keypoints", 1) != 0 and ann["category_id"] == cats[0]["id"]
    ]
    by_image: dict[int, list[int]] = {}
    for i, ann in enumerate(usable):
        by_image.setdefault(ann["image_id"], []).append(i)
    samples: list[tuple] = [()] * len(usable)
    for image_id, positions in by_image.items():
        im = coco.imgs[image_id]
        with Image.open(Path(image_dir) / im["file_name"]) as photo:
            photo = photo.convert("RGB")
        for i in positions:
            samples[i] = (*_person_sample(photo, usable[i], len(names), size), str(im["file_name"]))
    if not samples:
        raise ValueError(f"{annotation_file}: no usable person annotations")
    crops, kps, boxes, ids, files = (list(column) for column in zip(*samples, strict=True))
    return {
        "images": np.stack(crops),
        "keypoints": np.stack(kps),
        "boxes": np.stack(boxes),
        "joints": names,
        "skeleton": [list(map(int, e)) for e in cats[0].get("skeleton", [])],
        "ann_ids": ids,
        "image_files": files,  # the photo each crop comes from: its people go to one split together
    }
