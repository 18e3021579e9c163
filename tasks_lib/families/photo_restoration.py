"""The photo restoration family: one photo in, the restored photo out, shared by
super_resolution, denoising and image_enhancement.

``PhotoRestorationFamily`` holds what the three share: the bundled photos and a folder as
sources, loading the prepared pairs (``tasks_lib.core.photos``), and serving one photo per
request, answered as a PNG. A concrete task adds its name, configs, ``prepare``,
``expectations``, ``build_model``, ``training``, ``restore`` (its model on one uint8 RGB photo),
``evaluate``, ``baseline`` and ``examples``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import nn

from tasks_lib.core import photos as ph
from tasks_lib.core.schema import PhotoAnswer
from tasks_lib.core.task import DataSource, LoadedModel, Request, Task

BUNDLED_PHOTOS = "photographs bundled with scikit-image and scikit-learn, split by photo"


def best_of(means: dict[str, dict[str, float]], reference: str, reported: Callable[[str], bool]) -> dict[str, float]:
    """A "best classical method" baseline: the metrics of the method of highest mean PSNR (the
    ``reference``, e.g. the degraded input itself, never wins), each method's ``reported``
    metrics beside it as ``<method>_<metric>``, and ``best_is_<method>`` = 1."""
    best = max((k for k in means if k != reference), key=lambda k: means[k]["psnr"])
    out = dict(means[best])
    for k, m in means.items():
        out |= {f"{k}_{q}": v for q, v in m.items() if reported(q)}
    out["best_is_" + best] = 1.0
    return out


class PhotoRestorationFamily(Task):
    """Shared base (not registered): a uint8 RGB photo in, the restored uint8 RGB photo out."""

    request_fields = ("image",)
    answer_model = PhotoAnswer
    output_media = "image/png"
    batchable = False  # photos differ in size
    default_source = "photos"
    photos_description: ClassVar[str] = BUNDLED_PHOTOS
    folder_source: ClassVar[tuple[str, str]]  # (name, description) of the source read from --path

    @abstractmethod
    def restore(self, model: nn.Module, img: np.ndarray) -> np.ndarray:
        """``model`` on one degraded uint8 HxWx3 photo: the restored uint8 photo."""

    def sources(self) -> dict[str, DataSource]:
        name, description = self.folder_source
        return {
            "photos": DataSource("photos", self.photos_description, "package"),
            name: DataSource(name, description, "folder", needs_path=True),
        }

    def load(self, data_dir: Path) -> ph.PhotoPairs:
        return ph.load_pairs(data_dir)

    # -- serving ------------------------------------------------------------------------------
    def request_examples(self, data: ph.PhotoPairs, n: int) -> list[Request]:
        return ph.photo_requests(data, n)

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return ph.photo_bad_requests(self.config_cls())

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [ph.parse_photo(request, loaded.cfg)]

    def forward(self, loaded: LoadedModel, batch: list[np.ndarray]) -> list[np.ndarray]:
        return [self.restore(loaded.module, img) for img in batch]

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        return ph.photo_answer(output)
