"""Face / non-face recognition (seed example 2): a small CNN against logistic regression on HOG
features, on scikit-image's ``lfw_subset`` (offline) or an ImageFolder tree ``face/`` + ``non_face/``.
"""

from tasks_lib.tasks.face_recognition.model import FaceCNN
from tasks_lib.tasks.face_recognition.task import FaceRecognition, read_face_folder

__all__ = ["FaceCNN", "FaceRecognition", "read_face_folder"]
