"""Object detection (seed example 4): FCOS on a small pyramid backbone, trained from scratch.

``task.py`` holds the task, ``model.py`` the network, ``coco.py`` the instances-JSON reader,
``baseline.py`` the colour-blob detector, ``figures.py`` the review figure. The metric
(COCO mAP by pycocotools) is ``tasks_lib.core.coco.coco_map``, box IoU ``tasks_lib.core.boxes``.
"""

from tasks_lib.tasks.object_detection.coco import read_coco
from tasks_lib.tasks.object_detection.task import ObjectDetection

__all__ = ["ObjectDetection", "read_coco"]
