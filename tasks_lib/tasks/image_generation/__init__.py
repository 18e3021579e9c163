"""Image generation (seed example 3): a class-conditional DCGAN on 32x32 digits, judged by a
Frechet distance in the feature space of the image_classification champion.

``model.py`` holds the generator, discriminator and frozen judge; ``task.py`` the task.
"""

from tasks_lib.tasks.image_generation.model import DCGAN, frechet_distance
from tasks_lib.tasks.image_generation.task import ImageGeneration

__all__ = ["DCGAN", "ImageGeneration", "frechet_distance"]
