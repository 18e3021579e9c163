"""Image classification (seed examples 1 and 28): a residual CNN sized to the input.

Sources: scikit-learn's digits (default, offline), CIFAR-10 in its python-batch
layout (local folder or URL), or any ImageFolder tree (``class_name/*.png|jpg``).

``task.py`` holds the task, ``readers.py`` the data layouts; the network (``ResidualCNN``) is ``core/backbones.py``.
"""

from tasks_lib.core.backbones import ResidualCNN
from tasks_lib.tasks.image_classification.readers import read_cifar10, read_image_folder
from tasks_lib.tasks.image_classification.task import ImageClassification

__all__ = ["ImageClassification", "ResidualCNN", "read_cifar10", "read_image_folder"]
