"""Object detection (seed example 4): FCOS on a small pyramid backbone, trained from scratch.

``task.py`` holds the task, ``coco.py`` the instances-JSON reader, ``baseline.py`` the
colour-blob detector, ``figures.py`` the review figure. Shared with object_tracking, in core:
the network (``core/detector.py``), COCO mAP by pycocotools (``core/coco.py``), box IoU / NMS
(``core/boxes.py``).
"""

from tasks_lib.tasks.object_detection.coco import read_coco
from tasks_lib.tasks.object_detection.task import ObjectDetection

__all__ = ["ObjectDetection", "read_coco"]
