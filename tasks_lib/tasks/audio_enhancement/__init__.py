"""Audio enhancement (seed example 18): a spectral-mask U-Net that removes noise from 8 kHz speech.

Data: FSDD recordings mixed with white, pink, babble (other utterances of the same split)
and mains-hum noise at -5 to 10 dB SNR, deterministic from the data config's seed.
"""

from tasks_lib.tasks.audio_enhancement.model import MaskUNet, wiener_filter
from tasks_lib.tasks.audio_enhancement.task import AudioEnhancement

__all__ = ["AudioEnhancement", "MaskUNet", "wiener_filter"]
