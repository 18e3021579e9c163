"""Speech synthesis (seed examples 15 and 27): a non-autoregressive text-to-mel model + Griffin-Lim.

Data: an espeak-ng corpus of (text, wav) pairs (one voice) made by the data step, with
word timings taken from espeak-ng speaking each word alone, scaled to the sentence.
"""

from tasks_lib.tasks.speech_synthesis.model import TextToMel, griffin_lim
from tasks_lib.tasks.speech_synthesis.task import SpeechSynthesis

__all__ = ["SpeechSynthesis", "TextToMel", "griffin_lim"]
