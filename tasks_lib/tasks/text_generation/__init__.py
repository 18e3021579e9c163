"""Text generation (seed examples 16 and 23): a character-level GPT on Tiny Shakespeare.

``task.py`` holds the task, ``model.py`` the network, ``readers.py`` the corpus layout and
the character n-gram baselines.
"""

from tasks_lib.tasks.text_generation.model import CharGPT
from tasks_lib.tasks.text_generation.readers import CharNgram, read_tiny_shakespeare
from tasks_lib.tasks.text_generation.task import TextGeneration

__all__ = ["CharGPT", "CharNgram", "TextGeneration", "read_tiny_shakespeare"]
