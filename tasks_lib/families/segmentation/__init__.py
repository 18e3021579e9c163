"""The segmentation family (image_segmentation, semantic_segmentation): ``base.py`` the shared
task base, ``model.py`` the U-Net, ``readers.py`` the Pascal VOC layout. The scenes themselves
come from ``tasks_lib.core.scenes``."""

from tasks_lib.families.segmentation.base import SceneArrays, SegmentationConfig, SegmentationData, SegmentationFamily
from tasks_lib.families.segmentation.model import UNet
from tasks_lib.families.segmentation.readers import VOC_CLASSES, read_voc, voc_palette

__all__ = [
    "VOC_CLASSES",
    "SceneArrays",
    "SegmentationConfig",
    "SegmentationData",
    "SegmentationFamily",
    "UNet",
    "read_voc",
    "voc_palette",
]
