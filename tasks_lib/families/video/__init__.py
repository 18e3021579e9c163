"""The video family (video_classification, action_recognition): ``base.py`` the shared task
base and clip helpers, ``model.py`` the (2+1)D CNN, ``readers.py`` the UCF101-style folder reader."""

from tasks_lib.families.video.base import ClipData, VideoConfig, VideoData, VideoFamily
from tasks_lib.families.video.model import R2Plus1D
from tasks_lib.families.video.readers import read_clip, read_video_folder

__all__ = ["ClipData", "R2Plus1D", "VideoConfig", "VideoData", "VideoFamily", "read_clip", "read_video_folder"]
