"""Task modules. Importing this package registers every built-in task."""

from tasks_lib.tasks import image_classification  # noqa: F401
