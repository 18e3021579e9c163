"""Text classification (seed examples 10 and 29): AG News topics with a fastText-style model.

``task.py`` holds the task, ``model.py`` the network, ``readers.py`` the AG News layout.
"""

from tasks_lib.tasks.text_classification.model import FastText
from tasks_lib.tasks.text_classification.readers import read_ag_news
from tasks_lib.tasks.text_classification.task import TextClassification

__all__ = ["FastText", "TextClassification", "read_ag_news"]
