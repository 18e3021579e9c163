"""Video classification (seed example 7): motion classes from clips with a (2+1)D CNN.

``task.py`` holds the task (its generated motion clips and profiles); the base, the network
and the UCF101-style reader are the video family's (``tasks_lib/families/video/``).
"""

from tasks_lib.tasks.video_classification.task import VideoClassification

__all__ = ["VideoClassification"]
