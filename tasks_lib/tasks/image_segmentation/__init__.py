"""Image segmentation (seed example 12): foreground masks of generated scenes with a U-Net.

``task.py`` holds the binary task and its Otsu baseline; the shared base, the U-Net and the
Pascal VOC reader are the segmentation family's (``tasks_lib/families/segmentation/``).
"""

from tasks_lib.tasks.image_segmentation.task import ImageSegmentation, otsu_masks

__all__ = ["ImageSegmentation", "otsu_masks"]
