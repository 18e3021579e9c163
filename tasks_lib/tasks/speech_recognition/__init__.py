"""Speech recognition (seed examples 14 and 26): log-mel + conformer-style conv encoder, CTC over characters.

Data: the Free Spoken Digit Dataset (real 8 kHz digits; one speaker held out entirely)
plus espeak-ng utterances (digit strings and short sentences, several voices, speeds,
pitches, added noise) synthesised by the data step.
"""

from tasks_lib.tasks.speech_recognition.model import CTCSpeechModel, beam_decode, greedy_decode
from tasks_lib.tasks.speech_recognition.task import SpeechRecognition, transcribe

__all__ = ["CTCSpeechModel", "SpeechRecognition", "beam_decode", "greedy_decode", "transcribe"]
