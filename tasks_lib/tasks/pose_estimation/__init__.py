"""Pose estimation (seed example 21): joint heatmaps of articulated figures.

``task.py`` holds the task (PCK, heatmap targets and decoding), ``model.py`` the heatmap
network, ``readers.py`` the COCO keypoints reader.
"""

from tasks_lib.tasks.pose_estimation.readers import read_coco_keypoints
from tasks_lib.tasks.pose_estimation.task import PoseEstimation, decode_heatmaps, pck

__all__ = ["PoseEstimation", "decode_heatmaps", "pck", "read_coco_keypoints"]
