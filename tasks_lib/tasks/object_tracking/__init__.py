"""Object tracking (seed example 13): object_detection's FCOS + a Kalman / Hungarian tracker.

``task.py`` holds the task, ``sequences.py`` the generator, ``mot.py`` the MOTChallenge reader
and writer, ``tracker.py`` the tracker and the greedy baseline, ``metrics.py`` MOTA / IDF1 / ID
switches (py-motmetrics), ``figures.py`` the review figure.
"""

from tasks_lib.tasks.object_tracking.task import ObjectTracking

__all__ = ["ObjectTracking"]
