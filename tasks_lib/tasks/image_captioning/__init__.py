"""Image captioning (seed example 5): CNN encoder + Transformer decoder, beam search at inference.

``task.py`` holds the task, ``scenes.py`` the generated compositional scenes, ``model.py`` the
network and its decoding, ``metrics.py`` BLEU / CIDEr-D, ``readers.py`` the COCO captions and
Flickr8k layouts, ``figures.py`` the review figure.
"""

from tasks_lib.tasks.image_captioning.metrics import caption_metrics, cider_d
from tasks_lib.tasks.image_captioning.readers import read_coco_captions, read_flickr8k
from tasks_lib.tasks.image_captioning.task import ImageCaptioning

__all__ = ["ImageCaptioning", "caption_metrics", "cider_d", "read_coco_captions", "read_flickr8k"]
