"""Voice activity: webrtcvad frames smoothed into speech regions, streaming.

A region opens after ``onset_frames`` voiced frames out of the last
``onset_window`` and closes after ``min_silence`` seconds without voice; its
edges are widened by ``padding`` seconds so that soft word onsets and endings
reach the recognizer. Each edge also says where the voice itself (its first or
last voiced frame) begins or ends: that is where a speaker's turn is shown.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.03
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_SECONDS)


@dataclass(frozen=True)
class SpeechStart:
    time: float  # seconds of audio, padding included
    voice: float  # the first voiced frame


@dataclass(frozen=True)
class SpeechEnd:
    time: float
    voice: float  # the end of the last voiced frame


class StreamingVad:
    def __init__(
        self,
        aggressiveness: int = 2,
        min_silence: float = 0.4,
        padding: float = 0.2,
        onset_frames: int = 4,
        onset_window: int = 6,
    ):
        self.vad = webrtcvad.Vad(aggressiveness)
        self.min_silence_frames = max(1, round(min_silence / FRAME_SECONDS))
        self.padding = padding
        self.onset_frames = onset_frames
        self.recent: deque[bool] = deque(maxlen=onset_window)
        self.pending = np.zeros(0, dtype=np.float32)
        self.frames_seen = 0
        self.in_speech = False
        self.silent_run = 0
        self.last_voiced_end = 0.0

    @property
    def time(self) -> float:
        return self.frames_seen * FRAME_SECONDS

    def start_at(self, seconds: float) -> None:
        """Count time from ``seconds`` (a whole number of frames) instead of zero: the
        stream is a piece of longer audio. Only before the first ``feed``."""
        if self.frames_seen or len(self.pending):
            raise RuntimeError("start_at() after audio was fed")
        self.frames_seen = round(seconds / FRAME_SECONDS)
        self.last_voiced_end = self.time

    def feed(self, samples: np.ndarray) -> list[SpeechStart | SpeechEnd]:
        self.pending = np.concatenate([self.pending, samples.astype(np.float32, copy=False)])
        events: list[SpeechStart | SpeechEnd] = []
        n_frames = len(self.pending) // FRAME_SAMPLES
        if n_frames == 0:
            return events
        frames = self.pending[: n_frames * FRAME_SAMPLES]
        self.pending = self.pending[n_frames * FRAME_SAMPLES :]
        pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")
        for frame in pcm.reshape(n_frames, FRAME_SAMPLES):
            voiced = self.vad.is_speech(frame.tobytes(), SAMPLE_RATE)
            self.frames_seen += 1
            events.extend(self._update(voiced))
        return events

    def _update(self, voiced: bool) -> list[SpeechStart | SpeechEnd]:
        self.recent.append(voiced)
        if voiced:
            self.last_voiced_end = self.time
        if not self.in_speech:
            if sum(self.recent) >= self.onset_frames:
                self.in_speech = True
                self.silent_run = 0
                onset = self.time - len(self.recent) * FRAME_SECONDS
                first_voiced = onset + list(self.recent).index(True) * FRAME_SECONDS
                return [SpeechStart(max(0.0, onset - self.padding), first_voiced)]
            return []
        self.silent_run = 0 if voiced else self.silent_run + 1
        if self.silent_run >= self.min_silence_frames:
            self.in_speech = False
            self.recent.clear()
            return [SpeechEnd(min(self.time, self.last_voiced_end + self.padding), self.last_voiced_end)]
        return []

    def finish(self) -> list[SpeechStart | SpeechEnd]:
        if self.in_speech:
            self.in_speech = False
            end = self.time + len(self.pending) / SAMPLE_RATE
            return [SpeechEnd(min(end, self.last_voiced_end + self.padding), min(end, self.last_voiced_end))]
        return []
