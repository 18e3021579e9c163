"""Video classification (seed example 7): motion classes from clips with a (2+1)D CNN.

``task.py`` holds the task (and clip helpers reused by action_recognition), ``model.py``
the network, ``readers.py`` the UCF101-style folder reader (PyAV).
"""

from tasks_lib.tasks.video_classification.model import R2Plus1D
from tasks_lib.tasks.video_classification.readers import read_clip, read_video_folder
from tasks_lib.tasks.video_classification.task import VideoClassification

__all__ = ["R2Plus1D", "VideoClassification", "read_clip", "read_video_folder"]
