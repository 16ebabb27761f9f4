"""Audio input: decoding files into 16 kHz mono float32 blocks."""

from transcriber.audio.decode import SAMPLE_RATE, AudioDecodeError, AudioInfo, iter_blocks, load_audio, probe

__all__ = ["SAMPLE_RATE", "AudioDecodeError", "AudioInfo", "iter_blocks", "load_audio", "probe"]
