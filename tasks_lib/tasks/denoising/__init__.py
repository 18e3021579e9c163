"""Image denoising (seed example 24): a DnCNN-style residual network against scikit-image's
classical denoisers (total variation, bilateral, non-local means; wavelet when PyWavelets is
installed), on Gaussian noise of sigma 25
(or blind, sigma 0-50). Shared data/metric/serving helpers: ``tasks_lib/core/photos.py``.
"""

from tasks_lib.tasks.denoising.model import DnCNN
from tasks_lib.tasks.denoising.task import Denoising

__all__ = ["DnCNN", "Denoising"]
