"""Action recognition (seed example 20): animated figures' actions from frames, (2+1)D CNN.

Reuses video_classification's model, training, serving and review code; only the data differ.
"""

from tasks_lib.tasks.action_recognition.task import ActionRecognition

__all__ = ["ActionRecognition"]
