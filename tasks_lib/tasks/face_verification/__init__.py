"""Face verification (seed example 9): ArcFace embeddings, tested on unseen identities.

``task.py`` the task, ``model.py`` the embedding network and ArcFace loss, ``faces.py``
the procedural identity renderer (default data), ``readers.py`` the LFW layout,
``metrics.py`` ROC AUC, EER and threshold accuracy.
"""

from tasks_lib.tasks.face_verification.readers import read_lfw, read_lfw_pairs
from tasks_lib.tasks.face_verification.task import FaceVerification

__all__ = ["FaceVerification", "read_lfw", "read_lfw_pairs"]
