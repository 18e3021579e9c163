"""Object detection (seed example 4): FCOS on a small pyramid backbone, trained from scratch.

``task.py`` holds the task, ``model.py`` the network, ``coco.py`` the COCO mAP and the
instances-JSON reader, ``baseline.py`` the colour-blob detector, ``figures.py`` the review figure.
"""

from tasks_lib.tasks.object_detection.coco import box_iou, coco_map, read_coco
from tasks_lib.tasks.object_detection.task import ObjectDetection

__all__ = ["ObjectDetection", "box_iou", "coco_map", "read_coco"]
