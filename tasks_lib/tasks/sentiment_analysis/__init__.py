"""Sentiment analysis (seed examples 11 and 30): SST-2 with a word CNN trained from scratch.

``task.py`` holds the task, ``model.py`` the network, ``readers.py`` the SST-2 layout.
"""

from tasks_lib.tasks.sentiment_analysis.model import TextCNN
from tasks_lib.tasks.sentiment_analysis.readers import read_sst2
from tasks_lib.tasks.sentiment_analysis.task import SentimentAnalysis

__all__ = ["SentimentAnalysis", "TextCNN", "read_sst2"]
