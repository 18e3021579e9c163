"""Single-image super-resolution (seed examples 22, 25): a residual ESPCN on the Y channel, x2 or x3.

``task.py`` holds the task, ``model.py`` the network; data, metrics and serving helpers
shared with the other restoration tasks live in ``tasks_lib/core/photos.py``.
"""

from tasks_lib.tasks.super_resolution.model import ResidualESPCN
from tasks_lib.tasks.super_resolution.task import SuperResolution

__all__ = ["ResidualESPCN", "SuperResolution"]
