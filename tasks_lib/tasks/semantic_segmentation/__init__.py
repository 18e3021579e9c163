"""Semantic segmentation (seed example 19): per-class masks of generated scenes (or a
Pascal VOC folder) with the segmentation family's U-Net and shared code."""

from tasks_lib.tasks.semantic_segmentation.task import SemanticSegmentation, colour_rule_masks

__all__ = ["SemanticSegmentation", "colour_rule_masks"]
