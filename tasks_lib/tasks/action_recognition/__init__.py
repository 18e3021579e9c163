"""Action recognition (seed example 20): animated figures' actions from frames, (2+1)D CNN.

Subclasses the video family (``tasks_lib.families.video``: model, training, serving, review);
only the generated data differ from video_classification.
"""

from tasks_lib.tasks.action_recognition.task import ActionRecognition

__all__ = ["ActionRecognition"]
