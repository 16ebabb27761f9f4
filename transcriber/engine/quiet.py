"""Where to cut audio: the quietest moment of a stretch is most likely between words."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def quietest_moment(audio: np.ndarray, audio_start: float, start: float, end: float, window: float = 0.05) -> float:
    """The centre of the lowest-energy ``window`` inside [start, end] (stream seconds);
    ``audio`` begins at stream time ``audio_start``. Falls back to ``start`` when the
    stretch is shorter than two windows or lies outside the audio."""
    first = max(0, int(round((start - audio_start) * SAMPLE_RATE)))
    last = min(len(audio), int(round((end - audio_start) * SAMPLE_RATE)))
    width = max(1, int(window * SAMPLE_RATE))
    if last - first < 2 * width:
        return start
    hop = SAMPLE_RATE // 400  # 2.5 ms resolution is plenty for a cut
    energy = np.convolve(audio[first:last].astype(np.float64) ** 2, np.ones(width), mode="valid")[::hop]
    return audio_start + (first + int(np.argmin(energy)) * hop + width // 2) / SAMPLE_RATE
