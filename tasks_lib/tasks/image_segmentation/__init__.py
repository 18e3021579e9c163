"""Image segmentation (seed example 12): foreground masks of generated scenes with a U-Net.

``task.py`` holds the shared segmentation base (also used by semantic_segmentation)
and the binary task, ``model.py`` the U-Net, ``readers.py`` the Pascal VOC layout.
The scenes themselves come from ``tasks_lib.core.scenes``.
"""

from tasks_lib.tasks.image_segmentation.model import UNet
from tasks_lib.tasks.image_segmentation.readers import read_voc
from tasks_lib.tasks.image_segmentation.task import ImageSegmentation, SceneSegmentation

__all__ = ["ImageSegmentation", "SceneSegmentation", "UNet", "read_voc"]
