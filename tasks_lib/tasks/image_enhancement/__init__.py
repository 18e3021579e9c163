"""Low-light image enhancement (seed example 17): a small U-Net with a global-context branch,
against scikit-image's classical enhancement (gamma correction, CLAHE, histogram equalisation).
Data: the bundled photos under a documented low-light degradation, or LOL-style ``low/`` +
``high/`` pairs. Shared helpers: ``tasks_lib/core/photos.py``.
"""

from tasks_lib.tasks.image_enhancement.model import ContextUNet
from tasks_lib.tasks.image_enhancement.readers import read_pair_folder
from tasks_lib.tasks.image_enhancement.task import ImageEnhancement

__all__ = ["ContextUNet", "ImageEnhancement", "read_pair_folder"]
